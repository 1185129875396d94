//! Redaction of secrets and personal data in log text, applied before anything is stored.
//!
//! Deterministic rules, no model: a keyword prefilter ([`Triggers`], one SIMD multi-substring
//! pass) finds the few lines that may hold a credential and only those are checked with regular
//! expressions; personal data (e-mail addresses, IP addresses, payment card numbers) is found
//! by small hand-written scanners. Text with nothing to redact is returned borrowed.
//!
//! What is masked and how (`docs/analysers.md` has the full table):
//!
//! * credentials → `[REDACTED:<kind>]` (`aws-access-key`, `aws-secret-key`, `github-token`,
//!   `gitlab-token`, `slack-token`, `stripe-key`, `google-api-key`, `private-key`, `jwt`,
//!   `authorization`, `url-password`, `password`, `secret`, `token`, `api-key`); for
//!   assignments, headers and URLs only the value is masked (`password=[REDACTED:password]`,
//!   `postgres://app:[REDACTED:url-password]@db:5432`);
//! * e-mail addresses → `[REDACTED:email]`;
//! * IPv4 addresses → the last octet becomes `x` (`192.168.1.x`, a /24 truncation as in web
//!   analytics IP anonymisation), IPv6 addresses keep their first three hextets (`2001:db8:85a3::x`);
//! * card numbers (13–19 digits, optionally grouped by spaces or dashes, a known issuer prefix
//!   and a valid Luhn checksum) → `[REDACTED:card]`.
//!
//! The markers and truncated addresses it writes are not matched again.

use std::borrow::Cow;
use std::net::Ipv6Addr;
use std::sync::LazyLock;

use aho_corasick::{packed, AhoCorasick, Input, MatchKind, Span};
use regex::Regex;

/// One credential found in a line: `line[start..end]` is the secret itself (for assignments,
/// headers and URLs only the value, not the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretMatch {
    /// Stable kind id, also used in the `[REDACTED:<kind>]` marker.
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
}

/// Secret kinds that are cloud credentials or private keys (the Security Guardian reports them
/// as critical).
pub const CRITICAL_SECRET_KINDS: &[&str] = &[
    "aws-access-key",
    "aws-secret-key",
    "google-api-key",
    "private-key",
];

// ---------------------------------------------------------------------------------------------
// Keyword prefilter, shared with the analysers.
// ---------------------------------------------------------------------------------------------

enum Engine {
    Packed(packed::Searcher),
    Ac(AhoCorasick),
}

/// A case-sensitive multi-keyword prefilter. Each keyword carries a tag (a bit flag, or any
/// `u32` the caller chooses). Built once per keyword set; uses the SIMD "Teddy" searcher when
/// the CPU has it (keep sets at ≤ 64 keywords of ≥ 3 bytes for that), Aho-Corasick otherwise.
pub(crate) struct Triggers {
    engine: Engine,
    tags: Vec<u32>,
}

impl Triggers {
    pub(crate) fn new(words: &[(&str, u32)]) -> Self {
        // More than 64 keywords or shorter ones than 4 bytes silently lose the fast searcher.
        debug_assert!(
            words.len() <= 64 && words.iter().all(|w| w.0.len() >= 4),
            "keep trigger sets at <= 64 keywords of >= 4 bytes"
        );
        let patterns: Vec<&str> = words.iter().map(|w| w.0).collect();
        let tags = words.iter().map(|w| w.1).collect();
        let engine = match packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&patterns)
            .build()
        {
            Some(searcher) => Engine::Packed(searcher),
            None => Engine::Ac(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(&patterns)
                    .expect("trigger keywords build"),
            ),
        };
        Self { engine, tags }
    }

    /// The first keyword at or after byte `at`: `(tag, start, end)`.
    pub(crate) fn find_at(&self, hay: &str, at: usize) -> Option<(u32, usize, usize)> {
        if at >= hay.len() {
            return None;
        }
        let (pattern, start, end) = match &self.engine {
            Engine::Packed(searcher) => {
                let m = searcher.find_in(hay, Span::from(at..hay.len()))?;
                (m.pattern(), m.start(), m.end())
            }
            Engine::Ac(ac) => {
                let m = ac.find(Input::new(hay).span(at..hay.len()))?;
                (m.pattern(), m.start(), m.end())
            }
        };
        Some((self.tags[pattern.as_usize()], start, end))
    }

    /// The lines (index, union of tags) that contain a keyword. One search over the whole text
    /// when `lines` are successive slices of `text` (as [`LogText`] makes them), else one per
    /// line.
    ///
    /// [`LogText`]: crate::logmarket::analysers::LogText
    pub(crate) fn candidate_lines(&self, text: &str, lines: &[&str]) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        if !is_split_of(text, lines) {
            for (i, line) in lines.iter().enumerate() {
                let tags = self.tags(line);
                if tags != 0 {
                    out.push((i, tags));
                }
            }
            return out;
        }
        let mut at = 0;
        let mut li = 0;
        while let Some((_, hit, _)) = self.find_at(text, at) {
            while li < lines.len() && offset_in(text, lines[li]) + lines[li].len() <= hit {
                li += 1;
            }
            let Some(line) = lines.get(li) else {
                break;
            };
            let start = offset_in(text, line);
            if hit < start {
                at = start;
                continue;
            }
            let tags = self.tags(line);
            if tags != 0 {
                out.push((li, tags));
            }
            at = start + line.len();
            li += 1;
        }
        out
    }

    /// The union (bitwise or) of the tags of all keywords found in `hay`; 0 when none.
    pub(crate) fn tags(&self, hay: &str) -> u32 {
        let mut bits = 0;
        let mut at = 0;
        while let Some((tag, _, end)) = self.find_at(hay, at) {
            bits |= tag;
            at = end;
        }
        bits
    }
}

const T_AWS: u32 = 1;
const T_GITHUB: u32 = 1 << 1;
const T_GITLAB: u32 = 1 << 2;
const T_SLACK: u32 = 1 << 3;
const T_STRIPE: u32 = 1 << 4;
const T_GOOGLE: u32 = 1 << 5;
const T_PKEY: u32 = 1 << 6;
const T_JWT: u32 = 1 << 7;
const T_AUTH: u32 = 1 << 8;
const T_ASSIGN: u32 = 1 << 9;

