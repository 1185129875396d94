//! Leases on background work: one owner at a time across processes, a lost lease stops the
//! work, a standby takes over, supervised tasks come back after errors and panics, only the
//! lease holder prepares a projection's tables; the job queue's row leases are renewed while a
//! job runs, tenants are served round-robin, done rows are purged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_api::app::{AppOptions, FaultHook};
use agora_commands::lapverse::jobs::{due_jobs, purge_done_jobs, QUEUE_TASKS};
use agora_commands::lapverse::FaultInjector;
use agora_commands::lease::{supervise, Leases};
use agora_commands::process::{ProcessError, ProcessRunner, Reactor};
use agora_commands::{CommitSignal, Store, StoredEvent};
use agora_domain::tenancy::budget::WorkKind;
use agora_projections::engine::{Projection, ProjectionError, ReadTx, TableSpec};
use agora_projections::ledger::LedgerProjection;
use agora_projections::rebuild::rebuild_and_compare;
use agora_projections::ProjectionHost;
use agora_tests::{both_backends, http_request_full, read_all, TestServer, TestStore};
use async_trait::async_trait;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::common::{bus, meta, transfer};

/// Generous bound on a takeover (the design asks for 5 s; a loaded machine gets slack).
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(15);

async fn write_transfers(store: &Store, n: usize) {
    let bus = bus(store);
    for i in 0..n {
        bus.execute(
            &format!("lease-{}-{i}", uuid::Uuid::now_v7().simple()),
            transfer("acct:a", "acct:b", "1.00", Utc::now()),
            &meta(),
        )
        .await
        .unwrap();
    }
}

/// Ends the database sessions holding advisory locks in this test's database other than the
/// caller's (what PostgreSQL does when the owning process dies).
async fn kill_lease_sessions(store: &Store) -> u64 {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_locks \
          WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() \
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .execute(store.read_models())
    .await
    .unwrap()
    .rows_affected()
}

