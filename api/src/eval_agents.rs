//! `agora eval-analysers`, second part: how well the four monitoring agents (the deterministic
//! rule sets of `agora_domain::logmarket::analysers`) find what a careful human finds, and how
//! fast the full four-agent pass is.
//!
//! * **Real tool logs.** Every project under `eval/failing-tools/<name>/` fails on purpose. Its
//!   `run.json` names the command(s) to run (and a probe that tells whether the tool is
//!   installed), its `expected.json` the findings a careful human expects in the output. The
//!   project is copied to a scratch directory, the tool is run there (stdout and stderr into one
//!   file, in the order written, like a CI log), and `analyse_all` with the default thresholds
//!   runs over that output. Insights are matched one-to-one against the labels (same agent and
//!   kind and, when the label has a location, a `file:line` suffix match); TP/FP/FN, precision
//!   and recall per project and per agent. A tool that is not installed is skipped with a note.
//! * **Loghub BGL.** BGL's 2k sample labels every line (`-` = normal, otherwise an alert
//!   category): line-level precision/recall of the Error Detective against those alerts.
//! * **Loghub, 12 systems.** Insights per agent per 1,000 lines of operational logs (mostly
//!   normal: a false-positive-rate proxy), and single-thread throughput of `analyse_all`, of
//!   `analyse_all` + template mining, and of the whole priced `analysis::analyse`.
//!
//! Data is read where it lies; tool output lives only in scratch directories.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agora_domain::logmarket::analysers::{analyse_all, AnalyserConfig, LogText};
use agora_domain::logmarket::analysis::{self, MarketConfig, Stage};
use agora_domain::logmarket::insight::{Agent, Insight, InsightKind};
use agora_domain::templates::{Drain, DrainConfig};
use anyhow::Context;
use serde::Deserialize;

/// Where the failing projects live, relative to the workspace root.
pub const DEFAULT_TOOLS_DIR: &str = "eval/failing-tools";
/// Where Loghub-2k lives, relative to the workspace root (as for `eval::EvalArgs`).
pub const DEFAULT_DATA_DIR: &str = "../shared/data/loghub_2k";
/// The twelve Loghub-2k systems.
pub const LOGHUB_SYSTEMS: [&str; 12] = [
    "HDFS",
    "Hadoop",
    "Spark",
    "Zookeeper",
    "BGL",
    "HPC",
    "Windows",
    "Android",
    "Apache",
    "Proxifier",
    "OpenStack",
    "Mac",
];
/// Longest a tool may run before it is killed.
const TOOL_TIMEOUT: Duration = Duration::from_secs(600);
/// Least measured time per throughput trial.
const MIN_BENCH_SECONDS: f64 = 1.0;
/// Trials per throughput figure (the median is reported: the machine is shared).
const BENCH_TRIALS: usize = 3;

#[derive(Clone, Debug)]
pub struct AgentEvalArgs {
    /// The loghub_2k folder (one sub-folder per system).
    pub data: PathBuf,
    /// The failing-tools folder (one project per sub-folder).
    pub tools: PathBuf,
}

impl Default for AgentEvalArgs {
    fn default() -> Self {
        Self {
            data: PathBuf::from(DEFAULT_DATA_DIR),
            tools: PathBuf::from(DEFAULT_TOOLS_DIR),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Labels and matching
// ---------------------------------------------------------------------------------------------

/// One value or a list of acceptable alternatives.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A finding a careful human expects (one entry of `expected.json`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Label {
    pub agent: Agent,
    /// The `InsightKind` (snake_case), or a list of kinds that are all right.
    pub kind: OneOrMany<InsightKind>,
    /// `file:line`, or a list of places that are all right; absent: any location.
    #[serde(default)]
    pub location: Option<OneOrMany<String>>,
    /// Free text for the reader.
    #[serde(default)]
    pub note: Option<String>,
}

impl Label {
    pub fn describe(&self) -> String {
        let kinds: Vec<String> = self.kind.as_slice().iter().map(|k| kind_id(*k)).collect();
        let mut s = format!("{} {}", self.agent.id(), kinds.join("|"));
        if let Some(l) = &self.location {
            let _ = write!(s, " @ {}", l.as_slice().join("|"));
        }
        s
    }
}

/// What matching needs of an insight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub kind: InsightKind,
    pub location: Option<String>,
    pub log_line: u32,
    pub title: String,
}

impl From<&Insight> for Found {
    fn from(i: &Insight) -> Self {
        Found {
            kind: i.kind,
            location: i.location.clone(),
            log_line: i.log_line,
            title: i.title.clone(),
        }
    }
}

impl Found {
    pub fn agent(&self) -> Agent {
        self.kind.agent()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {} @ {} (log line {}): {}",
            self.agent().id(),
            kind_id(self.kind),
            self.location.as_deref().unwrap_or("-"),
            self.log_line,
            truncate(&self.title, 100)
        )
    }
}

