//! `agora eval-analysers --logchunks <folder>`: measures the Error Detective's failure locator on
//! LogChunks (Brandt et al., MSR 2020): real failed Travis CI build logs, each with the chunk a
//! person labelled as the reason the build failed.
//!
//! The measure is the data set README's, applied exactly:
//! * the log (`logs/<Log>.gz`, read as shipped with `flate2`) goes to the analyser whole: its last
//!   [`TAIL_BYTES`] bytes;
//! * an insight **locates the failure** when, after ANSI codes are removed, white space folded and
//!   case ignored, the first [`CHUNK_PREFIX_CHARS`] characters of a (non-empty) chunk line are
//!   found in the insight's text (its title or excerpt), or the insight's `pattern` (its title)
//!   occurs in the chunk;
//! * reported per language and overall: share of logs located by any insight, by one of the first
//!   three, and the median number of Error Detective insights a log.
//!
//! The folder is read where it lies; nothing is copied. Any folder in the LogChunks layout works
//! (`build-failure-reason/<Language>/<repo>.xml` + `logs/<Language>/<repo>/failed/<id>.log.gz`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use agora_domain::logmarket::analysers::{error, AnalyserConfig, LogText};
use agora_domain::logmarket::insight::Insight;
use anyhow::Context;

/// The analyser sees the last this many bytes of each log (the README's rule).
pub const TAIL_BYTES: usize = 900_000;
/// How much of a chunk line must be found in an insight's text.
pub const CHUNK_PREFIX_CHARS: usize = 60;
/// "In the first three insights."
pub const TOP: usize = 3;

/// One labelled example: the log's path (relative to `logs/`, without `.gz`) and its chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub language: String,
    pub log: String,
    pub chunk: String,
}

/// One example's outcome.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub language: String,
    pub log: String,
    /// 0-based index of the first Error Detective insight that locates the failure.
    pub first_hit: Option<usize>,
    pub insights: usize,
    /// The insights' titles (line and first 100 characters), for `--per-log`.
    pub titles: Vec<String>,
    pub bytes: usize,
}

/// Reads every example of a LogChunks folder, languages and files in name order.
pub fn load_examples(root: &Path) -> anyhow::Result<Vec<Example>> {
    let labels = root.join("build-failure-reason");
    let mut out = Vec::new();
    for lang in sorted_dir(&labels)? {
        if !lang.is_dir() {
            continue;
        }
        let language = file_name(&lang);
        for xml in sorted_dir(&lang)? {
            if xml.extension().and_then(|e| e.to_str()) != Some("xml") {
                continue;
            }
            let text = std::fs::read_to_string(&xml)
                .with_context(|| format!("reading {}", xml.display()))?;
            for (log, chunk) in parse_examples(&text) {
                out.push(Example {
                    language: language.clone(),
                    log,
                    chunk,
                });
            }
        }
    }
    Ok(out)
}

fn sorted_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `(Log, Chunk)` pairs of one LogChunks XML file (its `<Example>` elements; entities
/// decoded). The files are flat and machine-written, so a tag scan is enough.
pub fn parse_examples(xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Example>") {
        let after = &rest[start + "<Example>".len()..];
        let end = after.find("</Example>").unwrap_or(after.len());
        let body = &after[..end];
        if let (Some(log), Some(chunk)) = (element(body, "Log"), element(body, "Chunk")) {
            out.push((decode_entities(log.trim()), decode_entities(chunk)));
        }
        rest = &after[end..];
    }
    out
}

fn element<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let s = body.find(&open)? + open.len();
    let e = body[s..].find(&close)? + s;
    Some(&body[s..e])
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(semi) = tail.bytes().take(12).position(|b| b == b';') else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let name = &tail[1..semi];
        let decoded = match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => name
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The log's last [`TAIL_BYTES`] bytes, read through gzip, as text (invalid UTF-8 replaced).
pub fn read_log_tail(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::io::BufReader::new(file))
        .read_to_end(&mut bytes)
        .with_context(|| format!("decompressing {}", path.display()))?;
    let tail = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
    Ok(String::from_utf8_lossy(tail).into_owned())
}

