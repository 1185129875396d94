//! `agora bench`: the write path (raw INSERT baselines, commands, commands with every
//! projection, batched ingest; see [`write_path`]) per backend and client count in one run,
//! and the analysis over crafted worst-case logs (`--adversarial-logs`).
//! docs/BENCHMARKS.md records results and the command that reproduces them.

pub mod capsules;
pub mod write_path;

use std::time::{Duration, Instant};

use agora_commands::{pgadmin, PoolSizes, Store, StoreLocation};
use anyhow::Context;
use clap::Args;

use write_path::{bench_backend, Load, Row, Scenario};

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// PostgreSQL server to create a scratch database on (dropped afterwards).
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub postgres_url: String,
    /// Skip PostgreSQL.
    #[arg(long)]
    pub no_postgres: bool,
    /// Skip SQLite.
    #[arg(long)]
    pub no_sqlite: bool,
    /// Events per client in each measured scenario (ignored with `--duration`).
    #[arg(long, default_value_t = 1000)]
    pub ops_per_client: usize,
    /// Run each scenario for this long instead (`10`, `10s`, `500ms`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Scenarios to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// One JSON object a line per measured row instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Client counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub clients: Vec<usize>,
    /// Instead of the database runs: time the log analysis over crafted worst-case logs of
    /// `DEFAULT_MAX_LOG_BYTES` each (no database needed).
    #[arg(long)]
    pub adversarial_logs: bool,
    /// Instead of the database runs: single-thread throughput of the Error Detective, the
    /// four-agent pass and the priced analysis over a LogChunks folder's logs.
    #[arg(long, value_name = "FOLDER")]
    pub logchunks: Option<std::path::PathBuf>,
    /// Instead of the write path: the capsule registry's submission of 1 MiB bundles, search
    /// over 10,000 capsules with typos, and dependency resolution of 200-node graphs.
    #[arg(long)]
    pub capsules: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(secs) = s.strip_suffix('s') {
        (secs, 1.0)
    } else {
        (s, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v * scale <= 3_600.0 => Ok(Duration::from_secs_f64(v * scale)),
        _ => Err(format!(
            "`{s}` is not a duration between 1ms and 1h (`10`, `10s`, `500ms`)"
        )),
    }
}

/// Times each analysis over the crafted logs is repeated (the best run is reported).
const ADVERSARIAL_RUNS: usize = 3;

/// Letters only, distinct per `i` (no digits: nothing is masked as a number).
fn letters(mut i: usize) -> String {
    let mut w = String::new();
    loop {
        w.push(char::from(b'a' + (i % 26) as u8));
        i /= 26;
        if i == 0 {
            return w;
        }
    }
}

