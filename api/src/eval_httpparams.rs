//! `agora eval-analysers --httpparams <csv>`: the Security Guardian on HttpParamsDataset
//! (`payload,length,attack_type,label`), with the measure of `shared/data/README.md`: each
//! payload, percent-encoded as a client sends it and an access log writes it, goes into one
//! combined-format access log line (`GET /search?q=<payload> HTTP/1.1`); that line alone goes
//! through the whole four-agent analysis ([`analyse_all`]); it counts when the Security Guardian
//! raises any insight. Recall per attack type; false positives = share of benign (`norm`) lines
//! with one. The data is read where it lies; nothing is copied.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use agora_domain::logmarket::analysers::{analyse_all, AnalyserConfig, LogText};
use agora_domain::logmarket::insight::{Agent, InsightKind};
use anyhow::Context;

/// Targets of issue 16 on the visible split.
pub const TARGET_SQLI_RECALL: f64 = 0.95;
pub const TARGET_XSS_RECALL: f64 = 0.80;
pub const TARGET_MAX_FALSE_POSITIVE_RATE: f64 = 0.005;
/// Benign values listed in the report when flagged (the rest are counted).
const MAX_LISTED_FALSE_POSITIVES: usize = 20;

/// One labelled payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub payload: String,
    /// `sqli`, `xss`, `cmdi`, `path-traversal`, or `norm`.
    pub attack_type: String,
}

/// Reads the dataset's CSV (`payload` and `attack_type` columns; `label` = `norm` marks benign).
pub fn load(path: &Path) -> anyhow::Result<Vec<Payload>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{} has no {name} column", path.display()))
    };
    let (payload, attack, label) = (col("payload")?, col("attack_type")?, col("label")?);
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record?;
        let get = |i: usize| record.get(i).unwrap_or_default();
        let attack_type = if get(label) == "norm" {
            "norm".to_owned()
        } else {
            get(attack).to_owned()
        };
        out.push(Payload {
            payload: get(payload).to_owned(),
            attack_type,
        });
    }
    Ok(out)
}

/// Percent-encodes every byte outside RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`), as a
/// browser or `curl --data-urlencode` sends a query value and Apache/nginx log it.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The combined-format access log line for one payload.
pub fn access_log_line(payload: &str) -> String {
    format!(
        "203.0.113.7 - - [06/Nov/2025:10:45:00 +0000] \"GET /search?q={} HTTP/1.1\" 200 1043 \
         \"-\" \"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\"",
        percent_encode(payload)
    )
}

/// Per attack type (and `norm`): lines, lines with any Security Guardian insight, and lines
/// whose insights include the kind that names the attack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeCounts {
    pub lines: usize,
    pub flagged: usize,
    pub same_kind: usize,
}

#[derive(Debug, Clone, Default)]
pub struct HttpParamsReport {
    pub by_type: BTreeMap<String, TypeCounts>,
    /// Security Guardian insight kinds raised on benign lines, with counts.
    pub false_positive_kinds: BTreeMap<InsightKind, usize>,
    /// The first benign values flagged.
    pub false_positive_examples: Vec<String>,
    pub seconds: f64,
}

impl HttpParamsReport {
    fn rate(&self, t: &str) -> f64 {
        self.by_type
            .get(t)
            .map_or(0.0, |c| c.flagged as f64 / c.lines.max(1) as f64)
    }

    pub fn meets_targets(&self) -> bool {
        self.rate("sqli") >= TARGET_SQLI_RECALL
            && self.rate("xss") >= TARGET_XSS_RECALL
            && self.rate("norm") <= TARGET_MAX_FALSE_POSITIVE_RATE
    }
}

fn expected_kind(attack_type: &str) -> Option<InsightKind> {
    match attack_type {
        "sqli" => Some(InsightKind::SqlInjection),
        "xss" => Some(InsightKind::Xss),
        "cmdi" => Some(InsightKind::CommandInjection),
        "path-traversal" => Some(InsightKind::PathTraversal),
        _ => None,
    }
}

