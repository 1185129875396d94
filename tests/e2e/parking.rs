//! Parking (DESIGN.md §7): an event a projection or process manager cannot handle is retried,
//! then parked (a dead-letter row, a metric, `/readyz` degraded) while the runner goes on; an
//! operator retries it (applied) or skips it (recorded as an event). Also: lag read from the
//! database (a standby reports the true lag) and `/readyz` failing while a projection keeps
//! failing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agora_api::app::{AppOptions, ExtraProjections};
use agora_commands::process::{ProcessRunner, Reactor, RetryPolicy};
use agora_commands::{Store, StoredEvent};
use agora_projections::engine::{Projection, ProjectionError, ReadTx, TableSpec};
use agora_projections::ledger::LedgerProjection;
use agora_projections::parking::ParkingStore;
use agora_projections::ProjectionRunner;
use agora_tests::{both_backends, error_code, read_all, TestServer, TestStore};
use async_trait::async_trait;
use chrono::Utc;
use serde_json::{json, Value};

use crate::common::{bus, meta, transfer};

/// Tries and pause small enough to keep the tests fast.
const FAST: RetryPolicy = RetryPolicy {
    attempts: 3,
    backoff_ms: 2,
};
const WAIT_S: u64 = 30;

/// Records every event it applies; refuses journal entries whose id starts with `bad-` until
/// `fixed`, and fails transiently on `flaky-` entries while `flaky`.
struct Picky {
    table: String,
    fixed: AtomicBool,
    flaky: AtomicBool,
}

impl Picky {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            table: "rm_picky_seen".into(),
            fixed: AtomicBool::new(false),
            flaky: AtomicBool::new(true),
        })
    }
}

#[async_trait]
impl Projection for Picky {
    fn name(&self) -> &str {
        "picky"
    }
    fn version(&self) -> i64 {
        1
    }
    fn tables(&self) -> Vec<TableSpec> {
        vec![TableSpec::new(
            self.table.clone(),
            &["CREATE TABLE IF NOT EXISTS {t} (global_position BIGINT PRIMARY KEY, aggregate_id TEXT NOT NULL)"],
        )]
    }
    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_id.starts_with("bad-") && !self.fixed.load(Ordering::SeqCst) {
            return Err(ProjectionError::Invariant(format!(
                "picky refuses {}",
                event.aggregate_id
            )));
        }
        if event.aggregate_id.starts_with("flaky-") && self.flaky.load(Ordering::SeqCst) {
            return Err(ProjectionError::Database(sqlx::Error::PoolTimedOut));
        }
        sqlx::query(&format!(
            "INSERT INTO {} (global_position, aggregate_id) VALUES ($1, $2)",
            self.table
        ))
        .bind(event.position.global_position)
        .bind(&event.aggregate_id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self {
            table: format!("{prefix}picky_seen"),
            fixed: AtomicBool::new(self.fixed.load(Ordering::SeqCst)),
            flaky: AtomicBool::new(self.flaky.load(Ordering::SeqCst)),
        })
    }
}

async fn seen(store: &Store) -> Vec<String> {
    sqlx::query_scalar("SELECT aggregate_id FROM rm_picky_seen ORDER BY global_position")
        .fetch_all(store.read_models())
        .await
        .expect("seen rows")
}

async fn write(store: &Store, ids: &[&str]) {
    let bus = bus(store);
    for id in ids {
        bus.execute(
            id,
            transfer("acct:a", "acct:b", "1.00", Utc::now()),
            &meta(),
        )
        .await
        .expect("transfer");
    }
}

