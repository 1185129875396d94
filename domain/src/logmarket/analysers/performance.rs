//! Performance Analyzer: slow database queries, high memory use, large container images, slow
//! HTTP responses and N+1 query patterns, by deterministic rules over known log formats.
//!
//! One keyword prefilter pass per line ([`Triggers`]) picks the candidate lines; regular
//! expressions run only on those. Thresholds come from [`AnalyserConfig`]. Findings that repeat
//! are aggregated (by query shape, endpoint, image, memory source) with an `occurrences`
//! detail, and each kind is capped at [`MAX_INSIGHTS_PER_KIND`]. `docs/analysers.md` documents
//! every rule.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use regex::Regex;

use super::security::{parse_http_request, HttpRequest};
use super::{AnalyserConfig, LogText};
use crate::logmarket::insight::{Insight, InsightKind, Severity, MAX_EXCERPT_CHARS};
use crate::logmarket::redact::Triggers;

// ---------------------------------------------------------------------------------------------
// Helpers shared with the Security Guardian.
// ---------------------------------------------------------------------------------------------

/// The first [`MAX_EXCERPT_CHARS`] characters of a trimmed line (cut on a char boundary).
pub(crate) fn excerpt(line: &str) -> String {
    let line = line.trim();
    match line.char_indices().nth(MAX_EXCERPT_CHARS) {
        Some((i, _)) => line[..i].to_owned(),
        None => line.to_owned(),
    }
}

/// At most `max` characters of `s` (char boundary).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A new insight with the common fields filled in.
pub(crate) fn insight(
    kind: InsightKind,
    severity: Severity,
    title: String,
    line_index: usize,
    line: &str,
) -> Insight {
    Insight {
        kind,
        severity,
        title,
        location: None,
        log_line: u32::try_from(line_index + 1).unwrap_or(u32::MAX),
        excerpt: excerpt(line),
        impact: String::new(),
        root_cause: None,
        fix: String::new(),
        details: BTreeMap::new(),
    }
}

pub(crate) fn set(insight: &mut Insight, key: &str, value: impl ToString) {
    insight.details.insert(key.to_owned(), value.to_string());
}

fn fmt_ms(ms: f64) -> String {
    format!("{ms:.0}")
}

fn fmt_secs(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.0} s", ms / 1000.0)
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

fn fmt_pct(p: f64) -> String {
    if (p - p.round()).abs() < 0.05 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// Decimal sizes as Docker prints them.
fn fmt_bytes(bytes: f64) -> String {
    const UNITS: [(&str, f64); 4] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let v = bytes / size;
            return if (v - v.round()).abs() < 0.05 {
                format!("{v:.0} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes:.0} B")
}

/// `1.4GB`, `300 MiB`, `2Gi`, `1800M`: bytes. Docker's `kB/MB/GB` are decimal, `KiB/MiB/GiB`
/// (and Kubernetes' `Ki/Mi/Gi`, JVM's `K/M/G`) binary.
fn size_bytes(value: f64, unit: &str) -> Option<f64> {
    let u = unit.trim().to_ascii_lowercase();
    let factor = match u.as_str() {
        "b" | "bytes" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "ki" | "kib" => 1024.0,
        "m" | "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(value * factor)
}

/// Milliseconds for a number and a unit (`ms`, `s`, `us`, …; `default_secs` when absent).
fn to_ms(value: f64, unit: Option<&str>, default_secs: bool) -> f64 {
    match unit.map(|u| u.to_ascii_lowercase()) {
        Some(u) if u.starts_with("ms") || u.starts_with("milli") => value,
        Some(u) if u == "us" || u == "µs" || u.starts_with("micro") => value / 1000.0,
        Some(u) if u.starts_with('s') => value * 1000.0,
        Some(_) => value,
        None if default_secs => value * 1000.0,
        None => value,
    }
}

fn strip_ansi(s: &str) -> Cow<'_, str> {
    if !s.contains('\x1b') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(RE_ANSI.replace_all(s, "").into_owned())
}

// ---------------------------------------------------------------------------------------------
// Prefilter
// ---------------------------------------------------------------------------------------------

const P_PG: u32 = 1;
const P_MYSQL: u32 = 1 << 1;
const P_ORM: u32 = 1 << 2;
const P_SLOWQ: u32 = 1 << 3;
const P_JDBC: u32 = 1 << 4;
const P_SELECT: u32 = 1 << 5;
const P_MEM: u32 = 1 << 6;
const P_GC: u32 = 1 << 7;
const P_IMAGE: u32 = 1 << 8;
const P_HTTP: u32 = 1 << 9;
const P_DONE: u32 = 1 << 10;
const P_TIMING: u32 = 1 << 11;
const P_STARTED: u32 = 1 << 12;
const P_REQID: u32 = 1 << 13;
const P_SQLVERB: u32 = 1 << 14;
/// A statement and its time on one line in a framework's own layout ([`timed_statement`]).
const P_TIMED: u32 = 1 << 15;

const P_SQL_TIMING: u32 = P_PG | P_MYSQL | P_ORM | P_SLOWQ | P_JDBC | P_TIMED;

/// Keywords of at least 4 bytes (the SIMD searcher is fastest then). ORM timings (`Load
/// (12.3ms)  SELECT`) are found from their SQL verb plus `ms)`.
static TRIGGERS: LazyLock<Triggers> = LazyLock::new(|| {
    Triggers::new(&[
        ("duration:", P_PG),
        ("Query_time:", P_MYSQL),
        ("low query", P_SLOWQ),
        ("LOW QUERY", P_SLOWQ),
        ("lowQuery", P_SLOWQ),
        ("low_query", P_SLOWQ),
        ("LOW_QUERY", P_SLOWQ),
        ("uery took", P_SLOWQ),
        ("UERY TOOK", P_SLOWQ),
        ("|statement|", P_JDBC),
        ("| statement |", P_JDBC),
        ("Query:[", P_JDBC),
        ("SELECT ", P_SELECT),
        ("select ", P_SELECT),
        ("INSERT ", P_SQLVERB),
        ("insert ", P_SQLVERB),
        ("UPDATE ", P_SQLVERB),
        ("update ", P_SQLVERB),
        ("delete from", P_SQLVERB),
        ("emory", P_MEM),
        ("EMORY", P_MEM),
        ("heap", P_MEM),
        ("Heap", P_MEM),
        ("HEAP", P_MEM),
        ("Mem ", P_MEM),
        ("Mem:", P_MEM),
        ("mem ", P_MEM),
        ("mem=", P_MEM),
        ("MEM ", P_MEM),
        ("RAM ", P_MEM),
        ("iB / ", P_MEM),
        ("[gc]", P_GC),
        ("[gc,", P_GC),
        ("[GC ", P_GC),
        ("Full GC", P_GC),
        ("Pause Young", P_GC),
        ("Pause Full", P_GC),
        ("mage size", P_IMAGE),
        ("mage Size", P_IMAGE),
        ("MAGE SIZE", P_IMAGE),
        ("GET ", P_HTTP),
        ("POST ", P_HTTP),
        ("PUT ", P_HTTP),
        ("DELETE ", P_HTTP),
        ("PATCH ", P_HTTP),
        ("HEAD ", P_HTTP),
        ("OPTIONS ", P_HTTP),
        ("Completed ", P_DONE),
        ("Request finished", P_DONE),
        ("request_time", P_TIMING),
        (" rt=", P_TIMING),
        ("esponse time", P_TIMING),
        ("esponse_time", P_TIMING),
        ("esponseTime", P_TIMING),
        ("esponse-time", P_TIMING),
        ("atency", P_TIMING),
        ("Started ", P_STARTED),
        ("Request starting", P_STARTED),
        ("equest_id", P_REQID),
        ("equest-id", P_REQID),
        ("equestId", P_REQID),
        ("equest-Id", P_REQID),
        ("EQUEST_ID", P_REQID),
        ("EQUEST-ID", P_REQID),
    ])
});

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("performance regex compiles")
}

static RE_ANSI: LazyLock<Regex> = LazyLock::new(|| re(r"\x1b\[[0-9;]*m"));
static RE_PG: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"duration:\s*([0-9]+(?:\.[0-9]+)?)\s*ms(?:\s+(?:statement|execute\s+[^:]*|bind\s+[^:]*|parse\s+[^:]*):\s*(.*))?",
    )
});
static RE_MYSQL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"Query_time:\s*([0-9]+(?:\.[0-9]+)?)(?:\s+Lock_time:\s*[0-9.]+)?(?:\s+Rows_sent:\s*(\d+))?(?:\s+Rows_examined:\s*(\d+))?",
    )
});
static RE_ORM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\((\d+(?:\.\d+)?)\s*ms\)\s*(?:\x1b\[[0-9;]*m\s*)*((?i:select|insert|update|delete|with)\b.*)",
    )
});
static RE_SLOWQ: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(slow[ _]?query|query\s+took)([^0-9\n]{0,24}?)(\d+(?:\.\d+)?)\s*(ms|msec|milliseconds?|s|secs?|seconds?)\b(.*)",
    )
});
static RE_P6SPY: LazyLock<Regex> =
    LazyLock::new(|| re(r"\|\s*(?:took\s*)?(\d+)\s*(?:ms)?\s*\|\s*statement\s*\|(.*)"));
