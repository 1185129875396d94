//! Batched ingest of records that start their own stream (issue 12 item 3): many records in
//! one transaction, a re-sent id is a no-op, a different body under a used id is a conflict,
//! and concurrent re-sends store each record once.

use std::sync::Arc;

use agora_commands::append::{IngestError, IngestOutcome, IngestRecord, MAX_INGEST_BATCH};
use agora_commands::CommandBus;
use agora_domain::ledger::{JournalEntry, LedgerCommand, LedgerEvent};
use agora_tests::{both_backends, read_all, TestStore};
use chrono::{TimeZone, Utc};

use crate::common::{bus, meta, transfer};

fn entry(amount: &str) -> LedgerEvent {
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    match transfer("platform:funding", "seller:s1:payable", amount, at) {
        LedgerCommand::Record {
            currency,
            postings,
            memo,
            occurred_at,
            ..
        } => LedgerEvent::EntryRecorded {
            currency,
            postings,
            memo,
            occurred_at,
        },
        _ => unreachable!("transfer builds a Record"),
    }
}

fn record(id: &str, amount: &str) -> IngestRecord<LedgerEvent> {
    IngestRecord {
        id: id.into(),
        event: entry(amount),
    }
}

fn codes(outcomes: &[IngestOutcome]) -> Vec<&'static str> {
    outcomes.iter().map(IngestOutcome::code).collect()
}

async fn dedup_by_natural_id(t: TestStore) {
    let bus: CommandBus<JournalEntry> = bus(&t.store);
    let m = meta();
    let first: Vec<_> = (0..10)
        .map(|i| record(&format!("ex-{i}"), "1.00"))
        .collect();
    let out = bus.ingest(first.clone(), &m).await.unwrap();
    assert_eq!(codes(&out), ["STORED"; 10]);
    // Sent again: nothing written.
    let out = bus.ingest(first, &m).await.unwrap();
    assert_eq!(codes(&out), ["DUPLICATE"; 10]);
    // A stream a command created is not the ingest's: a record under its id conflicts.
    bus.execute(
        "by-command",
        transfer("platform:funding", "seller:s1:payable", "1.00", Utc::now()),
        &m,
    )
    .await
    .unwrap();
    let long = "x".repeat(201);
    let mixed = vec![
        record("ex-0", "2.00"),       // different body under a stored id
        record("ex-new", "3.00"),     // new
        record("", "1.00"),           // invalid id
        record(&long, "1.00"),        // invalid id
        record("ex-new", "3.00"),     // repeat inside the call, same body
        record("ex-new", "4.00"),     // repeat inside the call, different body
        record("by-command", "1.00"), // stream not ingested
        record("bad\nid", "1.00"),    // control character
    ];
    let out = bus.ingest(mixed, &m).await.unwrap();
    assert_eq!(
        codes(&out),
        [
            "CONFLICT",
            "STORED",
            "INVALID",
            "INVALID",
            "DUPLICATE",
            "CONFLICT",
            "CONFLICT",
            "INVALID"
        ]
    );
    // Ingested streams load through the aggregate like any other.
    let loaded = bus.load("ex-new").await.unwrap();
    let stored = t
        .store
        .event_repository()
        .get_events::<JournalEntry>("ex-new")
        .await;
    use cqrs_es::persist::PersistedEventRepository;
    let stored = stored.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].payload,
        serde_json::to_value(entry("3.00")).unwrap()
    );
    assert_eq!(stored[0].metadata["tenant"], "tenant-a");
    assert_ne!(
        format!("{loaded:?}"),
        format!("{:?}", JournalEntry::default())
    );
    // Too many records in one call: refused whole, nothing written.
    let before = read_all(&t.store).await.len();
    let many: Vec<_> = (0..=MAX_INGEST_BATCH)
        .map(|i| record(&format!("many-{i}"), "1.00"))
        .collect();
    assert!(matches!(
        bus.ingest(many, &m).await,
        Err(IngestError::TooMany(n)) if n == MAX_INGEST_BATCH + 1
    ));
    assert_eq!(read_all(&t.store).await.len(), before);
    assert_eq!(before, 10 + 1 + 1);
    let stats = t.store.append_stats();
    assert_eq!(stats.ingest_stored, 11);
}
both_backends!(ingest_dedups_by_natural_id, dedup_by_natural_id);

async fn concurrent_resends(t: TestStore) {
    let bus = Arc::new(bus(&t.store));
    let ids: Vec<String> = (0..300).map(|i| format!("c-{i}")).collect();
    let tasks: Vec<_> = (0..8)
        .map(|k| {
            let bus = Arc::clone(&bus);
            // Each sender sends the same records, in a different order and split differently.
            let mut mine: Vec<_> = ids.iter().map(|id| record(id, "5.00")).collect();
            mine.rotate_left(k * 37);
            tokio::spawn(async move {
                let mut out = Vec::new();
                for chunk in mine.chunks(50 + 25 * (k % 3)) {
                    out.extend(bus.ingest(chunk.to_vec(), &meta()).await.unwrap());
                }
                out
            })
        })
        .collect();
    let mut stored = 0;
    let mut duplicates = 0;
    for task in tasks {
        for o in task.await.unwrap() {
            match o {
                IngestOutcome::Stored => stored += 1,
                IngestOutcome::Duplicate => duplicates += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(stored, ids.len(), "each record stored exactly once");
    assert_eq!(duplicates, ids.len() * 7);
    let events = read_all(&t.store).await;
    assert_eq!(events.len(), ids.len());
    let mut seen: Vec<_> = events.iter().map(|e| e.aggregate_id.clone()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), ids.len());
}
both_backends!(
    concurrent_resends_store_each_record_once,
    concurrent_resends
);
