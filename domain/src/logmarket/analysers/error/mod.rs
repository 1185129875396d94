//! Error Detective: compile errors, test failures, runtime exceptions, crashes, out-of-memory
//! kills, dependency conflicts and configuration errors, as deterministic rules over log text.
//!
//! Speed: a two-stage trigger scan ([`Triggers`]): small Aho-Corasick sets of short anchors
//! over the whole log find the few candidate lines, the exact trigger set then gives each
//! candidate line its rule-group bits, and only those lines run the (statically compiled,
//! cheaply gated) regexes of their groups. Multi-line findings (stack traces, test blocks,
//! rustc diagnostics) read the following lines directly and mark them consumed.
//!
//! `docs/analysers.md` ("Error Detective") documents every rule, its location, severity, fix,
//! caps and known limits.
//!
//! The small helpers marked `pub(super)` (trigger scan, excerpt truncation, per-kind cap, frame
//! classification) are shared with the Quality Inspector (`quality.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, MatchKind};
use regex::{Captures, Regex};

use super::{AnalyserConfig, LogText};
use crate::logmarket::insight::{
    Insight, InsightKind, Severity, MAX_EXCERPT_CHARS, MAX_INSIGHTS_PER_KIND,
};

/// A regex compiled once, on first use, into a static.
macro_rules! re {
    ($s:expr) => {{
        static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        RE.get_or_init(|| $crate::logmarket::analysers::error::compile($s))
    }};
}

/// Compiles a static pattern (a function, so the `re!` call sites are not regex builds in
/// loops). Word boundaries are ASCII ones ([`ascii_word_boundaries`]).
fn compile(pattern: &str) -> regex::Regex {
    regex::Regex::new(&ascii_word_boundaries(pattern)).expect("static regex")
}

/// `pattern` with every `\b` made an ASCII word boundary `(?-u:\b)`. A Unicode `\b` makes the
/// regex crate's fast DFA give up on any non-ASCII text (CI logs are full of `✖`, `●`, box
/// drawing and accents) and fall back to its backtracker, several times slower; the keywords
/// these patterns bound are ASCII, so only a keyword glued to a non-ASCII letter matches
/// differently.
fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('b') if !in_class => out.push_str("(?-u:\\b)"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared helpers (also used by quality.rs)
// ---------------------------------------------------------------------------------------------

/// A two-stage trigger set. Stage 1 searches the whole text for a few short *anchors* (every
/// trigger contains one, or always shares its line with one) in groups of at most
/// [`ANCHORS_PER_SET`] (small sets keep Aho-Corasick's SIMD prefilter effective), jumping to the
/// next line after a hit. Stage 2 runs the exact triggers (each mapped to group bits) over the
/// candidate lines only.
pub(super) struct Triggers {
    anchors: Vec<AhoCorasick>,
    exact: AhoCorasick,
    groups: Vec<u64>,
}

const ANCHORS_PER_SET: usize = 18;

impl Triggers {
    pub(super) fn new(patterns: &[(&str, u64)], anchors: &[&str]) -> Self {
        let exact = AhoCorasickBuilder::new()
            .kind(Some(AhoCorasickKind::DFA))
            .match_kind(MatchKind::Standard)
            .build(patterns.iter().map(|(p, _)| p))
            .expect("static trigger set");
        let mut sorted = anchors.to_vec();
        sorted.sort_unstable();
        // even chunks: a tiny last set can lose the SIMD prefilter and cost more than the rest
        let sets = sorted.len().div_ceil(ANCHORS_PER_SET).max(1);
        let per_set = sorted.len().div_ceil(sets).max(1);
        let anchors = sorted
            .chunks(per_set)
            .map(|c| {
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(c)
                    .expect("static anchor set")
            })
            .collect();
        Self {
            anchors,
            exact,
            groups: patterns.iter().map(|(_, g)| *g).collect(),
        }
    }

    fn mask(&self, line: &str) -> u64 {
        self.exact
            .find_overlapping_iter(line)
            .fold(0, |m, x| m | self.groups[x.pattern().as_usize()])
    }

    /// `(line index, OR of the group bits of every trigger on that line)` for every line with
    /// at least one trigger, in line order.
    pub(super) fn scan(&self, log: &LogText<'_>) -> Vec<(usize, u64)> {
        let text = log.text;
        let lines = &log.lines;
        let base = text.as_ptr() as usize;
        let end = base + text.len();
        let mut prev = base;
        let sliced = lines.iter().all(|l| {
            let p = l.as_ptr() as usize;
            let ok = p >= prev && p + l.len() <= end;
            prev = p + l.len();
            ok
        });
        if !sliced {
            // lines not cut from `text` (hand-built LogText): exact scan per line
            return lines
                .iter()
                .enumerate()
                .filter_map(|(i, l)| Some((i, self.mask(l))).filter(|x| x.1 != 0))
                .collect();
        }
        let b = text.as_bytes();
        let mut starts: Vec<usize> = Vec::new();
        for ac in &self.anchors {
            let mut at = 0;
            while at < b.len() {
                let Some(m) = ac.find(Input::new(text).span(at..b.len())) else {
                    break;
                };
                starts.push(memchr::memrchr(b'\n', &b[..m.start()]).map_or(0, |p| p + 1));
                at = memchr::memchr(b'\n', &b[m.end()..]).map_or(b.len(), |p| m.end() + p + 1);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut out = Vec::new();
        let mut li = 0usize;
        for off in starts {
            while li < lines.len() && lines[li].as_ptr() as usize - base < off {
                li += 1;
            }
            if li == lines.len() {
                break;
            }
            if lines[li].as_ptr() as usize - base == off {
                let m = self.mask(lines[li]);
                if m != 0 {
                    out.push((li, m));
                }
            }
        }
        out
    }

    /// Patterns that contain no anchor (must be empty but for `co_anchored`).
    #[cfg(test)]
    pub(super) fn unanchored<'p>(
        patterns: &[(&'p str, u64)],
        anchors: &[&str],
        co_anchored: &[&str],
    ) -> Vec<&'p str> {
        patterns
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !anchors.iter().any(|a| p.contains(a)) && !co_anchored.contains(p))
            .collect()
    }
}

/// At most `max` chars of `s`, cut on a char boundary (the last kept char is `…` when cut).
pub(super) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) => {
            let cut = s
                .char_indices()
                .nth(max.saturating_sub(1))
                .map_or(0, |(i, _)| i);
            format!("{}…", &s[..cut])
        }
    }
}

/// The cited log text: the given lines (right-trimmed) joined by `\n`, at most
/// [`MAX_EXCERPT_CHARS`] chars.
pub(super) fn excerpt(lines: &[&str]) -> String {
    let joined = lines
        .iter()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    truncate(&joined, MAX_EXCERPT_CHARS)
}

/// Drops a leading GitHub Actions `##[error]` / `##[warning]` annotation, so anchored rules see
/// the tool's own text. The analysers apply it to [`LogText::bodies`], whose CI / log
/// timestamp prefix is already gone ([`super::strip_timestamp`]).
pub(super) fn strip_annotation(line: &str) -> &str {
    let mut s = line;
    for p in ["##[error]", "##[warning]"] {
        if let Some(r) = s.strip_prefix(p) {
            s = r;
        }
    }
    s
}

/// How many insights of one kind an analyser keeps while scanning (the final cut to
/// [`MAX_INSIGHTS_PER_KIND`] by log line happens in [`cap_per_kind`]); further ones are only
/// counted, so a huge log cannot grow memory without bound.
pub(super) const KEEP_PER_KIND: usize = 4 * MAX_INSIGHTS_PER_KIND;

/// A fresh insight; `idx` is the 0-based line index (stored 1-based).
pub(super) fn new_insight(
    kind: InsightKind,
    severity: Severity,
    idx: usize,
    title: &str,
    excerpt: String,
) -> Insight {
    Insight {
        kind,
        severity,
        title: truncate(title.trim(), MAX_EXCERPT_CHARS),
        location: None,
        log_line: u32::try_from(idx + 1).unwrap_or(u32::MAX),
        excerpt,
        impact: String::new(),
        root_cause: None,
        fix: String::new(),
        details: BTreeMap::new(),
    }
}

const FRAMEWORK_PATH_MARKERS: &[&str] = &[
    "node:internal",
    "node_modules",
    "java.base/",
    "/rustc/",
    "site-packages",
    "dist-packages",
    "<frozen",
    "/usr/lib/python",
    "/usr/local/lib/python",
    "/lib/python3",
    "/lib/python2",
    "library/std/",
    "library/core/",
    "library/alloc/",
    ".cargo/registry",
    "/usr/local/go/",
    "/usr/lib/go",
    "/pkg/mod/",
    "<anonymous>",
];

const FRAMEWORK_FN_PREFIXES: &[&str] = &[
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "org.junit.",
    "junit.",
    "org.opentest4j.",
    "org.apache.maven.",
    "org.springframework.",
    "org.gradle.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "org.assertj.",
    "org.hamcrest.",
    "org.mockito.",
    "org.testng.",
    "std::",
    "core::",
    "alloc::",
    "test::",
    "tokio::",
    "rust_begin_unwind",
    "__rust",
    "<std",
    "<core",
    "<alloc",
    "System.",
    "Microsoft.",
    "runtime.",
    "testing.",
    "process.processTicksAndRejections",
    "processTicksAndRejections",
];

/// Whether a stack frame is framework / standard-library code (not the user's code).
pub(super) fn is_framework(func: &str, file: Option<&str>) -> bool {
    let Some(file) = file else { return true };
    if file.starts_with("internal/") || file.starts_with("node:") {
        return true;
    }
    FRAMEWORK_PATH_MARKERS.iter().any(|m| file.contains(m))
        || FRAMEWORK_FN_PREFIXES.iter().any(|p| func.starts_with(p))
}

/// `file:line[:col]`.
pub(super) fn loc(file: &str, line: &str, col: Option<&str>) -> String {
    let file = file.strip_prefix("file://").unwrap_or(file);
    match col {
        Some(c) if !c.is_empty() => format!("{file}:{line}:{c}"),
        _ => format!("{file}:{line}"),
    }
}

/// A message template: quoted spans and digit runs replaced, so `unused variable: `x`` and
/// `unused variable: `y`` aggregate.
pub(super) fn template(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut quote: Option<char> = None;
    let mut prev_digit = false;
    for c in msg.chars() {
        if let Some(q) = quote {
            if c == q {
                out.push(c);
                quote = None;
            }
            continue;
        }
        match c {
            '`' | '\'' | '"' => {
                out.push(c);
                out.push('_');
                quote = Some(c);
                prev_digit = false;
            }
            '0'..='9' => {
                if !prev_digit {
                    out.push('N');
                }
                prev_digit = true;
            }
            _ => {
                out.push(c);
                prev_digit = false;
            }
        }
    }
    out
}

/// Log level of a line, from the earliest level word in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

pub(super) fn level_of(s: &str) -> Option<Level> {
    const TOKENS: &[(&str, Level)] = &[
        ("FATAL", Level::Fatal),
        ("CRITICAL", Level::Fatal),
        ("SEVERE", Level::Error),
        ("ERROR", Level::Error),
        ("WARNING", Level::Warn),
        ("WARN", Level::Warn),
        ("INFO", Level::Info),
        ("DEBUG", Level::Debug),
    ];
    let b = s.as_bytes();
    let mut best: Option<(usize, Level)> = None;
    for (tok, lvl) in TOKENS {
        let mut from = 0;
        while let Some(p) = memchr::memmem::find(&b[from..], tok.as_bytes()) {
            let at = from + p;
            let end = at + tok.len();
            let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
            let ok = (at == 0 || !word(b[at - 1])) && (end == b.len() || !word(b[end]));
            if ok {
                if best.is_none_or(|(bp, _)| at < bp) {
                    best = Some((at, *lvl));
                }
                break;
            }
            from = end;
        }
    }
    best.map(|(_, l)| l)
}

// ---------------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------------

const B_ERR_COLON: u64 = 1 << 0; // "error: "
const B_ERR_CODE: u64 = 1 << 1; // rustc "error[E"
const B_ERR_TS: u64 = 1 << 2; // tsc / MSVC
const B_MVN: u64 = 1 << 3; // "[ERROR]"
const B_GO_FILE: u64 = 1 << 4; // ".go:"
const B_SYNTAX: u64 = 1 << 5; // SyntaxError & co
const B_CARGO_BLOCK: u64 = 1 << 6;
const B_PANIC: u64 = 1 << 7;
const B_CARGO_RESULT: u64 = 1 << 8;
const B_CARGO_FAILED: u64 = 1 << 9;
const B_PYTEST_NODE: u64 = 1 << 10;
const B_PYTEST_HDR: u64 = 1 << 11;
const B_FAILED_COUNT: u64 = 1 << 12;
const B_SUREFIRE: u64 = 1 << 13;
const B_TESTS_RUN: u64 = 1 << 14;
const B_JEST: u64 = 1 << 15;
const B_GOTEST: u64 = 1 << 16;
const B_TAP: u64 = 1 << 17;
const B_EXC: u64 = 1 << 18;
const B_PYTB: u64 = 1 << 19;
const B_GOPANIC: u64 = 1 << 20;
const B_SIGNAL: u64 = 1 << 21;
const B_LEVEL: u64 = 1 << 22;
const B_OOM: u64 = 1 << 23;
const B_DEP: u64 = 1 << 24;
const B_CFG: u64 = 1 << 25;
const B_PARSE: u64 = 1 << 26;
const B_RACE: u64 = 1 << 27; // Go race detector
const B_GUNICORN: u64 = 1 << 28; // gunicorn worker timeout
const B_PG: u64 = 1 << 29; // PostgreSQL server errors
const B_K8S: u64 = 1 << 30; // Kubernetes CrashLoopBackOff

const PATTERNS: &[(&str, u64)] = &[
    ("error: ", B_ERR_COLON),
    ("error[E", B_ERR_CODE),
    ("error TS", B_ERR_TS),
    ("): error ", B_ERR_TS),
    ("[ERROR]", B_MVN),
    (".go:", B_GO_FILE),
    ("SyntaxError", B_SYNTAX),
    ("IndentationError", B_SYNTAX),
    ("TabError", B_SYNTAX),
    (" stdout ----", B_CARGO_BLOCK),
    ("panicked at", B_PANIC),
    ("test result: ", B_CARGO_RESULT),
    (" ... FAILED", B_CARGO_FAILED),
    (".py::", B_PYTEST_NODE),
    (".py - ", B_PYTEST_NODE),
    ("___ ", B_PYTEST_HDR),
    (" failed", B_FAILED_COUNT),
    ("<<< FAILURE!", B_SUREFIRE),
    ("<<< ERROR!", B_SUREFIRE),
    ("Tests run:", B_TESTS_RUN),
    ("\u{25CF} ", B_JEST),
    ("--- FAIL: ", B_GOTEST),
    ("--- PASS: ", B_GOTEST),
    ("not ok ", B_TAP),
    ("# fail ", B_TAP),
    ("# tests ", B_TAP),
    ("\u{2139} fail ", B_TAP),
    ("\u{2139} tests ", B_TAP),
    ("\u{2716} ", B_TAP),
    ("Exception", B_EXC),
    ("Error", B_EXC),
    ("exception", B_EXC),
    ("Traceback (most recent call last)", B_PYTB),
    ("panic: ", B_GOPANIC),
    ("fatal error: ", B_GOPANIC),
    ("Segmentation fault", B_SIGNAL),
    ("SIGSEGV", B_SIGNAL),
    ("SIGABRT", B_SIGNAL),
    ("SIGBUS", B_SIGNAL),
    ("SIGILL", B_SIGNAL),
    ("SIGFPE", B_SIGNAL),
    ("core dumped", B_SIGNAL),
    ("stack smashing detected", B_SIGNAL),
    ("double free or corruption", B_SIGNAL),
    ("CRITICAL", B_LEVEL),
    ("FATAL", B_LEVEL),
    ("SEVERE", B_LEVEL),
    ("ERROR", B_LEVEL),
    ("Out of memory", B_OOM),
    ("out of memory", B_OOM),
    ("OOMKilled", B_OOM),
    ("OutOfMemoryError", B_OOM),
    ("memory allocation of", B_OOM),
    ("MemoryError", B_OOM),
    ("Cannot allocate memory", B_OOM),
    ("ERESOLVE", B_DEP),
    ("Conflicting peer dependency", B_DEP),
    ("failed to select a version", B_DEP),
    ("ResolutionImpossible", B_DEP),
    ("conflicting dependencies", B_DEP),
    ("which is incompatible", B_DEP),
    ("Could not resolve dependencies", B_DEP),
    ("ependency convergence", B_DEP),
    ("ambiguous import", B_DEP),
    ("ersion conflict", B_DEP),
    ("VersionConflict", B_DEP),
    ("compatible versions", B_DEP),
    ("UnsatisfiableError", B_DEP),
    ("Could not resolve all", B_DEP),
    ("ETARGET", B_DEP),
    ("No matching version found", B_DEP),
    ("Could not find a version that satisfies", B_DEP),
    ("environment variable", B_CFG),
    ("Environment variable", B_CFG),
    ("env var", B_CFG),
    ("must be set", B_CFG),
    ("variable is not set", B_CFG),
    ("nvalid config", B_CFG),
    ("nvalid Config", B_CFG),
    ("onfigurationError", B_CFG),
    ("onfigurationException", B_CFG),
    ("ImproperlyConfigured", B_CFG),
    ("ConfigError", B_CFG),
    ("onfig error", B_CFG),
    ("onfiguration error", B_CFG),
    ("nknown field", B_CFG),
    ("nknown property", B_CFG),
    ("nknown key", B_CFG),
    ("nrecognized field", B_CFG),
    ("nrecognized property", B_CFG),
    ("nrecognized key", B_CFG),
    ("ENOENT", B_CFG),
    ("ould not read config", B_CFG),
    ("ould not load config", B_CFG),
    ("ould not find config", B_CFG),
    ("ailed to load config", B_CFG),
    ("ailed to read config", B_CFG),
    ("nable to load config", B_CFG),
    ("nable to read config", B_CFG),
    ("nable to find config", B_CFG),
    ("annot read config", B_CFG),
    ("annot load config", B_CFG),
    ("annot find config", B_CFG),
    ("onfig file not found", B_CFG),
    ("onfiguration file not found", B_CFG),
    ("issing config", B_CFG),
    ("pars", B_PARSE),
    ("Pars", B_PARSE),
    ("PARS", B_PARSE),
    ("nexpected token", B_PARSE),
    ("nvalid YAML", B_PARSE),
    ("nvalid JSON", B_PARSE),
    ("nvalid TOML", B_PARSE),
    ("yaml: ", B_PARSE),
    ("JSONDecodeError", B_PARSE),
    ("ScannerError", B_PARSE),
    ("WARNING: DATA RACE", B_RACE),
    ("data race(s)", B_RACE),
    ("WORKER TIMEOUT", B_GUNICORN),
    ("deadlock detected", B_PG),
    ("remaining connection slots are reserved", B_PG),
    ("too many clients already", B_PG),
    ("CrashLoopBackOff", B_K8S),
    ("restarting failed container", B_K8S),
];

/// Stage-1 anchors: every pattern above contains one (checked by a test), except
/// [`CO_ANCHORED`].
const ANCHORS: &[&str] = &[
    "error:",
    "error[",
    "error TS",
    "): error",
    "Error",
    "RROR",
    "xcept",
    "anic",
    "FAIL",
    "ailed",
    ".py",
    "___",
    " stdout -",
    "Tests run",
    "\u{25CF}",
    "--- PASS",
    "not ok",
    "# tests",
    "# fail",
    "\u{2139}",
    "\u{2716}",
    "Traceback",
    "SIG",
    "Segmentation",
    "core dump",
    "smashing",
    "double free",
    "CRITICAL",
    "FATAL",
    "SEVERE",
    "OOMKill",
    "of memory",
    "allocat",
    "ERR!",
    "ependenc",
    "compatible",
    "ambiguous",
    "onflict",
    "nvironment",
    "env var",
    "must be set",
    "not set",
    "nknown",
    "nrecognized",
    "ENOENT",
    "onfig",
    "pars",
    "Pars",
    "PARS",
    "nexpected",
    "yaml: ",
    "nvalid",
    ".go:",
    "DATA RACE",
    "data race",
    "CrashLoop",
];

