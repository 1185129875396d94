//! Process managers: checkpointed readers of the global log that turn events into further
//! commands. Delivery is at-least-once (the checkpoint moves after the reactions), so every
//! reaction must be idempotent; together that makes each effect happen exactly once.
//!
//! An event whose reaction keeps failing is retried [`RetryPolicy::attempts`] times with
//! backoff, then parked (DESIGN.md §7): a dead-letter row is written in the transaction that
//! moves the checkpoint past it, and the runner goes on. The rows themselves are kept by
//! `agora_projections::parking`; this layer only knows the [`DeadLetters`] interface.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::{AnyConnection, Row};
use tokio::sync::watch;

use crate::lease::{LeaseError, Leases, PROCESS_LEASE};
use crate::store::{LogPosition, Store, StoredEvent, EVENT_ID_KEY};

/// Events read per batch.
pub const PROCESS_BATCH: i64 = 256;
/// Attempts at one event before it is parked.
pub const PARK_AFTER_ATTEMPTS: u32 = 3;
/// Pause after the first failed attempt; doubles after each further one.
pub const PARK_RETRY_BACKOFF_MS: u64 = 50;
/// Longest pause between two attempts at one event.
pub const PARK_RETRY_BACKOFF_MAX_MS: u64 = 2_000;
/// Longest error text kept on a dead-letter row (characters).
pub const MAX_ERROR_CHARS: usize = 2_000;
/// Pause when there is nothing to do (other processes' writes do not wake the runner).
const IDLE_POLL_MS: u64 = 250;
/// First and longest pause after a failed batch (the store failing, not an event).
const ERROR_BACKOFF_MIN_MS: u64 = 100;
const ERROR_BACKOFF_MAX_MS: u64 = 10_000;

/// How often an event is tried before it is parked, and the pause between tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (at least 1).
    pub attempts: u32,
    /// Pause after the first failed try; doubles after each further one.
    pub backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: PARK_AFTER_ATTEMPTS,
            backoff_ms: PARK_RETRY_BACKOFF_MS,
        }
    }
}

impl RetryPolicy {
    /// The pause after failed try number `attempt` (1-based).
    pub fn pause_after(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(16);
        Duration::from_millis(
            self.backoff_ms
                .saturating_mul(factor)
                .min(PARK_RETRY_BACKOFF_MAX_MS),
        )
    }

    /// Whether try number `attempt` was the last.
    pub fn exhausted(&self, attempt: u32) -> bool {
        attempt >= self.attempts.max(1)
    }
}

/// One event a runner could not handle: what the dead-letter row records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The projection or process manager (its checkpoint name).
    pub runner: String,
    pub position: LogPosition,
    pub event_id: Option<String>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    /// The last error, cut to [`MAX_ERROR_CHARS`].
    pub error: String,
    pub attempts: u32,
    pub parked_at_us: i64,
}

impl DeadLetter {
    pub fn new(runner: &str, event: &StoredEvent, error: &str, attempts: u32) -> Self {
        Self {
            runner: runner.to_string(),
            position: event.position,
            event_id: event.meta(EVENT_ID_KEY).map(str::to_string),
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            event_type: event.event_type.clone(),
            event_version: event.event_version.clone(),
            error: error.chars().take(MAX_ERROR_CHARS).collect(),
            attempts,
            parked_at_us: Utc::now().timestamp_micros(),
        }
    }
}

/// Where dead letters are written: inside the caller's transaction, together with the
/// checkpoint move past the event.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn park(&self, conn: &mut AnyConnection, letter: &DeadLetter) -> Result<(), sqlx::Error>;
}

/// What a process manager does with one event. Must be idempotent.
#[async_trait]
pub trait Reactor: Send + Sync + 'static {
    type Error: std::fmt::Display + From<sqlx::Error> + Send;
    async fn react(&self, event: &StoredEvent) -> Result<(), Self::Error>;

    /// Whether `error` is passing (contention on an aggregate, the store failing) rather than
    /// the event's fault. An event that fails with a passing error is never parked: the batch
    /// stops before it, the checkpoint stays, and the runner tries it again after a pause, as it
    /// does when reading the log fails. Parking is for events no retry will fix.
    fn is_transient(_error: &Self::Error) -> bool {
        false
    }
}

/// A parked event delivered again failed.
#[derive(Debug, thiserror::Error)]
#[error("{runner} failed on the event again: {reason}")]
pub struct RedeliveryFailed {
    pub runner: String,
    pub reason: String,
}

