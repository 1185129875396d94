//! `agora bench` write-path scenarios, per backend and client count, all in one run so the
//! ratios compare like with like:
//!
//! * `raw_single`: one event-shaped row per `INSERT` (autocommit), the database's own pace;
//! * `raw_multi`: the same rows, [`MULTI_ROWS`] per `INSERT`;
//! * `commands`: ledger commands through the command bus (load, decide, group commit);
//! * `commands_projections`: the same while every projection `agora serve` runs follows the
//!   log on its background runtime (as in `serve`), with the projection lag of every event;
//! * `ingest`: new-stream records through `CommandBus::ingest`, [`MULTI_ROWS`] a call, with
//!   the projections running and their lag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_commands::append::IngestRecord;
use agora_commands::store::StoredEvent;
use agora_commands::{CommandBus, CommandMetadata, CommitSignal, PoolSizes, Store};
use agora_domain::ledger::{AccountId, JournalEntry, LedgerCommand, LedgerEvent, Posting};
use agora_domain::money::{Currency, Money};
use agora_projections::all_projections;
use agora_projections::engine::{BatchObserver, ProjectionRunner};
use chrono::Utc;
use futures::future::try_join_all;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use crate::roles::{BackgroundRuntime, BACKGROUND_THREADS};

/// Rows per statement in `raw_multi`, records per call in `ingest`.
pub const MULTI_ROWS: usize = 1_000;
/// Longest wait for the projections to catch up after a scenario.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);

/// The scenarios, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    RawSingle,
    RawMulti,
    Commands,
    /// `commands_projections` with every runner reading the database itself (no shared tail):
    /// the baseline the shared tail is measured against in the same run.
    CommandsProjectionsDbReads,
    CommandsProjections,
    Ingest,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::RawSingle,
        Scenario::RawMulti,
        Scenario::Commands,
        Scenario::CommandsProjectionsDbReads,
        Scenario::CommandsProjections,
        Scenario::Ingest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RawSingle => "raw_single",
            Self::RawMulti => "raw_multi",
            Self::Commands => "commands",
            Self::CommandsProjectionsDbReads => "commands_projections_db_reads",
            Self::CommandsProjections => "commands_projections",
            Self::Ingest => "ingest",
        }
    }

    fn with_projections(self) -> bool {
        matches!(
            self,
            Self::CommandsProjectionsDbReads | Self::CommandsProjections | Self::Ingest
        )
    }
}

/// How long each client works: a number of operations, or a time.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// Events per client (statements of [`MULTI_ROWS`] count as that many).
    Ops(usize),
    Duration(Duration),
}

/// One measured row (one JSON line with `--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub backend: &'static str,
    pub clients: usize,
    pub scenario: &'static str,
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    /// `events_per_s` over `raw_single`'s in the same run (same backend and clients).
    pub ratio_raw_single: Option<f64>,
    /// `events_per_s` over `raw_multi`'s in the same run.
    pub ratio_raw_multi: Option<f64>,
    /// Per operation (statement, command or ingest call), milliseconds.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Projection lag (commit of the batch that applied an event minus the event's recording
    /// time), over every event and every projection; zero without projections.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// Append transactions during the scenario, and the largest batch (commits) so far in
    /// this backend's run.
    pub append_batches: u64,
    pub append_max_batch: u64,
    /// Of the events the projection runners read during the scenario, the share served from
    /// the shared tail in memory rather than the database (scenarios with projections).
    pub reads_from_memory: Option<f64>,
}