/// Appends `next(i)` for i = 0, 1, ... while the text stays within `bytes`.
fn fill(bytes: usize, mut next: impl FnMut(usize) -> String) -> String {
    let mut out = String::with_capacity(bytes);
    for i in 0.. {
        let piece = next(i);
        if out.len() + piece.len() > bytes {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// The crafted logs, each at most `bytes` long: (name, text).
pub fn adversarial_logs(bytes: usize) -> Vec<(&'static str, String)> {
    const LONG_LINE_BYTES: usize = 64 * 1024;
    vec![
        (
            "one line of 1 MiB",
            fill(bytes, |i| format!("{} ", letters(i % 5000))),
        ),
        (
            "every line a distinct template",
            fill(bytes, |i| {
                format!(
                    "svc {} {} {} {}\n",
                    letters(i),
                    letters(i + 7),
                    letters(i + 13),
                    letters(i + 29)
                )
            }),
        ),
        (
            "distinct templates, variable first tokens",
            fill(bytes, |i| {
                format!(
                    "{i} {i} {} {} {}\n",
                    letters(i),
                    letters(i + 3),
                    letters(i + 5)
                )
            }),
        ),
        (
            "one token repeated",
            fill(bytes, |i| {
                if i % 40 == 39 {
                    "error\n".to_string()
                } else {
                    "error ".to_string()
                }
            }),
        ),
        (
            "lines of 64 KiB",
            fill(bytes, |i| {
                let mut line = fill(LONG_LINE_BYTES - 1, |j| {
                    format!("{} ", letters(i * 7919 + j))
                });
                line.push('\n');
                line
            }),
        ),
        (
            "short lines (100,000 and more)",
            fill(bytes, |i| format!("{}\n", letters(i % 97))),
        ),
        (
            "CI log: colours and progress overwrites on every line",
            fill(bytes, |i| {
                format!(
                    "\u{1b}[1m\u{1b}[31m{} {}%\r\u{1b}[0K{} error\u{1b}[0m\r\n",
                    letters(i),
                    i % 100,
                    letters(i + 1)
                )
            }),
        ),
        ("failing CI step: every line a diagnostic", {
            let mut log = "$ make\n".to_string();
            log.push_str(&fill(bytes - 64, |i| {
                format!(
                    "src/{}.c:{i}:1: error: undeclared '{}'\n",
                    letters(i),
                    letters(i + 3)
                )
            }));
            log.push_str("The command \"make\" exited with 2.\n");
            log
        }),
        (
            "numbers, hex and paths",
            fill(bytes, |i| {
                format!(
                    "GET /srv/app/{i}/lib/mod_{i}.so 0x{i:08x}deadbeef {i}.{i} ms \
                     id={i:x} user=u{i} ip=10.{}.{}.{} took {i}ms\n",
                    i % 256,
                    (i / 256) % 256,
                    i % 7
                )
            }),
        ),
    ]
}

/// One crafted log's timing.
#[derive(Clone, Debug)]
pub struct AdversarialResult {
    pub name: &'static str,
    pub bytes: usize,
    pub lines: usize,
    pub templates: usize,
    pub best_ms: f64,
}

/// Times `analysis::analyse` over [`adversarial_logs`] and prints a table (milliseconds per
/// MiB: the stated bound is under 1,000).
pub fn run_adversarial() -> anyhow::Result<Vec<AdversarialResult>> {
    use agora_domain::logmarket::analysis::{self, MarketConfig, Stage, DEFAULT_MAX_LOG_BYTES};
    let config = MarketConfig::default();
    let mut out = Vec::new();
    println!(
        "| input | bytes | lines | templates | best of {ADVERSARIAL_RUNS} (ms) | ms per MiB |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, text) in adversarial_logs(DEFAULT_MAX_LOG_BYTES) {
        let mut best = f64::INFINITY;
        let mut templates = 0;
        for _ in 0..ADVERSARIAL_RUNS {
            let started = Instant::now();
            let a = analysis::analyse(&text, Stage::Runtime, &config, &|_| false)
                .with_context(|| format!("analysing {name}"))?;
            best = best.min(started.elapsed().as_secs_f64() * 1e3);
            templates = a.templates.len();
        }
        let mib = text.len() as f64 / (1024.0 * 1024.0);
        let r = AdversarialResult {
            name,
            bytes: text.len(),
            lines: text.lines().count(),
            templates,
            best_ms: best,
        };
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} |",
            r.name,
            r.bytes,
            r.lines,
            r.templates,
            r.best_ms,
            r.best_ms / mib
        );
        out.push(r);
    }
    Ok(out)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.adversarial_logs {
        tokio::task::spawn_blocking(run_adversarial).await??;
        return Ok(());
    }
    if let Some(folder) = args.logchunks.clone() {
        let rows = tokio::task::spawn_blocking({
            let folder = folder.clone();
            move || crate::eval_logchunks::throughput(&folder)
        })
        .await??;
        crate::eval_logchunks::print_throughput(&rows, &folder);
        return Ok(());
    }
    if args.capsules {
        return run_capsules(&args).await;
    }
    let load = match args.duration {
        Some(d) => Load::Duration(d),
        None => Load::Ops(args.ops_per_client),
    };
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    let mut rows = Vec::new();
    if !args.no_postgres {
        let name = format!("agora_bench_{}", std::process::id());
        let url = pgadmin::create_database(&args.postgres_url, &name)
            .await
            .context(
                "creating the benchmark database (is PostgreSQL running? see --postgres-url)",
            )?;
        let outcome = on_fresh_store(
            "postgres",
            StoreLocation::Postgres { url },
            &args,
            load,
            &scenarios,
        )
        .await;
        pgadmin::drop_database(&args.postgres_url, &name).await?;
        rows.extend(outcome?);
    }
    if !args.no_sqlite {
        let dir = std::env::temp_dir().join(format!("agora_bench_{}", std::process::id()));
        let location = StoreLocation::Sqlite {
            path: dir.join("bench.db"),
        };
        let outcome = on_fresh_store("sqlite", location, &args, load, &scenarios).await;
        let _ = std::fs::remove_dir_all(&dir);
        rows.extend(outcome?);
    }
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        print_report(&rows, load);
    }
    Ok(())
}

