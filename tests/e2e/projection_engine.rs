//! The projection engine: exactly-once under concurrent writers, resume after a failure
//! injected mid-batch, rebuild-and-compare, version bumps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agora_commands::{CommandBus, CommitSignal, Store, StoredEvent};
use agora_domain::ledger::{JournalEntry, LedgerEvent};
use agora_domain::money::Money;
use agora_projections::engine::{Projection, ProjectionError, ReadTx, TableSpec};
use agora_projections::ledger::{LedgerProjection, LedgerQueries};
use agora_projections::rebuild::rebuild_and_compare;
use agora_projections::{ProjectionHost, ProjectionRunner};
use agora_tests::{both_backends, read_all, TestStore};
use async_trait::async_trait;
use chrono::Utc;

use crate::common::{meta, transfer};

const WRITERS: usize = 16;
const COMMANDS_PER_WRITER: usize = 500;
const ACCOUNTS: usize = 24;

/// Per-account sums and posting counts recomputed from the event log itself.
fn expected_from_log(events: &[StoredEvent]) -> (HashMap<String, Money>, usize) {
    let mut sums: HashMap<String, Money> = HashMap::new();
    let mut postings = 0;
    for e in events {
        let Ok(LedgerEvent::EntryRecorded { postings: ps, .. }) =
            serde_json::from_value(e.payload.clone())
        else {
            continue;
        };
        for p in ps {
            postings += 1;
            let sum = sums
                .entry(p.account.as_str().to_string())
                .or_insert(Money::ZERO);
            *sum = sum.checked_add(p.amount).unwrap();
        }
    }
    (sums, postings)
}

async fn history_rows(store: &Store, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(store.read_models())
        .await
        .unwrap()
}

async fn concurrent_exactly_once(t: TestStore) {
    let signal = CommitSignal::new();
    let host = ProjectionHost::start(
        &t.store,
        &signal,
        vec![Arc::new(LedgerProjection::default())],
    )
    .await
    .unwrap();
    let bus = Arc::new(CommandBus::<JournalEntry>::new(
        &t.store,
        signal.clone(),
        (),
    ));
    let writers = (0..WRITERS).map(|w| {
        let bus = bus.clone();
        tokio::spawn(async move {
            for i in 0..COMMANDS_PER_WRITER {
                let from = format!("acct:{}", (w * 7 + i) % ACCOUNTS);
                let to = format!("acct:{}", (w * 7 + i + 1 + i % 5) % ACCOUNTS);
                let cents = 1 + (w * 1000 + i) % 997;
                let amount = format!("{}.{:02}", cents / 100, cents % 100);
                bus.execute(
                    &format!("w{w}-{i}"),
                    transfer(&from, &to, &amount, Utc::now()),
                    &meta(),
                )
                .await
                .unwrap();
            }
        })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap();
    }
    let total = WRITERS * COMMANDS_PER_WRITER;
    // Wait until the running projection has seen the head.
    let runner = &host.runners()[0];
    let head = t.store.head().await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while runner.checkpoint().await.unwrap() < head {
        if tokio::time::Instant::now() > deadline {
            panic!("projection did not catch up: {:?}", runner.status().await);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = runner.status().await.unwrap();
    assert_eq!(status.lag_events, 0);
    assert_eq!(status.last_error, None);
    host.shutdown().await;

    let events = read_all(&t.store).await;
    assert_eq!(events.len(), total, "every command appended one event");
    let applied: i64 = sqlx::query_scalar(
        "SELECT events_applied FROM projection_checkpoints WHERE name = 'ledger'",
    )
    .fetch_one(t.store.read_models())
    .await
    .unwrap();
    assert_eq!(applied as usize, total, "each event applied exactly once");
    let (sums, postings) = expected_from_log(&events);
    assert_eq!(
        history_rows(&t.store, "rm_ledger_history").await as usize,
        postings
    );
    let balances = LedgerQueries::new(t.store.read_models().clone())
        .all_balances()
        .await
        .unwrap();
    assert_eq!(balances.len(), sums.len());
    let mut grand_total = Money::ZERO;
    for b in &balances {
        assert_eq!(
            Some(&b.posted),
            sums.get(&b.account),
            "balance of {}",
            b.account
        );
        grand_total = grand_total.checked_add(b.posted).unwrap();
    }
    assert!(
        grand_total.is_zero(),
        "double entry: all balances sum to zero"
    );
    let posting_count: i64 = balances.iter().map(|b| b.postings).sum();
    assert_eq!(posting_count as usize, postings);
}
both_backends!(
    concurrent_writers_are_projected_exactly_once,
    concurrent_exactly_once
);

/// The ledger projection with a failure injected through the projection itself: the
/// `fail_at`-th event it is asked to apply fails, once.
struct FailOnce {
    inner: LedgerProjection,
    seen: AtomicUsize,
    fail_at: usize,
    failed: AtomicBool,
}

#[async_trait]
impl Projection for FailOnce {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn version(&self) -> i64 {
        self.inner.version()
    }
    fn tables(&self) -> Vec<TableSpec> {
        self.inner.tables()
    }
    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(ProjectionError::Handler(format!(
                "injected failure at event #{n}"
            )));
        }
        self.inner.apply(tx, event).await
    }
    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        self.inner.with_prefix(prefix)
    }
}

