//! Request-line decoding for the Security Guardian: splits a logged request target into its path
//! and query parameters and undoes the encodings an attacker (or a client, or the access log)
//! puts on a value, so that the detectors see what the application would see.
//!
//! Per value, in order:
//!
//! 1. `\xHH` escapes (nginx writes `"`, `\` and non-printable bytes of the request line so);
//! 2. percent-decoding with `+` as a space (`%27` → `'`, `%u0027` → `'`, IIS style);
//! 3. up to [`MAX_PERCENT_ROUNDS`] − 1 more percent-decoding rounds while a valid escape remains
//!    (double encoding: `%2527` → `%27` → `'`), `+` staying a plus;
//! 4. overlong UTF-8 forms of ASCII folded to ASCII (`%c0%ae` → `.`), the rest read as UTF-8
//!    (invalid bytes become U+FFFD);
//! 5. HTML character references, twice at most (`&lt;`, `&#39;`, `&#x3c`, `&amp;lt;`).
//!
//! Malformed escapes (`%`, `%4`, `%zz`, `&#;`, `&#xffffffff;`) stay as they are. Work is bounded:
//! only the first [`MAX_VALUE_BYTES`] of a value and the first [`MAX_PARAMS`] parameters of a
//! query are decoded, and every step is one linear pass, so a crafted line costs O(its length).
//! Pure: no IO.

use std::borrow::Cow;

/// Longest prefix of one value that is decoded; the rest of a longer value is ignored.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
/// Most query parameters decoded per request target.
pub const MAX_PARAMS: usize = 64;
/// Most percent-decoding rounds (the first one plus double and triple encoding).
pub const MAX_PERCENT_ROUNDS: usize = 3;
/// Most HTML character-reference rounds (`&amp;lt;` needs two).
pub const MAX_HTML_ROUNDS: usize = 2;

/// One query parameter of a request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name as logged (empty for a bare value such as `?<payload>`).
    pub name: &'a str,
    /// The value as logged.
    pub raw: &'a str,
    /// The value decoded ([`decode_value`]).
    pub value: String,
}

/// A request target split and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedTarget<'a> {
    /// The path as logged (without scheme and host, query or fragment).
    pub raw_path: &'a str,
    /// The path decoded ([`decode_value`], `+` kept: it is not a space in a path).
    pub path: String,
    /// The query parameters, at most [`MAX_PARAMS`].
    pub params: Vec<Param<'a>>,
}

/// Splits `target` (`/p?a=1&b=2#f` or `http://host/p?…`) into path and parameters and decodes
/// them. Parameters are separated by `&`; a piece without `=` is a bare value.
pub fn decode_target(target: &str) -> DecodedTarget<'_> {
    let t = match target.find("://") {
        Some(p) if target[..p].bytes().all(|b| b.is_ascii_alphanumeric()) => {
            let rest = &target[p + 3..];
            rest.find(['/', '?']).map_or("", |q| &rest[q..])
        }
        _ => target,
    };
    let t = t.split('#').next().unwrap_or(t);
    let (raw_path, query) = match t.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (t, None),
    };
    let params = query.map_or_else(Vec::new, |q| {
        q.split('&')
            .filter(|piece| !piece.is_empty())
            .take(MAX_PARAMS)
            .map(|piece| {
                let (name, raw) = piece.split_once('=').unwrap_or(("", piece));
                Param {
                    name,
                    raw,
                    value: decode_value(raw),
                }
            })
            .collect()
    });
    DecodedTarget {
        raw_path,
        path: decode(raw_path, false),
        params,
    }
}

/// Decodes one query value (see the module documentation): `+` is a space.
pub fn decode_value(raw: &str) -> String {
    decode(raw, true)
}