static RE_DSPROXY: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\bTime:\s*(\d+)\b.*?Query:\["(.*?)"\]"#));
/// Statement and time on one line, in the layouts frameworks log them (the time's unit in the
/// group named `u`, milliseconds when absent unless `secs` matched):
/// * `query SELECT … took 1842ms` (the seed's example) and `query "…" took 1.8s`;
/// * Sequelize `Executed (default): SELECT …; Elapsed time: 1842ms`;
/// * Prisma query events `Query: SELECT … Params: [..] Duration: 1842ms`;
/// * GORM `[1842.123ms] [rows:1] SELECT …`;
/// * log4jdbc `SELECT … {executed in 1842 msec}`;
/// * Django `django.db.backends` `(1.842) SELECT …; args=(…)` and Ruby Sequel `(1.842134s)
///   SELECT …` (seconds).
static RE_TIMED: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"(?ix)
        \bquery\s*[:=]?\s*"?(?P<q1>(?:select|insert|update|delete|with)\b.*?)"?\s+took\s+(?P<t1>\d+(?:\.\d+)?)\s*(?P<u1>ms|msec|milliseconds?|s|secs?|seconds?)\b
        | \bExecuted\s\([^)]*\):\s*(?P<q2>.*?);?\s+Elapsed\ time:\s*(?P<t2>\d+(?:\.\d+)?)\s*(?P<u2>ms)
        | \bQuery:\s*(?P<q3>(?:select|insert|update|delete|with)\b.*?)\s+(?:Params:.*?\s+)?Duration:\s*(?P<t3>\d+(?:\.\d+)?)\s*(?P<u3>ms|s)\b
        | \[(?P<t4>\d+(?:\.\d+)?)(?P<u4>ms|s)\]\s*\[rows:[^\]]*\]\s*(?P<q4>.*)
        | (?P<q5>(?:select|insert|update|delete|with)\b.*?)\s*\{executed\ in\ (?P<t5>\d+)\s*(?P<u5>msec|ms)\}
        | (?:^|\s)\((?P<t6>\d+\.\d+)(?P<u6>s)?\)\s+(?P<q6>(?:select|insert|update|delete|with)\b.*?)(?:;\s*args=.*)?$
        "#)
});
/// What a line with a SQL verb carries when a framework timed it ([`RE_TIMED`], TypeORM).
const TIMED_MARKERS: [&str; 7] = [
    " took ",
    "lapsed time",
    "Duration:",
    "[rows:",
    "xecuted in",
    "uery is slow",
    ") ",
];

/// Ecto `QUERY OK source="users" db=1842.3ms …` (read from the statement on the next line)
/// and TypeORM `query is slow: SELECT …` (with `execution time: 1842` next).
static RE_ECTO: LazyLock<Regex> =
    LazyLock::new(|| re(r"QUERY (?:OK|ERROR)\b.*?\bdb=(\d+(?:\.\d+)?)ms"));
static RE_TYPEORM: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)query is slow:\s*(.*?)(?:\s+-- PARAMETERS:.*)?$"));
static RE_EXEC_TIME: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)execution time:\s*(\d+(?:\.\d+)?)"));
static RE_SQL_START: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(select|insert\s+into|update|delete\s+from|with)\b"));
static RE_FROM_TABLE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\b(?:from|update|into)\s+((?:"?[A-Za-z_][\w$]*"?\.)?"?[A-Za-z_][\w$]*"?)(?:\s+(?:as\s+)?([A-Za-z_]\w*))?"#,
    )
});
static RE_WHERE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)\bwhere\s+\(?\s*(?:("?[A-Za-z_]\w*"?)\.)?"?([A-Za-z_]\w*)"?\s*(=|\bilike\b|\blike\b|\bin\b)\s*(\S*)"#,
    )
});
static RE_JOIN: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?i)\bjoin\s+"?([A-Za-z_][\w$.]*)"?\s+(?:as\s+)?"?([A-Za-z_]\w*)"?"#));
static RE_IN_LIST: LazyLock<Regex> = LazyLock::new(|| re(r"\bin\s*\(\s*\?(?:\s*,\s*\?)*\s*\)"));
static RE_REQ_ID: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(?:x-request-id|request[_-]?id|requestid)["']?\s*[:=]\s*["']?([\w.:-]{4,})|\[(req-[0-9a-z-]{6,})|\[([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\]"#,
    )
});

// ---------------------------------------------------------------------------------------------
// Analyser
// ---------------------------------------------------------------------------------------------

pub fn analyse(log: &LogText<'_>, config: &AnalyserConfig) -> Vec<Insight> {
    let mut state = State::new(config);
    let candidates = TRIGGERS.candidate_lines(log.text, &log.lines);
    let mut next = candidates.iter().peekable();
    // Rules read the line bodies (without a CI / log timestamp prefix); excerpts are filled
    // from the raw lines by `with_lines`.
    for (i, line) in log.bodies.iter().enumerate() {
        if let Some(&&(_, bits)) = next.peek().filter(|(c, _)| *c == i) {
            next.next();
            state.line(log, i, line, bits);
        }
        if ends_with_size_unit(line) {
            state.image_row(log, i, line);
        }
    }
    complete(state.finish(), log)
}

/// A timed statement: (milliseconds, statement, (rows sent, rows examined)).
type Timed = (f64, Option<String>, Option<(u64, u64)>);

struct SlowQuery {
    line: usize,
    ms: f64,
    query: Option<String>,
    rows: Option<(u64, u64)>,
    count: u32,
}

struct Memory {
    line: usize,
    percent: f64,
    used_total: Option<(f64, f64)>,
    count: u32,
}

struct Image {
    line: usize,
    bytes: f64,
    count: u32,
}

