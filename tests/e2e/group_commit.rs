//! Group commit (issue 12): commits decided concurrently share one transaction, and each keeps
//! its own optimistic-concurrency check: a commit whose stream moved fails alone, and a
//! commit's events are stored all together or not at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use agora_commands::Store;
use agora_domain::ledger::JournalEntry;
use agora_tests::{both_backends, read_all, TestStore};
use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use tokio::task::JoinHandle;

use crate::common::raw_event;

const WRITERS: usize = 16;
const COMMITS_PER_WRITER: usize = 60;
const AGGREGATES: usize = 8;

/// Appends `size` events to `aggregate` after its current end, retrying when the stream moved.
async fn append_after_end(store: &Store, aggregate: &str, size: usize, marker: &str) -> usize {
    let repo = store.event_repository();
    for attempt in 0.. {
        let end = repo
            .get_events::<JournalEntry>(aggregate)
            .await
            .expect("load")
            .len();
        let events: Vec<SerializedEvent> = (1..=size)
            .map(|k| raw_event(aggregate, end + k, marker))
            .collect();
        match repo.persist::<JournalEntry>(&events, None).await {
            Ok(()) => return attempt,
            Err(PersistenceError::OptimisticLockError) => {
                assert!(attempt < 1_000, "{marker}: the stream kept moving");
            }
            Err(e) => panic!("{marker}: {e:?}"),
        }
    }
    unreachable!()
}

async fn concurrent_commits(t: TestStore) {
    let store = Arc::new(t.store.clone());
    let tasks: Vec<JoinHandle<Vec<(String, String, usize)>>> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for round in 0..COMMITS_PER_WRITER {
                    // Writers share aggregates (conflicts) and write 1 to 3 events a commit.
                    let aggregate = format!("gc-{}", (w * 7 + round) % AGGREGATES);
                    let size = 1 + (w + round) % 3;
                    let marker = format!("w{w}-r{round}");
                    append_after_end(&store, &aggregate, size, &marker).await;
                    acked.push((aggregate, marker, size));
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("writer"));
    }
    // Every acknowledged commit is stored whole, once, in consecutive positions of its
    // stream; nothing else is stored; every stream is 1..n without a gap.
    let events = read_all(&t.store).await;
    let expected: usize = acked.iter().map(|(_, _, n)| n).sum();
    assert_eq!(
        events.len(),
        expected,
        "events stored = events acknowledged"
    );
    let mut streams: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for e in &events {
        let marker = e.payload["marker"].as_str().expect("marker").to_owned();
        streams
            .entry(e.aggregate_id.clone())
            .or_default()
            .push((e.sequence as usize, marker));
    }
    let mut seen: HashMap<String, (String, Vec<usize>)> = HashMap::new();
    for (aggregate, mut stream) in streams {
        stream.sort();
        let sequences: Vec<usize> = stream.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            sequences,
            (1..=stream.len()).collect::<Vec<_>>(),
            "{aggregate}"
        );
        for (seq, marker) in stream {
            let entry = seen
                .entry(marker)
                .or_insert_with(|| (aggregate.clone(), Vec::new()));
            assert_eq!(entry.0, aggregate, "a commit spans one aggregate");
            entry.1.push(seq);
        }
    }
    assert_eq!(seen.len(), acked.len());
    for (aggregate, marker, size) in &acked {
        let (stored_in, seqs) = &seen[marker];
        assert_eq!(stored_in, aggregate);
        assert_eq!(seqs.len(), *size, "{marker}: all of its events, once");
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{marker}: {seqs:?}"
        );
    }
    let stats = t.store.append_stats();
    assert_eq!(stats.commits as usize, acked.len());
    assert_eq!(stats.events as usize, expected);
}
both_backends!(
    concurrent_commits_are_all_or_nothing_and_lose_nothing,
    concurrent_commits
);