async fn wait_until<F, Fut>(what: &str, mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < TAKEOVER_DEADLINE,
            "{what}: not within {TAKEOVER_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_is_exclusive_lost_with_its_session_and_taken_over() {
    let t = TestStore::postgres().await;
    let other = t.reconnect().await;
    let (a, b) = (Leases::default(), Leases::default());
    let key = "agora.test:exclusive";
    let mut held = a.try_acquire(&t.store, key).await.unwrap().expect("free");
    assert!(b.try_acquire(&other, key).await.unwrap().is_none());
    assert_eq!(a.held(), vec![key.to_string()]);
    held.check().await.unwrap();

    assert_eq!(kill_lease_sessions(&other).await, 1, "one lease session");
    let started = Instant::now();
    let (_stop, mut shutdown) = watch::channel(false);
    let taken = tokio::time::timeout(TAKEOVER_DEADLINE, b.acquire(&other, key, &mut shutdown))
        .await
        .expect("standby takes over")
        .unwrap()
        .expect("not shut down");
    eprintln!("lease taken over after {:?}", started.elapsed());
    assert!(held.check().await.is_err(), "the dead session is noticed");
    assert!(a.held().is_empty(), "a lost lease is forgotten");
    assert_eq!(b.held(), vec![key.to_string()]);
    drop(taken);
    assert!(b.held().is_empty());
    wait_until("a released lease is free again", || async {
        a.try_acquire(&t.store, key).await.unwrap().is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_restarts_after_errors_and_panics() {
    let runs = Arc::new(AtomicUsize::new(0));
    let (stop, shutdown) = watch::channel(false);
    let supervisor = tokio::spawn(supervise("test".into(), shutdown.clone(), {
        let runs = runs.clone();
        move || {
            let (runs, mut shutdown) = (runs.clone(), shutdown.clone());
            async move {
                match runs.fetch_add(1, Ordering::SeqCst) {
                    0 => Err("first run fails".to_string()),
                    1 => panic!("second run panics"),
                    _ => {
                        let _ = shutdown.wait_for(|s| *s).await;
                        Ok(())
                    }
                }
            }
        }
    }));
    wait_until("third run", || {
        let runs = runs.clone();
        async move { runs.load(Ordering::SeqCst) >= 3 }
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), supervisor)
        .await
        .expect("supervisor ends at shutdown")
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

/// Counts the events it sees.
#[derive(Default)]
struct Counter(AtomicUsize);

#[async_trait]
impl Reactor for Counter {
    type Error = sqlx::Error;
    async fn react(&self, _event: &StoredEvent) -> Result<(), sqlx::Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn process_manager_runs_under_a_lease_and_is_taken_over() {
    let t = TestStore::postgres().await;
    let other = t.reconnect().await;
    let (a, b) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
    let (stop, shutdown) = watch::channel(false);
    let signal = CommitSignal::new();
    let first =
        ProcessRunner::new("lease-test", &t.store, a.clone()).with_leases(Leases::default());
    let first = tokio::spawn(first.run(signal.subscribe(), shutdown.clone()));
    // The first runner takes the lease before the second one starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = ProcessRunner::new("lease-test", &other, b.clone()).with_leases(Leases::default());
    // Supervised, as in the server: a failed attempt at the lease (a busy server) is retried.
    let second = tokio::spawn(supervise("second".into(), shutdown.clone(), {
        let (signal, shutdown) = (signal.clone(), shutdown.clone());
        move || second.clone().run(signal.subscribe(), shutdown.clone())
    }));
    write_transfers(&t.store, 30).await;
    let events = read_all(&t.store).await.len();
    wait_until("first runner reacts", || {
        let a = a.clone();
        async move { a.0.load(Ordering::SeqCst) >= events }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(a.0.load(Ordering::SeqCst), events);
    assert_eq!(
        b.0.load(Ordering::SeqCst),
        0,
        "the standby reacted to nothing"
    );

    // The owner's session dies: it stops with a lease error, the standby goes on.
    kill_lease_sessions(&other).await;
    let ended = tokio::time::timeout(TAKEOVER_DEADLINE, first)
        .await
        .expect("a lost lease stops the runner")
        .unwrap();
    assert!(matches!(ended, Err(ProcessError::Lease(_))), "{ended:?}");
    let started = Instant::now();
    write_transfers(&other, 10).await;
    let after = read_all(&other).await.len();
    let took = wait_until("the standby takes over", || {
        let b = b.clone();
        async move { b.0.load(Ordering::SeqCst) >= after - events }
    })
    .await;
    eprintln!(
        "process manager taken over after {:?}",
        started.elapsed().max(took)
    );
    assert_eq!(a.0.load(Ordering::SeqCst), events, "no event handled twice");
    assert_eq!(b.0.load(Ordering::SeqCst), after - events);
    stop.send(true).unwrap();
    second.await.unwrap();
}

/// The ledger projection under a new version number.
struct Bumped(LedgerProjection);

#[async_trait]
impl Projection for Bumped {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn version(&self) -> i64 {
        self.0.version() + 1
    }
    fn tables(&self) -> Vec<TableSpec> {
        self.0.tables()
    }
    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        self.0.apply(tx, event).await
    }
    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        self.0.with_prefix(prefix)
    }
}

async fn ledger_version(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT version FROM projection_checkpoints WHERE name = 'ledger'")
        .fetch_one(store.read_models())
        .await
        .unwrap()
}

async fn ledger_rows(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM rm_ledger_balances")
        .fetch_one(store.read_models())
        .await
        .unwrap()
}

/// A process started with a new projection version does not drop the tables another process
/// serves and runs: it rebuilds them only once it holds the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_lease_holder_prepares_tables() {
    let t = TestStore::postgres().await;
    let other = t.reconnect().await;
    write_transfers(&t.store, 20).await;
    let old = ProjectionHost::start(
        &t.store,
        &CommitSignal::new(),
        vec![Arc::new(LedgerProjection::default())],
    )
    .await
    .unwrap();
    wait_until("the owner catches up", || async {
        ledger_rows(&t.store).await > 0 && old.runners()[0].status().await.unwrap().lag_events == 0
    })
    .await;
    let version = ledger_version(&t.store).await;
    let new = ProjectionHost::start(
        &other,
        &CommitSignal::new(),
        vec![Arc::new(Bumped(LedgerProjection::default()))],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ledger_version(&t.store).await, version, "standby left it");
    assert!(
        ledger_rows(&t.store).await > 0,
        "the live tables still serve"
    );
    assert!(new.leases().held().is_empty());

    let rows = ledger_rows(&t.store).await;
    old.shutdown().await;
    // The new version is built in fresh tables and swapped in: the live ones never empty.
    let took = wait_until("the new version takes over and rebuilds", || async {
        assert_eq!(
            ledger_rows(&other).await,
            rows,
            "live tables changed mid-rebuild"
        );
        ledger_version(&other).await == version + 1
            && new.runners()[0].status().await.unwrap().lag_events == 0
    })
    .await;
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'bg%') \
              + (SELECT COUNT(*) FROM pg_indexes WHERE indexname LIKE 'bg%') \
              + (SELECT COUNT(*) FROM projection_checkpoints WHERE name LIKE '%#v%')",
    )
    .fetch_one(other.read_models())
    .await
    .unwrap();
    assert_eq!(
        leftovers, 0,
        "build tables, indexes or checkpoints left behind"
    );
    eprintln!("projection taken over and rebuilt after {took:?}");
    let cmp = rebuild_and_compare(&other, &LedgerProjection::default(), false)
        .await
        .unwrap();
    assert!(cmp.is_equal(), "{cmp:#?}");
    new.shutdown().await;
}

/// Sleeps (blocking its thread, like CPU-bound work) in the first attempt of every item.
struct SlowFirst(Duration);

impl FaultInjector for SlowFirst {
    fn before_attempt(&self, _kind: WorkKind, _id: &str, attempt: u32) -> Option<String> {
        if attempt == 1 {
            std::thread::sleep(self.0);
        }
        None
    }
}

/// A job that runs for several lease periods keeps its lease: it is never taken over (which
/// would record an interrupted attempt) and completes on its first attempt.
async fn long_job_keeps_lease(t: TestStore) {
    let mut options = AppOptions {
        rate_limit_per_minute: 1_000,
        faults: Some(FaultHook(Arc::new(SlowFirst(Duration::from_millis(1_500))))),
        ..AppOptions::default()
    };
    options.market.rate_limit_per_minute = 1_000;
    options.lapverse.poll = Duration::from_millis(50);
    options.lapverse.lease = Duration::from_millis(300);
    let s = TestServer::start_with(t, options).await;
    agora_api::lapverse::demo::ensure_demo_tenant(&s.state.lapverse.service)
        .await
        .unwrap();
    let headers = vec![
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {}", s.admin_token)),
        ("x-tenant-id", "acme".to_string()),
        ("idempotency-key", "long-job".to_string()),
    ];
    let body = json!({"type": "LOG_ANALYSIS", "description": "long", "tenant": "acme",
                      "log": "ERROR boom\n"});
    let (status, _, reply) =
        http_request_full(s.addr, "POST", "/api/v2/tasks", &headers, &body.to_string()).await;
    assert_eq!(status, 202, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    let path = format!("/api/v2/tasks/{}", reply["taskId"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let task = loop {
        let (code, _, body) = http_request_full(s.addr, "GET", &path, &headers[..3], "").await;
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if code == 200 && body["status"] == "completed" {
            break body;
        }
        assert!(Instant::now() < deadline, "task never completed: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let interrupted = read_all(&s.store.store)
        .await
        .into_iter()
        .filter(|e| e.payload.to_string().contains("interrupted"))
        .count();
    assert_eq!(interrupted, 0, "the running job was taken over: {task}");
}
both_backends!(long_job_keeps_its_lease, long_job_keeps_lease);

async fn insert_job(store: &Store, id: &str, tenant: &str, priority: i64, state: &str, at_us: i64) {
    sqlx::query(
        "INSERT INTO lapverse_jobs (job_id, queue, aggregate_id, tenant, priority, payload, state, \
         run_after_us, lease_owner, lease_until_us, runs, created_at_us, updated_at_us) \
         VALUES ($1, $2, $1, $3, $4, NULL, $5, $6, NULL, NULL, 0, $6, $6)",
    )
    .bind(id)
    .bind(QUEUE_TASKS)
    .bind(tenant)
    .bind(priority)
    .bind(state)
    .bind(at_us)
    .execute(store.read_models())
    .await
    .unwrap();
}

/// A tenant flooding the queue with critical jobs does not starve another tenant's low one.
async fn fair_queue(t: TestStore) {
    let now = Utc::now().timestamp_micros();
    for i in 0..20 {
        insert_job(
            &t.store,
            &format!("flood-{i:02}"),
            "flood",
            3,
            "queued",
            now - 1_000 + i,
        )
        .await;
    }
    insert_job(&t.store, "quiet-0", "quiet", 0, "queued", now).await;
    insert_job(&t.store, "quiet-1", "quiet", 0, "queued", now).await;
    let due = due_jobs(&t.store, QUEUE_TASKS, now, 4).await.unwrap();
    let ids: Vec<&str> = due.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["flood-00", "quiet-0", "flood-01", "quiet-1"]);
}
both_backends!(due_jobs_round_robin_across_tenants, fair_queue);

async fn purge_done(t: TestStore) {
    let now = Utc::now().timestamp_micros();
    let old = now - 10_000_000;
    insert_job(&t.store, "done-old", "a", 1, "done", old).await;
    insert_job(&t.store, "done-new", "a", 1, "done", now).await;
    insert_job(&t.store, "queued-old", "a", 1, "queued", old).await;
    assert_eq!(purge_done_jobs(&t.store, now - 1_000_000).await.unwrap(), 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT job_id FROM lapverse_jobs ORDER BY job_id")
        .fetch_all(t.store.read_models())
        .await
        .unwrap();
    assert_eq!(left, ["done-new", "queued-old"]);
}
both_backends!(done_jobs_purged_after_retention, purge_done);