struct Response {
    line: usize,
    ms: f64,
    status: Option<u16>,
    db_ms: Option<f64>,
    count: u32,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Scope<'a> {
    Id(&'a str),
    Request(u32),
    Block(u32),
}

struct Repeat {
    first_line: usize,
    count: u32,
    query: String,
}

struct State<'c, 'a> {
    config: &'c AnalyserConfig,
    slow_queries: Vec<(String, SlowQuery)>,
    memory: Vec<(&'static str, Memory)>,
    images: Vec<(String, Image)>,
    responses: Vec<(String, Response)>,
    // N+1 tracking.
    repeats: HashMap<(Scope<'a>, String), Repeat>,
    scope_labels: HashMap<Scope<'a>, String>,
    request: Option<u32>,
    requests: u32,
    /// The last line that carried a request id.
    last_id_line: Option<&'a str>,
    block: u32,
    last_sql: Option<usize>,
    // Request start lines by request id ("" without one): (method, path).
    started: HashMap<&'a str, (&'a str, &'a str)>,
}

/// Query lines further apart than this many other lines are not one request (fallback scope).
const MAX_SQL_GAP: usize = 3;

impl<'c, 'a> State<'c, 'a> {
    fn new(config: &'c AnalyserConfig) -> Self {
        Self {
            config,
            slow_queries: Vec::new(),
            memory: Vec::new(),
            images: Vec::new(),
            responses: Vec::new(),
            repeats: HashMap::new(),
            scope_labels: HashMap::new(),
            request: None,
            requests: 0,
            last_id_line: None,
            block: 0,
            last_sql: None,
            started: HashMap::new(),
        }
    }

    fn line(&mut self, log: &LogText<'a>, i: usize, line: &'a str, mut bits: u32) {
        if bits & (P_SELECT | P_SQLVERB) != 0 && line.contains("ms)") {
            bits |= P_ORM;
        }
        // Framework layouts that time a statement all carry its verb (the trigger set is
        // full, so they are told apart here, on SQL lines only).
        if bits & (P_SELECT | P_SQLVERB) != 0
            && (TIMED_MARKERS.iter().any(|m| line.contains(m))
                || i > 0 && log.bodies[i - 1].contains("QUERY "))
        {
            bits |= P_TIMED;
        }
        let req_id = if bits & (P_SELECT | P_STARTED | P_DONE) != 0 {
            request_id(line)
        } else {
            None
        };
        if bits & P_STARTED != 0 {
            // Only an HTTP request start opens a request scope (not `Started HttpServer2`).
            if let Some(req) = parse_http_request(line) {
                self.requests += 1;
                self.request = Some(self.requests);
                self.started
                    .insert(req_id.unwrap_or(""), (req.method, req.path()));
                self.scope_labels.insert(
                    Scope::Request(self.requests),
                    format!("{} {}", req.method, req.path()),
                );
            }
        }
        if bits & P_REQID != 0 || req_id.is_some() {
            // Resolved only if a query line needs it.
            self.last_id_line = Some(line);
        }
        let mut was_query = false;
        if bits & P_SQL_TIMING != 0 {
            was_query = self.slow_query(log, i, line, bits);
        }
        if bits & P_SELECT != 0 {
            self.sql_line(i, line, req_id);
        }
        if bits & (P_MEM | P_GC) != 0 {
            self.memory_line(i, line, bits);
        }
        if bits & P_IMAGE != 0 {
            self.image_size_line(log, i, line);
        }
        if !was_query && bits & (P_HTTP | P_DONE | P_TIMING) != 0 {
            self.response_line(i, line, bits, req_id);
        }
        if bits & P_DONE != 0 {
            self.request = None;
            self.last_id_line = None;
        }
    }

    // ---- slow queries ------------------------------------------------------------------------

    fn slow_query(&mut self, log: &LogText<'a>, i: usize, line: &str, bits: u32) -> bool {
        let mut found: Option<Timed> = None;
        if bits & P_PG != 0 {
            if let Some(c) = RE_PG.captures(line) {
                let ms: f64 = c[1].parse().unwrap_or(0.0);
                let stmt = c.get(2).map(|m| m.as_str().to_owned()).or_else(|| {
                    // `log_duration` style: the statement is on the next line.
                    log.bodies.get(i + 1).and_then(|next| {
                        next.find("STATEMENT:")
                            .map(|p| next[p + "STATEMENT:".len()..].trim().to_owned())
                    })
                });
                if stmt.is_some() || line.contains("LOG:") {
                    found = Some((ms, stmt, None));
                }
            }
        }
        if found.is_none() && bits & P_MYSQL != 0 {
            if let Some(c) = RE_MYSQL.captures(line) {
                let secs: f64 = c[1].parse().unwrap_or(0.0);
                let rows = match (c.get(2), c.get(3)) {
                    (Some(s), Some(e)) => Some((
                        s.as_str().parse().unwrap_or(0),
                        e.as_str().parse().unwrap_or(0),
                    )),
                    _ => None,
                };
                found = Some((secs * 1000.0, mysql_statement(log, i), rows));
            }
        }
        if found.is_none() && bits & P_ORM != 0 {
            if let Some(c) = RE_ORM.captures(line) {
                let ms: f64 = c[1].parse().unwrap_or(0.0);
                found = Some((ms, Some(c[2].to_owned()), None));
            }
        }
        if found.is_none() && bits & P_SLOWQ != 0 {
            if let Some(c) = RE_SLOWQ.captures(line) {
                let between = c[2].to_ascii_lowercase();
                let is_setting = ["threshold", "limit", "long_query_time", ">", "log "]
                    .iter()
                    .any(|w| between.contains(w));
                if !is_setting {
                    let ms = to_ms(c[3].parse().unwrap_or(0.0), Some(&c[4]), false);
                    let rest = c.get(5).map_or("", |m| m.as_str());
                    let stmt = RE_SQL_START
                        .find(rest)
                        .map(|m| rest[m.start()..].to_owned())
                        .or_else(|| {
                            log.bodies.get(i + 1).and_then(|next| {
                                RE_SQL_START
                                    .find(next)
                                    .filter(|m| m.start() < 8)
                                    .map(|m| next[m.start()..].to_owned())
                            })
                        });
                    found = Some((ms, stmt, None));
                }
            }
        }
        if found.is_none() && bits & P_JDBC != 0 {
            if let Some(c) = RE_P6SPY.captures(line) {
                let ms: f64 = c[1].parse().unwrap_or(0.0);
                let fields = &c[2];
                let stmt = fields
                    .rsplit('|')
                    .map(str::trim)
                    .find(|f| RE_SQL_START.find(f).is_some_and(|m| m.start() == 0))
                    .map(str::to_owned)
                    .or_else(|| log.bodies.get(i + 1).map(|n| n.trim().to_owned()));
                found = Some((ms, stmt, None));
            } else if let Some(c) = RE_DSPROXY.captures(line) {
                let ms: f64 = c[1].parse().unwrap_or(0.0);
                found = Some((ms, Some(c[2].to_owned()), None));
            }
        }
        if found.is_none() && bits & P_TIMED != 0 {
            found = timed_statement(log, i, line);
        }
        let Some((ms, stmt, rows)) = found else {
            return false;
        };
        if ms > self.config.slow_query_ms as f64 {
            let stmt = stmt.map(|s| clean_statement(&s)).filter(|s| !s.is_empty());
            let key = stmt.as_deref().map_or_else(|| "-".to_owned(), sql_shape);
            match self.slow_queries.iter_mut().find(|(k, _)| *k == key) {
                Some((_, q)) => {
                    q.count += 1;
                    if ms > q.ms {
                        q.ms = ms;
                        q.line = i;
                        q.query = stmt;
                        q.rows = rows;
                    }
                }
                None => self.slow_queries.push((
                    key,
                    SlowQuery {
                        line: i,
                        ms,
                        query: stmt,
                        rows,
                        count: 1,
                    },
                )),
            }
        }
        true
    }

    // ---- N+1 ---------------------------------------------------------------------------------

    fn sql_line(&mut self, i: usize, line: &'a str, req_id: Option<&'a str>) {
        let Some(m) = RE_SQL_START.find(line) else {
            return;
        };
        let stmt = &line[m.start()..];
        if !m.as_str().eq_ignore_ascii_case("select") || !contains_ci(stmt, "from") {
            return;
        }
        // Rails query-cache hits do not reach the database.
        if line[..m.start()].contains("CACHE") {
            return;
        }
        let scope = if let Some(id) = req_id {
            Scope::Id(id)
        } else if let Some(r) = self.request {
            Scope::Request(r)
        } else if let Some(id) = self.last_id_line.and_then(request_id) {
            Scope::Id(id)
        } else {
            if self.last_sql.is_none_or(|l| i - l > MAX_SQL_GAP + 1) {
                self.block += 1;
            }
            Scope::Block(self.block)
        };
        self.last_sql = Some(i);
        let shape = sql_shape(&clean_statement(stmt));
        let entry = self
            .repeats
            .entry((scope, shape))
            .or_insert_with_key(|(_, shape)| Repeat {
                first_line: i,
                count: 0,
                query: shape.clone(),
            });
        entry.count += 1;
    }

    // ---- memory ------------------------------------------------------------------------------

    fn memory_line(&mut self, i: usize, line: &str, bits: u32) {
        let Some((label, percent, used_total)) = memory_reading(line, bits) else {
            return;
        };
        if percent <= f64::from(self.config.high_memory_percent) || percent > 100.0 {
            return;
        }
        match self.memory.iter_mut().find(|(l, _)| *l == label) {
            Some((_, m)) => {
                m.count += 1;
                if percent > m.percent {
                    m.percent = percent;
                    m.line = i;
                    m.used_total = used_total;
                }
            }
            None => self.memory.push((
                label,
                Memory {
                    line: i,
                    percent,
                    used_total,
                    count: 1,
                },
            )),
        }
    }

    // ---- images ------------------------------------------------------------------------------

    fn image_row(&mut self, log: &LogText<'a>, i: usize, line: &str) {
        if let Some(c) = RE_IMAGE_ROW.captures(line) {
            let name = if &c[2] == "<none>" {
                c[1].to_owned()
            } else {
                format!("{}:{}", &c[1], &c[2])
            };
            if let Some(bytes) = c[3].parse().ok().and_then(|v| size_bytes(v, &c[4])) {
                self.image(i, name, bytes);
            }
        } else if !line.contains("mage size") && !line.contains("MAGE SIZE") {
            // `Successfully built` / `naming to` followed by a bare size line.
            if let Some(c) = RE_IMAGE_BARE_SIZE.captures(line) {
                if let Some(name) = image_name_before(log, i) {
                    if let Some(bytes) = c[1].parse().ok().and_then(|v| size_bytes(v, &c[2])) {
                        self.image(i, name, bytes);
                    }
                }
            }
        }
    }

    fn image_size_line(&mut self, log: &LogText<'a>, i: usize, line: &str) {
        if let Some(c) = RE_IMAGE_SIZE.captures(line) {
            if let Some(bytes) = c[1].parse().ok().and_then(|v| size_bytes(v, &c[2])) {
                let name =
                    image_name_before(log, i).unwrap_or_else(|| "(unnamed image)".to_owned());
                self.image(i, name, bytes);
            }
        }
    }

    fn image(&mut self, i: usize, name: String, bytes: f64) {
        if bytes <= self.config.large_image_bytes as f64 {
            return;
        }
        match self.images.iter_mut().find(|(n, _)| *n == name) {
            Some((_, img)) => {
                img.count += 1;
                if bytes > img.bytes {
                    img.bytes = bytes;
                    img.line = i;
                }
            }
            None => self.images.push((
                name,
                Image {
                    line: i,
                    bytes,
                    count: 1,
                },
            )),
        }
    }

    // ---- responses ---------------------------------------------------------------------------

    fn response_line(&mut self, i: usize, line: &'a str, bits: u32, req_id: Option<&'a str>) {
        let mut db_ms = None;
        let (endpoint, ms, status) = if bits & P_DONE != 0 && RE_DONE.is_match(line) {
            let c = RE_DONE.captures(line).expect("matched");
            let (status, ms) = match (c.get(1), c.get(2), c.get(3), c.get(4)) {
                (Some(s), Some(t), _, _) => (s.as_str(), t.as_str()),
                (_, _, Some(t), Some(s)) => (s.as_str(), t.as_str()),
                _ => return,
            };
            db_ms = RE_AR_TIME
                .captures(line)
                .and_then(|c| c[1].parse::<f64>().ok());
            let endpoint = match self.started.get(req_id.unwrap_or("")) {
                Some((m, p)) => format!("{m} {}", normalise_path(p)),
                None => match parse_http_request(line) {
                    Some(req) => format!("{} {}", req.method, normalise_path(req.path())),
                    None => "(unknown endpoint)".to_owned(),
                },
            };
            (
                endpoint,
                ms.parse::<f64>().unwrap_or(0.0),
                status.parse().ok(),
            )
        } else {
            let Some(req) = parse_http_request(line) else {
                return;
            };
            if bits & P_STARTED != 0 && line.contains("Started ") {
                return;
            }
            let Some(ms) = response_ms(line, &req) else {
                return;
            };
            (
                format!("{} {}", req.method, normalise_path(req.path())),
                ms,
                req.status,
            )
        };
        if ms <= self.config.slow_response_ms as f64 {
            return;
        }
        match self.responses.iter_mut().find(|(e, _)| *e == endpoint) {
            Some((_, r)) => {
                r.count += 1;
                if ms > r.ms {
                    r.ms = ms;
                    r.line = i;
                    r.status = status;
                    r.db_ms = db_ms;
                }
            }
            None => self.responses.push((
                endpoint,
                Response {
                    line: i,
                    ms,
                    status,
                    db_ms,
                    count: 1,
                },
            )),
        }
    }

    // ---- insights ----------------------------------------------------------------------------

    fn finish(self) -> Vec<Insight> {
        let config = self.config;
        let mut out = Vec::new();
        for (_, q) in &self.slow_queries {
            out.push(slow_query_insight(config, q));
        }
        for (label, m) in &self.memory {
            out.push(memory_insight(config, label, m));
        }
        for (name, img) in &self.images {
            out.push(image_insight(config, name, img));
        }
        for (endpoint, r) in &self.responses {
            out.push(response_insight(config, endpoint, r));
        }
        let threshold = self.config.n_plus_one_repeats.max(2);
        let mut repeats: Vec<(&(Scope<'_>, String), &Repeat)> = self
            .repeats
            .iter()
            .filter(|(_, r)| r.count >= threshold)
            .collect();
        repeats.sort_by_key(|(_, r)| r.first_line);
        for ((scope, _), r) in repeats {
            out.push(n_plus_one_insight(config, scope, r, &self.scope_labels));
        }
        out
    }
}

/// Fills in excerpts for insights built without the line text.
fn with_lines(mut insights: Vec<Insight>, log: &LogText<'_>) -> Vec<Insight> {
    for ins in &mut insights {
        if ins.excerpt.is_empty() {
            if let Some(line) = log.lines.get(ins.log_line as usize - 1) {
                ins.excerpt = excerpt(line);
            }
        }
    }
    insights
}

/// A statement timed on its own line in a framework's layout ([`RE_TIMED`], Ecto, TypeORM).
fn timed_statement(log: &LogText<'_>, i: usize, line: &str) -> Option<Timed> {
    if let Some(c) = RE_TIMED.captures(line) {
        for n in 1..=6 {
            let Some(t) = c.name(&format!("t{n}")) else {
                continue;
            };
            let value: f64 = t.as_str().parse().ok()?;
            let unit = c.name(&format!("u{n}")).map(|u| u.as_str());
            // Django logs seconds without a unit.
            let ms = to_ms(value, unit, n == 6);
            let stmt = c.name(&format!("q{n}")).map(|q| q.as_str().to_owned());
            return Some((ms, stmt, None));
        }
    }
    // Ecto: the timing is on the line before the statement.
    if let Some(c) = i
        .checked_sub(1)
        .and_then(|p| RE_ECTO.captures(log.bodies[p]))
    {
        let ms: f64 = c[1].parse().ok()?;
        let stmt = RE_SQL_START
            .find(line)
            .map(|m| line[m.start()..].to_owned());
        return Some((ms, stmt, None));
    }
    if let Some(c) = RE_TYPEORM.captures(line) {
        let ms: f64 = (i + 1..(i + 3).min(log.bodies.len()))
            .find_map(|j| RE_EXEC_TIME.captures(log.bodies[j]))
            .and_then(|t| t[1].parse().ok())?;
        return Some((ms, Some(c[1].to_owned()), None));
    }
    None
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn request_id(line: &str) -> Option<&str> {
    let c = RE_REQ_ID.captures(line)?;
    c.get(1)
        .or_else(|| c.get(2))
        .or_else(|| c.get(3))
        .map(|m| m.as_str())
}

/// The statement of a MySQL slow-log entry: the lines after `# Query_time`, without `use db;`
/// and `SET timestamp=…;`, up to the next `#` line.
fn mysql_statement(log: &LogText<'_>, i: usize) -> Option<String> {
    let mut stmt = String::new();
    for next in log.bodies.iter().skip(i + 1).take(20) {
        let t = next.trim();
        if t.starts_with('#') {
            break;
        }
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("use ") || lower.starts_with("set timestamp") || t.is_empty() {
            continue;
        }
        if !stmt.is_empty() {
            stmt.push(' ');
        }
        stmt.push_str(t);
        if t.ends_with(';') || stmt.len() > 400 {
            break;
        }
    }
    (!stmt.is_empty()).then_some(stmt)
}

/// The statement without colour codes, bind lists (`  [["id", 1]]`, `; args=(…)`) or a
/// trailing `;`, on one line.
fn clean_statement(s: &str) -> String {
    let s = strip_ansi(s);
    let mut s: &str = &s;
    for cut in ["  [[", "; args=", "\"], Params:["] {
        if let Some(p) = s.find(cut) {
            s = &s[..p];
        }
    }
    let s = s.trim().trim_end_matches(['\'', ']', ';']).trim();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The query with its literals masked: numbers, quoted strings, bind parameters (`$1`, `?`,
/// `:name`) become `?`, IN-lists `in (?)`, whitespace is collapsed, keywords lower-cased.
pub(crate) fn sql_shape(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    let mut prev: char = ' ';
    while let Some((_, c)) = chars.next() {
        match c {
            '\'' => {
                // String literal, '' escapes included.
                while let Some((_, d)) = chars.next() {
                    if d == '\'' {
                        if chars.peek().is_some_and(|&(_, e)| e == '\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
                prev = '?';
            }
            '0'..='9' if !(prev.is_alphanumeric() || prev == '_' || prev == '$') => {
                while chars
                    .peek()
                    .is_some_and(|&(_, d)| d.is_ascii_digit() || d == '.')
                {
                    chars.next();
                }
                out.push('?');
                prev = '?';
            }
            '$' if chars.peek().is_some_and(|&(_, d)| d.is_ascii_digit()) => {
                while chars.peek().is_some_and(|&(_, d)| d.is_ascii_digit()) {
                    chars.next();
                }
                out.push('?');
                prev = '?';
            }
            ':' if prev != ':'
                && chars.peek().is_some_and(|&(_, d)| d.is_ascii_alphabetic())
                && !out.ends_with(':') =>
            {
                while chars
                    .peek()
                    .is_some_and(|&(_, d)| d.is_ascii_alphanumeric() || d == '_')
                {
                    chars.next();
                }
                out.push('?');
                prev = '?';
            }
            c if c.is_whitespace() => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
                prev = ' ';
            }
            c => {
                out.push(c.to_ascii_lowercase());
                prev = c;
            }
        }
    }
    let trimmed = out.trim_end_matches([' ', ';']);
    let shape = RE_IN_LIST.replace_all(trimmed, "in (?)");
    shape.into_owned()
}

/// The index suggestion for a slow statement.
fn index_fix(query: Option<&str>) -> (String, Option<String>) {
    let Some(q) = query else {
        return (
            "Log the statement (e.g. PostgreSQL log_min_duration_statement) and run EXPLAIN \
             ANALYZE on it to find the missing index or the expensive step"
                .to_owned(),
            None,
        );
    };
    let generic = "Run EXPLAIN ANALYZE on the query; add an index on the filtered and joined \
                   columns or rewrite it (select only needed columns, paginate)"
        .to_owned();
    let (Some(from), Some(w)) = (RE_FROM_TABLE.captures(q), RE_WHERE.captures(q)) else {
        return (generic, None);
    };
    let unquote = |s: &str| s.trim_matches('"').to_owned();
    let table_full = unquote(&from[1]);
    let table = table_full
        .rsplit('.')
        .next()
        .unwrap_or(&table_full)
        .trim_matches('"')
        .to_owned();
    let alias = from.get(2).map(|a| a.as_str().to_owned());
    let alias = alias.filter(|a| {
        !matches!(
            a.to_ascii_lowercase().as_str(),
            "where"
                | "join"
                | "inner"
                | "left"
                | "right"
                | "set"
                | "values"
                | "order"
                | "group"
                | "limit"
                | "on"
        )
    });
    let column = unquote(&w[2]);
    let qualifier = w.get(1).map(|m| unquote(m.as_str()));
    let table = match qualifier {
        Some(qual) if qual != table && Some(&qual) != alias.as_ref() => {
            // A joined table: resolve its alias if the JOIN names it.
            let join = RE_JOIN
                .captures_iter(q)
                .find(|c| c[2].eq_ignore_ascii_case(&qual))
                .map(|c| c[1].to_owned());
            join.unwrap_or(qual)
        }
        _ => table,
    };
    let op = w[3].to_ascii_lowercase();
    let value = &w[4];
    if (op == "like" || op == "ilike") && value.starts_with("'%") {
        return (
            format!(
                "A leading-wildcard LIKE on {table}.{column} cannot use a B-tree index: use a \
                 trigram (pg_trgm GIN) or full-text index, or anchor the pattern"
            ),
            Some(format!(
                "Leading-wildcard pattern match on {table}.{column}"
            )),
        );
    }
    if op == "=" || op == "in" {
        if column.eq_ignore_ascii_case("id") {
            return (
                format!(
                    "{table}.id is normally the primary key (already indexed): EXPLAIN ANALYZE \
                     the query and check for lock waits, a large IN list or an expensive join"
                ),
                None,
            );
        }
        return (
            format!(
                "Add an index on {table}.{column} (CREATE INDEX ON {table} ({column})) if \
                 EXPLAIN ANALYZE shows a sequential scan"
            ),
            None,
        );
    }
    (generic, None)
}

fn slow_query_insight(config: &AnalyserConfig, q: &SlowQuery) -> Insight {
    let severity = if q.ms >= 5.0 * config.slow_query_ms as f64 {
        Severity::High
    } else {
        Severity::Medium
    };
    let title = if q.count > 1 {
        format!(
            "Database query took {}ms ({} slow executions)",
            fmt_ms(q.ms),
            q.count
        )
    } else {
        format!("Database query took {}ms", fmt_ms(q.ms))
    };
    let mut ins = insight(InsightKind::SlowQuery, severity, title, q.line, "");
    let (fix, mut cause) = index_fix(q.query.as_deref());
    if let Some((sent, examined)) = q.rows {
        if examined >= 1000 && examined >= 100 * sent.max(1) {
            cause = Some(format!(
                "Examined {examined} rows to return {sent}: the filter is not served by an index \
                 (full scan)"
            ));
        }
        set(&mut ins, "rowsSent", sent);
        set(&mut ins, "rowsExamined", examined);
    }
    ins.fix = fix;
    ins.root_cause = cause;
    ins.impact = format!(
        "Each execution holds a database connection for {}; every request that runs it waits \
         at least as long (threshold {} ms)",
        fmt_secs(q.ms),
        config.slow_query_ms
    );
    set(&mut ins, "durationMs", fmt_ms(q.ms));
    set(&mut ins, "thresholdMs", config.slow_query_ms);
    set(
        &mut ins,
        "query",
        q.query
            .as_deref()
            .map_or_else(|| "(statement not logged)".to_owned(), |s| truncate(s, 200)),
    );
    set(&mut ins, "occurrences", q.count);
    ins
}

// ---- memory ----------------------------------------------------------------------------------

static RE_GC: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(\d+(?:\.\d+)?)([KMG])->(\d+(?:\.\d+)?)([KMG])\((\d+(?:\.\d+)?)([KMG])\)")
});
static RE_DOCKER_STATS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|kB|MB|GB)\s+/\s+(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB|TiB|kB|MB|GB)\s+(\d+(?:\.\d+)?)%",
    )
});
static RE_MEM_OF: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(heap|memory|mem|ram)\b[^\n%]{0,30}?(\d+(?:\.\d+)?)\s*([kmgt]i?b?|bytes)\s*(?:of|/)\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|bytes)\b",
    )
});
static RE_MEM_PCT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)\b(heap|memory|mem|ram)\b([^%\n]{0,40}?)(\d{1,3}(?:\.\d+)?)\s*%(.{0,16})")
});
static RE_TOP_MEM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\bmem\s*:\s*(\d+(?:\.\d+)?)\s+total,\s*(\d+(?:\.\d+)?)\s+free,\s*(\d+(?:\.\d+)?)\s+used",
    )
});