/// Waits until writers have taken `n` commits from the queue since the store connected.
async fn wait_taken(store: &Store, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.append_stats().taken != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writers never took {n} commits (took {})",
            store.append_stats().taken
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_queued(store: &Store, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while store.append_queued() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue never reached {n} (at {})",
            store.append_queued()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn spawn_commit(
    store: &Store,
    events: Vec<SerializedEvent>,
) -> JoinHandle<Result<(), PersistenceError>> {
    let repo = store.event_repository();
    tokio::spawn(async move { repo.persist::<JournalEntry>(&events, None).await })
}

/// Blocks every append writer, queues four commits, releases the writers: the four are
/// settled as one batch, in which a commit clashing with a batch-mate and one whose stream
/// moved before the batch fail alone, and the others are stored.
async fn a_conflict_fails_alone(t: TestStore) {
    let store = t.store.clone();
    let repo = store.event_repository();
    repo.persist::<JournalEntry>(&[raw_event("z", 1, "earlier")], None)
        .await
        .expect("seed z");
    // Block the writers: on SQLite by holding the process's write gate (one writer); on
    // PostgreSQL by holding uncommitted rows whose keys the two writers' commits need.
    let (gate, pg_hold, blockers) = match store.pg_pool() {
        Some(pool) => {
            let mut hold = pool.begin().await.expect("begin");
            for id in ["block-1", "block-2"] {
                sqlx::query(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) VALUES ('journal_entry', $1, 1, 'Probe', \
                     '1.0', '{}', '{}')",
                )
                .bind(id)
                .execute(&mut *hold)
                .await
                .expect("hold");
            }
            // One blocked commit per writer: each is taken before the next is sent.
            let mut blockers = Vec::new();
            for (n, id) in ["block-1", "block-2"].iter().enumerate() {
                blockers.push(spawn_commit(&store, vec![raw_event(id, 1, "blocked")]));
                wait_taken(&store, 2 + n as u64).await;
            }
            (None, Some(hold), blockers)
        }
        None => {
            let gate = store.begin_read_model_write().await.expect("gate");
            let blockers = vec![spawn_commit(
                &store,
                vec![raw_event("block-1", 1, "blocked")],
            )];
            wait_taken(&store, 2).await;
            (Some(gate), None, blockers)
        }
    };
    let queued = [
        vec![raw_event("x", 1, "a")],
        vec![raw_event("y", 1, "b"), raw_event("y", 2, "b")],
        vec![raw_event("x", 1, "c")],
        vec![raw_event("z", 1, "d")],
    ];
    let mut handles = Vec::new();
    for (i, events) in queued.into_iter().enumerate() {
        handles.push(spawn_commit(&store, events));
        wait_queued(&store, i + 1).await;
    }
    if let Some(gate) = gate {
        gate.rollback().await.expect("release gate");
    }
    if let Some(hold) = pg_hold {
        hold.rollback().await.expect("release rows");
    }
    for b in blockers {
        b.await.expect("join").expect("blocked commit stored");
    }
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await.expect("join"));
    }
    assert!(outcomes[0].is_ok(), "a: {:?}", outcomes[0]);
    assert!(outcomes[1].is_ok(), "b: {:?}", outcomes[1]);
    assert!(
        matches!(outcomes[2], Err(PersistenceError::OptimisticLockError)),
        "c clashes with a: {:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], Err(PersistenceError::OptimisticLockError)),
        "d's stream moved: {:?}",
        outcomes[3]
    );
    let markers = |id: &'static str| {
        let repo = store.event_repository();
        async move {
            repo.get_events::<JournalEntry>(id)
                .await
                .expect("load")
                .into_iter()
                .map(|e| e.payload["marker"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(markers("x").await, ["a"]);
    assert_eq!(markers("y").await, ["b", "b"]);
    assert_eq!(markers("z").await, ["earlier"]);
    let stats = store.append_stats();
    assert!(stats.max_batch >= 3, "one batch held a, b and d: {stats:?}");
    assert_eq!(stats.conflicts, 2, "{stats:?}");
}
both_backends!(
    a_commit_whose_stream_moved_fails_alone,
    a_conflict_fails_alone
);
