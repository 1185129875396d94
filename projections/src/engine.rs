//! The projection engine: checkpointed catch-up readers of the global event log.
//!
//! A projection's tables and its checkpoint are written in one database transaction, so each
//! event is applied exactly once and a crash at any point resumes from the last commit. The
//! checkpoint update is conditional on the old position: if two runners ever race (a lease lost
//! with its connection), the loser's transaction is rolled back, never applied twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_commands::lease::{Lease, LeaseError, Leases, PROJECTION_LEASE};
use agora_commands::process::{DeadLetter, DeadLetters, RetryPolicy};
use agora_commands::store::{Backlog, LogPosition, Store, StoredEvent};
use async_trait::async_trait;
use chrono::Utc;
use sqlx::{AnyConnection, Row};
use tokio::sync::watch;

use crate::parking::{ParkingError, ParkingStore};

/// Events applied per transaction.
pub const DEFAULT_BATCH_SIZE: i64 = 500;
/// Largest batch a runner grows to while behind (bounded by the store's read limit).
pub const MAX_ADAPTIVE_BATCH_SIZE: i64 = 5_000;
/// Longest a runner sleeps with nothing to do before looking again (other processes' writes
/// do not wake it).
pub const IDLE_POLL_MS: u64 = 500;
/// After a commit wakes an idle runner, or after a batch that was less than a quarter full,
/// wait this long so more commits land in the next batch. Each batch is one transaction of a
/// handful of statements: fewer, larger batches take less from the writers, at a bounded cost
/// in lag.
pub const WAKE_DEBOUNCE_MS: u64 = 10;
/// Pause when committed events exist but are not yet readable (an older transaction is open).
pub const HORIZON_RETRY_MS: u64 = 2;
/// First and longest pause after a failed batch.
pub const ERROR_BACKOFF_MIN_MS: u64 = 100;
pub const ERROR_BACKOFF_MAX_MS: u64 = 5_000;
/// Longest [`ProjectionRunner::catch_up`] waits for the head to become readable.
pub const CATCH_UP_TIMEOUT_MS: u64 = 30_000;
/// Prefix of live read-model tables.
pub const LIVE_PREFIX: &str = "rm_";
/// Prefix (followed by the version and `_`) of the tables a new projection version is built in
/// before they replace the live ones.
pub const SHADOW_PREFIX: &str = "bg";

/// A transaction on the read-model pool.
pub type ReadTx = AnyConnection;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("read-model database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event at {position:?} ({event_type}) could not be decoded: {reason}")]
    Decode {
        position: LogPosition,
        event_type: String,
        reason: String,
    },
    #[error("read model holds a value it cannot parse: {0}")]
    Corrupt(String),
    #[error("invariant broken: {0}")]
    Invariant(String),
    /// An event would move an account's balance (or its pending sums) past the bound of a
    /// `Money` (|x| ≤ 10^15). The decision refuses such entries, but two entries decided
    /// concurrently against the same stale balance can both pass; the fold then stops here,
    /// with a typed error naming the event's entry and account, instead of storing a wrong sum.
    /// It is a fact about this event (retrying cannot help): the engine treats it as a poison
    /// event (see [`ProjectionError::is_poison`]).
    #[error("journal entry {entry_id} would move the balance of {account} out of bounds")]
    BalanceOutOfBounds { entry_id: String, account: String },
    #[error("projection handler failed: {0}")]
    Handler(String),
    /// The runner's lease could not be taken or was lost: it stops at once.
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

impl ProjectionError {
    /// True when the error is a property of the event being applied (applying it again can
    /// never succeed), as opposed to a database or transient failure: such an event is to be
    /// parked, not retried forever.
    pub fn is_poison(&self) -> bool {
        matches!(self, Self::Decode { .. } | Self::BalanceOutOfBounds { .. })
    }

    /// Whether the failure is the database being unreachable or busy rather than the event:
    /// such a failure is retried without end, never parked.
    pub fn is_transient(&self) -> bool {
        let Self::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // PostgreSQL: serialization failure, deadlock, lock not available, admin
                // shutdown, cannot connect now; SQLite: busy, locked.
                matches!(
                    code.as_ref(),
                    "40001" | "40P01" | "55P03" | "57P01" | "57P03" | "5" | "6" | "517"
                )
            }),
            _ => false,
        }
    }

    pub fn decode(event: &StoredEvent, reason: impl ToString) -> Self {
        Self::Decode {
            position: event.position,
            event_type: event.event_type.clone(),
            reason: reason.to_string(),
        }
    }
}

