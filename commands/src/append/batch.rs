//! The append queue and its writers.
//!
//! A command's commit is queued with a reply channel. A writer that is free takes the first
//! commit waiting and every other one already queued (up to [`BatchLimits`]), and settles the
//! batch:
//!
//! 1. commits that touch a key an earlier batch-mate writes are refused as conflicts at once
//!    (only one writer of a stream position can win; the earlier one is kept);
//! 2. the rest are appended with one plain multi-row `INSERT` (one statement, one commit);
//! 3. if a stream moved (a unique violation), the batch is appended again skipping existing
//!    keys inside a transaction that is rolled back unless every row went in: the commits
//!    whose keys exist are refused, and the others are appended again, until all are settled
//!    ([`MAX_SETTLE_ROUNDS`], then one by one);
//! 4. any other failure of a batch of several commits is settled by appending each commit in
//!    its own transaction, so one bad commit fails alone.
//!
//! A commit's events are in one statement and one transaction: all stored or none.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::sql::{self, Probe};
use super::{json_size, AppendError, AppendStats, Commit, Target};

/// How large one batch may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Events in one `INSERT` (7 bound parameters each: far below both backends' limits).
    pub max_rows: usize,
    /// Estimated payload and metadata bytes in one `INSERT`.
    pub max_bytes: usize,
    /// Writers working at once (each appends its own batch). One on SQLite, which has one
    /// write lock; two on PostgreSQL, so a batch is being gathered while another commits.
    pub writers: usize,
    /// Commits waiting in the queue before callers wait to enqueue (backpressure).
    pub queue: usize,
}

/// Default [`BatchLimits::max_rows`].
pub const MAX_BATCH_ROWS: usize = 1_000;
/// Default [`BatchLimits::max_bytes`].
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Default commits waiting before enqueueing waits.
pub const QUEUE_DEPTH: usize = 4_096;
/// Rounds of refusing moved streams before the rest of a batch is appended one by one.
pub const MAX_SETTLE_ROUNDS: usize = 4;

impl BatchLimits {
    pub fn for_target(target: &Target) -> Self {
        Self {
            max_rows: MAX_BATCH_ROWS,
            max_bytes: MAX_BATCH_BYTES,
            writers: match target {
                Target::Postgres(_) => 2,
                Target::Sqlite(..) => 1,
            },
            queue: QUEUE_DEPTH,
        }
    }
}

struct Pending {
    commit: Commit,
    rows: usize,
    bytes: usize,
    reply: oneshot::Sender<Result<(), AppendError>>,
}

/// The queue the writers share: the receiver, and a commit taken that did not fit the last
/// batch (it opens the next one).
struct Queue {
    rx: mpsc::Receiver<Pending>,
    carry: Option<Pending>,
}

/// The handle every repository of a store appends through. Cloning shares the queue.
#[derive(Clone, Debug)]
pub struct Appender {
    tx: mpsc::Sender<Pending>,
    stats: Arc<AppendStats>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("rows", &self.rows).finish()
    }
}

impl Appender {
    /// Starts the writers on the current runtime. They stop when every handle is dropped.
    pub fn start(target: Target, limits: BatchLimits) -> Self {
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        let stats = Arc::new(AppendStats::default());
        let queue = Arc::new(Mutex::new(Queue { rx, carry: None }));
        for _ in 0..limits.writers.max(1) {
            tokio::spawn(write_loop(
                target.clone(),
                Arc::clone(&queue),
                limits,
                Arc::clone(&stats),
            ));
        }
        Self { tx, stats }
    }

    /// Appends one command's commit; returns once it is durable or refused.
    pub async fn append(&self, commit: Commit) -> Result<(), AppendError> {
        let rows = commit.events.len();
        if rows == 0 {
            return Ok(());
        }
        let bytes = commit
            .events
            .iter()
            .map(|e| json_size(&e.payload) + json_size(&e.metadata) + e.aggregate_id.len())
            .sum();
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            commit,
            rows,
            bytes,
            reply,
        };
        if self.tx.send(pending).await.is_err() {
            return Err(AppendError::Connection(
                "the append writers have stopped".into(),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err(AppendError::Connection(
                "the append writer stopped before answering".into(),
            ))
        })
    }

    /// Commits waiting for a writer now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn stats(&self) -> &Arc<AppendStats> {
        &self.stats
    }
}

async fn write_loop(
    target: Target,
    queue: Arc<Mutex<Queue>>,
    limits: BatchLimits,
    stats: Arc<AppendStats>,
) {
    loop {
        let batch = {
            let mut q = queue.lock().await;
            let first = match q.carry.take() {
                Some(p) => p,
                None => match q.rx.recv().await {
                    Some(p) => p,
                    None => return,
                },
            };
            let (mut rows, mut bytes) = (first.rows, first.bytes);
            let mut batch = vec![first];
            while rows < limits.max_rows && bytes < limits.max_bytes {
                let Ok(next) = q.rx.try_recv() else { break };
                if rows + next.rows > limits.max_rows || bytes + next.bytes > limits.max_bytes {
                    q.carry = Some(next);
                    break;
                }
                rows += next.rows;
                bytes += next.bytes;
                batch.push(next);
            }
            AppendStats::add(&stats.taken, batch.len());
            batch
        };
        settle(&target, batch, &stats).await;
    }
}