type Reading = (&'static str, f64, Option<(f64, f64)>);

/// (source label, percent used, (used, total) bytes when known).
fn memory_reading(line: &str, bits: u32) -> Option<Reading> {
    if bits & P_GC != 0 {
        if let Some(c) = RE_GC.captures_iter(line).last() {
            let after = size_bytes(c[3].parse().ok()?, &c[4])?;
            let total = size_bytes(c[5].parse().ok()?, &c[6])?;
            if total > 0.0 {
                return Some((
                    "JVM heap after GC",
                    100.0 * after / total,
                    Some((after, total)),
                ));
            }
        }
    }
    if bits & P_MEM == 0 {
        return None;
    }
    let has = |needle: &str| memchr::memmem::find(line.as_bytes(), needle.as_bytes()).is_some();
    let percent = memchr::memchr(b'%', line.as_bytes()).is_some();
    if percent && has(" / ") {
        if let Some(c) = RE_DOCKER_STATS.captures(line) {
            let used = size_bytes(c[1].parse().ok()?, &c[2])?;
            let total = size_bytes(c[3].parse().ok()?, &c[4])?;
            return Some(("container memory", c[5].parse().ok()?, Some((used, total))));
        }
    }
    if !has(" total,") {
        // No `top` line.
    } else if let Some(c) = RE_TOP_MEM.captures(line) {
        let total: f64 = c[1].parse().ok()?;
        let used: f64 = c[3].parse().ok()?;
        if total > 0.0 {
            return Some(("system memory", 100.0 * used / total, None));
        }
    }
    if !(has(" of ") || has("/")) {
        // No `used of total` reading.
    } else if let Some(c) = RE_MEM_OF.captures(line) {
        let used = size_bytes(c[2].parse().ok()?, &c[3])?;
        let total = size_bytes(c[4].parse().ok()?, &c[5])?;
        if total > 0.0 && used <= total {
            return Some((
                label_of(&c[1], line),
                100.0 * used / total,
                Some((used, total)),
            ));
        }
    }
    if !percent {
        return None;
    }
    if let Some(c) = RE_MEM_PCT.captures(line) {
        let between = c[2].to_ascii_lowercase();
        if [
            "threshold",
            "limit",
            "target",
            "max",
            "request",
            "alert",
            ">",
            "when",
            "above",
        ]
        .iter()
        .any(|w| between.contains(w))
        {
            return None;
        }
        let v: f64 = c[3].parse().ok()?;
        let after = c[4].to_ascii_lowercase();
        let free = ["free", "available", "avail", "idle", "left", "remaining"]
            .iter()
            .any(|w| after.contains(w) || between.contains(w));
        let used = if free { 100.0 - v } else { v };
        return Some((label_of(&c[1], line), used, None));
    }
    None
}

fn label_of(word: &str, line: &str) -> &'static str {
    if word.eq_ignore_ascii_case("heap") {
        "heap"
    } else if contains_ci(line, "container") || contains_ci(line, "pod") {
        "container memory"
    } else {
        "memory"
    }
}

