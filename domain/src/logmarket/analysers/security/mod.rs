//! Security Guardian: authentication failures, brute force, unauthorized access, SQL injection
//! and XSS payloads in requests, secrets written to logs, and suspicious IP addresses, by
//! deterministic rules over known log formats (sshd/PAM, web access logs, database servers,
//! AWS, application logs).
//!
//! One keyword prefilter pass per line ([`Triggers`]) plus the redaction module's secret
//! prefilter pick the candidate lines; regular expressions run only on those. Thresholds come
//! from [`AnalyserConfig`]. Findings are aggregated per source (IP address, else user) or per
//! resource with an `occurrences` detail, and each kind is capped at
//! [`MAX_INSIGHTS_PER_KIND`](crate::logmarket::insight::MAX_INSIGHTS_PER_KIND).
//! `docs/analysers.md` documents every rule.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use chrono::NaiveDate;
use memchr::memmem;
use regex::Regex;

pub mod decode;
pub mod injection;

use self::injection::Finding;
use super::cap_per_kind;
use super::performance::{insight, set};
use super::{AnalyserConfig, LogText};
use crate::logmarket::insight::{Insight, InsightKind, Severity};
use crate::logmarket::redact::{
    find_ipv4, find_secrets, secret_candidate_lines, SecretMatch, Triggers, CRITICAL_SECRET_KINDS,
};

/// A source answering 404 to at least this many distinct paths is scanning.
pub const SCAN_DISTINCT_404_PATHS: usize = 10;

// ---------------------------------------------------------------------------------------------
// HTTP request lines (shared with the Performance Analyzer)
// ---------------------------------------------------------------------------------------------

/// An HTTP request found in a log line (`"GET /x HTTP/1.1" 200`, `GET /x 200 12ms`,
/// `Started GET "/x"`, `… GET http://host/x - 200 -`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpRequest<'a> {
    pub(crate) method: &'a str,
    /// Path and query as logged (or an absolute URL).
    pub(crate) target: &'a str,
    /// The response status when the line has it right after the request.
    pub(crate) status: Option<u16>,
    /// Byte offset of the method.
    pub(crate) start: usize,
    /// Byte offset after the request (and status when present).
    pub(crate) end: usize,
}

impl<'a> HttpRequest<'a> {
    /// The path without scheme, host, query or fragment.
    pub(crate) fn path(&self) -> &'a str {
        let t = self.target;
        let t = match t.find("://") {
            Some(p) => {
                let rest = &t[p + 3..];
                rest.find('/').map_or("/", |q| &rest[q..])
            }
            None => t,
        };
        t.split(['?', '#']).next().unwrap_or(t)
    }
}

const METHODS: [&str; 7] = [
    "GET ", "POST ", "PUT ", "DELETE ", "PATCH ", "HEAD ", "OPTIONS ",
];

static METHOD_FINDERS: LazyLock<Vec<memmem::Finder<'static>>> =
    LazyLock::new(|| METHODS.iter().map(memmem::Finder::new).collect());

/// The first HTTP request in the line: a method token followed by a path or URL.
pub(crate) fn parse_http_request(line: &str) -> Option<HttpRequest<'_>> {
    let b = line.as_bytes();
    let mut best: Option<HttpRequest<'_>> = None;
    for (k, finder) in METHOD_FINDERS.iter().enumerate() {
        for p in finder.find_iter(b) {
            if best.as_ref().is_some_and(|r| r.start < p) {
                break;
            }
            if let Some(req) = request_at(line, p, METHODS[k].len() - 1) {
                best = Some(req);
                break;
            }
        }
    }
    best
}

fn request_at(line: &str, p: usize, mlen: usize) -> Option<HttpRequest<'_>> {
    let b = line.as_bytes();
    if p > 0 && !matches!(b[p - 1], b' ' | b'"' | b'[' | b'\t' | b'\'' | b'(' | b'=') {
        return None;
    }
    let mut i = p + mlen;
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    let quoted = i < b.len() && b[i] == b'"';
    if quoted {
        i += 1;
    }
    let ts = i;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'"' {
        i += 1;
    }
    let target = &line[ts..i];
    if !(target.starts_with('/') || target.starts_with("http://") || target.starts_with("https://"))
    {
        return None;
    }
    if i < b.len() && b[i] == b'"' {
        i += 1;
    }
    let mut j = i;
    while j < b.len() && b[j] == b' ' {
        j += 1;
    }
    if line[j..].starts_with("HTTP/") {
        while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'"' {
            j += 1;
        }
        if j < b.len() && b[j] == b'"' {
            j += 1;
        }
        i = j;
    }
    // The status: `" 200`, ` 200 `, ` - 200 -`, ` status: 200`.
    let mut k = i;
    loop {
        while k < b.len() && (b[k] == b' ' || b[k] == b'"') {
            k += 1;
        }
        let rest = &line[k..];
        if rest.starts_with("- ") {
            k += 2;
        } else if rest.starts_with("status: ") || rest.starts_with("status=") {
            k += 7;
        } else {
            break;
        }
    }
    let mut status = None;
    let mut end = i;
    if k + 3 <= b.len()
        && b[k..k + 3].iter().all(u8::is_ascii_digit)
        && b.get(k + 3)
            .is_none_or(|c| !c.is_ascii_digit() && *c != b'.')
    {
        let s = (u16::from(b[k] - b'0') * 100)
            + (u16::from(b[k + 1] - b'0') * 10)
            + u16::from(b[k + 2] - b'0');
        if (100..=599).contains(&s) {
            status = Some(s);
            end = k + 3;
        }
    }
    Some(HttpRequest {
        method: &line[p..p + mlen],
        target,
        status,
        start: p,
        end,
    })
}

// ---------------------------------------------------------------------------------------------
// Prefilter and patterns
// ---------------------------------------------------------------------------------------------

const S_AUTH: u32 = 1;
const S_DENY: u32 = 1 << 1;
const S_HTTP: u32 = 1 << 2;
const S_PARAMS: u32 = 1 << 3;
const S_BAN: u32 = 1 << 4;
const S_NOTFOUND: u32 = 1 << 5;

static TRIGGERS: LazyLock<Triggers> = LazyLock::new(|| {
    Triggers::new(&[
        ("ailed password", S_AUTH),
        ("ailed publickey", S_AUTH),
        ("ailed keyboard", S_AUTH),
        ("ailed none", S_AUTH),
        ("uthentication fail", S_AUTH),
        ("UTHENTICATION FAIL", S_AUTH),
        ("nvalid user", S_AUTH),
        ("ogin failed", S_AUTH),
        ("OGIN FAILED", S_AUTH),
        ("ailed login", S_AUTH),
        ("AILED LOGIN", S_AUTH),
        ("ogin failure", S_AUTH),
        ("nvalid credentials", S_AUTH),
        ("nvalid Credentials", S_AUTH),
        ("NVALID CREDENTIALS", S_AUTH),
        ("nvalid password", S_AUTH),
        ("failed to log on", S_AUTH),
        ("uthentication attempts", S_AUTH),
        ("ccess denied", S_DENY),
        ("ccess Denied", S_DENY),
        ("CCESS DENIED", S_DENY),
        ("ermission denied", S_DENY),
        ("ERMISSION DENIED", S_DENY),
        ("denied by server", S_DENY),
        ("orbidden", S_DENY),
        ("ORBIDDEN", S_DENY),
        ("nauthorized", S_DENY),
        ("NAUTHORIZED", S_DENY),
        ("ot authorized", S_DENY),
        ("OT AUTHORIZED", S_DENY),
        ("GET ", S_HTTP),
        ("POST ", S_HTTP),
        ("PUT ", S_HTTP),
        ("DELETE ", S_HTTP),
        ("PATCH ", S_HTTP),
        ("HEAD ", S_HTTP),
        ("OPTIONS ", S_HTTP),
        ("arameters: ", S_PARAMS),
        ("params=", S_PARAMS),
        ("params: ", S_PARAMS),
        ("query_string", S_PARAMS),
        ("ser input", S_PARAMS),
        (" Ban ", S_BAN),
        ("banned", S_BAN),
        ("Banned", S_BAN),
        ("blocked", S_BAN),
        ("Blocked", S_BAN),
        ("BLOCKED", S_BAN),
        ("lacklist", S_BAN),
        ("ile does not exist", S_NOTFOUND),
    ])
});

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("security regex compiles")
}

static RE_SSHD_FAILED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"Failed (password|publickey|keyboard-interactive(?:/pam)?|none|hostbased) for (?:invalid user )?(\S*) from (\S+)",
    )
});
static RE_SSHD_INVALID: LazyLock<Regex> = LazyLock::new(|| re(r"Invalid user (\S*) from (\S+)"));
static RE_PAM: LazyLock<Regex> =
    LazyLock::new(|| re(r"authentication failure;[^\n]*?\brhost=(\S*)(?:\s+user=(\S+))?"));
static RE_MYSQL_DENIED: LazyLock<Regex> =
    LazyLock::new(|| re(r"Access denied for user '([^']*)'@'([^']*)'"));
