//! `agora bench`: command throughput through the cqrs-es path next to a raw INSERT baseline on
//! the same database in the same run, and projection lag while the writers run.
//! docs/BENCHMARKS.md records results and the command that reproduces them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_commands::store::StoredEvent;
use agora_commands::{
    pgadmin, CommandBus, CommandMetadata, CommitSignal, PoolSizes, Store, StoreLocation,
};
use agora_domain::ledger::{AccountId, JournalEntry, LedgerCommand, Posting};
use agora_domain::money::{Currency, Money};
use agora_projections::engine::{BatchObserver, ProjectionRunner};
use agora_projections::ledger::LedgerProjection;
use anyhow::Context;
use chrono::Utc;
use clap::Args;
use futures::future::try_join_all;
use serde_json::json;
use tokio::sync::watch;

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
    /// Operations per client in each measured run.
    #[arg(long, default_value_t = 1000)]
    pub ops_per_client: usize,
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

/// One measured run.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub backend: &'static str,
    pub clients: usize,
    pub raw_events_per_s: f64,
    /// Commands with no projection running (the write path alone).
    pub command_only_events_per_s: f64,
    /// Commands while the ledger projection follows the log.
    pub command_events_per_s: f64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
}

impl RunResult {
    pub fn ratio_alone(&self) -> f64 {
        self.command_only_events_per_s / self.raw_events_per_s
    }

    pub fn ratio_projected(&self) -> f64 {
        self.command_events_per_s / self.raw_events_per_s
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.adversarial_logs {
        tokio::task::spawn_blocking(run_adversarial).await??;
        return Ok(());
    }
    if let Some(folder) = args.logchunks {
        let rows = tokio::task::spawn_blocking({
            let folder = folder.clone();
            move || crate::eval_logchunks::throughput(&folder)
        })
        .await??;
        crate::eval_logchunks::print_throughput(&rows, &folder);
        return Ok(());
    }
    let mut results = Vec::new();
    if !args.no_postgres {
        let name = format!("agora_bench_{}", std::process::id());
        let url = pgadmin::create_database(&args.postgres_url, &name)
            .await
            .context(
                "creating the benchmark database (is PostgreSQL running? see --postgres-url)",
            )?;
        let outcome = bench_backend("postgres", StoreLocation::Postgres { url }, &args).await;
        pgadmin::drop_database(&args.postgres_url, &name).await?;
        results.extend(outcome?);
    }
    if !args.no_sqlite {
        let dir = std::env::temp_dir().join(format!("agora_bench_{}", std::process::id()));
        let location = StoreLocation::Sqlite {
            path: dir.join("bench.db"),
        };
        let outcome = bench_backend("sqlite", location, &args).await;
        let _ = std::fs::remove_dir_all(&dir);
        results.extend(outcome?);
    }
    print_report(&results, &args);
    Ok(())
}

fn print_report(results: &[RunResult], args: &BenchArgs) {
    println!(
        "\nagora bench: {} ops per client; events/s committed; lag = projection commit time minus event recorded time\n",
        args.ops_per_client
    );
    println!("| backend | clients | raw INSERT ev/s | commands ev/s | ratio | commands + projection ev/s | ratio | lag p50 ms | lag p99 ms | lag max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} |",
            r.backend,
            r.clients,
            r.raw_events_per_s,
            r.command_only_events_per_s,
            r.ratio_alone(),
            r.command_events_per_s,
            r.ratio_projected(),
            r.lag_p50_ms,
            r.lag_p99_ms,
            r.lag_max_ms
        );
    }
}

async fn bench_backend(
    backend: &'static str,
    location: StoreLocation,
    args: &BenchArgs,
) -> anyhow::Result<Vec<RunResult>> {
    let store = Store::connect(&location, &PoolSizes::default()).await?;
    store.migrate().await?;
    create_raw_table(&store).await?;
    let mut out = Vec::new();
    for &clients in &args.clients {
        let raw = raw_inserts(&store, clients, args.ops_per_client).await?;
        let (alone, _) = commands(&store, clients, args.ops_per_client, false).await?;
        let (cmd, lags) = commands(&store, clients, args.ops_per_client, true).await?;
        let (p50, p99, max) = percentiles(lags);
        out.push(RunResult {
            backend,
            clients,
            raw_events_per_s: raw,
            command_only_events_per_s: alone,
            command_events_per_s: cmd,
            lag_p50_ms: p50,
            lag_p99_ms: p99,
            lag_max_ms: max,
        });
        eprintln!(
            "{backend} clients={clients}: raw {raw:.0}/s, commands {cmd:.0}/s, lag p99 {p99:.1} ms"
        );
    }
    store.close().await;
    Ok(out)
}