/// Keywords that every credential rule needs to see in its line (case variants spelled out so
/// the SIMD searcher can be used; dropping a word's first letter covers two cases at once; all
/// at least 4 bytes long, which keeps the searcher fast). URL credentials are found from their
/// `@` instead.
pub(crate) const SECRET_KEYWORDS: &[(&str, u32)] = &[
    ("AKIA", T_AWS),
    ("ASIA", T_AWS),
    ("ghp_", T_GITHUB),
    ("gho_", T_GITHUB),
    ("ghs_", T_GITHUB),
    ("ghu_", T_GITHUB),
    ("ghr_", T_GITHUB),
    ("github_pat_", T_GITHUB),
    ("glpat-", T_GITLAB),
    ("xoxb-", T_SLACK),
    ("xoxa-", T_SLACK),
    ("xoxp-", T_SLACK),
    ("xoxr-", T_SLACK),
    ("xoxs-", T_SLACK),
    ("sk_live_", T_STRIPE),
    ("rk_live_", T_STRIPE),
    ("AIza", T_GOOGLE),
    ("PRIVATE KEY", T_PKEY),
    // A JWT's payload (after the first dot) is base64 of `{"…`.
    (".eyJ", T_JWT),
    ("Bearer", T_AUTH),
    ("bearer", T_AUTH),
    ("BEARER", T_AUTH),
    ("uthorization", T_AUTH),
    ("UTHORIZATION", T_AUTH),
    ("assword", T_ASSIGN),
    ("ASSWORD", T_ASSIGN),
    ("asswd", T_ASSIGN),
    ("ASSWD", T_ASSIGN),
    ("ecret", T_ASSIGN),
    ("ECRET", T_ASSIGN),
    ("oken", T_ASSIGN),
    ("OKEN", T_ASSIGN),
    ("pi_key", T_ASSIGN),
    ("PI_KEY", T_ASSIGN),
    ("pikey", T_ASSIGN),
    ("piKey", T_ASSIGN),
    ("PIKEY", T_ASSIGN),
    ("pi-key", T_ASSIGN),
    ("pi-Key", T_ASSIGN),
    ("PI-KEY", T_ASSIGN),
];

fn offset_in(text: &str, line: &str) -> usize {
    line.as_ptr() as usize - text.as_ptr() as usize
}

/// Whether `lines` are successive, non-overlapping slices of `text`.
fn is_split_of(text: &str, lines: &[&str]) -> bool {
    let base = text.as_ptr() as usize;
    let end = base + text.len();
    let mut prev = base;
    lines.iter().all(|l| {
        let p = l.as_ptr() as usize;
        let ok = p >= prev && p + l.len() <= end;
        prev = p + l.len();
        ok
    })
}