/// The snake_case serde name of a kind.
pub fn kind_id(kind: InsightKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `file:line:col` → `file:line`; anything else unchanged.
pub fn strip_column(location: &str) -> &str {
    if let Some((head, last)) = location.rsplit_once(':') {
        if is_number(last) {
            if let Some((_, prev)) = head.rsplit_once(':') {
                if is_number(prev) {
                    return head;
                }
            }
        }
    }
    location
}

/// Whether an insight's location names the labelled `file:line`: after dropping any `:col`
/// (on both) and turning `\` into `/`, the label is a suffix of the location that starts at a
/// path-component boundary (`src/main.rs:4` matches `/tmp/x/src/main.rs:4:9`, not
/// `src/xmain.rs:4` nor `src/main.rs:14`).
pub fn location_matches(insight_location: &str, label_location: &str) -> bool {
    let loc = strip_column(insight_location.trim()).replace('\\', "/");
    let label = strip_column(label_location.trim()).replace('\\', "/");
    let label = label.trim_start_matches("./");
    if label.is_empty() || !loc.ends_with(label) {
        return false;
    }
    let prefix = &loc[..loc.len() - label.len()];
    prefix.is_empty() || prefix.ends_with(['/', ' ', '(', '\'', '"', '\t'])
}

/// Whether `found` is an instance of `label`.
pub fn label_accepts(label: &Label, found: &Found) -> bool {
    label.agent == found.agent()
        && label.kind.as_slice().contains(&found.kind)
        && match &label.location {
            None => true,
            Some(places) => found
                .location
                .as_deref()
                .is_some_and(|l| places.as_slice().iter().any(|p| location_matches(l, p))),
        }
}

/// A maximum one-to-one matching of labels to findings (each label and each finding used at
/// most once). Returns, per label, the index of its finding.
pub fn match_labels(labels: &[Label], found: &[Found]) -> Vec<Option<usize>> {
    let adjacency: Vec<Vec<usize>> = labels
        .iter()
        .map(|l| {
            (0..found.len())
                .filter(|&i| label_accepts(l, &found[i]))
                .collect()
        })
        .collect();
    let mut owner: Vec<Option<usize>> = vec![None; found.len()];
    fn augment(
        label: usize,
        adjacency: &[Vec<usize>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for &f in &adjacency[label] {
            if seen[f] {
                continue;
            }
            seen[f] = true;
            if owner[f].is_none_or(|other| augment(other, adjacency, seen, owner)) {
                owner[f] = Some(label);
                return true;
            }
        }
        false
    }
    for label in 0..labels.len() {
        let mut seen = vec![false; found.len()];
        augment(label, &adjacency, &mut seen, &mut owner);
    }
    let mut result = vec![None; labels.len()];
    for (f, o) in owner.iter().enumerate() {
        if let Some(l) = o {
            result[*l] = Some(f);
        }
    }
    result
}

/// True positives, false positives, false negatives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Counts {
    /// `None` when nothing was reported (0/0).
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    /// `None` when nothing was expected (0/0).
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }

    pub fn add(&mut self, other: Counts) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }

    pub fn is_empty(&self) -> bool {
        self.tp + self.fp + self.fn_ == 0
    }
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// `0.67`, or `n/a` for 0/0.
pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"))
}

/// The outcome of matching one log's findings against its labels.
#[derive(Clone, Debug, Default)]
pub struct MatchOutcome {
    pub per_agent: BTreeMap<Agent, Counts>,
    /// Findings no label accounts for (false positives).
    pub extra: Vec<Found>,
    /// Labels no finding accounts for (false negatives).
    pub missed: Vec<Label>,
    /// Label → finding pairs (true positives).
    pub matched: Vec<(Label, Found)>,
}

pub fn score(labels: &[Label], found: &[Found]) -> MatchOutcome {
    let assignment = match_labels(labels, found);
    let mut out = MatchOutcome {
        per_agent: Agent::ALL.iter().map(|a| (*a, Counts::default())).collect(),
        ..MatchOutcome::default()
    };
    let mut used = vec![false; found.len()];
    for (label, a) in labels.iter().zip(&assignment) {
        match a {
            Some(f) => {
                used[*f] = true;
                out.per_agent.entry(label.agent).or_default().tp += 1;
                out.matched.push((label.clone(), found[*f].clone()));
            }
            None => {
                out.per_agent.entry(label.agent).or_default().fn_ += 1;
                out.missed.push(label.clone());
            }
        }
    }
    for (f, u) in found.iter().zip(&used) {
        if !u {
            out.per_agent.entry(f.agent()).or_default().fp += 1;
            out.extra.push(f.clone());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Running the failing tools
// ---------------------------------------------------------------------------------------------

/// One entry of a project's `run.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct RunSpec {
    pub name: String,
    /// Program and arguments, run in the project's scratch copy.
    pub command: Vec<String>,
    /// Program and arguments that succeed when the tool is installed.
    pub probe: Vec<String>,
    /// How to install the tool.
    #[serde(default)]
    pub hint: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Clone, Debug)]
pub enum ToolStatus {
    Ran {
        exit_code: Option<i32>,
        seconds: f64,
        log_bytes: usize,
        log_lines: usize,
        /// The probe's first line (the tool's version).
        version: String,
    },
    Skipped(String),
}

#[derive(Clone, Debug)]
pub struct ToolResult {
    pub name: String,
    pub command: String,
    pub labels: usize,
    pub status: ToolStatus,
    pub outcome: MatchOutcome,
}

/// A scratch directory removed on drop (the api crate has `tempfile` only as a
/// dev-dependency).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> anyhow::Result<Self> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        for attempt in 0..100u32 {
            let p = base.join(format!(
                "agora-eval-{tag}-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(Scratch(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
            }
        }
        anyhow::bail!("could not create a scratch directory in {}", base.display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        if matches!(
            name.to_str(),
            Some("target" | "node_modules" | "__pycache__" | ".pytest_cache" | "classes")
        ) {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_tree(&entry.path(), &to.join(&name))?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// The tool's environment: no colour, no backtraces unless the tool defaults to them, no
/// `CARGO_*` / `RUSTFLAGS` inherited from a surrounding cargo, the build output in `target`.
fn prepare(cmd: &mut Command, target_dir: &Path) {
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if (k.starts_with("CARGO_") && k != "CARGO_HOME")
                || matches!(
                    k,
                    "RUSTFLAGS" | "RUSTDOCFLAGS" | "RUST_BACKTRACE" | "RUST_LOG" | "FORCE_COLOR"
                )
            {
                cmd.env_remove(k);
            }
        }
    }
    cmd.env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_TERM_COLOR", "never")
        .env("NO_COLOR", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
}

/// Runs the probe: `Ok(version line)` or `Err(reason)`.
fn probe(spec: &RunSpec, scratch: &Path) -> Result<String, String> {
    let Some((program, args)) = spec.probe.split_first() else {
        return Ok(String::new());
    };
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(scratch);
    prepare(&mut cmd, &scratch.join("target"));
    match cmd.output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            Ok(text.lines().next().unwrap_or("").trim().to_owned())
        }
        Ok(_) => Err(format!("`{}` failed", spec.probe.join(" "))),
        Err(e) => Err(format!("`{program}`: {e}")),
    }
}