static RE_MSSQL: LazyLock<Regex> =
    LazyLock::new(|| re(r"Login failed for user '([^']*)'[^\n]*?(?:\[CLIENT: ([^\]]+)\])?$"));
static RE_PG_AUTH: LazyLock<Regex> =
    LazyLock::new(|| re(r#"password authentication failed for user "([^"]+)""#));
static RE_GENERIC_AUTH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(login failed|failed login|login failure|authentication failed|authentication failure|invalid credentials|invalid password|failed to log on)\b",
    )
});
static RE_USER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(?:\bfor\s+(?:user\s+)?|\buser(?:name)?\s*[=:]\s*|\baccount(?: name)?\s*[=:]\s*)['"]?([\w.@+-]{2,64})"#,
    )
});
static RE_AWS_DENY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:User: (\S+) is )?not authorized to perform:?\s*([\w:*-]+)(?:\s+on resource:?\s*([^\s,]+))?",
    )
});
static RE_USER_NOT_AUTH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\buser\s+['"]?([\w.@-]+)['"]?\s+is not authori[sz]ed(?:\s+to\s+(?:perform|access|view|call|use)\s*:?\s*([^\s,.]+))?"#,
    )
});
static RE_ABS_PATH: LazyLock<Regex> = LazyLock::new(|| re(r#"(?:^|[\s:'"=\[(])(/[\w.\-/~%+]+)"#));
static RE_DENY_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)access denied|permission denied|denied by server configuration|forbidden|unauthori[sz]ed|not authori[sz]ed",
    )
});

static RE_TS_ISO: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,]\d+)?\s*(Z|[+-]\d{2}:?\d{2})?")
});
static RE_TS_CLF: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\[(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\s*([+-]\d{4}))?\]")
});
static RE_TS_CTIME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"[A-Z][a-z]{2} ([A-Z][a-z]{2})\s+(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)? (\d{4})")
});
static RE_TS_SYSLOG: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?:<\d+>)?(?:\d+\s+)?([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})\b")
});

// ---------------------------------------------------------------------------------------------
// Analyser
// ---------------------------------------------------------------------------------------------

pub fn analyse(log: &LogText<'_>, config: &AnalyserConfig) -> Vec<Insight> {
    let mut st = State::default();
    for i in secret_candidate_lines(log.text, &log.lines) {
        let line = log.lines[i];
        let secrets = find_secrets(line);
        if !secrets.is_empty() {
            st.secrets(i, line, &secrets);
        }
    }
    for (i, bits) in TRIGGERS.candidate_lines(log.text, &log.lines) {
        // Source code quoted by a compiler or test runner (`> 40 |   …toThrow(Forbidden…)`)
        // is not an event. Secrets in it are still reported (above).
        if !is_code_frame(log.bodies[i]) {
            st.line(i, log.lines[i], bits);
        }
    }
    cap_per_kind(st.finish(log, config), &std::collections::BTreeMap::new())
}

/// A source line quoted in a code frame: `  40 | code`, `> 40 | code` (Jest, Babel, rustc,
/// gcc, tsc --pretty), after the line's timestamp prefix.
fn is_code_frame(body: &str) -> bool {
    let t = body.trim_start();
    let t = t.strip_prefix('>').map_or(t, str::trim_start);
    let d = t.bytes().take_while(u8::is_ascii_digit).count();
    d > 0 && t[d..].trim_start().starts_with('|')
}

struct AuthEvent {
    line: usize,
    ts: Option<i64>,
    /// 0: a rejected attempt (`Failed password`, 401 on a login endpoint, …); 1: PAM's
    /// `authentication failure` (logged alongside sshd's line); 2: sshd's `Invalid user`
    /// (logged before it). Only the lowest family seen for a source is counted, so one
    /// attempt logged three ways counts once.
    family: u8,
}

#[derive(Default)]
struct AuthSource {
    events: Vec<AuthEvent>,
    users: BTreeSet<String>,
    methods: BTreeSet<&'static str>,
    is_ip: bool,
}

struct Deny {
    first_line: usize,
    count: u32,
    method: &'static str,
    resource: String,
    resources: BTreeSet<String>,
    status: Option<u16>,
    sources: BTreeSet<String>,
    first_source: Option<String>,
    user: Option<String>,
    high: bool,
}

struct Attack {
    first_line: usize,
    /// Lines with a finding of this kind (a line counts once however many values matched).
    lines: BTreeSet<usize>,
    signatures: BTreeSet<&'static str>,
    severity: Severity,
    status: Option<u16>,
    path: String,
}

#[derive(Default)]
struct State {
    secret_insights: Vec<Insight>,
    auth: BTreeMap<String, AuthSource>,
    deny: BTreeMap<(String, String), Deny>,
    attacks: BTreeMap<(InsightKind, String), Attack>,
    /// Per IP: first line, distinct paths answered 404.
    not_found: BTreeMap<String, (usize, BTreeSet<String>)>,
    /// Per IP: what the log says was done to it.
    actions: BTreeMap<String, &'static str>,
    /// Source of the last `Started …` request line (Rails), for parameter lines.
    last_request_source: Option<String>,
    clock: Clock,
}

impl State {
    fn secrets(&mut self, i: usize, line: &str, found: &[SecretMatch]) {
        let masked = mask(line, found);
        let mut kinds: Vec<&'static str> = Vec::new();
        for m in found {
            if !kinds.contains(&m.kind) {
                kinds.push(m.kind);
            }
        }
        for kind in kinds {
            let severity = if CRITICAL_SECRET_KINDS.contains(&kind) {
                Severity::Critical
            } else {
                Severity::High
            };
            let title = format!("{} exposed in log", secret_label(kind));
            let mut ins = insight(InsightKind::ExposedSecret, severity, title, i, &masked);
            ins.impact = "Anyone who can read these logs (CI output, log storage, support \
                          tools, this marketplace) can use the credential until it is rotated"
                .to_owned();
            ins.root_cause =
                Some("The application or a tool logs the credential in clear text".to_owned());
            ins.fix =
                "Rotate the credential now and remove it from logs (mask at the logger)".to_owned();
            set(&mut ins, "secretKind", kind);
            set(&mut ins, "method", "Credential written to a log line");
            set(
                &mut ins,
                "occurrences",
                found.iter().filter(|m| m.kind == kind).count(),
            );
            self.secret_insights.push(ins);
        }
    }

    fn line(&mut self, i: usize, line: &str, bits: u32) {
        let mut handled_auth = false;
        let mut request = None;
        if bits & S_HTTP != 0 {
            request = parse_http_request(line);
            if let Some(req) = &request {
                handled_auth = self.http(i, line, req);
            }
        }
        if bits & S_PARAMS != 0 {
            self.params(i, line);
        }
        if bits & S_AUTH != 0 && !handled_auth {
            handled_auth = self.auth_line(i, line);
        }
        if bits & S_DENY != 0
            && !handled_auth
            && request.as_ref().is_none_or(|r| r.status.is_none())
        {
            self.deny_line(i, line);
        }
        if bits & S_BAN != 0 {
            if let Some(ip) = source_ip(line, None) {
                self.actions.insert(ip.to_owned(), "IP blocked");
            }
        }
        if bits & S_NOTFOUND != 0 {
            if let (Some(ip), Some(c)) = (
                source_ip(line, None),
                RE_ABS_PATH.captures(line.split("does not exist").nth(1).unwrap_or("")),
            ) {
                self.not_found
                    .entry(ip.to_owned())
                    .or_insert_with(|| (i, BTreeSet::new()))
                    .1
                    .insert(c[1].to_owned());
            }
        }
    }

    /// An HTTP request line: payloads, login failures, 401/403, 404 scanning. Returns whether
    /// the line was an authentication failure.
    fn http(&mut self, i: usize, line: &str, req: &HttpRequest<'_>) -> bool {
        let source = source_ip(line, Some(req.start)).map(str::to_owned);
        if line.contains("Started ") {
            self.last_request_source.clone_from(&source);
        }
        let src = source.clone().unwrap_or_else(|| "unknown".to_owned());
        self.payloads(i, req.target, true, req.path(), req.status, &src);
        let path = req.path();
        match req.status {
            Some(401 | 403) if is_login_path(path) => {
                self.auth_event(i, line, source.as_deref(), None, "HTTP login", 0);
                true
            }
            Some(s @ (401 | 403)) => {
                let method = if s == 401 {
                    "HTTP request without valid credentials"
                } else {
                    "HTTP request to a forbidden resource"
                };
                self.deny_event(
                    i,
                    method,
                    format!("{} {}", req.method, path),
                    Some(s),
                    source,
                    None,
                );
                false
            }
            Some(404) => {
                if let Some(ip) = source {
                    self.not_found
                        .entry(ip)
                        .or_insert_with(|| (i, BTreeSet::new()))
                        .1
                        .insert(path.to_owned());
                }
                false
            }
            _ => false,
        }
    }

