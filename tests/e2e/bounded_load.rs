//! Aggregates whose streams grow with use load in bounded work: from their latest snapshot
//! plus fewer than `SNAPSHOT_EVERY_EVENTS` events, measured as events read from the log.

use std::collections::HashMap;

use agora_commands::store::{snapshot_policy, SNAPSHOT_EVERY_EVENTS};
use agora_commands::{CommandBus, CommandError, CommitSignal};
use agora_domain::logmarket::seller::{Achievement, LogSeller, SellerCommand, SellerEvent};
use agora_domain::tenancy::budget::TenantBudget;
use agora_tests::{both_backends, TestStore};
use chrono::Utc;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, EventStore};
use rust_decimal::Decimal;

use crate::common::meta;

/// Events in the history of the "10,000th command" test.
const LONG_HISTORY_EVENTS: usize = 10_000;

fn credit(analysis_id: &str, critical_errors: u32) -> SellerCommand {
    SellerCommand::CreditAnalysis {
        analysis_id: analysis_id.to_owned(),
        quality: Decimal::from(40),
        critical_errors,
        security_findings: 0,
        performance_findings: 0,
        occurred_at: Utc::now(),
    }
}

fn credited(analysis_id: String) -> SellerEvent {
    SellerEvent::AnalysisCredited {
        analysis_id,
        quality: Decimal::from(40),
        critical_errors: 0,
        security_findings: 0,
        performance_findings: 0,
        occurred_at: Utc::now(),
    }
}

/// Appends `n` credit events to `seller` through the event store (the path commands take), a
/// boundary's worth per commit so the history is built quickly.
async fn seed_credits(t: &TestStore, seller: &str, n: usize) {
    let es = t.store.event_store::<LogSeller>();
    let mut written = 0;
    while written < n {
        let batch = (n - written).min(SNAPSHOT_EVERY_EVENTS);
        let ctx = es.load_aggregate(seller).await.unwrap();
        let events = (written..written + batch)
            .map(|i| credited(format!("{seller}-seed-{i}")))
            .collect();
        es.commit(events, ctx, HashMap::new()).await.unwrap();
        written += batch;
    }
}

/// The state folded from every event, ignoring snapshots.
async fn full_replay<A: Aggregate>(t: &TestStore, id: &str) -> A {
    PersistedEventStore::<_, A>::new_event_store(t.store.event_repository())
        .load_aggregate(id)
        .await
        .unwrap()
        .aggregate
}

/// Events read from the log by one command.
async fn events_loaded_by(
    t: &TestStore,
    bus: &CommandBus<LogSeller>,
    id: &str,
    c: SellerCommand,
) -> u64 {
    let before = t.store.events_loaded();
    bus.execute(id, c, &meta()).await.unwrap();
    t.store.events_loaded() - before
}

async fn long_history_loads_bounded(t: TestStore) {
    let bus = CommandBus::<LogSeller>::new(&t.store, CommitSignal::new(), ());
    // A young seller: the 10th command reads the 9 events before it.
    seed_credits(&t, "young", 9).await;
    let tenth = events_loaded_by(&t, &bus, "young", credit("young-10", 0)).await;
    assert_eq!(tenth, 9);

    seed_credits(&t, "old", LONG_HISTORY_EVENTS - 1).await;
    let ten_thousandth = events_loaded_by(&t, &bus, "old", credit("old-10000", 0)).await;
    assert!(
        ten_thousandth < SNAPSHOT_EVERY_EVENTS as u64,
        "the 10,000th command read {ten_thousandth} events"
    );
    assert!(ten_thousandth <= tenth.max(SNAPSHOT_EVERY_EVENTS as u64));
    // The snapshot-loaded state is the state folded from every event.
    let loaded = bus.load("old").await.unwrap();
    assert_eq!(loaded, full_replay::<LogSeller>(&t, "old").await);
    // Idempotency survives the snapshot: a repeated credit of a seeded analysis writes nothing.
    bus.execute("old", credit("old-seed-5", 0), &meta())
        .await
        .unwrap();
    assert_eq!(full_replay::<LogSeller>(&t, "old").await, loaded);
}
both_backends!(
    ten_thousandth_seller_command_loads_like_the_tenth,
    long_history_loads_bounded
);

/// A commit that crosses a boundary with more than one event: the snapshot stands at the
/// boundary, and the commit's later events are still applied on load (postgres-es records the
/// commit's last sequence instead, which would lose them).
async fn snapshot_inside_a_multi_event_commit(t: TestStore) {
    let bus = CommandBus::<LogSeller>::new(&t.store, CommitSignal::new(), ());
    seed_credits(&t, "s", SNAPSHOT_EVERY_EVENTS - 1).await;
    // Credit (sequence 100, the boundary) + Data Detective unlocked (sequence 101).
    bus.execute("s", credit("ten-errors", 10), &meta())
        .await
        .unwrap();
    let loaded = bus.load("s").await.unwrap();
    assert!(loaded.unlocked().contains(&Achievement::DataDetective));
    assert_eq!(loaded, full_replay::<LogSeller>(&t, "s").await);
    let before = t.store.events_loaded();
    bus.load("s").await.unwrap();
    assert_eq!(
        t.store.events_loaded() - before,
        1,
        "snapshot at 100 + event 101"
    );
}
both_backends!(
    snapshot_boundary_inside_a_commit,
    snapshot_inside_a_multi_event_commit
);