/// One table a projection owns: its physical name and the statements that create it.
#[derive(Clone, Debug)]
pub struct TableSpec {
    pub name: String,
    pub create: Vec<String>,
}

impl TableSpec {
    /// `ddl` statements use `{t}` for the table name (and may name indexes `{t}_…`).
    pub fn new(name: String, ddl: &[&str]) -> Self {
        let create = ddl.iter().map(|s| s.replace("{t}", &name)).collect();
        Self { name, create }
    }
}

/// A read model built by folding the global event log.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Stable name; also the checkpoint key.
    fn name(&self) -> &str;
    /// Bump when the tables or the fold change: the projection is then rebuilt from zero.
    fn version(&self) -> i64;
    /// The tables this instance writes (physical names).
    fn tables(&self) -> Vec<TableSpec>;
    /// Folds one event into the tables, inside the batch transaction. Events the projection
    /// does not care about are ignored (`Ok`).
    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError>;
    /// Folds a batch of events, in order, inside the batch transaction. Must leave the same
    /// tables as applying them one by one; override to save round trips.
    async fn apply_batch(
        &self,
        tx: &mut ReadTx,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            self.apply(tx, event).await?;
        }
        Ok(())
    }
    /// The same projection writing to tables named with `prefix` (for rebuilds).
    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection>;
}

/// Told about every committed batch (metrics, benchmarks).
pub trait BatchObserver: Send + Sync {
    fn batch_committed(&self, projection: &str, events: &[StoredEvent]);
}

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub applied: usize,
    /// Events the projection could not apply after its retries, parked and passed.
    pub parked: usize,
    pub position: LogPosition,
}

impl BatchOutcome {
    /// Events the checkpoint moved past.
    pub fn handled(&self) -> usize {
        self.applied + self.parked
    }
}

/// A projection's progress and health.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectionStatus {
    pub name: String,
    pub position: LogPosition,
    pub events_applied: u64,
    pub lag_events: i64,
    pub lag_seconds: f64,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    position: Mutex<Option<LogPosition>>,
    applied: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The batch size now: grows while batches come back full (a backlog), shrinks back to
    /// the configured size once they do not ([`ProjectionRunner::adapt_batch`]). 0 = not set.
    batch_now: std::sync::atomic::AtomicI64,
}

/// Runs one projection against the store under a checkpoint name.
#[derive(Clone)]
pub struct ProjectionRunner {
    store: Store,
    projection: Arc<dyn Projection>,
    checkpoint: String,
    batch_size: i64,
    /// Whether the batch size adapts to the backlog (not when set with `with_batch_size`).
    adaptive: bool,
    observer: Option<Arc<dyn BatchObserver>>,
    /// Where events that keep failing are parked; `None` (rebuilds): a failure stops the run.
    parking: Option<ParkingStore>,
    policy: RetryPolicy,
    leases: Leases,
    shared: Arc<Shared>,
}

impl ProjectionRunner {
    /// The live runner: an event that fails [`RetryPolicy::attempts`] times is parked.
    pub fn new(store: Store, projection: Arc<dyn Projection>) -> Self {
        let checkpoint = projection.name().to_string();
        let parking = ParkingStore::new(store.read_models().clone());
        let mut runner = Self::with_checkpoint(store, projection, checkpoint);
        runner.parking = Some(parking);
        runner
    }

    /// A runner whose checkpoint row is `checkpoint` (rebuilds use their own). It parks
    /// nothing: a failing event stops it, so a rebuild fails loudly.
    pub fn with_checkpoint(
        store: Store,
        projection: Arc<dyn Projection>,
        checkpoint: String,
    ) -> Self {
        Self {
            store,
            projection,
            checkpoint,
            batch_size: DEFAULT_BATCH_SIZE,
            adaptive: true,
            observer: None,
            parking: None,
            policy: RetryPolicy::default(),
            leases: Leases::default(),
            shared: Arc::default(),
        }
    }