async fn write_transfers(store: &Store, n: usize) {
    let bus = crate::common::bus(store);
    for i in 0..n {
        let amount = format!("{}.{:02}", 1 + i % 50, i % 100);
        bus.execute(
            &format!("r-{i}"),
            transfer(
                &format!("acct:{}", i % 7),
                &format!("acct:{}", (i + 3) % 7 + 7),
                &amount,
                Utc::now(),
            ),
            &meta(),
        )
        .await
        .unwrap();
    }
}

async fn resume_after_failure(t: TestStore) {
    write_transfers(&t.store, 300).await;
    let events = read_all(&t.store).await;
    let failing = || {
        Arc::new(FailOnce {
            inner: LedgerProjection::default(),
            seen: AtomicUsize::new(0),
            fail_at: 150, // the 50th event of the second batch
            failed: AtomicBool::new(false),
        })
    };
    // Without parking (a rebuild's runner) the failed batch stops the run and leaves nothing
    // behind: checkpoint and tables are at the first batch.
    let once = failing();
    let strict = ProjectionRunner::with_checkpoint(t.store.clone(), once.clone(), "ledger".into())
        .with_batch_size(100);
    strict.prepare().await.unwrap();
    let err = strict.catch_up().await.unwrap_err();
    assert!(matches!(err, ProjectionError::Handler(_)));
    assert_eq!(
        strict.status().await.unwrap().last_error.as_deref(),
        Some(err.to_string().as_str())
    );
    assert_eq!(strict.checkpoint().await.unwrap(), events[99].position);
    assert_eq!(history_rows(&t.store, "rm_ledger_history").await, 200);

    // "Restart": a new runner over the same projection resumes from the checkpoint.
    let restarted = ProjectionRunner::new(t.store.clone(), once).with_batch_size(100);
    restarted.prepare().await.unwrap();
    assert_eq!(restarted.catch_up().await.unwrap(), 200);
    assert_eq!(restarted.checkpoint().await.unwrap(), events[299].position);
    assert_eq!(history_rows(&t.store, "rm_ledger_history").await, 600);
    cmp_with_rebuild(&t, &events).await;

    // A live runner gets past the failure by itself: the failed batch is retried event by
    // event, the failing event succeeds on its second try, nothing is parked.
    let fresh = match t.store.backend() {
        agora_commands::Backend::Postgres => TestStore::postgres().await,
        agora_commands::Backend::Sqlite => TestStore::sqlite().await,
    };
    write_transfers(&fresh.store, 300).await;
    let events = read_all(&fresh.store).await;
    let live = ProjectionRunner::new(fresh.store.clone(), failing()).with_batch_size(100);
    live.prepare().await.unwrap();
    assert_eq!(live.catch_up().await.unwrap(), 300);
    assert_eq!(live.status().await.unwrap().last_error, None);
    let parked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM parked_events")
        .fetch_one(fresh.store.read_models())
        .await
        .unwrap();
    assert_eq!(parked, 0);
    cmp_with_rebuild(&fresh, &events).await;
}

async fn cmp_with_rebuild(t: &TestStore, events: &[StoredEvent]) {
    // Same state as an uninterrupted run: rebuild from zero into fresh tables and compare.
    let cmp = rebuild_and_compare(&t.store, &LedgerProjection::default(), false)
        .await
        .unwrap();
    assert!(cmp.is_equal(), "{cmp:#?}");
    assert_eq!(cmp.position, events[299].position);
    assert_eq!(
        cmp.tables.iter().map(|d| d.live_rows).sum::<i64>(),
        cmp.tables.iter().map(|d| d.rebuilt_rows).sum::<i64>()
    );
}
both_backends!(
    resume_after_injected_failure_matches_uninterrupted_run,
    resume_after_failure
);

