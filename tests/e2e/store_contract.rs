//! The event-store contract, run against every backend: append, optimistic-concurrency
//! conflict, load, global-order read, immutability.

use agora_commands::store::{LogPosition, EVENT_ID_KEY};
use agora_commands::CommandError;
use agora_domain::ledger::{JournalEntry, LedgerError, LedgerEvent};
use agora_tests::{both_backends, read_all, TestStore};
use chrono::Utc;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError};
use serde_json::json;

use crate::common::{bus, meta, raw_event, transfer};

async fn append_and_load(t: TestStore) {
    let bus = bus(&t.store);
    let m = meta().with_idempotency_key("key-1").unwrap();
    bus.execute(
        "e-1",
        transfer("platform:funding", "seller:s1:payable", "12.50", Utc::now()),
        &m,
    )
    .await
    .unwrap();
    let events = t
        .store
        .event_repository()
        .get_events::<JournalEntry>("e-1")
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.aggregate_type.as_str(), e.sequence, e.event_type.as_str()),
        ("journal_entry", 1, "EntryRecorded")
    );
    let payload: LedgerEvent = serde_json::from_value(e.payload.clone()).unwrap();
    assert!(
        matches!(payload, LedgerEvent::EntryRecorded { ref postings, .. } if postings.len() == 2)
    );
    let md = &e.metadata;
    let event_id = md[EVENT_ID_KEY].as_str().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(event_id).unwrap().get_version_num(),
        7
    );
    assert_eq!(md["actor"], "tester");
    assert_eq!(md["tenant"], "tenant-a");
    assert_eq!(md["idempotency_key"], "key-1");
    assert_eq!(md["correlation_id"], m.correlation_id.to_string());
    assert!(md["occurred_at"].as_str().unwrap().ends_with('Z'));
    // Unknown aggregates load as empty.
    assert!(t
        .store
        .event_repository()
        .get_events::<JournalEntry>("nope")
        .await
        .unwrap()
        .is_empty());
}
both_backends!(append_and_load_carry_metadata, append_and_load);

async fn conflict(t: TestStore) {
    let repo = t.store.event_repository();
    repo.persist::<JournalEntry>(&[raw_event("c-1", 1, "first")], None)
        .await
        .unwrap();
    let err = repo
        .persist::<JournalEntry>(&[raw_event("c-1", 1, "second")], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PersistenceError::OptimisticLockError),
        "got {err:?}"
    );
    // A conflicting multi-event commit writes none of its events.
    let err = repo
        .persist::<JournalEntry>(&[raw_event("c-1", 2, "a"), raw_event("c-1", 1, "b")], None)
        .await
        .unwrap_err();
    assert!(matches!(err, PersistenceError::OptimisticLockError));
    let stored = repo.get_events::<JournalEntry>("c-1").await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].payload["marker"], "first");
}
both_backends!(optimistic_concurrency_conflict, conflict);

async fn domain_rejection(t: TestStore) {
    let bus = bus(&t.store);
    let at = Utc::now();
    bus.execute("d-1", transfer("a:x", "b:y", "1.00", at), &meta())
        .await
        .unwrap();
    // Same id, same content: idempotent, no second event.
    bus.execute("d-1", transfer("a:x", "b:y", "1.00", at), &meta())
        .await
        .unwrap();
    let err = bus
        .execute("d-1", transfer("a:x", "b:y", "2.00", at), &meta())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CommandError::Rejected(LedgerError::EntryAlreadyExistsWithDifferentContent)
    ));
    assert!(!err.is_retryable());
    assert_eq!(read_all(&t.store).await.len(), 1);
}
both_backends!(rejected_commands_write_nothing, domain_rejection);