/// The indices of the lines that may hold a credential ([`find_secrets`] finds nothing in the
/// others): a keyword, or an `@` after a `://`.
pub(crate) fn secret_candidate_lines(text: &str, lines: &[&str]) -> Vec<usize> {
    let mut out: Vec<usize> = SECRET_TRIGGERS
        .candidate_lines(text, lines)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    let url = |l: &str| memchr::memmem::find(l.as_bytes(), b"://").is_some();
    if is_split_of(text, lines) {
        let mut li = 0;
        for at in memchr::memchr_iter(b'@', text.as_bytes()) {
            while li < lines.len() && offset_in(text, lines[li]) + lines[li].len() <= at {
                li += 1;
            }
            let Some(line) = lines.get(li) else {
                break;
            };
            if at >= offset_in(text, line) && url(line) {
                out.push(li);
            }
            li += 1;
        }
    } else {
        for (i, l) in lines.iter().enumerate() {
            if memchr::memchr(b'@', l.as_bytes()).is_some() && url(l) {
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

static SECRET_TRIGGERS: LazyLock<Triggers> = LazyLock::new(|| Triggers::new(SECRET_KEYWORDS));

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("redaction regex compiles")
}

static RE_AWS_KEY: LazyLock<Regex> = LazyLock::new(|| re(r"(?:AKIA|ASIA)[0-9A-Z]{16}"));
static RE_GITHUB: LazyLock<Regex> =
    LazyLock::new(|| re(r"gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"));
static RE_GITLAB: LazyLock<Regex> = LazyLock::new(|| re(r"glpat-[A-Za-z0-9_-]{20,}"));
static RE_SLACK: LazyLock<Regex> = LazyLock::new(|| re(r"xox[baprs]-[A-Za-z0-9-]{10,}"));
static RE_STRIPE: LazyLock<Regex> = LazyLock::new(|| re(r"[sr]k_live_[A-Za-z0-9]{16,}"));
static RE_GOOGLE: LazyLock<Regex> = LazyLock::new(|| re(r"AIza[0-9A-Za-z_-]{35}"));
static RE_PKEY: LazyLock<Regex> =
    LazyLock::new(|| re(r"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY(?: BLOCK)?-----"));
static RE_PKEY_END: LazyLock<Regex> =
    LazyLock::new(|| re(r"-----END (?:[A-Z0-9]+ )?PRIVATE KEY(?: BLOCK)?-----"));
static RE_JWT: LazyLock<Regex> =
    LazyLock::new(|| re(r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"));
static RE_AUTH_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)authorization["']?\s*[:=]\s*["']?(?:(bearer|basic|token|apikey|sso-key)\s+)?([A-Za-z0-9._~+/=:-]{8,})"#,
    )
});
static RE_BEARER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)"));
static RE_ASSIGN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)([a-z0-9_.-]*(?:aws_?secret_?access_?key|passw(?:or)?d|secret|token|api[_-]?key)(?:[_-]?key)?)["']?\s*(=>|[:=])\s*["']?([^\s"'`,;&(){}\[\]<>]+)"#,
    )
});

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Only what is certainly a live secret (entropy check on generic assignments).
    Report,
    /// Also passwords whatever their entropy (they are user-chosen, `hunter2` is a secret too).
    Redact,
}

/// The credentials in one line, sorted by position, without overlaps. Placeholders
/// (`password=changeme`, `token=<your-token>`, `${API_KEY}`, `AKIAIOSFODNN7EXAMPLE`, …) and
/// low-entropy values of generic `token=`/`secret=`/`api_key=` assignments are not secrets.
pub fn find_secrets(line: &str) -> Vec<SecretMatch> {
    let bits = SECRET_TRIGGERS.tags(line);
    let mut out = Vec::new();
    if bits != 0 {
        secrets_in(line, bits, Mode::Report, &mut out);
    }
    let b = line.as_bytes();
    for at in memchr::memchr_iter(b'@', b) {
        if let Some((start, end)) = url_password(b, at) {
            if !is_placeholder(&line[start..end]) {
                out.push(SecretMatch {
                    kind: "url-password",
                    start,
                    end,
                });
            }
        }
    }
    dedup(&mut out);
    out
}

/// Sorts by position and drops matches overlapping an earlier (or longer) one.
fn dedup(out: &mut Vec<SecretMatch>) {
    out.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    let mut last_end = 0;
    out.retain(|m| {
        let keep = m.start >= last_end;
        if keep {
            last_end = m.end;
        }
        keep
    });
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn bounded(line: &str, start: usize, end: usize) -> bool {
    let b = line.as_bytes();
    (start == 0 || !is_alnum(b[start - 1])) && (end >= b.len() || !is_alnum(b[end]))
}

fn secrets_in(line: &str, bits: u32, mode: Mode, out: &mut Vec<SecretMatch>) {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let push = |kind: &'static str, start: usize, end: usize, out: &mut Vec<SecretMatch>| {
        if !is_placeholder(&line[start..end]) {
            out.push(SecretMatch { kind, start, end });
        }
    };
    let simple: [(u32, &Regex, &'static str); 6] = [
        (T_AWS, &RE_AWS_KEY, "aws-access-key"),
        (T_GITHUB, &RE_GITHUB, "github-token"),
        (T_GITLAB, &RE_GITLAB, "gitlab-token"),
        (T_SLACK, &RE_SLACK, "slack-token"),
        (T_STRIPE, &RE_STRIPE, "stripe-key"),
        (T_GOOGLE, &RE_GOOGLE, "google-api-key"),
    ];
    for (bit, regex, kind) in simple {
        if bits & bit != 0 {
            for m in regex.find_iter(line) {
                if bounded(line, m.start(), m.end()) {
                    push(kind, m.start(), m.end(), out);
                }
            }
        }
    }
    if bits & T_PKEY != 0 {
        if let Some(m) = RE_PKEY.find(line) {
            let end = RE_PKEY_END
                .find_at(line, m.end())
                .map_or(line.len(), |e| e.end());
            out.push(SecretMatch {
                kind: "private-key",
                start: m.start(),
                end,
            });
        }
    }
    if bits & T_JWT != 0 {
        for m in RE_JWT.find_iter(line) {
            push("jwt", m.start(), m.end(), out);
        }
    }
    if bits & T_AUTH != 0 {
        for c in RE_AUTH_HEADER.captures_iter(line) {
            let v = c.get(2).expect("group 2");
            // Without a scheme (`Authorization: <value>`) the value must look random.
            if c.get(1).is_some()
                || (high_entropy(v.as_str()) && !looks_like_identifier(v.as_str()))
            {
                push("authorization", v.start(), v.end(), out);
            }
        }
        for c in RE_BEARER.captures_iter(line) {
            let v = c.get(1).expect("group 1");
            push("authorization", v.start(), v.end(), out);
        }
    }
    if bits & T_ASSIGN != 0 {
        for c in RE_ASSIGN.captures_iter(line) {
            let key = c.get(1).expect("key").as_str().to_ascii_lowercase();
            let v = c.get(3).expect("value");
            let value = v.as_str();
            // `token=Token{…}` / `secret=Foo(…)`: an object dump, not a value.
            if matches!(line.as_bytes().get(v.end()), Some(b'{' | b'(' | b'[')) {
                continue;
            }
            if looks_like_identifier(value) {
                continue;
            }
            let kind = assignment_kind(&key);
            let keep = match kind {
                "aws-secret-key" => value.len() >= 40 || high_entropy(value),
                "password" if mode == Mode::Redact => true,
                _ => high_entropy(value),
            };
            if keep {
                push(kind, v.start(), v.end(), out);
            }
        }
    }
    dedup(out);
}

fn assignment_kind(key: &str) -> &'static str {
    if key.contains("aws") && key.contains("secret") {
        "aws-secret-key"
    } else if key.contains("passw") {
        "password"
    } else if key.contains("secret") {
        "secret"
    } else if key.contains("token") {
        "token"
    } else {
        "api-key"
    }
}

/// `scheme://user:password@host`: the password span for the `@` at `at`.
fn url_password(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s > 0
        && !matches!(
            b[s - 1],
            b'/' | b' ' | b'\t' | b'\n' | b'"' | b'\'' | b'<' | b'>' | b'@' | b'?' | b'#'
        )
    {
        s -= 1;
    }
    if s < 3 || &b[s - 3..s] != b"://" {
        return None;
    }
    let colon = s + memchr::memchr(b':', &b[s..at])?;
    (colon > s && colon + 1 < at).then_some((colon + 1, at))
}

/// Shannon entropy of the value in bits per byte.
pub(crate) fn entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    for &b in value.as_bytes() {
        counts[b as usize] += 1;
    }
    let n = value.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Values that name something rather than authenticate: paths, URLs, dotted class or package
/// names (`android.os.BinderProxy@2bd79ce`, `com.apple.xpc.activity/4505`).
fn looks_like_identifier(value: &str) -> bool {
    if value.starts_with('/') || value.contains("://") {
        return true;
    }
    let mut parts = value.split('.');
    let alpha = |p: Option<&str>| {
        p.is_some_and(|p| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_alphabetic()))
    };
    alpha(parts.next()) && alpha(parts.next())
}

/// At least 8 characters and at least 3.0 bits of Shannon entropy per character.
fn high_entropy(value: &str) -> bool {
    value.len() >= 8 && entropy(value) >= 3.0
}