/// `--capsules`: each scenario per backend on a fresh store, then the store-free resolution.
async fn run_capsules(args: &BenchArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    if !args.no_postgres {
        let name = format!("agora_bench_capsules_{}", std::process::id());
        let url = pgadmin::create_database(&args.postgres_url, &name)
            .await
            .context(
                "creating the benchmark database (is PostgreSQL running? see --postgres-url)",
            )?;
        let outcome = async {
            let store =
                Store::connect(&StoreLocation::Postgres { url }, &PoolSizes::default()).await?;
            store.migrate().await?;
            let rows = capsules::bench_capsules("postgres", &store).await;
            store.close().await;
            rows
        }
        .await;
        pgadmin::drop_database(&args.postgres_url, &name).await?;
        rows.extend(outcome?);
    }
    if !args.no_sqlite {
        let dir = std::env::temp_dir().join(format!("agora_bench_capsules_{}", std::process::id()));
        let location = StoreLocation::Sqlite {
            path: dir.join("bench.db"),
        };
        let outcome = async {
            let store = Store::connect(&location, &PoolSizes::default()).await?;
            store.migrate().await?;
            let rows = capsules::bench_capsules("sqlite", &store).await;
            store.close().await;
            rows
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        rows.extend(outcome?);
    }
    rows.extend(tokio::task::spawn_blocking(capsules::bench_memory).await??);
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        capsules::print(&rows);
    }
    Ok(())
}

async fn on_fresh_store(
    backend: &'static str,
    location: StoreLocation,
    args: &BenchArgs,
    load: Load,
    scenarios: &[Scenario],
) -> anyhow::Result<Vec<Row>> {
    let store = Store::connect(&location, &PoolSizes::default()).await?;
    store.migrate().await?;
    let rows = bench_backend(backend, &store, &args.clients, load, scenarios).await;
    store.close().await;
    rows
}

fn print_report(rows: &[Row], load: Load) {
    let load = match load {
        Load::Ops(n) => format!("{n} events per client"),
        Load::Duration(d) => format!("{:.1} s per scenario", d.as_secs_f64()),
    };
    println!(
        "\nagora bench: {load}; events/s committed; ratios against the raw INSERTs of the same \
         run; lag = projection commit time minus event recording time\n"
    );
    println!("| backend | clients | scenario | events/s | × raw single | × raw multi | op p50 ms | op p99 ms | lag p50 ms | lag p99 ms | lag max ms | max batch | read from memory |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let ratio = |r: Option<f64>| r.map_or_else(|| "".to_owned(), |r| format!("{r:.2}"));
    for r in rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {} | {} |",
            r.backend,
            r.clients,
            r.scenario,
            r.events_per_s,
            ratio(r.ratio_raw_single),
            ratio(r.ratio_raw_multi),
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.lag_p50_ms,
            r.lag_p99_ms,
            r.lag_max_ms,
            r.append_max_batch,
            r.reads_from_memory
                .map_or_else(String::new, |m| format!("{:.0} %", m * 100.0))
        );
    }
}

/// p50, p99 and max of `values` (nearest-rank); zeros when empty.
pub fn percentiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| {
        let idx = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[idx]
    };
    (rank(0.50), rank(0.99), values[values.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(v), (50.0, 99.0, 100.0));
        assert_eq!(percentiles(vec![]), (0.0, 0.0, 0.0));
        assert_eq!(percentiles(vec![7.0]), (7.0, 7.0, 7.0));
    }
}