/// ANSI codes removed (with or without their ESC: the chunks lost it, leaving `[31m`), white
/// space folded to one space, lower case.
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut space = true; // no leading space
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI `ESC [ params final` or a two-character escape.
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&p) = chars.peek() {
                    chars.next();
                    if ('@'..='~').contains(&p) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        if c == '[' {
            // A bare SGR / erase code the ESC was lost from: `[0m`, `[1;31m`, `[K`, `[2K`.
            let look: String = chars.clone().take(12).collect();
            let digits = look
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ';')
                .count();
            let fin = look.chars().nth(digits);
            if matches!(fin, Some('m') if digits > 0) || matches!(fin, Some('K')) {
                for _ in 0..=digits {
                    chars.next();
                }
                continue;
            }
        }
        if c.is_whitespace() {
            if !space {
                out.push(' ');
                space = true;
            }
            continue;
        }
        space = false;
        out.extend(c.to_lowercase());
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The chunk prepared once: its whole normalised text and its non-empty lines' prefixes.
pub struct Chunk {
    whole: String,
    prefixes: Vec<String>,
}

impl Chunk {
    pub fn new(chunk: &str) -> Self {
        let prefixes = chunk
            .lines()
            .map(normalise)
            .filter(|l| !l.is_empty())
            .map(|l| l.chars().take(CHUNK_PREFIX_CHARS).collect())
            .collect();
        Self {
            whole: normalise(chunk),
            prefixes,
        }
    }

    /// The README's rule for one insight.
    pub fn located_by(&self, insight: &Insight) -> bool {
        let title = normalise(&insight.title);
        let excerpt = normalise(&insight.excerpt);
        let cited = self
            .prefixes
            .iter()
            .any(|p| title.contains(p.as_str()) || excerpt.contains(p.as_str()));
        cited || (!title.is_empty() && self.whole.contains(&title))
    }
}

/// Runs the Error Detective over one example.
pub fn evaluate(root: &Path, ex: &Example) -> anyhow::Result<Outcome> {
    let path = root.join("logs").join(format!("{}.gz", ex.log));
    let text = read_log_tail(&path)?;
    let insights = error::analyse(&LogText::new(&text), &AnalyserConfig::default());
    let chunk = Chunk::new(&ex.chunk);
    Ok(Outcome {
        language: ex.language.clone(),
        log: ex.log.clone(),
        first_hit: insights.iter().position(|i| chunk.located_by(i)),
        insights: insights.len(),
        titles: insights
            .iter()
            .map(|i| {
                format!(
                    "{}:{}",
                    i.log_line,
                    i.title.chars().take(100).collect::<String>()
                )
            })
            .collect(),
        bytes: text.len(),
    })
}

/// Totals over a set of outcomes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub logs: usize,
    pub located: usize,
    pub located_top: usize,
    pub median_insights: f64,
}

pub fn summarise<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Summary {
    let mut s = Summary::default();
    let mut counts = Vec::new();
    for o in outcomes {
        s.logs += 1;
        s.located += usize::from(o.first_hit.is_some());
        s.located_top += usize::from(o.first_hit.is_some_and(|i| i < TOP));
        counts.push(o.insights);
    }
    counts.sort_unstable();
    s.median_insights = match counts.len() {
        0 => 0.0,
        n if n % 2 == 1 => counts[n / 2] as f64,
        n => (counts[n / 2 - 1] + counts[n / 2]) as f64 / 2.0,
    };
    s
}

fn pct(n: usize, d: usize) -> f64 {
    100.0 * n as f64 / d.max(1) as f64
}