/// Writers racing across snapshot boundaries on one seller: every credit is recorded once, the
/// snapshot-loaded state equals the full fold, and one snapshot row is kept.
async fn concurrent_writers(t: TestStore) {
    const WRITERS: usize = 6;
    const CREDITS_PER_WRITER: usize = 60;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            let bus = CommandBus::<LogSeller>::new(&store, CommitSignal::new(), ());
            for i in 0..CREDITS_PER_WRITER {
                let c = credit(&format!("w{w}-{i}"), 1);
                loop {
                    match bus.execute("racy", c.clone(), &meta()).await {
                        Ok(()) => break,
                        Err(CommandError::Conflict) => continue,
                        Err(e) => panic!("credit failed: {e}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = WRITERS * CREDITS_PER_WRITER;
    let events = t.store.event_repository();
    let stored =
        cqrs_es::persist::PersistedEventRepository::get_events::<LogSeller>(&events, "racy")
            .await
            .unwrap();
    // One credit each, and the one Data Detective unlock.
    assert_eq!(stored.len(), total + 1);
    let bus = CommandBus::<LogSeller>::new(&t.store, CommitSignal::new(), ());
    assert_eq!(
        bus.load("racy").await.unwrap(),
        full_replay::<LogSeller>(&t, "racy").await
    );
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT last_sequence FROM snapshots WHERE aggregate_type = 'log_seller' AND aggregate_id = 'racy'",
    )
    .fetch_all(t.store.read_models())
    .await
    .unwrap();
    let boundary = ((total + 1) / SNAPSHOT_EVERY_EVENTS * SNAPSHOT_EVERY_EVENTS) as i64;
    assert_eq!(rows, [(boundary,)]);
}
both_backends!(snapshots_under_concurrent_writers, concurrent_writers);

#[test]
fn growing_aggregates_have_snapshot_policies() {
    assert!(snapshot_policy(LogSeller::TYPE).is_some());
    assert!(snapshot_policy(TenantBudget::TYPE).is_some());
}

fn day(n: i64) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .to_utc()
        + chrono::Duration::days(n)
}

async fn project_ledger(t: &TestStore) -> agora_projections::ledger::LedgerQueries {
    use agora_projections::ledger::{LedgerProjection, LedgerQueries};
    let runner = agora_projections::ProjectionRunner::new(
        t.store.clone(),
        std::sync::Arc::new(LedgerProjection::default()),
    );
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    LedgerQueries::new(t.store.read_models().clone())
}

/// `balance_as_of` reads the running balance in occurrence order from one history row, kept
/// right when entries arrive back-dated in later batches; it never re-sums the history (an
/// amount changed under it does not change the answer).
async fn balance_as_of_one_row(t: TestStore) {
    use crate::common::{account, bus, money, transfer};
    use agora_domain::money::Currency;
    let bus = bus(&t.store);
    let y = account("b:y");
    let usd = Currency::usd();
    for (id, amount, at) in [("e1", "10.00", day(0)), ("e2", "5.00", day(2))] {
        bus.execute(id, transfer("a:x", "b:y", amount, at), &meta())
            .await
            .unwrap();
    }
    project_ledger(&t).await;
    // Back-dated, in a later batch: between e1 and e2, and at e1's very instant.
    for (id, amount, at) in [("e3", "1.00", day(1)), ("e4", "2.00", day(0))] {
        bus.execute(id, transfer("a:x", "b:y", amount, at), &meta())
            .await
            .unwrap();
    }
    let q = project_ledger(&t).await;
    for (at, expected) in [
        (day(-1), "0"),
        (day(0), "12.00"),
        (day(1), "13.00"),
        (day(2), "18.00"),
        (day(3), "18.00"),
    ] {
        assert_eq!(
            q.balance_as_of(&y, usd, at).await.unwrap(),
            money(expected),
            "as of {at}"
        );
    }
    assert_eq!(
        q.balance_as_of(&account("a:x"), usd, day(1)).await.unwrap(),
        money("-13.00")
    );
    sqlx::query(
        "UPDATE rm_ledger_history SET amount = '1000.00' WHERE account = 'b:y' AND seq = 1",
    )
    .execute(t.store.read_models())
    .await
    .unwrap();
    assert_eq!(
        q.balance_as_of(&y, usd, day(3)).await.unwrap(),
        money("18.00")
    );
}
both_backends!(balance_as_of_reads_one_running_row, balance_as_of_one_row);

/// The backlog behind a checkpoint (lag, read on every `/metrics` scrape and `/readyz`) counts
/// at most a cap of events instead of every event after the checkpoint.
async fn backlog_count_is_capped(t: TestStore) {
    use crate::common::{bus, transfer};
    use agora_commands::store::LogPosition;
    let bus = bus(&t.store);
    for i in 0..5 {
        bus.execute(
            &format!("b-{i}"),
            transfer("a:x", "b:y", "1.00", Utc::now()),
            &meta(),
        )
        .await
        .unwrap();
    }
    let all = agora_tests::read_all(&t.store).await;
    let capped = t
        .store
        .pending_after_at_most(LogPosition::START, 3)
        .await
        .unwrap();
    assert_eq!(capped.events, 3);
    assert_eq!(capped.oldest_recorded_at, Some(all[0].recorded_at));
    assert_eq!(
        t.store
            .pending_after(LogPosition::START)
            .await
            .unwrap()
            .events,
        5
    );
    assert_eq!(
        t.store.pending_after(all[4].position).await.unwrap().events,
        0
    );
}
both_backends!(backlog_count_is_bounded, backlog_count_is_capped);