fn memory_insight(config: &AnalyserConfig, label: &str, m: &Memory) -> Insight {
    let severity = if m.percent >= 95.0 {
        Severity::Critical
    } else if m.percent >= 90.0 {
        Severity::High
    } else {
        Severity::Medium
    };
    let title = match m.used_total {
        Some((used, total)) if label == "JVM heap after GC" => format!(
            "JVM heap {} full after GC ({} of {})",
            fmt_pct(m.percent),
            fmt_bytes(used),
            fmt_bytes(total)
        ),
        _ => format!(
            "High {label} usage: {} (threshold {}%)",
            fmt_pct(m.percent),
            config.high_memory_percent
        ),
    };
    let mut ins = insight(InsightKind::HighMemory, severity, title, m.line, "");
    if label == "JVM heap after GC" {
        ins.root_cause = Some(format!(
            "Live data still fills {} of the heap after garbage collection: collections free \
             little (a leak, an unbounded cache or an undersized heap)",
            fmt_pct(m.percent)
        ));
        ins.fix = "Take a heap dump (jcmd <pid> GC.heap_dump) and find the retained objects; \
                   fix leaks and bound caches; raise -Xmx only if the live set is legitimate"
            .to_owned();
    } else {
        ins.fix = "Find what holds the memory (heap dump or memory profiler), fix leaks and \
                   unbounded caches, then right-size the memory limit and alert before the OOM \
                   killer does"
            .to_owned();
    }
    ins.impact = "Close to the limit the process slows down (GC, swapping) and risks being \
                  killed for running out of memory"
        .to_owned();
    set(&mut ins, "current", fmt_pct(m.percent));
    set(
        &mut ins,
        "threshold",
        format!("{}%", config.high_memory_percent),
    );
    set(&mut ins, "source", label);
    if let Some((used, total)) = m.used_total {
        set(&mut ins, "used", fmt_bytes(used));
        set(&mut ins, "total", fmt_bytes(total));
    }
    set(&mut ins, "occurrences", m.count);
    ins
}

// ---- images ----------------------------------------------------------------------------------

static RE_IMAGE_ROW: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^\s*([\w./:-]+)\s+(\S+)\s+(?:sha256:)?[0-9a-f]{12}\s+.+?\s(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$",
    )
});
static RE_IMAGE_SIZE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\bimage\s+size\b\s*(?:is|:|=)?\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b)\b"));
static RE_IMAGE_BARE_SIZE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^\s*(?:#\d+\s+)?(?:total\s+)?size:?\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b)\s*$")
});
static RE_IMAGE_NAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:naming to|Successfully tagged|writing image|docker build .*?-t|--tag)\s+(?:docker\.io/library/)?([\w./:@-]+)",
    )
});

fn ends_with_size_unit(line: &str) -> bool {
    let b = line.as_bytes();
    let end = b.len()
        - b.iter()
            .rev()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
    end > 3 && b[end - 1] == b'B' && b[end - 2].is_ascii_alphabetic()
}

/// The image a build or push log was naming before line `i`.
fn image_name_before(log: &LogText<'_>, i: usize) -> Option<String> {
    let from = i.saturating_sub(50);
    log.bodies[from..=i].iter().rev().find_map(|l| {
        RE_IMAGE_NAME
            .captures(l)
            .map(|c| c[1].trim_end_matches(['.', ',']).to_owned())
            .filter(|n| !n.starts_with("sha256"))
    })
}

fn image_insight(config: &AnalyserConfig, name: &str, img: &Image) -> Insight {
    let limit = config.large_image_bytes as f64;
    let severity = if img.bytes >= 2.0 * limit {
        Severity::High
    } else {
        Severity::Medium
    };
    let title = format!(
        "Docker image {name} is {} (threshold {})",
        fmt_bytes(img.bytes),
        fmt_bytes(limit)
    );
    let mut ins = insight(InsightKind::LargeImage, severity, title, img.line, "");
    ins.impact = "Slower builds, pushes, pulls and cold starts; more registry storage and a \
                  larger attack surface"
        .to_owned();
    ins.fix = "Use a multi-stage build (build in one stage, copy only the artefacts), a slim or \
               distroless base image, and a .dockerignore that excludes .git, node_modules, \
               build output and test data"
        .to_owned();
    set(&mut ins, "image", name);
    set(&mut ins, "size", fmt_bytes(img.bytes));
    set(&mut ins, "sizeBytes", format!("{:.0}", img.bytes));
    set(&mut ins, "threshold", fmt_bytes(limit));
    set(&mut ins, "occurrences", img.count);
    ins
}

// ---- responses -------------------------------------------------------------------------------