/// Runs `command` in `dir` with stdout and stderr into one file; returns the exit code (None:
/// killed by a signal or after [`TOOL_TIMEOUT`]) and the output.
fn run_captured(
    command: &[String],
    dir: &Path,
    log_path: &Path,
) -> anyhow::Result<(Option<i32>, String)> {
    let (program, args) = command.split_first().context("empty command")?;
    let file = File::create(log_path)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file));
    prepare(&mut cmd, &dir.join("target"));
    let mut child = cmd.spawn().with_context(|| format!("starting {program}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > TOOL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let bytes = std::fs::read(log_path)?;
    Ok((
        status.and_then(|s| s.code()),
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

fn load_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads and checks a project's labels (each kind must belong to the label's agent).
pub fn load_labels(path: &Path) -> anyhow::Result<Vec<Label>> {
    let labels: Vec<Label> = load_json(path)?;
    for l in &labels {
        for k in l.kind.as_slice() {
            anyhow::ensure!(
                k.agent() == l.agent,
                "{}: kind {} belongs to {}, not {}",
                path.display(),
                kind_id(*k),
                k.agent().id(),
                l.agent.id()
            );
        }
    }
    Ok(labels)
}

/// Runs every project of `tools` (sorted by name) and scores the agents on each output.
pub fn run_tools(tools: &Path) -> anyhow::Result<Vec<ToolResult>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(tools)
        .with_context(|| format!("reading {}", tools.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let config = AnalyserConfig::default();
    let mut results = Vec::new();
    for dir in dirs {
        let project = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        let (run_path, expected_path) = (dir.join("run.json"), dir.join("expected.json"));
        if !run_path.is_file() || !expected_path.is_file() {
            results.push(ToolResult {
                name: project,
                command: String::new(),
                labels: 0,
                status: ToolStatus::Skipped("no run.json / expected.json".into()),
                outcome: MatchOutcome::default(),
            });
            continue;
        }
        let specs: Vec<RunSpec> = load_json(&run_path)?;
        let labels = load_labels(&expected_path)?;
        for spec in specs {
            let scratch = Scratch::new(&project)?;
            let work = scratch.0.join(&project);
            copy_tree(&dir, &work)?;
            let command = spec.command.join(" ");
            let mut result = ToolResult {
                name: spec.name.clone(),
                command: command.clone(),
                labels: labels.len(),
                status: ToolStatus::Skipped(String::new()),
                outcome: MatchOutcome::default(),
            };
            let version = match probe(&spec, &work) {
                Ok(v) => v,
                Err(why) => {
                    let hint = spec
                        .hint
                        .as_deref()
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                    result.status = ToolStatus::Skipped(format!("tool not found: {why}{hint}"));
                    results.push(result);
                    continue;
                }
            };
            let started = Instant::now();
            let (exit_code, log) = run_captured(&spec.command, &work, &scratch.0.join("tool.log"))
                .with_context(|| format!("running {command} for {project}"))?;
            let seconds = started.elapsed().as_secs_f64();
            let text = LogText::new(&log);
            let found: Vec<Found> = analyse_all(&text, &config)
                .iter()
                .map(Found::from)
                .collect();
            result.status = ToolStatus::Ran {
                exit_code,
                seconds,
                log_bytes: log.len(),
                log_lines: text.lines.len(),
                version,
            };
            result.outcome = score(&labels, &found);
            results.push(result);
        }
    }
    Ok(results)
}

// ---------------------------------------------------------------------------------------------
// Loghub
// ---------------------------------------------------------------------------------------------

/// Reads one column of a structured Loghub CSV.
fn csv_column(path: &Path, column: &str) -> anyhow::Result<Vec<String>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let col = reader
        .headers()?
        .iter()
        .position(|h| h == column)
        .with_context(|| format!("{} has no {column} column", path.display()))?;
    let mut out = Vec::new();
    for record in reader.records() {
        out.push(record?.get(col).unwrap_or_default().to_owned());
    }
    Ok(out)
}

/// A raw `*_2k.log` file, lines without terminators. For BGL the first field (the alert label,
/// an annotation added by Loghub, not part of the log) is removed.
fn raw_lines(data: &Path, system: &str) -> anyhow::Result<Vec<String>> {
    let path = data.join(system).join(format!("{system}_2k.log"));
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let log = LogText::new(&text);
    Ok(log
        .lines
        .iter()
        .map(|l| {
            if system == "BGL" {
                l.split_once(' ').map_or("", |(_, rest)| rest).to_owned()
            } else {
                (*l).to_owned()
            }
        })
        .collect())
}

#[derive(Clone, Debug, Default)]
pub struct BglResult {
    pub lines: usize,
    pub alert_lines: usize,
    /// Each line analysed as its own log; a line is flagged when the Error Detective reports
    /// anything on it.
    pub per_line: Counts,
    /// Same, any of the four agents.
    pub per_line_any_agent: Counts,
    /// Alert category → (lines, flagged by the Error Detective).
    pub categories: BTreeMap<String, (usize, usize)>,
    /// Error Detective kinds reported on normal lines (per-line mode) → lines.
    pub fp_kinds: BTreeMap<String, usize>,
    /// The whole file as one log: Error Detective insights, and how many start on an alert line.
    pub whole_file_insights: usize,
    pub whole_file_on_alert: usize,
    /// Examples (log text) of per-line false positives, true positives and misses (one per
    /// alert category).
    pub fp_examples: Vec<String>,
    pub tp_examples: Vec<String>,
    pub fn_examples: Vec<String>,
}

pub fn run_bgl(data: &Path) -> anyhow::Result<BglResult> {
    let csv = data.join("BGL").join("BGL_2k.log_structured_corrected.csv");
    let labels = csv_column(&csv, "Label")?;
    let contents = csv_column(&csv, "Content")?;
    let lines = raw_lines(data, "BGL")?;
    anyhow::ensure!(
        labels.len() == lines.len(),
        "BGL: {} labels but {} log lines",
        labels.len(),
        lines.len()
    );
    let config = AnalyserConfig::default();
    let mut r = BglResult {
        lines: lines.len(),
        ..BglResult::default()
    };
    for ((line, label), content) in lines.iter().zip(&labels).zip(&contents) {
        let alert = label != "-";
        let insights = analyse_all(&LogText::new(line), &config);
        let ed: Vec<&Insight> = insights
            .iter()
            .filter(|i| i.agent() == Agent::ErrorDetective)
            .collect();
        let flagged = !ed.is_empty();
        let any = !insights.is_empty();
        for (c, f) in [(&mut r.per_line, flagged), (&mut r.per_line_any_agent, any)] {
            match (alert, f) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
                (false, false) => {}
            }
        }
        if alert {
            r.alert_lines += 1;
            let e = r.categories.entry(label.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(flagged);
            if flagged && r.tp_examples.len() < 3 {
                r.tp_examples.push(format!(
                    "{label}: {} → {}",
                    kind_id(ed[0].kind),
                    truncate(content, 110)
                ));
            }
            if !flagged && e.1 == 0 && e.0 == 1 {
                r.fn_examples
                    .push(format!("{label}: {}", truncate(content, 110)));
            }
        } else if flagged {
            for i in &ed {
                *r.fp_kinds.entry(kind_id(i.kind)).or_default() += 1;
            }
            if r.fp_examples.len() < 3 {
                r.fp_examples.push(format!(
                    "{} → {}",
                    kind_id(ed[0].kind),
                    truncate(content, 110)
                ));
            }
        }
    }
    let whole = lines.join("\n");
    for i in analyse_all(&LogText::new(&whole), &config) {
        if i.agent() == Agent::ErrorDetective {
            r.whole_file_insights += 1;
            let idx = (i.log_line as usize).saturating_sub(1);
            if labels.get(idx).is_some_and(|l| l != "-") {
                r.whole_file_on_alert += 1;
            }
        }
    }
    Ok(r)
}

#[derive(Clone, Debug, Default)]
pub struct SystemNoise {
    pub system: String,
    pub lines: usize,
    /// The whole file as one log: insights per agent.
    pub whole_file: BTreeMap<Agent, usize>,
    /// Each line as its own log: lines with at least one insight of the agent.
    pub lines_flagged: BTreeMap<Agent, usize>,
}

#[derive(Clone, Debug, Default)]
pub struct LoghubNoise {
    pub systems: Vec<SystemNoise>,
    /// (agent, kind) → (insights in whole-file mode, lines flagged in per-line mode, one
    /// example "system: title").
    pub kinds: BTreeMap<(Agent, String), (usize, usize, String)>,
}

pub fn run_loghub_noise(data: &Path) -> anyhow::Result<LoghubNoise> {
    let config = AnalyserConfig::default();
    let mut out = LoghubNoise::default();
    for system in LOGHUB_SYSTEMS {
        let lines = raw_lines(data, system)?;
        let mut s = SystemNoise {
            system: system.to_owned(),
            lines: lines.len(),
            ..SystemNoise::default()
        };
        let whole = lines.join("\n");
        for i in analyse_all(&LogText::new(&whole), &config) {
            *s.whole_file.entry(i.agent()).or_default() += 1;
            let e = out
                .kinds
                .entry((i.agent(), kind_id(i.kind)))
                .or_insert_with(|| (0, 0, format!("{system}: {}", truncate(&i.title, 90))));
            e.0 += 1;
        }
        for line in &lines {
            let insights = analyse_all(&LogText::new(line), &config);
            let agents: BTreeSet<Agent> = insights.iter().map(|i| i.agent()).collect();
            for a in agents {
                *s.lines_flagged.entry(a).or_default() += 1;
            }
            let kinds: BTreeMap<(Agent, String), &Insight> = insights
                .iter()
                .map(|i| ((i.agent(), kind_id(i.kind)), i))
                .collect();
            for (k, i) in kinds {
                out.kinds
                    .entry(k)
                    .or_insert_with(|| (0, 0, format!("{system}: {}", truncate(&i.title, 90))))
                    .1 += 1;
            }
        }
        out.systems.push(s);
    }
    Ok(out)
}

/// One throughput figure (single thread): [`BENCH_TRIALS`] trials of at least
/// [`MIN_BENCH_SECONDS`] each.
#[derive(Clone, Debug)]
pub struct Throughput {
    pub what: String,
    pub bytes_per_pass: usize,
    /// Per trial: (passes, seconds).
    pub trials: Vec<(usize, f64)>,
}

impl Throughput {
    /// MB/s (10^6 bytes) of each trial, ascending.
    pub fn trial_mb_per_s(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .trials
            .iter()
            .map(|(p, s)| (self.bytes_per_pass * p) as f64 / s.max(1e-9) / 1e6)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The median trial's MB/s.
    pub fn mb_per_s(&self) -> f64 {
        let v = self.trial_mb_per_s();
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
}

fn bench(what: &str, bytes: usize, mut pass: impl FnMut()) -> Throughput {
    pass(); // warm-up: lazily compiled regexes, allocator
    let trials = (0..BENCH_TRIALS)
        .map(|_| {
            let started = Instant::now();
            let mut passes = 0;
            while passes == 0 || started.elapsed().as_secs_f64() < MIN_BENCH_SECONDS {
                pass();
                passes += 1;
            }
            (passes, started.elapsed().as_secs_f64())
        })
        .collect();
    Throughput {
        what: what.to_owned(),
        bytes_per_pass: bytes,
        trials,
    }
}

/// Splits `text` at line ends into chunks of at most `max` bytes (a longer line is its own
/// chunk).
pub fn chunks_at_lines(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let rest = &text[start..];
        let mut end = if rest.len() <= max {
            rest.len()
        } else {
            match rest.as_bytes()[..max].iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => rest.find('\n').map_or(rest.len(), |i| i + 1),
            }
        };
        if end == 0 {
            end = rest.len();
        }
        out.push(&rest[..end]);
        start += end;
    }
    out
}

pub fn run_throughput(data: &Path) -> anyhow::Result<Vec<Throughput>> {
    let mut corpus = String::new();
    for system in LOGHUB_SYSTEMS {
        let path = data.join(system).join(format!("{system}_2k.log"));
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        corpus.push_str(&String::from_utf8_lossy(&bytes));
        if !corpus.ends_with('\n') {
            corpus.push('\n');
        }
    }
    let n = corpus.len();
    let config = AnalyserConfig::default();
    let drain_config = DrainConfig::general();
    let mut out = Vec::new();
    out.push(bench("`analyse_all` (four agents)", n, || {
        let log = LogText::new(&corpus);
        black_box(analyse_all(&log, &config));
    }));
    out.push(bench(
        "template mining alone (`Drain`, general masks)",
        n,
        || {
            let log = LogText::new(&corpus);
            let mut drain = Drain::new(drain_config.clone());
            for l in &log.lines {
                black_box(drain.add(l));
            }
            black_box(drain.clusters().len());
        },
    ));
    out.push(bench("`analyse_all` + template mining", n, || {
        let log = LogText::new(&corpus);
        black_box(analyse_all(&log, &config));
        let mut drain = Drain::new(drain_config.clone());
        for l in &log.lines {
            black_box(drain.add(l));
        }
        black_box(drain.clusters().len());
    }));
    let market = MarketConfig::default();
    let chunks = chunks_at_lines(&corpus, market.max_log_bytes);
    let mut failure = None;
    let priced = bench(
        &format!(
            "`analysis::analyse` (stage test, {} chunks ≤ 1 MiB)",
            chunks.len()
        ),
        n,
        || {
            for c in &chunks {
                match analysis::analyse(c, Stage::Test, &market, &|_| false) {
                    Ok(a) => {
                        black_box(a);
                    }
                    Err(e) => failure = Some(e.to_string()),
                }
            }
        },
    );
    if let Some(e) = failure {
        anyhow::bail!("analysis::analyse failed on a Loghub chunk: {e}");
    }
    out.push(priced);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The whole evaluation
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct AgentEvalReport {
    pub tools: Vec<ToolResult>,
    pub bgl: Option<BglResult>,
    pub loghub: Option<LoghubNoise>,
    pub throughput: Vec<Throughput>,
    /// What was skipped and why.
    pub notes: Vec<String>,
}

impl AgentEvalReport {
    /// Per agent, summed over all projects that ran.
    pub fn totals(&self) -> BTreeMap<Agent, Counts> {
        let mut t: BTreeMap<Agent, Counts> =
            Agent::ALL.iter().map(|a| (*a, Counts::default())).collect();
        for r in &self.tools {
            for (a, c) in &r.outcome.per_agent {
                t.entry(*a).or_default().add(*c);
            }
        }
        t
    }
}

pub fn run(args: &AgentEvalArgs) -> anyhow::Result<AgentEvalReport> {
    let mut report = AgentEvalReport::default();
    let (have_tools, have_data) = (args.tools.is_dir(), args.data.is_dir());
    anyhow::ensure!(
        have_tools || have_data,
        "neither {} nor {} found: pass the failing-tools folder and the loghub_2k folder",
        args.tools.display(),
        args.data.display()
    );
    if have_tools {
        report.tools = run_tools(&args.tools)?;
    } else {
        report.notes.push(format!(
            "real tool logs skipped: {} not found",
            args.tools.display()
        ));
    }
    if have_data {
        report.bgl = Some(run_bgl(&args.data)?);
        report.loghub = Some(run_loghub_noise(&args.data)?);
        report.throughput = run_throughput(&args.data)?;
    } else {
        report.notes.push(format!(
            "Loghub sections skipped: {} not found",
            args.data.display()
        ));
    }
    for r in &report.tools {
        if let ToolStatus::Skipped(why) = &r.status {
            report.notes.push(format!("{}: skipped ({why})", r.name));
        }
    }
    Ok(report)
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.replace('|', "\\|").replace('`', "'");
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

fn counts_cells(c: &Counts) -> String {
    format!(
        "{} | {} | {} | {} | {}",
        c.tp,
        c.fp,
        c.fn_,
        fmt_ratio(c.precision()),
        fmt_ratio(c.recall())
    )
}

/// The report as markdown.
pub fn render_report(report: &AgentEvalReport) -> String {
    let mut s = String::new();
    if !report.tools.is_empty() {
        let _ = writeln!(s, "### Real tool logs\n");
        let _ = writeln!(
            s,
            "| project | command | tool | exit | log lines | labels | agent | TP | FP | FN | precision | recall |"
        );
        let _ = writeln!(
            s,
            "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"
        );
        for r in &report.tools {
            match &r.status {
                ToolStatus::Skipped(why) => {
                    let _ = writeln!(
                        s,
                        "| {} | `{}` | skipped ({}) | | | {} | | | | | | |",
                        r.name,
                        r.command,
                        truncate(why, 80),
                        r.labels
                    );
                }
                ToolStatus::Ran {
                    exit_code,
                    log_lines,
                    version,
                    ..
                } => {
                    let mut first = true;
                    let rows: Vec<(&Agent, &Counts)> = r
                        .outcome
                        .per_agent
                        .iter()
                        .filter(|(_, c)| !c.is_empty())
                        .collect();
                    if rows.is_empty() {
                        let _ = writeln!(
                            s,
                            "| {} | `{}` | {} | {} | {} | {} | (none) | 0 | 0 | 0 | n/a | n/a |",
                            r.name,
                            r.command,
                            truncate(version, 40),
                            exit_code.map_or("killed".into(), |c| c.to_string()),
                            log_lines,
                            r.labels
                        );
                    }
                    for (a, c) in rows {
                        if first {
                            let _ = writeln!(
                                s,
                                "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
                                r.name,
                                r.command,
                                truncate(version, 40),
                                exit_code.map_or("killed".into(), |c| c.to_string()),
                                log_lines,
                                r.labels,
                                a.id(),
                                counts_cells(c)
                            );
                            first = false;
                        } else {
                            let _ = writeln!(s, "| | | | | | | {} | {} |", a.id(), counts_cells(c));
                        }
                    }
                }
            }
        }
        let _ = writeln!(s, "\n**Per agent, all projects that ran:**\n");
        let _ = writeln!(s, "| agent | TP | FP | FN | precision | recall |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        let mut all = Counts::default();
        for (a, c) in report.totals() {
            let _ = writeln!(s, "| {} | {} |", a.id(), counts_cells(&c));
            all.add(c);
        }
        let _ = writeln!(s, "| **all** | {} |", counts_cells(&all));
        let mut details = String::new();
        for r in &report.tools {
            for m in &r.outcome.missed {
                let _ = writeln!(
                    details,
                    "- {}: **missed** {}{}",
                    r.name,
                    m.describe(),
                    m.note
                        .as_deref()
                        .map(|n| format!(" ({})", truncate(n, 100)))
                        .unwrap_or_default()
                );
            }
            for f in &r.outcome.extra {
                let _ = writeln!(details, "- {}: **extra** {}", r.name, f.describe());
            }
        }
        if !details.is_empty() {
            let _ = writeln!(s, "\nFalse negatives and false positives:\n\n{details}");
        }
    }
    if let Some(b) = &report.bgl {
        let _ = writeln!(s, "\n### Loghub BGL: Error Detective vs. alert labels\n");
        let _ = writeln!(
            s,
            "{} lines, {} alert lines (label ≠ `-`). Line level, each line analysed as its own log:\n",
            b.lines, b.alert_lines
        );
        let _ = writeln!(s, "| flagged by | TP | FP | FN | precision | recall |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        let _ = writeln!(s, "| Error Detective | {} |", counts_cells(&b.per_line));
        let _ = writeln!(s, "| any agent | {} |", counts_cells(&b.per_line_any_agent));
        let _ = writeln!(
            s,
            "\n| alert category | lines | flagged by the Error Detective |"
        );
        let _ = writeln!(s, "|---|---:|---:|");
        for (cat, (n, f)) in &b.categories {
            let _ = writeln!(s, "| {cat} | {n} | {f} |");
        }
        let fp: Vec<String> = b
            .fp_kinds
            .iter()
            .map(|(k, n)| format!("{k} × {n}"))
            .collect();
        let _ = writeln!(
            s,
            "\nKinds reported on normal lines: {}.",
            if fp.is_empty() {
                "none".to_owned()
            } else {
                fp.join(", ")
            }
        );
        let _ = writeln!(
            s,
            "Whole file as one log: {} Error Detective insights, {} of them start on an alert line.",
            b.whole_file_insights, b.whole_file_on_alert
        );
        for e in &b.fn_examples {
            let _ = writeln!(s, "- missed alert: {e}");
        }
        for e in &b.tp_examples {
            let _ = writeln!(s, "- flagged alert: {e}");
        }
        for e in &b.fp_examples {
            let _ = writeln!(s, "- flagged normal line: {e}");
        }
    }
    if let Some(l) = &report.loghub {
        let _ = writeln!(
            s,
            "\n### Loghub-2k, 12 systems: insights per 1,000 lines\n\nEach cell: insights with the whole file as one log / lines flagged with each line as its own log, both per 1,000 lines.\n"
        );
        let _ = write!(s, "| system | lines |");
        for a in Agent::ALL {
            let _ = write!(s, " {} |", a.id());
        }
        let _ = writeln!(s, "\n|---|---:|---:|---:|---:|---:|");
        let mut total = SystemNoise::default();
        for sys in &l.systems {
            let _ = writeln!(s, "{}", noise_row(&sys.system, sys));
            total.lines += sys.lines;
            for a in Agent::ALL {
                *total.whole_file.entry(a).or_default() +=
                    sys.whole_file.get(&a).copied().unwrap_or(0);
                *total.lines_flagged.entry(a).or_default() +=
                    sys.lines_flagged.get(&a).copied().unwrap_or(0);
            }
        }
        let _ = writeln!(s, "{}", noise_row("**all**", &total));
        let mut kinds: Vec<_> = l.kinds.iter().collect();
        kinds.sort_by(|a, b| (b.1 .1, b.1 .0).cmp(&(a.1 .1, a.1 .0)).then(a.0.cmp(b.0)));
        if !kinds.is_empty() {
            let _ = writeln!(
                s,
                "\n| agent | kind | insights (whole files) | lines flagged (per line) | example |"
            );
            let _ = writeln!(s, "|---|---|---:|---:|---|");
            for ((a, k), (n, lines, ex)) in kinds.iter().take(15) {
                let _ = writeln!(s, "| {} | {k} | {n} | {lines} | {ex} |", a.id());
            }
        }
    }
    if !report.throughput.is_empty() {
        let _ = writeln!(
            s,
            "\n### Throughput (single thread, all 12 Loghub-2k raw files concatenated, MB = 10^6 bytes, {BENCH_TRIALS} trials of ≥ {MIN_BENCH_SECONDS} s each)\n"
        );
        let _ = writeln!(
            s,
            "| pass | MB per pass | passes per trial | MB/s per core (median) | trials (MB/s) |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---|");
        for t in &report.throughput {
            let trials: Vec<String> = t
                .trial_mb_per_s()
                .iter()
                .map(|m| format!("{m:.1}"))
                .collect();
            let passes: Vec<String> = t.trials.iter().map(|(p, _)| p.to_string()).collect();
            let _ = writeln!(
                s,
                "| {} | {:.2} | {} | **{:.1}** | {} |",
                t.what,
                t.bytes_per_pass as f64 / 1e6,
                passes.join(" + "),
                t.mb_per_s(),
                trials.join(", ")
            );
        }
    }
    if !report.notes.is_empty() {
        let _ = writeln!(s, "\nNotes:\n");
        for n in &report.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

fn noise_row(name: &str, sys: &SystemNoise) -> String {
    let per_k = |n: usize| n as f64 * 1000.0 / sys.lines.max(1) as f64;
    let mut row = format!("| {name} | {} |", sys.lines);
    for a in Agent::ALL {
        let w = sys.whole_file.get(&a).copied().unwrap_or(0);
        let f = sys.lines_flagged.get(&a).copied().unwrap_or(0);
        let _ = write!(row, " {:.1} / {:.1} |", per_k(w), per_k(f));
    }
    row
}

/// Prints [`render_report`] to stdout.
pub fn print_report(report: &AgentEvalReport) {
    print!("{}", render_report(report));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(kind: InsightKind, location: Option<&str>) -> Found {
        Found {
            kind,
            location: location.map(str::to_owned),
            log_line: 1,
            title: "t".into(),
        }
    }

    fn label(json: &str) -> Label {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn strips_only_a_column() {
        assert_eq!(strip_column("src/main.rs:4:9"), "src/main.rs:4");
        assert_eq!(strip_column("src/main.rs:4"), "src/main.rs:4");
        assert_eq!(strip_column("src/main.rs"), "src/main.rs");
        assert_eq!(strip_column("C:\\x\\a.rs:3:1"), "C:\\x\\a.rs:3");
    }

    #[test]
    fn location_is_a_path_suffix() {
        assert!(location_matches("/tmp/x/src/main.rs:4:9", "src/main.rs:4"));
        assert!(location_matches("src/main.rs:4", "src/main.rs:4"));
        assert!(location_matches("src/main.rs:4:1", "src/main.rs:4:7"));
        assert!(location_matches("C:\\p\\src\\main.rs:4", "src/main.rs:4"));
        assert!(location_matches("main.rs:4", "./main.rs:4"));
        assert!(!location_matches(
            "/tmp/x/src/main.rs:14:9",
            "src/main.rs:4"
        ));
        assert!(!location_matches("/tmp/x/src/xmain.rs:4", "main.rs:4"));
        assert!(!location_matches("src/main.rs:40", "src/main.rs:4"));
        assert!(!location_matches("src/main.rs", "src/main.rs:4"));
        assert!(!location_matches("anything", ""));
    }

    #[test]
    fn labels_parse_with_alternatives_and_check_agent() {
        let l = label(
            r#"{"agent": "error-detective", "kind": ["runtime_exception", "crash"], "location": ["a.py:1", "b.py:2"], "note": "x"}"#,
        );
        assert_eq!(l.kind.as_slice().len(), 2);
        assert!(label_accepts(
            &l,
            &found(InsightKind::Crash, Some("/t/b.py:2"))
        ));
        assert!(!label_accepts(
            &l,
            &found(InsightKind::TestFailure, Some("a.py:1"))
        ));
        let l = label(r#"{"agent": "quality-inspector", "kind": "warning"}"#);
        assert!(label_accepts(&l, &found(InsightKind::Warning, None)));
        assert!(label_accepts(
            &l,
            &found(InsightKind::Warning, Some("x.rs:1"))
        ));
        let l =
            label(r#"{"agent": "error-detective", "kind": "compile_error", "location": "x.rs:1"}"#);
        assert!(!label_accepts(&l, &found(InsightKind::CompileError, None)));

        let dir =
            std::env::temp_dir().join(format!("agora-eval-agents-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("expected.json");
        std::fs::write(
            &bad,
            r#"[{"agent": "quality-inspector", "kind": "compile_error"}]"#,
        )
        .unwrap();
        let err = load_labels(&bad).unwrap_err().to_string();
        assert!(err.contains("belongs to error-detective"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn matching_is_one_to_one_and_maximal() {
        // Two identical labels, one finding: one TP, one FN.
        let l =
            label(r#"{"agent": "error-detective", "kind": "compile_error", "location": "a.rs:1"}"#);
        let f = vec![found(InsightKind::CompileError, Some("a.rs:1:3"))];
        let o = score(&[l.clone(), l.clone()], &f);
        let c = o.per_agent[&Agent::ErrorDetective];
        assert_eq!((c.tp, c.fp, c.fn_), (1, 0, 1));
        // One label, two identical findings: one TP, one FP.
        let f2 = vec![f[0].clone(), f[0].clone()];
        let c = score(std::slice::from_ref(&l), &f2).per_agent[&Agent::ErrorDetective];
        assert_eq!((c.tp, c.fp, c.fn_), (1, 1, 0));
        // A greedy first-fit would give finding 0 to the location-free label and leave the
        // located one unmatched; the maximum matching matches both.
        let any = label(r#"{"agent": "error-detective", "kind": "compile_error"}"#);
        let f3 = vec![
            found(InsightKind::CompileError, Some("a.rs:1")),
            found(InsightKind::CompileError, Some("b.rs:9")),
        ];
        let a = match_labels(&[any, l], &f3);
        assert_eq!(a, vec![Some(1), Some(0)]);
        // Kind and agent must agree; unmatched findings are FPs of their own agent.
        let w = label(r#"{"agent": "quality-inspector", "kind": "warning", "location": "a.rs:1"}"#);
        let o = score(&[w], &f3);
        assert_eq!(o.per_agent[&Agent::QualityInspector].fn_, 1);
        assert_eq!(o.per_agent[&Agent::ErrorDetective].fp, 2);
        assert_eq!(o.extra.len(), 2);
        assert_eq!(o.missed.len(), 1);
    }

    #[test]
    fn precision_recall_arithmetic() {
        let c = Counts {
            tp: 2,
            fp: 1,
            fn_: 3,
        };
        assert_eq!(c.precision(), Some(2.0 / 3.0));
        assert_eq!(c.recall(), Some(0.4));
        assert_eq!(fmt_ratio(c.precision()), "0.67");
        let none = Counts::default();
        assert_eq!(none.precision(), None);
        assert_eq!(none.recall(), None);
        assert_eq!(fmt_ratio(none.recall()), "n/a");
        let only_fp = Counts {
            tp: 0,
            fp: 4,
            fn_: 0,
        };
        assert_eq!(only_fp.precision(), Some(0.0));
        assert_eq!(only_fp.recall(), None);
        let mut sum = c;
        sum.add(only_fp);
        assert_eq!(
            sum,
            Counts {
                tp: 2,
                fp: 5,
                fn_: 3
            }
        );
    }

    #[test]
    fn throughput_is_the_median_trial() {
        let t = Throughput {
            what: "x".into(),
            bytes_per_pass: 1_000_000,
            trials: vec![(10, 1.0), (30, 1.0), (20, 1.0)],
        };
        assert_eq!(t.trial_mb_per_s(), vec![10.0, 20.0, 30.0]);
        assert_eq!(t.mb_per_s(), 20.0);
    }

    #[test]
    fn chunks_split_at_line_ends() {
        let text = "aaaa\nbb\ncccccc\nd\n";
        let chunks = chunks_at_lines(text, 8);
        assert_eq!(chunks, vec!["aaaa\nbb\n", "cccccc\n", "d\n"]);
        assert_eq!(chunks.concat(), text);
        assert!(chunks_at_lines("x".repeat(20).as_str(), 8).len() == 1);
        assert!(chunks_at_lines("", 8).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn missing_tools_are_skipped_and_output_is_captured() {
        let root = Scratch::new("unit").unwrap();
        let mk = |name: &str, run: &str, expected: &str| {
            let d = root.0.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("run.json"), run).unwrap();
            std::fs::write(d.join("expected.json"), expected).unwrap();
        };
        mk(
            "a-missing",
            r#"[{"name": "a-missing", "command": ["agora-no-such-tool"], "probe": ["agora-no-such-tool", "--version"], "hint": "install it"}]"#,
            r#"[{"agent": "error-detective", "kind": "compile_error"}]"#,
        );
        mk(
            "b-shell",
            r#"[{"name": "b-shell", "command": ["sh", "-c", "echo one; echo two >&2; exit 3"], "probe": ["sh", "-c", "echo sh 1.0"]}]"#,
            r#"[{"agent": "error-detective", "kind": "compile_error"}]"#,
        );
        std::fs::create_dir_all(root.0.join("c-empty")).unwrap();
        let results = run_tools(&root.0).unwrap();
        assert_eq!(results.len(), 3);
        match &results[0].status {
            ToolStatus::Skipped(why) => {
                assert!(why.starts_with("tool not found"), "{why}");
                assert!(why.contains("install it"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        match &results[1].status {
            ToolStatus::Ran {
                exit_code,
                log_lines,
                version,
                ..
            } => {
                assert_eq!((*exit_code, *log_lines), (Some(3), 2));
                assert_eq!(version, "sh 1.0");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(results[1].outcome.per_agent[&Agent::ErrorDetective].fn_, 1);
        assert!(matches!(results[2].status, ToolStatus::Skipped(_)));
        let report = AgentEvalReport {
            tools: results,
            ..AgentEvalReport::default()
        };
        let md = render_report(&report);
        assert!(
            md.contains("| a-missing | `agora-no-such-tool` | skipped (tool not found"),
            "{md}"
        );
        assert!(
            md.contains("| error-detective | 0 | 0 | 1 | n/a | 0.00 |"),
            "{md}"
        );
    }

    #[test]
    fn shipped_labels_are_valid() {
        let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/failing-tools");
        let Ok(dirs) = std::fs::read_dir(&tools) else {
            return;
        };
        for d in dirs {
            let d = d.unwrap().path();
            if d.is_dir() {
                let labels = load_labels(&d.join("expected.json")).unwrap();
                assert!(!labels.is_empty(), "{}", d.display());
                let runs: Vec<RunSpec> = load_json(&d.join("run.json")).unwrap();
                assert!(
                    runs.iter().all(|r| !r.command.is_empty()),
                    "{}",
                    d.display()
                );
            }
        }
    }

    /// The full evaluation on this machine's tools and Loghub-2k:
    /// `cargo test -p agora-api --release --lib eval_agents -- --ignored --nocapture`.
    #[test]
    #[ignore = "runs real compilers and test runners and reads Loghub-2k; run in release"]
    fn full_evaluation() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let args = AgentEvalArgs {
            data: root.join(DEFAULT_DATA_DIR),
            tools: root.join(DEFAULT_TOOLS_DIR),
        };
        let report = run(&args).unwrap();
        print_report(&report);
    }
}