    /// Records the leases this runner takes in `leases` (the process's set).
    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.leases = leases;
        self
    }

    /// The key of this runner's lease.
    pub fn lease_key(&self) -> String {
        format!("{PROJECTION_LEASE}{}", self.checkpoint)
    }

    /// A fixed batch size (no adapting to the backlog).
    pub fn with_batch_size(mut self, batch_size: i64) -> Self {
        self.batch_size = batch_size.max(1);
        self.adaptive = false;
        self
    }

    /// Tries per event before it is parked, and the pause between tries.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn BatchObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn name(&self) -> &str {
        &self.checkpoint
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn projection(&self) -> &Arc<dyn Projection> {
        &self.projection
    }

    /// Creates the tables and the checkpoint row. If the stored version differs from the
    /// projection's, the tables are dropped and rebuilt from position zero.
    pub async fn prepare(&self) -> Result<(), ProjectionError> {
        let mut tx = self.store.begin_read_model_write().await?;
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT version FROM projection_checkpoints WHERE name = $1")
                .bind(&self.checkpoint)
                .fetch_optional(&mut *tx)
                .await?;
        let version = self.projection.version();
        if stored.is_some_and(|v| v != version) {
            tracing::warn!(projection = %self.checkpoint, from = ?stored, to = version,
                "projection version changed: rebuilding from position zero");
            drop_tables(&mut tx, self.projection.as_ref()).await?;
            sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
                .bind(&self.checkpoint)
                .execute(&mut *tx)
                .await?;
        }
        create_tables(&mut tx, self.projection.as_ref()).await?;
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, version) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&self.checkpoint)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        *lock(&self.shared.position) = None;
        Ok(())
    }

    /// [`Self::prepare`] for the lease holder: when the stored version differs, the new version
    /// is built into fresh tables (`bg<version>_…`, resumable under its own checkpoint) while
    /// the old tables keep serving, then swapped in atomically.
    async fn prepare_under(&self, lease: &mut Lease) -> Result<(), ProjectionError> {
        let stored: Option<i64> =
            sqlx::query_scalar("SELECT version FROM projection_checkpoints WHERE name = $1")
                .bind(&self.checkpoint)
                .fetch_optional(self.store.read_models())
                .await?;
        let version = self.projection.version();
        match stored {
            Some(v) if v != version => self.rebuild_and_swap(lease, v).await,
            _ => self.prepare().await,
        }
    }

    /// Builds this version into fresh tables from position zero, checking the lease before every
    /// batch, then swaps them in for the live ones in one transaction.
    async fn rebuild_and_swap(&self, lease: &mut Lease, from: i64) -> Result<(), ProjectionError> {
        let version = self.projection.version();
        tracing::warn!(projection = %self.checkpoint, from, to = version,
            "projection version changed: rebuilding into fresh tables; the old ones serve until the swap");
        let fresh: Arc<dyn Projection> = Arc::from(
            self.projection
                .with_prefix(&format!("{SHADOW_PREFIX}{version}_")),
        );
        let mut shadow = ProjectionRunner::with_checkpoint(
            self.store.clone(),
            fresh.clone(),
            format!("{}#v{version}", self.checkpoint),
        )
        .with_batch_size(self.batch_size);
        // A rebuild is all backlog: it grows its batches like the live runner would.
        shadow.adaptive = self.adaptive;
        shadow.prepare().await?;
        let head = self.store.head().await?.unwrap_or(LogPosition::START);
        loop {
            lease.check().await?;
            let outcome = shadow.run_batch().await?;
            if outcome.handled() == 0 {
                if shadow.checkpoint().await? >= head {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(HORIZON_RETRY_MS)).await;
            }
        }
        lease.check().await?;
        let at = shadow.checkpoint().await?;
        let mut tx = self.store.begin_read_model_write().await?;
        for (live, new) in self.projection.tables().iter().zip(fresh.tables().iter()) {
            sqlx::query(&format!("DROP TABLE IF EXISTS {}", live.name))
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!("ALTER TABLE {} RENAME TO {}", new.name, live.name))
                .execute(&mut *tx)
                .await?;
            if self.store.backend() == agora_commands::Backend::Postgres {
                // PostgreSQL names the primary key's index after the table it was made with.
                sqlx::query(&format!(
                    "ALTER INDEX IF EXISTS {}_pkey RENAME TO {}_pkey",
                    new.name, live.name
                ))
                .execute(&mut *tx)
                .await?;
            }
            // Indexes keep their build names: give them the live ones.
            for (live_stmt, new_stmt) in live.create.iter().zip(new.create.iter()) {
                if let Some(index) = index_name(new_stmt) {
                    sqlx::query(&format!("DROP INDEX IF EXISTS {index}"))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(live_stmt).execute(&mut *tx).await?;
                }
            }
        }
        sqlx::query(
            "UPDATE projection_checkpoints SET version = $1, transaction_id = $2, \
             global_position = $3, \
             events_applied = (SELECT events_applied FROM projection_checkpoints WHERE name = $4), \
             updated_at_us = $5 WHERE name = $6",
        )
        .bind(version)
        .bind(at.transaction_id)
        .bind(at.global_position)
        .bind(shadow.name())
        .bind(Utc::now().timestamp_micros())
        .bind(&self.checkpoint)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
            .bind(shadow.name())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        *lock(&self.shared.position) = None;
        tracing::info!(projection = %self.checkpoint, version, position = ?at,
            "rebuilt tables swapped in");
        Ok(())
    }

    /// Drops the tables and the checkpoint (for scratch rebuilds).
    pub async fn destroy(&self) -> Result<(), ProjectionError> {
        let mut tx = self.store.begin_read_model_write().await?;
        drop_tables(&mut tx, self.projection.as_ref()).await?;
        sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
            .bind(&self.checkpoint)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        *lock(&self.shared.position) = None;
        Ok(())
    }

    /// The committed checkpoint.
    pub async fn checkpoint(&self) -> Result<LogPosition, ProjectionError> {
        if let Some(pos) = *lock(&self.shared.position) {
            return Ok(pos);
        }
        let pos = read_checkpoint(&self.store, &self.checkpoint).await?;
        *lock(&self.shared.position) = Some(pos);
        Ok(pos)
    }

    /// Applies the next batch of events, if any, in one transaction.
    pub async fn run_batch(&self) -> Result<BatchOutcome, ProjectionError> {
        self.run_batch_until(None).await
    }

    /// Like [`Self::run_batch`] but never applies events past `limit`.
    pub async fn run_batch_until(
        &self,
        limit: Option<LogPosition>,
    ) -> Result<BatchOutcome, ProjectionError> {
        let from = self.checkpoint().await?;
        let size = self.current_batch_size();
        let mut events = self.store.read_global(from, size).await?;
        self.adapt_batch(size, events.len());
        if let Some(limit) = limit {
            events.retain(|e| e.position <= limit);
        }
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(BatchOutcome {
                position: from,
                ..BatchOutcome::default()
            });
        };
        match self.commit_batch(from, last, &events).await {
            Ok(true) => {}
            Ok(false) => {
                // Someone else moved the checkpoint: nothing was applied; reload and go on.
                *lock(&self.shared.position) = None;
                return Ok(BatchOutcome {
                    position: from,
                    ..BatchOutcome::default()
                });
            }
            Err(e) if e.is_transient() || self.parking.is_none() => {
                *lock(&self.shared.last_error) = Some(e.to_string());
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(projection = %self.checkpoint, error = %e,
                    "batch failed; retrying its events one by one");
                return self.isolate(from, &events).await;
            }
        }
        self.committed(last, &events);
        Ok(BatchOutcome {
            applied: events.len(),
            parked: 0,
            position: last,
        })
    }

    /// The batch size to read now.
    pub fn current_batch_size(&self) -> i64 {
        match self.shared.batch_now.load(Ordering::Relaxed) {
            0 => self.batch_size,
            n => n,
        }
    }

    /// Doubles the batch size after a full read (up to [`MAX_ADAPTIVE_BATCH_SIZE`]: fewer,
    /// larger transactions while behind) and halves it back toward the configured size after
    /// a read under a quarter full (small batches, low latency, when caught up).
    fn adapt_batch(&self, asked: i64, got: usize) {
        if !self.adaptive {
            return;
        }
        let got = got as i64;
        let next = if got >= asked {
            (asked * 2).min(MAX_ADAPTIVE_BATCH_SIZE.max(self.batch_size))
        } else if got < asked / 4 {
            (asked / 2).max(self.batch_size)
        } else {
            asked
        };
        self.shared.batch_now.store(next, Ordering::Relaxed);
    }

    /// Records a commit that moved the checkpoint to `to` applying `applied`.
    fn committed(&self, to: LogPosition, applied: &[StoredEvent]) {
        *lock(&self.shared.position) = Some(to);
        *lock(&self.shared.last_error) = None;
        self.shared
            .applied
            .fetch_add(applied.len() as u64, Ordering::Relaxed);
        if let Some(observer) = self.observer.as_ref().filter(|_| !applied.is_empty()) {
            observer.batch_committed(&self.checkpoint, applied);
        }
    }

    /// After a batch failed: applies its events one by one, each in its own transaction with
    /// the checkpoint move, retrying a failing one per the policy and then parking it (the
    /// dead-letter row and the checkpoint move past it in one transaction). A transient
    /// failure (the database, not the event) stops here and is retried later.
    async fn isolate(
        &self,
        from: LogPosition,
        events: &[StoredEvent],
    ) -> Result<BatchOutcome, ProjectionError> {
        let mut outcome = BatchOutcome {
            position: from,
            ..BatchOutcome::default()
        };
        for event in events {
            let at = outcome.position;
            match self.apply_one_with_retries(at, event).await {
                Ok(true) => {
                    self.committed(event.position, std::slice::from_ref(event));
                    outcome.applied += 1;
                }
                Ok(false) => {
                    *lock(&self.shared.position) = None;
                    return Ok(outcome);
                }
                Err((e, _)) if e.is_transient() => {
                    *lock(&self.shared.last_error) = Some(e.to_string());
                    return Err(e);
                }
                Err((e, attempts)) => {
                    if !self.park(at, event, &e, attempts).await? {
                        *lock(&self.shared.position) = None;
                        return Ok(outcome);
                    }
                    self.committed(event.position, &[]);
                    outcome.parked += 1;
                }
            }
            outcome.position = event.position;
        }
        Ok(outcome)
    }

    /// Applies one event with the checkpoint move from `at`, retrying per the policy; the
    /// error comes with the number of tries.
    async fn apply_one_with_retries(
        &self,
        at: LogPosition,
        event: &StoredEvent,
    ) -> Result<bool, (ProjectionError, u32)> {
        let mut attempt = 1;
        loop {
            match self
                .commit_batch(at, event.position, std::slice::from_ref(event))
                .await
            {
                Ok(moved) => return Ok(moved),
                Err(e) if e.is_transient() || self.policy.exhausted(attempt) => {
                    return Err((e, attempt))
                }
                Err(e) => {
                    tracing::warn!(projection = %self.checkpoint, position = ?event.position,
                        attempt, error = %e, "event failed; retrying");
                    tokio::time::sleep(self.policy.pause_after(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Writes the dead letter and moves the checkpoint past `event` in one transaction; false
    /// when the checkpoint was no longer at `at`.
    async fn park(
        &self,
        at: LogPosition,
        event: &StoredEvent,
        error: &ProjectionError,
        attempts: u32,
    ) -> Result<bool, ProjectionError> {
        let Some(parking) = &self.parking else {
            return Err(ProjectionError::Handler(error.to_string()));
        };
        let letter = DeadLetter::new(&self.checkpoint, event, &error.to_string(), attempts);
        let mut tx = self.store.begin_read_model_write().await?;
        let moved = agora_commands::process::move_checkpoint(
            &mut tx,
            &self.checkpoint,
            at,
            event.position,
            0,
        )
        .await?;
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        parking.park(&mut tx, &letter).await?;
        tx.commit().await?;
        tracing::error!(projection = %self.checkpoint, position = ?event.position,
            event_type = %event.event_type, attempts, error = %letter.error,
            "event parked: the projection could not apply it");
        Ok(true)
    }

    /// An operator's retry of parked event `id`: applies its event again and deletes the row,
    /// in one transaction. The checkpoint does not move (it is already past the event).
    pub async fn retry_parked(&self, id: i64) -> Result<(), ParkingError> {
        let Some(parking) = &self.parking else {
            return Err(ParkingError::UnknownRunner(self.checkpoint.clone()));
        };
        let parked = parking.open(id).await?;
        if parked.runner != self.checkpoint {
            return Err(ParkingError::UnknownRunner(parked.runner));
        }
        let event = self
            .store
            .event_at(parked.global_position)
            .await?
            .ok_or(ParkingError::EventMissing(parked.global_position))?;
        let mut tx = self.store.begin_read_model_write().await?;
        if let Err(e) = self
            .projection
            .apply_batch(&mut tx, std::slice::from_ref(&event))
            .await
        {
            tx.rollback().await?;
            return Err(ParkingError::StillFailing {
                runner: self.checkpoint.clone(),
                reason: e.to_string(),
            });
        }
        if !parking.remove_in(&mut tx, id).await? {
            tx.rollback().await?;
            return Err(ParkingError::AlreadyResolved {
                id,
                status: "resolved meanwhile".into(),
            });
        }
        tx.commit().await?;
        tracing::info!(projection = %self.checkpoint, id, position = ?parked.position(),
            "parked event applied on retry");
        Ok(())
    }

    async fn commit_batch(
        &self,
        from: LogPosition,
        to: LogPosition,
        events: &[StoredEvent],
    ) -> Result<bool, ProjectionError> {
        let mut tx = self.store.begin_read_model_write().await?;
        // Checkpoint first: it takes the row lock, so a racing runner waits here and then
        // finds the position moved, before it has written anything.
        let moved = sqlx::query(
            "UPDATE projection_checkpoints \
                SET transaction_id = $1, global_position = $2, \
                    events_applied = events_applied + $3, updated_at_us = $4 \
              WHERE name = $5 AND transaction_id = $6 AND global_position = $7",
        )
        .bind(to.transaction_id)
        .bind(to.global_position)
        .bind(events.len() as i64)
        .bind(Utc::now().timestamp_micros())
        .bind(&self.checkpoint)
        .bind(from.transaction_id)
        .bind(from.global_position)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        self.projection.apply_batch(&mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Applies batches until the projection has seen every event committed before the call
    /// (waiting, up to [`CATCH_UP_TIMEOUT_MS`], for older open transactions to end); returns how
    /// many were applied.
    pub async fn catch_up(&self) -> Result<u64, ProjectionError> {
        self.catch_up_to_head(Duration::from_millis(CATCH_UP_TIMEOUT_MS))
            .await
    }

    /// Applies batches until `limit` (inclusive) or the end of the log readable right now (on
    /// PostgreSQL an open older transaction hides later events until it ends).
    pub async fn catch_up_until(&self, limit: Option<LogPosition>) -> Result<u64, ProjectionError> {
        let mut total = 0u64;
        loop {
            let outcome = self.run_batch_until(limit).await?;
            if outcome.handled() == 0 {
                return Ok(total);
            }
            total += outcome.applied as u64;
        }
    }

    /// Applies batches until the projection has seen the head that existed when called, waiting
    /// for open transactions to end; gives up after `timeout`.
    pub async fn catch_up_to_head(&self, timeout: Duration) -> Result<u64, ProjectionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let Some(head) = self.store.head().await? else {
            return Ok(0);
        };
        let mut total = 0;
        while self.checkpoint().await? < head {
            let applied = self.catch_up_until(Some(head)).await?;
            total += applied;
            if applied == 0 {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ProjectionError::Handler(format!(
                        "did not reach head {head:?} within {timeout:?}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(HORIZON_RETRY_MS)).await;
            }
        }
        Ok(total)
    }

    /// Progress and lag behind the head of the log, read from the database (the checkpoint
    /// row, not this process's memory), so a standby process that does not hold the lease
    /// reports the true lag.
    pub async fn status(&self) -> Result<ProjectionStatus, ProjectionError> {
        let position = read_checkpoint(&self.store, &self.checkpoint).await?;
        let Backlog {
            events,
            oldest_recorded_at,
        } = self.store.pending_after(position).await?;
        let lag_seconds = oldest_recorded_at
            .map(|t| (Utc::now() - t).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6)
            .unwrap_or(0.0)
            .max(0.0);
        Ok(ProjectionStatus {
            name: self.checkpoint.clone(),
            position,
            events_applied: self.shared.applied.load(Ordering::Relaxed),
            lag_events: events,
            lag_seconds,
            last_error: lock(&self.shared.last_error).clone(),
        })
    }

    /// Runs until `shutdown` turns true: takes the projection's lease (waiting as a standby
    /// while another process holds it), prepares the tables under it (only the lease holder
    /// creates, drops or rebuilds them), then applies batches as soon as commits are signalled,
    /// polls for other processes' writes and backs off on errors (keeping the error in its
    /// status). The lease is checked before every batch; a lost lease ends the run with
    /// [`ProjectionError::Lease`] at once (its supervisor starts it again as a standby).
    pub async fn run(
        self,
        mut commits: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ProjectionError> {
        let key = self.lease_key();
        let Some(mut lease) = self
            .leases
            .acquire(&self.store, &key, &mut shutdown)
            .await?
        else {
            return Ok(());
        };
        if let Err(e) = self.prepare_under(&mut lease).await {
            *lock(&self.shared.last_error) = Some(e.to_string());
            return Err(e);
        }
        let mut backoff = Duration::from_millis(ERROR_BACKOFF_MIN_MS);
        while !*shutdown.borrow() {
            lease.check().await?;
            let pause = match self.run_batch().await {
                Ok(outcome) if outcome.handled() > 0 => {
                    backoff = Duration::from_millis(ERROR_BACKOFF_MIN_MS);
                    if (outcome.handled() as i64) < self.current_batch_size() / 4 {
                        tokio::time::sleep(Duration::from_millis(WAKE_DEBOUNCE_MS)).await;
                    }
                    continue;
                }
                Ok(outcome) => match self.store.pending_after(outcome.position).await {
                    Ok(backlog) if backlog.events > 0 => Duration::from_millis(HORIZON_RETRY_MS),
                    Ok(_) => Duration::from_millis(IDLE_POLL_MS),
                    Err(e) => {
                        tracing::warn!(projection = %self.checkpoint, error = %e, "backlog query failed");
                        Duration::from_millis(IDLE_POLL_MS)
                    }
                },
                Err(e) => {
                    tracing::error!(projection = %self.checkpoint, error = %e, "projection batch failed; retrying");
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_millis(ERROR_BACKOFF_MAX_MS));
                    pause
                }
            };
            tokio::select! {
                _ = commits.changed() => {
                    tokio::time::sleep(Duration::from_millis(WAKE_DEBOUNCE_MS)).await;
                }
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
        Ok(())
    }
}

/// The index a `CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON …` statement creates.
fn index_name(statement: &str) -> Option<&str> {
    let mut words = statement.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("CREATE") {
        return None;
    }
    let mut word = words.next()?;
    if word.eq_ignore_ascii_case("UNIQUE") {
        word = words.next()?;
    }
    if !word.eq_ignore_ascii_case("INDEX") {
        return None;
    }
    let mut name = words.next()?;
    if name.eq_ignore_ascii_case("IF") {
        words.next()?; // NOT
        words.next()?; // EXISTS
        name = words.next()?;
    }
    Some(name)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) async fn read_checkpoint(
    store: &Store,
    name: &str,
) -> Result<LogPosition, ProjectionError> {
    let row = sqlx::query(
        "SELECT transaction_id, global_position FROM projection_checkpoints WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(store.read_models())
    .await?;
    match row {
        Some(row) => Ok(LogPosition {
            transaction_id: row.try_get(0)?,
            global_position: row.try_get(1)?,
        }),
        None => Err(ProjectionError::Invariant(format!(
            "projection {name} has no checkpoint: prepare it first"
        ))),
    }
}

async fn create_tables(
    tx: &mut ReadTx,
    projection: &dyn Projection,
) -> Result<(), ProjectionError> {
    for table in projection.tables() {
        for statement in &table.create {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
    }
    Ok(())
}

async fn drop_tables(tx: &mut ReadTx, projection: &dyn Projection) -> Result<(), ProjectionError> {
    for table in projection.tables() {
        sqlx::query(&format!("DROP TABLE IF EXISTS {}", table.name))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