/// Evaluates the folder and prints the table; `Ok(true)` when the visible-set targets hold
/// (≥ 85 % located, ≥ 75 % in the first three, median ≤ 5 insights).
pub fn run(root: &Path, verbose: bool) -> anyhow::Result<bool> {
    anyhow::ensure!(
        root.join("build-failure-reason").is_dir(),
        "{} is not a LogChunks folder (no build-failure-reason/)",
        root.display()
    );
    let examples = load_examples(root)?;
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(examples.len());
    for ex in &examples {
        let o = evaluate(root, ex)?;
        if verbose {
            println!(
                "{}\t{}\t{}\t{}",
                o.log,
                o.first_hit.map_or("-".to_string(), |i| (i + 1).to_string()),
                o.insights,
                o.titles.join(" ‖ ")
            );
        }
        outcomes.push(o);
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut by_lang: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in &outcomes {
        by_lang.entry(&o.language).or_default().push(o);
    }
    println!(
        "| language | logs | located (any insight) | located (first three) | median insights |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (lang, os) in &by_lang {
        let s = summarise(os.iter().copied());
        println!(
            "| {lang} | {} | {:.1} % | {:.1} % | {} |",
            s.logs,
            pct(s.located, s.logs),
            pct(s.located_top, s.logs),
            s.median_insights
        );
    }
    let all = summarise(&outcomes);
    let bytes: usize = outcomes.iter().map(|o| o.bytes).sum();
    println!(
        "| **all** | {} | {:.1} % | {:.1} % | {} |",
        all.logs,
        pct(all.located, all.logs),
        pct(all.located_top, all.logs),
        all.median_insights
    );
    println!(
        "\n{} logs, {:.1} MB read and analysed in {:.1} s",
        all.logs,
        bytes as f64 / 1e6,
        seconds
    );
    Ok(pct(all.located, all.logs) >= 85.0
        && pct(all.located_top, all.logs) >= 75.0
        && all.median_insights <= 5.0)
}

/// One throughput row: a pass over every log of the folder, single thread.
#[derive(Clone, Debug)]
pub struct Throughput {
    pub pass: &'static str,
    pub bytes: usize,
    pub best_seconds: f64,
}

impl Throughput {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.best_seconds.max(1e-9) / 1e6
    }
}

/// Passes timed by [`throughput`] (best of this many).
pub const THROUGHPUT_RUNS: usize = 3;