async fn rebuild_detects_drift(t: TestStore) {
    write_transfers(&t.store, 40).await;
    let live = LedgerProjection::default();
    let runner = ProjectionRunner::new(t.store.clone(), Arc::new(live.clone()));
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    assert!(rebuild_and_compare(&t.store, &live, false)
        .await
        .unwrap()
        .is_equal());
    sqlx::query("UPDATE rm_ledger_balances SET posted = '999.00' WHERE account = 'acct:1'")
        .execute(t.store.read_models())
        .await
        .unwrap();
    let cmp = rebuild_and_compare(&t.store, &live, false).await.unwrap();
    assert!(!cmp.is_equal());
    let drifted: Vec<&str> = cmp
        .tables
        .iter()
        .filter(|d| !d.is_equal())
        .map(|d| d.live_table.as_str())
        .collect();
    assert_eq!(drifted, ["rm_ledger_balances"]);
    assert_eq!(cmp.tables[0].only_live, 1);
    // Scratch tables are gone afterwards.
    let scratch = sqlx::query("SELECT COUNT(*) FROM rb_ledger_balances")
        .fetch_one(t.store.read_models())
        .await;
    assert!(scratch.is_err());
}
both_backends!(rebuild_and_compare_detects_drift, rebuild_detects_drift);

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

async fn version_bump(t: TestStore) {
    write_transfers(&t.store, 20).await;
    let runner = ProjectionRunner::new(t.store.clone(), Arc::new(LedgerProjection::default()));
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    sqlx::query("UPDATE rm_ledger_balances SET posted = '1.00'")
        .execute(t.store.read_models())
        .await
        .unwrap();
    let bumped = ProjectionRunner::new(
        t.store.clone(),
        Arc::new(Bumped(LedgerProjection::default())),
    );
    bumped.prepare().await.unwrap();
    assert_eq!(
        bumped.catch_up().await.unwrap(),
        20,
        "a new version replays from zero"
    );
    assert!(
        rebuild_and_compare(&t.store, &LedgerProjection::default(), false)
            .await
            .unwrap()
            .is_equal()
    );
}
both_backends!(version_bump_rebuilds_from_zero, version_bump);

async fn wait_for_head(store: &Store) -> i64 {
    let head = store.head().await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let row: (i64, i64, i64) = sqlx::query_as(
            "SELECT transaction_id, global_position, events_applied FROM projection_checkpoints WHERE name = 'ledger'",
        )
        .fetch_one(store.read_models())
        .await
        .unwrap();
        if (row.0, row.1) >= (head.transaction_id, head.global_position) {
            return row.2;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projection did not reach the head"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two processes on one PostgreSQL database: one runs the projection, the other stands by and
/// takes over when the first stops; every event is applied exactly once throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_runner_per_projection_across_processes() {
    let t = TestStore::postgres().await;
    let other = t.reconnect().await;
    let (sig_a, sig_b) = (CommitSignal::new(), CommitSignal::new());
    let host_a = ProjectionHost::start(
        &t.store,
        &sig_a,
        vec![Arc::new(LedgerProjection::default())],
    )
    .await
    .unwrap();
    let host_b = ProjectionHost::start(&other, &sig_b, vec![Arc::new(LedgerProjection::default())])
        .await
        .unwrap();
    let bus_a = CommandBus::<JournalEntry>::new(&t.store, sig_a.clone(), ());
    for i in 0..50 {
        bus_a
            .execute(
                &format!("a-{i}"),
                transfer("acct:1", "acct:2", "1.00", Utc::now()),
                &meta(),
            )
            .await
            .unwrap();
    }
    assert_eq!(wait_for_head(&t.store).await, 50);
    let leases: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
          WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()",
    )
    .fetch_one(t.store.read_models())
    .await
    .unwrap();
    assert_eq!(
        leases, 1,
        "exactly one process holds the projection's lease"
    );

    host_a.shutdown().await;
    let bus_b = CommandBus::<JournalEntry>::new(&other, sig_b.clone(), ());
    for i in 0..50 {
        bus_b
            .execute(
                &format!("b-{i}"),
                transfer("acct:2", "acct:3", "0.50", Utc::now()),
                &meta(),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        wait_for_head(&other).await,
        100,
        "the standby took over; each event once"
    );
    host_b.shutdown().await;
    assert!(
        rebuild_and_compare(&other, &LedgerProjection::default(), false)
            .await
            .unwrap()
            .is_equal()
    );
    other.close().await;
}