/// Documentation values and templates that are not real credentials.
pub(crate) fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    if v.is_empty() {
        return true;
    }
    let b = v.as_bytes();
    if matches!(b[0], b'<' | b'$' | b'%' | b'{' | b'[') || v.starts_with("#{") {
        return true;
    }
    if b.iter().all(|&c| c == b[0]) || b.iter().all(|&c| matches!(c, b'*' | b'x' | b'X' | b'.')) {
        return true;
    }
    let lower = v.to_ascii_lowercase();
    const CONTAINS: &[&str] = &[
        "example",
        "changeme",
        "change_me",
        "change-me",
        "placeholder",
        "dummy",
        "redacted",
        "your_",
        "your-",
        "yourtoken",
        "yourpassword",
        "sample",
        "xxxx",
        "****",
        "fake",
        "masked",
    ];
    const EXACT: &[&str] = &[
        "test",
        "testing",
        "null",
        "none",
        "nil",
        "undefined",
        "true",
        "false",
        "password",
        "passwd",
        "secret",
        "token",
        "empty",
        "n/a",
        "string",
        "value",
        "required",
        "hidden",
        "default",
        "unset",
    ];
    CONTAINS.iter().any(|p| lower.contains(p)) || EXACT.contains(&lower.as_str())
}

// ---------------------------------------------------------------------------------------------
// Personal data scanners
// ---------------------------------------------------------------------------------------------

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses `a.b.c.d` at `i` (each octet 0–255, no leading zeros) with nothing word-like or a
/// fifth dotted number after it. Returns (end, start of the last octet).
fn ipv4_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut p = i;
    let mut last = i;
    for k in 0..4 {
        let s = p;
        let mut v: u32 = 0;
        while p < b.len() && p - s < 4 && b[p].is_ascii_digit() {
            v = v * 10 + u32::from(b[p] - b'0');
            p += 1;
        }
        let len = p - s;
        if len == 0 || len > 3 || v > 255 || (len > 1 && b[s] == b'0') {
            return None;
        }
        if k < 3 {
            if p >= b.len() || b[p] != b'.' {
                return None;
            }
            p += 1;
        } else {
            last = s;
        }
    }
    if p < b.len()
        && (is_word(b[p]) || (b[p] == b'.' && b.get(p + 1).is_some_and(u8::is_ascii_digit)))
    {
        return None;
    }
    Some((p, last))
}

fn ipv4_may_start(b: &[u8], i: usize) -> bool {
    i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b'.')
}

/// The first IPv4 address in `s` at or after byte `from`: (start, end).
pub(crate) fn find_ipv4(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            if ipv4_may_start(b, i) {
                if let Some((end, _)) = ipv4_at(b, i) {
                    return Some((i, end));
                }
            }
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    None
}

/// A payment card number at `i`: 13–19 digits, either contiguous or grouped in groups of 3–6
/// separated by one consistent space or dash (first group of 4), with a known issuer prefix and
/// a valid Luhn checksum. Returns the end.
fn card_at(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && matches!(b[i - 1], b'-' | b'+' | b'/' | b':' | b'#') {
        // A negative number, an id suffix or a time, not a card.
        if b[i - 1] != b'/' {
            return None;
        }
    }
    let mut digits = [0u8; 19];
    let mut n = 0;
    let mut p = i;
    let mut sep: Option<u8> = None;
    let mut group = 0;
    let mut first_group = 0;
    let mut groups = 0;
    while p < b.len() {
        let c = b[p];
        if c.is_ascii_digit() {
            if n == 19 {
                return None;
            }
            digits[n] = c - b'0';
            n += 1;
            group += 1;
            p += 1;
        } else if (c == b' ' || c == b'-')
            && sep.is_none_or(|s| s == c)
            && b.get(p + 1).is_some_and(u8::is_ascii_digit)
            && (3..=6).contains(&group)
        {
            if groups == 0 {
                first_group = group;
            }
            groups += 1;
            sep = Some(c);
            group = 0;
            p += 1;
        } else {
            break;
        }
    }
    if p < b.len()
        && (is_word(b[p]) || (b[p] == b'.' && b.get(p + 1).is_some_and(u8::is_ascii_digit)))
    {
        return None;
    }
    if !(13..=19).contains(&n) {
        return None;
    }
    if groups > 0 && (first_group != 4 || !(3..=6).contains(&group)) {
        return None;
    }
    let d = &digits[..n];
    let prefix = |k: usize| d[..k].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    let known_issuer = d[0] == 4
        || (51..=55).contains(&prefix(2))
        || (2221..=2720).contains(&prefix(4))
        || matches!(prefix(2), 34 | 37 | 36 | 38 | 62 | 65)
        || prefix(4) == 6011
        || (644..=649).contains(&prefix(3))
        || (3528..=3589).contains(&prefix(4))
        || (300..=305).contains(&prefix(3));
    if !known_issuer || !luhn(d) {
        return None;
    }
    Some(p)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 1 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn is_email_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// The e-mail address around the `@` at `at`: (start, end).
fn email_around(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s > 0 && is_email_local(b[s - 1]) {
        s -= 1;
    }
    while s < at && b[s] == b'.' {
        s += 1;
    }
    if s == at || (s > 0 && b[s - 1] == b':') || &b[s..at] == b"git" {
        // `scheme://user:password@host` is the URL rule's; `git@host:repo` is not personal.
        return None;
    }
    let mut e = at + 1;
    while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'-' || b[e] == b'.') {
        e += 1;
    }
    while e > at + 1 && b[e - 1] == b'.' {
        e -= 1;
    }
    let domain = &b[at + 1..e];
    let last_dot = domain.iter().rposition(|&c| c == b'.')?;
    let mut tld = &domain[last_dot + 1..];
    // `user@example.com-----BEGIN …`: the address ends with its alphabetic TLD.
    let alpha = tld.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    if alpha >= 2 && alpha < tld.len() && tld[alpha] == b'-' {
        e = at + 1 + last_dot + 1 + alpha;
        tld = &tld[..alpha];
    }
    let domain = &b[at + 1..e];
    if last_dot == 0
        || tld.len() < 2
        || !tld.iter().all(u8::is_ascii_alphabetic)
        || domain.windows(2).any(|w| w == b"..")
    {
        return None;
    }
    Some((s, e))
}

fn is_ipv6_char(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':'
}