/// Runs the scenarios on `store` (migrated, empty) for each client count.
pub async fn bench_backend(
    backend: &'static str,
    store: &Store,
    clients: &[usize],
    load: Load,
    scenarios: &[Scenario],
) -> anyhow::Result<Vec<Row>> {
    create_raw_table(store).await?;
    let mut rows = Vec::new();
    for &n in clients {
        let mut projector: Option<Projector> = None;
        let mut here: Vec<Row> = Vec::new();
        for &scenario in Scenario::ALL.iter().filter(|s| scenarios.contains(s)) {
            if scenario.with_projections() && projector.is_none() {
                projector = Some(Projector::start(store).await?);
            }
            let before = store.append_stats();
            let reads_before = projector.as_ref().map(|p| p.store.tail_stats());
            if let Some(p) = &projector {
                p.store
                    .share_tail(scenario != Scenario::CommandsProjectionsDbReads);
                p.recorder.arm();
            }
            let timed = match scenario {
                Scenario::RawSingle => raw_single(store, n, load).await?,
                Scenario::RawMulti => raw_multi(store, n, load).await?,
                Scenario::Commands
                | Scenario::CommandsProjectionsDbReads
                | Scenario::CommandsProjections => {
                    commands(store, n, load, projector.as_ref()).await?
                }
                Scenario::Ingest => ingest(store, n, load, projector.as_ref()).await?,
            };
            let lags = match &projector {
                Some(p) if scenario.with_projections() => p.caught_up_lags(store).await?,
                _ => Vec::new(),
            };
            let after = store.append_stats();
            let reads_from_memory = match (&projector, reads_before) {
                (Some(p), Some(before)) if scenario.with_projections() => {
                    let now = p.store.tail_stats();
                    let memory = (now.from_memory - before.from_memory) as f64;
                    let database = (now.from_database - before.from_database) as f64;
                    (memory + database > 0.0).then(|| memory / (memory + database))
                }
                _ => None,
            };
            let (l50, l99, _) = super::percentiles(timed.latencies_ms);
            let (g50, g99, gmax) = super::percentiles(lags);
            let rate = timed.events as f64 / timed.seconds;
            let find = |s: Scenario| {
                here.iter()
                    .find(|r| r.scenario == s.as_str())
                    .map(|r| rate / r.events_per_s)
            };
            let row = Row {
                backend,
                clients: n,
                scenario: scenario.as_str(),
                events: timed.events,
                seconds: timed.seconds,
                events_per_s: rate,
                ratio_raw_single: find(Scenario::RawSingle),
                ratio_raw_multi: find(Scenario::RawMulti),
                latency_p50_ms: l50,
                latency_p99_ms: l99,
                lag_p50_ms: g50,
                lag_p99_ms: g99,
                lag_max_ms: gmax,
                append_batches: after.batches - before.batches,
                append_max_batch: after.max_batch,
                reads_from_memory,
            };
            eprintln!(
                "{backend} clients={n} {}: {rate:.0} events/s, lag p99 {g99:.1} ms",
                row.scenario
            );
            here.push(row);
        }
        if let Some(p) = projector {
            p.stop().await;
        }
        rows.extend(here);
    }
    Ok(rows)
}

/// What a scenario measured.
struct Timed {
    events: u64,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

/// Runs `clients` copies of `op` (which returns the events it wrote) until the load is done;
/// each client's `op` gets its client number and operation number.
async fn drive<F, Fut>(clients: usize, load: Load, per_op: usize, op: F) -> anyhow::Result<Timed>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let tasks = (0..clients).map(|c| {
        let op = Arc::clone(&op);
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0;
            loop {
                let more = match load {
                    Load::Ops(n) => i * per_op < n,
                    Load::Duration(d) => started.elapsed() < d,
                };
                if !more {
                    break;
                }
                let t = Instant::now();
                op(c, i).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                i += 1;
            }
            anyhow::Ok(lat)
        })
    });
    let mut latencies_ms = Vec::new();
    for lat in try_join_all(tasks).await? {
        latencies_ms.extend(lat?);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Timed {
        events: (latencies_ms.len() * per_op) as u64,
        seconds,
        latencies_ms,
    })
}

/// A table of the same shape as `events` (columns, defaults, identity, keys; no triggers).
async fn create_raw_table(store: &Store) -> anyhow::Result<()> {
    if let Some(pool) = store.pg_pool() {
        sqlx::query("CREATE TABLE IF NOT EXISTS raw_events (LIKE events INCLUDING ALL)")
            .execute(pool)
            .await?;
    }
    if let Some(pool) = store.sqlite_pool() {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS raw_events (aggregate_type TEXT NOT NULL, \
             aggregate_id TEXT NOT NULL, sequence INTEGER NOT NULL, event_type TEXT NOT NULL, \
             event_version TEXT NOT NULL, payload TEXT NOT NULL, metadata TEXT NOT NULL, \
             global_position INTEGER, recorded_at_us INTEGER NOT NULL DEFAULT 0, \
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
        // Far from the ±10^15 bound over a run: no balance lookup per command.
        balances: agora_domain::ledger::AccountBalances::none(),
    })
}