/// Appends a row to the event log as an old or broken writer would have (no command).
pub(crate) async fn append_raw(
    store: &Store,
    aggregate: (&str, &str, i64),
    event_type: &str,
    event_version: &str,
    payload: &Value,
) {
    let (aggregate_type, aggregate_id, sequence) = aggregate;
    let metadata = json!({"actor": "legacy-writer", "tenant": "platform",
        "event_id": uuid::Uuid::now_v7().to_string()});
    let sql = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
               event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    if let Some(pool) = store.pg_pool() {
        sqlx::query(sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(sequence)
            .bind(event_type)
            .bind(event_version)
            .bind(payload)
            .bind(&metadata)
            .execute(pool)
            .await
            .expect("raw append");
    } else if let Some(pool) = store.sqlite_pool() {
        sqlx::query(sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(sequence)
            .bind(event_type)
            .bind(event_version)
            .bind(payload.to_string())
            .bind(metadata.to_string())
            .execute(pool)
            .await
            .expect("raw append");
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(WAIT_S);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A poison event inside a batch: the events before and after it are applied, it is parked
/// with a row naming it (and the checkpoint is past it); after the fix a retry applies it and
/// removes the row.
async fn poison_event_is_parked_and_retried(t: TestStore) {
    write(&t.store, &["ok-1", "ok-2", "bad-3", "ok-4", "ok-5"]).await;
    let events = read_all(&t.store).await;
    let picky = Picky::new();
    picky.flaky.store(false, Ordering::SeqCst);
    let runner = ProjectionRunner::new(t.store.clone(), picky.clone()).with_retry_policy(FAST);
    runner.prepare().await.unwrap();
    assert_eq!(runner.catch_up().await.unwrap(), 4, "four applied");
    assert_eq!(seen(&t.store).await, ["ok-1", "ok-2", "ok-4", "ok-5"]);
    assert_eq!(runner.checkpoint().await.unwrap(), events[4].position);

    let parking = ParkingStore::new(t.store.read_models().clone());
    let rows = parking.list(None, false, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let bad = &events[2];
    assert_eq!(row.runner, "picky");
    assert_eq!(row.position(), bad.position);
    assert_eq!(row.aggregate_type, "journal_entry");
    assert_eq!(row.aggregate_id, "bad-3");
    assert_eq!(row.sequence, 1);
    assert_eq!(row.event_type, bad.event_type);
    assert_eq!(row.event_id.as_deref(), bad.meta("event_id"));
    assert_eq!(row.attempts, i64::from(FAST.attempts));
    assert!(!row.error.is_empty());
    assert_eq!(parking.open_counts().await.unwrap().get("picky"), Some(&1));

    // Still broken: the retry fails and the row stays.
    assert!(runner.retry_parked(row.id).await.is_err());
    assert_eq!(parking.list(None, false, 10).await.unwrap().len(), 1);
    // Fixed: the retry applies it and the row is gone.
    picky.fixed.store(true, Ordering::SeqCst);
    runner.retry_parked(row.id).await.unwrap();
    assert_eq!(
        seen(&t.store).await,
        ["ok-1", "ok-2", "bad-3", "ok-4", "ok-5"]
    );
    assert!(parking.open_counts().await.unwrap().is_empty());
}
both_backends!(
    poison_event_is_parked_runner_goes_on_and_retry_applies_it,
    poison_event_is_parked_and_retried
);

fn options(picky: &Arc<Picky>) -> AppOptions {
    let extra: Arc<dyn Projection> = picky.clone();
    AppOptions {
        rate_limit_per_minute: 1_000,
        retry_policy: FAST,
        extra_projections: ExtraProjections(vec![extra]),
        ..AppOptions::default()
    }
}

async fn readyz(s: &TestServer) -> (u16, Value) {
    let (code, body) = s.get("/readyz").await;
    (code, serde_json::from_str(&body).expect("readyz JSON"))
}

const PARKED: &str = "query { parkedEvents { id runner position eventId aggregateType \
    aggregateId sequence eventType error attempts status resolvedBy resolution } }";

async fn parked_nodes(s: &TestServer) -> Vec<Value> {
    let r = s.graphql(Some(&s.admin_token), PARKED, json!({})).await;
    r["data"]["parkedEvents"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .clone()
}

/// Over the server: `/readyz` degrades naming the runner, the metric counts the event, GraphQL
/// lists it; a skip is an event in the log and readiness returns; a retry after the fix applies
/// the event.
async fn operators_skip_and_retry(t: TestStore) {
    let picky = Picky::new();
    picky.flaky.store(false, Ordering::SeqCst);
    let s = TestServer::start_with(t, options(&picky)).await;
    let store = s.store.store.clone();
    write(&store, &["ok-1", "bad-2", "ok-3"]).await;
    eventually("ok-3 applied", || async {
        seen(&store).await.last().map(String::as_str) == Some("ok-3")
    })
    .await;
    let (code, body) = readyz(&s).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["parked"]["picky"], 1);
    let (_, metrics) = s.get("/metrics").await;
    assert!(
        metrics.contains("agora_parked_events{runner=\"picky\"} 1"),
        "{metrics}"
    );

    let nodes = parked_nodes(&s).await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0]["runner"], "picky");
    assert_eq!(nodes[0]["aggregateId"], "bad-2");
    let id = nodes[0]["id"].as_str().unwrap().to_string();
    let position = nodes[0]["position"].as_str().unwrap().to_string();

    // Only admins.
    let r = s.graphql(None, PARKED, json!({})).await;
    assert_eq!(error_code(&r), Some("UNAUTHENTICATED"));

    let skip = "mutation($id: ID!, $reason: String!, $key: String) { \
        skipParkedEvent(id: $id, reason: $reason, idempotencyKey: $key) { status resolvedBy resolution } }";
    let vars = json!({"id": id, "reason": "written by a bug; corrected by ok-3", "key": "skip-1"});
    let r = s.graphql(Some(&s.admin_token), skip, vars.clone()).await;
    assert_eq!(r["data"]["skipParkedEvent"]["status"], "skipped", "{r}");
    // The same key again: the stored outcome, no second event.
    let again = s.graphql(Some(&s.admin_token), skip, vars).await;
    assert_eq!(again["data"], r["data"]);
    let skips: Vec<StoredEvent> = read_all(&store)
        .await
        .into_iter()
        .filter(|e| e.event_type == "ParkedEventSkipped")
        .collect();
    assert_eq!(skips.len(), 1);
    let payload = &skips[0].payload["ParkedEventSkipped"];
    assert_eq!(payload["runner"], "picky");
    assert_eq!(payload["position"].to_string(), position);
    assert_eq!(payload["reason"], "written by a bug; corrected by ok-3");
    assert!(payload["actor"].as_str().is_some_and(|a| !a.is_empty()));
    assert!(parked_nodes(&s).await.is_empty());
    eventually("ready after the skip", || async {
        readyz(&s).await.0 == 200
    })
    .await;

    // Another poison event; fixed; retried over GraphQL: applied.
    write(&store, &["bad-4"]).await;
    eventually("bad-4 parked", || async {
        parked_nodes(&s).await.len() == 1
    })
    .await;
    assert_eq!(readyz(&s).await.0, 503);
    let id = parked_nodes(&s).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    picky.fixed.store(true, Ordering::SeqCst);
    let retry =
        "mutation($id: ID!) { retryParkedEvent(id: $id, idempotencyKey: \"retry-1\") { runner } }";
    let r = s
        .graphql(Some(&s.admin_token), retry, json!({"id": id}))
        .await;
    assert_eq!(r["data"]["retryParkedEvent"]["runner"], "picky", "{r}");
    assert!(seen(&store).await.contains(&"bad-4".to_string()));
    assert!(parked_nodes(&s).await.is_empty());
    eventually("ready after the retry", || async {
        readyz(&s).await.0 == 200
    })
    .await;
}
both_backends!(
    operators_see_degraded_readiness_skip_as_event_and_retry,
    operators_skip_and_retry
);

/// An undecodable stored event: the server still starts; the marketplace projection and its
/// process manager each park it (before, the process manager skipped it silently).
async fn undecodable_event_is_parked_by_projection_and_process(t: TestStore) {
    append_raw(
        &t.store,
        ("log_analysis", "garbled-1", 1),
        "LogAnalysisRecorded",
        "1.0",
        &json!({"LogAnalysisRecorded": {"nonsense": true}}),
    )
    .await;
    let picky = Picky::new();
    let s = TestServer::start_with(t, options(&picky)).await;
    let parking = s.state.parked.store.clone();
    eventually("both runners parked it", || async {
        let counts = parking.open_counts().await.unwrap();
        counts.get("pm_logmarket") == Some(&1) && counts.get("logmarket") == Some(&1)
    })
    .await;
    let (code, body) = readyz(&s).await;
    assert_eq!(code, 503);
    assert_eq!(body["parked"]["pm_logmarket"], 1, "{body}");
    let rows = parking.list(Some("pm_logmarket"), false, 10).await.unwrap();
    assert_eq!(rows[0].aggregate_id, "garbled-1");
    assert_eq!(rows[0].event_type, "LogAnalysisRecorded");
}
both_backends!(
    undecodable_event_is_parked_by_projection_and_process_manager,
    undecodable_event_is_parked_by_projection_and_process
);

/// A projection failing on the database (not on the event) is retried, never parked, and
/// `/readyz` fails naming it until it recovers.
async fn failing_projection_fails_readiness(t: TestStore) {
    let picky = Picky::new();
    let s = TestServer::start_with(t, options(&picky)).await;
    let store = s.store.store.clone();
    write(&store, &["flaky-1"]).await;
    eventually("picky failing", || async {
        let (code, body) = readyz(&s).await;
        code == 503 && body["failing"] == json!(["picky"])
    })
    .await;
    assert!(s.state.parked.store.open_counts().await.unwrap().is_empty());
    picky.flaky.store(false, Ordering::SeqCst);
    eventually("picky recovered", || async { readyz(&s).await.0 == 200 }).await;
    assert!(seen(&store).await.contains(&"flaky-1".to_string()));
}
both_backends!(
    failing_projection_fails_readiness_until_it_recovers,
    failing_projection_fails_readiness
);

/// A standby runner (another process, not holding the lease) reports the lag of the
/// checkpoint in the database, not of its own memory.
async fn standby_reports_true_lag(t: TestStore) {
    let standby = ProjectionRunner::new(t.store.clone(), Arc::new(LedgerProjection::default()));
    standby.prepare().await.unwrap();
    assert_eq!(standby.status().await.unwrap().lag_events, 0);
    write(&t.store, &["l-1", "l-2", "l-3"]).await;
    let other = t.reconnect().await;
    let owner = ProjectionRunner::new(other.clone(), Arc::new(LedgerProjection::default()));
    owner.catch_up().await.unwrap();
    let status = standby.status().await.unwrap();
    assert_eq!(status.lag_events, 0, "{status:?}");
    assert_eq!(Some(status.position), t.store.head().await.unwrap());
    other.close().await;
}
both_backends!(
    standby_reports_lag_from_the_database,
    standby_reports_true_lag
);

/// Why [`Contended`] refuses an event.
#[derive(Debug)]
enum ContendedError {
    /// Passing: another writer got to the aggregate first.
    Busy,
    Broken(String),
}

impl std::fmt::Display for ContendedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy => f.write_str("busy"),
            Self::Broken(why) => write!(f, "broken: {why}"),
        }
    }
}

