//! Quality Inspector: low test coverage, deprecated dependencies, compiler / linter warnings and
//! signs of missing error handling, as deterministic rules over log text.
//!
//! Same two-stage trigger scan as the Error Detective (`error.rs`, whose small helpers it
//! shares): a few anchors found with Aho-Corasick over the whole log, exact triggers on the
//! candidate lines, regexes only on lines of the matching rule group.
//!
//! `docs/analysers.md` ("Quality Inspector") documents every rule.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use regex::Regex;

use super::error::{
    excerpt, is_framework, loc, new_insight, parse_frame, strip_annotation, template, truncate,
    Triggers, KEEP_PER_KIND,
};
use super::{AnalyserConfig, LogText};
use crate::logmarket::insight::{Insight, InsightKind, Severity};

/// A regex compiled once, on first use, into a static.
macro_rules! re {
    ($s:expr) => {{
        static RE: OnceLock<Regex> = OnceLock::new();
        RE.get_or_init(|| compile($s))
    }};
}

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

const Q_COV: u64 = 1 << 0;
const Q_DEPR: u64 = 1 << 1;
const Q_WARN: u64 = 1 << 2;
const Q_MEH: u64 = 1 << 3;

const PATTERNS: &[(&str, u64)] = &[
    ("TOTAL", Q_COV),
    ("All files", Q_COV),
    ("overage", Q_COV),
    ("COVERAGE", Q_COV),
    ("covered", Q_COV),
    ("Total", Q_COV),
    ("total:", Q_COV),
    ("eprecat", Q_DEPR),
    ("EPRECAT", Q_DEPR),
    ("has been relocated", Q_DEPR),
    ("is abandoned", Q_DEPR),
    ("rejected by a future version", Q_DEPR),
    ("warning", Q_WARN),
    ("Warning: ", Q_WARN),
    ("[WARNING]", Q_WARN),
    ("[Warning/", Q_WARN),
    ("Warning - ", Q_WARN),
    ("nhandled", Q_MEH),
    ("unwrap", Q_MEH),
    ("expect()", Q_MEH),
    ("Exception ignored in", Q_MEH),
    ("never retrieved", Q_MEH),
    ("is not checked", Q_MEH),
    ("errcheck", Q_MEH),
    ("swallow", Q_MEH),
    ("gnor", Q_MEH),
    ("printStackTrace", Q_MEH),
    ("PrintStackTrace", Q_MEH),
    ("bare", Q_MEH),
    ("B110", Q_MEH),
    ("S110", Q_MEH),
    ("broad", Q_MEH),
    ("G104", Q_MEH),
    ("must be used", Q_MEH),
    ("romise", Q_MEH),
    ("mpty catch", Q_MEH),
    ("EmptyCatch", Q_MEH),
    ("MIGHT_IGNORE", Q_MEH),
];

/// Stage-1 anchors (every pattern above contains one; checked by a test).
const ANCHORS: &[&str] = &[
    "TOTAL",
    "All files",
    "overage",
    "COVERAGE",
    "covered",
    "Total",
    "total:",
    "eprecat",
    "EPRECAT",
    "relocated",
    "abandoned",
    "future version",
    "warning",
    "Warning",
    "WARNING",
    "nhandled",
    "unwrap",
    "expect()",
    "never retrieved",
    "is not checked",
    "errcheck",
    "swallow",
    "gnor",
    "rintStackTrace",
    "bare",
    "B110",
    "S110",
    "broad",
    "G104",
    "must be used",
    "romise",
    "mpty catch",
    "EmptyCatch",
    "MIGHT_IGNORE",
];

fn triggers() -> &'static Triggers {
    static T: OnceLock<Triggers> = OnceLock::new();
    T.get_or_init(|| Triggers::new(PATTERNS, ANCHORS))
}

pub fn analyse(log: &LogText<'_>, config: &AnalyserConfig) -> Vec<Insight> {
    let cands = triggers().scan(log);
    if cands.is_empty() {
        return Vec::new();
    }
    let mut q = Inspector::new(&log.bodies, config);
    for (i, mask) in cands {
        if i < q.next {
            continue;
        }
        q.next = i + 1;
        q.line(i, mask);
    }
    q.finish()
}

#[derive(Clone, Copy)]
enum FileTable {
    CoveragePy,
    Istanbul,
}

struct CoverageSeen {
    idx: usize,
    value: f64,
    scope: Option<String>,
}

struct Inspector<'l, 'a> {
    lines: &'l [&'a str],
    target: u32,
    next: usize,
    out: Vec<Insight>,
    /// aggregation key → index in `out`
    agg: HashMap<String, usize>,
    coverage: Vec<CoverageSeen>,
    eslint_file: Option<String>,
    eslint_scanned: usize,
    last_promise: Option<usize>,
    /// insights kept per kind / only counted past [`KEEP_PER_KIND`]
    stored: HashMap<InsightKind, usize>,
    extra: BTreeMap<InsightKind, usize>,
}