    fn params(&mut self, i: usize, line: &str) {
        let Some(p) = [
            "arameters: ",
            "params=",
            "params: ",
            "query_string",
            "ser input",
        ]
        .iter()
        .filter_map(|k| line.find(k).map(|p| p + k.len()))
        .min() else {
            return;
        };
        let source = source_ip(line, None)
            .map(str::to_owned)
            .or_else(|| self.last_request_source.clone())
            .unwrap_or_else(|| "unknown".to_owned());
        self.payloads(i, &line[p..], false, "", None, &source);
    }

    /// Injection payloads in request data. `raw` is an HTTP request target (each query value
    /// decoded and classified on its own, the path checked for traversal) or logged parameters
    /// (`is_target` false). Both also get the whole-text signatures.
    fn payloads(
        &mut self,
        i: usize,
        raw: &str,
        is_target: bool,
        path: &str,
        status: Option<u16>,
        source: &str,
    ) {
        let mut found: Vec<Finding> = Vec::new();
        if is_target {
            let target = decode::decode_target(raw);
            for p in &target.params {
                found.extend(injection::classify_value(&p.value));
            }
            found.extend(injection::classify_path(&target.path));
        }
        let decoded = url_decode(raw);
        if may_hold_payload(&decoded) {
            found.extend(injection::signature_findings(&decoded.to_ascii_lowercase()));
        }
        for Finding { kind, signature } in found {
            let reached = status.is_some_and(|s| (200..300).contains(&s) || s >= 500);
            let severity = match (kind, reached, status) {
                (InsightKind::SqlInjection | InsightKind::CommandInjection, true, _) => {
                    Severity::Critical
                }
                (InsightKind::SqlInjection | InsightKind::CommandInjection, false, _) => {
                    Severity::High
                }
                (_, _, Some(200..=299)) => Severity::High,
                _ => Severity::Medium,
            };
            let a = self
                .attacks
                .entry((kind, source.to_owned()))
                .or_insert_with(|| Attack {
                    first_line: i,
                    lines: BTreeSet::new(),
                    signatures: BTreeSet::new(),
                    severity,
                    status,
                    path: path.to_owned(),
                });
            a.lines.insert(i);
            a.signatures.insert(signature);
            if severity > a.severity {
                a.severity = severity;
                a.status = status;
            }
        }
    }

    /// sshd, PAM, database and generic login failures. Returns whether the line was one.
    fn auth_line(&mut self, i: usize, line: &str) -> bool {
        if line.contains("Too many authentication failures")
            || line.contains("maximum authentication attempts")
        {
            if let Some(ip) = source_ip(line, None) {
                self.actions
                    .entry(ip.to_owned())
                    .or_insert("Connection dropped after too many failures");
            }
            return true;
        }
        if line.contains("more authentication failures") {
            return true;
        }
        if let Some(c) = RE_SSHD_FAILED.captures(line) {
            let method = match &c[1] {
                "password" => "SSH password",
                "publickey" => "SSH public key",
                "none" => "SSH (no credentials)",
                "hostbased" => "SSH host-based",
                _ => "SSH keyboard-interactive",
            };
            let ip = ip_token(&c[3]);
            self.auth_event(i, line, ip, Some(&c[2]), method, 0);
        } else if let Some(c) = RE_SSHD_INVALID.captures(line) {
            let ip = ip_token(&c[2]);
            self.auth_event(i, line, ip, Some(&c[1]), "SSH password", 2);
        } else if let Some(c) = RE_PAM.captures(line) {
            let ip = ip_token(&c[1]);
            let user = c.get(2).map(|m| m.as_str());
            self.auth_event(i, line, ip, user, "PAM authentication", 1);
        } else if let Some(c) = RE_MSSQL.captures(line) {
            let ip = c
                .get(2)
                .and_then(|m| ip_token(m.as_str().trim_start_matches("CLIENT: ")));
            self.auth_event(i, line, ip, Some(&c[1]), "SQL Server login", 0);
        } else if let Some(c) = RE_PG_AUTH.captures(line) {
            let ip = source_ip(line, None);
            self.auth_event(i, line, ip, Some(&c[1]), "PostgreSQL password", 0);
        } else if RE_GENERIC_AUTH.is_match(line) {
            let ip = source_ip(line, None);
            let user = RE_USER
                .captures(line)
                .map(|c| c.get(1).expect("group").as_str());
            self.auth_event(i, line, ip, user, "Login", 0);
        } else {
            return false;
        }
        true
    }

    fn auth_event(
        &mut self,
        i: usize,
        line: &str,
        ip: Option<&str>,
        user: Option<&str>,
        method: &'static str,
        family: u8,
    ) {
        let user = user.filter(|u| !u.is_empty() && *u != "-");
        let (key, is_ip) = match (ip, user) {
            (Some(ip), _) => (ip.to_owned(), true),
            (None, Some(u)) => (format!("user {u}"), false),
            (None, None) => ("unknown source".to_owned(), false),
        };
        let ts = self.clock.parse(line);
        let src = self.auth.entry(key).or_default();
        src.is_ip = is_ip;
        src.events.push(AuthEvent {
            line: i,
            ts,
            family,
        });
        if let Some(u) = user {
            if src.users.len() < 10 {
                src.users.insert(u.to_owned());
            }
        }
        src.methods.insert(method);
    }

    /// Access denied / permission denied / forbidden / not authorized lines. Returns whether
    /// the line was an authentication failure instead (MySQL, ssh).
    fn deny_line(&mut self, i: usize, line: &str) -> bool {
        if let Some(c) = RE_MYSQL_DENIED.captures(line) {
            let host = &c[2];
            let ip = ip_token(host);
            self.auth_event(i, line, ip, Some(&c[1]), "MySQL password", 0);
            return true;
        }
        if line.contains("Permission denied (publickey")
            || line.contains("Permission denied, please try again")
        {
            let ip = source_ip(line, None);
            self.auth_event(i, line, ip, None, "SSH", 0);
            return true;
        }
        let source = source_ip(line, None).map(str::to_owned);
        if let Some(c) = RE_AWS_DENY.captures(line) {
            let resource = match c.get(3) {
                Some(r) => format!("{} on {}", &c[2], r.as_str()),
                None => c[2].to_owned(),
            };
            let user = c.get(1).map(|m| m.as_str().to_owned());
            self.deny_event(i, "AWS API call", resource, None, source, user);
            return false;
        }
        if let Some(c) = RE_USER_NOT_AUTH.captures(line) {
            let resource = c
                .get(2)
                .map_or_else(|| "-".to_owned(), |m| m.as_str().to_owned());
            self.deny_event(
                i,
                "Authorization check",
                resource,
                None,
                source,
                Some(c[1].to_owned()),
            );
            return false;
        }
        let Some(phrase) = RE_DENY_PHRASE.find(line) else {
            return false;
        };
        let resource = RE_ABS_PATH
            .captures(line)
            .map(|c| c[1].trim_end_matches([':', '.', ',']).to_owned())
            .unwrap_or_else(|| phrase.as_str().to_ascii_lowercase());
        let method = if line.contains("denied by server configuration")
            || line.contains("orbidden by rule")
        {
            "Web server access rule"
        } else if phrase.as_str().eq_ignore_ascii_case("permission denied") {
            "File or resource permission"
        } else {
            "Access control"
        };
        self.deny_event(i, method, resource, None, source, None);
        false
    }

    fn deny_event(
        &mut self,
        i: usize,
        method: &'static str,
        resource: String,
        status: Option<u16>,
        source: Option<String>,
        user: Option<String>,
    ) {
        let high = is_sensitive(&resource);
        // File permission errors and bare "access denied" messages are one finding per log
        // (listing the resources); HTTP, AWS and web-server rules one per resource.
        let key = if matches!(method, "File or resource permission" | "Access control") {
            String::new()
        } else {
            resource.clone()
        };
        let d = self
            .deny
            .entry((method.to_owned(), key))
            .or_insert_with(|| Deny {
                first_line: i,
                count: 0,
                method,
                resource: resource.clone(),
                resources: BTreeSet::new(),
                status,
                sources: BTreeSet::new(),
                first_source: source.clone(),
                user,
                high: false,
            });
        d.count += 1;
        d.high |= high;
        if d.resources.len() < 1000 {
            d.resources.insert(resource);
        }
        if let Some(s) = source {
            if d.sources.len() < 1000 {
                d.sources.insert(s);
            }
        }
    }