static RE_DONE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"Completed (\d{3})\b[^\n]*?\bin (\d+(?:\.\d+)?)\s*ms|Request finished in (\d+(?:\.\d+)?)\s*ms (\d{3})\b",
    )
});
static RE_AR_TIME: LazyLock<Regex> = LazyLock::new(|| re(r"ActiveRecord: (\d+(?:\.\d+)?)\s*ms"));
static RE_KEYED_TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?i)(?:^|[\s,;{("])(request_time|upstream_response_time|urt|rt|response[_ -]?time|responsetime|latency|elapsed|duration|took|time)["']?\s*(?:[:=]\s*)?["']?(\d+(?:\.\d+)?)\s*(ms|msec|milliseconds|µs|us|microseconds|s|sec|secs|seconds)?(?:["',;)}\s]|$)"#,
    )
});
static RE_UNIT_TIME: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:^|\s)(\d+(?:\.\d+)?)\s?(ms|s)(?:\s|$|,)"));

/// The response time of a request line, in milliseconds: a keyed value (`request_time=2.345`,
/// `rt=…`, `response time: 2.1s`, `took 2.1s`, `latency=…`, OpenStack's `time: 0.25`) or, after
/// the status code, the first number with a `ms`/`s` unit (`200 2134ms`, morgan's
/// `200 2134.123 ms - 12`).
fn response_ms(line: &str, req: &HttpRequest<'_>) -> Option<f64> {
    let rest = &line[req.end..];
    for c in RE_KEYED_TIME.captures_iter(line) {
        let key = c[1].to_ascii_lowercase();
        let value: f64 = c[2].parse().ok()?;
        let unit = c.get(3).map(|u| u.as_str());
        // nginx and wsgi print seconds; without a unit other keys are milliseconds unless
        // they have a fraction.
        let secs_default = matches!(
            key.as_str(),
            "request_time" | "upstream_response_time" | "urt" | "rt" | "time"
        ) || c[2].contains('.');
        if key == "time" && unit.is_none() && !line[c.get(1)?.end()..].starts_with(':') {
            continue;
        }
        return Some(to_ms(value, unit, secs_default));
    }
    RE_UNIT_TIME
        .captures(rest)
        .and_then(|c| Some(to_ms(c[1].parse().ok()?, Some(&c[2]), false)))
}

/// `/v2/54fadb…/servers/detail?x=1` → `/v2/{id}/servers/detail`: ids (numbers, UUIDs, hex
/// strings of 8+) become `{id}` so the same endpoint aggregates.
fn normalise_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (k, seg) in path.split('/').enumerate() {
        if k > 0 {
            out.push('/');
        }
        let is_id = !seg.is_empty()
            && (seg.bytes().all(|b| b.is_ascii_digit())
                || (seg.len() >= 8
                    && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
                    && seg.bytes().any(|b| b.is_ascii_digit())));
        out.push_str(if is_id { "{id}" } else { seg });
    }
    out
}

fn response_insight(config: &AnalyserConfig, endpoint: &str, r: &Response) -> Insight {
    let severity = if r.ms >= 5.0 * config.slow_response_ms as f64 {
        Severity::High
    } else {
        Severity::Medium
    };
    let title = format!("Slow API response: {endpoint} took {}", fmt_secs(r.ms));
    let mut ins = insight(InsightKind::SlowResponse, severity, title, r.line, "");
    ins.impact = format!(
        "Users wait {} for {endpoint} (threshold {} ms); slow requests also hold workers and \
         connections",
        fmt_secs(r.ms),
        config.slow_response_ms
    );
    match r.db_ms {
        Some(db) if db >= 0.5 * r.ms => {
            ins.root_cause = Some(format!(
                "The database took {} ms of the {} ms (ActiveRecord time)",
                fmt_ms(db),
                fmt_ms(r.ms)
            ));
            ins.fix = "Optimise this action's queries (see the slow query and N+1 insights): \
                       add indexes, eager-load associations, paginate"
                .to_owned();
        }
        _ => {
            ins.fix = "Trace the endpoint (APM span breakdown or profiler) to find the slow \
                       step — database, external call, serialisation; cache or paginate, and \
                       move slow work to a background job"
                .to_owned();
        }
    }
    set(&mut ins, "endpoint", endpoint);
    set(&mut ins, "durationMs", fmt_ms(r.ms));
    set(&mut ins, "thresholdMs", config.slow_response_ms);
    set(
        &mut ins,
        "status",
        r.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
    );
    set(&mut ins, "occurrences", r.count);
    ins
}

// ---- N+1 -------------------------------------------------------------------------------------

fn n_plus_one_insight(
    config: &AnalyserConfig,
    scope: &Scope<'_>,
    r: &Repeat,
    labels: &HashMap<Scope<'_>, String>,
) -> Insight {
    let severity = if r.count >= 4 * config.n_plus_one_repeats.max(2) {
        Severity::High
    } else {
        Severity::Medium
    };
    let title = format!(
        "N+1 query pattern: the same query ran {} times in one request",
        r.count
    );
    let mut ins = insight(
        InsightKind::NPlusOneQuery,
        severity,
        title,
        r.first_line,
        "",
    );
    ins.impact = format!(
        "{} database round trips where one would do; latency grows with the number of rows",
        r.count
    );
    ins.root_cause =
        Some("A loop loads an association one row at a time (lazy loading)".to_owned());
    ins.fix = "Batch the lookups (JOIN / WHERE id IN (...)) or eager-load (Rails includes, \
               Django select_related/prefetch_related, JPA JOIN FETCH / @EntityGraph)"
        .to_owned();
    set(&mut ins, "query", truncate(&r.query, 200));
    set(&mut ins, "repetitions", r.count);
    set(&mut ins, "threshold", config.n_plus_one_repeats);
    match scope {
        Scope::Id(id) => set(&mut ins, "requestId", id),
        Scope::Request(_) => {
            if let Some(label) = labels.get(scope) {
                set(&mut ins, "endpoint", label);
            }
        }
        Scope::Block(_) => set(&mut ins, "scope", "consecutive query lines"),
    }
    ins
}