/// The end of the run of hex digits and colons around the `:` at `i`, and the IPv6 address it
/// is, if it is one: (start, end, redacted form).
fn ipv6_around(text: &str, i: usize) -> (usize, Option<(usize, usize, String)>) {
    let b = text.as_bytes();
    let mut s = i;
    while s > 0 && is_ipv6_char(b[s - 1]) {
        s -= 1;
    }
    let mut e = i;
    while e < b.len() && is_ipv6_char(b[e]) {
        e += 1;
    }
    if (s > 0 && (is_word(b[s - 1]) || b[s - 1] == b'.'))
        || (e < b.len() && (is_word(b[e]) || b[e] == b'.'))
        || e - s < 6
    {
        return (e, None);
    }
    let run = &text[s..e];
    let colons = run.bytes().filter(|&c| c == b':').count();
    if !(colons == 7 || (run.contains("::") && colons <= 7)) {
        return (e, None);
    }
    let groups = run.split(':').filter(|g| !g.is_empty()).count();
    if groups < 2 {
        return (e, None);
    }
    let Ok(addr) = run.parse::<Ipv6Addr>() else {
        return (e, None);
    };
    let seg = addr.segments();
    (
        e,
        Some((s, e, format!("{:x}:{:x}:{:x}::x", seg[0], seg[1], seg[2]))),
    )
}

// ---------------------------------------------------------------------------------------------
// redact
// ---------------------------------------------------------------------------------------------

enum With {
    Marker(&'static str),
    X,
    Text(String),
}

struct Edit {
    start: usize,
    end: usize,
    with: With,
}

/// Returns `text` with secrets and personal data replaced by `[REDACTED:<kind>]` markers (IP
/// addresses truncated instead). Borrowed when there is nothing to redact.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut edits: Vec<Edit> = Vec::new();
    secret_edits(text, &mut edits);
    personal_data_edits(text, &mut edits);
    if edits.is_empty() {
        return Cow::Borrowed(text);
    }
    edits.sort_by_key(|e| (e.start, std::cmp::Reverse(e.end)));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for e in edits {
        if e.start < pos {
            continue;
        }
        out.push_str(&text[pos..e.start]);
        match e.with {
            With::Marker(kind) => {
                out.push_str("[REDACTED:");
                out.push_str(kind);
                out.push(']');
            }
            With::X => out.push('x'),
            With::Text(t) => out.push_str(&t),
        }
        pos = e.end;
    }
    out.push_str(&text[pos..]);
    Cow::Owned(out)
}

/// For each of `lines`, whether [`redact`] may change it: `false` only where `redact(line)`
/// certainly returns the line borrowed, so `if may_change[i] { redact(l) } else { l }` is
/// `redact(l)` for every line. Found with one pass of each scanner over the whole `text`
/// instead of one per line (a log's lines are most of them clean, and the per-call set-up of
/// the searchers costs more than a short line's scan).
///
/// Why it is exact: a line can only change through a credential, whose rules all need one of
/// [`SECRET_KEYWORDS`] in the line (found by [`Triggers::candidate_lines`], and no keyword holds
/// a line break), or through personal data, whose scanners ([`personal_data_edits`]) are
/// line-local: none of them reads past a `\n` backwards or past a `\r`/`\n` forwards (neither is
/// a word, digit, hex, dot, colon, e-mail or separator byte), and a `\n` before the line or a
/// `\r`/`\n` after it tests exactly as the line's start or end would. So on the whole text they
/// make exactly the edits they make on each line alone, shifted. That needs `lines` to be the
/// lines of `text` as [`LogText`] splits them (at `\n`, one `\r` removed): otherwise every line
/// may change.
///
/// [`LogText`]: crate::logmarket::analysers::LogText
pub(crate) fn lines_redact_may_change(text: &str, lines: &[&str]) -> Vec<bool> {
    if !is_line_split_of(text, lines) {
        return vec![true; lines.len()];
    }
    let mut may_change = vec![false; lines.len()];
    for (i, _) in SECRET_TRIGGERS.candidate_lines(text, lines) {
        may_change[i] = true;
    }
    let mut edits = Vec::new();
    personal_data_edits(text, &mut edits);
    for e in &edits {
        // The line holding the edit's first byte: the first whose end is past it.
        let i = lines.partition_point(|l| offset_in(text, l) + l.len() <= e.start);
        if let Some(flag) = may_change.get_mut(i) {
            *flag = true;
        }
    }
    may_change
}

/// Whether `lines` are `text` split at `\n` with one `\r` before it removed (as
/// [`LogText::new`] splits, a trailing empty line dropped): the first line starts the text,
/// `\n` or `\r\n` separates two lines, and at most `\r`, `\n` or `\r\n` follows the last.
///
/// [`LogText::new`]: crate::logmarket::analysers::LogText::new
fn is_line_split_of(text: &str, lines: &[&str]) -> bool {
    if !is_split_of(text, lines) {
        return false;
    }
    let b = text.as_bytes();
    let mut pos = 0;
    for (i, line) in lines.iter().enumerate() {
        let start = offset_in(text, line);
        let gap = &b[pos..start];
        let ok = if i == 0 {
            gap.is_empty()
        } else {
            gap == b"\n" || gap == b"\r\n"
        };
        if !ok {
            return false;
        }
        pos = start + line.len();
    }
    matches!(&b[pos..], b"" | b"\n" | b"\r" | b"\r\n")
}

fn line_bounds(b: &[u8], at: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &b[..at]).map_or(0, |p| p + 1);
    let end = memchr::memchr(b'\n', &b[at..]).map_or(b.len(), |p| at + p);
    (start, end)
}

fn secret_edits(text: &str, edits: &mut Vec<Edit>) {
    let b = text.as_bytes();
    let mut at = 0;
    let mut found = Vec::new();
    while let Some((_, hit, _)) = SECRET_TRIGGERS.find_at(text, at) {
        let (ls, le) = line_bounds(b, hit);
        let line = &text[ls..le];
        found.clear();
        secrets_in(line, SECRET_TRIGGERS.tags(line), Mode::Redact, &mut found);
        at = le + 1;
        for m in &found {
            edits.push(Edit {
                start: ls + m.start,
                end: ls + m.end,
                with: With::Marker(m.kind),
            });
            if m.kind == "private-key" && !RE_PKEY_END.is_match(&line[m.start..]) {
                at = mask_key_body(text, le + 1, edits);
            }
        }
    }
}