/// Delivers one event again to a process manager (an operator's retry of a parked event).
#[async_trait]
pub trait Redeliver: Send + Sync {
    fn name(&self) -> &str;
    async fn redeliver(&self, event: &StoredEvent) -> Result<(), RedeliveryFailed>;
}

/// Why a process manager's run ended.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Its lease could not be taken or was lost: it stopped at once.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error("process manager {runner} cannot start: {reason}")]
    Start { runner: String, reason: String },
}

/// Runs a [`Reactor`] over the global log from its checkpoint row in `projection_checkpoints`.
pub struct ProcessRunner<R: Reactor> {
    name: &'static str,
    store: Store,
    reactor: Arc<R>,
    dead_letters: Option<Arc<dyn DeadLetters>>,
    policy: RetryPolicy,
    leases: Leases,
}

impl<R: Reactor> Clone for ProcessRunner<R> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            store: self.store.clone(),
            reactor: self.reactor.clone(),
            dead_letters: self.dead_letters.clone(),
            policy: self.policy,
            leases: self.leases.clone(),
        }
    }
}

/// Moves a checkpoint from `from` to `to` (only from `from`); returns the rows changed.
pub async fn move_checkpoint(
    conn: &mut AnyConnection,
    name: &str,
    from: LogPosition,
    to: LogPosition,
    handled: usize,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE projection_checkpoints \
            SET transaction_id = $1, global_position = $2, \
                events_applied = events_applied + $3, updated_at_us = $4 \
          WHERE name = $5 AND transaction_id = $6 AND global_position = $7",
    )
    .bind(to.transaction_id)
    .bind(to.global_position)
    .bind(handled as i64)
    .bind(Utc::now().timestamp_micros())
    .bind(name)
    .bind(from.transaction_id)
    .bind(from.global_position)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

impl<R: Reactor> ProcessRunner<R> {
    /// A runner that, without [`Self::with_dead_letters`], retries a failing event forever.
    pub fn new(name: &'static str, store: &Store, reactor: Arc<R>) -> Self {
        Self {
            name,
            store: store.clone(),
            reactor,
            dead_letters: None,
            policy: RetryPolicy::default(),
            leases: Leases::default(),
        }
    }