fn sample_event(i: usize) -> anyhow::Result<LedgerEvent> {
    match sample_command(i)? {
        LedgerCommand::Record {
            currency,
            postings,
            memo,
            occurred_at,
            ..
        } => Ok(LedgerEvent::EntryRecorded {
            currency,
            postings,
            memo,
            occurred_at,
        }),
        _ => anyhow::bail!("sample command is a Record"),
    }
}

/// What every raw row carries (ids are built per client, operation and row).
struct RawRows {
    payload: serde_json::Value,
    metadata: serde_json::Value,
    run: uuid::Uuid,
}

impl RawRows {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            payload: serde_json::to_value(sample_event(0)?)?,
            metadata: json!({"actor": "bench", "tenant": "bench",
                             "event_id": uuid::Uuid::now_v7().to_string()}),
            run: uuid::Uuid::now_v7(),
        })
    }
}

macro_rules! raw_insert {
    ($db:ty, $pool:expr, $rows:expr, $ids:expr) => {{
        let mut b = sqlx::QueryBuilder::<$db>::new(
            "INSERT INTO raw_events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) ",
        );
        b.push_values($ids.iter(), |mut row, id| {
            row.push_bind("journal_entry")
                .push_bind(id.as_str())
                .push_bind(1_i64)
                .push_bind("EntryRecorded")
                .push_bind("1.0")
                .push_bind(&$rows.payload)
                .push_bind(&$rows.metadata);
        });
        b.build().execute($pool).await?;
    }};
}

async fn raw_rows(store: &Store, rows: &RawRows, ids: &[String]) -> anyhow::Result<()> {
    if let Some(pool) = store.pg_pool() {
        raw_insert!(sqlx::Postgres, pool, rows, ids);
    } else if let Some(pool) = store.sqlite_pool() {
        raw_insert!(sqlx::Sqlite, pool, rows, ids);
    }
    Ok(())
}

async fn raw_single(store: &Store, clients: usize, load: Load) -> anyhow::Result<Timed> {
    let rows = Arc::new(RawRows::new()?);
    let store = store.clone();
    drive(clients, load, 1, move |c, i| {
        let (store, rows) = (store.clone(), Arc::clone(&rows));
        async move {
            let id = format!("{}-s-{c}-{i}", rows.run);
            raw_rows(&store, &rows, &[id]).await
        }
    })
    .await
}

async fn raw_multi(store: &Store, clients: usize, load: Load) -> anyhow::Result<Timed> {
    let rows = Arc::new(RawRows::new()?);
    let store = store.clone();
    drive(clients, load, MULTI_ROWS, move |c, i| {
        let (store, rows) = (store.clone(), Arc::clone(&rows));
        async move {
            let ids: Vec<String> = (0..MULTI_ROWS)
                .map(|k| format!("{}-m-{c}-{i}-{k}", rows.run))
                .collect();
            raw_rows(&store, &rows, &ids).await
        }
    })
    .await
}

