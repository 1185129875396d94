//! Log redaction: every formatted log line passes through [`redact`] before it is written, so
//! API keys, bearer tokens, passwords and secrets, e-mail addresses and IP addresses never reach
//! the logs, whatever code logged them. The server's own addresses stay readable: the values of
//! the fields `addr`, `listen`, `store` and `host` (an operator needs to see where the server
//! listens and which database it uses) lose only their credentials.

use std::borrow::Cow;
use std::io::Write;
use std::sync::OnceLock;

use regex::Regex;
use tracing_subscriber::fmt::MakeWriter;

struct Rule {
    pattern: Regex,
    replacement: &'static str,
}

fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let rule = |p: &str, replacement| Rule {
            pattern: Regex::new(p).expect("redaction patterns are valid"),
            replacement,
        };
        vec![
            rule(r"agora_[0-9A-Za-z]+_[0-9a-f]{16,}", "agora_***"),
            rule(r"(?i)\bbearer\s+[^\s,;]+", "Bearer ***"),
            rule(r"(://[^:/@\s]+:)[^@\s]+@", "${1}***@"),
            rule(
                r#"(?i)\b(password|passwd|secret|token|api[_-]?key|authorization)(["']?\s*[:=]\s*["']?)[^\s"',;}]+"#,
                "${1}${2}***",
            ),
            rule(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "***@***"),
            rule(r"\b\d{1,3}(\.\d{1,3}){3}\b", "*.*.*.*"),
            // IPv6, full or with `::` (a bare `12:34:56` time is neither).
            rule(r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b", "*:*:*"),
            rule(
                r"\b(?:[0-9a-fA-F]{1,4}:){1,6}:(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){0,5})?",
                "*:*:*",
            ),
        ]
    })
}

/// The rules that remove credentials (tokens, bearer values, URL passwords, `secret=` values):
/// the first four of [`rules`].
const CREDENTIAL_RULES: usize = 4;

/// Fields whose values are the server's own addresses, in text (`addr=…`) or JSON (`"addr":"…"`).
fn own_address_fields() -> &'static Regex {
    static FIELDS: OnceLock<Regex> = OnceLock::new();
    FIELDS.get_or_init(|| {
        Regex::new(r#"(?:\b(?:addr|listen|store|host)=|"(?:addr|listen|store|host)":")[^\s",}]+"#)
            .expect("the address-field pattern is valid")
    })
}

/// The text with every secret and personal datum replaced; the server's own address fields
/// keep their addresses and lose only credentials.
pub fn redact(text: &str) -> Cow<'_, str> {
    if !own_address_fields().is_match(text) {
        return apply(text, rules());
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in own_address_fields().find_iter(text) {
        out.push_str(&apply(&text[last..m.start()], rules()));
        out.push_str(&apply(m.as_str(), &rules()[..CREDENTIAL_RULES]));
        last = m.end();
    }
    out.push_str(&apply(&text[last..], rules()));
    Cow::Owned(out)
}

fn apply<'t>(text: &'t str, rules: &[Rule]) -> Cow<'t, str> {
    let mut out = Cow::Borrowed(text);
    for rule in rules {
        if rule.pattern.is_match(&out) {
            out = Cow::Owned(
                rule.pattern
                    .replace_all(&out, rule.replacement)
                    .into_owned(),
            );
        }
    }
    out
}

/// A `MakeWriter` that buffers each log line and writes it redacted to standard error.
#[derive(Clone, Copy, Default)]
pub struct RedactingStderr;

pub struct LineBuffer(Vec<u8>);

impl Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().write_all(redact(&text).as_bytes());
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = LineBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer(Vec::with_capacity(256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_personal_data_are_removed() {
        let cases = [
            (
                "key agora_4b5195742b6f7065_dc511cefa284488484c0eee673ae5459 used",
                "key agora_*** used",
            ),
            (
                "Authorization: Bearer abc.def.ghi",
                "Authorization: *** ***",
            ),
            ("sent bearer xyz123, then", "sent Bearer ***, then"),
            (
                "postgres://agora:hunter2@db:5432/x",
                "postgres://agora:***@db:5432/x",
            ),
            ("password=hunter2 user=bob", "password=*** user=bob"),
            (
                r#"{"api_key": "k-123", "n": 1}"#,
                r#"{"api_key": "***", "n": 1}"#,
            ),
            ("mail alice.smith@example.co.uk now", "mail ***@*** now"),
            ("from 203.0.113.7:443", "from *.*.*.*:443"),
            (
                "v6 2001:db8::1 and fe80:0:0:0:1:2:3:4",
                "v6 *:*:* and *:*:*",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    #[test]
    fn the_servers_own_addresses_stay_readable_without_credentials() {
        let line = "INFO agora: listening addr=127.0.0.1:3000 store=postgres://agora:hunter2@10.0.0.5:5432/ledger peer 10.1.2.3";
        assert_eq!(
            redact(line),
            "INFO agora: listening addr=127.0.0.1:3000 store=postgres://agora:***@10.0.0.5:5432/ledger peer *.*.*.*"
        );
        let json = r#"{"fields":{"addr":"127.0.0.1:3000","client":"203.0.113.9"}}"#;
        assert_eq!(
            redact(json),
            r#"{"fields":{"addr":"127.0.0.1:3000","client":"*.*.*.*"}}"#
        );
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let line =
            "2026-11-21T21:38:18.572388Z INFO agora_projections::engine: applied 500 events \
                    at position 1234 in 3.5 ms";
        assert!(matches!(redact(line), Cow::Borrowed(_)));
    }
}