    fn finish(self, log: &LogText<'_>, config: &AnalyserConfig) -> Vec<Insight> {
        let mut out = self.secret_insights;
        // Per-IP signals for SuspiciousIp: (first line, descriptions).
        let mut signals: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
        let mut signal = |ip: &str, line: usize, what: String| {
            let e = signals.entry(ip.to_owned()).or_insert((line, Vec::new()));
            e.0 = e.0.min(line);
            e.1.push(what);
        };
        let line_text = |i: usize| log.lines.get(i).copied().unwrap_or("");

        // Authentication failures and brute force.
        for (source, src) in &self.auth {
            let family = src.events.iter().map(|e| e.family).min().unwrap_or(0);
            let events: Vec<&AuthEvent> =
                src.events.iter().filter(|e| e.family == family).collect();
            let n = events.len();
            let first = events[0].line;
            let users = src.users.iter().cloned().collect::<Vec<_>>().join(", ");
            let methods = src.methods.iter().copied().collect::<Vec<_>>().join(", ");
            let action = self.actions.get(source).copied();
            let severity = if n == 1 {
                Severity::Low
            } else {
                Severity::Medium
            };
            let title = if n == 1 {
                format!("Failed login from {source}")
            } else {
                format!("{n} failed logins from {source}")
            };
            let mut ins = insight(
                InsightKind::AuthFailure,
                severity,
                title,
                first,
                line_text(first),
            );
            ins.impact = "Someone is trying credentials that do not work: a mistyped password, \
                          a stale secret in a job, or an attacker guessing"
                .to_owned();
            ins.fix = "Check whether these logins are expected; if not, block the source, \
                       require keys or MFA, and rate-limit the login endpoint"
                .to_owned();
            set(&mut ins, "source", source);
            set(&mut ins, "occurrences", n);
            set(&mut ins, "method", &methods);
            set(
                &mut ins,
                "action",
                action.map_or("Login rejected".to_owned(), |a| {
                    format!("Login rejected, {a}")
                }),
            );
            if !users.is_empty() {
                set(&mut ins, "users", &users);
            }
            out.push(ins);

            // Brute force: the most failures within the window.
            let window = i64::from(config.brute_force_window_secs);
            let timed = events.iter().all(|e| e.ts.is_some());
            let (attempts, start_line) = if timed {
                let mut ts: Vec<(i64, usize)> =
                    events.iter().map(|e| (e.ts.unwrap_or(0), e.line)).collect();
                ts.sort_unstable();
                let mut best = (0usize, ts[0].1);
                let mut j = 0;
                for k in 0..ts.len() {
                    while ts[k].0 - ts[j].0 > window {
                        j += 1;
                    }
                    if k + 1 - j > best.0 {
                        best = (k + 1 - j, ts[j].1);
                    }
                }
                best
            } else {
                (n, first)
            };
            if attempts >= config.brute_force_failures.max(2) as usize {
                let title = if timed {
                    format!("Brute force login attack from {source}: {attempts} failed logins within {window} s")
                } else {
                    format!("Brute force login attack from {source}: {attempts} failed logins")
                };
                let mut ins = insight(
                    InsightKind::BruteForce,
                    Severity::High,
                    title,
                    start_line,
                    line_text(start_line),
                );
                ins.impact = "An attacker is guessing passwords; a weak or reused password on \
                              any of the targeted accounts will fall"
                    .to_owned();
                ins.root_cause = Some(
                    "The login endpoint accepts unlimited attempts from one source".to_owned(),
                );
                ins.fix = "Implement rate limiting on the login endpoint (fail2ban or a WAF rule, \
                           account lockout with backoff) and require keys or MFA"
                    .to_owned();
                set(&mut ins, "source", source);
                set(&mut ins, "attempts", attempts);
                if timed {
                    set(&mut ins, "windowSecs", window);
                } else {
                    set(&mut ins, "window", "whole log (lines carry no timestamps)");
                }
                set(&mut ins, "method", "Brute force login attack");
                set(&mut ins, "threshold", config.brute_force_failures);
                set(
                    &mut ins,
                    "action",
                    action.map_or("Access denied".to_owned(), |a| {
                        format!("Access denied, {a}")
                    }),
                );
                if !users.is_empty() {
                    set(&mut ins, "users", &users);
                }
                out.push(ins);
                if src.is_ip {
                    signal(
                        source,
                        start_line,
                        format!("brute force ({attempts} failed logins)"),
                    );
                }
            }
        }

        // Unauthorized access.
        for d in self.deny.values() {
            let severity = if d.high {
                Severity::High
            } else {
                Severity::Medium
            };
            let title = match d.status {
                Some(s) => format!("Unauthorized access attempt: {} answered {s}", d.resource),
                None if d.method == "AWS API call" || d.method == "Authorization check" => format!(
                    "Unauthorized: {} is not authorized to perform {}",
                    d.user.as_deref().unwrap_or("a principal"),
                    d.resource
                ),
                None if d.resources.len() > 1 => format!(
                    "Access denied: {} and {} other resources",
                    d.resource,
                    d.resources.len() - 1
                ),
                None => format!("Access denied: {}", d.resource),
            };
            let title = if d.count > 1 {
                format!("{title} ({} times)", d.count)
            } else {
                title
            };
            let mut ins = insight(
                InsightKind::UnauthorizedAccess,
                severity,
                title,
                d.first_line,
                line_text(d.first_line),
            );
            ins.impact = if d.high {
                "Someone is reaching for an administrative or internal resource".to_owned()
            } else {
                "Requests are reaching resources they are not allowed to use: a probe, a \
                 misconfigured client or a missing permission"
                    .to_owned()
            };
            ins.fix = match d.method {
                "AWS API call" => "If the principal needs this action, grant it with a \
                                   least-privilege policy; otherwise investigate who is using \
                                   the credential"
                    .to_owned(),
                "File or resource permission" => "Check the process user and the file mode/ACL; \
                                                  grant the minimum access the job needs"
                    .to_owned(),
                _ => "Confirm the caller should not have access; if these are probes, block \
                      the source, and keep admin/internal paths off the public interface and \
                      behind authentication"
                    .to_owned(),
            };
            if let Some(s) = &d.first_source {
                set(&mut ins, "source", s);
            }
            if d.sources.len() > 1 {
                set(&mut ins, "distinctSources", d.sources.len());
            }
            if let Some(u) = &d.user {
                set(&mut ins, "user", u);
            }
            set(&mut ins, "resource", &d.resource);
            if d.resources.len() > 1 {
                set(&mut ins, "distinctResources", d.resources.len());
            }
            set(&mut ins, "method", d.method);
            set(
                &mut ins,
                "action",
                match d.status {
                    Some(s) => format!("Access denied ({s})"),
                    None => "Access denied".to_owned(),
                },
            );
            if let Some(s) = d.status {
                set(&mut ins, "status", s);
            }
            set(&mut ins, "occurrences", d.count);
            out.push(ins);
        }

        // SQL injection, XSS, command injection, path traversal.
        for ((kind, source), a) in &self.attacks {
            let sigs = a.signatures.iter().copied().collect::<Vec<_>>().join(", ");
            let count = a.lines.len();
            let text = attack_text(*kind);
            let what = text.what;
            let title = if count > 1 {
                format!("{what} from {source} ({count} requests)")
            } else {
                format!("{what} from {source}")
            };
            let mut ins = insight(
                *kind,
                a.severity,
                title,
                a.first_line,
                line_text(a.first_line),
            );
            let outcome = match a.status {
                Some(s @ 200..=299) => format!("Answered {s}: the payload reached the application"),
                Some(s @ 500..=599) => format!(
                    "Answered {s}: the payload caused a server error (it probably reached the \
                     query)"
                ),
                Some(s) => format!("Answered {s}"),
                None => "Logged as request parameters".to_owned(),
            };
            ins.impact = text.impact.to_owned();
            ins.fix = text.fix.to_owned();
            set(&mut ins, "source", source);
            set(&mut ins, "method", format!("{what} ({sigs})"));
            set(&mut ins, "signatures", &sigs);
            if !a.path.is_empty() {
                set(&mut ins, "path", &a.path);
            }
            if let Some(s) = a.status {
                set(&mut ins, "status", s);
            }
            let action = match self.actions.get(source) {
                Some(x) => format!("{outcome}; {x}"),
                None => outcome,
            };
            set(&mut ins, "action", action);
            set(&mut ins, "occurrences", count);
            out.push(ins);
            if source.parse::<IpAddr>().is_ok() {
                signal(
                    source,
                    a.first_line,
                    format!("{} payloads ({count} requests)", text.label),
                );
            }
        }

        // Scanning.
        for (ip, (first, paths)) in &self.not_found {
            if paths.len() >= SCAN_DISTINCT_404_PATHS {
                signal(
                    ip,
                    *first,
                    format!("scanning ({} distinct paths answered 404)", paths.len()),
                );
            }
        }

        // Suspicious IPs.
        for (ip, (first, what)) in signals {
            let summary = what.join("; ");
            let title = format!("Suspicious IP {ip}: {summary}");
            let mut ins = insight(
                InsightKind::SuspiciousIp,
                Severity::High,
                title,
                first,
                line_text(first),
            );
            ins.impact = "One source is actively attacking: expect more attempts, possibly \
                          from neighbouring addresses"
                .to_owned();
            ins.fix = "Block or rate-limit the IP at the edge (WAF, firewall, fail2ban) and \
                       review which of its requests were answered successfully"
                .to_owned();
            set(&mut ins, "source", &ip);
            set(&mut ins, "signals", &summary);
            set(&mut ins, "method", "Behaviour across the log");
            if let Some(a) = self.actions.get(&ip) {
                set(&mut ins, "action", *a);
            }
            out.push(ins);
        }
        out
    }
}