/// Patterns without an anchor of their own that the tools always print on a line holding one
/// (`test result: … N failed`, `npm ERR! code ERESOLVE` / `npm error …`, `ERROR:
/// ResolutionImpossible`, `… for configuration ':x'`, `npm ERR! notarget …`, `ERROR: Could not
/// find a version …`), gunicorn `[CRITICAL] WORKER TIMEOUT`, PostgreSQL `ERROR:  deadlock
/// detected` / `FATAL:  remaining connection slots …` / `FATAL:  sorry, too many clients
/// already`.
#[cfg(test)]
const CO_ANCHORED: &[&str] = &[
    "test result: ",
    "ERESOLVE",
    "ResolutionImpossible",
    "Could not resolve all",
    "ETARGET",
    "No matching version found",
    "Could not find a version that satisfies",
    "WORKER TIMEOUT",
    "deadlock detected",
    "remaining connection slots are reserved",
    "too many clients already",
];

/// Words of [`parse_exc_header`]'s uncaught markers.
const UNCAUGHT_MARKERS: &[&str] = &[
    "Exception in thread",
    "Uncaught",
    "Unhandled exception",
    "UnhandledPromiseRejection",
];

/// Cheap pre-checks for the "invalid configuration" rule.
const CFG_ERROR_GATE: &[&str] = &[
    "onfigurationE",
    "ImproperlyConfigured",
    "ConfigError",
    "nvalid config",
    "nvalid Config",
    "NVALID CONFIG",
    "onfig error",
    "onfiguration error",
    "onfig Error",
];

/// Cheap pre-checks for the "could not read config" rule.
const CFG_READ_GATE: &[&str] = &[
    "ould not",
    "ouldn't",
    "nable to",
    "annot",
    "an't",
    "ailed to",
    "not found",
    "issing config",
];

fn triggers() -> &'static Triggers {
    static T: OnceLock<Triggers> = OnceLock::new();
    T.get_or_init(|| Triggers::new(PATTERNS, ANCHORS))
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/// The Error Detective: ANSI codes and carriage-return overwrites are resolved first
/// ([`locator::clean_lines`]), the rules run over the clean lines, and the failure locator
/// ([`locator::rank`]) adds what the failing CI step reports and orders everything by how
/// likely it explains the failure (most likely first), at most [`locator::MAX_RANKED`].
pub fn analyse(log: &LogText<'_>, config: &AnalyserConfig) -> Vec<Insight> {
    match locator::clean_lines(&log.lines) {
        Some(clean) => analyse_clean(&LogText::new(&clean), config),
        None => analyse_clean(log, config),
    }
}

fn analyse_clean(log: &LogText<'_>, _config: &AnalyserConfig) -> Vec<Insight> {
    let cands = triggers().scan(log);
    let rules = if cands.is_empty() {
        Vec::new()
    } else {
        let mut d = Detective::new(&log.bodies);
        for (i, mask) in cands {
            if i < d.next {
                continue;
            }
            d.next = i + 1;
            d.line(i, mask);
        }
        d.finish()
    };
    locator::rank(&log.bodies, rules)
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fw {
    Cargo,
    Pytest,
    Surefire,
    Jest,
    GoTest,
    NodeTest,
}

impl Fw {
    fn name(self) -> &'static str {
        match self {
            Fw::Cargo => "cargo test",
            Fw::Pytest => "pytest",
            Fw::Surefire => "junit",
            Fw::Jest => "jest",
            Fw::GoTest => "go test",
            Fw::NodeTest => "node --test",
        }
    }

    fn rerun(self, name: &str, class: Option<&str>) -> String {
        match self {
            Fw::Cargo => format!("cargo test {name}"),
            Fw::Pytest => format!("pytest -k \"{name}\""),
            Fw::Surefire => match class {
                Some(c) => format!("mvn test -Dtest={c}#{name}"),
                None => format!("mvn test -Dtest=*#{name}"),
            },
            Fw::Jest => format!("npx jest -t \"{name}\""),
            Fw::GoTest => format!("go test -run '^{name}$' ./..."),
            Fw::NodeTest => format!("node --test --test-name-pattern=\"{name}\""),
        }
    }
}

#[derive(Debug, Default)]
struct TestRec {
    fw: Option<Fw>,
    name: String,
    class: Option<String>,
    idx: usize,
    excerpt_lines: Vec<String>,
    location: Option<String>,
    root: Option<String>,
    exc_fix: Option<String>,
    frames: Vec<String>,
    details: BTreeMap<String, String>,
    has_message: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    failed: Option<u64>,
    total: Option<u64>,
}

struct PendingPanic {
    idx: usize,
    panic: Panic,
}

#[derive(Debug, Clone)]
struct Panic {
    thread: String,
    location: Option<String>,
    message: String,
    frames: Vec<String>,
    end: usize,
}

/// One stack frame: its text, its `file:line[:col]` and whether it is user code.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    pub(super) text: String,
    pub(super) location: Option<String>,
    pub(super) user: bool,
}

struct Detective<'l, 'a> {
    lines: &'l [&'a str],
    next: usize,
    out: Vec<Insight>,
    /// aggregation key → index in `out` (repeated identical findings count as occurrences).
    agg: HashMap<String, usize>,
    tests: Vec<TestRec>,
    test_index: HashMap<String, Vec<usize>>,
    counts: HashMap<Fw, Counts>,
    surefire_class: Option<String>,
    surefire_sum: (u64, u64),
    go_pass: u64,
    compile_seen: HashSet<String>,
    compile_summary: u64,
    panics: Vec<PendingPanic>,
    last_crash: Option<(usize, &'static str)>,
    /// insights kept per kind / only counted past [`KEEP_PER_KIND`]
    stored: HashMap<InsightKind, usize>,
    extra: BTreeMap<InsightKind, usize>,
    /// failing tests only counted (past [`KEEP_PER_KIND`] records)
    extra_tests: HashMap<Fw, u64>,
    overflow: TestRec,
    /// Go race reports (aggregation key, insight), emitted in `finish` (a crash when the
    /// process exited on them)
    races: Vec<(String, Insight)>,
    race_exit: bool,
    /// Kubernetes pods in CrashLoopBackOff, reported in `finish` when nothing explains them
    crashloops: Vec<CrashLoop>,
}

/// A pod seen in `CrashLoopBackOff` / `Back-off restarting failed container`.
#[derive(Debug, Default)]
struct CrashLoop {
    idx: usize,
    pod: Option<String>,
    container: Option<String>,
    namespace: Option<String>,
    lines: Vec<String>,
    occurrences: u64,
}

/// A Go goroutine dump after a `panic:` line.
struct GoDump {
    frames: Vec<Frame>,
    signal: Option<String>,
    /// the first line after the dump
    end: usize,
}

/// What an exception name + message means: kind, root cause and fix.
struct Class {
    kind: InsightKind,
    root: Option<String>,
    fix: String,
}