fn is_base64_run(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
}

/// Masks the lines of a PEM private key body that follow its header (base64 lines, the
/// `Proc-Type`/`DEK-Info` headers of encrypted keys, up to and including the END line).
/// Returns where scanning may resume.
fn mask_key_body(text: &str, mut pos: usize, edits: &mut Vec<Edit>) -> usize {
    let b = text.as_bytes();
    let mut lines = 0;
    while pos < b.len() && lines < 512 {
        lines += 1;
        let end = memchr::memchr(b'\n', &b[pos..]).map_or(b.len(), |p| pos + p);
        let line = &text[pos..end];
        let trimmed = line.trim();
        let offset = pos + (line.len() - line.trim_start().len());
        let mark = |s: usize, e: usize, edits: &mut Vec<Edit>| {
            edits.push(Edit {
                start: s,
                end: e,
                with: With::Marker("private-key"),
            });
        };
        if let Some(m) = RE_PKEY_END.find(line) {
            mark(offset, pos + m.end(), edits);
            return end + 1;
        }
        if trimmed.is_empty() {
            // Encrypted PEM keys have one empty line after their headers.
            pos = end + 1;
            continue;
        }
        if is_base64_run(trimmed)
            || trimmed.starts_with("Proc-Type:")
            || trimmed.starts_with("DEK-Info:")
        {
            mark(offset, offset + trimmed.len(), edits);
        } else {
            // A log prefix before the base64 (e.g. `app_1 | MIIE…`).
            let last = trimmed.rsplit([' ', '|', '\t']).next().unwrap_or("");
            if last.len() >= 40 && is_base64_run(last) {
                let s = offset + trimmed.len() - last.len();
                mark(s, s + last.len(), edits);
            } else {
                return pos;
            }
        }
        pos = end + 1;
    }
    pos
}