/// Times, single-threaded over the LogChunks logs as the analyser gets them (last
/// [`TAIL_BYTES`] each, read before timing): the Error Detective alone, the four-agent pass
/// (`analyse_all`) and the priced analysis (`analysis::analyse`, stage `test`, with template
/// mining), best of [`THROUGHPUT_RUNS`].
pub fn throughput(root: &Path) -> anyhow::Result<Vec<Throughput>> {
    use agora_domain::logmarket::analysers::analyse_all;
    use agora_domain::logmarket::analysis::{self, MarketConfig, Stage};
    let examples = load_examples(root)?;
    let mut logs = Vec::with_capacity(examples.len());
    for ex in &examples {
        logs.push(read_log_tail(
            &root.join("logs").join(format!("{}.gz", ex.log)),
        )?);
    }
    let bytes: usize = logs.iter().map(String::len).sum();
    let config = AnalyserConfig::default();
    let market = MarketConfig::default();
    let time = |f: &dyn Fn(&str)| {
        (0..THROUGHPUT_RUNS)
            .map(|_| {
                let started = Instant::now();
                for l in &logs {
                    f(l);
                }
                started.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let mut out = vec![
        Throughput {
            pass: "Error Detective (`error::analyse`)",
            bytes,
            best_seconds: time(&|l| {
                std::hint::black_box(error::analyse(&LogText::new(l), &config));
            }),
        },
        Throughput {
            pass: "four agents (`analyse_all`)",
            bytes,
            best_seconds: time(&|l| {
                std::hint::black_box(analyse_all(&LogText::new(l), &config));
            }),
        },
    ];
    let refused = std::cell::Cell::new(0usize);
    let priced = time(&|l| {
        if analysis::analyse(l, Stage::Test, &market, &|_| false).is_err() {
            refused.set(refused.get() + 1);
        }
    });
    anyhow::ensure!(
        refused.get() == 0,
        "the priced analysis refused {} logs",
        refused.get()
    );
    out.push(Throughput {
        pass: "priced analysis (`analysis::analyse`, stage test)",
        bytes,
        best_seconds: priced,
    });
    Ok(out)
}

/// Prints [`throughput`] as a table.
pub fn print_throughput(rows: &[Throughput], logs_dir: &Path) {
    println!(
        "LogChunks logs in {} (last {TAIL_BYTES} bytes each), single thread, best of {THROUGHPUT_RUNS}:\n",
        logs_dir.display()
    );
    println!("| pass | MB | best (s) | MB/s per core |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.2} | {:.1} |",
            r.pass,
            r.bytes as f64 / 1e6,
            r.best_seconds,
            r.mb_per_s()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_domain::logmarket::insight::{InsightKind, Severity};

    fn insight(title: &str, excerpt: &str) -> Insight {
        Insight {
            kind: InsightKind::TestFailure,
            severity: Severity::High,
            title: title.into(),
            location: None,
            log_line: 1,
            excerpt: excerpt.into(),
            impact: String::new(),
            root_cause: None,
            fix: String::new(),
            details: Default::default(),
        }
    }

    #[test]
    fn parses_examples_and_entities() {
        let xml = "<?xml version=\"1.0\"?>\n<Examples>\n  <Example>\n    \
                   <Log>Go/a@b/failed/1.log</Log>\n    <Keywords>x</Keywords>\n    \
                   <Chunk>--- FAIL: TestX\n    x_test.go:9: got 1 &gt; 0 &amp;&#38; &lt;ok&gt;</Chunk>\n  \
                   </Example>\n  <Example><Log>Go/a@b/failed/2.log</Log><Chunk>y</Chunk></Example>\n</Examples>";
        let ex = parse_examples(xml);
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].0, "Go/a@b/failed/1.log");
        assert_eq!(
            ex[0].1,
            "--- FAIL: TestX\n    x_test.go:9: got 1 > 0 && <ok>"
        );
        assert_eq!(ex[1], ("Go/a@b/failed/2.log".into(), "y".into()));
    }

    #[test]
    fn normalises_ansi_space_and_case() {
        assert_eq!(
            normalise("\u{1b}[1m\u{1b}[31mE   Assert\tFailed\u{1b}[0m  "),
            "e assert failed"
        );
        // Chunks lost the ESC byte: the bare codes go too, other brackets stay.
        assert_eq!(normalise("[1m[31mE  x[0m [K[2K"), "e x");
        assert_eq!(normalise("a[0] [mid] [3, 4]m"), "a[0] [mid] [3, 4]m");
    }

    #[test]
    fn matching_rule() {
        let chunk = Chunk::new(
            "\n[31mtests/test_a.py[0m:11: AssertionError   with a very long tail that goes past sixty characters\n",
        );
        // The chunk line's first 60 characters in the excerpt.
        assert!(chunk.located_by(&insight(
            "Test failure",
            "TESTS/test_a.py:11:   AssertionError with a very long tail that goes past"
        )));
        // The title occurs in the chunk.
        assert!(chunk.located_by(&insight("AssertionError", "elsewhere")));
        assert!(!chunk.located_by(&insight("Build failed", "make: *** Error 1")));
        // Empty chunk lines never match everything.
        assert!(!Chunk::new("\n\n").located_by(&insight("", "anything")));
    }

    #[test]
    fn summary_median_and_top_three() {
        let o = |hit: Option<usize>, n| Outcome {
            language: "X".into(),
            log: String::new(),
            first_hit: hit,
            insights: n,
            titles: Vec::new(),
            bytes: 0,
        };
        let s = summarise(&[o(Some(0), 2), o(Some(4), 6), o(None, 3), o(Some(2), 9)]);
        assert_eq!((s.logs, s.located, s.located_top), (4, 3, 2));
        assert_eq!(s.median_insights, 4.5);
    }

    /// Runs on the shared data when it is present (skips otherwise).
    #[test]
    fn visible_logchunks_load_when_present() {
        let root = Path::new("../../shared/data/logchunks");
        if !root.is_dir() {
            return;
        }
        let ex = load_examples(root).unwrap();
        assert!(!ex.is_empty());
        assert!(ex.iter().all(|e| !e.chunk.trim().is_empty()));
    }
}