impl<'l, 'a> Detective<'l, 'a> {
    fn new(lines: &'l [&'a str]) -> Self {
        Self {
            lines,
            next: 0,
            out: Vec::new(),
            agg: HashMap::new(),
            tests: Vec::new(),
            test_index: HashMap::new(),
            counts: HashMap::new(),
            surefire_class: None,
            surefire_sum: (0, 0),
            go_pass: 0,
            compile_seen: HashSet::new(),
            compile_summary: 0,
            panics: Vec::new(),
            last_crash: None,
            stored: HashMap::new(),
            extra: BTreeMap::new(),
            extra_tests: HashMap::new(),
            overflow: TestRec::default(),
            races: Vec::new(),
            race_exit: false,
            crashloops: Vec::new(),
        }
    }

    /// Keeps `ins` unless its kind already has [`KEEP_PER_KIND`] (then it is only counted).
    fn emit(&mut self, ins: Insight) -> bool {
        let n = self.stored.entry(ins.kind).or_insert(0);
        if *n >= KEEP_PER_KIND {
            *self.extra.entry(ins.kind).or_insert(0) += 1;
            return false;
        }
        *n += 1;
        self.out.push(ins);
        true
    }

    /// Line `i` without its CI timestamp prefix and annotation (`""` past the end).
    fn l(&self, i: usize) -> &'a str {
        self.lines.get(i).map_or("", |l| strip_annotation(l))
    }

    fn line(&mut self, i: usize, mask: u64) {
        let t = strip_annotation(self.lines[i]);
        // 1. test runners (their blocks carry their own stack traces)
        if mask & B_CARGO_BLOCK != 0 && self.cargo_block(i, t) {
            return;
        }
        if mask & B_CARGO_FAILED != 0 && self.cargo_failed_line(i, t) {
            return;
        }
        if mask & B_CARGO_RESULT != 0 && self.cargo_result(t) {
            return;
        }
        if mask & B_PANIC != 0 && self.rust_panic(i) {
            return;
        }
        if mask & B_PYTEST_HDR != 0 && self.pytest_block(i, t) {
            return;
        }
        if mask & B_PYTEST_NODE != 0 && self.pytest_node(i, t) {
            return;
        }
        if mask & B_TESTS_RUN != 0 && self.surefire_counts(t) {
            return;
        }
        if mask & B_SUREFIRE != 0 && self.surefire_test(i, t) {
            return;
        }
        if mask & B_MVN != 0 && self.surefire_summary_entry(i, t) {
            return;
        }
        if mask & B_JEST != 0 && self.jest_block(i, t) {
            return;
        }
        if mask & B_GOTEST != 0 && self.go_test(i, t) {
            return;
        }
        if mask & B_TAP != 0 && self.tap(i, t) {
            return;
        }
        if mask & B_FAILED_COUNT != 0 && self.failed_counts(t) {
            return;
        }
        // 2. multi-line exceptions and crashes
        if mask & B_RACE != 0 && self.go_race(i, t) {
            return;
        }
        if mask & B_GUNICORN != 0 && self.gunicorn_timeout(i, t) {
            return;
        }
        if mask & B_PYTB != 0 && self.py_traceback(i) {
            return;
        }
        if mask & B_GOPANIC != 0 && self.go_panic(i, t) {
            return;
        }
        if mask & B_EXC != 0 && self.exception_block(i, t) {
            return;
        }
        // 3. single-line families
        if mask & B_PG != 0 && self.postgres(i, t) {
            return;
        }
        if mask & B_K8S != 0 && self.crashloop(i, t) {
            return;
        }
        if mask & B_OOM != 0 && self.oom(i, t) {
            return;
        }
        if mask & B_DEP != 0 && self.dependency(i, t) {
            return;
        }
        if mask & (B_CFG | B_PARSE) != 0 && self.config(i, t, mask) {
            return;
        }
        if mask & (B_ERR_CODE | B_ERR_COLON | B_ERR_TS | B_MVN | B_GO_FILE | B_SYNTAX) != 0
            && self.compile(i, t, mask)
        {
            return;
        }
        if mask & B_SIGNAL != 0 && self.signal(i, t) {
            return;
        }
        if mask & B_LEVEL != 0 && mask & B_EXC != 0 {
            self.level_exception(i, t);
        }
    }

    /// Counts one more occurrence of the insight aggregated under `key`, if there is one.
    fn bump(&mut self, key: &str) -> bool {
        let Some(&at) = self.agg.get(key) else {
            return false;
        };
        let e = &mut self.out[at];
        let n: u64 = e
            .details
            .get("occurrences")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        e.details.insert("occurrences".into(), (n + 1).to_string());
        true
    }

    /// Adds an insight, or counts it as one more occurrence of an identical earlier one.
    fn push_agg(&mut self, key: Option<String>, ins: Insight) {
        if let Some(k) = key {
            if self.bump(&k) {
                return;
            }
            let at = self.out.len();
            if self.emit(ins) {
                self.agg.insert(k, at);
            }
            return;
        }
        self.emit(ins);
    }

    // -----------------------------------------------------------------------------------------
    // Test records
    // -----------------------------------------------------------------------------------------

    fn test_rec(&mut self, fw: Fw, name: &str, class: Option<&str>, idx: usize) -> &mut TestRec {
        let key = format!("{fw:?}:{name}");
        let found = self.test_index.get(&key).and_then(|v| {
            v.iter()
                .copied()
                .find(|&t| match (self.tests[t].class.as_deref(), class) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                })
        });
        let at = match found {
            Some(t) => t,
            None if self.tests.len() >= KEEP_PER_KIND => {
                *self.extra_tests.entry(fw).or_insert(0) += 1;
                self.overflow = TestRec::default();
                return &mut self.overflow;
            }
            None => {
                self.tests.push(TestRec {
                    fw: Some(fw),
                    name: name.to_owned(),
                    idx,
                    ..TestRec::default()
                });
                let t = self.tests.len() - 1;
                self.test_index.entry(key).or_default().push(t);
                t
            }
        };
        let rec = &mut self.tests[at];
        if rec.class.is_none() {
            rec.class = class.map(str::to_owned);
        }
        if idx < rec.idx {
            rec.idx = idx;
        }
        rec
    }

    fn set_counts(&mut self, fw: Fw, failed: Option<u64>, total: Option<u64>) {
        let c = self.counts.entry(fw).or_default();
        if failed.is_some() {
            c.failed = failed;
        }
        if total.is_some() {
            c.total = total;
        }
    }

    // ---- cargo test --------------------------------------------------------------------------

    fn cargo_block(&mut self, i: usize, t: &str) -> bool {
        let Some(c) = re!(r"^---- (\S+) stdout ----\s*$").captures(t) else {
            return false;
        };
        let name = c[1].to_owned();
        let mut j = i + 1;
        let mut panic: Option<(usize, Panic)> = None;
        let mut first_text: Option<usize> = None;
        while j < self.lines.len() && j < i + 500 {
            let l = self.l(j);
            if l.starts_with("---- ")
                || l.trim_end() == "failures:"
                || l.starts_with("test result:")
            {
                break;
            }
            if panic.is_none() && l.contains("panicked at") {
                if let Some(p) = self.parse_rust_panic(j) {
                    let end = p.end;
                    panic = Some((j, p));
                    j = end;
                    continue;
                }
            }
            if first_text.is_none() && !l.trim().is_empty() {
                first_text = Some(j);
            }
            j += 1;
        }
        self.next = j;
        let mut ex = vec![t.to_owned()];
        let text_root = first_text.map(|f| truncate(self.l(f).trim(), 200));
        if let Some((pj, _)) = &panic {
            ex.push(self.l(*pj).to_owned());
        }
        let rec = self.test_rec(Fw::Cargo, &name, None, i);
        rec.excerpt_lines = ex;
        match panic {
            Some((_, p)) => {
                rec.location = p.location.clone();
                rec.root = Some(rust_panic_root(&p.message));
                rec.frames = p.frames;
                rec.has_message = true;
            }
            None => rec.root = text_root,
        }
        true
    }

    fn cargo_failed_line(&mut self, i: usize, t: &str) -> bool {
        let Some(c) = re!(r"^test (\S+) \.\.\. FAILED\s*$").captures(t) else {
            return false;
        };
        let name = c[1].to_owned();
        let rec = self.test_rec(Fw::Cargo, &name, None, i);
        if rec.excerpt_lines.is_empty() {
            rec.excerpt_lines = vec![t.to_owned()];
        }
        true
    }

    fn cargo_result(&mut self, t: &str) -> bool {
        let Some(c) = re!(r"test result: (?:FAILED|ok)\. (\d+) passed; (\d+) failed").captures(t)
        else {
            return false;
        };
        let passed: u64 = c[1].parse().unwrap_or(0);
        let failed: u64 = c[2].parse().unwrap_or(0);
        let cur = self.counts.get(&Fw::Cargo).copied().unwrap_or_default();
        self.set_counts(
            Fw::Cargo,
            Some(cur.failed.unwrap_or(0) + failed),
            Some(cur.total.unwrap_or(0) + passed + failed),
        );
        true
    }

    /// A Rust panic outside a `---- x stdout ----` block: classified at the end (a test whose
    /// name is a failing test, or a runtime panic / crash).
    fn rust_panic(&mut self, i: usize) -> bool {
        let Some(p) = self.parse_rust_panic(i) else {
            return false;
        };
        self.next = p.end.max(i + 1);
        self.panics.push(PendingPanic { idx: i, panic: p });
        true
    }

    /// Parses `thread 'x' panicked at …` (1.73+ and older formats) with its message and an
    /// optional `stack backtrace:`.
    fn parse_rust_panic(&self, i: usize) -> Option<Panic> {
        let t = self.l(i);
        let mut j = i + 1;
        let (thread, location, mut message);
        if let Some(c) =
            re!(r"thread '([^']*)'(?: \(\d+\))? panicked at (\S+?):(\d+):(\d+):\s*$").captures(t)
        {
            thread = c[1].to_owned();
            location = Some(loc(&c[2], &c[3], Some(&c[4])));
            // the message is the next line; it continues only on indented lines
            // (`  left: 2` / ` right: 3` of assertions)
            let mut msg = Vec::new();
            while j < self.lines.len() && msg.len() < 8 {
                let l = self.l(j);
                if (!msg.is_empty() && !l.starts_with([' ', '\t']))
                    || l.trim().is_empty()
                    || l.starts_with("note: ")
                    || l.starts_with("stack backtrace:")
                    || l.starts_with("thread '")
                    || l.starts_with("---- ")
                    || l.starts_with("test ")
                    || l.starts_with("error: ")
                {
                    break;
                }
                msg.push(l.trim_end());
                j += 1;
            }
            message = msg.join("\n");
        } else if let Some(c) =
            re!(r"thread '([^']*)'(?: \(\d+\))? panicked at '(.*)', (\S+?):(\d+):(\d+)\s*$")
                .captures(t)
        {
            thread = c[1].to_owned();
            message = c[2].to_owned();
            location = Some(loc(&c[3], &c[4], Some(&c[5])));
        } else if let Some(c) = re!(r"thread '([^']*)'(?: \(\d+\))? panicked at '(.*)$").captures(t)
        {
            // old multi-line message: `…', src/lib.rs:10:5` on a later line
            thread = c[1].to_owned();
            let mut msg = vec![c[2].to_owned()];
            let mut found = None;
            while j < self.lines.len() && j < i + 12 {
                let l = self.l(j);
                if let Some(e) = re!(r"^(.*)', (\S+?):(\d+):(\d+)\s*$").captures(l) {
                    msg.push(e[1].to_owned());
                    found = Some(loc(&e[2], &e[3], Some(&e[4])));
                    j += 1;
                    break;
                }
                msg.push(l.to_owned());
                j += 1;
            }
            found.as_ref()?;
            location = found;
            message = msg.join("\n");
        } else {
            return None;
        }
        // note lines and backtrace
        let mut frames = Vec::new();
        while j < self.lines.len() && self.l(j).trim_start().starts_with("note: ") {
            j += 1;
        }
        if j < self.lines.len() && self.l(j).trim_start().starts_with("stack backtrace:") {
            j += 1;
            while j < self.lines.len() {
                let l = self.l(j);
                if let Some(c) = re!(r"^\s*\d+: (.+?)\s*$").captures(l) {
                    let func = c[1].to_owned();
                    let mut text = func.clone();
                    if let Some(a) = re!(r"^\s+at (.+?):(\d+):(\d+)\s*$").captures(self.l(j + 1)) {
                        text = format!("{func} at {}", loc(&a[1], &a[2], Some(&a[3])));
                        j += 1;
                    }
                    if frames.len() < 8 && !is_framework(&func, Some(&text)) {
                        frames.push(truncate(&text, 200));
                    }
                    j += 1;
                } else if l.trim_start().starts_with("note: ") {
                    j += 1;
                } else {
                    break;
                }
            }
        }
        if message.is_empty() {
            message = "explicit panic".into();
        }
        Some(Panic {
            thread,
            location,
            message,
            frames,
            end: j,
        })
    }

    // ---- pytest ------------------------------------------------------------------------------

    fn pytest_block(&mut self, i: usize, t: &str) -> bool {
        let Some(c) = re!(r"^_{3,} (.+?) _{3,}\s*$").captures(t) else {
            return false;
        };
        let mut name = c[1].trim().to_owned();
        for p in [
            "ERROR at setup of ",
            "ERROR at teardown of ",
            "ERROR collecting ",
        ] {
            if let Some(r) = name.strip_prefix(p) {
                name = r.to_owned();
            }
        }
        if name.contains(' ') && !name.contains('[') {
            return false;
        }
        let mut j = i + 1;
        let mut e_lines: Vec<String> = Vec::new();
        let mut locs: Vec<(String, bool, String)> = Vec::new();
        while j < self.lines.len() && j < i + 3000 {
            let l = self.l(j);
            if l.starts_with("====") || re!(r"^_{3,} .+ _{3,}\s*$").is_match(l) {
                break;
            }
            if let Some(e) = l.strip_prefix("E ") {
                if e_lines.len() < 3 {
                    e_lines.push(e.trim().to_owned());
                }
            } else if let Some(c) = re!(r"^(\S+?\.py):(\d+): (.*)$").captures(l) {
                let user = !is_framework("", Some(&c[1]));
                locs.push((loc(&c[1], &c[2], None), user, l.trim().to_owned()));
            }
            j += 1;
        }
        self.next = j;
        let location = locs
            .iter()
            .rev()
            .find(|(_, u, _)| *u)
            .or(locs.last())
            .map(|(l, _, _)| l.clone());
        let frames: Vec<String> = locs
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(|(_, _, t)| truncate(t, 200))
            .collect();
        let rec = self.test_rec(Fw::Pytest, &name, None, i);
        rec.excerpt_lines = std::iter::once(t.to_owned())
            .chain(e_lines.first().map(|e| format!("E   {e}")))
            .collect();
        if location.is_some() {
            rec.location = location;
        }
        if !frames.is_empty() {
            rec.frames = frames;
        }
        if let Some(e) = e_lines.first() {
            rec.root = Some(pytest_root(e, e_lines.get(1).map(String::as_str)));
            rec.has_message = true;
        }
        true
    }

    fn pytest_node(&mut self, i: usize, t: &str) -> bool {
        let (file, node, msg) = if let Some(c) =
            re!(r"^(?:FAILED|ERROR) (\S+?\.py)(?:::(\S+))?(?: - (.*))?\s*$").captures(t)
        {
            (
                c[1].to_owned(),
                c.get(2).map(|m| m.as_str().to_owned()),
                c.get(3).map(|m| m.as_str().to_owned()),
            )
        } else if let Some(c) = re!(r"^(\S+?\.py)::(\S+) (?:FAILED|ERROR)\b").captures(t) {
            (c[1].to_owned(), Some(c[2].to_owned()), None)
        } else {
            return false;
        };
        let name = node.map_or_else(|| file.clone(), |n| n.replace("::", "."));
        let rec = self.test_rec(Fw::Pytest, &name, None, i);
        rec.details.entry("file".into()).or_insert(file);
        if rec.excerpt_lines.is_empty() {
            rec.excerpt_lines = vec![t.to_owned()];
        }
        if let Some(m) = msg {
            if rec.root.is_none() {
                rec.root = Some(truncate(&m, 200));
            }
        }
        true
    }

    fn failed_counts(&mut self, t: &str) -> bool {
        if let Some(c) = re!(r"^Tests:\s+(.*?)(\d+) total").captures(t) {
            let failed = re!(r"(\d+) failed")
                .captures(&c[1])
                .and_then(|f| f[1].parse().ok());
            self.set_counts(Fw::Jest, failed.or(Some(0)), c[2].parse().ok());
            return true;
        }
        if re!(r"\d+ failed.* in [\d.]+s").is_match(t) && !t.contains("Tests run:") {
            let mut failed = 0;
            let mut total = 0;
            for c in re!(r"(\d+) (failed|passed|errors?|skipped|xfailed|xpassed)").captures_iter(t)
            {
                let n: u64 = c[1].parse().unwrap_or(0);
                if matches!(&c[2], "failed" | "error" | "errors") {
                    failed += n;
                }
                total += n;
            }
            self.set_counts(Fw::Pytest, Some(failed), Some(total));
            return true;
        }
        false
    }

    // ---- JUnit / Maven Surefire -----------------------------------------------------------------

    fn surefire_counts(&mut self, t: &str) -> bool {
        let Some(c) = re!(r"Tests run: (\d+), Failures: (\d+), Errors: (\d+)").captures(t) else {
            return false;
        };
        let run: u64 = c[1].parse().unwrap_or(0);
        let bad: u64 = c[2].parse::<u64>().unwrap_or(0) + c[3].parse::<u64>().unwrap_or(0);
        if let Some(cl) = re!(r" in ([\w.$]+)\s*$").captures(t) {
            self.surefire_class = cl[1].rsplit('.').next().map(str::to_owned);
            self.surefire_sum.0 += run;
            self.surefire_sum.1 += bad;
        } else if t.contains("Time elapsed") {
            self.surefire_sum.0 += run;
            self.surefire_sum.1 += bad;
        } else {
            self.set_counts(Fw::Surefire, Some(bad), Some(run));
        }
        true
    }

    fn surefire_test(&mut self, i: usize, t: &str) -> bool {
        if t.contains("Tests run:") {
            return false;
        }
        let Some(c) = re!(
            r"^(?:\[ERROR\]\s+)?(\S+?)(?:\(([\w.$]+)\))?\s+(?:--\s+)?Time elapsed:.*<<< (?:FAILURE|ERROR)!\s*$"
        )
        .captures(t) else {
            return false;
        };
        let raw = c[1].trim_end_matches("()");
        let (class, method) = match c.get(2) {
            Some(cl) => (
                cl.as_str().rsplit('.').next().map(str::to_owned),
                raw.to_owned(),
            ),
            None => match raw.rsplit_once('.') {
                Some((cls, m)) => (cls.rsplit('.').next().map(str::to_owned), m.to_owned()),
                None => (self.surefire_class.clone(), raw.to_owned()),
            },
        };
        // the exception and its frames follow
        let mut trace = None;
        let j = i + 1;
        if let Some(h) = parse_exc_header(self.l(j)) {
            let first = self.first_frame_after(j);
            let tr = match first {
                Some(f) => self.parse_trace(j, f, h),
                None => Trace::bare(j, h),
            };
            self.next = tr.end;
            trace = Some(tr);
        }
        let rec = self.test_rec(Fw::Surefire, &method, class.as_deref(), i);
        rec.excerpt_lines = vec![t.to_owned()];
        if let Some(tr) = trace {
            rec.excerpt_lines
                .push(format!("{}: {}", tr.name, tr.message));
            rec.location = tr.user_location().or(rec.location.take());
            rec.frames = tr.frame_texts();
            rec.root = Some(assertion_root(&tr.message).unwrap_or_else(|| {
                let cl = classify(&tr.name, &tr.message, false, None);
                cl.root
                    .unwrap_or_else(|| format!("{}: {}", tr.name, tr.message))
            }));
            if !is_assertion(&tr.name) {
                let cl = classify(&tr.name, &tr.message, false, rec.location.as_deref());
                rec.exc_fix = Some(cl.fix);
            }
            rec.has_message = true;
        }
        true
    }

    fn surefire_summary_entry(&mut self, i: usize, t: &str) -> bool {
        let Some(c) = re!(
            r"^\[ERROR\]\s{2,}(?:Run \d+: )?(?:[\w$]+>)?([\w$]+)\.([\w$\[\]]+?)(?::(\d+))?(?:->\S+)*\s+(.*)$"
        )
        .captures(t) else {
            return false;
        };
        let class = c[1].to_owned();
        let method = c[2].to_owned();
        let line = c.get(3).map(|m| m.as_str().to_owned());
        let msg = c[4].trim().to_owned();
        let rec = self.test_rec(Fw::Surefire, &method, Some(&class), i);
        if rec.excerpt_lines.is_empty() {
            rec.excerpt_lines = vec![t.to_owned()];
        }
        if rec.location.is_none() {
            if let Some(l) = line {
                rec.location = Some(format!("{class}.java:{l}"));
            }
        }
        if rec.root.is_none() && !msg.is_empty() {
            rec.root = Some(assertion_root(&msg).unwrap_or_else(|| truncate(&msg, 200)));
        }
        true
    }

    // ---- Jest -------------------------------------------------------------------------------

    fn jest_block(&mut self, i: usize, t: &str) -> bool {
        let Some(c) = re!(r"^\s*\x{25CF} (.+?)\s*$").captures(t) else {
            return false;
        };
        let full = c[1].to_owned();
        if full == "Console" {
            return false;
        }
        let name = full.rsplit(" \u{203A} ").next().unwrap_or(&full).to_owned();
        let mut j = i + 1;
        let mut first_msg: Option<String> = None;
        let mut expected: Option<String> = None;
        let mut received: Option<String> = None;
        let mut frames: Vec<Frame> = Vec::new();
        while j < self.lines.len() && j < i + 500 {
            let l = self.l(j);
            let tr = l.trim();
            if re!(r"^\s*\x{25CF} ").is_match(l)
                || tr.starts_with("PASS ")
                || tr.starts_with("FAIL ")
                || tr.starts_with("Test Suites:")
                || tr.starts_with("Tests:")
                || tr.starts_with("Summary of all failing tests")
            {
                break;
            }
            if let Some(f) = parse_frame(l) {
                frames.push(f);
            } else if let Some(v) = tr.strip_prefix("Expected:") {
                expected.get_or_insert_with(|| v.trim().to_owned());
            } else if let Some(v) = tr.strip_prefix("Received:") {
                received.get_or_insert_with(|| v.trim().to_owned());
            } else if first_msg.is_none() && !tr.is_empty() {
                first_msg = Some(tr.to_owned());
            }
            j += 1;
        }
        self.next = j;
        let location = frames
            .iter()
            .find(|f| f.user)
            .and_then(|f| f.location.clone());
        let root = match (&expected, &received) {
            (Some(e), Some(r)) => Some(format!("assertion: expected {e}, received {r}")),
            _ => first_msg.as_ref().map(|m| {
                parse_exc_header(m)
                    .and_then(|h| classify(&h.name, &h.message, false, None).root)
                    .unwrap_or_else(|| truncate(m, 200))
            }),
        };
        let exc_fix = first_msg.as_ref().and_then(|m| {
            let h = parse_exc_header(m)?;
            (!is_assertion(&h.name))
                .then(|| classify(&h.name, &h.message, false, location.as_deref()).fix)
        });
        let rec = self.test_rec(Fw::Jest, &name, None, i);
        rec.excerpt_lines = std::iter::once(t.trim().to_owned())
            .chain(first_msg.clone())
            .collect();
        if location.is_some() {
            rec.location = location;
        }
        if !frames.is_empty() {
            rec.frames = frames.iter().take(8).map(|f| f.text.clone()).collect();
        }
        if root.is_some() {
            rec.root = root;
            rec.has_message = true;
        }
        if exc_fix.is_some() {
            rec.exc_fix = exc_fix;
        }
        rec.details.entry("suite".into()).or_insert(full);
        true
    }

    // ---- go test ----------------------------------------------------------------------------

    fn go_test(&mut self, i: usize, t: &str) -> bool {
        if re!(r"^\s*--- PASS: ").is_match(t) {
            self.go_pass += 1;
            return true;
        }
        let Some(c) = re!(r"^(\s*)--- FAIL: (\S+) \(([\d.]+)s\)").captures(t) else {
            return false;
        };
        let indent = c[1].len();
        let name = c[2].to_owned();
        let mut j = i + 1;
        let mut msgs: Vec<(Option<String>, String)> = Vec::new();
        while j < self.lines.len() && j < i + 300 {
            let l = self.l(j);
            let ind = l.len() - l.trim_start().len();
            if l.trim().is_empty() || ind <= indent || l.trim_start().starts_with("--- ") {
                break;
            }
            if let Some(m) = re!(r"^\s+(\S+?\.go):(\d+): (.*)$").captures(l) {
                msgs.push((Some(loc(&m[1], &m[2], None)), m[3].trim().to_owned()));
            } else if msgs.len() < 6 {
                msgs.push((None, l.trim().to_owned()));
            }
            j += 1;
        }
        self.next = j;
        // a test that panicked: `--- FAIL: TestX` then `panic: …` and the goroutine dump, which
        // is consumed (the panic is this test's failure, not a separate crash)
        let mut panic_dump = None;
        if msgs.is_empty() {
            if let Some(p) = self.l(j).strip_prefix("panic: ") {
                let frame = (j + 1..(j + 80).min(self.lines.len())).find_map(|k| {
                    let c = re!(r"^\s+(/\S+?\.go):(\d+)").captures(self.l(k))?;
                    (!is_framework("", Some(&c[1]))).then(|| loc(&c[1], &c[2], None))
                });
                msgs.push((
                    frame,
                    format!("panic: {}", p.trim_end_matches(" [recovered]")),
                ));
                let dump = self.go_dump(j);
                self.next = dump.as_ref().map_or(j + 1, |d| d.end);
                panic_dump = dump;
            }
        }
        let rec = self.test_rec(Fw::GoTest, &name, None, i);
        if let Some(d) = panic_dump {
            if !d.frames.is_empty() {
                rec.frames = d.frames.iter().take(8).map(|f| f.text.clone()).collect();
            }
            if let Some(s) = d.signal {
                rec.details.insert("signal".into(), s);
            }
        }
        rec.excerpt_lines = std::iter::once(t.trim().to_owned())
            .chain(msgs.first().map(|(_, m)| m.clone()))
            .collect();
        if let Some((l, m)) = msgs.iter().find(|(l, _)| l.is_some()).or(msgs.first()) {
            rec.location = l.clone();
            rec.root = Some(truncate(m, 200));
            rec.has_message = true;
        }
        true
    }

    // ---- node --test (TAP and spec reporters) --------------------------------------------------

    fn tap(&mut self, i: usize, t: &str) -> bool {
        if let Some(c) = re!(r"^(?:#|\x{2139}) (tests|fail) (\d+)\s*$").captures(t.trim()) {
            let n = c[2].parse().ok();
            if &c[1] == "fail" {
                self.set_counts(Fw::NodeTest, n, None);
            } else {
                self.set_counts(Fw::NodeTest, None, n);
            }
            return true;
        }
        if let Some(c) = re!(r"^(\s*)not ok \d+ - (.*?)\s*$").captures(t) {
            let name = c[2].to_owned();
            if re!(r"#\s*(?:SKIP|TODO)\b").is_match(&name) {
                return true;
            }
            return self.tap_block(i, t, &name);
        }
        if let Some(c) = re!(r"^(\s*)\x{2716} (.+?) \([\d.]+m?s\)\s*$").captures(t) {
            let indent = c[1].len();
            let name = c[2].to_owned();
            let mut j = i + 1;
            let mut header: Option<ExcHeader> = None;
            let mut first_msg = None;
            let mut frames = Vec::new();
            while j < self.lines.len() && j < i + 200 {
                let l = self.l(j);
                let ind = l.len() - l.trim_start().len();
                if !l.trim().is_empty() && ind <= indent {
                    break;
                }
                if let Some(f) = parse_frame(l) {
                    frames.push(f);
                } else if header.is_none() {
                    if let Some(h) = parse_exc_header(l.trim()) {
                        header = Some(h);
                    } else if first_msg.is_none() && !l.trim().is_empty() {
                        first_msg = Some(l.trim().to_owned());
                    }
                }
                j += 1;
            }
            self.next = j;
            let location = frames
                .iter()
                .find(|f| f.user)
                .and_then(|f| f.location.clone());
            let rec = self.test_rec(Fw::NodeTest, &name, None, i);
            rec.excerpt_lines = vec![t.trim().to_owned()];
            if location.is_some() {
                rec.location = location;
            }
            if !frames.is_empty() {
                rec.frames = frames.iter().take(8).map(|f| f.text.clone()).collect();
            }
            if let Some(h) = header {
                rec.root = Some(format!("{}: {}", h.name, h.message));
                rec.has_message = true;
            } else if let Some(m) = first_msg {
                rec.root = Some(m);
            }
            return true;
        }
        false
    }

    fn tap_block(&mut self, i: usize, t: &str, name: &str) -> bool {
        let mut j = i + 1;
        let mut location = None;
        let mut subtests = false;
        let mut error: Vec<String> = Vec::new();
        let mut expected = None;
        let mut actual = None;
        let mut frames: Vec<Frame> = Vec::new();
        if self.l(j).trim() == "---" {
            j += 1;
            let mut mode = 0u8; // 1 = error block, 2 = stack block
            while j < self.lines.len() && j < i + 300 {
                let l = self.l(j);
                let tr = l.trim();
                if tr == "..." {
                    j += 1;
                    break;
                }
                if let Some(c) = re!(r"^\s*(\w+): ?(.*)$").captures(l) {
                    let (k, v) = (&c[1], c[2].trim());
                    let is_key = matches!(
                        k,
                        "duration_ms"
                            | "location"
                            | "failureType"
                            | "error"
                            | "code"
                            | "name"
                            | "expected"
                            | "actual"
                            | "operator"
                            | "stack"
                            | "type"
                            | "exitCode"
                            | "signal"
                    );
                    if is_key {
                        mode = 0;
                        match k {
                            "location" => location = Some(v.trim_matches('\'').to_owned()),
                            "failureType" => subtests = v.contains("subtestsFailed"),
                            "error" => {
                                if v.starts_with('|') {
                                    mode = 1;
                                } else {
                                    error.push(v.trim_matches('\'').to_owned());
                                }
                            }
                            "expected" => expected = Some(v.to_owned()),
                            "actual" => actual = Some(v.to_owned()),
                            "stack" => mode = 2,
                            _ => {}
                        }
                        j += 1;
                        continue;
                    }
                }
                match mode {
                    1 if !tr.is_empty() && error.len() < 4 => error.push(tr.to_owned()),
                    2 => {
                        if let Some(f) = parse_bare_js_frame(tr) {
                            frames.push(f);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            self.next = j;
        }
        if subtests {
            return true;
        }
        let test_loc = location.as_deref().and_then(|l| {
            re!(r"^(.+?):(\d+):(\d+)$")
                .captures(l)
                .map(|c| loc(&c[1], &c[2], Some(&c[3])))
        });
        let user_frame = frames
            .iter()
            .find(|f| f.user)
            .and_then(|f| f.location.clone());
        let rec = self.test_rec(Fw::NodeTest, name, None, i);
        rec.excerpt_lines = vec![t.trim().to_owned()];
        rec.location = user_frame.or(test_loc.clone()).or(rec.location.take());
        if let Some(tl) = test_loc {
            rec.details.insert("testLocation".into(), tl);
        }
        if !frames.is_empty() {
            rec.frames = frames.iter().take(8).map(|f| f.text.clone()).collect();
        }
        let msg = error.join(" ");
        rec.root = match (expected, actual) {
            (Some(e), Some(a)) => Some(format!("assertion: expected {e}, actual {a}")),
            _ if !msg.is_empty() => Some(truncate(&msg, 200)),
            _ => rec.root.take(),
        };
        rec.has_message = rec.root.is_some();
        true
    }

    // -----------------------------------------------------------------------------------------
    // Exceptions
    // -----------------------------------------------------------------------------------------

    fn py_traceback(&mut self, i: usize) -> bool {
        let line = self.l(i);
        let Some(pos) = line.find("Traceback (most recent call last)") else {
            return false;
        };
        let prefix = &line[..pos];
        let prefix = if prefix.trim().is_empty() { "" } else { prefix };
        let strip = |l: &'a str| -> &'a str { l.strip_prefix(prefix).unwrap_or(l) };
        let ignored = (i.saturating_sub(3)..i).any(|k| {
            let l = self.l(k);
            l.contains("Exception ignored in") || l.contains("Task exception was never retrieved")
        });
        let mut j = i + 1;
        let mut frames: Vec<(String, bool, String)> = Vec::new(); // (loc, user, text)
        let mut chain: Vec<String> = Vec::new();
        let mut exc: Option<(String, String, usize)> = None;
        let mut environ = false;
        while j < self.lines.len() && j < i + 1000 {
            let l = strip(self.l(j));
            if l.trim().is_empty() {
                j += 1;
                continue;
            }
            if let Some(c) = re!(r#"^\s+File "(.+?)", line (\d+)(?:, in (.+))?"#).captures(l) {
                let func = c.get(3).map_or("", |m| m.as_str());
                let user = !is_framework(func, Some(&c[1]));
                frames.push((loc(&c[1], &c[2], None), user, l.trim().to_owned()));
                j += 1;
                continue;
            }
            if l.starts_with(' ') || l.starts_with('\t') {
                if l.contains("environ") {
                    environ = true;
                }
                j += 1;
                continue;
            }
            if let Some(c) = re!(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$").captures(l.trim_end()) {
                let name = c[1].to_owned();
                let msg = c.get(2).map_or("", |m| m.as_str()).to_owned();
                // chained exceptions
                let mut k = j + 1;
                while k < self.lines.len() && strip(self.l(k)).trim().is_empty() {
                    k += 1;
                }
                let sep = strip(self.l(k));
                if sep.starts_with("During handling of the above exception")
                    || sep.starts_with("The above exception was the direct cause")
                {
                    let mut t2 = k + 1;
                    while t2 < self.lines.len() && strip(self.l(t2)).trim().is_empty() {
                        t2 += 1;
                    }
                    if strip(self.l(t2)).contains("Traceback (most recent call last)") {
                        chain.push(if msg.is_empty() {
                            name
                        } else {
                            format!("{name}: {msg}")
                        });
                        frames.clear();
                        j = t2 + 1;
                        continue;
                    }
                }
                exc = Some((name, msg, j));
            }
            break;
        }
        let Some((name, msg, exc_idx)) = exc else {
            return false;
        };
        self.next = exc_idx + 1;
        if ignored {
            return true;
        }
        let location = frames
            .iter()
            .rev()
            .find(|f| f.1)
            .or(frames.last())
            .map(|f| f.0.clone());
        let mut cl = classify(&name, &msg, environ, location.as_deref());
        if let Some(first) = chain.first() {
            let r = cl.root.take().unwrap_or_else(|| format!("{name}: {msg}"));
            cl.root = Some(format!("{r} (while handling {first})"));
        }
        let lvl = (i.saturating_sub(1)..=i)
            .filter_map(|k| level_of(self.l(k)))
            .max();
        let severity = severity_for(cl.kind, true, lvl);
        let title = if msg.is_empty() {
            name.clone()
        } else {
            format!("{name}: {msg}")
        };
        let loc_line = frames.iter().rev().find(|f| f.1).or(frames.last());
        let mut ex_lines = vec![self.l(exc_idx)];
        if let Some(f) = loc_line {
            ex_lines.push(f.2.as_str());
        }
        let mut ins = new_insight(cl.kind, severity, i, &title, excerpt(&ex_lines));
        ins.location = location.clone();
        ins.root_cause = cl.root;
        ins.fix = cl.fix;
        ins.impact = impact_for(cl.kind, severity, "Python process");
        let fr: Vec<String> = frames
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(|f| truncate(&f.2, 200))
            .collect();
        if !fr.is_empty() {
            ins.details.insert("stackTrace".into(), fr.join("\n"));
        }
        ins.details.insert("exception".into(), name.clone());
        let key = agg_key(cl.kind, &name, &msg, location.as_deref());
        self.push_agg(Some(key), ins);
        true
    }

    fn first_frame_after(&self, h: usize) -> Option<usize> {
        (h + 1..(h + 5).min(self.lines.len())).find(|&k| parse_frame(self.l(k)).is_some())
    }

    fn parse_trace(&self, h: usize, first: usize, header: ExcHeader) -> Trace {
        let mut tr = Trace::bare(h, header);
        let mut j = first;
        let mut cur: Vec<Frame> = Vec::new();
        let mut in_cause = false;
        while j < self.lines.len() && j < first + 400 {
            let l = self.l(j);
            let tr_l = l.trim();
            if let Some(f) = parse_frame(l) {
                cur.push(f);
            } else if tr_l.starts_with("... ")
                && (tr_l.ends_with("more") || tr_l.ends_with("omitted"))
            {
            } else if let Some(rest) = tr_l.strip_prefix("Caused by: ") {
                if in_cause {
                    if let Some(c) = tr.causes.last_mut() {
                        c.2 = std::mem::take(&mut cur);
                    }
                } else {
                    tr.frames = std::mem::take(&mut cur);
                }
                in_cause = true;
                let h2 = parse_exc_header(rest).unwrap_or(ExcHeader {
                    thread: None,
                    name: rest.to_owned(),
                    message: String::new(),
                    uncaught: false,
                });
                tr.causes.push((h2.name, h2.message, Vec::new()));
            } else if tr_l.starts_with("Suppressed: ") {
            } else {
                break;
            }
            j += 1;
        }
        if in_cause {
            if let Some(c) = tr.causes.last_mut() {
                c.2 = cur;
            }
        } else {
            tr.frames = cur;
        }
        tr.end = j;
        tr
    }

    fn exception_block(&mut self, i: usize, t: &str) -> bool {
        if parse_frame(t).is_some() {
            return false;
        }
        // cheap checks first: frames must follow, unless the line itself says "uncaught"
        let first = self.first_frame_after(i);
        if first.is_none() && !UNCAUGHT_MARKERS.iter().any(|m| t.contains(m)) {
            return false;
        }
        let Some(h) = parse_exc_header(t) else {
            return false;
        };
        if first.is_none() && !h.uncaught {
            return false;
        }
        let tr = match first {
            Some(f) => self.parse_trace(i, f, h),
            None => Trace::bare(i, h),
        };
        self.next = tr.end.max(i + 1);
        let js = tr
            .frames
            .iter()
            .any(|f| f.text.contains(':') && !f.text.contains(".java:"));
        // uncaught markers: node prints the source line and a caret before the error
        let caret = (i.saturating_sub(4)..i).any(|k| {
            let l = self.l(k).trim();
            (!l.is_empty() && l.chars().all(|c| c == '^')) || l.starts_with("throw ")
        });
        let lvl = (i.saturating_sub(1)..=i)
            .filter_map(|k| level_of(self.l(k)))
            .max();
        let short = short_name(&tr.name);
        let uncaught =
            tr.uncaught || caret || (js && matches!(short, "TypeError" | "ReferenceError"));
        let location = tr.user_location();
        let pre = format!(
            "exc|{}|{}|{}|{}",
            tr.name,
            template(&tr.message),
            location.as_deref().unwrap_or(""),
            tr.causes.last().map_or("", |c| c.0.as_str())
        );
        if self.bump(&pre) {
            return true;
        }
        let (cname, cmsg) = tr
            .causes
            .last()
            .map_or((tr.name.as_str(), tr.message.as_str()), |c| {
                (c.0.as_str(), c.1.as_str())
            });
        let mut cl = classify(&tr.name, &tr.message, false, location.as_deref());
        if !tr.causes.is_empty() {
            let c2 = classify(cname, cmsg, false, location.as_deref());
            if cl.kind == InsightKind::RuntimeException {
                cl.kind = c2.kind;
            }
            cl.root = Some(format!(
                "caused by {}{}",
                cname,
                if cmsg.is_empty() {
                    String::new()
                } else {
                    format!(": {cmsg}")
                }
            ));
            cl.fix = c2.fix;
        }
        let severity = severity_for(cl.kind, uncaught, lvl);
        let title = match &tr.thread {
            Some(th) => format!(
                "Exception in thread \"{th}\" {}{}",
                tr.name,
                opt_msg(&tr.message)
            ),
            None => format!("{}{}", tr.name, opt_msg(&tr.message)),
        };
        let mut ex = vec![t];
        if let Some(f) = tr.frames.first() {
            ex.push(f.text.as_str());
        }
        let mut ins = new_insight(cl.kind, severity, i, &title, excerpt(&ex));
        ins.location = location.clone();
        ins.root_cause = cl.root;
        ins.fix = cl.fix;
        ins.impact = impact_for(
            cl.kind,
            severity,
            if js { "request/process" } else { "thread" },
        );
        let fr = tr.frame_texts();
        if !fr.is_empty() {
            ins.details.insert("stackTrace".into(), fr.join("\n"));
        }
        ins.details.insert("exception".into(), tr.name.clone());
        if let Some(th) = &tr.thread {
            ins.details.insert("thread".into(), th.clone());
        }
        self.push_agg(Some(pre), ins);
        true
    }

    fn level_exception(&mut self, i: usize, t: &str) -> bool {
        let Some(lvl) = level_of(t) else { return false };
        if lvl < Level::Error {
            return false;
        }
        let c = re!(
            r"(?:^|[\s:(\[])((?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error))\b(?::\s*(.*))?"
        )
        .captures(t)
        .or_else(|| {
            (lvl == Level::Fatal)
                .then(|| {
                    re!(r"(?:^|[\s:(\[])([A-Z][a-z]\w*(?:Exception|Error))\b(?::\s*(.*))?")
                        .captures(t)
                })
                .flatten()
        });
        let Some(c) = c else { return false };
        let name = c[1].to_owned();
        let msg = c.get(2).map_or("", |m| m.as_str()).trim().to_owned();
        let location = re!(r"\(([\w$.-]+\.(?:java|kt|scala|py|js|ts|go|rs|cs)):(\d+)\)")
            .captures(t)
            .map(|l| loc(&l[1], &l[2], None));
        let pre = format!(
            "lvl|{name}|{}|{}|{lvl:?}",
            template(&msg),
            location.as_deref().unwrap_or("")
        );
        if self.bump(&pre) {
            return true;
        }
        let cl = classify(&name, &msg, false, location.as_deref());
        let severity = severity_for(cl.kind, false, Some(lvl));
        let mut ins = new_insight(
            cl.kind,
            severity,
            i,
            &format!("{name}{}", opt_msg(&msg)),
            excerpt(&[t]),
        );
        ins.location = location.clone();
        ins.root_cause = cl.root;
        ins.fix = cl.fix;
        ins.impact = impact_for(cl.kind, severity, "service");
        ins.details.insert("exception".into(), name.clone());
        self.push_agg(Some(pre), ins);
        true
    }

    fn go_panic(&mut self, i: usize, t: &str) -> bool {
        let (msg, fatal) = if let Some(r) = t.trim_start().strip_prefix("panic: ") {
            (r.trim_end_matches(" [recovered]").trim(), false)
        } else if let Some(r) = t.strip_prefix("fatal error: ") {
            (r.trim(), true)
        } else {
            return false;
        };
        let dump = self.go_dump(i);
        let known_fatal = fatal
            && (msg.contains("goroutines are asleep")
                || msg.contains("concurrent map")
                || msg.contains("out of memory")
                || msg.contains("stack overflow"));
        if dump.is_none() && !known_fatal {
            return false;
        }
        let (frames, signal, j) =
            dump.map_or((Vec::new(), None, i + 1), |d| (d.frames, d.signal, d.end));
        self.next = j.max(i + 1);
        let location = frames
            .iter()
            .find(|f| f.user)
            .and_then(|f| f.location.clone());
        let (kind, root, fix) = go_panic_class(msg, location.as_deref());
        let severity = Severity::Critical;
        let title = if fatal {
            format!("fatal error: {msg}")
        } else {
            format!("panic: {msg}")
        };
        let mut ins = new_insight(kind, severity, i, &title, excerpt(&[t]));
        ins.location = location;
        ins.root_cause = Some(root);
        ins.fix = fix;
        ins.impact = impact_for(kind, severity, "Go process");
        if !frames.is_empty() {
            let fr: Vec<String> = frames.iter().take(8).map(|f| f.text.clone()).collect();
            ins.details.insert("stackTrace".into(), fr.join("\n"));
        }
        if let Some(s) = signal {
            ins.details.insert("signal".into(), s);
        }
        self.emit(ins);
        true
    }

    /// The goroutine dump after the `panic:` / `fatal error:` line `i` (a `goroutine N [` line
    /// within 30 lines): its frames, the `[signal …]` name and the first line after it.
    fn go_dump(&self, i: usize) -> Option<GoDump> {
        let g = (i + 1..(i + 30).min(self.lines.len()))
            .find(|&k| re!(r"^goroutine \d+ \[").is_match(self.l(k)))?;
        let mut frames: Vec<Frame> = Vec::new();
        let mut signal = None;
        for k in i + 1..g {
            if let Some(c) = re!(r"\[signal (SIG\w+)").captures(self.l(k)) {
                signal = Some(c[1].to_owned());
            }
        }
        let mut j = g + 1;
        while j + 1 < self.lines.len() {
            let func = self.l(j);
            let Some(c) =
                re!(r"^\s+(\S+?\.go):(\d+)(?: \+0x[0-9a-f]+)?\s*$").captures(self.l(j + 1))
            else {
                break;
            };
            let fname = func.trim();
            let user =
                !fname.starts_with("created by runtime") && !is_framework(fname, Some(&c[1]));
            frames.push(Frame {
                text: truncate(&format!("{fname} at {}:{}", &c[1], &c[2]), 200),
                location: Some(loc(&c[1], &c[2], None)),
                user,
            });
            j += 2;
        }
        // the rest of the goroutine dump
        while j < self.lines.len() && j < i + 20_000 {
            let l = self.l(j);
            let tr = l.trim();
            let dump = tr.is_empty()
                || l.starts_with('\t')
                || tr.starts_with("goroutine ")
                || tr.starts_with("created by ")
                || re!(r"^[\w./*()\-\[\]]+\(.*\)$").is_match(tr)
                || tr.starts_with("runtime stack:")
                || tr.starts_with("...additional frames elided...");
            if !dump {
                break;
            }
            j += 1;
        }
        Some(GoDump {
            frames,
            signal,
            end: j,
        })
    }

    /// Go race detector: `WARNING: DATA RACE`, the accesses (`Write at 0x… by goroutine 7:`)
    /// with their frames, up to the closing `==================`; `Found N data race(s)`
    /// followed by `exit status` makes the reports crashes (emitted in `finish`).
    fn go_race(&mut self, i: usize, t: &str) -> bool {
        let tr = t.trim();
        if re!(r"^Found \d+ data race\(s\)$").is_match(tr) {
            if (i + 1..(i + 3).min(self.lines.len()))
                .any(|k| self.l(k).trim_start().starts_with("exit status"))
            {
                self.race_exit = true;
            }
            return true;
        }
        if tr != "WARNING: DATA RACE" {
            return false;
        }
        let mut accesses: Vec<String> = Vec::new();
        let mut access_lines: Vec<&str> = Vec::new();
        let mut frames: Vec<Frame> = Vec::new();
        let mut addr = None;
        let mut j = i + 1;
        while j < self.lines.len() && j < i + 400 {
            let l = self.l(j);
            let lt = l.trim();
            if lt.starts_with("==================") || lt == "WARNING: DATA RACE" {
                break;
            }
            if let Some(c) = re!(r"^((?:Previous )?(?:[Aa]tomic )?(?:[Ww]rite|[Rr]ead)) at (0x[0-9a-f]+) by (goroutine \d+|main goroutine):$")
                .captures(lt)
            {
                if accesses.len() < 2 {
                    accesses.push(format!("{} by {}", c[1].to_lowercase(), &c[3]));
                    access_lines.push(lt);
                }
                addr.get_or_insert_with(|| c[2].to_owned());
            } else if let Some(c) =
                re!(r"^\s+(\S+?\.go):(\d+)(?: \+0x[0-9a-f]+)?\s*$").captures(self.l(j + 1))
            {
                if !lt.is_empty() && !lt.ends_with(':') {
                    let user = !is_framework(lt, Some(&c[1]));
                    frames.push(Frame {
                        text: truncate(&format!("{lt} at {}:{}", &c[1], &c[2]), 200),
                        location: Some(loc(&c[1], &c[2], None)),
                        user,
                    });
                    j += 1;
                }
            }
            j += 1;
        }
        if accesses.is_empty() {
            return false;
        }
        self.next = j + usize::from(self.l(j).trim().starts_with("=================="));
        let first = frames.iter().find(|f| f.user).or(frames.first());
        let location = first.and_then(|f| f.location.clone());
        let func = first.map(|f| {
            let name = f.text.split(" at ").next().unwrap_or("");
            let name = name.rsplit('/').next().unwrap_or(name);
            name.trim_end_matches("()").to_owned()
        });
        let title = match &func {
            Some(f) => format!("Go data race in {f}: {}", accesses.join(", ")),
            None => format!("Go data race: {}", accesses.join(", ")),
        };
        let mut ex = vec![t];
        ex.extend(access_lines.iter().copied().take(1));
        let mut ins = new_insight(
            InsightKind::RuntimeException,
            Severity::High,
            i,
            &title,
            excerpt(&ex),
        );
        ins.location = location.clone();
        ins.root_cause = Some(format!(
            "concurrent unsynchronised access to the same memory ({})",
            accesses.join(", ")
        ));
        ins.fix = format!(
            "Protect the shared variable{} with a mutex (sync.Mutex), a channel or sync/atomic; rerun with -race (go test -race ./...) until no race is reported",
            location
                .as_ref()
                .map(|l| format!(" accessed at {l}"))
                .unwrap_or_default()
        );
        ins.impact = "goroutines read and write shared memory without synchronisation: results are nondeterministic and can corrupt state".to_owned();
        ins.details.insert("accesses".into(), accesses.join("; "));
        if let Some(a) = addr {
            ins.details.insert("address".into(), a);
        }
        if !frames.is_empty() {
            let fr: Vec<String> = frames.iter().take(8).map(|f| f.text.clone()).collect();
            ins.details.insert("stackTrace".into(), fr.join("\n"));
        }
        let key = format!(
            "race|{}|{}",
            location.as_deref().unwrap_or(""),
            frames
                .iter()
                .filter(|f| f.user)
                .nth(1)
                .and_then(|f| f.location.as_deref())
                .unwrap_or("")
        );
        if self.races.len() < KEEP_PER_KIND {
            self.races.push((key, ins));
        } else {
            *self.extra.entry(InsightKind::RuntimeException).or_insert(0) += 1;
        }
        true
    }

    /// gunicorn: `[CRITICAL] WORKER TIMEOUT (pid:N)` and the following `Worker (pid:N) was
    /// sent SIGKILL!` (consumed) are one crash.
    fn gunicorn_timeout(&mut self, i: usize, t: &str) -> bool {
        let Some(c) = re!(r"\[CRITICAL\] WORKER TIMEOUT \(pid:(\d+)\)").captures(t) else {
            return false;
        };
        // a URL quoting the message (docs, search links) is not the event
        if t[..c.get(0).map_or(0, |m| m.start())].contains("://") {
            return false;
        }
        let pid = c[1].to_owned();
        let mut ex = vec![t];
        let mut signal = None;
        for k in i + 1..(i + 4).min(self.lines.len()) {
            let l = self.l(k);
            if let Some(s) = re!(r"Worker \(pid:(\d+)\) was sent (SIG\w+)")
                .captures(l)
                .filter(|s| s[1] == pid)
            {
                signal = Some(s[2].to_owned());
                ex.push(l);
                self.next = k + 1;
                break;
            }
        }
        let mut ins = new_insight(
            InsightKind::Crash,
            Severity::Critical,
            i,
            &format!(
                "gunicorn worker timeout: worker pid {pid} killed{}",
                signal
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ),
            excerpt(&ex),
        );
        ins.root_cause = Some(
            "worker exceeded the timeout and was killed (a request ran longer than gunicorn's --timeout)".to_owned(),
        );
        ins.fix = "Find the slow request the worker was serving (slow query, external call without a timeout, blocking I/O) and make it faster or move it to a background job; raise gunicorn's --timeout (default 30 s) only if such long requests are expected".to_owned();
        ins.impact =
            "the request the worker was serving got no response (502/504) and the worker was restarted"
                .to_owned();
        ins.details.insert("pid".into(), pid);
        if let Some(s) = signal {
            ins.details.insert("signal".into(), s);
        }
        self.push_agg(Some("gunicorn|worker-timeout".to_owned()), ins);
        true
    }

    /// PostgreSQL server log: `ERROR:  deadlock detected` with its `DETAIL:` / `HINT:` /
    /// `CONTEXT:` / `STATEMENT:` continuation lines (consumed), and connection-slot exhaustion
    /// (`FATAL:  remaining connection slots are reserved …`, `FATAL:  sorry, too many clients
    /// already`).
    fn postgres(&mut self, i: usize, t: &str) -> bool {
        if re!(r"\b(?:ERROR|FATAL):\s+deadlock detected\s*$").is_match(t) {
            let mut j = i + 1;
            let mut ex = vec![t];
            let mut pids: Vec<String> = Vec::new();
            let mut locks: Vec<String> = Vec::new();
            let mut relations: Vec<String> = Vec::new();
            let mut waits: Vec<String> = Vec::new();
            let mut queries: Vec<(String, String)> = Vec::new();
            while j < self.lines.len() && j < i + 40 {
                let l = self.l(j);
                let cont = l.starts_with('\t')
                    || l.starts_with("  ")
                    || re!(r"\b(?:DETAIL|HINT|CONTEXT|STATEMENT):  ").is_match(l);
                if !cont || l.trim().is_empty() {
                    break;
                }
                if let Some(c) =
                    re!(r"Process (\d+) waits for (\w+) on (.+?); blocked by process (\d+)")
                        .captures(l)
                {
                    for p in [&c[1], &c[4]] {
                        if !pids.iter().any(|x| x == p) {
                            pids.push(p.to_owned());
                        }
                    }
                    if !locks.iter().any(|x| x == &c[2]) {
                        locks.push(c[2].to_owned());
                    }
                    if let Some(r) = re!(r"^relation (\d+) of database").captures(&c[3]) {
                        let r = format!("oid {}", &r[1]);
                        if !relations.contains(&r) {
                            relations.push(r);
                        }
                    }
                    waits.push(c[0].to_owned());
                    if ex.len() < 3 {
                        ex.push(l);
                    }
                } else if let Some(c) = re!(r"^\s*Process (\d+): (.+)$").captures(l) {
                    queries.push((c[1].to_owned(), c[2].trim().to_owned()));
                }
                for c in re!(r#"relation "([^"]+)""#).captures_iter(l) {
                    let r = c[1].to_owned();
                    relations.retain(|x| !x.starts_with("oid "));
                    if !relations.contains(&r) {
                        relations.push(r);
                    }
                }
                j += 1;
            }
            self.next = j;
            let between = match pids.as_slice() {
                [] => String::new(),
                [a] => format!(" (process {a})"),
                [a, b] => format!(" between processes {a} and {b}"),
                more => format!(" between processes {}", more.join(", ")),
            };
            let on = if relations.is_empty() {
                String::new()
            } else {
                format!(" on {}", relations.join(", "))
            };
            let mut ins = new_insight(
                InsightKind::RuntimeException,
                Severity::High,
                i,
                &format!("PostgreSQL deadlock detected{between}{on}"),
                excerpt(&ex),
            );
            ins.root_cause = Some(format!(
                "two or more transactions waited for each other's locks{} and PostgreSQL aborted one of them",
                if locks.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", locks.join(", "))
                }
            ));
            ins.fix = format!(
                "Make the transactions{on} take their row locks in the same order (e.g. update rows sorted by key, or SELECT … FOR UPDATE in a fixed order), keep transactions short, and retry the aborted transaction on SQLSTATE 40P01"
            );
            ins.impact =
                "one transaction was rolled back: its write failed unless the client retries"
                    .to_owned();
            if !pids.is_empty() {
                ins.details.insert("processes".into(), pids.join(", "));
            }
            if !relations.is_empty() {
                ins.details.insert("relations".into(), relations.join(", "));
            }
            if !locks.is_empty() {
                ins.details.insert("lockTypes".into(), locks.join(", "));
            }
            if !waits.is_empty() {
                ins.details.insert("waits".into(), waits.join("\n"));
            }
            for (p, q) in queries.iter().take(4) {
                ins.details
                    .insert(format!("process {p}"), truncate(q, MAX_EXCERPT_CHARS));
            }
            let key = format!("pg|deadlock|{}", relations.join(","));
            self.push_agg(Some(key), ins);
            return true;
        }
        let Some(c) = re!(
            r"\bFATAL:\s+(remaining connection slots are reserved for .*?|sorry, too many clients already)\s*$"
        )
        .captures(t) else {
            return false;
        };
        let msg = c[1].to_owned();
        let mut ins = new_insight(
            InsightKind::RuntimeException,
            Severity::High,
            i,
            &format!("PostgreSQL refused a connection: {msg}"),
            excerpt(&[t]),
        );
        ins.root_cause = Some(
            "connection slots exhausted: the server reached max_connections, so new clients are refused".to_owned(),
        );
        ins.fix = "Pool connections (PgBouncer, or a bounded application pool) and close leaked/idle connections, or raise max_connections (needs a restart and memory per connection)".to_owned();
        ins.impact =
            "new database connections are refused: requests and jobs that need one fail".to_owned();
        if let Some(u) = re!(r"(\S+)@(\S+)\s+FATAL:").captures(t) {
            if !u[1].contains("[unknown]") {
                ins.details
                    .insert("user".into(), u[1].trim_start_matches('[').to_owned());
                ins.details.insert("database".into(), u[2].to_owned());
            }
        }
        self.push_agg(Some("pg|connection-slots".to_owned()), ins);
        true
    }

    /// Kubernetes `CrashLoopBackOff` (pod table row, `Reason: CrashLoopBackOff`) and
    /// `Back-off restarting failed container`; reported in `finish` only when the log holds no
    /// OOM, crash, exception or config error that explains it.
    fn crashloop(&mut self, i: usize, t: &str) -> bool {
        let tr = t.trim();
        let (pod, container, namespace) = if let Some(c) = re!(
            r"[Bb]ack-off (?:[\w.]+ )?restarting failed container(?:[ =]([\w.-]+))?(?: in pod |\s+pod=)?(?:([\w.-]+?)_([\w-]+)\()?"
        )
        .captures(tr)
        {
            let s = |k: usize| c.get(k).map(|m| m.as_str().to_owned());
            (s(2), s(1), s(3))
        } else if let Some(c) =
            re!(r"^(?:([\w-]+)\s+)?(?:pod/)?([\w.-]+)\s+\d+/\d+\s+CrashLoopBackOff\s+\d+").captures(tr)
        {
            (
                Some(c[2].to_owned()),
                None,
                c.get(1).map(|m| m.as_str().to_owned()),
            )
        } else if re!(r"^Reason:\s+CrashLoopBackOff\s*$").is_match(tr) {
            (None, None, None)
        } else {
            return false;
        };
        let found = match &pod {
            Some(p) => self
                .crashloops
                .iter()
                .position(|r| r.pod.as_deref() == Some(p.as_str()))
                .or_else(|| self.crashloops.iter().position(|r| r.pod.is_none())),
            None => (!self.crashloops.is_empty()).then_some(0),
        };
        let at = match found {
            Some(a) => a,
            None if self.crashloops.len() >= MAX_INSIGHTS_PER_KIND => return true,
            None => {
                self.crashloops.push(CrashLoop {
                    idx: i,
                    ..CrashLoop::default()
                });
                self.crashloops.len() - 1
            }
        };
        let r = &mut self.crashloops[at];
        if r.pod.is_none() && pod.is_some() {
            r.pod = pod;
        }
        if r.container.is_none() {
            r.container = container;
        }
        if r.namespace.is_none() {
            r.namespace = namespace;
        }
        if r.lines.len() < 3 {
            r.lines.push(tr.to_owned());
        }
        r.occurrences += 1;
        true
    }

    fn signal(&mut self, i: usize, t: &str) -> bool {
        let (root, fix, sig) = if t.contains("stack smashing detected") {
            (
                "stack buffer overflow detected by the stack protector",
                "Find the out-of-bounds write on the stack (build with -fsanitize=address and reproduce)",
                "SIGABRT",
            )
        } else if t.contains("double free or corruption") || t.contains("free(): invalid") {
            (
                "heap corruption (double free or invalid free)",
                "Find the double free / use-after-free with AddressSanitizer or Valgrind",
                "SIGABRT",
            )
        } else if t.contains("Segmentation fault") || t.contains("SIGSEGV") {
            if !t.contains("Segmentation fault")
                && !re!(r"(?i)signal|fault|received|caught|terminated|killed|crash|core|exit")
                    .is_match(t)
            {
                return false;
            }
            (
                "segmentation fault (invalid memory access)",
                "Load the core dump in a debugger (gdb <binary> core) or reproduce under AddressSanitizer to find the invalid memory access",
                "SIGSEGV",
            )
        } else if let Some(c) = re!(r"\bSIG(ABRT|BUS|ILL|FPE)\b").captures(t) {
            if !re!(r"(?i)signal|fault|received|caught|terminated|killed|crash|core|exit|abort")
                .is_match(t)
                || t.contains("handler")
            {
                return false;
            }
            match &c[1] {
                "ABRT" => (
                    "process aborted (SIGABRT: failed assertion or explicit abort)",
                    "Read the assertion/abort message logged before the crash and inspect the core dump backtrace",
                    "SIGABRT",
                ),
                "BUS" => (
                    "bus error (misaligned or unmapped memory access)",
                    "Check memory-mapped files and pointer alignment; inspect the core dump",
                    "SIGBUS",
                ),
                "ILL" => (
                    "illegal instruction (CPU feature mismatch or corrupted code)",
                    "Check the binary targets this CPU (e.g. -march / target-cpu) and inspect the core dump",
                    "SIGILL",
                ),
                _ => (
                    "arithmetic exception (SIGFPE, e.g. integer division by zero)",
                    "Guard the divisor against zero at the crashing call",
                    "SIGFPE",
                ),
            }
        } else if t.contains("core dumped") || t.contains("Fatal signal") {
            (
                "process crashed and dumped core",
                "Load the core dump in a debugger (gdb <binary> core) to get the crashing backtrace",
                "core",
            )
        } else {
            return false;
        };
        // one crash often prints on consecutive lines (`Fatal signal` then `Aborted`)
        if self.last_crash.is_some_and(|(k, s)| i <= k + 3 && s == sig) {
            self.last_crash = Some((i, sig));
            return true;
        }
        self.last_crash = Some((i, sig));
        let mut ins = new_insight(
            InsightKind::Crash,
            Severity::Critical,
            i,
            &format!("Process crash: {}", t.trim()),
            excerpt(&[t]),
        );
        ins.root_cause = Some(root.to_owned());
        ins.fix = fix.to_owned();
        ins.impact =
            "the process crashed: every in-flight request or job it was running is lost".to_owned();
        ins.details.insert("signal".into(), sig.to_owned());
        if let Some(c) = re!(r"pid \d+ \(([\w.:-]+)\)|\(([\w.-]+)\) terminated").captures(t) {
            let p = c.get(1).or(c.get(2)).map_or("", |m| m.as_str());
            ins.details.insert("process".into(), p.to_owned());
        }
        self.emit(ins);
        true
    }

    // -----------------------------------------------------------------------------------------
    // Out of memory
    // -----------------------------------------------------------------------------------------

    fn oom(&mut self, i: usize, t: &str) -> bool {
        let (title, root, fix, process): (String, String, String, Option<String>) = if let Some(c) =
            re!(r"(?i)out of memory: kill(?:ed)? process (\d+) \(([^)]+)\)").captures(t)
        {
            let (pid, p) = (c[1].to_owned(), c[2].to_owned());
            (
                format!("Kernel OOM killer killed process {p} (pid {pid})"),
                format!("the host or cgroup ran out of memory and the kernel killed {p}"),
                format!("Reduce {p}'s memory use (check for leaks) or raise the memory available to its host/cgroup"),
                Some(p),
            )
        } else if t.contains("OOMKilled") {
            let pod = re!(r"^(\S+)\s+\d+/\d+\s+OOMKilled")
                .captures(t.trim())
                .map(|c| c[1].to_owned());
            (
                match &pod {
                    Some(p) => format!("Container {p} OOMKilled"),
                    None => "Container OOMKilled".to_owned(),
                },
                "the container exceeded its memory limit and was killed".to_owned(),
                "Raise the container's memory limit (resources.limits.memory) or reduce its memory use; check for leaks".to_owned(),
                pod,
            )
        } else if let Some(c) = re!(r"java\.lang\.OutOfMemoryError(?::\s*(.*))?").captures(t) {
            let m = c.get(1).map_or("", |m| m.as_str()).trim().to_owned();
            let cl = classify("java.lang.OutOfMemoryError", &m, false, None);
            (
                format!("java.lang.OutOfMemoryError{}", opt_msg(&m)),
                cl.root.unwrap_or_default(),
                cl.fix,
                None,
            )
        } else if t.contains("JavaScript heap out of memory") {
            (
                "JavaScript heap out of memory".to_owned(),
                "the V8 heap reached its limit".to_owned(),
                "Raise the heap limit (NODE_OPTIONS=--max-old-space-size=4096) or find the leak with heap snapshots".to_owned(),
                Some("node".to_owned()),
            )
        } else if t.contains("runtime: out of memory") {
            (
                "Go runtime: out of memory".to_owned(),
                "the Go runtime could not allocate more memory".to_owned(),
                "Profile the heap with pprof and bound allocations, or raise the memory limit (GOMEMLIMIT / container)".to_owned(),
                None,
            )
        } else if let Some(c) = re!(r"memory allocation of (\d+) bytes failed").captures(t) {
            (
                format!("memory allocation of {} bytes failed", &c[1]),
                format!(
                    "an allocation of {} bytes failed and the process aborted",
                    &c[1]
                ),
                "Bound the allocation size (check for runaway growth) or raise the memory limit"
                    .to_owned(),
                None,
            )
        } else if t.contains("Cannot allocate memory") {
            (
                truncate(t.trim(), 160),
                "the system refused an allocation (ENOMEM)".to_owned(),
                "Free memory on the host, lower the process's memory use or raise its limits"
                    .to_owned(),
                None,
            )
        } else if re!(r"^(?:\S+ )?MemoryError\b").is_match(t.trim()) {
            (
                "MemoryError".to_owned(),
                "the Python process ran out of memory".to_owned(),
                "Process the data in chunks / stream it, or raise the memory limit".to_owned(),
                None,
            )
        } else {
            return false;
        };
        let mut ins = new_insight(
            InsightKind::OutOfMemory,
            Severity::Critical,
            i,
            &title,
            excerpt(&[t]),
        );
        ins.root_cause = Some(root);
        ins.fix = fix;
        ins.impact = "the process was killed or aborted for lack of memory: its work is lost and it restarts (or stays down)".to_owned();
        if let Some(p) = process {
            ins.details.insert("process".into(), p);
        }
        let key = format!("oom:{}", template(&title));
        self.push_agg(Some(key), ins);
        true
    }

    // -----------------------------------------------------------------------------------------
    // Dependency conflicts
    // -----------------------------------------------------------------------------------------

    fn dependency(&mut self, i: usize, t: &str) -> bool {
        let mut sev = Severity::High;
        let mut end = i + 1;
        let mut package: Option<String> = None;
        let (title, root, fix): (String, Option<String>, String);
        if t.contains("ERESOLVE") {
            let warn = t.contains("npm WARN") || t.contains("npm warn");
            let prefix: String = t.chars().take_while(|c| !c.is_whitespace()).collect();
            let mut found = None;
            let mut peer: Option<(String, String)> = None;
            let mut conflicting = None;
            let mut j = i;
            while j < self.lines.len() && j < i + 60 {
                let l = self.l(j);
                if j > i && !l.starts_with(&prefix) {
                    break;
                }
                if let Some(c) = re!(r"Found: (\S+)").captures(l) {
                    found.get_or_insert_with(|| c[1].to_owned());
                }
                if let Some(c) = re!(r#"peer (\S+?@"[^"]*"|\S+) from (\S+)"#).captures(l) {
                    peer.get_or_insert_with(|| (c[1].to_owned(), c[2].to_owned()));
                }
                if let Some(c) = re!(r"Conflicting peer dependency: (\S+)").captures(l) {
                    conflicting.get_or_insert_with(|| c[1].to_owned());
                }
                j += 1;
            }
            end = j;
            if warn {
                sev = Severity::Medium;
            }
            // `react@18.2.0` → `react`, `@types/node@20` → `@types/node`
            let pkg_of = |s: &str| -> String {
                let s = s.trim_matches('"');
                match s.char_indices().skip(1).find(|(_, c)| *c == '@') {
                    Some((p, _)) => s[..p].to_owned(),
                    None => s.to_owned(),
                }
            };
            title = if warn {
                "npm ERESOLVE: overriding a conflicting peer dependency".to_owned()
            } else {
                "npm ERESOLVE: unable to resolve dependency tree".to_owned()
            };
            match (&found, &peer) {
                (Some(f), Some((p, from))) => {
                    root = Some(format!("{from} requires peer {p} but {f} is installed"));
                    fix = format!(
                        "Align the conflicting version ranges of {} and {}: upgrade {} to a release whose peer range accepts {f} (or pin {} to a matching version); --legacy-peer-deps only hides the conflict",
                        pkg_of(f),
                        pkg_of(from),
                        pkg_of(from),
                        pkg_of(f)
                    );
                    package = Some(pkg_of(f));
                }
                _ => {
                    root = conflicting
                        .as_ref()
                        .map(|c| format!("conflicting peer dependency {c}"));
                    package = conflicting.as_deref().map(pkg_of);
                    fix = "Align the conflicting peer dependency ranges (see `npm ls` / `npm explain <pkg>`); --legacy-peer-deps only hides the conflict".to_owned();
                }
            }
        } else if let Some(c) =
            re!(r"failed to select a version for (?:the requirement )?`([^`]+)`").captures(t)
        {
            let what = c[1].to_owned();
            let pkg = what.split([' ', '=']).next().unwrap_or(&what).to_owned();
            let mut req = (what != pkg).then(|| what.clone());
            let mut prev = None;
            let mut by = None;
            let mut j = i + 1;
            let mut last = i;
            while j < self.lines.len() && j < i + 25 {
                let l = self.l(j);
                if l.starts_with("error") || l.starts_with("warning") || l.starts_with("ERROR") {
                    break;
                }
                if let Some(c) = re!(r"previously selected package `([^`]+)`").captures(l) {
                    prev.get_or_insert_with(|| c[1].to_owned());
                    last = j;
                }
                if let Some(c) = re!(r"required by package `([^`]+)`").captures(l) {
                    by.get_or_insert_with(|| c[1].to_owned());
                    last = j;
                }
                if let Some(c) = re!(r"versions that meet the requirements `([^`]+)`").captures(l) {
                    req.get_or_insert_with(|| format!("{pkg} {}", &c[1]));
                    last = j;
                }
                j += 1;
            }
            end = last + 1;
            let req = req.unwrap_or_else(|| pkg.clone());
            title = format!("cargo: failed to select a version for `{what}`");
            root = Some(match (&by, &prev) {
                (Some(b), Some(p)) => format!("{b} requires {req} but {p} was already selected"),
                (None, Some(p)) => format!("{req} conflicts with the already selected {p}"),
                _ => format!("no version of {pkg} satisfies every requirement"),
            });
            fix = format!(
                "Align the version requirements on {pkg} across the crates that depend on it (`cargo tree -i {pkg}`), or update the crate with the outdated requirement"
            );
            package = Some(pkg);
        } else if let Some(c) = re!(
            r"Cannot install (.+?) because these package versions have conflicting dependencies"
        )
        .captures(t)
        {
            let what = c[1].to_owned();
            let mut deps: Vec<String> = Vec::new();
            let mut j = i + 1;
            while j < self.lines.len() && j < i + 30 {
                let l = self.l(j);
                if let Some(c) = re!(r"^\s+(\S+ \S+) depends on (\S+)").captures(l) {
                    if deps.len() < 4 {
                        deps.push(format!("{} depends on {}", &c[1], &c[2]));
                    }
                }
                let done = l.contains("ResolutionImpossible");
                j += 1;
                if done {
                    break;
                }
            }
            end = j;
            title = format!("pip: cannot install {what}: conflicting dependencies");
            root = Some(if deps.is_empty() {
                format!("{what} have conflicting dependencies")
            } else {
                deps.join("; ")
            });
            let dep = deps
                .first()
                .and_then(|d| d.rsplit(' ').next())
                .map(|d| d.split(['=', '<', '>', '~', '!']).next().unwrap_or(d).to_owned());
            fix = match &dep {
                Some(d) => format!(
                    "Loosen or align the pins so a single version of {d} satisfies every requirement (pipdeptree / pip install --dry-run shows who asks for what)"
                ),
                None => "Loosen or align the conflicting version pins".to_owned(),
            };
            package = dep;
        } else if t.contains("ResolutionImpossible") {
            title = "pip: ResolutionImpossible (conflicting requirements)".to_owned();
            root = Some("pip cannot find versions that satisfy every requirement".to_owned());
            fix = "Loosen or align the conflicting version pins in the requirements".to_owned();
        } else if let Some(c) = re!(
            r"(\S+) (\S+) requires (\S+?)([<>=!~][^,]*)?, but you have (\S+) (\S+) which is incompatible"
        )
        .captures(t)
        {
            sev = Severity::Medium;
            let pkg = c[5].to_owned();
            title = format!("pip: {} {} requires {}{}", &c[1], &c[2], &c[3], c.get(4).map_or("", |m| m.as_str()));
            root = Some(format!(
                "{} {} requires {}{} but {} {} is installed",
                &c[1],
                &c[2],
                &c[3],
                c.get(4).map_or("", |m| m.as_str()),
                &c[5],
                &c[6]
            ));
            fix = format!(
                "Install a version of {pkg} that satisfies {}'s requirement, or upgrade {} to a release compatible with {pkg} {}",
                &c[1], &c[1], &c[6]
            );
            package = Some(pkg);
        } else if let Some(c) = re!(r"Could not resolve dependencies for project (\S+?):? (.*)$").captures(t) {
            title = format!("Maven: could not resolve dependencies for {}", &c[1]);
            root = Some(truncate(c[2].trim(), 200));
            fix = "Check the artifact coordinates, versions and repositories; pin conflicting versions in <dependencyManagement> (mvn dependency:tree)".to_owned();
            package = re!(r"([\w.-]+:[\w.-]+):(?:jar|pom|war):([\w.-]+)")
                .captures(&c[2])
                .map(|p| format!("{}:{}", &p[1], &p[2]));
        } else if let Some(c) = re!(r"[Dd]ependency convergence error for (\S+)").captures(t) {
            if t.contains("[WARNING]") {
                sev = Severity::Medium;
            }
            let coord = c[1].trim_end_matches(':').to_owned();
            title = format!("Maven: dependency convergence error for {coord}");
            root = Some(format!("several versions of {coord} are pulled in by different paths"));
            fix = format!(
                "Pin one version of {coord} in <dependencyManagement> or exclude the older transitive one (mvn dependency:tree -Dverbose)"
            );
            package = Some(coord);
        } else if let Some(c) =
            re!(r"Could not resolve all (?:files|dependencies|artifacts) for configuration '([^']+)'")
                .captures(t)
        {
            title = format!("Gradle: could not resolve all dependencies for configuration '{}'", &c[1]);
            let mut detail = None;
            for k in i + 1..(i + 8).min(self.lines.len()) {
                if let Some(d) = re!(r"Could not (?:resolve|find) (\S+)").captures(self.l(k)) {
                    detail = Some(d[1].trim_end_matches('.').to_owned());
                    break;
                }
            }
            root = detail.as_ref().map(|d| format!("could not resolve {d}"));
            fix = "Check the dependency coordinates and repositories; align conflicting versions with a platform/constraints block (gradle dependencies --configuration …)".to_owned();
            package = detail;
        } else if let Some(c) = re!(r"ambiguous import: found package (\S+) in multiple modules").captures(t) {
            title = format!("Go: ambiguous import of {}", &c[1]);
            root = Some(format!("package {} is provided by more than one module in the build", &c[1]));
            fix = format!(
                "Keep only one module providing {} in go.mod (remove or `exclude` the other, then go mod tidy)",
                &c[1]
            );
            package = Some(c[1].to_owned());
        } else if let Some(c) = re!(r"(?:ETARGET|No matching version found for) ?(\S*)").captures(t) {
            if !t.contains("No matching version found") {
                return false;
            }
            let pkg = c[1].trim_end_matches('.').to_owned();
            title = format!("npm: no matching version found for {pkg}");
            root = Some(format!("no published version satisfies {pkg}"));
            fix = format!("Relax or correct the version range of {pkg} in package.json");
            package = Some(pkg);
        } else if let Some(c) =
            re!(r"Could not find a version that satisfies the requirement (\S+)").captures(t)
        {
            title = format!("pip: no version satisfies {}", &c[1]);
            root = Some(format!("no available version satisfies {}", &c[1]));
            fix = format!("Relax or correct the requirement {} (check the package index and Python version)", &c[1]);
            package = Some(c[1].to_owned());
        } else if re!(r"VersionConflict|[Vv]ersion conflict|could not find compatible versions|UnsatisfiableError")
            .is_match(t)
        {
            let pkg = re!(r#"(?:for gem|package|for) "?([\w.@/-]+)"?"#)
                .captures(t)
                .map(|c| c[1].to_owned());
            title = truncate(t.trim(), 200);
            root = Some("two requirements ask for incompatible versions of the same dependency".to_owned());
            fix = match &pkg {
                Some(p) => format!("Align the version constraints on {p} across the packages that require it"),
                None => "Align the conflicting version constraints so one version satisfies all".to_owned(),
            };
            package = pkg;
        } else {
            return false;
        }
        self.next = end.max(i + 1);
        let mut ins = new_insight(
            InsightKind::DependencyConflict,
            sev,
            i,
            &title,
            excerpt(&[t]),
        );
        ins.root_cause = root;
        ins.fix = fix;
        ins.impact = if sev == Severity::High {
            "install/build blocked: dependencies cannot be resolved".to_owned()
        } else {
            "install continued with a conflicting dependency set: runtime breakage is likely"
                .to_owned()
        };
        let key = format!(
            "dep:{}:{}",
            template(&title),
            package.as_deref().unwrap_or("")
        );
        if let Some(p) = package {
            ins.details.insert("package".into(), p);
        }
        self.push_agg(Some(key), ins);
        true
    }

    // -----------------------------------------------------------------------------------------
    // Configuration errors
    // -----------------------------------------------------------------------------------------

    fn config(&mut self, i: usize, t: &str, mask: u64) -> bool {
        let file_re = re!(
            r#"(?:^|[\s'"`(=:])((?:[\w.~@-]*[/\\])*(?:[\w.-]*\.(?:ya?ml|json|toml|ini|cfg|conf|properties|hcl|env)|\.env(?:\.\w+)?))\b"#
        );
        let mut sev = Severity::High;
        let mut variable = None;
        let mut file: Option<String> = None;
        let mut location: Option<String> = None;
        let (title, root, fix): (String, String, String);
        let env_words = mask & B_CFG != 0
            && (t.contains("nvironment") || t.contains("env var") || t.contains("ENV var"))
            && re!(r"(?i)env(?:ironment)?[ _]?var").is_match(t);
        if env_words || t.contains("must be set") || t.contains("variable is not set") {
            let c = re!(r#"(?i)(?:missing|required|undefined|not set|unset|no)\b[^'"`]*?\benv(?:ironment)?[ _]?var(?:iable)?s?\b\W*?([A-Z][A-Z0-9_]{2,})"#)
                .captures(t)
                .or_else(|| re!(r#"(?i)\benv(?:ironment)?[ _]?var(?:iable)?\s+['"`$]?\{?([A-Z][A-Z0-9_]{2,})['"`}]?\s+(?:is\s+)?(?:not set|missing|required|undefined|must be set|is empty|not found|not defined)"#).captures(t))
                .or_else(|| re!(r#"['"`$]?\{?([A-Z][A-Z0-9_]{2,})['"`}]?\s+(?:must be set|variable is not set|is not set)"#).captures(t))
                .or_else(|| re!(r#"([A-Z][A-Z0-9_]{2,})\W+(?:must be set\W+)?environment variable not found"#).captures(t));
            let Some(c) = c else { return false };
            let var = c[1].to_owned();
            if t.contains("Defaulting to a blank string") {
                sev = Severity::Medium;
            }
            title = format!("Missing required environment variable {var}");
            root = format!("environment variable {var} is not set in the process environment");
            fix = format!(
                "Set {var} in the deployment environment (or .env / secret store) and validate required variables at startup"
            );
            variable = Some(var);
        } else if let Some(c) = (t.contains("nknown ") || t.contains("nrecognized ") || t.contains("nexpected "))
            .then(|| {
                re!(r#"(?i)\b(?:unknown|unrecognized|unexpected) (?:configuration )?(?:property|field|key)s?\b\W*?([\w.-]+)"#)
                    .captures(t)
            })
            .flatten()
        {
            let key = c[1].to_owned();
            sev = Severity::Medium;
            title = truncate(t.trim(), 200);
            root = format!("the configuration contains `{key}`, which the program does not accept");
            let expected = re!(r"expected one of (.+)$").captures(t).map(|e| e[1].to_owned());
            fix = match expected {
                Some(e) => format!("Rename or remove `{key}` in the configuration (accepted keys: {})", truncate(&e, 120)),
                None => format!("Rename or remove `{key}` in the configuration (check its spelling against the supported keys)"),
            };
            variable = Some(key);
            file = file_re.captures(t).map(|f| f[1].to_owned());
        } else if let Some(c) = t
            .contains("ENOENT")
            .then(|| re!(r"ENOENT: no such file or directory, \w+ '([^']+)'").captures(t))
            .flatten()
        {
            let path = c[1].to_owned();
            let is_cfg = file_re.is_match(&format!(" {path}"))
                || path.to_ascii_lowercase().contains("config");
            if !is_cfg {
                return false;
            }
            title = format!("Config file not found: {path}");
            root = format!("the configuration file {path} does not exist");
            fix = format!("Create {path} (e.g. from the example/template file) or point the app at the right config path");
            file = Some(path);
        } else if let Some(c) = CFG_ERROR_GATE
            .iter()
            .any(|g| t.contains(g))
            .then(|| re!(r"(?i)\b(?:(?:\w+\.)*(?:ConfigurationError|ConfigurationException|ImproperlyConfigured|ConfigError|InvalidConfigurationException)|invalid config(?:uration)?|config(?:uration)? error)\b[:\s]*(.*)$")
            .captures(t))
            .flatten()
        {
            let msg = c[1].trim().to_owned();
            title = truncate(t.trim(), 200);
            root = if msg.is_empty() {
                "the configuration is invalid".to_owned()
            } else {
                format!("invalid configuration: {}", truncate(&msg, 160))
            };
            fix = "Correct the configuration value named in the error and validate the config at startup (fail fast with a clear message)".to_owned();
            file = file_re.captures(t).map(|f| f[1].to_owned());
        } else if let Some(c) = CFG_READ_GATE
            .iter()
            .any(|g| t.contains(g))
            .then(|| re!(r"(?i)\b(?:could not|couldn't|unable to|cannot|can't|failed to) (?:read|load|open|find) (?:the )?config(?:uration)?(?: file)?\b[:\s]*(.*)$|\bconfig(?:uration)? file not found\b[:\s]*(.*)$|\bmissing config(?:uration)?(?: file)?\b[:\s]*(.*)$")
            .captures(t))
            .flatten()
        {
            let msg = c.get(1).or(c.get(2)).or(c.get(3)).map_or("", |m| m.as_str()).trim().to_owned();
            title = truncate(t.trim(), 200);
            root = if msg.is_empty() {
                "the configuration could not be read".to_owned()
            } else {
                format!("the configuration could not be read: {}", truncate(&msg, 160))
            };
            file = file_re.captures(t).map(|f| f[1].to_owned());
            fix = match &file {
                Some(f) => format!("Make sure {f} exists, is readable by the process and is mounted/copied into the runtime image"),
                None => "Make sure the config file exists at the expected path and is readable by the process".to_owned(),
            };
        } else if mask & B_PARSE != 0
            && re!(r"(?i)pars(?:e|ing)[\s_-]*(?:error|failed|failure|exception)|failed to (?:parse|decode)|(?:could not|couldn't|unable to|cannot|can't) (?:parse|decode)|error (?:while )?(?:parsing|decoding)|invalid (?:yaml|json|toml)|unexpected token|mapping values are not allowed|did not find expected|ScannerError|ParserError|YAMLException|JSONDecodeError|JsonParseException|EJSONPARSE|toml parse error|yaml: line")
                .is_match(t)
        {
            // a config file must be named on the line or the next three (PyYAML's `in "x.yml"`)
            let mut fl = None;
            for k in i..(i + 4).min(self.lines.len()) {
                if let Some(f) = file_re.captures(self.l(k)) {
                    fl = Some((k, f[1].to_owned()));
                    break;
                }
            }
            let Some((fk, f)) = fl else { return false };
            let fline = self.l(fk);
            location = re!(r#"in "([^"]+)", line (\d+), column (\d+)"#)
                .captures(fline)
                .map(|c| loc(&c[1], &c[2], Some(&c[3])))
                .or_else(|| {
                    let at = re!(r"(?i)line:? (\d+)(?:,? col(?:umn)?:? (\d+))?").captures(t)?;
                    Some(loc(&f, &at[1], at.get(2).map(|m| m.as_str())))
                })
                .or_else(|| {
                    let after = &fline[fline.find(f.as_str())? + f.len()..];
                    re!(r"^:(\d+)(?::(\d+))?")
                        .captures(after)
                        .map(|c| loc(&f, &c[1], c.get(2).map(|m| m.as_str())))
                });
            self.next = fk + 1;
            title = format!("Config parse error in {f}");
            root = format!("{f} is not valid: {}", truncate(t.trim(), 160));
            fix = format!(
                "Fix the syntax of {f}{} (indentation, quoting, trailing commas) and validate it in CI",
                location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default()
            );
            file = Some(f);
        } else {
            return false;
        }
        let mut ins = new_insight(InsightKind::ConfigError, sev, i, &title, excerpt(&[t]));
        ins.location = location;
        ins.root_cause = Some(root);
        ins.fix = fix;
        ins.impact = if sev == Severity::High {
            "the service cannot start or runs misconfigured until the configuration is fixed"
                .to_owned()
        } else {
            "the setting is ignored or defaulted: behaviour differs from what was configured"
                .to_owned()
        };
        if let Some(v) = variable {
            ins.details.insert("variable".into(), v);
        }
        if let Some(f) = file {
            ins.details.insert("file".into(), f);
        }
        let key = format!("cfg:{}", template(&ins.title));
        self.push_agg(Some(key), ins);
        true
    }

    // -----------------------------------------------------------------------------------------
    // Compile errors
    // -----------------------------------------------------------------------------------------

    fn compile(&mut self, i: usize, t: &str, mask: u64) -> bool {
        // rustc
        if mask & (B_ERR_CODE | B_ERR_COLON) != 0 {
            if let Some(c) = re!(r"^error(?:\[(E\d{4})\])?: (.+)$").captures(t) {
                let code = c.get(1).map(|m| m.as_str().to_owned());
                let msg = c[2].trim().to_owned();
                if let Some(n) = re!(r"due to (\d+) previous errors?").captures(&msg) {
                    self.compile_summary = self.compile_summary.max(n[1].parse().unwrap_or(0));
                    return true;
                }
                if msg.starts_with("aborting due to") {
                    if let Some(n) = re!(r"(\d+) previous errors?").captures(&msg) {
                        self.compile_summary = self.compile_summary.max(n[1].parse().unwrap_or(0));
                    }
                    return true;
                }
                let arrow = (i + 1..(i + 6).min(self.lines.len())).find_map(|k| {
                    let l = self.l(k);
                    if !l.contains("--> ") {
                        return None;
                    }
                    re!(r"^\s*--> (.+?):(\d+):(\d+)\s*$")
                        .captures(l)
                        .map(|a| (k, loc(&a[1], &a[2], Some(&a[3]))))
                });
                if code.is_none() && arrow.is_none() {
                    return false;
                }
                // the rest of the diagnostic (snippet, labels, notes) until a blank line
                let mut j = i + 1;
                let mut ctx: Vec<&str> = Vec::new();
                while j < self.lines.len() && j < i + 60 {
                    let l = self.l(j);
                    if l.trim().is_empty() || l.starts_with("error") || l.starts_with("warning") {
                        break;
                    }
                    ctx.push(l);
                    j += 1;
                }
                self.next = j;
                let location = arrow.as_ref().map(|a| a.1.clone());
                let mut ex = vec![t];
                if let Some((k, _)) = arrow {
                    ex.push(self.l(k));
                }
                self.push_compile(i, "rustc", &msg, code, location, &ctx, excerpt(&ex));
                return true;
            }
        }
        // gcc / clang / javac / mypy: file:line[:col]: [fatal] error: msg
        if mask & B_ERR_COLON != 0 {
            if let Some(c) =
                re!(r"^\s*([^\s:][^:]*?):(\d+)(?::(\d+))?: (?:fatal )?error: (.+)$").captures(t)
            {
                let location = loc(&c[1], &c[2], c.get(3).map(|m| m.as_str()));
                let tool = if c[1].ends_with(".java") {
                    "javac"
                } else if c[1].ends_with(".py") {
                    "mypy"
                } else {
                    "gcc/clang"
                };
                let ctx: Vec<&str> = (i + 1..(i + 6).min(self.lines.len()))
                    .map(|k| self.l(k))
                    .collect();
                let msg = c[4].trim().to_owned();
                self.push_compile(i, tool, &msg, None, Some(location), &ctx, excerpt(&[t]));
                return true;
            }
        }
        // tsc / MSVC
        if mask & B_ERR_TS != 0 {
            let c = re!(r"^\s*(\S+?)\((\d+),(\d+)\): (?:fatal )?error (\w+\d+): (.+)$")
                .captures(t)
                .or_else(|| re!(r"^\s*(\S+?):(\d+):(\d+) - error (TS\d+): (.+)$").captures(t));
            if let Some(c) = c {
                let location = loc(&c[1], &c[2], Some(&c[3]));
                let code = c[4].to_owned();
                let tool = if code.starts_with("TS") {
                    "tsc"
                } else if code.starts_with("CS") {
                    "dotnet"
                } else {
                    "msvc"
                };
                let msg = c[5].trim().to_owned();
                self.push_compile(
                    i,
                    tool,
                    &msg,
                    Some(code),
                    Some(location),
                    &[],
                    excerpt(&[t]),
                );
                return true;
            }
        }
        // Maven compiler plugin
        if mask & B_MVN != 0 {
            if let Some(c) = re!(r"^\[ERROR\] (\S+?):\[(\d+),(\d+)\] (.+)$").captures(t) {
                let location = loc(&c[1], &c[2], Some(&c[3]));
                let ctx: Vec<&str> = (i + 1..(i + 4).min(self.lines.len()))
                    .map(|k| self.l(k))
                    .collect();
                let msg = c[4].trim().to_owned();
                self.push_compile(i, "javac", &msg, None, Some(location), &ctx, excerpt(&[t]));
                return true;
            }
        }
        // Go
        if mask & B_GO_FILE != 0 {
            if let Some(c) = re!(r"^\s*(\S+?\.go):(\d+):(\d+): (.+)$").captures(t) {
                let msg = c[4].trim();
                if re!(r"\(\w[\w-]*\)$").is_match(msg) || msg.starts_with("warning") {
                    return false;
                }
                let location = loc(&c[1], &c[2], Some(&c[3]));
                let msg = msg.to_owned();
                self.push_compile(i, "go", &msg, None, Some(location), &[], excerpt(&[t]));
                return true;
            }
        }
        // Python / JS syntax errors outside a traceback
        if mask & B_SYNTAX != 0 {
            if let Some(c) = re!(r"^\s*(SyntaxError|IndentationError|TabError): (.+)$").captures(t)
            {
                let mut location = None;
                let mut ex = vec![t];
                for k in (i.saturating_sub(5)..i).rev() {
                    let l = self.l(k);
                    if let Some(f) = re!(r#"File "(.+?)", line (\d+)"#).captures(l) {
                        location = Some(loc(&f[1], &f[2], None));
                        ex.push(l);
                        break;
                    }
                    if let Some(f) = re!(r"^(\S+\.(?:m?[jt]sx?|cjs)):(\d+)\s*$").captures(l) {
                        location = Some(loc(&f[1], &f[2], None));
                        ex.push(l);
                        break;
                    }
                }
                let tool = if c[1].starts_with("Syntax")
                    && location.as_deref().is_some_and(|l| !l.contains(".py"))
                {
                    "node"
                } else {
                    "python"
                };
                let msg = format!("{}: {}", &c[1], c[2].trim());
                self.push_compile(i, tool, &msg, None, location, &[], excerpt(&ex));
                return true;
            }
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn push_compile(
        &mut self,
        i: usize,
        tool: &str,
        msg: &str,
        code: Option<String>,
        location: Option<String>,
        ctx: &[&str],
        ex: String,
    ) {
        let full = self
            .stored
            .get(&InsightKind::CompileError)
            .is_some_and(|n| *n >= KEEP_PER_KIND);
        if full {
            *self.extra.entry(InsightKind::CompileError).or_insert(0) += 1;
            return;
        }
        let key = format!("{}|{msg}", location.as_deref().unwrap_or(""));
        if !self.compile_seen.insert(key) {
            return;
        }
        let (root, fix) = diagnose_compile(msg, ctx, location.as_deref());
        let title = match &code {
            Some(c) => format!("{tool} error[{c}]: {msg}"),
            None => format!("{tool} error: {msg}"),
        };
        let mut ins = new_insight(InsightKind::CompileError, Severity::High, i, &title, ex);
        ins.location = location;
        ins.root_cause = root;
        ins.fix = fix;
        ins.details.insert("compiler".into(), tool.to_owned());
        if let Some(c) = code {
            ins.details.insert("code".into(), c);
        }
        self.emit(ins);
    }

    // -----------------------------------------------------------------------------------------
    // Finish
    // -----------------------------------------------------------------------------------------

    fn finish(mut self) -> Vec<Insight> {
        // Go races: a crash when the process exited on them (`Found N data race(s)` + `exit
        // status`), else a runtime exception.
        for (key, mut ins) in std::mem::take(&mut self.races) {
            if self.race_exit {
                ins.kind = InsightKind::Crash;
                ins.impact = format!("{}; the race detector made the process exit", ins.impact);
            }
            self.push_agg(Some(key), ins);
        }
        // Rust panics: test (thread named like a failing test) or runtime.
        let panics = std::mem::take(&mut self.panics);
        for PendingPanic { idx, panic } in panics {
            let key = format!("{:?}:{}", Fw::Cargo, panic.thread);
            let is_test = self.test_index.contains_key(&key)
                || (panic.thread != "main" && self.counts.contains_key(&Fw::Cargo));
            if is_test {
                let excerpt_line = self.l(idx).to_owned();
                let rec = self.test_rec(Fw::Cargo, &panic.thread, None, idx);
                rec.excerpt_lines = vec![excerpt_line];
                rec.location = panic.location.clone();
                rec.root = Some(rust_panic_root(&panic.message));
                rec.frames = panic.frames.clone();
                rec.has_message = true;
                continue;
            }
            if let Some(v) = re!(r"^([A-Z][A-Z0-9_]{2,}) must be set|environment variable `?([A-Z][A-Z0-9_]{2,})`? (?:not found|is not set|must be set)")
                .captures(&panic.message)
            {
                let var = v.get(1).or(v.get(2)).map_or("", |m| m.as_str()).to_owned();
                let mut ins = new_insight(
                    InsightKind::ConfigError,
                    Severity::High,
                    idx,
                    &format!("Missing required environment variable {var}"),
                    excerpt(&[self.l(idx), self.l(idx + 1)]),
                );
                ins.location = panic.location.clone();
                ins.root_cause = Some(format!(
                    "environment variable {var} is not set, and the program panicked at startup"
                ));
                ins.fix = format!(
                    "Set {var} in the deployment environment (or .env / secret store); read it with a clear error instead of a panic"
                );
                ins.impact = "the service cannot start until the configuration is fixed".to_owned();
                ins.details.insert("variable".into(), var);
                self.emit(ins);
                continue;
            }
            let kind = if panic.thread == "main" {
                InsightKind::Crash
            } else {
                InsightKind::RuntimeException
            };
            let first_msg = panic.message.lines().next().unwrap_or("").to_owned();
            let title = format!("thread '{}' panicked: {first_msg}", panic.thread);
            let mut ex = vec![self.l(idx)];
            if let Some(m) = self.lines.get(idx + 1) {
                if !panic.message.is_empty() && panic.message.starts_with(m.trim_end()) {
                    ex.push(m);
                }
            }
            let mut ins = new_insight(kind, Severity::Critical, idx, &title, excerpt(&ex));
            ins.location = panic.location.clone();
            ins.root_cause = Some(rust_panic_root(&panic.message));
            ins.fix = rust_panic_fix(&panic.message, panic.location.as_deref());
            ins.impact = if kind == InsightKind::Crash {
                "the process aborted on a panic in the main thread: the service is down until restarted".to_owned()
            } else {
                format!(
                    "thread '{}' died on a panic: its work (request, task) is lost",
                    panic.thread
                )
            };
            if !panic.frames.is_empty() {
                ins.details
                    .insert("stackTrace".into(), panic.frames.join("\n"));
            }
            ins.details.insert("thread".into(), panic.thread.clone());
            let k = agg_key(kind, "panic", &panic.message, panic.location.as_deref());
            self.push_agg(Some(k), ins);
        }

        // Go: drop a parent test whose subtests failed (it only repeats them).
        let go_names: Vec<String> = self
            .tests
            .iter()
            .filter(|r| r.fw == Some(Fw::GoTest))
            .map(|r| r.name.clone())
            .collect();
        self.tests.retain(|r| {
            !(r.fw == Some(Fw::GoTest)
                && !r.has_message
                && go_names
                    .iter()
                    .any(|n| n.starts_with(&format!("{}/", r.name))))
        });
        if self.go_pass > 0 || self.tests.iter().any(|r| r.fw == Some(Fw::GoTest)) {
            let failed = self
                .tests
                .iter()
                .filter(|r| r.fw == Some(Fw::GoTest))
                .count() as u64;
            if self.go_pass > 0 {
                self.set_counts(Fw::GoTest, Some(failed), Some(failed + self.go_pass));
            }
        }
        if self.surefire_sum.0 > 0 && !self.counts.contains_key(&Fw::Surefire) {
            self.set_counts(
                Fw::Surefire,
                Some(self.surefire_sum.1),
                Some(self.surefire_sum.0),
            );
        }

        // Test failures → insights.
        let tests = std::mem::take(&mut self.tests);
        let per_fw: HashMap<Fw, u64> = tests.iter().fold(self.extra_tests.clone(), |mut m, r| {
            *m.entry(r.fw.unwrap_or(Fw::Cargo)).or_insert(0) += 1;
            m
        });
        let extra_tests: u64 = self.extra_tests.values().sum();
        if extra_tests > 0 {
            *self.extra.entry(InsightKind::TestFailure).or_insert(0) +=
                usize::try_from(extra_tests).unwrap_or(usize::MAX);
        }
        for r in tests {
            let fw = r.fw.unwrap_or(Fw::Cargo);
            let n = per_fw.get(&fw).copied().unwrap_or(1);
            let c = self.counts.get(&fw).copied().unwrap_or_default();
            let run = match (c.failed, c.total) {
                (Some(f), Some(t)) if t > 0 => format!("{} of {t} tests failed", f.max(n)),
                _ => format!(
                    "{n} failing test{} found in this log",
                    if n == 1 { "" } else { "s" }
                ),
            };
            let title = match &r.root {
                Some(root) => format!("Test failed: {} ({})", r.name, truncate(root, 120)),
                None => format!("Test failed: {}", r.name),
            };
            let lines: Vec<&str> = r.excerpt_lines.iter().map(String::as_str).collect();
            let mut ins = new_insight(
                InsightKind::TestFailure,
                Severity::High,
                r.idx,
                &title,
                excerpt(&lines),
            );
            let at = r
                .location
                .as_ref()
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            let rerun = fw.rerun(&r.name, r.class.as_deref());
            ins.fix = match (&r.exc_fix, &r.root) {
                (Some(f), _) => format!("{f}; re-run with `{rerun}`"),
                (None, Some(root)) if root.starts_with("assertion") => format!(
                    "Fix the code under test or the expectation in {}{at} ({root}); re-run with `{rerun}`",
                    r.name
                ),
                _ => format!(
                    "Reproduce with `{rerun}` and fix the failing check in {}{at}",
                    r.name
                ),
            };
            ins.location = r.location;
            ins.root_cause = r.root;
            ins.impact = format!("test `{}` failed; {run}: the pipeline is red", r.name);
            ins.details = r.details;
            ins.details.insert("test".into(), r.name.clone());
            ins.details.insert("framework".into(), fw.name().to_owned());
            if let Some(cl) = r.class {
                ins.details.insert("class".into(), cl);
            }
            if !r.frames.is_empty() {
                ins.details.insert("stackTrace".into(), r.frames.join("\n"));
            }
            self.emit(ins);
        }

        // Kubernetes CrashLoopBackOff: only when nothing in the log explains it.
        let explained = [
            InsightKind::OutOfMemory,
            InsightKind::Crash,
            InsightKind::RuntimeException,
            InsightKind::ConfigError,
        ]
        .iter()
        .any(|k| {
            self.out.iter().any(|i| i.kind == *k) || self.extra.get(k).is_some_and(|n| *n > 0)
        });
        if !explained {
            for r in std::mem::take(&mut self.crashloops) {
                let pod = r.pod.as_deref().unwrap_or("a pod");
                let container = r
                    .container
                    .as_ref()
                    .map(|c| format!(" (container {c})"))
                    .unwrap_or_default();
                let lines: Vec<&str> = r.lines.iter().map(String::as_str).collect();
                let mut ins = new_insight(
                    InsightKind::Crash,
                    Severity::High,
                    r.idx,
                    &format!("Pod {pod} in CrashLoopBackOff{container}"),
                    excerpt(&lines),
                );
                ins.root_cause = Some(format!(
                    "the container{container} keeps exiting after start and Kubernetes backs off restarting it; this log holds no OOM kill or exception that explains why"
                ));
                let ns = r
                    .namespace
                    .as_ref()
                    .map(|n| format!(" -n {n}"))
                    .unwrap_or_default();
                let c = r
                    .container
                    .as_ref()
                    .map(|c| format!(" -c {c}"))
                    .unwrap_or_default();
                let p = r.pod.as_deref().unwrap_or("<pod>");
                ins.fix = format!(
                    "Read the crashed container's own output (`kubectl logs {p}{c}{ns} --previous`) and its last state (`kubectl describe pod {p}{ns}`: exit code, reason), then fix the startup failure (command, missing config/secret, failing probe)"
                );
                ins.impact =
                    "the pod never becomes ready: its replicas are missing and a rollout stalls"
                        .to_owned();
                if let Some(p) = r.pod {
                    ins.details.insert("pod".into(), p);
                }
                if let Some(c) = r.container {
                    ins.details.insert("container".into(), c);
                }
                if let Some(n) = r.namespace {
                    ins.details.insert("namespace".into(), n);
                }
                if r.occurrences > 1 {
                    ins.details
                        .insert("occurrences".into(), r.occurrences.to_string());
                }
                self.emit(ins);
            }
        }

        // Compile errors: how many block the build.
        let n_compile = self
            .out
            .iter()
            .filter(|i| i.kind == InsightKind::CompileError)
            .count() as u64
            + self
                .extra
                .get(&InsightKind::CompileError)
                .copied()
                .unwrap_or(0) as u64;
        let blocked = n_compile.max(self.compile_summary);
        for ins in self
            .out
            .iter_mut()
            .filter(|i| i.kind == InsightKind::CompileError)
        {
            ins.impact = format!(
                "build blocked: {blocked} compile error{}",
                if blocked == 1 { "" } else { "s" }
            );
        }
        // Aggregated findings: say how often they happened.
        for ins in &mut self.out {
            if let Some(n) = ins.details.get("occurrences") {
                ins.impact = format!("{} ({n} occurrences in this log)", ins.impact);
            }
        }
        super::cap_per_kind(self.out, &self.extra)
    }
}

// ---------------------------------------------------------------------------------------------
// Exception headers and frames
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ExcHeader {
    thread: Option<String>,
    name: String,
    message: String,
    uncaught: bool,
}

/// `Exception in thread "main" java.lang.X: msg`, `TypeError: msg`, `Unhandled exception.
/// System.X: msg`, `Uncaught Error: msg`, `com.x.FooException` …
fn parse_exc_header(t: &str) -> Option<ExcHeader> {
    let c = re!(
        r#"(?:^|[\s:(\[\]])(Exception in thread "([^"]*)" |Uncaught (?:exception )?|Unhandled exception\.? |\[UnhandledPromiseRejection\w*\]?:? )?((?:[a-zA-Z_$][\w$]*\.)*(?:[A-Z][\w$]*(?:Exception|Error|Failure|Throwable)|Error))(?: \[(\w+)\])?(?::\s*(.*?))?\s*$"#
    )
    .captures(t)?;
    let name = c[3].to_owned();
    let marker = c.get(1).map_or("", |m| m.as_str());
    let message = c.get(5).map_or("", |m| m.as_str()).to_owned();
    // `Error` alone must be a JS error with a message, not a word in prose.
    if name == "Error" && c.get(5).is_none() {
        return None;
    }
    // prose like "Connection Error" — the name must start the line, follow a marker or be
    // qualified / a real exception type
    let start = c.get(3).map_or(0, |m| m.start());
    let before = t[..start].trim_end();
    let plausible = !marker.is_empty()
        || before.is_empty()
        || name.contains('.')
        || before.ends_with(':')
        || before.ends_with("Caused by:");
    if !plausible {
        return None;
    }
    Some(ExcHeader {
        thread: c.get(2).map(|m| m.as_str().to_owned()),
        name,
        message,
        uncaught: !marker.is_empty(),
    })
}

struct Trace {
    name: String,
    message: String,
    thread: Option<String>,
    uncaught: bool,
    frames: Vec<Frame>,
    causes: Vec<(String, String, Vec<Frame>)>,
    end: usize,
}

impl Trace {
    fn bare(h_idx: usize, h: ExcHeader) -> Self {
        Self {
            name: h.name,
            message: h.message,
            thread: h.thread,
            uncaught: h.uncaught,
            frames: Vec::new(),
            causes: Vec::new(),
            end: h_idx + 1,
        }
    }

    /// First user-code frame: of the deepest cause if it has one, else of the top exception,
    /// else the first frame with a location.
    fn user_location(&self) -> Option<String> {
        // Java: frames in the application's own package (that of the outermost user frame,
        // usually the entry point) beat third-party library frames.
        let app = self
            .frames
            .iter()
            .rev()
            .find(|f| f.user)
            .and_then(|f| java_package_root(&f.text));
        if let Some(app) = app {
            let in_app = |fs: &[Frame]| {
                fs.iter()
                    .find(|f| f.user && java_package_root(&f.text).as_deref() == Some(app.as_str()))
                    .and_then(|f| f.location.clone())
            };
            if let Some(l) = self.causes.iter().rev().find_map(|c| in_app(&c.2)) {
                return Some(l);
            }
        }
        let first_user = |fs: &[Frame]| fs.iter().find(|f| f.user).and_then(|f| f.location.clone());
        self.causes
            .iter()
            .rev()
            .find_map(|c| first_user(&c.2))
            .or_else(|| first_user(&self.frames))
            .or_else(|| self.frames.iter().find_map(|f| f.location.clone()))
    }

    fn frame_texts(&self) -> Vec<String> {
        self.frames.iter().take(8).map(|f| f.text.clone()).collect()
    }
}

/// A Java / JS / .NET `at …` stack frame.
pub(super) fn parse_frame(l: &str) -> Option<Frame> {
    let t = l.trim_start();
    let rest = if let Some(r) = t.strip_prefix("at ") {
        r
    } else {
        let p = memchr::memmem::find(l.as_bytes(), b"\tat ")
            .map(|p| p + 4)
            .or_else(|| memchr::memmem::find(l.as_bytes(), b"    at ").map(|p| p + 7))?;
        &l[p..]
    };
    let rest = rest.trim_end();
    let text = truncate(&format!("at {rest}"), 200);
    if let Some(c) = re!(r"^(.+?) in (.+?):line (\d+)$").captures(rest) {
        let user = !is_framework(&c[1], Some(&c[2]));
        return Some(Frame {
            text,
            location: Some(loc(&c[2], &c[3], None)),
            user,
        });
    }
    if let Some(c) = re!(r"^([\w$.<>/\[\]-]+)\(([^():]*)(?::(\d+))?\)").captures(rest) {
        let func = &c[1];
        let location = c.get(3).map(|n| loc(&c[2], n.as_str(), None));
        let user = location.is_some() && !is_framework(func, Some(&c[2]));
        return Some(Frame {
            text,
            location,
            user,
        });
    }
    if let Some(f) = parse_bare_js_frame(rest) {
        return Some(Frame { text, ..f });
    }
    // `at new Promise (<anonymous>)`, `at async Promise.all (index 0)`
    re!(r"^[\w$.<>\[\] ]+ \([^)]*\)$|^<anonymous>$")
        .is_match(rest)
        .then_some(Frame {
            text,
            location: None,
            user: false,
        })
}

/// `fn (path:line:col)` or `path:line:col` (JS frames, also TAP `stack:` lines).
fn parse_bare_js_frame(rest: &str) -> Option<Frame> {
    let c = re!(r"^(?:(?:async |new )?(.+?) \()?((?:file://)?[^()\s][^()]*?):(\d+):(\d+)\)?$")
        .captures(rest)?;
    let func = c.get(1).map_or("", |m| m.as_str());
    let file = c[2].strip_prefix("file://").unwrap_or(&c[2]);
    Some(Frame {
        text: truncate(rest, 200),
        location: Some(loc(file, &c[3], Some(&c[4]))),
        user: !is_framework(func, Some(file)),
    })
}

/// `com.acme` of a Java frame `at com.acme.shop.Foo.bar(Foo.java:1)` (first two segments).
fn java_package_root(frame_text: &str) -> Option<String> {
    let f = frame_text.strip_prefix("at ")?;
    if !f.contains(".java:") && !f.contains(".kt:") && !f.contains(".scala:") {
        return None;
    }
    let f = f.rsplit_once('/').map_or(f, |(_, r)| r);
    let mut it = f.split('.');
    let (a, b) = (it.next()?, it.next()?);
    Some(format!("{a}.{b}"))
}

fn short_name(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

fn opt_msg(m: &str) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(": {m}")
    }
}

fn is_assertion(name: &str) -> bool {
    let s = short_name(name);
    s.contains("Assert") || s.contains("ComparisonFailure") || s == "AssertionFailedError"
}

fn agg_key(kind: InsightKind, name: &str, msg: &str, location: Option<&str>) -> String {
    format!(
        "{kind:?}|{name}|{}|{}",
        template(msg),
        location.unwrap_or("")
    )
}

fn severity_for(kind: InsightKind, uncaught: bool, lvl: Option<Level>) -> Severity {
    match kind {
        InsightKind::Crash | InsightKind::OutOfMemory => Severity::Critical,
        InsightKind::CompileError | InsightKind::TestFailure | InsightKind::DependencyConflict => {
            Severity::High
        }
        InsightKind::ConfigError => Severity::High,
        _ => {
            if uncaught || lvl == Some(Level::Fatal) {
                Severity::Critical
            } else {
                match lvl {
                    Some(Level::Warn) => Severity::Medium,
                    Some(Level::Info) | Some(Level::Debug) => Severity::Medium,
                    _ => Severity::High,
                }
            }
        }
    }
}

fn impact_for(kind: InsightKind, sev: Severity, unit: &str) -> String {
    match kind {
        InsightKind::OutOfMemory => {
            "the process ran out of memory: its work is lost and it restarts (or stays down)"
                .to_owned()
        }
        InsightKind::Crash => format!("the {unit} crashed: in-flight work is lost"),
        InsightKind::CompileError => "build blocked".to_owned(),
        InsightKind::ConfigError => {
            "the service cannot start or runs misconfigured until the configuration is fixed"
                .to_owned()
        }
        _ => match sev {
            Severity::Critical => format!(
                "uncaught exception: the {unit} failed (failed requests / jobs until fixed)"
            ),
            Severity::High => format!("the {unit} hit an error: the operation failed"),
            _ => format!("the {unit} logged an exception and continued"),
        },
    }
}

/// Kind, root cause and fix of an exception from its name and message.
fn classify(name: &str, msg: &str, environ: bool, location: Option<&str>) -> Class {
    let short = short_name(name);
    let at = location.map(|l| format!(" at {l}")).unwrap_or_default();
    let rt = |root: Option<String>, fix: String| Class {
        kind: InsightKind::RuntimeException,
        root,
        fix,
    };
    // out of memory
    if short == "OutOfMemoryError" || short == "MemoryError" {
        let (root, fix) = if msg.contains("Metaspace") {
            ("class metadata space exhausted (Metaspace)", "Raise -XX:MaxMetaspaceSize or fix the class-loader leak (redeploys, dynamic proxies)")
        } else if msg.contains("GC overhead") {
            ("the JVM spends almost all its time in GC (GC overhead limit exceeded)", "Raise -Xmx or reduce the live data set; capture a heap dump with -XX:+HeapDumpOnOutOfMemoryError")
        } else if msg.contains("native thread") {
            ("the JVM cannot create more threads", "Bound thread pools and raise the process/container thread limit (ulimit -u, pids limit)")
        } else if short == "MemoryError" {
            (
                "the Python process ran out of memory",
                "Process the data in chunks / stream it, or raise the memory limit",
            )
        } else {
            ("JVM heap exhausted (Java heap space)", "Raise -Xmx (and the container memory) or fix the leak: capture a heap dump with -XX:+HeapDumpOnOutOfMemoryError")
        };
        return Class {
            kind: InsightKind::OutOfMemory,
            root: Some(root.to_owned()),
            fix: fix.to_owned(),
        };
    }
    // syntax errors are compile errors
    if matches!(short, "SyntaxError" | "IndentationError" | "TabError") {
        return Class {
            kind: InsightKind::CompileError,
            root: Some(format!("syntax error: {msg}")),
            fix: format!("Fix the syntax{at}: {msg}"),
        };
    }
    // configuration
    let cfg_name = short.contains("Configuration")
        || short == "ImproperlyConfigured"
        || short == "ConfigError"
        || short.ends_with("ConfigException");
    let env_key = (short == "KeyError" && environ)
        .then(|| re!(r"^'([A-Z][A-Z0-9_]{2,})'$").captures(msg.trim()))
        .flatten()
        .map(|c| c[1].to_owned());
    if let Some(var) = env_key {
        return Class {
            kind: InsightKind::ConfigError,
            root: Some(format!("environment variable {var} is not set")),
            fix: format!(
                "Set {var} in the environment (or read it with os.environ.get and a clear error)"
            ),
        };
    }
    if cfg_name {
        return Class {
            kind: InsightKind::ConfigError,
            root: Some(format!("invalid configuration: {msg}")),
            fix:
                "Correct the configuration value named in the error and validate config at startup"
                    .to_owned(),
        };
    }
    if let Some(c) = re!(r"ENOENT: no such file or directory, \w+ '([^']+)'").captures(msg) {
        let p = &c[1];
        if p.contains(".env") || p.to_ascii_lowercase().contains("config") {
            return Class {
                kind: InsightKind::ConfigError,
                root: Some(format!("the configuration file {p} does not exist")),
                fix: format!("Create {p} (e.g. from the example file) or point the app at the right config path"),
            };
        }
        return rt(
            Some(format!("file {p} does not exist")),
            format!("Make sure {p} exists (or handle its absence) before opening it{at}"),
        );
    }
    // JS property access on undefined/null
    if let Some(c) = re!(
        r"Cannot (read|set) propert(?:y|ies) (?:'([^']+)' )?of (undefined|null)(?: \((?:reading|setting) '([^']+)'\))?"
    )
    .captures(msg)
    {
        let prop = c.get(2).or(c.get(4)).map_or("?", |m| m.as_str());
        let verb = if &c[1] == "read" { "read" } else { "set" };
        return rt(
            Some(format!("value is {} when property '{prop}' is {verb}", &c[3])),
            format!("Add a null check / optional chaining before reading '{prop}' (obj?.{prop}){at}, and find why the object is {}", &c[3]),
        );
    }
    if let Some(c) = re!(r"Cannot find module '([^']+)'").captures(msg) {
        let m = &c[1];
        return rt(
            Some(format!("module '{m}' cannot be resolved")),
            if m.starts_with('.') || m.starts_with('/') {
                format!("Fix the import path '{m}'{at} (the file does not exist where it is looked for)")
            } else {
                format!("Install '{m}' (npm install {m}, and list it in package.json dependencies) or fix the import")
            },
        );
    }
    if let Some(c) = re!(r"^(\S+) is not a function").captures(msg) {
        return rt(
            Some(format!("`{}` is not a function at call time", &c[1])),
            format!(
                "Check that `{}` is defined and imported/exported correctly before calling it{at}",
                &c[1]
            ),
        );
    }
    if let Some(c) = re!(r"^(\S+) is not defined").captures(msg) {
        return rt(
            Some(format!("unresolved name `{}`", &c[1])),
            format!("Declare or import `{}`{at}", &c[1]),
        );
    }
    match short {
        "NullPointerException" => {
            let c = re!(r#"Cannot (?:invoke|read|load|store|assign) (?:field )?"?([^"]+?)"? because "?([^"]+?)"? is null"#).captures(msg);
            match c {
                Some(c) => rt(
                    Some(format!("\"{}\" is null when {} is used", &c[2], &c[1])),
                    format!("Add a null check (or Optional) for {} before using {}{at}", &c[2], &c[1]),
                ),
                None => rt(
                    Some("a null reference was dereferenced".to_owned()),
                    format!("Add a null check (or use Optional) before dereferencing{at}"),
                ),
            }
        }
        "NullReferenceException" => rt(
            Some("a null reference was dereferenced".to_owned()),
            format!("Add a null check (?. / ??) before dereferencing{at}"),
        ),
        "AttributeError" => {
            match re!(r"'(\w+)' object has no attribute '(\w+)'").captures(msg) {
                Some(c) if &c[1] == "NoneType" => rt(
                    Some(format!("value is None when attribute '{}' is read", &c[2])),
                    format!("Check for None before accessing .{}{at} (and find why it is None)", &c[2]),
                ),
                Some(c) => rt(
                    Some(format!("'{}' objects have no attribute '{}'", &c[1], &c[2])),
                    format!("Fix the attribute name or the object's type{at}"),
                ),
                None => rt(Some(msg.to_owned()), format!("Fix the attribute access{at}")),
            }
        }
        "KeyError" => rt(
            Some(format!("missing key {}", msg.trim())),
            format!("Check the key exists or use .get({}, default){at}", msg.trim()),
        ),
        "IndexError" | "ArrayIndexOutOfBoundsException" | "IndexOutOfBoundsException"
        | "StringIndexOutOfBoundsException" | "ArgumentOutOfRangeException" | "RangeError" => rt(
            Some(format!("index out of range: {msg}")),
            format!("Check the index against the collection's length before access{at}"),
        ),
        "ZeroDivisionError" | "DivideByZeroException" => rt(
            Some("division by zero".to_owned()),
            format!("Guard the divisor against zero{at}"),
        ),
        "ArithmeticException" if msg.contains("by zero") => rt(
            Some("division by zero".to_owned()),
            format!("Guard the divisor against zero{at}"),
        ),
        "ModuleNotFoundError" | "ImportError" => {
            let m = re!(r"No module named '([^']+)'").captures(msg).map(|c| c[1].to_owned());
            match m {
                Some(m) => rt(
                    Some(format!("module '{m}' is not installed")),
                    format!("Install '{m}' (add it to the requirements) or fix the import path"),
                ),
                None => rt(Some(msg.to_owned()), "Fix the import (installed package and module path)".to_owned()),
            }
        }
        "ClassNotFoundException" | "NoClassDefFoundError" => rt(
            Some(format!("class {msg} is missing at runtime")),
            "Add the library providing the class to the runtime classpath (check dependency scope and shading)".to_owned(),
        ),
        "FileNotFoundError" | "FileNotFoundException" | "NoSuchFileException" => rt(
            Some(format!("file not found: {msg}")),
            format!("Make sure the file exists (or handle its absence) before opening it{at}"),
        ),
        "ConnectionRefusedError" | "ConnectException" => rt(
            Some(format!("connection refused: {msg}")),
            "Check that the dependent service is running and reachable (host/port configuration), and retry with backoff".to_owned(),
        ),
        "TimeoutError" | "SocketTimeoutException" | "TimeoutException" => rt(
            Some(format!("timed out: {msg}")),
            "Find the slow dependency; set explicit timeouts and retry with backoff".to_owned(),
        ),
        "NumberFormatException" | "ValueError" | "IllegalArgumentException" | "FormatException" => rt(
            Some(format!("invalid value: {msg}")),
            format!("Validate the input before using it{at}"),
        ),
        "ClassCastException" | "InvalidCastException" => rt(
            Some(format!("wrong type: {msg}")),
            format!("Check the runtime type before casting{at}"),
        ),
        "ConcurrentModificationException" => rt(
            Some("collection modified while iterating".to_owned()),
            format!("Iterate over a copy or use an iterator's remove(){at}"),
        ),
        "StackOverflowError" | "RecursionError" => rt(
            Some("unbounded recursion".to_owned()),
            format!("Add a base case / make the recursion iterative{at}"),
        ),
        _ => {
            if msg.contains("remaining connection slots are reserved")
                || msg.contains("too many clients already")
            {
                return rt(
                    Some(format!("PostgreSQL connection slots exhausted (max_connections reached): {msg}")),
                    "Pool connections (PgBouncer, or a bounded application pool) and close leaked/idle connections, or raise max_connections".to_owned(),
                );
            }
            if msg.contains("ECONNREFUSED") {
                return rt(
                    Some(format!("connection refused: {msg}")),
                    "Check that the dependent service is running and reachable (host/port configuration), and retry with backoff".to_owned(),
                );
            }
            rt(
                (!msg.is_empty()).then(|| format!("{short}: {msg}")),
                format!("Handle the {short}{at}: validate inputs/state before the failing call, or catch it and fail gracefully"),
            )
        }
    }
}

fn go_panic_class(msg: &str, location: Option<&str>) -> (InsightKind, String, String) {
    let at = location.map(|l| format!(" at {l}")).unwrap_or_default();
    if msg.contains("out of memory") {
        return (
            InsightKind::OutOfMemory,
            "the Go runtime could not allocate more memory".to_owned(),
            "Profile the heap with pprof and bound allocations, or raise the memory limit (GOMEMLIMIT / container)".to_owned(),
        );
    }
    let (root, fix) = if msg.contains("nil pointer dereference") {
        (
            "nil pointer dereference".to_owned(),
            format!("Check the pointer/interface for nil before dereferencing{at}"),
        )
    } else if let Some(c) = re!(r"index out of range \[(\d+)\] with length (\d+)").captures(msg) {
        (
            format!("index {} out of range for length {}", &c[1], &c[2]),
            format!("Check the index against len() before indexing{at}"),
        )
    } else if msg.contains("assignment to entry in nil map") {
        (
            "write to a nil map".to_owned(),
            format!("Initialise the map with make(...) before writing{at}"),
        )
    } else if msg.contains("concurrent map") {
        (
            "concurrent map access without synchronisation".to_owned(),
            "Guard the map with a sync.Mutex / sync.RWMutex or use sync.Map".to_owned(),
        )
    } else if msg.contains("goroutines are asleep") {
        (
            "deadlock: every goroutine is blocked".to_owned(),
            "Check channel sends/receives and WaitGroup counts: some send or receive never happens"
                .to_owned(),
        )
    } else if msg.contains("stack overflow") {
        (
            "goroutine stack overflow (unbounded recursion)".to_owned(),
            format!("Add a base case / make the recursion iterative{at}"),
        )
    } else {
        (format!("panic: {msg}"), format!("Prevent the panic{at} (check the failing condition) or recover and return an error"))
    };
    (InsightKind::Crash, root, fix)
}

fn rust_panic_root(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or("");
    if first.starts_with("assertion `left") || first.starts_with("assertion failed: `(left") {
        let mut left = None;
        let mut right = None;
        for l in msg.lines() {
            let t = l.trim();
            if let Some(v) = t.strip_prefix("left:") {
                left = Some(v.trim().trim_matches(',').trim_matches('`').to_owned());
            } else if let Some(v) = t.strip_prefix("right:") {
                right = Some(v.trim().trim_matches(',').trim_matches('`').to_owned());
            }
        }
        let custom = first
            .split_once(" failed: ")
            .map(|(_, c)| format!(" ({c})"))
            .unwrap_or_default();
        if let (Some(l), Some(r)) = (left, right) {
            return format!("assertion{custom}: left {l}, right {r}");
        }
    }
    if let Some(rest) = first.strip_prefix("called `Result::unwrap()` on an `Err` value: ") {
        return format!("unwrap() on an Err value: {rest}");
    }
    if first.starts_with("called `Option::unwrap()` on a `None` value") {
        return "unwrap() on a None value".to_owned();
    }
    truncate(first, 200)
}

fn rust_panic_fix(msg: &str, location: Option<&str>) -> String {
    let at = location.map(|l| format!(" at {l}")).unwrap_or_default();
    if msg.contains("Result::unwrap()") || msg.contains("Result::expect()") {
        format!("Handle the Err case with ? or match instead of unwrap(){at}")
    } else if msg.contains("Option::unwrap()") {
        format!("Handle the None case (if let / ok_or(..)?) instead of unwrap(){at}")
    } else if msg.contains("index out of bounds") {
        format!("Check the index against len() or use .get(){at}")
    } else if msg.contains("with overflow") {
        format!("Use checked_/saturating_ arithmetic{at}")
    } else if msg.starts_with("assertion") {
        format!("Fix the violated invariant{at} (the assertion shows the two values)")
    } else {
        format!("Handle the failing condition instead of panicking{at}")
    }
}

fn pytest_root(first: &str, second: Option<&str>) -> String {
    if first.starts_with("assert ") {
        match second {
            Some(s) if s.starts_with('+') => format!("assertion: {first} ({s})"),
            _ => format!("assertion: {first}"),
        }
    } else {
        truncate(first, 200)
    }
}

fn assertion_root(msg: &str) -> Option<String> {
    let c = re!(r"expected:? ?<(.*?)> but was:? ?<(.*?)>").captures(msg)?;
    Some(format!("assertion: expected {}, got {}", &c[1], &c[2]))
}

/// Root cause and fix of a compile error from its message (and the diagnostic's next lines).
fn diagnose_compile(msg: &str, ctx: &[&str], location: Option<&str>) -> (Option<String>, String) {
    let at = location.map(|l| format!(" at {l}")).unwrap_or_default();
    let unresolved = |name: &str| {
        let hint = ctx.iter().find_map(|l| {
            re!(r"(?:with a similar name(?: exists)?|similarly named \w+ `[^`]+` defined here)[^`]*`([^`]+)`")
                .captures(l)
                .map(|c| c[1].to_owned())
        });
        (
            Some(format!("unresolved name `{name}`")),
            match hint {
                Some(h) => {
                    format!("Declare or import `{name}`{at}, or use `{h}` if that was meant")
                }
                None => format!("Declare or import `{name}`{at} (check spelling and imports)"),
            },
        )
    };
    let first = |r: &Regex| r.captures(msg).map(|c: Captures<'_>| c[1].to_owned());
    if let Some(n) = first(re!(r"cannot find (?:value|function|type|macro|struct|trait|crate|module|attribute|derive macro) `([^`]+)`"))
        .or_else(|| first(re!(r"use of undeclared (?:type|crate or module|lifetime name) `([^`]+)`")))
        .or_else(|| first(re!(r"use of undeclared identifier '([^']+)'")))
        .or_else(|| first(re!(r"'([^']+)' undeclared")))
        .or_else(|| first(re!(r"'([^']+)' was not declared in this scope")))
        .or_else(|| first(re!(r"^undefined: (\S+)")))
        .or_else(|| first(re!(r"Cannot find name '([^']+)'")))
        .or_else(|| first(re!(r"Unresolved reference:? '?(\w+)")))
        .or_else(|| first(re!(r"name '([^']+)' is not defined")))
        .or_else(|| first(re!(r"The name '([^']+)' does not exist in the current context")))
    {
        return unresolved(&n);
    }
    if msg.starts_with("cannot find symbol") {
        let sym = ctx.iter().find_map(|l| {
            re!(r"symbol:\s+(?:variable|method|class|field)?\s*(\w+)")
                .captures(l)
                .map(|c| c[1].to_owned())
        });
        return match sym {
            Some(s) => unresolved(&s),
            None => (
                Some("unresolved symbol".to_owned()),
                format!("Declare or import the missing symbol{at}"),
            ),
        };
    }
    let similar = ctx.iter().find_map(|l| {
        re!(r"(?:with a similar name(?: exists)?|similarly named \w+ `[^`]+` defined here)[^`]*`([^`]+)`")
            .captures(l)
            .map(|c| c[1].to_owned())
    });
    if let Some(c) = re!(
        r"no (method|field|function|associated item) named `([^`]+)` found for (?:\w+ )?`([^`]+)`"
    )
    .captures(msg)
    .or_else(|| re!(r"no (field) `([^`]+)` on type `([^`]+)`").captures(msg))
    {
        return (
            Some(format!("`{}` has no {} named `{}`", &c[3], &c[1], &c[2])),
            match &similar {
                Some(s) => format!("Use `{s}` instead of `{}`{at} (rustc suggests it)", &c[2]),
                None => format!(
                    "Call an existing {} or implement `{}` for `{}`{at}",
                    &c[1], &c[2], &c[3]
                ),
            },
        );
    }
    if let Some(n) = first(re!(r"unresolved import `([^`]+)`")) {
        return (
            Some(format!("unresolved import `{n}`")),
            format!("Fix the `use` path or add the missing crate to Cargo.toml{at}"),
        );
    }
    if msg.starts_with("mismatched types") {
        let ef = ctx.iter().find_map(|l| {
            re!(r"expected (?:`([^`]+)`|(.+?)), found (?:`([^`]+)`|(.+))$")
                .captures(l)
                .map(|c| {
                    (
                        c.get(1).or(c.get(2)).map_or("", |m| m.as_str()).to_owned(),
                        c.get(3)
                            .or(c.get(4))
                            .map_or("", |m| m.as_str())
                            .trim()
                            .to_owned(),
                    )
                })
        });
        return match ef {
            Some((e, f)) => (
                Some(format!("type mismatch: expected `{e}`, found `{f}`")),
                format!("Convert the value or change the declared type so `{f}` becomes `{e}`{at}"),
            ),
            None => (
                Some("type mismatch".to_owned()),
                format!("Convert the value or change the declared type so both sides agree{at}"),
            ),
        };
    }
    if let Some(c) = re!(r"Type '(.+?)' is not assignable to type '(.+?)'").captures(msg) {
        return (
            Some(format!("type mismatch: '{}' is not assignable to '{}'", &c[1], &c[2])),
            format!("Change the value or the declared type so '{}' matches '{}' (or narrow it first){at}", &c[1], &c[2]),
        );
    }
    if let Some(c) = re!(r"incompatible types: (.+?) cannot be converted to (.+)$").captures(msg) {
        return (
            Some(format!(
                "type mismatch: {} cannot be converted to {}",
                &c[1], &c[2]
            )),
            format!("Convert the value explicitly or change the declared type{at}"),
        );
    }
    if let Some(c) = re!(r"cannot use (.+?) \(.*?\) as (.+?) value").captures(msg) {
        return (
            Some(format!("type mismatch: {} used as {}", &c[1], &c[2])),
            format!("Convert the value or change the declared type{at}"),
        );
    }
    if let Some(n) = first(re!(r"(?:borrow|use) of moved value: `([^`]+)`")) {
        return (
            Some(format!("`{n}` used after it was moved")),
            format!("Borrow `{n}` (&{n}) or clone it before the move{at}"),
        );
    }
    if let Some(n) = first(re!(r"cannot borrow `([^`]+)` as mutable")) {
        return (
            Some(format!("conflicting or immutable borrow of `{n}`")),
            format!("Declare `{n}` as `mut` or end the other borrow before this one{at}"),
        );
    }
    if let Some(n) = first(re!(r"the trait bound `([^`]+)` is not satisfied")) {
        return (
            Some(format!("trait bound `{n}` is not satisfied")),
            format!("Implement or derive the trait for the type, or change the generic bound{at}"),
        );
    }
    if let Some(n) = first(re!(r"(\S+\.h(?:pp)?): No such file or directory"))
        .or_else(|| first(re!(r"'(\S+)' file not found")))
    {
        return (
            Some(format!("header `{n}` not found")),
            format!("Install the development package providing `{n}` or add its directory to the include path (-I)"),
        );
    }
    if let Some(n) = first(re!(r"declared and not used: (\w+)"))
        .or_else(|| first(re!(r"^(\w+) declared and not used")))
        .or_else(|| first(re!(r#""([^"]+)" imported and not used"#)))
    {
        return (
            Some(format!("`{n}` is declared or imported but never used")),
            format!("Use or remove `{n}`{at}"),
        );
    }
    if msg.starts_with("missing return") {
        return (
            Some("a code path returns no value".to_owned()),
            format!("Return a value on every path{at}"),
        );
    }
    if msg.contains("SyntaxError")
        || msg.contains("IndentationError")
        || msg.contains("syntax error")
        || msg.starts_with("expected ")
        || msg.contains("Unexpected token")
    {
        return (
            Some(format!("syntax error: {msg}")),
            format!("Fix the syntax{at}: {msg}"),
        );
    }
    (None, format!("Fix the compile error{at}: {msg}"))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

pub mod locator;

#[cfg(test)]
mod tests;
