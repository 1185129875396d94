//! Group commit: every event append of a process goes through one queue, and a writer takes
//! whatever is waiting when it is free and appends it in ONE transaction with ONE multi-row
//! `INSERT` (docs/ARCHITECTURE.md, "Group commit"). Many commands then share one commit, so one disk flush makes many
//! commands durable instead of one.
//!
//! Each command keeps its own optimistic-concurrency check: a command whose stream moved is
//! refused alone ([`AppendError::Conflict`], retried by the bus), never its batch-mates, and a
//! command's events are stored all together or not at all. A batch closes when the writer is
//! free, not on a timer (no latency is added at low load), and is bounded by
//! [`BatchLimits`].
//!
//! * [`batch`]: the queue, the writers and how a batch is settled command by command;
//! * [`sql`]: the statements per backend;
//! * [`ingest`]: records that start their own stream, appended many to a transaction with
//!   dedup by natural id (DESIGN.md §8).

pub mod batch;
pub mod ingest;
mod sql;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use serde_json::Value;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use tokio::sync::Mutex;

pub use batch::{Appender, BatchLimits};
pub use ingest::{IngestError, IngestOutcome, IngestRecord, MAX_INGEST_BATCH};

/// Where appends go. On SQLite every writer of the process (appends, ingest, read-model
/// commits) takes [`WriteGate`] first, so SQLite's single write lock is never waited for
/// inside the database (no `SQLITE_BUSY` sleeps): one writer at a time, in arrival order.
#[derive(Clone, Debug)]
pub enum Target {
    Postgres(PgPool),
    Sqlite(SqlitePool, WriteGate),
}

/// The process's SQLite write lock, taken in FIFO order (tokio's mutex is fair).
#[derive(Clone, Debug, Default)]
pub struct WriteGate(Arc<Mutex<()>>);

impl WriteGate {
    pub async fn lock(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.0).lock_owned().await
    }

    /// Takes `gate` if there is one (SQLite); a no-op on PostgreSQL. Hold the guard for one
    /// statement or transaction only, never across anything that writes through the gate.
    pub async fn hold(gate: &Option<WriteGate>) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match gate {
            Some(g) => Some(g.lock().await),
            None => None,
        }
    }
}

/// One command's commit: the events it decided for one aggregate, and the snapshot to store
/// with them when the commit reaches a snapshot boundary.
#[derive(Debug)]
pub struct Commit {
    pub aggregate_type: &'static str,
    pub events: Vec<SerializedEvent>,
    pub snapshot: Option<SnapshotRow>,
}

/// A snapshot row written in the same transaction as its commit's events.
#[derive(Debug)]
pub struct SnapshotRow {
    pub aggregate_id: String,
    pub last_sequence: i64,
    pub current_snapshot: i64,
    pub payload: Value,
}

/// Why a commit was not stored.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the aggregate first: nothing of this commit was stored.
    #[error("the aggregate's stream moved: optimistic concurrency conflict")]
    Conflict,
    /// The database could not be reached, or the commit's outcome is unknown.
    #[error("event store unreachable: {0}")]
    Connection(String),
    /// The database refused the commit for another reason; nothing was stored.
    #[error("event store refused the commit: {0}")]
    Refused(String),
}

impl From<AppendError> for PersistenceError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Conflict => PersistenceError::OptimisticLockError,
            AppendError::Connection(m) => PersistenceError::ConnectionError(m.into()),
            AppendError::Refused(m) => PersistenceError::UnknownError(m.into()),
        }
    }
}

pub(crate) fn classify(e: &sqlx::Error) -> AppendError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => AppendError::Conflict,
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => AppendError::Connection(e.to_string()),
        other => AppendError::Refused(other.to_string()),
    }
}

/// Counters of the append path since the process started (`/metrics` exports them).
#[derive(Debug, Default)]
pub struct AppendStats {
    /// Commits taken from the queue by a writer.
    pub taken: AtomicU64,
    /// Transactions that stored at least one commit.
    pub batches: AtomicU64,
    /// Commits stored.
    pub commits: AtomicU64,
    /// Events stored by commits.
    pub events: AtomicU64,
    /// Commits refused because their stream moved.
    pub conflicts: AtomicU64,
    /// Commits that failed for another reason.
    pub failures: AtomicU64,
    /// Batches that had to be settled again after a conflict or a failure.
    pub resettled: AtomicU64,
    /// The largest batch (commits) so far.
    pub max_batch: AtomicU64,
    /// Ingested records by outcome.
    pub ingest_stored: AtomicU64,
    pub ingest_duplicates: AtomicU64,
    pub ingest_conflicts: AtomicU64,
    pub ingest_invalid: AtomicU64,
    pub ingest_batches: AtomicU64,
    /// Microseconds spent in ingest transactions.
    pub ingest_micros: AtomicU64,
}

/// A copy of [`AppendStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendSnapshot {
    pub taken: u64,
    pub batches: u64,
    pub commits: u64,
    pub events: u64,
    pub conflicts: u64,
    pub failures: u64,
    pub resettled: u64,
    pub max_batch: u64,
    pub ingest_stored: u64,
    pub ingest_duplicates: u64,
    pub ingest_conflicts: u64,
    pub ingest_invalid: u64,
    pub ingest_batches: u64,
    pub ingest_micros: u64,
}

impl AppendStats {
    pub fn snapshot(&self) -> AppendSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AppendSnapshot {
            taken: get(&self.taken),
            batches: get(&self.batches),
            commits: get(&self.commits),
            events: get(&self.events),
            conflicts: get(&self.conflicts),
            failures: get(&self.failures),
            resettled: get(&self.resettled),
            max_batch: get(&self.max_batch),
            ingest_stored: get(&self.ingest_stored),
            ingest_duplicates: get(&self.ingest_duplicates),
            ingest_conflicts: get(&self.ingest_conflicts),
            ingest_invalid: get(&self.ingest_invalid),
            ingest_batches: get(&self.ingest_batches),
            ingest_micros: get(&self.ingest_micros),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// An estimate of a JSON value's encoded size in bytes, without encoding it (batch bounds).
pub(crate) fn json_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| json_size(x) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| k.len() + 4 + json_size(x))
                .sum::<usize>()
        }
    }
}