impl<'l, 'a> Inspector<'l, 'a> {
    fn new(lines: &'l [&'a str], config: &AnalyserConfig) -> Self {
        Self {
            lines,
            target: config.coverage_target_percent,
            next: 0,
            out: Vec::new(),
            agg: HashMap::new(),
            coverage: Vec::new(),
            eslint_file: None,
            eslint_scanned: 0,
            last_promise: None,
            stored: HashMap::new(),
            extra: BTreeMap::new(),
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

    fn l(&self, i: usize) -> &'a str {
        self.lines.get(i).map_or("", |l| strip_annotation(l))
    }

    fn line(&mut self, i: usize, mask: u64) {
        let t = strip_annotation(self.lines[i]);
        if mask & Q_MEH != 0 && self.missing_handling(i, t) {
            return;
        }
        if mask & Q_DEPR != 0 && self.deprecated(i, t) {
            return;
        }
        if mask & Q_COV != 0 && self.coverage(i, t) {
            return;
        }
        if mask & Q_WARN != 0 {
            self.warning(i, t);
        }
    }

    /// Adds an insight, or counts one more occurrence of an earlier one with the same key
    /// (keeping up to five distinct locations in `locations`).
    fn push_agg(&mut self, key: String, ins: Insight) {
        if let Some(&at) = self.agg.get(&key) {
            let e = &mut self.out[at];
            let n: u64 = e
                .details
                .get("occurrences")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            e.details.insert("occurrences".into(), (n + 1).to_string());
            if let Some(l) = &ins.location {
                let locs = e.details.entry("locations".into()).or_default();
                let count = locs.split(", ").filter(|s| !s.is_empty()).count();
                if count < 5 && !locs.split(", ").any(|x| x == l) {
                    if !locs.is_empty() {
                        locs.push_str(", ");
                    }
                    locs.push_str(l);
                }
            }
            return;
        }
        let at = self.out.len();
        if self.emit(ins) {
            self.agg.insert(key, at);
        }
    }

    /// `-->` location of a rustc diagnostic starting at `i`.
    fn rust_arrow(&self, i: usize) -> Option<String> {
        (i + 1..(i + 5).min(self.lines.len())).find_map(|k| {
            re!(r"^\s*--> (.+?):(\d+):(\d+)\s*$")
                .captures(self.l(k))
                .map(|a| loc(&a[1], &a[2], Some(&a[3])))
        })
    }

    /// The file an ESLint "stylish" block belongs to: the last unindented path line above `i`.
    fn eslint_file_for(&mut self, i: usize) -> Option<String> {
        let from = self.eslint_scanned.max(i.saturating_sub(5000));
        for k in from..i {
            let l = self.l(k);
            if re!(r"^[^\s:]*[\w)]\.(?:[cm]?[jt]sx?|vue|svelte|astro)$").is_match(l.trim_end()) {
                self.eslint_file = Some(l.trim_end().to_owned());
            }
        }
        self.eslint_scanned = i;
        self.eslint_file.clone()
    }

    // -----------------------------------------------------------------------------------------
    // Missing error handling
    // -----------------------------------------------------------------------------------------

    fn missing_handling(&mut self, i: usize, t: &str) -> bool {
        let location: Option<String>;
        let (family, title, root, fix): (&str, String, Option<String>, String);
        if let Some(c) = (t.contains("nhandled") && t.contains("ejection"))
            .then(|| {
                re!(r"UnhandledPromiseRejection(?:Warning)?\]?:? ?(.*)$|(?i)\bunhandled ?(?:promise ?)?rejection\b[:\s]*(.*)$")
                    .captures(t)
            })
            .flatten()
        {
            if self.last_promise.is_some_and(|k| i <= k + 10) {
                return true;
            }
            self.last_promise = Some(i);
            let raw = c.get(1).or(c.get(2)).map_or("", |m| m.as_str()).trim();
            let reason = re!(r#"reason "([^"]*)""#)
                .captures(raw)
                .map(|r| r[1].to_owned())
                .unwrap_or_else(|| raw.trim_end_matches(']').to_owned());
            let frames: Vec<_> = (i + 1..(i + 12).min(self.lines.len()))
                .map_while(|k| parse_frame(self.l(k)))
                .collect();
            location = frames
                .iter()
                .find(|f| f.user)
                .and_then(|f| f.location.clone());
            family = "promise";
            title = format!("Unhandled promise rejection: {reason}");
            root = Some(format!(
                "a promise rejected{} and nothing handled the rejection",
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(" with \"{reason}\"")
                }
            ));
            fix = format!(
                "Add a .catch handler or await the promise inside try/catch{}",
                at(&location)
            );
        } else if let Some(c) = t
            .contains("::unwrap()` on")
            .then(|| {
                re!(r"called `(Result|Option)::unwrap\(\)` on (?:an `Err`|a `None`) value(?::\s*(.*?))?(?:', (\S+?):(\d+):(\d+))?\s*$")
                    .captures(t)
            })
            .flatten()
        {
            location = c
                .get(3)
                .map(|f| loc(f.as_str(), &c[4], Some(&c[5])))
                .or_else(|| {
                    (i.saturating_sub(2)..i).rev().find_map(|k| {
                        re!(r"panicked at (\S+?):(\d+):(\d+):\s*$")
                            .captures(self.l(k))
                            .map(|a| loc(&a[1], &a[2], Some(&a[3])))
                    })
                });
            let result = &c[1] == "Result";
            let err = c.get(2).map_or("", |m| m.as_str());
            family = "unwrap";
            title = if result {
                "Result::unwrap() panicked on an Err value".to_owned()
            } else {
                "Option::unwrap() panicked on a None value".to_owned()
            };
            root = Some(if result {
                format!("unwrap() on an Err value turned an error into a panic: {err}")
            } else {
                "unwrap() on a None value turned a missing value into a panic".to_owned()
            });
            fix = if result {
                format!(
                    "Handle the Err case with ? or match instead of unwrap(){}",
                    at(&location)
                )
            } else {
                format!(
                    "Handle the None case (if let / ok_or(..)?) instead of unwrap(){}",
                    at(&location)
                )
            };
        } else if let Some(c) = t
            .contains("used `")
            .then(|| re!(r"used `(unwrap|expect)\(\)` on (?:a|an) `(Result|Option)` value").captures(t))
            .flatten()
        {
            location = self.rust_arrow(i);
            family = "clippy-unwrap";
            title = format!("clippy: {}() on a {} value", &c[1], &c[2]);
            root = Some(format!("{}() panics instead of handling the error", &c[1]));
            fix = format!(
                "Propagate with ? or handle the {} case explicitly instead of {}(){}",
                if &c[2] == "Result" { "Err" } else { "None" },
                &c[1],
                at(&location)
            );
        } else if let Some(c) = t
            .contains("must be used")
            .then(|| re!(r"warning: unused `([^`]*Result[^`]*)` that must be used").captures(t))
            .flatten()
        {
            location = self.rust_arrow(i);
            family = "unused-result";
            title = format!("unused `{}` that must be used", &c[1]);
            root = Some("a Result is dropped, so its error is silently ignored".to_owned());
            fix = format!(
                "Handle the Result with ? / match, or discard it explicitly with `let _ =` if ignoring the error is intended{}",
                at(&location)
            );
        } else if let Some(c) = t
            .contains("Exception ignored in")
            .then(|| re!(r"Exception ignored in:? ?(.*)$").captures(t))
            .flatten()
        {
            let obj = c[1].trim().to_owned();
            let mut exc = None;
            let mut user_loc = None;
            let mut j = i + 1;
            while j < self.lines.len() && j < i + 40 {
                let l = self.l(j);
                if let Some(f) = re!(r#"^\s+File "(.+?)", line (\d+)"#).captures(l) {
                    if !is_framework("", Some(&f[1])) {
                        user_loc = Some(loc(&f[1], &f[2], None));
                    }
                } else if !l.starts_with(' ') && !l.starts_with("Traceback") && !l.trim().is_empty() {
                    if re!(r"^[A-Za-z_][\w.]*(?::.*)?$").is_match(l) {
                        exc = Some(l.trim().to_owned());
                        j += 1;
                    }
                    break;
                }
                j += 1;
            }
            self.next = j;
            location = user_loc;
            family = "exception-ignored";
            title = format!("Exception ignored in {}", truncate(&obj, 120));
            root = exc.map(|e| format!("{e} was raised where nothing can handle it"));
            fix = format!(
                "Handle or log errors inside {} explicitly (e.g. __del__ / callbacks / generators); exceptions there are silently ignored",
                truncate(&obj, 80)
            );
        } else if t.contains("Task exception was never retrieved") {
            let next = self.l(i + 1);
            let fut = re!(r"defined at (\S+?):(\d+)>.*?exception=(.*?)>?\s*$").captures(next);
            location = fut.as_ref().map(|f| loc(&f[1], &f[2], None));
            family = "asyncio-task";
            title = "asyncio: Task exception was never retrieved".to_owned();
            root = fut
                .as_ref()
                .map(|f| format!("the task raised {} and nobody awaited it", &f[3]));
            fix = format!(
                "Await the task (or use asyncio.TaskGroup / gather) or add a done-callback that calls task.exception(){}",
                at(&location)
            );
        } else if let Some(c) = t
            .contains("is not checked")
            .then(|| {
                re!(r"^\s*(\S+?\.go):(\d+):(\d+): Error return value(?: of `([^`]+)`)? is not checked")
                    .captures(t)
            })
            .flatten()
        {
            location = Some(loc(&c[1], &c[2], Some(&c[3])));
            let f = c.get(4).map_or("the call", |m| m.as_str()).to_owned();
            family = "errcheck";
            title = format!("errcheck: error return value of {f} is not checked");
            root = Some(format!("the error returned by {f} is discarded"));
            fix = format!(
                "Check the error returned by {f}: if err := {f}(...); err != nil {{ return err }}{}",
                at(&location)
            );
        } else if let Some(c) = t
            .contains("G104")
            .then(|| re!(r"\[(\S+?):(\d+)(?:-\d+)?\] - G104 \(CWE-703\): Errors unhandled").captures(t))
            .flatten()
        {
            location = Some(loc(&c[1], &c[2], None));
            family = "errcheck";
            title = "gosec G104: errors unhandled".to_owned();
            root = Some("an error return value is discarded".to_owned());
            fix = format!("Check the returned error (if err != nil {{ ... }}){}", at(&location));
        } else if let Some((loc_, code, msg)) = t.contains(".py:").then(|| python_lint(t)).flatten() {
            location = loc_;
            family = "py-except";
            let (r, f) = match code.as_str() {
                "E722" | "W0702" | "bare-except" => (
                    "a bare `except:` catches everything (even KeyboardInterrupt) and hides bugs",
                    "Catch the specific exception types you can handle, and log or re-raise the rest",
                ),
                "S110" | "B110" | "try-except-pass" => (
                    "an exception is caught and silently discarded (try/except/pass)",
                    "Don't silently pass in except: log the exception with context or handle it",
                ),
                _ => (
                    "a too-broad exception handler masks unexpected errors",
                    "Catch the specific exceptions you can handle instead of Exception",
                ),
            };
            title = format!("{code}: {}", truncate(&msg, 160));
            root = Some(r.to_owned());
            fix = format!("{f}{}", at(&location));
        } else if let Some(c) = t
            .contains(">> Issue:")
            .then(|| re!(r">> Issue: \[(B110|B112)(?::\w+)?\] (.*)$").captures(t))
            .flatten()
        {
            location = (i + 1..(i + 4).min(self.lines.len())).find_map(|k| {
                re!(r"Location: (\S+?):(\d+)(?::(\d+))?")
                    .captures(self.l(k))
                    .map(|l| loc(&l[1], &l[2], l.get(3).map(|m| m.as_str())))
            });
            family = "py-except";
            title = format!("bandit {}: {}", &c[1], c[2].trim());
            root = Some("an exception is caught and silently discarded".to_owned());
            fix = format!(
                "Don't silently pass/continue in except: log the exception with context or handle it{}",
                at(&location)
            );
        } else if let Some(c) = t
            .contains("romise")
            .then(|| {
                re!(r"^\s+(\d+):(\d+)\s+(?:error|warning)\s+(.+?)\s{2,}(@typescript-eslint/no-floating-promises|@typescript-eslint/no-misused-promises|promise/catch-or-return|promise/always-return)\s*$")
                    .captures(t)
            })
            .flatten()
        {
            let file = self.eslint_file_for(i);
            location = file.map(|f| loc(&f, &c[1], Some(&c[2])));
            family = "eslint-promise";
            title = format!("{}: {}", &c[4], &c[3]);
            root = Some("a promise is neither awaited nor given a rejection handler".to_owned());
            fix = format!(
                "Add a .catch handler or await the promise inside try/catch{}",
                at(&location)
            );
        } else if JAVA_CATCH_GATE.iter().any(|g| t.contains(g))
            && (re!(r"EmptyCatchBlock|(?i)empty catch block|catch block is empty|AvoidPrintStackTrace|DE_MIGHT_IGNORE|might ignore (?:java\.lang\.)?\w*Exception|S1148|S2486|S108\b")
                .is_match(t)
                || (t.contains("printStackTrace") && re!(r"\.\w+:\[?\d+").is_match(t)))
        {
            location = re!(r"(\S+\.(?:java|kt|scala|groovy|cs|js|ts|py|go|php|rb)):\[?(\d+)(?:[,:](\d+))?")
                .captures(t)
                .map(|c| loc(&c[1], &c[2], c.get(3).map(|m| m.as_str())));
            family = "java-catch";
            let print = t.contains("rintStackTrace") || t.contains("S1148");
            title = truncate(t.trim(), 200);
            root = Some(if print {
                "the exception is only printed with printStackTrace(), not handled or logged".to_owned()
            } else {
                "the exception is caught and ignored (empty catch block)".to_owned()
            });
            fix = format!(
                "Handle the exception in the catch block: log it with context through the logger and rethrow or recover; never leave it empty or printStackTrace()-only{}",
                at(&location)
            );
        } else if (t.contains("gnor") || t.contains("wallow"))
            && re!(r"(?i)\b(?:errors?|exceptions?|err)\s+(?:was\s+|were\s+|is\s+)?(?:ignored|swallowed)\b|\bignor(?:ing|ed)\s+(?:the\s+|an?\s+)?(?:error|exception)s?\b|\bswallow(?:ed|ing|s)?\s+(?:the\s+|an?\s+)?(?:error|exception)s?\b")
                .is_match(t)
        {
            location = re!(r"(\S+\.(?:java|kt|scala|cs|js|ts|py|go|rs|php|rb)):(\d+)(?::(\d+))?")
                .captures(t)
                .map(|c| loc(&c[1], &c[2], c.get(3).map(|m| m.as_str())));
            family = "ignored";
            title = truncate(t.trim(), 200);
            root = Some("an error is caught and deliberately ignored".to_owned());
            fix = format!(
                "Log the ignored error with context (or handle it); if ignoring is intended, document why and count it in a metric{}",
                at(&location)
            );
        } else {
            return false;
        }
        let mut ins = new_insight(
            InsightKind::MissingErrorHandling,
            Severity::Medium,
            i,
            &title,
            excerpt(&[t]),
        );
        ins.location = location.clone();
        ins.root_cause = root;
        ins.fix = fix;
        ins.impact = "errors on this path are lost or crash the process instead of being handled: failures become silent or fatal".to_owned();
        ins.details.insert("pattern".into(), family.to_owned());
        let key = format!(
            "meh:{family}:{}:{}",
            location.as_deref().unwrap_or(""),
            if location.is_some() {
                String::new()
            } else {
                template(&ins.title)
            }
        );
        self.push_agg(key, ins);
        true
    }

    // -----------------------------------------------------------------------------------------
    // Deprecated dependencies
    // -----------------------------------------------------------------------------------------

    fn deprecated(&mut self, i: usize, t: &str) -> bool {
        let mut location = None;
        let mut version: Option<String> = None;
        let mut severity = Severity::Low;
        let mut ecosystem = "";
        let (package, title, note): (Option<String>, String, String);
        if !DEPRECATION_GATE.iter().any(|g| t.contains(g)) {
            return false;
        }
        if let Some(c) =
            re!(r"npm (?:WARN|warn) deprecated ((?:@[\w.-]+/)?[\w.-]+)@(\S+?): (.*)$").captures(t)
        {
            package = Some(c[1].to_owned());
            version = Some(c[2].to_owned());
            note = c[3].trim().to_owned();
            ecosystem = "npm";
            title = format!("Deprecated dependency {}@{}", &c[1], &c[2]);
        } else if let Some(c) = re!(r"DEPRECATION: (.+)$").captures(t) {
            let m = c[1].trim();
            let pc = re!(r"^([\w.-]+) (?:is being installed using the legacy|(\d[\w.!+-]*) has a non-standard)")
                .captures(m)
                .or_else(|| re!(r"Building '([\w.-]+)' using the legacy").captures(m))
                .or_else(|| re!(r"^Loading egg at \S*?([\w.-]+?)-\d").captures(m));
            package = pc.as_ref().map(|p| p[1].to_owned());
            version = pc.as_ref().and_then(|p| p.get(2)).map(|v| v.as_str().to_owned());
            note = m.to_owned();
            ecosystem = "pip";
            title = match &package {
                Some(p) => format!("pip deprecation for {p}: {}", truncate(m, 140)),
                None => format!("pip deprecation: {}", truncate(m, 160)),
            };
        } else if let Some(c) = re!(r"go: module (\S+) is deprecated: (.*)$").captures(t) {
            package = Some(c[1].to_owned());
            note = c[2].trim().to_owned();
            ecosystem = "go";
            title = format!("Deprecated Go module {}", &c[1]);
        } else if let Some(c) = re!(
            r"Deprecated Gradle features were used in this build, making it incompatible with Gradle ([\w.]+?)\.?\s*$"
        )
        .captures(t)
        {
            package = Some("gradle".to_owned());
            note = format!(
                "the build uses Gradle features removed in Gradle {}; run with --warning-mode all to list them",
                &c[1]
            );
            ecosystem = "gradle";
            title = format!("Deprecated Gradle features (incompatible with Gradle {})", &c[1]);
        } else if let Some(c) = re!(
            r"Package (\S+) is abandoned, you should avoid using it\. (?:Use (\S+) instead|No replacement was suggested)"
        )
        .captures(t)
        {
            package = Some(c[1].to_owned());
            note = match c.get(2) {
                Some(r) => format!("abandoned; use {} instead", r.as_str()),
                None => "abandoned; no replacement was suggested".to_owned(),
            };
            severity = Severity::Medium;
            ecosystem = "composer";
            title = format!("Abandoned Composer package {}", &c[1]);
        } else if let Some(c) = re!(r"The artifact (\S+) has been relocated to (\S+)").captures(t) {
            package = Some(c[1].trim_end_matches('.').to_owned());
            note = format!("use {} instead", c[2].trim_end_matches('.'));
            ecosystem = "maven";
            title = format!("Relocated Maven artifact {}", c[1].trim_end_matches('.'));
        } else if let Some(c) = re!(
            r"^(?:\[WARNING\] )?(\S+?\.(?:java|kt)):\[?(\d+)(?:[,:](\d+)\]?)?:? (?:warning: )?\[(?:deprecation|removal)\] (.+)$"
        )
        .captures(t)
        {
            location = Some(loc(&c[1], &c[2], c.get(3).map(|m| m.as_str())));
            let msg = c[4].trim().to_owned();
            package = re!(r"(\S+) in (\S+) has been deprecated")
                .captures(&msg)
                .map(|d| d[2].to_owned())
                .or_else(|| re!(r"^(\S+) has been deprecated").captures(&msg).map(|d| d[1].to_owned()));
            note = msg.clone();
            ecosystem = "java";
            title = format!("javac: {msg}");
        } else if t.contains("use or override a deprecated API") {
            package = None;
            note = "recompile with -Xlint:deprecation to see which APIs".to_owned();
            severity = Severity::Info;
            ecosystem = "java";
            title = "javac: some input files use or override a deprecated API".to_owned();
        } else if let Some(c) =
            re!(r"^warning: use of deprecated (\w+(?: \w+)?) `([^`]+)`(?:: (.*))?$").captures(t)
        {
            location = self.rust_arrow(i);
            let item = c[2].to_owned();
            let root_seg = item
                .trim_start_matches('<')
                .split("::")
                .next()
                .unwrap_or(&item)
                .to_owned();
            package = Some(root_seg);
            note = c.get(3).map_or("", |m| m.as_str()).trim().to_owned();
            ecosystem = "rust";
            title = format!("use of deprecated {} `{item}`", &c[1]);
        } else if let Some(c) = re!(
            r"the following packages contain code that will be rejected by a future version of Rust: (.+)$"
        )
        .captures(t)
        {
            package = Some(c[1].trim().to_owned());
            note = "the crate will stop compiling on a future Rust release (cargo report future-incompatibilities)".to_owned();
            severity = Severity::Medium;
            ecosystem = "rust";
            title = format!("Future-incompatible dependencies: {}", c[1].trim());
        } else if let Some(c) = re!(r"\[(DEP\d+)\] DeprecationWarning: (.+)$").captures(t) {
            if &c[1] == "DEP0018" {
                // "Unhandled promise rejections are deprecated": a missing-handling sign
                return self.missing_handling(i, t);
            }
            let msg = c[2].trim().to_owned();
            package = re!(r"[`'](\w[\w/.-]*)[`'] module is deprecated|^(\w[\w.]*)\(\) is deprecated")
                .captures(&msg)
                .map(|p| p.get(1).or(p.get(2)).map_or("", |m| m.as_str()).to_owned());
            note = msg.clone();
            ecosystem = "node";
            title = format!("Node.js {}: {}", &c[1], truncate(&msg, 160));
        } else if let Some(c) = re!(
            r#"(?i)\b(?:package|module|library|dependency|crate|gem|artifact|plugin)\s+['"`]?([@\w./:-]+?)['"`]?(?:@([\w.-]+))?\s+(?:is|has been)\s+deprecated\b[.:,]?\s*(.*)$"#
        )
        .captures(t)
        .or_else(|| {
            re!(r#"['"`]?([@\w./-]+?)['"`]?(?:@([\w.-]+))?\s+(?:package|module|library|crate|gem|plugin)\s+(?:is|has been)\s+deprecated\b[.:,]?\s*(.*)$"#)
                .captures(t)
        })
        .or_else(|| {
            re!(r"((?:@[\w.-]+/)?[\w.-]+)@(\d[\w.-]*)\s+(?:is|has been)\s+deprecated\b[.:,]?\s*(.*)$")
                .captures(t)
        }) {
            package = Some(c[1].to_owned());
            version = c.get(2).map(|m| m.as_str().to_owned());
            note = c.get(3).map_or("", |m| m.as_str()).trim().to_owned();
            title = format!(
                "Deprecated dependency {}{}",
                &c[1],
                version.as_ref().map(|v| format!("@{v}")).unwrap_or_default()
            );
        } else {
            return false;
        }
        if re!(r"(?i)security|vulnerab|no longer (?:supported|maintained)|unsupported|not supported|insecure|will be removed|removed in|end[- ]of[- ]life|critical")
            .is_match(&note)
            && severity < Severity::Medium
        {
            severity = Severity::Medium;
        }
        let replacement = re!(r#"(?i)(?:please use|use|switch to|migrate to|replaced by|upgrade to|in favou?r of|instead use)\s+(?:the\s+)?[`'"]?([@\w./:-]*\w)"#)
            .captures(&note)
            .map(|r| r[1].to_owned())
            .filter(|r| !matches!(r.to_ascii_lowercase().as_str(), "a" | "the" | "it" | "this" | "of"));
        let pv = match (&package, &version) {
            (Some(p), Some(v)) => format!("{p}@{v}"),
            (Some(p), None) => p.clone(),
            _ => "the deprecated component".to_owned(),
        };
        let why = match (ecosystem, &package) {
            ("npm", Some(p)) => format!("; find what pulls it in with `npm ls {p}`"),
            ("rust", Some(p)) if location.is_none() => format!("; see `cargo tree -i {p}`"),
            ("pip", Some(p)) => format!("; see `pipdeptree -r -p {p}`"),
            ("go", Some(p)) => format!("; see `go mod why -m {p}`"),
            ("maven", _) => "; see `mvn dependency:tree`".to_owned(),
            _ => String::new(),
        };
        let fix = match (&replacement, ecosystem) {
            (_, "gradle") => "Run the build with --warning-mode all and migrate each reported deprecated feature before upgrading Gradle".to_owned(),
            (Some(r), _) => format!("Replace {pv} with {r}{}{why}", at(&location)),
            (None, _) => format!("Upgrade or replace {pv}{}{why}", at(&location)),
        };
        let mut ins = new_insight(
            InsightKind::DeprecatedDependency,
            severity,
            i,
            &title,
            excerpt(&[t]),
        );
        ins.location = location;
        ins.root_cause = (!note.is_empty()).then(|| truncate(&note, 200));
        ins.fix = fix;
        ins.impact = match &package {
            Some(p) => format!("{p} is deprecated: it stops receiving fixes (including security fixes) and blocks upgrades"),
            None => "deprecated APIs stop receiving fixes and block upgrades".to_owned(),
        };
        if !ecosystem.is_empty() {
            ins.details.insert("ecosystem".into(), ecosystem.to_owned());
        }
        if let Some(v) = &version {
            ins.details.insert("version".into(), v.clone());
        }
        if let Some(r) = replacement {
            ins.details.insert("replacement".into(), r);
        }
        let key = format!(
            "dep:{}:{}",
            package.as_deref().unwrap_or(&ins.title),
            version.as_deref().unwrap_or("")
        );
        if let Some(p) = package {
            ins.details.insert("package".into(), p);
        }
        self.push_agg(key, ins);
        true
    }

    // -----------------------------------------------------------------------------------------
    // Coverage
    // -----------------------------------------------------------------------------------------

    fn coverage(&mut self, i: usize, t: &str) -> bool {
        let num = |s: &str| s.trim().parse::<f64>().ok();
        let mut target = f64::from(self.target);
        let mut from_log_target = false;
        let mut metric = "lines";
        let mut scope: Option<String> = None;
        let mut uncovered: Option<String> = None;
        let mut files_from: Option<FileTable> = None;
        let tool;
        let current: f64;
        let tt = t.trim();
        if let Some(c) = tt.contains("threshold").then(|| re!(r#"coverage threshold for (\w+) \((\d+(?:\.\d+)?)%\) not met(?: for ([^:]+))?: (\d+(?:\.\d+)?)%"#).captures(tt)).flatten() {
            tool = "jest";
            metric = leak(&c[1]);
            target = num(&c[2]).unwrap_or(target);
            from_log_target = true;
            current = num(&c[4]).unwrap_or(0.0);
            scope = re!(r#"^Jest: "([^"]+)""#)
                .captures(tt)
                .map(|g| g[1].to_owned())
                .filter(|g| g != "global");
        } else if let Some(c) = tt.contains("covered ratio").then(|| re!(r"(\w+) covered ratio is (\d*\.?\d+), but expected minimum is (\d*\.?\d+)").captures(tt)).flatten() {
            tool = "jacoco:check";
            metric = leak(&c[1].to_ascii_lowercase());
            current = num(&c[2]).unwrap_or(0.0) * 100.0;
            target = num(&c[3]).unwrap_or(0.0) * 100.0;
            from_log_target = true;
            scope = re!(r"Rule violated for (\w+ [\w.:-]+)")
                .captures(tt)
                .map(|g| g[1].trim_end_matches(':').to_owned());
        } else if let Some(c) = tt.contains("Required test coverage").then(|| re!(r"Required test coverage of (\d+(?:\.\d+)?)% not reached\. Total coverage: (\d+(?:\.\d+)?)%").captures(tt)).flatten() {
            tool = "pytest-cov";
            target = num(&c[1]).unwrap_or(target);
            from_log_target = true;
            current = num(&c[2]).unwrap_or(0.0);
        } else if tt.starts_with("TOTAL") {
            let pcts: Vec<f64> = re!(r"(\d+(?:\.\d+)?)%")
                .captures_iter(tt)
                .filter_map(|c| num(&c[1]))
                .collect();
            if pcts.len() >= 3 {
                tool = "llvm-cov";
                current = pcts[2];
                if let Some(c) = re!(r"^TOTAL\s+\d+\s+\d+\s+[\d.]+%\s+\d+\s+\d+\s+[\d.]+%\s+(\d+)\s+(\d+)\s").captures(tt) {
                    uncovered = Some(format!("{} of {} lines uncovered", &c[2], &c[1]));
                }
            } else if let Some(c) = re!(r"^TOTAL\s+(\d+)\s+(\d+)(?:\s+\d+\s+\d+)?\s+(\d+(?:\.\d+)?)%").captures(tt) {
                tool = "coverage.py";
                metric = "statements";
                current = num(&c[3]).unwrap_or(0.0);
                uncovered = Some(format!("{} of {} statements uncovered", &c[2], &c[1]));
                files_from = Some(FileTable::CoveragePy);
            } else {
                return false;
            }
        } else if let Some(c) = tt.starts_with("All files").then(|| re!(r"^All files\s*\|\s*(\d+(?:\.\d+)?)\s*\|").captures(tt)).flatten() {
            tool = "istanbul";
            metric = "statements";
            current = num(&c[1]).unwrap_or(0.0);
            files_from = Some(FileTable::Istanbul);
        } else if let Some(c) = tt.contains("% coverage,").then(|| re!(r"(\d+(?:\.\d+)?)% coverage, (\d+)/(\d+) lines covered").captures(tt)).flatten() {
            tool = "tarpaulin";
            current = num(&c[1]).unwrap_or(0.0);
            let (cov, all): (u64, u64) = (c[2].parse().unwrap_or(0), c[3].parse().unwrap_or(0));
            uncovered = Some(format!("{} of {all} lines uncovered", all.saturating_sub(cov)));
        } else if let Some(c) = tt.contains("of statements").then(|| re!(r"coverage: (\d+(?:\.\d+)?)% of statements").captures(tt)).flatten() {
            tool = "go";
            metric = "statements";
            current = num(&c[1]).unwrap_or(0.0);
            scope = re!(r"^(?:ok|FAIL)\s+(\S+)").captures(tt).map(|g| g[1].to_owned());
        } else if let Some(c) = tt.starts_with("total:").then(|| re!(r"^total:\s+\(statements\)\s+(\d+(?:\.\d+)?)%").captures(tt)).flatten() {
            tool = "go";
            metric = "statements";
            current = num(&c[1]).unwrap_or(0.0);
        } else if let Some(c) = tt.starts_with("Total").then(|| re!(r"^Total\b.*?(\d+(?:\.\d+)?)\s?%").captures(tt)).flatten() {
            tool = "jacoco";
            metric = "instructions";
            current = num(&c[1]).unwrap_or(0.0);
        } else if let Some(c) = tt.contains(" covered:").then(|| re!(r"(?i)\b(instructions|lines|branches|statements|methods|classes) covered:\s*(\d+(?:\.\d+)?)\s?%").captures(tt)).flatten() {
            tool = "jacoco";
            metric = leak(&c[1].to_ascii_lowercase());
            current = num(&c[2]).unwrap_or(0.0);
        } else if let Some(c) = tt.contains("overage").then(|| re!(r"(?i)coverage (?:increased|decreased) \([+-]?[\d.]+%\) to (\d+(?:\.\d+)?)%").captures(tt)).flatten() {
            tool = "coveralls";
            current = num(&c[1]).unwrap_or(0.0);
        } else if let Some(c) = (tt.contains("overage") || tt.contains("OVERAGE")).then(|| re!(r"(?i)\b((?:code |line |statement |test |branch )?coverage)\b([^\d%\n]{0,20}?)(\d{1,3}(?:\.\d+)?)\s?%").captures(tt)).flatten() {
            let gap = c[2].to_ascii_lowercase();
            if re!(r"target|threshold|minimum|required|goal|min\b|expected|fail[-_ ]under|delta|change|diff")
                .is_match(&gap)
                || c[1].eq_ignore_ascii_case("coverage") && tt.contains("--cov-fail-under")
            {
                return false;
            }
            tool = "generic";
            if c[1].to_ascii_lowercase().starts_with("branch") {
                metric = "branches";
            }
            current = num(&c[3]).unwrap_or(0.0);
        } else {
            return false;
        }
        if !(0.0..=100.0).contains(&current) || current >= target {
            return false;
        }
        // the same report printed twice (a table and a gate line) counts once
        let dup = self
            .coverage
            .iter()
            .rev()
            .take_while(|s| i.saturating_sub(s.idx) <= 60)
            .any(|s| (s.value - current).abs() < 1.0 && s.scope == scope);
        self.coverage.push(CoverageSeen {
            idx: i,
            value: current,
            scope: scope.clone(),
        });
        if dup {
            return true;
        }
        // per-file rows only for findings that can still be kept
        let keep = self
            .stored
            .get(&InsightKind::LowCoverage)
            .is_none_or(|n| *n < KEEP_PER_KIND);
        let mut files = match files_from.filter(|_| keep) {
            Some(FileTable::CoveragePy) => self.coverage_py_files(i),
            Some(FileTable::Istanbul) => self.istanbul_files(i),
            None => Vec::new(),
        };
        let gap = target - current;
        let severity = if gap <= 10.0 {
            Severity::Medium
        } else {
            Severity::High
        };
        let cur_s = format!("{}%", fmt_num(current));
        let tgt_s = format!("{}%", fmt_num(target));
        let mut ins = new_insight(
            InsightKind::LowCoverage,
            severity,
            i,
            &format!(
                "Test coverage below target: {cur_s} < {tgt_s}{}",
                scope
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ),
            excerpt(&[t]),
        );
        files.sort_by(|a, b| a.1.total_cmp(&b.1));
        let weakest: Vec<String> = files
            .iter()
            .filter(|f| f.1 < target)
            .take(3)
            .map(|f| format!("{} ({}%)", f.0, fmt_num(f.1)))
            .collect();
        ins.impact = format!(
            "{cur_s} of {metric} covered, {} points below the {tgt_s} target{}{}",
            fmt_num(gap),
            uncovered.map(|u| format!(": {u}")).unwrap_or_default(),
            if weakest.is_empty() {
                String::new()
            } else {
                format!("; missing coverage in {}", weakest.join(", "))
            }
        );
        ins.root_cause = Some(if weakest.is_empty() {
            format!("{metric} coverage is {cur_s}, under the {tgt_s} target")
        } else {
            format!("least covered: {}", weakest.join(", "))
        });
        ins.fix = match files.first().filter(|f| f.1 < target) {
            Some((f, p)) => format!(
                "Add tests for {f} first (only {}% covered), then the other low files, until coverage reaches {tgt_s}",
                fmt_num(*p)
            ),
            None => format!(
                "Add tests for the uncovered {} (error paths, timeouts and edge cases first) until coverage reaches {tgt_s}",
                if let Some(s) = &scope { format!("code in {s}") } else { metric.to_owned() }
            ),
        };
        ins.details.insert("current".into(), cur_s);
        ins.details.insert("target".into(), tgt_s);
        ins.details.insert("tool".into(), tool.to_owned());
        ins.details.insert("metric".into(), metric.to_owned());
        ins.details.insert(
            "targetSource".into(),
            if from_log_target { "log" } else { "config" }.to_owned(),
        );
        if let Some(s) = scope {
            ins.details.insert("scope".into(), s);
        }
        self.emit(ins);
        true
    }

    /// coverage.py rows above a `TOTAL` line: `path.py  stmts  miss  [branch brpart]  NN%`.
    fn coverage_py_files(&self, total: usize) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for k in (total.saturating_sub(2000)..total).rev() {
            let l = self.l(k).trim();
            if l.starts_with("---") || l.is_empty() {
                continue;
            }
            match re!(r"^(\S+)\s+\d+\s+\d+(?:\s+\d+\s+\d+)?\s+(\d+(?:\.\d+)?)%").captures(l) {
                Some(c) => out.push((c[1].to_owned(), c[2].parse().unwrap_or(100.0))),
                None => break,
            }
        }
        out
    }

    /// istanbul text-table rows below `All files`: `  path.ts |  45.5 | …` (statements column).
    fn istanbul_files(&self, all: usize) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for k in all + 1..(all + 2000).min(self.lines.len()) {
            let l = self.l(k);
            if l.trim_start().starts_with("---") {
                break;
            }
            if let Some(c) =
                re!(r"^\s*([\w./@\[\]-]+\.\w+)\s*\|\s*(\d+(?:\.\d+)?)\s*\|").captures(l)
            {
                out.push((c[1].to_owned(), c[2].parse().unwrap_or(100.0)));
            }
        }
        out
    }

    // -----------------------------------------------------------------------------------------
    // Warnings
    // -----------------------------------------------------------------------------------------

    fn warning(&mut self, i: usize, t: &str) -> bool {
        let mut location = None;
        let mut rule: Option<String> = None;
        let tool: &str;
        let msg: String;
        if let Some(c) = t
            .starts_with("warning: ")
            .then(|| re!(r"^warning: (.+)$").captures(t))
            .flatten()
        {
            let m = c[1].trim();
            if re!(r"^\d+ warnings?\b|generated \d+ warnings?|^build failed|^\d+ warnings? emitted|^unused manifest key").is_match(m)
                || m.ends_with("warnings emitted")
            {
                return m.starts_with("unused manifest key") && self.push_warning(i, t, "cargo", m.to_owned(), None, None);
            }
            location = self.rust_arrow(i);
            tool = if location.is_some() { "rustc" } else { "tool" };
            msg = m.to_owned();
        } else if let Some(c) = t
            .contains(": warning: ")
            .then(|| re!(r"^\s*([^\s:\[][^:]*?):(\d+)(?::(\d+))?: warning: (.+?)\s*$").captures(t))
            .flatten()
        {
            location = Some(loc(&c[1], &c[2], c.get(3).map(|m| m.as_str())));
            let m = c[4].to_owned();
            if let Some(f) = re!(r" \[(-W[\w=+-]+)\]$").captures(&m) {
                rule = Some(f[1].to_owned());
            } else if let Some(f) = re!(r"^\[(\w+)\] ").captures(&m) {
                rule = Some(f[1].to_owned());
            }
            tool = if c[1].ends_with(".java") {
                "javac"
            } else {
                "gcc/clang"
            };
            msg = m;
        } else if !t.starts_with("[WARNING]") && !t.contains(" warning ") && !t.contains("Warning")
        {
            return false;
        } else if let Some(c) = re!(r"^\[WARNING\] (\S+?):\[(\d+),(\d+)\] (.+)$").captures(t) {
            location = Some(loc(&c[1], &c[2], Some(&c[3])));
            let m = c[4].trim().to_owned();
            rule = re!(r"^\[(\w+)\] ").captures(&m).map(|f| f[1].to_owned());
            tool = "javac";
            msg = m;
        } else if let Some(c) = re!(r"^\[WARNING\]\s+(\S.*)$").captures(t) {
            let m = c[1].trim();
            // Not warnings: the section header Maven prints above javac's warnings and
            // javac's `Recompile with -Xlint:x for details` note.
            if m.starts_with("Tests run:")
                || m.starts_with("COMPILATION WARNING")
                || m.contains("Recompile with -Xlint")
                || m.chars().all(|ch| !ch.is_alphanumeric())
            {
                return false;
            }
            tool = "maven";
            msg = m.to_owned();
        } else if let Some(c) = re!(r"^\s+(\d+):(\d+)\s+warning\s+(.+?)\s{2,}(\S+)\s*$").captures(t)
        {
            let file = self.eslint_file_for(i);
            location = file.map(|f| loc(&f, &c[1], Some(&c[2])));
            rule = Some(c[4].to_owned());
            tool = "eslint";
            msg = c[3].to_owned();
        } else if let Some(c) = re!(r"^(\S+?):(\d+):(\d+): (.+?) \[Warning/(\S+)\]\s*$")
            .captures(t)
            .or_else(|| {
                re!(r"^(\S+?): line (\d+), col (\d+), Warning - (.+?) \((\S+)\)\s*$").captures(t)
            })
        {
            location = Some(loc(&c[1], &c[2], Some(&c[3])));
            rule = Some(c[5].to_owned());
            tool = "eslint";
            msg = c[4].to_owned();
        } else if let Some(c) = re!(r"^\s*(\S+?\.py):(\d+): (\w*Warning): (.+)$").captures(t) {
            location = Some(loc(&c[1], &c[2], None));
            rule = Some(c[3].to_owned());
            tool = "python";
            msg = format!("{}: {}", &c[3], c[4].trim());
        } else {
            return false;
        }
        self.push_warning(i, t, tool, msg, rule, location)
    }

    fn push_warning(
        &mut self,
        i: usize,
        t: &str,
        tool: &str,
        msg: String,
        rule: Option<String>,
        location: Option<String>,
    ) -> bool {
        let key = format!(
            "warn:{tool}:{}",
            match &rule {
                Some(r) if tool != "python" => r.clone(),
                _ => template(&msg),
            }
        );
        if self.agg.contains_key(&key) {
            // one more occurrence: no need to build the insight
            let ins = new_insight(InsightKind::Warning, Severity::Info, i, "", String::new());
            let ins = Insight { location, ..ins };
            self.push_agg(key, ins);
            return true;
        }
        let severity = if location.is_some() {
            Severity::Low
        } else {
            Severity::Info
        };
        let title = match &rule {
            Some(r) if tool == "eslint" => format!("ESLint warning ({r}): {msg}"),
            _ if tool == "python" => format!("Python {msg}"),
            _ => format!("{tool} warning: {msg}"),
        };
        let mut ins = new_insight(InsightKind::Warning, severity, i, &title, excerpt(&[t]));
        ins.fix = warning_fix(tool, rule.as_deref(), &msg, location.as_deref());
        ins.root_cause = Some(truncate(&msg, 200));
        ins.location = location.clone();
        ins.details.insert("tool".into(), tool.to_owned());
        ins.details.insert("occurrences".into(), "1".into());
        if let Some(r) = rule {
            ins.details.insert("rule".into(), r);
        }
        if let Some(l) = location {
            ins.details.insert("locations".into(), l);
        }
        self.push_agg(key, ins);
        true
    }

    fn finish(mut self) -> Vec<Insight> {
        for ins in &mut self.out {
            let n: u64 = ins
                .details
                .get("occurrences")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            match ins.kind {
                InsightKind::Warning => {
                    ins.impact = format!(
                        "{n} occurrence{} of this warning: warnings hide real problems, slow reviews and often become bugs",
                        if n == 1 { "" } else { "s" }
                    );
                }
                _ if n > 1 => {
                    ins.impact = format!("{} ({n} occurrences in this log)", ins.impact);
                }
                _ => {}
            }
        }
        super::cap_per_kind(self.out, &self.extra)
    }
}

/// Cheap pre-checks for the deprecation rules (one must be on the line).
const DEPRECATION_GATE: &[&str] = &[
    "deprecated",
    "DEPRECATION:",
    "Deprecated Gradle",
    "relocated",
    "abandoned",
    "[deprecation]",
    "[removal]",
    "future version",
    "[DEP",
];

/// Cheap pre-checks for the Java catch-block rule.
const JAVA_CATCH_GATE: &[&str] = &[
    "atch",
    "rintStackTrace",
    "MIGHT_IGNORE",
    "might ignore",
    "S1148",
    "S2486",
    "S108",
];

/// ` at file:line` or nothing.
fn at(location: &Option<String>) -> String {
    location
        .as_ref()
        .map(|l| format!(" at {l}"))
        .unwrap_or_default()
}

/// A number as the log would print it: `78.5`, `80`, `1.5`.
fn fmt_num(v: f64) -> String {
    let s = format!("{:.2}", (v * 100.0).round() / 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The few metric names the coverage rules produce, as `&'static str`.
fn leak(s: &str) -> &'static str {
    match s.to_ascii_lowercase().as_str() {
        "statements" => "statements",
        "branches" => "branches",
        "functions" => "functions",
        "methods" => "methods",
        "classes" => "classes",
        "instructions" | "instruction" => "instructions",
        "complexity" => "complexity",
        _ => "lines",
    }
}

/// flake8 / ruff / pylint exception-handling findings: `(location, code, message)`.
fn python_lint(t: &str) -> Option<(Option<String>, String, String)> {
    let c = re!(r"^\s*(\S+?\.py):(\d+):(?:(\d+):)? (.+)$").captures(t)?;
    let rest = c[4].trim();
    let code = re!(r"^(E722|BLE001|S110|B110|W0702|W0703|W0718)\b:?")
        .captures(rest)
        .map(|m| m[1].to_owned())
        .or_else(|| {
            re!(r"\((bare-except|broad-except|broad-exception-caught|try-except-pass)\)\s*$")
                .captures(rest)
                .map(|m| m[1].to_owned())
        })?;
    let loc_ = Some(loc(&c[1], &c[2], c.get(3).map(|m| m.as_str())));
    Some((loc_, code, rest.to_owned()))
}

fn warning_fix(tool: &str, rule: Option<&str>, msg: &str, location: Option<&str>) -> String {
    let at = location.map(|l| format!(" at {l}")).unwrap_or_default();
    let quoted = re!(r"[`'‘]([^`'’]+)[`'’]")
        .captures(msg)
        .map(|c| c[1].to_owned());
    let name = quoted.as_deref().unwrap_or("it");
    let r = rule.unwrap_or("");
    if msg.starts_with("unused variable")
        || r == "-Wunused-variable"
        || r == "no-unused-vars"
        || r == "@typescript-eslint/no-unused-vars"
        || msg.contains("is assigned a value but never used")
        || msg.contains("is defined but never used")
    {
        if tool == "rustc" {
            return format!("Remove the unused variable `{name}` or prefix it with an underscore (`_{name}`){at}");
        }
        return format!("Remove the unused variable `{name}`{at}");
    }
    if msg.starts_with("unused import")
        || msg.contains("imported and not used")
        || r == "-Wunused-import"
    {
        return format!("Remove the unused import{at}");
    }
    if msg.starts_with("variable does not need to be mutable") {
        return format!("Remove the `mut`{at}");
    }
    if msg.contains("is never used")
        || msg.contains("never read")
        || msg.contains("dead code")
        || r == "-Wunused-function"
    {
        return format!("Remove the dead code `{name}` or use it{at}");
    }
    if r == "-Wsign-compare" {
        return format!(
            "Make both sides of the comparison the same signedness (cast or change the type){at}"
        );
    }
    if r.starts_with("-Wformat") {
        return format!("Fix the format string to match the argument types{at}");
    }
    if r.contains("uninitialized") {
        return format!("Initialise the variable before use{at}");
    }
    if r == "unchecked" || r == "rawtypes" {
        return format!("Add the generic type parameters (avoid raw types){at}");
    }
    if tool == "python" {
        if r.contains("Deprecation") || r == "FutureWarning" {
            return format!("Migrate to the replacement API named in the warning before the deprecated one is removed{at}");
        }
        return format!("Address the {r}{at} (or filter it explicitly with a justification)");
    }
    if tool == "eslint" {
        return format!("Fix the `{r}` finding{at}, or adjust the rule in the ESLint config if the pattern is intended");
    }
    if tool == "maven" || tool == "tool" || tool == "cargo" {
        return format!("Resolve the build warning: {}", truncate(msg, 160));
    }
    format!("Fix the warning{at} (or silence it explicitly with a justification)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use InsightKind::*;

    fn run(text: &str) -> Vec<Insight> {
        analyse(&LogText::new(text), &AnalyserConfig::default())
    }

    fn only(text: &str, kind: InsightKind) -> Vec<Insight> {
        run(text).into_iter().filter(|i| i.kind == kind).collect()
    }

    fn one(text: &str, kind: InsightKind) -> Insight {
        let v = only(text, kind);
        assert_eq!(v.len(), 1, "expected one {kind:?}, got {v:#?}");
        v.into_iter().next().unwrap()
    }

    #[test]
    fn every_trigger_has_an_anchor() {
        assert_eq!(
            Triggers::unanchored(PATTERNS, ANCHORS, &[]),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn benign_lines_trigger_nothing() {
        let log = "\
warning: 0 warnings
Name    Stmts   Miss  Cover
TOTAL     120      9    93%
coverage: 91.0% of statements
Coverage target: 80%
All files |   95.1 |    90 |   92 |   95.1 |
ignore_errors = false
errors_total=0 unhandled_count=0
Total time: 3.2s
[WARNING]
";
        let v = run(log);
        assert!(v.is_empty(), "{v:#?}");
    }

    // ---- coverage ----------------------------------------------------------------------

    #[test]
    fn coverage_py_below_target_names_the_weakest_files() {
        let log = "\
Name                      Stmts   Miss  Cover
---------------------------------------------
app/__init__.py               4      0   100%
app/payments.py              60     33    45%
app/api.py                   56      4    93%
---------------------------------------------
TOTAL                       120     37    69%
";
        let i = one(log, LowCoverage);
        assert_eq!(i.details["current"], "69%");
        assert_eq!(i.details["target"], "80%");
        assert_eq!(i.details["tool"], "coverage.py");
        assert_eq!(i.severity, Severity::High);
        assert_eq!(i.log_line, 7);
        assert!(
            i.impact.contains("37 of 120 statements uncovered"),
            "{}",
            i.impact
        );
        assert!(i.fix.contains("app/payments.py"), "{}", i.fix);
    }

    #[test]
    fn coverage_formats() {
        let cases: &[(&str, &str, &str)] = &[
            ("All files |   78.5 |    70 |   80.2 |   78.5 |", "78.5%", "istanbul"),
            ("ok  \texample.com/shop/cart\t0.012s\tcoverage: 78.5% of statements", "78.5%", "go"),
            ("Jan 01 12:00:00.000  INFO cargo_tarpaulin::report: 78.50% coverage, 157/200 lines covered", "78.5%", "tarpaulin"),
            ("TOTAL     2000   120  94.00%   300   20  93.33%   4000   860  78.50%     0     0        -", "78.5%", "llvm-cov"),
            ("Total\t1,234 of 5,678\t78%\t120 of 400\t70%", "78%", "jacoco"),
            ("[INFO] Instructions covered: 78%", "78%", "jacoco"),
            ("Code coverage: 78.5%", "78.5%", "generic"),
        ];
        for (line, cur, tool) in cases {
            let i = one(&format!("{line}\n"), LowCoverage);
            assert_eq!(i.details["current"], *cur, "{line}");
            assert_eq!(i.details["tool"], *tool, "{line}");
            assert_eq!(i.details["target"], "80%");
            assert_eq!(i.severity, Severity::Medium, "{line}");
        }
        let go = one(
            "ok  \texample.com/shop/cart\t0.012s\tcoverage: 78.5% of statements\n",
            LowCoverage,
        );
        assert_eq!(go.details["scope"], "example.com/shop/cart");
    }

    #[test]
    fn coverage_at_or_above_target_is_fine() {
        for line in [
            "TOTAL     120      24    80%",
            "coverage: 80.0% of statements",
            "All files |   91 |   90 |   92 |   91 |",
            "81.00% coverage, 162/200 lines covered",
        ] {
            assert!(only(&format!("{line}\n"), LowCoverage).is_empty(), "{line}");
        }
        let cfg = AnalyserConfig {
            coverage_target_percent: 95,
            ..AnalyserConfig::default()
        };
        let v = analyse(&LogText::new("coverage: 91.0% of statements\n"), &cfg);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].details["target"], "95%");
    }

    #[test]
    fn coverage_gates_from_the_log_and_dedup() {
        let log = "\
TOTAL                       200     43    78%
FAIL Required test coverage of 85% not reached. Total coverage: 78.50%
";
        let i = one(log, LowCoverage);
        assert_eq!(i.details["current"], "78%");
        let jest = "Jest: \"global\" coverage threshold for branches (90%) not met: 84.2%\n";
        let i = one(jest, LowCoverage);
        assert_eq!(i.details["target"], "90%");
        assert_eq!(i.details["metric"], "branches");
        assert_eq!(i.details["targetSource"], "log");
        let jacoco = "[WARNING] Rule violated for bundle shop: instructions covered ratio is 0.78, but expected minimum is 0.80\n";
        let i = one(jacoco, LowCoverage);
        assert_eq!(i.details["current"], "78%");
        assert_eq!(i.details["target"], "80%");
    }

    // ---- deprecated dependencies ---------------------------------------------------------

    #[test]
    fn npm_deprecations_dedupe_by_package() {
        let log = "\
npm WARN deprecated request@2.88.2: request has been deprecated, see https://github.com/request/request/issues/3142
npm WARN deprecated inflight@1.0.6: This module is not supported, and leaks memory. Do not use it. Check out lru-cache if you want a good and tested way to coalesce async requests by a key value, which is much more comprehensive and powerful.
npm WARN deprecated request@2.88.2: request has been deprecated, see https://github.com/request/request/issues/3142
npm warn deprecated @babel/plugin-proposal-class-properties@7.18.6: This proposal has been merged to the ECMAScript standard and thus this plugin is no longer maintained. Please use @babel/plugin-transform-class-properties instead.
";
        let v = only(log, DeprecatedDependency);
        assert_eq!(v.len(), 3, "{v:#?}");
        assert_eq!(v[0].details["package"], "request");
        assert_eq!(v[0].details["version"], "2.88.2");
        assert_eq!(v[0].details["occurrences"], "2");
        assert_eq!(v[0].severity, Severity::Low);
        assert!(v[0].fix.contains("npm ls request"), "{}", v[0].fix);
        assert_eq!(v[1].severity, Severity::Medium);
        assert_eq!(
            v[2].details["package"],
            "@babel/plugin-proposal-class-properties"
        );
        assert_eq!(
            v[2].details["replacement"],
            "@babel/plugin-transform-class-properties"
        );
        assert!(v[2].fix.starts_with("Replace @babel/plugin-proposal-class-properties@7.18.6 with @babel/plugin-transform-class-properties"));
    }

    #[test]
    fn other_deprecations() {
        let log = "\
DEPRECATION: pytorch-lightning 1.6.0 has a non-standard dependency specifier torch>=1.8.*. pip 24.1 will enforce this behaviour change.
go: module github.com/golang/protobuf is deprecated: Use the \"google.golang.org/protobuf\" module instead.
Deprecated Gradle features were used in this build, making it incompatible with Gradle 9.0.
[WARNING] /ci/src/main/java/com/x/Foo.java:[12,8] [deprecation] getHours() in Date has been deprecated
warning: use of deprecated function `chrono::NaiveDateTime::from_timestamp`: use `DateTime::from_timestamp` instead
  --> src/time.rs:14:9
warning: the following packages contain code that will be rejected by a future version of Rust: nom v1.2.4
";
        let v = only(log, DeprecatedDependency);
        assert_eq!(v.len(), 6, "{v:#?}");
        assert_eq!(v[0].details["package"], "pytorch-lightning");
        assert_eq!(v[0].details["version"], "1.6.0");
        assert_eq!(v[1].details["package"], "github.com/golang/protobuf");
        assert_eq!(v[1].details["replacement"], "google.golang.org/protobuf");
        assert_eq!(v[2].details["package"], "gradle");
        assert_eq!(
            v[3].location.as_deref(),
            Some("/ci/src/main/java/com/x/Foo.java:12:8")
        );
        assert_eq!(v[3].details["package"], "Date");
        assert_eq!(v[4].location.as_deref(), Some("src/time.rs:14:9"));
        assert_eq!(v[4].details["package"], "chrono");
        assert_eq!(v[5].severity, Severity::Medium);
        assert!(only(log, Warning).is_empty(), "{:#?}", only(log, Warning));
    }

    #[test]
    fn deprecated_config_keys_are_not_dependencies() {
        let log = "\
17/06/09 20:10:47 INFO Configuration.deprecation: mapred.tip.id is deprecated. Instead, use mapreduce.task.id
Jul  5 00:21:07 host Chrome[35628]: -deviceDeltaY is deprecated for NSScrollWheel.
";
        assert!(run(log).is_empty(), "{:#?}", run(log));
    }

    // ---- warnings ----------------------------------------------------------------------

    #[test]
    fn rustc_warnings_aggregate_by_template() {
        let log = "\
warning: unused variable: `x`
 --> src/main.rs:2:9
  |
2 |     let x = 5;
  |         ^ help: if this is intentional, prefix it with an underscore: `_x`
  |
  = note: `#[warn(unused_variables)]` on by default

warning: unused variable: `y`
 --> src/main.rs:3:9

warning: function `helper` is never used
 --> src/lib.rs:10:4

warning: `demo` (bin \"demo\") generated 3 warnings
";
        let v = only(log, Warning);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert_eq!(v[0].details["occurrences"], "2");
        assert_eq!(v[0].location.as_deref(), Some("src/main.rs:2:9"));
        assert_eq!(
            v[0].details["locations"],
            "src/main.rs:2:9, src/main.rs:3:9"
        );
        assert_eq!(v[0].severity, Severity::Low);
        assert!(v[0].fix.contains("`_x`"), "{}", v[0].fix);
        assert!(v[0].impact.starts_with("2 occurrences"), "{}", v[0].impact);
        assert_eq!(v[1].location.as_deref(), Some("src/lib.rs:10:4"));
    }

    #[test]
    fn gcc_javac_maven_eslint_python_warnings() {
        let log = "\
src/main.c:10:9: warning: unused variable 'tmp' [-Wunused-variable]
src/main.c:22:9: warning: unused variable 'buf' [-Wunused-variable]
src/List.java:14: warning: [unchecked] unchecked call to add(E) as a member of the raw type List
[WARNING] /ci/src/main/java/com/x/A.java:[7,20] [rawtypes] found raw type: java.util.List
[WARNING] Using platform encoding (UTF-8 actually) to copy filtered resources, i.e. build is platform dependent!
[WARNING] COMPILATION WARNING :
[WARNING] /ci/src/main/java/com/x/B.java: Recompile with -Xlint:unchecked for details.

/home/ci/app/src/cart.js
  12:5   warning  'total' is assigned a value but never used  no-unused-vars
  30:1   warning  Unexpected console statement                 no-console

/home/ci/app/tests/test_api.py:12: DeprecationWarning: datetime.utcnow() is deprecated
  now = datetime.utcnow()
";
        let v = only(log, Warning);
        assert_eq!(v.len(), 7, "{v:#?}");
        assert_eq!(v[0].details["occurrences"], "2");
        assert_eq!(v[0].details["rule"], "-Wunused-variable");
        assert_eq!(v[0].location.as_deref(), Some("src/main.c:10:9"));
        assert_eq!(v[1].details["rule"], "unchecked");
        assert_eq!(v[1].location.as_deref(), Some("src/List.java:14"));
        assert_eq!(
            v[2].location.as_deref(),
            Some("/ci/src/main/java/com/x/A.java:7:20")
        );
        assert_eq!(v[3].severity, Severity::Info);
        assert_eq!(
            v[4].location.as_deref(),
            Some("/home/ci/app/src/cart.js:12:5")
        );
        assert_eq!(v[4].details["rule"], "no-unused-vars");
        assert_eq!(v[5].details["rule"], "no-console");
        assert_eq!(
            v[6].location.as_deref(),
            Some("/home/ci/app/tests/test_api.py:12")
        );
        assert_eq!(v[6].details["rule"], "DeprecationWarning");
    }

    #[test]
    fn runtime_warn_lines_are_not_code_warnings() {
        let log = "\
2016-09-28 04:30:31, Info                  CBS    Warning: Unrecognized packageExtended attribute.
2015-07-29 19:04:29,071 - WARN  [SendWorker:188978561024] - Send worker leaving thread
nova.compute 2931 WARNING nova.virt.libvirt.imagecache Unknown base file
";
        assert!(run(log).is_empty(), "{:#?}", run(log));
    }

    // ---- missing error handling -----------------------------------------------------------

    #[test]
    fn unhandled_promise_rejections() {
        let log = "\
(node:4242) UnhandledPromiseRejectionWarning: Error: connect ECONNREFUSED 127.0.0.1:5432
    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1494:16)
    at Db.connect (/app/src/db.js:14:11)
(node:4242) UnhandledPromiseRejectionWarning: Unhandled promise rejection. This error originated either by throwing inside of an async function without a catch block, or by rejecting a promise which was not handled with .catch(). (rejection id: 1)
(node:4242) [DEP0018] DeprecationWarning: Unhandled promise rejections are deprecated. In the future, promise rejections that are not handled will terminate the Node.js process with a non-zero exit code.
";
        let i = one(log, MissingErrorHandling);
        assert_eq!(i.severity, Severity::Medium);
        assert_eq!(i.location.as_deref(), Some("/app/src/db.js:14:11"));
        assert!(i
            .fix
            .starts_with("Add a .catch handler or await the promise inside try/catch"));
        assert!(i.title.contains("ECONNREFUSED"));
        assert!(only(log, DeprecatedDependency).is_empty());
    }

    #[test]
    fn rust_unwrap_and_unused_result() {
        let log = "\
thread 'main' panicked at src/main.rs:7:37:
called `Result::unwrap()` on an `Err` value: ParseIntError { kind: InvalidDigit }
warning: unused `Result` that must be used
 --> src/io.rs:9:5
thread 'worker' panicked at 'called `Option::unwrap()` on a `None` value', src/cache.rs:40:22
";
        let v = only(log, MissingErrorHandling);
        assert_eq!(v.len(), 3, "{v:#?}");
        assert_eq!(v[0].location.as_deref(), Some("src/main.rs:7:37"));
        assert!(v[0]
            .fix
            .starts_with("Handle the Err case with ? or match instead of unwrap()"));
        assert_eq!(v[1].location.as_deref(), Some("src/io.rs:9:5"));
        assert_eq!(v[2].location.as_deref(), Some("src/cache.rs:40:22"));
        assert!(v[2].fix.contains("None case"));
        assert!(only(log, Warning).is_empty());
    }

    #[test]
    fn python_go_java_handling_signs() {
        let log = "\
Exception ignored in: <function Conn.__del__ at 0x7f3a2c1d0e50>
Traceback (most recent call last):
  File \"/app/db.py\", line 41, in __del__
    self.sock.close()
AttributeError: 'NoneType' object has no attribute 'close'
Task exception was never retrieved
future: <Task finished name='Task-2' coro=<poll() done, defined at /app/poller.py:12> exception=TimeoutError()>
main.go:42:12: Error return value of `f.Close` is not checked (errcheck)
app/views.py:88:5: E722 do not use bare 'except'
/ci/src/main/java/com/x/Repo.java:55:\tAvoid empty catch blocks (EmptyCatchBlock)
";
        let v = only(log, MissingErrorHandling);
        assert_eq!(v.len(), 5, "{v:#?}");
        assert_eq!(v[0].location.as_deref(), Some("/app/db.py:41"));
        assert!(v[0]
            .root_cause
            .as_deref()
            .unwrap()
            .contains("AttributeError"));
        assert_eq!(v[1].location.as_deref(), Some("/app/poller.py:12"));
        assert!(v[1]
            .root_cause
            .as_deref()
            .unwrap()
            .contains("TimeoutError()"));
        assert_eq!(v[2].location.as_deref(), Some("main.go:42:12"));
        assert!(v[2].fix.contains("f.Close"), "{}", v[2].fix);
        assert_eq!(v[3].location.as_deref(), Some("app/views.py:88:5"));
        assert_eq!(
            v[4].location.as_deref(),
            Some("/ci/src/main/java/com/x/Repo.java:55")
        );
    }

    #[test]
    fn handling_words_that_are_not_findings() {
        let log = "\
ignore_errors: false
INFO retry policy: unhandled_count=0
request ignored: duplicate id
Use Option::unwrap_or for defaults
";
        assert!(
            only(log, MissingErrorHandling).is_empty(),
            "{:#?}",
            only(log, MissingErrorHandling)
        );
    }

    #[test]
    fn warnings_are_capped() {
        let log: String = (0..30)
            .map(|n| format!("src/f{n}.c:1:1: warning: shadow{n} [-Wshadow{n}]\n"))
            .collect();
        let v = only(&log, Warning);
        assert_eq!(v.len(), 20);
        assert_eq!(v.last().unwrap().details["findings"], "11");
        assert!(v
            .last()
            .unwrap()
            .title
            .contains("(and 10 more similar findings)"));
    }

    #[test]
    fn lint_signs_of_missing_error_handling() {
        let log = "\
warning: used `unwrap()` on a `Result` value
  --> src/config.rs:22:17
[/src/app/main.go:31] - G104 (CWE-703): Errors unhandled. (Confidence: HIGH, Severity: LOW)
>> Issue: [B110:try_except_pass] Try, Except, Pass detected.
   Severity: Low   Confidence: High
   Location: ./app/jobs.py:40:8
/home/ci/app/src/api.ts
  14:3  error  Promises must be awaited, end with a call to .catch, or end with a call to .then with a rejection handler  @typescript-eslint/no-floating-promises
app/tasks.py:12:4: W0718: Catching too general exception Exception (broad-exception-caught)
";
        let v = only(log, MissingErrorHandling);
        assert_eq!(v.len(), 5, "{v:#?}");
        assert_eq!(v[0].location.as_deref(), Some("src/config.rs:22:17"));
        assert_eq!(v[1].location.as_deref(), Some("/src/app/main.go:31"));
        assert_eq!(v[2].location.as_deref(), Some("./app/jobs.py:40:8"));
        assert_eq!(
            v[3].location.as_deref(),
            Some("/home/ci/app/src/api.ts:14:3")
        );
        assert!(v[3].fix.starts_with("Add a .catch handler or await"));
        assert_eq!(v[4].location.as_deref(), Some("app/tasks.py:12:4"));
        assert!(v.iter().all(|i| i.severity == Severity::Medium));
        assert!(only(log, Warning).is_empty(), "{:#?}", only(log, Warning));
    }

    #[test]
    fn node_deprecation_and_generic_package_deprecation() {
        let log = "\
(node:77) [DEP0040] DeprecationWarning: The `punycode` module is deprecated. Please use a userland alternative instead.
Package swiftmailer/swiftmailer is abandoned, you should avoid using it. Use symfony/mailer instead.
WARNING: left-pad@1.3.0 is deprecated, use String.prototype.padStart instead
";
        let v = only(log, DeprecatedDependency);
        assert_eq!(v.len(), 3, "{v:#?}");
        assert_eq!(v[0].details["package"], "punycode");
        assert_eq!(v[1].details["package"], "swiftmailer/swiftmailer");
        assert_eq!(v[1].details["replacement"], "symfony/mailer");
        assert_eq!(v[1].severity, Severity::Medium);
        assert_eq!(v[2].details["package"], "left-pad");
        assert_eq!(v[2].details["version"], "1.3.0");
        assert_eq!(v[2].details["replacement"], "String.prototype.padStart");
    }

    #[test]
    fn coverage_table_printed_with_its_gate_counts_once() {
        let log = "\
All files       |   71.42 |    55.55 |   66.66 |   71.42 |
 api.ts         |   92.3  |    80    |   100   |   92.3  | 14
 payments.ts    |   41.17 |    25    |   33.33 |   41.17 | 10-25,31
----------------|---------|----------|---------|---------|-------------------
Jest: \"global\" coverage threshold for statements (80%) not met: 71.42%
";
        let i = one(log, LowCoverage);
        assert!(i.fix.contains("payments.ts"), "{}", i.fix);
        assert!(
            i.impact
                .contains("missing coverage in payments.ts (41.17%)"),
            "{}",
            i.impact
        );
    }
}
