//! Times the priced analysis (`analysis::analyse`) and the four-agent pass (`analyse_all`) over
//! a folder of plain-text logs, single thread, as `agora bench --logchunks` does over the
//! LogChunks logs (each log's last 900,000 bytes), without building the api crate. Also dumps
//! every analysis as JSON lines, to compare two builds' results byte for byte.
//!
//! ```sh
//! # the LogChunks logs, decompressed once (the domain crate reads no gzip)
//! (cd ../shared/data/logchunks/logs && find . -name '*.gz' | while read f; do
//!    mkdir -p "/tmp/lc-plain/$(dirname "$f")"; gunzip -c "$f" > "/tmp/lc-plain/${f%.gz}"; done)
//! cargo run --release -p agora-domain --example priced -- time /tmp/lc-plain 3
//! cargo run --release -p agora-domain --example priced -- once /tmp/lc-plain     # for callgrind
//! cargo run --release -p agora-domain --example priced -- dump /tmp/lc-plain > analyses.jsonl
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use agora_domain::logmarket::analysers::{analyse_all, AnalyserConfig, LogText};
use agora_domain::logmarket::analysis::{self, MarketConfig, Stage};

/// Each log's last this many bytes are analysed (the LogChunks README's rule, as in the api's
/// `eval_logchunks::TAIL_BYTES`).
const TAIL_BYTES: usize = 900_000;

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn load(dir: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut paths = Vec::new();
    files(dir, &mut paths)?;
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p)?;
            let tail = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
            Ok((p, String::from_utf8_lossy(tail).into_owned()))
        })
        .collect()
}

fn priced(log: &str) -> Option<analysis::Analysis> {
    analysis::analyse(log, Stage::Test, &MarketConfig::default(), &|_| false).ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: priced time|once|dump <folder of logs> [runs]";
    let (mode, dir) = match (args.get(1), args.get(2)) {
        (Some(m), Some(d)) => (m.as_str(), Path::new(d)),
        _ => return Err(usage.into()),
    };
    let logs = load(dir)?;
    let bytes: usize = logs.iter().map(|(_, l)| l.len()).sum();
    match mode {
        "once" => {
            for (_, log) in &logs {
                std::hint::black_box(priced(log));
            }
        }
        "dump" => {
            for (path, log) in &logs {
                let json = serde_json::to_string(&priced(log))?;
                println!("{}\t{json}", path.display());
            }
        }
        "time" => {
            let runs: usize = args.get(3).map_or(Ok(3), |r| r.parse())?;
            let config = AnalyserConfig::default();
            let best = |f: &dyn Fn(&str)| {
                (0..runs)
                    .map(|_| {
                        let started = Instant::now();
                        for (_, log) in &logs {
                            f(log);
                        }
                        started.elapsed().as_secs_f64()
                    })
                    .fold(f64::INFINITY, f64::min)
            };
            let agents = best(&|l| {
                std::hint::black_box(analyse_all(&LogText::new(l), &config));
            });
            let priced = best(&|l| {
                std::hint::black_box(priced(l));
            });
            println!(
                "{} logs, {:.1} MB, best of {runs}:",
                logs.len(),
                bytes as f64 / 1e6
            );
            for (pass, s) in [("analyse_all", agents), ("analysis::analyse", priced)] {
                println!("{pass:20} {s:.3} s  {:.1} MB/s", bytes as f64 / 1e6 / s);
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