async fn global_order(t: TestStore) {
    let repo = t.store.event_repository();
    let ids = ["g-b", "g-a", "g-c", "g-a", "g-b"];
    let mut seqs = std::collections::HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let seq = seqs.entry(*id).and_modify(|s| *s += 1).or_insert(1usize);
        repo.persist::<JournalEntry>(&[raw_event(id, *seq, &i.to_string())], None)
            .await
            .unwrap();
    }
    let all = read_all(&t.store).await;
    let markers: Vec<String> = all
        .iter()
        .map(|e| e.payload["marker"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        markers,
        ["0", "1", "2", "3", "4"],
        "commit order, not aggregate order"
    );
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert!(all.iter().all(|e| e.meta(EVENT_ID_KEY).is_some()));
    // Reading after a position returns exactly the rest; limits are honoured.
    let rest = t.store.read_global(all[1].position, 100).await.unwrap();
    assert_eq!(rest.len(), 3);
    assert_eq!(rest[0].position, all[2].position);
    assert_eq!(
        t.store
            .read_global(LogPosition::START, 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(t.store.head().await.unwrap(), Some(all[4].position));
    assert_eq!(
        t.store.pending_after(all[2].position).await.unwrap().events,
        2
    );
}
both_backends!(global_order_read, global_order);

async fn immutable(t: TestStore) {
    bus(&t.store)
        .execute("i-1", transfer("a:x", "b:y", "1.00", Utc::now()), &meta())
        .await
        .unwrap();
    let pool = t.store.read_models();
    let update = sqlx::query("UPDATE events SET payload = payload")
        .execute(pool)
        .await;
    assert!(update.is_err(), "UPDATE on events must be refused");
    let delete = sqlx::query("DELETE FROM events").execute(pool).await;
    assert!(delete.is_err(), "DELETE on events must be refused");
    assert_eq!(read_all(&t.store).await.len(), 1);
}
both_backends!(events_are_immutable, immutable);

/// Inserts one probe event inside `tx`, in the repository's INSERT shape
/// (`pg_insert_events`): the database fills `global_position`, `transaction_id` and
/// `recorded_at`.
async fn pg_insert_probe(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: &str,
    marker: &str,
) -> (i64, i64) {
    sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         RETURNING transaction_id::text::bigint, global_position",
    )
    .bind("journal_entry")
    .bind(id)
    .bind(1_i64)
    .bind("Probe")
    .bind("1.0")
    .bind(json!({ "marker": marker }))
    .bind(json!({}))
    .fetch_one(&mut **tx)
    .await
    .unwrap()
}

/// Reads from `after` until `n` events came back (other tests' transactions on the same server
/// hold the horizon back for a moment), failing after a generous deadline.
async fn read_until(store: &agora_commands::Store, after: LogPosition, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = store.read_global(after, 100).await.unwrap();
        if got.len() >= n {
            return got
                .iter()
                .map(|e| e.payload["marker"].as_str().unwrap_or_default().to_string())
                .collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {got:?} became readable"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The PostgreSQL horizon reader never skips a slow transaction's event. Transaction A appends
/// first (lower xid and lower global position) and stays open; B appends and commits. A reader
/// must not see B yet: were it to, its checkpoint would move past A's position and A's event
/// would be lost when A commits. Once A commits, both are read in (transaction_id,
/// global_position) order, A first, and a reader at B's checkpoint sees nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_horizon_reader_waits_for_open_transactions() {
    let t = TestStore::postgres().await;
    let pool = t.store.pg_pool().expect("a PostgreSQL store").clone();
    let checkpoint = LogPosition::START;

    let mut tx_a = pool.begin().await.unwrap();
    let (xid_a, pos_a) = pg_insert_probe(&mut tx_a, "h-a", "A").await;
    let mut tx_b = pool.begin().await.unwrap();
    let (xid_b, pos_b) = pg_insert_probe(&mut tx_b, "h-b", "B").await;
    tx_b.commit().await.unwrap();
    assert!(xid_a < xid_b && pos_a < pos_b, "A began and inserted first");

    // B is committed, but A (older) is still open: B is behind the horizon.
    for _ in 0..20 {
        let seen = t.store.read_global(checkpoint, 100).await.unwrap();
        assert!(
            seen.is_empty(),
            "nothing is readable while an older transaction is open, got {:?}",
            seen.iter().map(|e| &e.payload).collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let backlog = t.store.pending_after(checkpoint).await.unwrap();
    assert_eq!(
        backlog.events, 1,
        "B is counted as pending, A is not committed"
    );

    tx_a.commit().await.unwrap();
    assert_eq!(read_until(&t.store, checkpoint, 2).await, ["A", "B"]);
    let both = t.store.read_global(checkpoint, 100).await.unwrap();
    let positions: Vec<(i64, i64)> = both
        .iter()
        .map(|e| (e.position.transaction_id, e.position.global_position))
        .collect();
    assert_eq!(positions, [(xid_a, pos_a), (xid_b, pos_b)]);
    // Resuming at either checkpoint neither repeats nor loses an event.
    assert_eq!(read_until(&t.store, both[0].position, 1).await, ["B"]);
    assert!(t
        .store
        .read_global(both[1].position, 100)
        .await
        .unwrap()
        .is_empty());
}

/// A transaction that took its xid first but inserted last is still read before the younger
/// transaction's event that it follows in `global_position`: the order is (transaction_id,
/// global_position), so a checkpoint taken after the younger event is never ahead of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_horizon_orders_by_transaction_then_position() {
    let t = TestStore::postgres().await;
    let pool = t.store.pg_pool().expect("a PostgreSQL store").clone();

    let mut tx_a = pool.begin().await.unwrap();
    let _: (i64,) = sqlx::query_as("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut *tx_a)
        .await
        .unwrap();
    let mut tx_b = pool.begin().await.unwrap();
    let (xid_b, pos_b) = pg_insert_probe(&mut tx_b, "o-b", "B").await;
    tx_b.commit().await.unwrap();
    let (xid_a, pos_a) = pg_insert_probe(&mut tx_a, "o-a", "A").await;
    assert!(
        xid_a < xid_b && pos_a > pos_b,
        "A is older but inserted later"
    );
    for _ in 0..10 {
        assert!(t
            .store
            .read_global(LogPosition::START, 100)
            .await
            .unwrap()
            .is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    tx_a.commit().await.unwrap();
    assert_eq!(
        read_until(&t.store, LogPosition::START, 2).await,
        ["A", "B"]
    );
}

/// Follows the log from the start with batches of `batch` until `head`, as a projection does.
async fn follow(
    store: agora_commands::Store,
    batch: i64,
    head: LogPosition,
) -> Vec<(LogPosition, serde_json::Value)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut after, mut seen) = (LogPosition::START, Vec::new());
    while after < head {
        let got = store.read_global(after, batch).await.unwrap();
        assert!(got.len() as i64 <= batch, "never more than asked");
        match got.last() {
            Some(last) => after = last.position,
            None => {
                assert!(std::time::Instant::now() < deadline, "head never readable");
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        seen.extend(got.into_iter().map(|e| (e.position, e.payload)));
    }
    seen
}

/// Readers of one store share the tail of the log in memory: while writers append, readers
/// with different batch sizes each see exactly what the database holds, in order, with no gap
/// and no repeat; readers that start over afterwards are served from memory alone.
async fn shared_tail(t: TestStore) {
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let bus = bus(&t.store);
            tokio::spawn(async move {
                for i in 0..60 {
                    let amount = format!("{}.{:02}", w + 1, i);
                    bus.execute(
                        &format!("tail-{w}-{i}"),
                        transfer("platform:funding", "seller:s1:payable", &amount, Utc::now()),
                        &meta(),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    // Readers follow while the writers append, up to whatever is the head when they start.
    let early_head = loop {
        if let Some(h) = t.store.head().await.unwrap() {
            break h;
        }
        tokio::task::yield_now().await;
    };
    let readers: Vec<_> = [1, 7, 50, 500]
        .into_iter()
        .map(|b| tokio::spawn(follow(t.store.clone(), b, early_head)))
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let head = t.store.head().await.unwrap().expect("events");
    let mut from_db = Vec::new();
    let mut after = LogPosition::START;
    while after < head {
        let got = t
            .store
            .read_global_from_database(after, 1000)
            .await
            .unwrap();
        if let Some(last) = got.last() {
            after = last.position;
        }
        from_db.extend(got.into_iter().map(|e| (e.position, e.payload)));
    }
    assert_eq!(from_db.len(), 240, "every append is in the log once");
    for r in readers {
        let seen = r.await.unwrap();
        assert_eq!(
            seen[..],
            from_db[..seen.len()],
            "a reader saw what the database holds"
        );
    }
    // One reader follows to the head; those after it find the whole log in memory.
    assert_eq!(follow(t.store.clone(), 500, head).await, from_db);
    for b in [3, 1000] {
        let before = t.store.tail_stats();
        let seen = follow(t.store.clone(), b, head).await;
        assert_eq!(
            seen, from_db,
            "a later reader sees the whole log as the database holds it"
        );
        let now = t.store.tail_stats();
        assert_eq!(
            (
                now.from_memory - before.from_memory,
                now.from_database - before.from_database
            ),
            (240, 0),
            "all of it from memory"
        );
    }
}
both_backends!(
    readers_share_the_tail_and_see_what_the_database_holds,
    shared_tail
);