/// Runs every payload through the analysis, one line at a time.
pub fn evaluate(payloads: &[Payload]) -> HttpParamsReport {
    let config = AnalyserConfig::default();
    let mut report = HttpParamsReport::default();
    let started = Instant::now();
    for p in payloads {
        let line = access_log_line(&p.payload);
        let log = LogText::new(&line);
        let kinds: Vec<InsightKind> = analyse_all(&log, &config)
            .iter()
            .filter(|i| i.agent() == Agent::SecurityGuardian)
            .map(|i| i.kind)
            .collect();
        let c = report.by_type.entry(p.attack_type.clone()).or_default();
        c.lines += 1;
        if !kinds.is_empty() {
            c.flagged += 1;
        }
        if expected_kind(&p.attack_type).is_some_and(|k| kinds.contains(&k)) {
            c.same_kind += 1;
        }
        if p.attack_type == "norm" && !kinds.is_empty() {
            for k in &kinds {
                *report.false_positive_kinds.entry(*k).or_default() += 1;
            }
            if report.false_positive_examples.len() < MAX_LISTED_FALSE_POSITIVES {
                report.false_positive_examples.push(p.payload.clone());
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}

pub fn render(report: &HttpParamsReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| attack type | lines | Security Guardian concern | recall | with the matching kind |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for (t, c) in &report.by_type {
        if t == "norm" {
            continue;
        }
        let _ = writeln!(
            s,
            "| {t} | {} | {} | {:.1} % | {:.1} % |",
            c.lines,
            c.flagged,
            100.0 * c.flagged as f64 / c.lines.max(1) as f64,
            100.0 * c.same_kind as f64 / c.lines.max(1) as f64
        );
    }
    let norm = report.by_type.get("norm").cloned().unwrap_or_default();
    let _ = writeln!(
        s,
        "\nBenign (`norm`) values: {} lines, {} with a Security Guardian concern: false-positive \
         rate {:.2} % (target ≤ {:.1} %).",
        norm.lines,
        norm.flagged,
        100.0 * norm.flagged as f64 / norm.lines.max(1) as f64,
        100.0 * TARGET_MAX_FALSE_POSITIVE_RATE
    );
    if !report.false_positive_kinds.is_empty() {
        let kinds: Vec<String> = report
            .false_positive_kinds
            .iter()
            .map(|(k, n)| format!("{} {n}", crate::eval_agents::kind_id(*k)))
            .collect();
        let _ = writeln!(s, "False positives by kind: {}.", kinds.join(", "));
        let _ = writeln!(
            s,
            "First flagged benign values: {:?}",
            report.false_positive_examples
        );
    }
    let total: usize = report.by_type.values().map(|c| c.lines).sum();
    let _ = writeln!(
        s,
        "Targets (SQLi ≥ {:.0} %, XSS ≥ {:.0} %, FP ≤ {:.1} %): {}. {} lines in {:.1} s.",
        100.0 * TARGET_SQLI_RECALL,
        100.0 * TARGET_XSS_RECALL,
        100.0 * TARGET_MAX_FALSE_POSITIVE_RATE,
        if report.meets_targets() {
            "met"
        } else {
            "not met"
        },
        total,
        report.seconds
    );
    s
}

/// Loads, evaluates and prints; `Ok(false)` when a target is missed.
pub fn run(path: &Path) -> anyhow::Result<bool> {
    let payloads = load(path)?;
    anyhow::ensure!(!payloads.is_empty(), "{} has no payloads", path.display());
    let report = evaluate(&payloads);
    print!("{}", render(&report));
    Ok(report.meets_targets())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_a_client() {
        assert_eq!(percent_encode("a b'<x>/é"), "a%20b%27%3Cx%3E%2F%C3%A9");
        assert_eq!(percent_encode("A-z_0.9~"), "A-z_0.9~");
    }

    #[test]
    fn scores_a_small_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(
            &path,
            "\"payload\",\"length\",\"attack_type\",\"label\"\n\
             \"1' or '1'='1\",\"12\",\"sqli\",\"anom\"\n\
             \"<script>alert(1)</script>\",\"25\",\"xss\",\"anom\"\n\
             \"maria o'neil\",\"12\",\"norm\",\"norm\"\n\
             \"calle mayor 5, 2-b\",\"18\",\"norm\",\"norm\"\n",
        )
        .unwrap();
        let payloads = load(&path).unwrap();
        assert_eq!(payloads.len(), 4);
        let report = evaluate(&payloads);
        assert_eq!(report.by_type["sqli"].flagged, 1);
        assert_eq!(report.by_type["xss"].same_kind, 1);
        assert_eq!(report.by_type["norm"].flagged, 0);
        assert!(render(&report).contains("| sqli | 1 | 1 | 100.0 % | 100.0 % |"));
    }
}