/// Timestamp parsing with a running year for syslog stamps that have none.
#[derive(Default)]
struct Clock {
    last_yearless: Option<i64>,
    year_shift: i64,
}

const DAY: i64 = 86_400;

impl Clock {
    /// Seconds since the epoch (or since an arbitrary year for syslog stamps; only differences
    /// matter).
    fn parse(&mut self, line: &str) -> Option<i64> {
        let head = match line.char_indices().nth(120) {
            Some((i, _)) => &line[..i],
            None => line,
        };
        if let Some(c) = RE_TS_ISO.captures(head) {
            let secs = epoch(
                c[1].parse().ok()?,
                c[2].parse().ok()?,
                c[3].parse().ok()?,
                &c[4],
                &c[5],
                &c[6],
            )?;
            return Some(secs - c.get(7).map_or(0, |o| offset_secs(o.as_str())));
        }
        if let Some(c) = RE_TS_CLF.captures(head) {
            let secs = epoch(
                c[3].parse().ok()?,
                month(&c[2])?,
                c[1].parse().ok()?,
                &c[4],
                &c[5],
                &c[6],
            )?;
            return Some(secs - c.get(7).map_or(0, |o| offset_secs(o.as_str())));
        }
        if let Some(c) = RE_TS_CTIME.captures(head) {
            return epoch(
                c[6].parse().ok()?,
                month(&c[1])?,
                c[2].parse().ok()?,
                &c[3],
                &c[4],
                &c[5],
            );
        }
        if let Some(c) = RE_TS_SYSLOG.captures(head) {
            let secs = epoch(2000, month(&c[1])?, c[2].parse().ok()?, &c[3], &c[4], &c[5])?;
            // A stamp far earlier than the previous one: the year turned.
            if let Some(prev) = self.last_yearless {
                if secs + self.year_shift < prev - 180 * DAY {
                    self.year_shift += 366 * DAY;
                }
            }
            let secs = secs + self.year_shift;
            self.last_yearless = Some(secs);
            return Some(secs);
        }
        None
    }
}

fn epoch(year: i32, month: u32, day: u32, h: &str, m: &str, s: &str) -> Option<i64> {
    let t = NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(
        h.parse().ok()?,
        m.parse().ok()?,
        s.parse().ok()?,
    )?;
    Some(t.and_utc().timestamp())
}

fn month(name: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|m| *m == name).map(|p| p as u32 + 1)
}

fn offset_secs(o: &str) -> i64 {
    if o == "Z" {
        return 0;
    }
    let sign = if o.starts_with('-') { -1 } else { 1 };
    let digits: String = o.chars().filter(char::is_ascii_digit).collect();
    let h: i64 = digits.get(..2).and_then(|d| d.parse().ok()).unwrap_or(0);
    let m: i64 = digits.get(2..4).and_then(|d| d.parse().ok()).unwrap_or(0);
    sign * (h * 3600 + m * 60)
}

/// The IP address at the start of `s` (`1.2.3.4`, `1.2.3.4:5555`, `[2001:db8::1]:443`,
/// `::ffff:1.2.3.4`).
fn ip_token(s: &str) -> Option<&str> {
    let s = s.trim_start_matches(['[', '(', '"', '\'']);
    let end = s
        .find(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .unwrap_or(s.len());
    let tok = &s[..end];
    if tok.is_empty() {
        return None;
    }
    if tok.parse::<IpAddr>().is_ok() {
        return Some(tok);
    }
    // `1.2.3.4:port`
    let (host, port) = tok.rsplit_once(':')?;
    (host.parse::<std::net::Ipv4Addr>().is_ok() && port.bytes().all(|b| b.is_ascii_digit()))
        .then_some(host)
}

const SOURCE_KEYS: [&str; 11] = [
    "from ",
    "rhost=",
    "[client ",
    "client: ",
    "client=",
    "CLIENT: ",
    "remote_addr=",
    "remote_ip=",
    "src=",
    "ip=",
    " for ",
];

static SOURCE_FINDERS: LazyLock<Vec<memmem::Finder<'static>>> =
    LazyLock::new(|| SOURCE_KEYS.iter().map(memmem::Finder::new).collect());

/// Where a line says a request or login came from. For a request line (`before` = where the
/// request starts): an address as the line's first token (access logs), else the last IPv4
/// address before the request. Then, for all lines: after `from`, `rhost=`, `client`, … ; an
/// address as the first token; the first IPv4 address in the line.
fn source_ip(line: &str, before: Option<usize>) -> Option<&str> {
    if let Some(limit) = before {
        // Request lines: the client address leads the line or precedes the request.
        if let Some(ip) = ip_token(line.trim_start()) {
            return Some(ip);
        }
        let mut last = None;
        let mut from = 0;
        while let Some((s, e)) = find_ipv4(&line[..limit], from) {
            last = Some(&line[s..e]);
            from = e;
        }
        if last.is_some() {
            return last;
        }
    }
    for (key, finder) in SOURCE_KEYS.iter().zip(SOURCE_FINDERS.iter()) {
        for p in finder.find_iter(line.as_bytes()) {
            if let Some(ip) = ip_token(&line[p + key.len()..]) {
                return Some(ip);
            }
        }
    }
    if let Some(ip) = ip_token(line.trim_start()) {
        return Some(ip);
    }
    find_ipv4(line, 0).map(|(s, e)| &line[s..e])
}

fn is_login_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [
        "login", "signin", "sign_in", "sign-in", "/auth", "session", "/token", "oauth", "wp-login",
        "/logon",
    ]
    .iter()
    .any(|k| p.contains(k))
}

/// Administrative or internal resources (unauthorized access to them is high severity).
fn is_sensitive(resource: &str) -> bool {
    let r = resource.to_ascii_lowercase();
    [
        "/admin",
        "/internal",
        "/wp-admin",
        "/.env",
        "/.git",
        "/actuator",
        "/manage",
        "/phpmyadmin",
        "/console",
        "/debug",
        "/server-status",
        "/etc/shadow",
        "/etc/passwd",
        "/root",
        "/private",
        "/config",
        "iam:",
        "kms:",
        "secretsmanager:",
    ]
    .iter()
    .any(|k| r.contains(k))
}

/// How an injection finding reads.
struct AttackText {
    what: &'static str,
    label: &'static str,
    impact: &'static str,
    fix: &'static str,
}

fn attack_text(kind: InsightKind) -> AttackText {
    match kind {
        InsightKind::SqlInjection => AttackText {
            what: "SQL injection attempt",
            label: "SQL injection",
            impact: "If the input reaches a query unescaped, the attacker can read or change the \
                     database",
            fix: "Use parameterised queries (prepared statements) wherever this input reaches \
                  SQL, validate input, and block the source at the WAF",
        },
        InsightKind::CommandInjection => AttackText {
            what: "Command injection attempt",
            label: "command injection",
            impact: "If the input reaches a shell, the attacker runs commands on the server with \
                     the application's rights",
            fix: "Never pass request input to a shell: call programs with an argument list (no \
                  shell), allow-list the values, and block the source at the WAF",
        },
        InsightKind::PathTraversal => AttackText {
            what: "Path traversal attempt",
            label: "path traversal",
            impact: "If the input is used in a file path, the attacker can read files outside \
                     the served directory (configuration, credentials)",
            fix: "Resolve the path and check it stays under the allowed directory (or map ids \
                  to files), reject `..` and absolute paths, and block the source at the WAF",
        },
        _ => AttackText {
            what: "XSS attempt",
            label: "XSS",
            impact: "If the input is reflected unescaped, the attacker can run script in users' \
                     browsers (session theft)",
            fix: "Encode output for its context (HTML, attribute, JS), validate input, set a \
                  Content-Security-Policy, and block the source at the WAF",
        },
    }
}

/// Percent-decodes `%XX` and `+` (twice, for double encoding).
fn url_decode(s: &str) -> Cow<'_, str> {
    fn once(s: &str) -> Option<String> {
        if !s.bytes().any(|b| b == b'%' || b == b'+') {
            return None;
        }
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = |c: u8| (c as char).to_digit(16);
                    match (hex(b[i + 1]), hex(b[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push((h * 16 + l) as u8);
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }
    match once(s) {
        None => Cow::Borrowed(s),
        Some(d) => match once(&d) {
            Some(dd) if d.contains('%') => Cow::Owned(dd),
            _ => Cow::Owned(d),
        },
    }
}

/// Cheap check before the signature regexes: normal request targets have none of these.
fn may_hold_payload(s: &str) -> bool {
    s.bytes()
        .any(|b| matches!(b, b'\'' | b'"' | b'<' | b';' | b'('))
        || PAYLOAD_WORDS.is_match(s)
}

static PAYLOAD_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build([
            "union",
            "javascript",
            "information_schema",
            "xp_cmdshell",
            "onerror",
            "onload",
            " or ",
        ])
        .expect("payload words build")
});

fn mask(line: &str, found: &[SecretMatch]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    for m in found {
        if m.start < pos || m.end > line.len() {
            continue;
        }
        out.push_str(&line[pos..m.start]);
        out.push_str("[REDACTED:");
        out.push_str(m.kind);
        out.push(']');
        pos = m.end;
    }
    out.push_str(&line[pos..]);
    out
}