/// Runs the analyser and fills excerpts (used by [`analyse`]).
fn complete(insights: Vec<Insight>, log: &LogText<'_>) -> Vec<Insight> {
    super::cap_per_kind(with_lines(insights, log), &BTreeMap::new())
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

    // ---- slow queries ----

    #[test]
    fn postgres_slow_query_with_index_fix() {
        let log = "2025-11-06 10:45:00.123 UTC [4242] LOG:  duration: 1842.331 ms  statement: SELECT * FROM users WHERE email = 'jane@example.com'\n";
        let all = run(log);
        let q = of(&all, InsightKind::SlowQuery);
        assert_eq!(q.len(), 1, "{all:#?}");
        let q = &q[0];
        assert_eq!(q.severity, Severity::Medium);
        assert_eq!(q.title, "Database query took 1842ms");
        assert_eq!(q.log_line, 1);
        assert_eq!(d(q, "durationMs"), "1842");
        assert!(
            d(q, "query").starts_with("SELECT * FROM users WHERE email ="),
            "{q:?}"
        );
        assert!(
            q.fix.starts_with("Add an index on users.email"),
            "{}",
            q.fix
        );
        assert!(!q.details.contains_key("estimatedImprovement"));
    }

    #[test]
    fn fast_query_is_not_reported() {
        let log = "2025-11-06 10:45:00 UTC [4242] LOG:  duration: 120.512 ms  statement: SELECT * FROM users WHERE id = 7\n";
        assert!(of(&run(log), InsightKind::SlowQuery).is_empty());
    }

    #[test]
    fn mysql_slow_log_with_rows_examined() {
        let log = "# Time: 2025-11-06T10:45:00.123456Z\n# User@Host: app[app] @ localhost []  Id:    42\n# Query_time: 2.501234  Lock_time: 0.000123 Rows_sent: 1  Rows_examined: 1000000\nuse shop;\nSET timestamp=1762425900;\nSELECT * FROM orders WHERE customer_id = 42;\n";
        let q = of(&run(log), InsightKind::SlowQuery);
        assert_eq!(q.len(), 1);
        let q = &q[0];
        assert_eq!(q.log_line, 3);
        assert_eq!(d(q, "durationMs"), "2501");
        assert_eq!(d(q, "query"), "SELECT * FROM orders WHERE customer_id = 42");
        assert_eq!(d(q, "rowsExamined"), "1000000");
        assert!(q
            .root_cause
            .as_deref()
            .unwrap_or("")
            .contains("Examined 1000000 rows to return 1"));
        assert!(
            q.fix.starts_with("Add an index on orders.customer_id"),
            "{}",
            q.fix
        );
    }

    #[test]
    fn rails_and_hibernate_slow_queries() {
        let rails = "  User Load (1842.3ms)  SELECT \"users\".* FROM \"users\" WHERE \"users\".\"email\" = $1 LIMIT $2  [[\"email\", \"a@b.c\"], [\"LIMIT\", 1]]\n";
        let q = of(&run(rails), InsightKind::SlowQuery);
        assert_eq!(q.len(), 1);
        assert_eq!(
            d(&q[0], "query"),
            "SELECT \"users\".* FROM \"users\" WHERE \"users\".\"email\" = $1 LIMIT $2"
        );
        assert!(
            q[0].fix.starts_with("Add an index on users.email"),
            "{}",
            q[0].fix
        );

        let hibernate = "2025-11-06 10:45:00.123  INFO 1 --- [nio-8080-exec-1] org.hibernate.SQL_SLOW : Slow query took 5342 milliseconds [select u1_0.id,u1_0.email from users u1_0 where u1_0.email=?]\n";
        let q = of(&run(hibernate), InsightKind::SlowQuery);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].severity, Severity::High);
        assert_eq!(d(&q[0], "durationMs"), "5342");
        assert!(
            q[0].fix.starts_with("Add an index on users.email"),
            "{}",
            q[0].fix
        );

        let generic = "WARN Query took 1842ms: SELECT id FROM products WHERE sku LIKE '%abc%'\n";
        let q = of(&run(generic), InsightKind::SlowQuery);
        assert_eq!(q.len(), 1);
        assert!(
            q[0].fix.contains("leading-wildcard LIKE on products.sku"),
            "{}",
            q[0].fix
        );

        let join = "Query took 1500ms: SELECT o.* FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email = 'x@y.z'\n";
        let q = of(&run(join), InsightKind::SlowQuery);
        assert!(
            q[0].fix.starts_with("Add an index on customers.email"),
            "{}",
            q[0].fix
        );

        let p6spy = "1762425900000|2300|statement|connection 3|url jdbc:postgresql://db/shop|select * from orders where status=?|select * from orders where status='NEW'\n";
        let q = of(&run(p6spy), InsightKind::SlowQuery);
        assert_eq!(q.len(), 1);
        assert_eq!(d(&q[0], "durationMs"), "2300");
        assert!(q[0].fix.contains("orders.status"), "{}", q[0].fix);
    }

    #[test]
    fn framework_slow_query_layouts() {
        // (log, duration in ms, the statement's start)
        let cases = [
            // the seed's example
            ("query SELECT * FROM users WHERE email = $1 took 1842ms\n", "1842", "SELECT * FROM users WHERE email = $1"),
            ("2025-11-06T10:45:00Z WARN db: query \"SELECT id FROM carts WHERE user_id = 9\" took 2.5s\n", "2500", "SELECT id FROM carts WHERE user_id = 9"),
            // Sequelize with `benchmark: true`
            ("Executed (default): SELECT `id`, `email` FROM `users` AS `User` WHERE `User`.`email` = 'a@b.c'; Elapsed time: 1733ms\n", "1733", "SELECT `id`, `email` FROM `users`"),
            // Prisma query event logged by the app
            ("prisma:query Query: SELECT \"public\".\"Order\".\"id\" FROM \"public\".\"Order\" WHERE \"public\".\"Order\".\"status\" = $1 Params: [\"NEW\"] Duration: 2104ms\n", "2104", "SELECT \"public\".\"Order\".\"id\""),
            // GORM
            ("2025/11/06 10:45:00 /app/repo/user.go:42 SLOW SQL >= 200ms\n[1842.551ms] [rows:1] SELECT * FROM `users` WHERE email = 'a@b.c' ORDER BY `users`.`id` LIMIT 1\n", "1843", "SELECT * FROM `users` WHERE email"),
            // log4jdbc (JDBC)
            ("INFO  jdbc.sqltiming - select id, total from invoices where customer_id = 7 {executed in 1500 msec}\n", "1500", "select id, total from invoices"),
            // Django django.db.backends (seconds)
            ("DEBUG (1.842) SELECT \"auth_user\".\"id\" FROM \"auth_user\" WHERE \"auth_user\".\"email\" = 'a@b.c'; args=('a@b.c',); alias=default\n", "1842", "SELECT \"auth_user\".\"id\""),
            // Ruby Sequel
            ("I, [2025-11-06T10:45:00.123 #1]  INFO -- : (1.204518s) SELECT * FROM \"posts\" WHERE (\"author_id\" = 3)\n", "1205", "SELECT * FROM \"posts\""),
            // Ecto: the statement follows
            ("10:45:00.123 [debug] QUERY OK source=\"users\" db=1842.3ms decode=0.1ms queue=0.2ms idle=9.1ms\nSELECT u0.\"id\" FROM \"users\" AS u0 WHERE (u0.\"email\" = $1) [\"a@b.c\"]\n", "1842", "SELECT u0.\"id\" FROM \"users\""),
            // TypeORM
            ("query is slow: SELECT \"Post\".\"id\" FROM \"post\" \"Post\" WHERE \"Post\".\"title\" = $1 -- PARAMETERS: [\"x\"]\nexecution time: 1304\n", "1304", "SELECT \"Post\".\"id\""),
        ];
        for (log, ms, stmt) in cases {
            let all = run(log);
            let q = of(&all, InsightKind::SlowQuery);
            assert_eq!(q.len(), 1, "{log}: {all:#?}");
            assert_eq!(d(&q[0], "durationMs"), ms, "{log}");
            assert!(d(&q[0], "query").starts_with(stmt), "{log}: {:?}", q[0]);
        }
        // The same layouts under the threshold, and `took` without a statement, are not slow
        // queries.
        for log in [
            "query SELECT 1 took 12ms\n",
            "Executed (default): SELECT 1+1 AS result; Elapsed time: 3ms\n",
            "[0.551ms] [rows:1] SELECT * FROM users LIMIT 1\n",
            "DEBUG (0.002) SELECT \"auth_user\".\"id\" FROM \"auth_user\"; args=()\n",
            "build took 1842ms\n",
        ] {
            assert!(of(&run(log), InsightKind::SlowQuery).is_empty(), "{log}");
        }
    }

    #[test]
    fn slow_query_settings_and_orm_debug_are_not_slow_queries() {
        let log = "INFO slow query log threshold set to 1000 ms\n  User Load (0.4ms)  SELECT \"users\".* FROM \"users\" WHERE \"users\".\"id\" = $1\n";
        assert!(of(&run(log), InsightKind::SlowQuery).is_empty());
    }

    #[test]
    fn repeated_slow_query_is_aggregated() {
        let mut log = String::new();
        for (ms, id) in [(1500, 1), (2500, 2), (1200, 3)] {
            log.push_str(&format!(
                "LOG:  duration: {ms}.0 ms  statement: SELECT * FROM carts WHERE user_id = {id}\n"
            ));
        }
        let q = of(&run(&log), InsightKind::SlowQuery);
        assert_eq!(q.len(), 1);
        assert_eq!(d(&q[0], "occurrences"), "3");
        assert_eq!(d(&q[0], "durationMs"), "2500");
        assert_eq!(q[0].log_line, 2);
    }

    // ---- memory ----

    #[test]
    fn memory_percentages_and_severities() {
        let cases = [
            (
                "2025-11-06T10:45:00Z WARN memory usage: 85%",
                Severity::Medium,
                "85%",
            ),
            ("Memory: 92% used", Severity::High, "92%"),
            ("node-3 RAM 91% mem=72%", Severity::High, "91%"),
            ("heap used 1.9 GB of 2 GB", Severity::Critical, "95%"),
            (
                "pod api-7f9c container memory 3.6Gi/4Gi",
                Severity::High,
                "90%",
            ),
            (
                "a1b2c3d4e5f6   web   0.50%   1.7GiB / 2GiB   85.00%   1.2kB / 0B   0B / 0B   12",
                Severity::Medium,
                "85%",
            ),
            (
                "MiB Mem :   7982.0 total,    170.2 free,   7512.0 used,    300.0 buff/cache",
                Severity::High,
                "94.1%",
            ),
        ];
        for (line, severity, current) in cases {
            let m = of(&run(line), InsightKind::HighMemory);
            assert_eq!(m.len(), 1, "{line}");
            assert_eq!(m[0].severity, severity, "{line}");
            assert_eq!(d(&m[0], "current"), current, "{line}");
            assert_eq!(d(&m[0], "threshold"), "80%");
        }
    }

    #[test]
    fn jvm_gc_heap_after_collection() {
        let log = "[2025-11-06T10:45:00.123+0000][gc] GC(42) Pause Young (Normal) (G1 Evacuation Pause) 1800M->1750M(2048M) 12.345ms\n";
        let m = of(&run(log), InsightKind::HighMemory);
        assert_eq!(m.len(), 1);
        assert_eq!(d(&m[0], "current"), "85.4%");
        assert!(
            m[0].title.starts_with("JVM heap 85.4% full after GC"),
            "{}",
            m[0].title
        );
        assert!(m[0].fix.contains("heap dump"));
    }

    #[test]
    fn normal_memory_is_not_reported() {
        for line in [
            "memory usage: 42%",
            "Jul  1 09:01:05 calvisitor-10-105-160-95 com.apple.CDScheduler[43]: Thermal pressure state: 1 Memory pressure state: 0",
            "memory 20% free",
            "alert when memory usage above 90%",
            "[instance: 96abccce] Attempting claim: memory 2048 MB, disk 20 GB, vcpus 1 CPU",
            "[gc] GC(3) Pause Young 300M->120M(2048M) 3.1ms",
        ] {
            assert!(of(&run(line), InsightKind::HighMemory).is_empty(), "{line}");
        }
    }

    // ---- images ----

    #[test]
    fn docker_images_table() {
        let log = "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE\nmyapp        latest    abc123def456   2 days ago     1.4GB\nredis        7         0123456789ab   3 weeks ago    117MB\n";
        let img = of(&run(log), InsightKind::LargeImage);
        assert_eq!(img.len(), 1);
        assert_eq!(img[0].log_line, 2);
        assert_eq!(img[0].severity, Severity::Medium);
        assert_eq!(d(&img[0], "image"), "myapp:latest");
        assert_eq!(d(&img[0], "size"), "1.4 GB");
        assert!(img[0].fix.contains("multi-stage build"));
        assert!(img[0].fix.contains(".dockerignore"));
    }

    #[test]
    fn docker_images_table_behind_ci_timestamps() {
        let log = "2025-11-06T10:49:42.2097653Z REPOSITORY      TAG     IMAGE ID       CREATED          SIZE\n2025-11-06T10:49:42.2491016Z example/shop    2.7.0   3f9a1c2b7d44   14 seconds ago   1.4GB\n[2025-11-06T10:49:42.250Z] example/shop    2.6.3   a81e0d5c6f19   9 days ago       1.38GB\n";
        let img = of(&run(log), InsightKind::LargeImage);
        assert_eq!(img.len(), 2);
        assert_eq!(img[0].log_line, 2);
        assert_eq!(d(&img[0], "image"), "example/shop:2.7.0");
        assert_eq!(d(&img[1], "image"), "example/shop:2.6.3");
        // The excerpt is the line as logged.
        assert!(img[0]
            .excerpt
            .starts_with("2025-11-06T10:49:42.2491016Z example/shop"));
    }

    #[test]
    fn build_output_image_size() {
        let log = "#12 exporting layers 12.3s done\n#12 naming to docker.io/library/api:1.2.0 done\nImage size: 2.5 GB\n";
        let img = of(&run(log), InsightKind::LargeImage);
        assert_eq!(img.len(), 1);
        assert_eq!(img[0].severity, Severity::High);
        assert_eq!(d(&img[0], "image"), "api:1.2.0");
        assert_eq!(d(&img[0], "sizeBytes"), "2500000000");
    }

    #[test]
    fn small_images_and_manifest_sizes_are_not_large() {
        let log = "Image size: 300 MB\nlatest: digest: sha256:4b1f8e2a9c3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f size: 2843\nweb   latest   fedcba987654   1 hour ago   950MB\n";
        assert!(of(&run(log), InsightKind::LargeImage).is_empty());
    }

    // ---- responses ----

    #[test]
    fn slow_responses_in_access_log_formats() {
        let cases = [
            ("GET /api/users 200 2134ms", "GET /api/users", "2134", "200"),
            ("203.0.113.7 - - [06/Nov/2025:10:45:00 +0000] \"GET /api/orders?page=2 HTTP/1.1\" 200 5120 \"-\" \"curl/8.4.0\" request_time=2.345", "GET /api/orders", "2345", "200"),
            ("POST /checkout 502 30012.7 ms - 12", "POST /checkout", "30013", "502"),
            ("2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38101a0b-2096-447d-96ea-a692162415ae - - -] 10.11.10.1 \"GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1\" status: 200 len: 1893 time: 2.5477829", "GET /v2/{id}/servers/detail", "2548", "200"),
            ("10.0.0.5 - - [06/Nov/2025:10:45:00 +0000] \"GET /report HTTP/1.1\" 200 512 rt=3.100", "GET /report", "3100", "200"),
            ("INFO GET /api/search took 2.1s status=200", "GET /api/search", "2100", "-"),
        ];
        for (line, endpoint, ms, status) in cases {
            let r = of(&run(line), InsightKind::SlowResponse);
            assert_eq!(r.len(), 1, "{line}");
            assert_eq!(d(&r[0], "endpoint"), endpoint, "{line}");
            assert_eq!(d(&r[0], "durationMs"), ms, "{line}");
            assert_eq!(d(&r[0], "status"), status, "{line}");
        }
        let r = of(&run(cases[2].0), InsightKind::SlowResponse);
        assert_eq!(r[0].severity, Severity::High);
    }

    #[test]
    fn rails_completed_uses_started_endpoint_and_db_time() {
        let log = "Started GET \"/users/42\" for 127.0.0.1 at 2025-11-06 10:45:00 +0000\nProcessing by UsersController#show as HTML\nCompleted 200 OK in 2134ms (Views: 12.3ms | ActiveRecord: 1842.0ms | Allocations: 1234)\n";
        let r = of(&run(log), InsightKind::SlowResponse);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].log_line, 3);
        assert_eq!(d(&r[0], "endpoint"), "GET /users/{id}");
        assert_eq!(d(&r[0], "durationMs"), "2134");
        assert!(r[0].root_cause.as_deref().unwrap_or("").contains("1842 ms"));
    }

    #[test]
    fn fast_responses_are_not_reported() {
        let log = "GET /api/users 200 12ms\n\"GET /v2/x/servers/detail HTTP/1.1\" status: 200 len: 1893 time: 0.2477829\nBuild step took 2.1s\nCompleted 200 OK in 35ms (Views: 12.3ms | ActiveRecord: 2.0ms)\n17/06/09 20:10:48 INFO broadcast.TorrentBroadcast: Reading broadcast variable 0 took 2100 ms\n";
        assert!(of(&run(log), InsightKind::SlowResponse).is_empty());
    }

    // ---- N+1 ----

    fn rails_request(id: &str, n: usize) -> String {
        let mut log = format!("[{id}] Started GET \"/posts\" for 127.0.0.1 at 2025-11-06 10:45:00 +0000\n[{id}]   Post Load (0.5ms)  SELECT \"posts\".* FROM \"posts\"\n");
        for k in 0..n {
            log.push_str(&format!("[{id}]   User Load (0.2ms)  SELECT \"users\".* FROM \"users\" WHERE \"users\".\"id\" = $1 LIMIT $2  [[\"id\", {k}], [\"LIMIT\", 1]]\n"));
        }
        log.push_str(&format!(
            "[{id}] Completed 200 OK in 25ms (Views: 3.1ms | ActiveRecord: 4.0ms)\n"
        ));
        log
    }

    #[test]
    fn n_plus_one_in_one_request() {
        let id = "8f2c1a3e-5b7d-4c1e-9f0a-2d3b4c5e6f70";
        let all = run(&rails_request(id, 6));
        let n = of(&all, InsightKind::NPlusOneQuery);
        assert_eq!(n.len(), 1, "{all:#?}");
        assert_eq!(n[0].log_line, 3);
        assert_eq!(d(&n[0], "repetitions"), "6");
        assert_eq!(d(&n[0], "requestId"), id);
        assert_eq!(
            d(&n[0], "query"),
            "select \"users\".* from \"users\" where \"users\".\"id\" = ? limit ?"
        );
        assert!(n[0]
            .fix
            .starts_with("Batch the lookups (JOIN / WHERE id IN (...)) or eager-load"));
        assert_eq!(n[0].severity, Severity::Medium);
    }

    #[test]
    fn n_plus_one_needs_the_threshold_within_one_request() {
        let a = "0a2c1a3e-5b7d-4c1e-9f0a-2d3b4c5e6f70";
        let b = "1b2c1a3e-5b7d-4c1e-9f0a-2d3b4c5e6f71";
        assert!(of(&run(&rails_request(a, 4)), InsightKind::NPlusOneQuery).is_empty());
        let two = format!("{}{}", rails_request(a, 3), rails_request(b, 3));
        assert!(of(&run(&two), InsightKind::NPlusOneQuery).is_empty());
    }

    #[test]
    fn n_plus_one_with_markers_and_literals() {
        let mut log =
            "Started GET \"/authors\" for 10.0.0.1 at 2025-11-06 10:45:00 +0000\n".to_owned();
        for id in 1..=5 {
            log.push_str(&format!("(0.001) SELECT \"app_book\".\"id\", \"app_book\".\"title\" FROM \"app_book\" WHERE \"app_book\".\"author_id\" = {id}; args=({id},)\n"));
        }
        log.push_str("Completed 200 OK in 40ms\n");
        let n = of(&run(&log), InsightKind::NPlusOneQuery);
        assert_eq!(n.len(), 1);
        assert_eq!(d(&n[0], "endpoint"), "GET /authors");
        assert_eq!(d(&n[0], "repetitions"), "5");
    }

    #[test]
    fn n_plus_one_in_consecutive_lines_without_request_ids() {
        let mut log = String::new();
        for id in 0..5 {
            log.push_str("Hibernate: select a1_0.id,a1_0.name from authors a1_0 where a1_0.id=?\n");
            log.push_str(&format!("binding parameter [1] as [BIGINT] - [{id}]\n"));
        }
        let n = of(&run(&log), InsightKind::NPlusOneQuery);
        assert_eq!(n.len(), 1);
        assert_eq!(d(&n[0], "scope"), "consecutive query lines");
        // The same query far apart (separate bursts) is not N+1, even after a non-HTTP
        // "Started" line.
        let mut spread = "2015-10-18 18:01:52,728 INFO [main] org.mortbay.log: Started HttpServer2$SelectChannelConnectorWithSafeStartup@0.0.0.0:62267\n".to_owned();
        for _ in 0..5 {
            spread.push_str("Hibernate: select a1_0.id from authors a1_0 where a1_0.id=?\nINFO a\nINFO b\nINFO c\nINFO d\nINFO e\n");
        }
        assert!(of(&run(&spread), InsightKind::NPlusOneQuery).is_empty());
    }

    #[test]
    fn shapes_mask_literals() {
        assert_eq!(
            sql_shape("SELECT * FROM t WHERE a = 'x''y' AND b IN (1, 2, 3) AND c = $1 AND d = :name LIMIT 10"),
            "select * from t where a = ? and b in (?) and c = ? and d = ? limit ?"
        );
        assert_eq!(
            sql_shape("select x::int from t2 where id=42;"),
            "select x::int from t2 where id=?"
        );
    }

    // ---- caps ----

    #[test]
    fn insights_per_kind_are_capped_with_a_summary() {
        let mut log = String::new();
        for k in 0..25 {
            log.push_str(&format!("GET /api/endpoint{k}x 200 3000ms\n"));
        }
        let r = of(&run(&log), InsightKind::SlowResponse);
        assert_eq!(r.len(), crate::logmarket::insight::MAX_INSIGHTS_PER_KIND);
        let last = r.last().expect("some");
        assert_eq!(d(last, "findings"), "6");
        assert_eq!(d(last, "occurrences"), "6");
        assert!(last.title.contains("and 5 more similar findings"));
    }

    #[test]
    fn excerpts_are_truncated_on_char_boundaries() {
        let line = format!(
            "LOG:  duration: 1842.331 ms  statement: SELECT * FROM t WHERE name = '{}'",
            "é".repeat(400)
        );
        let q = of(&run(&line), InsightKind::SlowQuery);
        assert_eq!(q[0].excerpt.chars().count(), MAX_EXCERPT_CHARS);
        assert!(d(&q[0], "query").chars().count() <= 201);
    }

    #[test]
    fn thresholds_come_from_the_config() {
        let config = AnalyserConfig {
            slow_query_ms: 100,
            slow_response_ms: 10,
            high_memory_percent: 40,
            ..AnalyserConfig::default()
        };
        let log = "LOG:  duration: 120.5 ms  statement: SELECT 1 FROM t\nGET /api/users 200 12ms\nmemory usage: 42%\n";
        let all = analyse(&LogText::new(log), &config);
        assert_eq!(of(&all, InsightKind::SlowQuery).len(), 1);
        assert_eq!(of(&all, InsightKind::SlowResponse).len(), 1);
        assert_eq!(of(&all, InsightKind::HighMemory).len(), 1);
    }
}
