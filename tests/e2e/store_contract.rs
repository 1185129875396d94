//! The event-store contract, run against every backend: append, optimistic-concurrency
//! conflict, load, global-order read, immutability.

use agora_commands::store::{LogPosition, EVENT_ID_KEY};
use agora_commands::CommandError;
use agora_domain::ledger::{JournalEntry, LedgerError, LedgerEvent};
use agora_tests::{both_backends, read_all, TestStore};
use chrono::Utc;
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use serde_json::json;

use crate::common::{bus, meta, transfer};

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

fn raw_event(id: &str, seq: usize, marker: &str) -> SerializedEvent {
    SerializedEvent::new(
        id.into(),
        seq,
        "journal_entry".into(),
        "Probe".into(),
        "1.0".into(),
        json!({"marker": marker}),
        json!({}),
    )
}

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