fn decode(raw: &str, plus_is_space: bool) -> String {
    let raw = prefix(raw, MAX_VALUE_BYTES);
    if !raw.bytes().any(|b| matches!(b, b'%' | b'+' | b'\\' | b'&')) {
        return raw.to_owned();
    }
    let mut bytes = hex_escapes(raw.as_bytes()).unwrap_or_else(|| raw.as_bytes().to_vec());
    let mut plus = plus_is_space;
    for _ in 0..MAX_PERCENT_ROUNDS {
        match percent_decode(&bytes, plus) {
            Some(next) => bytes = next,
            None => break,
        }
        plus = false;
    }
    let text = fold_overlong(&bytes);
    let mut text = String::from_utf8_lossy(&text).into_owned();
    for _ in 0..MAX_HTML_ROUNDS {
        match html_unescape(&text) {
            Cow::Owned(next) => text = next,
            Cow::Borrowed(_) => break,
        }
    }
    text
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_pair(b: &[u8], at: usize) -> Option<u8> {
    let h = hex_value(*b.get(at)?)?;
    let l = hex_value(*b.get(at + 1)?)?;
    Some(h * 16 + l)
}

/// `\xHH` → the byte; `None` when there is none.
fn hex_escapes(b: &[u8]) -> Option<Vec<u8>> {
    if !b.windows(2).any(|w| w == b"\\x") {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = hex_pair(b, i + 2) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Some(out)
}

/// One percent-decoding pass (`%HH`, `%uHHHH`, and `+` → space when `plus`); `None` when
/// nothing changed.
pub fn percent_decode(b: &[u8], plus: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus => {
                out.push(b' ');
                changed = true;
            }
            b'%' => {
                if let Some(v) = hex_pair(b, i + 1) {
                    out.push(v);
                    changed = true;
                    i += 3;
                    continue;
                }
                if matches!(b.get(i + 1), Some(b'u' | b'U')) {
                    let code = (0..4).try_fold(0u32, |acc, k| {
                        Some(acc * 16 + u32::from(hex_value(*b.get(i + 2 + k)?)?))
                    });
                    if let Some(c) = code.and_then(char::from_u32) {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        changed = true;
                        i += 6;
                        continue;
                    }
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    changed.then_some(out)
}

/// Overlong UTF-8 encodings of ASCII (`C0 AE`, `E0 80 AE`) become the ASCII byte, as lenient
/// decoders (and path traversal payloads) treat them.
fn fold_overlong(b: &[u8]) -> Cow<'_, [u8]> {
    if !b.iter().any(|&c| c == 0xC0 || c == 0xC1 || c == 0xE0) {
        return Cow::Borrowed(b);
    }
    let cont = |c: Option<&u8>| c.is_some_and(|c| (0x80..=0xBF).contains(c));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if (c == 0xC0 || c == 0xC1) && cont(b.get(i + 1)) {
            out.push(((c & 0x1F) << 6) | (b[i + 1] & 0x3F));
            i += 2;
        } else if c == 0xE0 && b.get(i + 1) == Some(&0x80) && cont(b.get(i + 2)) {
            out.push(b[i + 2] & 0x3F);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Named references worth decoding for detection (the characters payloads need).
const NAMED: [(&str, char); 16] = [
    ("lt", '<'),
    ("gt", '>'),
    ("amp", '&'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", ' '),
    ("sol", '/'),
    ("bsol", '\\'),
    ("colon", ':'),
    ("semi", ';'),
    ("lpar", '('),
    ("rpar", ')'),
    ("equals", '='),
    ("tab", '\t'),
    ("newline", '\n'),
    ("grave", '`'),
];

/// Most digits read in a numeric reference (`&#0000060;` is `<`).
const MAX_REF_DIGITS: usize = 10;

/// One pass of HTML character references: named ([`NAMED`], `;` required, case-insensitive)
/// and numeric (`&#60;`, `&#x3c;`, `;` optional as browsers accept).
pub fn html_unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] != b'&' {
            i += 1;
            continue;
        }
        if let Some((c, len)) = reference_at(&s[i + 1..]) {
            out.push_str(&s[copied..i]);
            out.push(c);
            i += 1 + len;
            copied = i;
            changed = true;
        } else {
            i += 1;
        }
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

/// The character and the length of a reference right after `&`.
fn reference_at(rest: &str) -> Option<(char, usize)> {
    let b = rest.as_bytes();
    if b.first() == Some(&b'#') {
        let (radix, start) = match b.get(1) {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits = b[start..]
            .iter()
            .take(MAX_REF_DIGITS)
            .take_while(|c| c.is_ascii_hexdigit() && (radix == 16 || c.is_ascii_digit()))
            .count();
        if digits == 0 {
            return None;
        }
        let code = u32::from_str_radix(&rest[start..start + digits], radix).ok()?;
        let c = char::from_u32(code)?;
        let end = start + digits;
        let len = if b.get(end) == Some(&b';') {
            end + 1
        } else {
            end
        };
        return Some((c, len));
    }
    let name_len = b
        .iter()
        .take(8)
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if b.get(name_len) != Some(&b';') {
        return None;
    }
    let name = &rest[..name_len];
    NAMED
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, c)| (c, name_len + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_and_plus() {
        assert_eq!(decode_value("1%27%20OR%20%271%27%3D%271"), "1' OR '1'='1");
        assert_eq!(decode_value("a+b%2Bc"), "a b+c");
        assert_eq!(decode_value("%3Cscript%3E"), "<script>");
        assert_eq!(decode_value("%u003Cb%u003E"), "<b>");
        assert_eq!(decode_value("plain"), "plain");
        assert_eq!(decode_value("caf%C3%A9"), "café");
    }

    #[test]
    fn double_and_triple_encoding() {
        assert_eq!(decode_value("%2527"), "'");
        assert_eq!(decode_value("%25253Cscript%25253E"), "<script>");
        // A `+` produced by decoding is a plus, not a space.
        assert_eq!(decode_value("%2B"), "+");
        // Bounded: a fourth layer stays encoded.
        assert_eq!(decode_value("%25252527"), "%27");
    }

    #[test]
    fn html_entities() {
        assert_eq!(decode_value("&lt;svg onload=1&gt;"), "<svg onload=1>");
        assert_eq!(decode_value("O&#39;Brien"), "O'Brien");
        assert_eq!(decode_value("&#x3C;img&#x3e;"), "<img>");
        assert_eq!(decode_value("&#0000060script"), "<script");
        assert_eq!(decode_value("%26lt%3Bb%26gt%3B"), "<b>");
        assert_eq!(decode_value("&amp;lt;i&amp;gt;"), "<i>");
        assert_eq!(decode_value("javascript&colon;x"), "javascript:x");
        assert_eq!(
            decode_value("AT&T &copy; &unknown;"),
            "AT&T &copy; &unknown;"
        );
    }

    #[test]
    fn nginx_hex_escapes_and_overlong_utf8() {
        assert_eq!(decode_value("\\x22a\\x22"), "\"a\"");
        assert_eq!(decode_value("%c0%ae%c0%ae%c0%af"), "../");
        assert_eq!(decode_value("%e0%80%ae"), ".");
    }

    #[test]
    fn malformed_escapes_stay() {
        for s in [
            "%", "%4", "%zz", "100%", "%u12", "%uzzzz", "&#;", "&#x;", "\\x4", "&",
        ] {
            assert_eq!(decode_value(s), s, "{s}");
        }
        assert_eq!(decode_value("&#xffffffff;"), "&#xffffffff;");
        assert_eq!(decode_value("%ff%fe"), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn splits_targets() {
        let t = decode_target("/search?q=a%20b&empty=&flag&x=1%3D1#frag");
        assert_eq!(t.raw_path, "/search");
        let got: Vec<(&str, &str)> = t
            .params
            .iter()
            .map(|p| (p.name, p.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [("q", "a b"), ("empty", ""), ("", "flag"), ("x", "1=1")]
        );
        let t = decode_target("http://example.com:8080/a%2e%2e/b+c?z=%3C");
        assert_eq!(t.path, "/a../b+c");
        assert_eq!(t.params[0].value, "<");
        assert!(decode_target("/plain").params.is_empty());
    }

    #[test]
    fn arbitrary_input_does_not_panic() {
        const PIECES: &[&str] = &[
            "%",
            "%2",
            "%25",
            "%u",
            "%u00",
            "%c0%ae",
            "%e0%80",
            "\\x",
            "\\x2",
            "&",
            "&#",
            "&#x",
            "&lt",
            ";",
            "+",
            "?",
            "=",
            "&amp;",
            "é",
            "\u{10ffff}",
            "/",
            "..",
            "://",
            "#",
            "a",
            "1",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            let mut s = String::new();
            for _ in 0..(seed % 40) {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                s.push_str(PIECES[(seed >> 33) as usize % PIECES.len()]);
            }
            let t = decode_target(&s);
            assert!(t.params.len() <= MAX_PARAMS);
            assert!(decode_value(&s).len() <= 3 * MAX_VALUE_BYTES);
        }
    }

    #[test]
    fn bounded_work() {
        let long = "%41".repeat(MAX_VALUE_BYTES);
        // 8,192 bytes: 2,730 whole escapes and a cut one (`%4`), which stays.
        assert_eq!(
            decode_value(&long),
            format!("{}%4", "A".repeat(MAX_VALUE_BYTES / 3))
        );
        let many = "a=1&".repeat(MAX_PARAMS * 4);
        assert_eq!(decode_target(&format!("/?{many}")).params.len(), MAX_PARAMS);
        // A multi-byte character at the cut does not panic.
        let s = format!("{}é", "a".repeat(MAX_VALUE_BYTES - 1));
        assert_eq!(decode_value(&s).len(), MAX_VALUE_BYTES - 1);
    }
}