fn secret_label(kind: &str) -> &'static str {
    match kind {
        "aws-access-key" => "AWS access key id",
        "aws-secret-key" => "AWS secret access key",
        "github-token" => "GitHub token",
        "gitlab-token" => "GitLab token",
        "slack-token" => "Slack token",
        "stripe-key" => "Stripe live key",
        "google-api-key" => "Google API key",
        "private-key" => "Private key",
        "jwt" => "JSON Web Token",
        "authorization" => "Authorization header credential",
        "url-password" => "Password in a connection URL",
        "password" => "Password",
        "secret" => "Secret",
        "token" => "Token",
        "api-key" => "API key",
        _ => "Credential",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Vec<Insight> {
        analyse(&LogText::new(text), &AnalyserConfig::default())
    }

    fn of(insights: &[Insight], kind: InsightKind) -> Vec<Insight> {
        insights
            .iter()
            .filter(|i| i.kind == kind)
            .cloned()
            .collect()
    }

    fn d<'a>(i: &'a Insight, key: &str) -> &'a str {
        i.details.get(key).map_or("", String::as_str)
    }

    #[test]
    fn code_frames_are_not_access_denials() {
        let log = "[2025-11-06T10:48:33.848Z]     > 40 |     await expect(c.refund(id)).rejects.toThrow(ForbiddenException);\n[2025-11-06T10:48:33.867Z]          |           ^\n   12 |   throw new UnauthorizedException();\n";
        assert!(run(log).is_empty());
        assert!(is_code_frame("  > 40 | x"));
        assert!(is_code_frame("27 |     let x = 1;"));
        assert!(!is_code_frame(
            "192.0.2.1 - - [06/Nov/2025:10:45:00 +0000] \"GET / HTTP/1.1\" 403 1"
        ));
        assert!(!is_code_frame("403 | Forbidden"[4..].trim()));
        // A denial logged behind a timestamp is still one.
        let log =
            "[2025-11-06T10:48:33.848Z] ERROR access denied for user bob to /admin/settings\n";
        assert_eq!(of(&run(log), InsightKind::UnauthorizedAccess).len(), 1);
    }

    fn sshd_failures(n: usize, step_secs: u32, ip: &str) -> String {
        let mut log = String::new();
        for k in 0..n {
            let t = 10 * 3600 + 45 * 60 + k as u32 * step_secs;
            log.push_str(&format!(
                "Nov  6 {:02}:{:02}:{:02} web1 sshd[{}]: Failed password for invalid user admin{k} from {ip} port {} ssh2\n",
                t / 3600 % 24,
                t / 60 % 60,
                t % 60,
                1000 + k,
                51000 + k
            ));
        }
        log
    }

    // ---- HTTP request parsing ----

    #[test]
    fn parses_request_lines() {
        let r = parse_http_request(
            "203.0.113.7 - - [06/Nov/2025:10:45:00 +0000] \"GET /a/b?x=1 HTTP/1.1\" 404 12",
        )
        .expect("req");
        assert_eq!(
            (r.method, r.target, r.path(), r.status),
            ("GET", "/a/b?x=1", "/a/b", Some(404))
        );
        let r = parse_http_request("Started POST \"/login\" for 10.0.0.1 at 2025").expect("req");
        assert_eq!((r.method, r.path(), r.status), ("POST", "/login", None));
        let r = parse_http_request("Request finished HTTP/1.1 GET http://localhost:5000/api/users - 200 - application/json 2134.5678ms").expect("req");
        assert_eq!((r.path(), r.status), ("/api/users", Some(200)));
        assert!(parse_http_request("FORGET /x 200").is_none());
        assert!(parse_http_request("GET request failed").is_none());
    }

    // ---- authentication failures and brute force ----

    #[test]
    fn sshd_brute_force_with_ban() {
        let mut log = sshd_failures(6, 10, "203.0.113.7");
        log.push_str(
            "2025-11-06 10:46:10,123 fail2ban.actions [99]: NOTICE  [sshd] Ban 203.0.113.7\n",
        );
        let all = run(&log);
        let auth = of(&all, InsightKind::AuthFailure);
        assert_eq!(auth.len(), 1);
        assert_eq!(auth[0].severity, Severity::Medium);
        assert_eq!(d(&auth[0], "occurrences"), "6");
        assert_eq!(d(&auth[0], "source"), "203.0.113.7");
        assert_eq!(d(&auth[0], "method"), "SSH password");
        let bf = of(&all, InsightKind::BruteForce);
        assert_eq!(bf.len(), 1, "{all:#?}");
        let bf = &bf[0];
        assert_eq!(bf.severity, Severity::High);
        assert_eq!(bf.log_line, 1);
        assert_eq!(d(bf, "source"), "203.0.113.7");
        assert_eq!(d(bf, "attempts"), "6");
        assert_eq!(d(bf, "windowSecs"), "300");
        assert_eq!(d(bf, "method"), "Brute force login attack");
        assert_eq!(d(bf, "action"), "Access denied, IP blocked");
        assert!(bf
            .fix
            .starts_with("Implement rate limiting on the login endpoint"));
        let ip = of(&all, InsightKind::SuspiciousIp);
        assert_eq!(ip.len(), 1);
        assert_eq!(ip[0].severity, Severity::High);
        assert!(d(&ip[0], "signals").contains("brute force (6 failed logins)"));
    }

    #[test]
    fn four_failures_or_slow_failures_are_not_brute_force() {
        let all = run(&sshd_failures(4, 10, "198.51.100.4"));
        assert!(of(&all, InsightKind::BruteForce).is_empty());
        assert_eq!(of(&all, InsightKind::AuthFailure).len(), 1);
        // Five failures an hour apart.
        let all = run(&sshd_failures(5, 3600, "198.51.100.5"));
        assert!(of(&all, InsightKind::BruteForce).is_empty());
        assert_eq!(
            d(&of(&all, InsightKind::AuthFailure)[0], "occurrences"),
            "5"
        );
    }

    #[test]
    fn one_attempt_logged_three_ways_counts_once() {
        let log = "Nov  6 10:45:00 web1 sshd[4321]: Invalid user oracle from 192.0.2.10 port 40022\nNov  6 10:45:00 web1 sshd[4321]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.10\nNov  6 10:45:02 web1 sshd[4321]: Failed password for invalid user oracle from 192.0.2.10 port 40022 ssh2\n";
        let auth = of(&run(log), InsightKind::AuthFailure);
        assert_eq!(auth.len(), 1);
        assert_eq!(auth[0].severity, Severity::Low);
        assert_eq!(d(&auth[0], "occurrences"), "1");
        assert_eq!(d(&auth[0], "users"), "oracle");
    }

    #[test]
    fn http_login_failures_and_untimed_logs() {
        let mut log = String::new();
        for s in 0..5 {
            log.push_str(&format!("198.51.100.9 - - [06/Nov/2025:10:45:{s:02} +0000] \"POST /login HTTP/1.1\" 401 123 \"-\" \"python-requests/2.31\"\n"));
        }
        let all = run(&log);
        assert_eq!(of(&all, InsightKind::BruteForce).len(), 1);
        assert!(of(&all, InsightKind::UnauthorizedAccess).is_empty());
        // Without timestamps the whole log is the window.
        let untimed = "login failed for user bob from 192.0.2.50\n".repeat(5);
        let bf = of(&run(&untimed), InsightKind::BruteForce);
        assert_eq!(bf.len(), 1);
        assert!(!bf[0].details.contains_key("windowSecs"));
        assert_eq!(d(&bf[0], "source"), "192.0.2.50");
        // Database servers.
        let db = "2025-11-06 10:45:00.123 UTC [77] FATAL:  password authentication failed for user \"postgres\"\n2025-11-06T10:45:00.123456Z 12 [Note] Access denied for user 'root'@'192.0.2.77' (using password: YES)\n";
        let auth = of(&run(db), InsightKind::AuthFailure);
        assert_eq!(auth.len(), 2);
        assert!(auth.iter().any(|a| d(a, "source") == "user postgres"));
        assert!(auth
            .iter()
            .any(|a| d(a, "source") == "192.0.2.77" && d(a, "method") == "MySQL password"));
    }

    // ---- unauthorized access ----

    #[test]
    fn unauthorized_access_severities() {
        let log = "203.0.113.9 - - [06/Nov/2025:10:45:00 +0000] \"GET /admin/users HTTP/1.1\" 403 199\n203.0.113.9 - - [06/Nov/2025:10:45:01 +0000] \"GET /api/reports HTTP/1.1\" 401 55\nUser: arn:aws:iam::123456789012:user/ci is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::prod-backups/db.sql\n";
        let u = of(&run(log), InsightKind::UnauthorizedAccess);
        assert_eq!(u.len(), 3, "{u:#?}");
        let admin = u
            .iter()
            .find(|i| d(i, "resource") == "GET /admin/users")
            .expect("admin");
        assert_eq!(admin.severity, Severity::High);
        assert_eq!(d(admin, "status"), "403");
        assert_eq!(d(admin, "action"), "Access denied (403)");
        assert_eq!(d(admin, "source"), "203.0.113.9");
        let api = u
            .iter()
            .find(|i| d(i, "resource") == "GET /api/reports")
            .expect("api");
        assert_eq!(api.severity, Severity::Medium);
        let aws = u
            .iter()
            .find(|i| d(i, "method") == "AWS API call")
            .expect("aws");
        assert_eq!(
            d(aws, "resource"),
            "s3:GetObject on arn:aws:s3:::prod-backups/db.sql"
        );
        assert!(aws.fix.contains("least-privilege"));
    }

    #[test]
    fn apache_forbidden_lines_aggregate() {
        let log = "[Sun Dec 04 05:15:09 2005] [error] [client 222.166.160.184] Directory index forbidden by rule: /var/www/html/\n[Sun Dec 04 07:45:45 2005] [error] [client 63.13.186.196] Directory index forbidden by rule: /var/www/html/\n[Sun Dec 04 08:54:17 2005] [error] [client 147.31.138.75] Directory index forbidden by rule: /var/www/html/\n";
        let u = of(&run(log), InsightKind::UnauthorizedAccess);
        assert_eq!(u.len(), 1);
        assert_eq!(d(&u[0], "occurrences"), "3");
        assert_eq!(d(&u[0], "distinctSources"), "3");
        assert_eq!(d(&u[0], "resource"), "/var/www/html/");
        assert_eq!(d(&u[0], "source"), "222.166.160.184");
    }

    #[test]
    fn file_permission_errors_are_one_finding() {
        let log = "- 1121383222 2005.07.14 R01-M0-N0-I:J18-U11 2005-07-14-16.20.22.672549 R01-M0-N0-I:J18-U11 RAS APP FATAL ciod: Error creating node map from file /home/pakin1/sweep3d-2.2b/results/random1-8x32x32x2.map: Permission denied\n- 1128170317 2005.10.01 R73-M0-N4-I:J18-U11 2005-10-01-05.38.37.246285 R73-M0-N4-I:J18-U11 RAS APP FATAL ciod: Error loading /home/spelce1/HPCC_IBM/Urgent/Gunnels/VNM64/vnm.rts: invalid or missing program image, Permission denied\nopen /etc/shadow: permission denied\n";
        let u = of(&run(log), InsightKind::UnauthorizedAccess);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].log_line, 1);
        assert_eq!(u[0].severity, Severity::High);
        assert_eq!(d(&u[0], "occurrences"), "3");
        assert_eq!(d(&u[0], "distinctResources"), "3");
        assert_eq!(d(&u[0], "method"), "File or resource permission");
        assert!(
            u[0].title.contains("and 2 other resources"),
            "{}",
            u[0].title
        );
    }

    #[test]
    fn url_passwords_without_keywords_are_exposed_secrets() {
        let log = "2025-11-06T10:45:00Z INFO connecting to amqp://orders:Zr8vQ2mX9k@rabbit.internal:5672/prod\n2025-11-06T10:45:00Z INFO connecting to amqp://orders@rabbit.internal:5672/prod\n";
        let s = of(&run(log), InsightKind::ExposedSecret);
        assert_eq!(s.len(), 1);
        assert_eq!(d(&s[0], "secretKind"), "url-password");
        assert_eq!(s[0].severity, Severity::High);
        assert!(!s[0].excerpt.contains("Zr8vQ2mX9k"));
        assert!(s[0]
            .excerpt
            .contains("amqp://orders:[REDACTED:url-password]@rabbit.internal"));
    }

    #[test]
    fn ordinary_requests_are_not_unauthorized() {
        let log = "203.0.113.9 - - [06/Nov/2025:10:45:00 +0000] \"GET /api/users HTTP/1.1\" 200 199\n[10.30 16:49:07] chrome.exe - proxy.cse.cuhk.edu.hk:5070 close, 403 bytes sent, 426 bytes received\n";
        let all = run(log);
        assert!(all.is_empty(), "{all:#?}");
    }

    // ---- payloads ----

    #[test]
    fn sql_injection_payloads() {
        let log = "203.0.113.50 - - [06/Nov/2025:10:45:00 +0000] \"GET /products?id=1%27%20OR%20%271%27%3D%271 HTTP/1.1\" 200 512\n203.0.113.51 - - [06/Nov/2025:10:45:01 +0000] \"GET /search?q=1+UNION+SELECT+username,password+FROM+users-- HTTP/1.1\" 403 10\n";
        let all = run(log);
        let s = of(&all, InsightKind::SqlInjection);
        assert_eq!(s.len(), 2);
        let crit = s
            .iter()
            .find(|i| d(i, "source") == "203.0.113.50")
            .expect("50");
        assert_eq!(crit.severity, Severity::Critical);
        assert!(d(crit, "signatures").contains("tautology (' OR '1'='1)"));
        assert_eq!(d(crit, "path"), "/products");
        assert!(d(crit, "action").starts_with("Answered 200"));
        let high = s
            .iter()
            .find(|i| d(i, "source") == "203.0.113.51")
            .expect("51");
        assert_eq!(high.severity, Severity::High);
        assert!(d(high, "signatures").contains("UNION SELECT"));
        assert_eq!(of(&all, InsightKind::SuspiciousIp).len(), 2);
    }

    /// One combined-format access log line (Apache/nginx) for `target`.
    fn access(ip: &str, target: &str, status: u16) -> String {
        format!(
            "{ip} - - [06/Nov/2025:10:45:00 +0000] \"GET {target} HTTP/1.1\" {status} 1043 \"-\" \
             \"Mozilla/5.0 (X11; Linux x86_64)\"\n"
        )
    }

    #[test]
    fn decoded_values_of_each_kind() {
        let cases = [
            // Double-encoded quote, libinjection's tokenizer.
            (
                "/item?id=7%2527%2520or%2520sleep(5)%2523",
                InsightKind::SqlInjection,
            ),
            // Plus for spaces, no quote.
            (
                "/list?sort=1+and+1%3Dconvert(int,(select+@@version))",
                InsightKind::SqlInjection,
            ),
            // HTML-entity-encoded tag inside a percent-encoded value.
            (
                "/p?name=%26lt%3Bsvg%2Fonload%3Dalert(1)%26gt%3B",
                InsightKind::Xss,
            ),
            (
                "/p?next=%22%3E%3Cimg%20src%3Dx%20onerror%3Dprompt(1)%3E",
                InsightKind::Xss,
            ),
            (
                "/ping?host=127.0.0.1%3Bcat%20%2Fetc%2Fshadow",
                InsightKind::CommandInjection,
            ),
            ("/run?cmd=%60whoami%60", InsightKind::CommandInjection),
            (
                "/download?file=..%2F..%2F..%2Fetc%2Fpasswd",
                InsightKind::PathTraversal,
            ),
            (
                "/download?file=%252e%252e%252fconfig.php",
                InsightKind::PathTraversal,
            ),
            (
                "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/windows/win.ini",
                InsightKind::PathTraversal,
            ),
        ];
        for (target, kind) in cases {
            let all = run(&access("192.0.2.10", target, 200));
            let found = of(&all, kind);
            assert_eq!(found.len(), 1, "{target}: {all:#?}");
            assert!(found[0].severity >= Severity::High, "{target}");
            assert_eq!(d(&found[0], "source"), "192.0.2.10");
        }
    }

    #[test]
    fn command_injection_and_traversal_insights() {
        let log = format!(
            "{}{}{}",
            access("192.0.2.11", "/ping?host=8.8.8.8%7Cid", 200),
            access("192.0.2.11", "/ping?host=8.8.8.8%3B%2Fbin%2Fls", 500),
            access("192.0.2.12", "/img?f=....%2F%2F....%2F%2Fetc%2Fhosts", 404),
        );
        let all = run(&log);
        let c = of(&all, InsightKind::CommandInjection);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].severity, Severity::Critical);
        assert_eq!(d(&c[0], "occurrences"), "2");
        assert_eq!(
            c[0].title,
            "Command injection attempt from 192.0.2.11 (2 requests)"
        );
        let p = of(&all, InsightKind::PathTraversal);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].severity, Severity::Medium);
        assert_eq!(d(&p[0], "path"), "/img");
        assert!(of(&all, InsightKind::SuspiciousIp)
            .iter()
            .any(|i| i.title.contains("192.0.2.11") || d(i, "source") == "192.0.2.11"));
    }

    #[test]
    fn benign_requests_raise_nothing() {
        let targets = [
            "/search?q=O%27Brien",
            "/search?q=Mary+O%27Neil%2C+l%27Aquila",
            "/signup?email=ana.lopez%2Bnews%40example.org&name=Ana+L%C3%B3pez",
            "/redirect?to=https%3A%2F%2Fexample.com%2Fa%2Fb%3Fc%3Dd",
            "/api?filter=%7B%22status%22%3A%22open%22%2C%22ids%22%3A%5B1%2C2%5D%7D",
            "/reviews?text=It%27s+a+dog%27s+life%2C+isn%27t+it%3F",
            "/addr?street=c%2F+mayor+s%2Fn%2C+3-b",
            "/q?price=%3C+20+and+%3E+10",
            "/q?band=rock+%26+roll&page=2",
            "/docs/v1.2/guide.html?see=chapter+2...3",
            "/search?q=select+your+plan+or+cancel",
            "/search?q=50%25+off",
            "/p?id=identity&t=cat+food",
        ];
        for t in targets {
            let all = run(&access("192.0.2.20", t, 200));
            assert!(all.is_empty(), "{t}: {all:#?}");
        }
    }

    #[test]
    fn xss_payloads_and_rails_parameters() {
        let log = "198.51.100.23 - - [06/Nov/2025:10:45:00 +0000] \"GET /search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E HTTP/1.1\" 200 812\nStarted POST \"/comments\" for 198.51.100.24 at 2025-11-06 10:45:00 +0000\n  Parameters: {\"body\"=>\"<img src=x onerror=alert(1)>\", \"q\"=>\"' OR 1=1--\"}\n";
        let all = run(log);
        let x = of(&all, InsightKind::Xss);
        assert_eq!(x.len(), 2, "{x:#?}");
        let reflected = x
            .iter()
            .find(|i| d(i, "source") == "198.51.100.23")
            .expect("23");
        assert_eq!(reflected.severity, Severity::High);
        assert!(d(reflected, "signatures").contains("<script> tag"));
        assert!(d(reflected, "signatures").contains("document.cookie"));
        let params = x
            .iter()
            .find(|i| d(i, "source") == "198.51.100.24")
            .expect("24");
        assert_eq!(params.severity, Severity::Medium);
        let s = of(&all, InsightKind::SqlInjection);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].severity, Severity::High);
    }

    #[test]
    fn normal_sql_and_queries_are_not_injection() {
        let log = "  User Load (0.3ms)  SELECT \"users\".* FROM \"users\" WHERE name = 'x' OR '1'='1' UNION SELECT 1\nDEBUG o.h.SQL: select * from t where a=? union select * from u\n10.0.0.1 - - [06/Nov/2025:10:45:00 +0000] \"GET /search?q=union+station&sort=name HTTP/1.1\" 200 5\n10.0.0.1 - - [06/Nov/2025:10:45:01 +0000] \"GET /api/items?filter=(price%3E10) HTTP/1.1\" 200 5\n";
        let all = run(log);
        assert!(of(&all, InsightKind::SqlInjection).is_empty(), "{all:#?}");
        assert!(of(&all, InsightKind::Xss).is_empty());
    }

    // ---- secrets ----

    #[test]
    fn exposed_secrets_never_show_the_value() {
        let key = "AKIAZ3MQXW7R2PLK4T5N";
        let gh = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5";
        let log = format!("2025-11-06T10:45:00Z DEBUG boto: using credentials AWS_ACCESS_KEY_ID={key}\nINFO cloning with token {gh}\n");
        let all = run(&log);
        let s = of(&all, InsightKind::ExposedSecret);
        assert_eq!(s.len(), 2);
        let aws = &s[0];
        assert_eq!(aws.severity, Severity::Critical);
        assert_eq!(aws.log_line, 1);
        assert_eq!(d(aws, "secretKind"), "aws-access-key");
        assert_eq!(
            aws.fix,
            "Rotate the credential now and remove it from logs (mask at the logger)"
        );
        assert!(aws.excerpt.contains("[REDACTED:aws-access-key]"));
        assert_eq!(s[1].severity, Severity::High);
        let pem = run("2025-11-06T10:45:00Z DEBUG key=-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n");
        let pem = of(&pem, InsightKind::ExposedSecret);
        assert_eq!(pem.len(), 1);
        assert_eq!(pem[0].severity, Severity::Critical);
        assert_eq!(d(&pem[0], "secretKind"), "private-key");
        for i in &s {
            let text = format!("{} {} {:?}", i.title, i.excerpt, i.details);
            assert!(!text.contains(key) && !text.contains(gh), "{text}");
        }
    }

    #[test]
    fn placeholders_are_not_exposed_secrets() {
        let log = "password=changeme\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\ntoken=<your-token>\nbuild 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39 request 550e8400-e29b-41d4-a716-446655440000\n";
        assert!(of(&run(log), InsightKind::ExposedSecret).is_empty());
    }

    // ---- scanning ----

    #[test]
    fn scanning_makes_a_suspicious_ip() {
        let mut log = String::new();
        for p in [
            "/.env",
            "/.git/config",
            "/wp-login.php",
            "/phpmyadmin/",
            "/admin.php",
            "/backup.zip",
            "/config.json",
            "/server-status",
            "/actuator/env",
            "/debug/vars",
            "/.aws/credentials",
            "/shell.php",
        ] {
            log.push_str(&format!(
                "192.0.2.200 - - [06/Nov/2025:10:45:00 +0000] \"GET {p} HTTP/1.1\" 404 153\n"
            ));
        }
        let ip = of(&run(&log), InsightKind::SuspiciousIp);
        assert_eq!(ip.len(), 1);
        assert_eq!(d(&ip[0], "source"), "192.0.2.200");
        assert!(d(&ip[0], "signals").contains("scanning (12 distinct paths answered 404)"));
        // Nine distinct paths are not a scan.
        let few: String = log.lines().take(9).map(|l| format!("{l}\n")).collect();
        assert!(of(&run(&few), InsightKind::SuspiciousIp).is_empty());
    }

    /// Pseudo-random logs made of fragments of the recognised formats never make an analyser
    /// or the redaction panic (byte offsets stay on char boundaries).
    #[test]
    fn arbitrary_text_does_not_panic() {
        const PIECES: &[&str] = &[
            "GET ",
            "POST /login",
            " HTTP/1.1\" ",
            "401 ",
            "200 ",
            "404 ",
            "é",
            "€",
            "日本",
            "\r",
            " ",
            "\n",
            "1",
            "9",
            ".",
            ":",
            "::",
            "@",
            "'",
            "\"",
            "%27",
            "%3C",
            "+",
            "=",
            "/",
            "[",
            "]",
            "-",
            "Failed password for ",
            " from ",
            "203.0.113.",
            "2001:db8::",
            "password=",
            "token: ",
            "AKIA",
            "eyJhbGciOi.eyJzdWIi.",
            "-----BEGIN RSA PRIVATE KEY-----",
            "://u:p@h",
            "duration: ",
            " ms  statement: SELECT * FROM t WHERE a = ",
            "# Query_time: ",
            "Load (",
            "ms)  SELECT ",
            "memory usage: ",
            "%",
            "heap used 1.9 GB of ",
            "[gc] ",
            "M->",
            "M(",
            "Image size: ",
            " GB",
            "Started GET \"/x\" for ",
            "Completed 200 OK in ",
            "ms",
            "request_id=",
            "Nov  6 10:45:0",
            "2025-11-06T10:45:0",
            "Z ",
            "[06/Nov/2025:10:45:00 +0000]",
            "UNION SELECT",
            "<script>",
            "Parameters: {",
            "permission denied",
            "not authorized to perform: ",
            "Access denied for user 'r'@'",
            "Ban ",
            "4111 1111 1111 1111",
            "user@example.com",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..60 {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                text.push_str(PIECES[(seed >> 33) as usize % PIECES.len()]);
            }
            let log = LogText::new(&text);
            let config = AnalyserConfig {
                brute_force_failures: 1,
                n_plus_one_repeats: 1,
                ..AnalyserConfig::default()
            };
            for i in analyse(&log, &config)
                .into_iter()
                .chain(super::super::performance::analyse(&log, &config))
            {
                assert!(i.log_line >= 1 && i.log_line as usize <= log.lines.len().max(1));
                assert!(i.excerpt.chars().count() <= crate::logmarket::insight::MAX_EXCERPT_CHARS);
            }
            let red = crate::logmarket::redact::redact(&text);
            // Markers and truncated addresses survive a second pass.
            let again = crate::logmarket::redact::redact(&red);
            assert!(again.matches("[REDACTED:").count() >= red.matches("[REDACTED:").count());
            for line in &log.lines {
                for m in find_secrets(line) {
                    assert!(line.is_char_boundary(m.start) && line.is_char_boundary(m.end));
                }
            }
        }
    }

    #[test]
    fn timestamps() {
        let mut c = Clock::default();
        let a = c.parse("2025-11-06T10:45:00Z x").expect("iso");
        assert_eq!(c.parse("[06/Nov/2025:11:45:00 +0100] x"), Some(a));
        assert_eq!(c.parse("[Thu Nov 06 10:45:00 2025] x"), Some(a));
        assert_eq!(c.parse("[2025-11-06 10:45:30] x"), Some(a + 30));
        let s1 = c.parse("Dec 31 23:59:59 host sshd[1]: x").expect("syslog");
        let s2 = c.parse("Jan  1 00:00:09 host sshd[1]: x").expect("syslog");
        assert_eq!(s2 - s1, 10);
        assert_eq!(c.parse("no time here"), None);
    }
}