fn keys(c: &Commit) -> impl Iterator<Item = (&'static str, &str, usize)> + '_ {
    c.events
        .iter()
        .map(move |e| (c.aggregate_type, e.aggregate_id.as_str(), e.sequence))
}

fn answer(p: Pending, outcome: Result<(), AppendError>, stats: &AppendStats) {
    match &outcome {
        Ok(()) => {
            AppendStats::add(&stats.commits, 1);
            AppendStats::add(&stats.events, p.rows);
        }
        Err(AppendError::Conflict) => AppendStats::add(&stats.conflicts, 1),
        Err(_) => AppendStats::add(&stats.failures, 1),
    }
    // The caller may have gone (its request was cancelled): the outcome stands regardless.
    let _ = p.reply.send(outcome);
}

/// Settles a batch: every commit gets exactly one answer.
async fn settle(target: &Target, batch: Vec<Pending>, stats: &AppendStats) {
    // 1. Batch-mates writing the same stream position: the first keeps it.
    let mut taken: HashSet<(&'static str, String, usize)> = HashSet::new();
    let mut live = Vec::with_capacity(batch.len());
    for p in batch {
        let owned: Vec<_> = keys(&p.commit)
            .map(|(t, id, seq)| (t, id.to_owned(), seq))
            .collect();
        if owned.iter().any(|k| taken.contains(k)) {
            answer(p, Err(AppendError::Conflict), stats);
        } else {
            taken.extend(owned);
            live.push(p);
        }
    }
    if live.is_empty() {
        return;
    }
    stats
        .max_batch
        .fetch_max(live.len() as u64, Ordering::Relaxed);
    // 2. One plain statement.
    let first = {
        let commits: Vec<&Commit> = live.iter().map(|p| &p.commit).collect();
        sql::insert_all(target, &commits).await
    };
    match first {
        Ok(()) => {
            AppendStats::add(&stats.batches, 1);
            for p in live {
                answer(p, Ok(()), stats);
            }
        }
        Err(e) => match super::classify(&e) {
            AppendError::Conflict => {
                AppendStats::add(&stats.resettled, 1);
                settle_moved(target, live, stats).await;
            }
            AppendError::Connection(m) => {
                // The outcome of the commit is unknown for the whole batch.
                for p in live {
                    answer(p, Err(AppendError::Connection(m.clone())), stats);
                }
            }
            refused @ AppendError::Refused(_) if live.len() == 1 => {
                for p in live {
                    answer(p, Err(refused.clone()), stats);
                }
            }
            AppendError::Refused(_) => {
                AppendStats::add(&stats.resettled, 1);
                one_by_one(target, live, stats).await;
            }
        },
    }
}

/// A batch in which some stream moved: refuse exactly the commits whose keys exist, append the
/// rest.
async fn settle_moved(target: &Target, mut live: Vec<Pending>, stats: &AppendStats) {
    for _ in 0..MAX_SETTLE_ROUNDS {
        if live.is_empty() {
            return;
        }
        let probe = {
            let commits: Vec<&Commit> = live.iter().map(|p| &p.commit).collect();
            sql::insert_probing(target, &commits).await
        };
        match probe {
            Ok(Probe::Stored) => {
                AppendStats::add(&stats.batches, 1);
                for p in live {
                    answer(p, Ok(()), stats);
                }
                return;
            }
            Ok(Probe::Skipped(existing)) => {
                let (moved, rest): (Vec<_>, Vec<_>) = live.into_iter().partition(|p| {
                    keys(&p.commit).any(|(t, id, seq)| {
                        existing.contains(&(t.to_owned(), id.to_owned(), seq as i64))
                    })
                });
                for p in moved {
                    answer(p, Err(AppendError::Conflict), stats);
                }
                live = rest;
            }
            Err(e) => match super::classify(&e) {
                AppendError::Connection(m) => {
                    for p in live {
                        answer(p, Err(AppendError::Connection(m.clone())), stats);
                    }
                    return;
                }
                _ => break,
            },
        }
    }
    one_by_one(target, live, stats).await;
}

/// Each commit in its own statement and transaction: one commit's failure is its own.
async fn one_by_one(target: &Target, live: Vec<Pending>, stats: &AppendStats) {
    for p in live {
        let outcome = sql::insert_all(target, &[&p.commit])
            .await
            .map_err(|e| super::classify(&e));
        if outcome.is_ok() {
            AppendStats::add(&stats.batches, 1);
        }
        answer(p, outcome, stats);
    }
}