async fn commands(
    store: &Store,
    clients: usize,
    load: Load,
    projector: Option<&Projector>,
) -> anyhow::Result<Timed> {
    let signal = projector.map_or_else(CommitSignal::new, |p| p.signal.clone());
    let bus = Arc::new(CommandBus::<JournalEntry>::new(store, signal, ()));
    let meta = Arc::new(CommandMetadata::new("bench", "bench", Utc::now())?);
    let run = uuid::Uuid::now_v7();
    drive(clients, load, 1, move |c, i| {
        let (bus, meta) = (Arc::clone(&bus), Arc::clone(&meta));
        async move {
            let id = format!("{run}-c-{c}-{i}");
            bus.execute(&id, sample_command(i)?, &meta)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
    })
    .await
}

async fn ingest(
    store: &Store,
    clients: usize,
    load: Load,
    projector: Option<&Projector>,
) -> anyhow::Result<Timed> {
    let signal = projector.map_or_else(CommitSignal::new, |p| p.signal.clone());
    let bus = Arc::new(CommandBus::<JournalEntry>::new(store, signal, ()));
    let meta = Arc::new(CommandMetadata::new("bench", "bench", Utc::now())?);
    let event = sample_event(1)?;
    let run = uuid::Uuid::now_v7();
    drive(clients, load, MULTI_ROWS, move |c, i| {
        let (bus, meta, event) = (Arc::clone(&bus), Arc::clone(&meta), event.clone());
        async move {
            let records: Vec<_> = (0..MULTI_ROWS)
                .map(|k| IngestRecord {
                    id: format!("{run}-i-{c}-{i}-{k}"),
                    event: event.clone(),
                })
                .collect();
            let outcomes = bus.ingest(records, &meta).await?;
            anyhow::ensure!(
                outcomes
                    .iter()
                    .all(|o| *o == agora_commands::append::IngestOutcome::Stored),
                "ingest stored fewer records than sent"
            );
            Ok(())
        }
    })
    .await
}

/// Records the lag of every event applied while armed.
#[derive(Default)]
struct LagRecorder {
    armed: AtomicBool,
    lags_ms: Mutex<Vec<f64>>,
}

impl LagRecorder {
    fn arm(&self) {
        self.armed.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> Vec<f64> {
        self.armed.store(false, Ordering::Relaxed);
        std::mem::take(&mut *self.lags_ms.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl BatchObserver for LagRecorder {
    fn batch_committed(&self, _projection: &str, events: &[StoredEvent]) {
        if !self.armed.load(Ordering::Relaxed) {
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

/// Every projection `agora serve` runs, on a background runtime with pools of its own, as
/// `serve` runs them.
struct Projector {
    runtime: BackgroundRuntime,
    store: Store,
    runners: Vec<ProjectionRunner>,
    signal: CommitSignal,
    recorder: Arc<LagRecorder>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), agora_projections::ProjectionError>>>,
}

impl Projector {
    async fn start(store: &Store) -> anyhow::Result<Self> {
        let runtime = BackgroundRuntime::start(BACKGROUND_THREADS)?;
        let main = store.clone();
        let sizes = PoolSizes { write: 8, read: 8 };
        let sibling = runtime
            .handle()
            .spawn(async move { main.sibling(&sizes).await })
            .await??;
        let key = Arc::new(ed25519_dalek::SigningKey::from_bytes(&rand::random()));
        let recorder = Arc::new(LagRecorder::default());
        let runners: Vec<ProjectionRunner> = all_projections(key)
            .into_iter()
            .map(|p| ProjectionRunner::new(sibling.clone(), p).with_observer(recorder.clone()))
            .collect();
        for r in &runners {
            r.prepare().await?;
        }
        let signal = CommitSignal::new();
        let (stop, stop_rx) = watch::channel(false);
        let tasks = runners
            .iter()
            .map(|r| {
                runtime
                    .handle()
                    .spawn(r.clone().run(signal.subscribe(), stop_rx.clone()))
            })
            .collect();
        let p = Self {
            runtime,
            store: sibling,
            runners,
            signal,
            recorder,
            stop,
            tasks,
        };
        // Whatever earlier scenarios wrote is applied before anything is measured.
        p.caught_up_lags(store).await?;
        Ok(p)
    }

    /// Waits until every runner has applied everything committed so far; the lags recorded
    /// since the recorder was armed.
    async fn caught_up_lags(&self, store: &Store) -> anyhow::Result<Vec<f64>> {
        let head = store.head().await?;
        let deadline = Instant::now() + CATCH_UP_TIMEOUT;
        self.signal.notify();
        for r in &self.runners {
            loop {
                let status = r.status().await?;
                if head.is_none_or(|h| status.position >= h) {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "projection {} did not catch up within {CATCH_UP_TIMEOUT:?}",
                    status.name
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(self.recorder.take())
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.close().await;
        drop(self.runtime);
    }
}