/// The first ASCII digit at or after `i` (or `b.len()`), eight bytes at a time.
fn next_digit(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let low = w & !HIGH;
        // Per byte: ≥ b'0' and not ≥ b':' and ASCII.
        let digits = (low + ONES * (0x80 - 0x30)) & !(low + ONES * (0x80 - 0x3a)) & !w & HIGH;
        if digits != 0 {
            return i + (digits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !b[i].is_ascii_digit() {
        i += 1;
    }
    i
}

fn personal_data_edits(text: &str, edits: &mut Vec<Edit>) {
    let b = text.as_bytes();
    for at in memchr::memchr_iter(b'@', b) {
        if let Some((s, e)) = url_password(b, at) {
            if !is_placeholder(&text[s..e]) {
                edits.push(Edit {
                    start: s,
                    end: e,
                    with: With::Marker("url-password"),
                });
            }
            continue;
        }
        if let Some((s, e)) = email_around(b, at) {
            edits.push(Edit {
                start: s,
                end: e,
                with: With::Marker("email"),
            });
        }
    }
    let mut next = 0;
    for at in memchr::memchr_iter(b':', b) {
        if at < next {
            continue;
        }
        let (run_end, found) = ipv6_around(text, at);
        if let Some((s, e, masked)) = found {
            edits.push(Edit {
                start: s,
                end: e,
                with: With::Text(masked),
            });
        }
        // Every colon of this run gives the same answer.
        next = run_end;
    }
    let n = b.len();
    let mut i = 0;
    while i < n {
        if !b[i].is_ascii_digit() {
            i = next_digit(b, i + 1);
            continue;
        }
        let start = i;
        while i < n && b[i].is_ascii_digit() {
            i += 1;
        }
        if !ipv4_may_start(b, start) {
            continue;
        }
        let run = i - start;
        let next = b.get(i).copied();
        if run <= 3 && next == Some(b'.') {
            if let Some((end, last)) = ipv4_at(b, start) {
                edits.push(Edit {
                    start: last,
                    end,
                    with: With::X,
                });
                i = end;
            }
        } else if run >= 13
            || (run == 4
                && matches!(next, Some(b' ' | b'-'))
                && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            if let Some(end) = card_at(b, start) {
                edits.push(Edit {
                    start,
                    end,
                    with: With::Marker("card"),
                });
                i = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redact(s).into_owned()
    }

    fn kinds(line: &str) -> Vec<&'static str> {
        find_secrets(line).into_iter().map(|m| m.kind).collect()
    }

    #[test]
    fn clean_text_is_borrowed() {
        let line = "2025-11-06T10:45:00Z INFO Started server in 1.2s, version 3.4.1 build 1702";
        assert!(matches!(redact(line), Cow::Borrowed(_)));
        let hadoop = "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Executing with tokens:";
        assert!(matches!(redact(hadoop), Cow::Borrowed(_)));
        assert!(matches!(redact(""), Cow::Borrowed(_)));
    }

    #[test]
    fn aws_keys() {
        let line = "export AWS_ACCESS_KEY_ID=AKIAZ3MQXW7R2PLK4T5N";
        assert_eq!(
            r(line),
            "export AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key]"
        );
        assert_eq!(kinds(line), vec!["aws-access-key"]);
        let secret = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9vTq3LmN";
        assert_eq!(
            r(secret),
            "aws_secret_access_key = [REDACTED:aws-secret-key]"
        );
        assert_eq!(kinds(secret), vec!["aws-secret-key"]);
        // The documentation example key is not a secret.
        let doc = "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE";
        assert!(find_secrets(doc).is_empty());
        assert!(matches!(redact(doc), Cow::Borrowed(_)));
        let doc_secret = "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert!(find_secrets(doc_secret).is_empty());
    }

    #[test]
    fn vendor_tokens() {
        let cases = [
            (
                "token ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5 used",
                "github-token",
            ),
            (
                "GITHUB_TOKEN=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF",
                "github-token",
            ),
            ("remote: glpat-x8Kd2mQ9vL4nR7tY1wZ3 ok", "gitlab-token"),
            (
                "slack webhook xoxb-2048-1234567890-AbCdEfGhIjKlMnOp",
                "slack-token",
            ),
            (
                "charging with sk_live_51H8aBcD3eF6gH9iJ2kL5mN8 now",
                "stripe-key",
            ),
            (
                "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY loaded",
                "google-api-key",
            ),
        ];
        for (line, kind) in cases {
            assert_eq!(kinds(line), vec![kind], "{line}");
            let red = r(line);
            assert!(red.contains(&format!("[REDACTED:{kind}]")), "{red}");
        }
    }

    #[test]
    fn private_key_block_across_lines() {
        let text = "loading key\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----\nkey loaded\n";
        let red = r(text);
        assert_eq!(
            red,
            "loading key\n[REDACTED:private-key]\n[REDACTED:private-key]\n[REDACTED:private-key]\n[REDACTED:private-key]\nkey loaded\n"
        );
        assert_eq!(
            kinds("-----BEGIN OPENSSH PRIVATE KEY-----"),
            vec!["private-key"]
        );
        // A single-line JSON key (service account files) is masked to its END marker.
        let json = r#"{"private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n", "client_email": "x"}"#;
        let red = r(json);
        assert!(red.contains("[REDACTED:private-key]"), "{red}");
        assert!(!red.contains("MIIEvQ"), "{red}");
    }

    #[test]
    fn jwt_and_authorization() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let line = format!("GET /api/me Authorization: Bearer {jwt}");
        assert_eq!(r(&line), "GET /api/me Authorization: Bearer [REDACTED:jwt]");
        let opaque = "Authorization: Bearer 8f14e45fceea167a5a36dedd4bea2543";
        assert_eq!(r(opaque), "Authorization: Bearer [REDACTED:authorization]");
        assert_eq!(kinds(&format!("cookie session={jwt}")), vec!["jwt"]);
        let basic = "Authorization: Basic dXNlcjpzM2NyZXRQYXNz";
        assert_eq!(r(basic), "Authorization: Basic [REDACTED:authorization]");
        assert!(find_secrets("authorization: successful for user bob").is_empty());
    }

    #[test]
    fn url_credentials_keep_user_and_host() {
        let line = "connecting to postgres://app:S3cr3t-Pa55@db.internal:5432/orders";
        assert_eq!(
            r(line),
            "connecting to postgres://app:[REDACTED:url-password]@db.internal:5432/orders"
        );
        assert_eq!(kinds(line), vec!["url-password"]);
        assert!(find_secrets("https://example.com:8443/path").is_empty());
    }

    #[test]
    fn generic_assignments_and_placeholders() {
        let line = r#"config: {"db_password": "Xq9#vL2!mR7p", "api_key": "a8f5f167f44f4964e6c998dee827110c"}"#;
        assert_eq!(kinds(line), vec!["password", "api-key"]);
        let red = r(line);
        assert!(
            red.contains(r#""db_password": "[REDACTED:password]""#),
            "{red}"
        );
        assert!(red.contains(r#""api_key": "[REDACTED:api-key]""#), "{red}");
        for clean in [
            "password=changeme",
            "token=<your-token>",
            "API_KEY=${API_KEY}",
            "secret=xxxxxxxx",
            "password: ****",
            "api_key=dummy",
            "token=test",
            "password=null",
            "secret=none",
            "token=Token{a64f992 ActivityRecord{de9231d u0 com.tencent.qt.qtl}}",
            // Loghub Android / Mac: object and service names, not credentials.
            "W ActivityManager: Bad activity token: android.os.BinderProxy@2bd79ce",
            "UserEventAgent[258]: Could not get event name for stream/token: com.apple.xpc.activity/4505: 132",
            "token_file=/var/run/secrets/kubernetes.io/serviceaccount/token",
        ] {
            assert!(find_secrets(clean).is_empty(), "{clean}");
            assert!(matches!(redact(clean), Cow::Borrowed(_)), "{clean}");
        }
        // A low-entropy password is not reported but still masked.
        assert!(find_secrets("password=hunter22").is_empty());
        assert_eq!(r("password=hunter22"), "password=[REDACTED:password]");
        // A low-entropy token value is neither.
        assert!(find_secrets("token=expired").is_empty());
    }

    #[test]
    fn uuids_shas_and_versions_are_not_secrets() {
        for line in [
            "request 550e8400-e29b-41d4-a716-446655440000 done",
            "deployed commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
            "agora-domain v0.1.0 (rustc 1.85.0)",
            "sha256:9b2f6e1c4d8a7f3e5b0c2d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a",
        ] {
            assert!(find_secrets(line).is_empty(), "{line}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            r("invite sent to jane.doe+test@example.co.uk."),
            "invite sent to [REDACTED:email]."
        );
        assert_eq!(r("user=bob@corp.example.com"), "user=[REDACTED:email]");
        // Java object ids and user@host are not e-mail addresses.
        assert!(matches!(
            redact("BinderProxy@2bd79ce leaked; msrabi@msra-sa-41:9000"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            redact("git@github.com:org/repo.git"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn ipv4_truncated_to_24() {
        assert_eq!(
            r("Failed password for root from 192.168.1.100 port 22"),
            "Failed password for root from 192.168.1.x port 22"
        );
        assert_eq!(
            r("10.251.73.220:50010 is added"),
            "10.251.73.x:50010 is added"
        );
        assert_eq!(
            r("[client 222.166.160.184] forbidden"),
            "[client 222.166.160.x] forbidden"
        );
        // Timestamps, durations, dates and longer dotted versions are not addresses.
        for clean in [
            "2005-06-03-15.42.50.675872 RAS KERNEL",
            "took 1.053312 secs",
            "2005.06.03 R02-M1-N0",
            "v6.1.7601.23505 loaded",
            "[10.30 16:49:06] chrome.exe",
            "1.2.3.4.5 is a version",
            "999.1.1.1",
        ] {
            assert!(matches!(redact(clean), Cow::Borrowed(_)), "{clean}");
        }
        // Idempotent.
        assert_eq!(r("192.168.1.x"), "192.168.1.x");
    }

    #[test]
    fn ipv6_keeps_three_hextets() {
        assert_eq!(
            r("from 2001:db8:85a3::8a2e:370:7334 port 22"),
            "from 2001:db8:85a3::x port 22"
        );
        assert_eq!(
            r("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:443"),
            "[2001:db8:85a3::x]:443"
        );
        for clean in [
            "10:45:00",
            "std::vector<int>",
            "00:1a:2b:3c:4d:5e",
            "Foo::bar()",
            "::1",
        ] {
            assert!(matches!(redact(clean), Cow::Borrowed(_)), "{clean}");
        }
        assert_eq!(r("2001:db8:85a3::x"), "2001:db8:85a3::x");
    }

    #[test]
    fn cards_need_issuer_and_luhn() {
        assert_eq!(
            r("card=4111111111111111 charged"),
            "card=[REDACTED:card] charged"
        );
        assert_eq!(r("pan 4111 1111 1111 1111 ok"), "pan [REDACTED:card] ok");
        assert_eq!(r("amex 3782-822463-10005"), "amex [REDACTED:card]");
        for clean in [
            "card=4111111111111112",         // Luhn fails
            "blk_-6952295868487656571 done", // HDFS block id
            "ts=1445144423722",              // epoch millis
            "id 1234567890123456",           // no issuer prefix
        ] {
            assert!(matches!(redact(clean), Cow::Borrowed(_)), "{clean}");
        }
    }

    #[test]
    fn candidate_lines_same_with_or_without_a_shared_text() {
        let text = "a\nx password=Zr8vQ2mX9k!\n\nno\r\nAKIA token here\nlast eyJ.eyJhbGc";
        let split: Vec<&str> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        let owned: Vec<String> = split.iter().map(|l| l.to_string()).collect();
        let copies: Vec<&str> = owned.iter().map(String::as_str).collect();
        let whole = SECRET_TRIGGERS.candidate_lines(text, &split);
        assert_eq!(whole, SECRET_TRIGGERS.candidate_lines(text, &copies));
        assert_eq!(whole.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1, 4, 5]);
        let url = "x\njdbc:postgresql://app:Zr8vQ2mX9k@db/x\nmail bob@example.com\n";
        let lines: Vec<&str> = url.lines().collect();
        assert_eq!(secret_candidate_lines(url, &lines), vec![1]);
    }

    /// Checks [`lines_redact_may_change`] against [`redact`] on every line of `text`: where it
    /// says a line cannot change, `redact` returns it borrowed. Returns (lines, flagged,
    /// changed).
    fn check_may_change(text: &str) -> (usize, usize, usize) {
        let log = crate::logmarket::analysers::LogText::new(text);
        let may_change = lines_redact_may_change(text, &log.lines);
        assert_eq!(may_change.len(), log.lines.len());
        let mut changed = 0;
        for (line, &flag) in log.lines.iter().zip(&may_change) {
            if let Cow::Owned(red) = redact(line) {
                changed += 1;
                assert!(flag, "not flagged, but redacted: {line:?} -> {red:?}");
            }
        }
        let flagged = may_change.iter().filter(|f| **f).count();
        (log.lines.len(), flagged, changed)
    }

    #[test]
    fn may_change_covers_every_line_redact_changes() {
        let text = "192.168.1.100\r\nfrom 10.0.0.1\nbob@example.com\r\n\
                    pan 4111 1111 1111 1111\n4111-1111-1111-1111\r\nx 2001:db8::1\r\n\
                    password=Zr8vQ2mX9k!\n1.2.3.4\r1.2.3.4\n\r\n\n-----BEGIN RSA PRIVATE KEY-----\n\
                    MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n\
                    -----END RSA PRIVATE KEY-----\nhttps://app:S3cr3t@db/x\nclean line 12:30:05\n\
                    10.1.2.3\r";
        let (lines, flagged, changed) = check_may_change(text);
        assert_eq!(changed, 11, "every personal-data and secret line");
        assert!(
            flagged >= changed && flagged < lines,
            "{flagged} of {lines}"
        );
        // Lines that are not the text's own lines: every line may change.
        let lines = ["1.2.3.4", "5"];
        assert_eq!(lines_redact_may_change("1.2.3.4.5", &lines), vec![true; 2]);
        let owned = [String::from("bob@example.com")];
        let copies: Vec<&str> = owned.iter().map(String::as_str).collect();
        assert_eq!(lines_redact_may_change("x", &copies), vec![true]);
        assert!(lines_redact_may_change("", &[]).is_empty());
    }

    /// Every line of every file under the shared data folder (`../shared/data` beside the
    /// repository: CI logs of 25 languages, Loghub's 12 systems, request payloads), gzip logs
    /// read through the `gzip` command as the domain crate has no decompressor. Skipped when
    /// the folder is absent.
    #[test]
    fn may_change_covers_every_line_redact_changes_on_the_shared_data() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
        if !root.is_dir() {
            eprintln!("skipped: no {}", root.display());
            return;
        }
        let mut dirs = vec![root];
        let mut files = Vec::new();
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read data folder") {
                let path = entry.expect("data folder entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files.sort();
        let (mut lines, mut flagged, mut changed) = (0, 0, 0);
        for path in &files {
            let bytes = if path.extension().is_some_and(|e| e == "gz") {
                let out = std::process::Command::new("gzip")
                    .arg("-dc")
                    .arg(path)
                    .output()
                    .expect("run gzip");
                assert!(out.status.success(), "gzip -dc {}", path.display());
                out.stdout
            } else {
                std::fs::read(path).expect("read data file")
            };
            let (l, f, c) = check_may_change(&String::from_utf8_lossy(&bytes));
            lines += l;
            flagged += f;
            changed += c;
        }
        eprintln!(
            "{} files, {lines} lines: {flagged} may change, {changed} changed",
            files.len()
        );
        assert!(changed > 0 && flagged < lines / 2, "the filter filters");
    }

    #[test]
    fn digit_skipping_matches_a_plain_scan() {
        let text = "abcdefghijklmnop7qrstuvwxyzé€ABCDEFGHIJ9KLMNOP:;<=>?@/.-1";
        let b = text.as_bytes();
        for i in 0..=b.len() {
            let naive = (i..b.len())
                .find(|&k| b[k].is_ascii_digit())
                .unwrap_or(b.len());
            assert_eq!(next_digit(b, i), naive, "from {i}");
        }
    }

    #[test]
    fn entropy_values() {
        assert!(entropy("aaaaaaaa") < 0.01);
        assert!((entropy("abcdefgh") - 3.0).abs() < 1e-9);
    }
}