/// A table of the same shape as `events` (columns, defaults, identity, keys; no triggers).
async fn create_raw_table(store: &Store) -> anyhow::Result<()> {
    if let Some(pool) = store.pg_pool() {
        sqlx::query("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
            .execute(pool)
            .await?;
    }
    if let Some(pool) = store.sqlite_pool() {
        sqlx::query(
            "CREATE TABLE raw_events (aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, \
             sequence INTEGER NOT NULL, event_type TEXT NOT NULL, event_version TEXT NOT NULL, \
             payload TEXT NOT NULL, metadata TEXT NOT NULL, global_position INTEGER, \
             recorded_at_us INTEGER NOT NULL DEFAULT 0, \
             PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

fn sample_command(i: usize) -> anyhow::Result<LedgerCommand> {
    let cents = 100 + (i as i64 % 9_900);
    let amount = Money::from_cents(cents)?;
    Ok(LedgerCommand::Record {
        currency: Currency::usd(),
        postings: vec![
            Posting::new(
                AccountId::parse(&format!("seller:s{}:payable", i % 64))?,
                amount.checked_neg()?,
            ),
            Posting::new(AccountId::marketplace_funding(), amount),
        ],
        memo: "bench".into(),
        occurred_at: Utc::now(),
        // At most 99 per entry over a bench run: far from the ±10^15 bound, so the bench does
        // not pay for a balance lookup per command.
        balances: agora_domain::ledger::AccountBalances::none(),
    })
}

async fn raw_inserts(store: &Store, clients: usize, ops: usize) -> anyhow::Result<f64> {
    let payload = serde_json::to_value(sample_event(0)?)?;
    let metadata =
        json!({"actor": "bench", "tenant": "bench", "event_id": uuid::Uuid::now_v7().to_string()});
    let run_id = uuid::Uuid::now_v7();
    let started = Instant::now();
    let tasks = (0..clients).map(|c| {
        let store = store.clone();
        let (payload, metadata) = (payload.clone(), metadata.clone());
        async move {
            for i in 0..ops {
                let id = format!("{run_id}-{c}-{i}");
                raw_insert(&store, &id, &payload, &metadata).await?;
            }
            anyhow::Ok(())
        }
    });
    try_join_all(tasks.map(tokio::spawn))
        .await?
        .into_iter()
        .collect::<anyhow::Result<()>>()?;
    Ok((clients * ops) as f64 / started.elapsed().as_secs_f64())
}

fn sample_event(i: usize) -> anyhow::Result<agora_domain::ledger::LedgerEvent> {
    match sample_command(i)? {
        LedgerCommand::Record {
            currency,
            postings,
            memo,
            occurred_at,
            ..
        } => Ok(agora_domain::ledger::LedgerEvent::EntryRecorded {
            currency,
            postings,
            memo,
            occurred_at,
        }),
        _ => anyhow::bail!("sample command is a Record"),
    }
}

async fn raw_insert(
    store: &Store,
    id: &str,
    payload: &serde_json::Value,
    metadata: &serde_json::Value,
) -> anyhow::Result<()> {
    const SQL: &str =
        "INSERT INTO raw_events (aggregate_type, aggregate_id, sequence, event_type, \
                       event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    if let Some(pool) = store.pg_pool() {
        sqlx::query(SQL)
            .bind("journal_entry")
            .bind(id)
            .bind(1i32)
            .bind("EntryRecorded")
            .bind("1.0")
            .bind(payload)
            .bind(metadata)
            .execute(pool)
            .await?;
    } else if let Some(pool) = store.sqlite_pool() {
        sqlx::query(SQL)
            .bind("journal_entry")
            .bind(id)
            .bind(1i32)
            .bind("EntryRecorded")
            .bind("1.0")
            .bind(payload)
            .bind(metadata)
            .execute(pool)
            .await?;
    }
    Ok(())
}

#[derive(Default)]
struct LagRecorder {
    armed: std::sync::atomic::AtomicBool,
    lags_ms: Mutex<Vec<f64>>,
}

impl BatchObserver for LagRecorder {
    fn batch_committed(&self, _projection: &str, events: &[StoredEvent]) {
        if !self.armed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let now = Utc::now();
        let mut lags = self.lags_ms.lock().unwrap_or_else(|p| p.into_inner());
        for e in events {
            let lag = (now - e.recorded_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            lags.push(lag.max(0.0));
        }
    }
}

/// Runs `clients × ops` commands, with or without the ledger projection following the log;
/// returns events/s and the projection lag of every event applied from the first command until
/// it caught up.
async fn commands(
    store: &Store,
    clients: usize,
    ops: usize,
    with_projection: bool,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let signal = CommitSignal::new();
    let recorder = Arc::new(LagRecorder::default());
    let runner = ProjectionRunner::new(store.clone(), Arc::new(LedgerProjection::default()))
        .with_observer(recorder.clone());
    runner.prepare().await?;
    runner.catch_up().await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let task =
        with_projection.then(|| tokio::spawn(runner.clone().run(signal.subscribe(), stop_rx)));
    let bus = Arc::new(CommandBus::<JournalEntry>::new(store, signal.clone(), ()));
    let run_id = uuid::Uuid::now_v7();
    recorder
        .armed
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let tasks = (0..clients).map(|c| {
        let bus = bus.clone();
        async move {
            let meta = CommandMetadata::new("bench", "bench", Utc::now())?;
            for i in 0..ops {
                let id = format!("{run_id}-{c}-{i}");
                bus.execute(&id, sample_command(i)?, &meta)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            anyhow::Ok(())
        }
    });
    try_join_all(tasks.map(tokio::spawn))
        .await?
        .into_iter()
        .collect::<anyhow::Result<()>>()?;
    let elapsed = started.elapsed();
    runner.catch_up_to_head(Duration::from_secs(60)).await?;
    let _ = stop_tx.send(true);
    if let Some(task) = task {
        task.await??;
    }
    let lags = std::mem::take(&mut *recorder.lags_ms.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(((clients * ops) as f64 / elapsed.as_secs_f64(), lags))
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