impl From<sqlx::Error> for ContendedError {
    fn from(e: sqlx::Error) -> Self {
        Self::Broken(e.to_string())
    }
}

/// A process manager that sees contention on `busy-` entries while `busy`, and cannot handle
/// `bad-` entries at all.
#[derive(Default)]
struct Contended {
    busy: AtomicBool,
    seen: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl Reactor for Contended {
    type Error = ContendedError;
    async fn react(&self, event: &StoredEvent) -> Result<(), ContendedError> {
        let id = event.aggregate_id.as_str();
        if id.starts_with("busy-") && self.busy.load(Ordering::SeqCst) {
            return Err(ContendedError::Busy);
        }
        if id.starts_with("bad-") {
            return Err(ContendedError::Broken("no rule for it".into()));
        }
        self.seen.lock().unwrap().push(id.to_owned());
        Ok(())
    }
    fn is_transient(error: &ContendedError) -> bool {
        matches!(error, ContendedError::Busy)
    }
}

/// A process manager's event that fails on contention is never parked, however long the
/// contention lasts: the runner stops before it and delivers it again once it passes. An event
/// no retry can fix is still parked and passed over.
async fn contention_is_waited_out(t: TestStore) {
    write(&t.store, &["ok-1", "busy-2", "ok-3", "bad-4", "ok-5"]).await;
    let reactor = Arc::new(Contended::default());
    reactor.busy.store(true, Ordering::SeqCst);
    let parking = ParkingStore::new(t.store.read_models().clone());
    let runner = ProcessRunner::new("pm_contended", &t.store, reactor.clone())
        .with_dead_letters(Arc::new(parking.clone()))
        .with_retry_policy(FAST);
    runner.prepare().await.unwrap();
    // Contended for longer than the runner's tries at it, twice over. (A PostgreSQL read may
    // stop short of the newest events while other transactions are open: run until it fails.)
    for _ in 0..2 {
        eventually("the batch stops at busy-2", || async {
            runner.run_batch().await.is_err()
        })
        .await;
        assert_eq!(*reactor.seen.lock().unwrap(), ["ok-1"]);
        assert!(parking.open_counts().await.unwrap().is_empty());
    }
    reactor.busy.store(false, Ordering::SeqCst);
    eventually("busy-2, ok-3 and ok-5 handled", || async {
        runner.run_batch().await.unwrap();
        reactor.seen.lock().unwrap().len() == 4
    })
    .await;
    assert_eq!(
        *reactor.seen.lock().unwrap(),
        ["ok-1", "busy-2", "ok-3", "ok-5"]
    );
    let rows = parking.list(Some("pm_contended"), false, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "only bad-4 is parked");
    assert_eq!(rows[0].aggregate_id, "bad-4");
    assert_eq!(
        runner.run_batch().await.unwrap(),
        0,
        "nothing handled twice"
    );
}
both_backends!(
    process_manager_waits_out_contention_and_parks_only_poison,
    contention_is_waited_out
);