    /// Records the lease this runner takes in `leases` (the process's set).
    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.leases = leases;
        self
    }

    /// The key of this runner's lease.
    pub fn lease_key(&self) -> String {
        format!("{PROCESS_LEASE}{}", self.name)
    }

    /// Parks events that fail [`RetryPolicy::attempts`] times into `sink` and goes on.
    pub fn with_dead_letters(mut self, sink: Arc<dyn DeadLetters>) -> Self {
        self.dead_letters = Some(sink);
        self
    }

    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Creates the checkpoint row if missing.
    pub async fn prepare(&self) -> Result<(), R::Error> {
        self.store
            .write_read_models(
                sqlx::query(
                    "INSERT INTO projection_checkpoints (name, version) VALUES ($1, 1) \
             ON CONFLICT (name) DO NOTHING",
                )
                .bind(self.name),
            )
            .await?;
        Ok(())
    }

    async fn checkpoint(&self) -> Result<LogPosition, R::Error> {
        let row = sqlx::query(
            "SELECT transaction_id, global_position FROM projection_checkpoints WHERE name = $1",
        )
        .bind(self.name)
        .fetch_one(self.store.read_models())
        .await?;
        Ok(LogPosition {
            transaction_id: row.try_get(0)?,
            global_position: row.try_get(1)?,
        })
    }

    async fn advance(&self, from: LogPosition, to: LogPosition, n: usize) -> Result<(), R::Error> {
        let _writer = crate::append::WriteGate::hold(&self.store.write_gate()).await;
        let mut conn = self.store.read_models().acquire().await?;
        move_checkpoint(&mut conn, self.name, from, to, n).await?;
        Ok(())
    }

    /// Reacts to the next batch; returns how many events were handled (reacted to or parked).
    /// On an error that could not be parked the checkpoint stays after the last event handled,
    /// so the failed one is retried.
    pub async fn run_batch(&self) -> Result<usize, R::Error> {
        let from = self.checkpoint().await?;
        let events = self.store.read_global(from, PROCESS_BATCH).await?;
        let mut stored = from;
        let mut done = from;
        let mut pending = 0;
        let mut handled = 0;
        for event in &events {
            let (error, attempts) = match self.react_with_retries(event).await {
                Ok(()) => {
                    done = event.position;
                    pending += 1;
                    handled += 1;
                    continue;
                }
                Err(failed) => failed,
            };
            if pending > 0 {
                self.advance(stored, done, pending).await?;
                stored = done;
                pending = 0;
            }
            let Some(sink) = self
                .dead_letters
                .as_ref()
                .filter(|_| !R::is_transient(&error))
            else {
                return Err(error);
            };
            let letter = DeadLetter::new(self.name, event, &error.to_string(), attempts);
            if !self.park(sink.as_ref(), stored, &letter).await? {
                // Another process moved the checkpoint: it is handling these events.
                return Ok(handled);
            }
            stored = event.position;
            done = stored;
            handled += 1;
        }
        if pending > 0 {
            self.advance(stored, done, pending).await?;
        }
        Ok(handled)
    }

    async fn react_with_retries(&self, event: &StoredEvent) -> Result<(), (R::Error, u32)> {
        let mut attempt = 1;
        loop {
            match self.reactor.react(event).await {
                Ok(()) => return Ok(()),
                Err(e) if self.policy.exhausted(attempt) => return Err((e, attempt)),
                Err(e) => {
                    tracing::warn!(process = self.name, position = ?event.position, attempt,
                        error = %e, "reaction failed; retrying");
                    tokio::time::sleep(self.policy.pause_after(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Writes the dead letter and moves the checkpoint past its event in one transaction;
    /// false when the checkpoint was no longer at `from`.
    async fn park(
        &self,
        sink: &dyn DeadLetters,
        from: LogPosition,
        letter: &DeadLetter,
    ) -> Result<bool, R::Error> {
        let mut tx = self.store.begin_read_model_write().await?;
        if move_checkpoint(&mut tx, self.name, from, letter.position, 0).await? != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sink.park(&mut tx, letter).await?;
        tx.commit().await?;
        tracing::error!(process = self.name, position = ?letter.position,
            event_type = %letter.event_type, attempts = letter.attempts, error = %letter.error,
            "event parked: the process manager could not handle it");
        Ok(true)
    }

    /// Handles everything visible now.
    pub async fn catch_up(&self) -> Result<usize, R::Error> {
        self.prepare().await?;
        let mut total = 0;
        loop {
            let n = self.run_batch().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs until `shutdown`: takes the process manager's lease (standing by while another
    /// process holds it), then reacts as commits are signalled, polls for other processes'
    /// writes and backs off on errors. The lease is checked before every batch; a lost lease
    /// ends the run at once with [`ProcessError::Lease`] (its supervisor starts it again).
    pub async fn run(
        self,
        mut commits: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ProcessError> {
        let key = self.lease_key();
        let Some(mut lease) = self
            .leases
            .acquire(&self.store, &key, &mut shutdown)
            .await?
        else {
            return Ok(());
        };
        self.prepare().await.map_err(|e| ProcessError::Start {
            runner: self.name.to_owned(),
            reason: e.to_string(),
        })?;
        let mut backoff = Duration::from_millis(ERROR_BACKOFF_MIN_MS);
        while !*shutdown.borrow() {
            lease.check().await?;
            let pause = match self.run_batch().await {
                Ok(n) if n > 0 => {
                    backoff = Duration::from_millis(ERROR_BACKOFF_MIN_MS);
                    continue;
                }
                Ok(_) => Duration::from_millis(IDLE_POLL_MS),
                Err(e) => {
                    tracing::error!(process = self.name, error = %e, "process manager failed; retrying");
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_millis(ERROR_BACKOFF_MAX_MS));
                    pause
                }
            };
            tokio::select! {
                _ = commits.changed() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<R: Reactor> Redeliver for ProcessRunner<R> {
    fn name(&self) -> &str {
        self.name
    }

    async fn redeliver(&self, event: &StoredEvent) -> Result<(), RedeliveryFailed> {
        self.reactor
            .react(event)
            .await
            .map_err(|e| RedeliveryFailed {
                runner: self.name.to_string(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            attempts: 3,
            backoff_ms: 10,
        };
        assert_eq!(p.pause_after(1), Duration::from_millis(10));
        assert_eq!(p.pause_after(2), Duration::from_millis(20));
        assert_eq!(
            p.pause_after(40),
            Duration::from_millis(PARK_RETRY_BACKOFF_MAX_MS)
        );
        assert!(!p.exhausted(2));
        assert!(p.exhausted(3));
        let once = RetryPolicy {
            attempts: 0,
            backoff_ms: 1,
        };
        assert!(once.exhausted(1), "at least one try, never zero");
    }
}
