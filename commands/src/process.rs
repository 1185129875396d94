//! Process managers: checkpointed readers of the global log that turn events into further
//! commands. Delivery is at-least-once (the checkpoint moves after the reactions), so every
//! reaction must be idempotent; together that makes each effect happen exactly once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;
use tokio::sync::watch;

use crate::store::{LogPosition, Store, StoredEvent};

/// Events read per batch.
pub const PROCESS_BATCH: i64 = 256;

/// What a process manager does with one event. Must be idempotent.
#[async_trait]
pub trait Reactor: Send + Sync + 'static {
    type Error: std::fmt::Display + From<sqlx::Error> + Send;
    async fn react(&self, event: &StoredEvent) -> Result<(), Self::Error>;
}

/// Runs a [`Reactor`] over the global log from its checkpoint row in `projection_checkpoints`.
pub struct ProcessRunner<R: Reactor> {
    name: &'static str,
    store: Store,
    reactor: Arc<R>,
}

impl<R: Reactor> ProcessRunner<R> {
    pub fn new(name: &'static str, store: &Store, reactor: Arc<R>) -> Self {
        Self {
            name,
            store: store.clone(),
            reactor,
        }
    }

    /// Creates the checkpoint row if missing.
    pub async fn prepare(&self) -> Result<(), R::Error> {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, version) VALUES ($1, 1) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(self.name)
        .execute(self.store.read_models())
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
        sqlx::query(
            "UPDATE projection_checkpoints \
                SET transaction_id = $1, global_position = $2, \
                    events_applied = events_applied + $3, updated_at_us = $4 \
              WHERE name = $5 AND transaction_id = $6 AND global_position = $7",
        )
        .bind(to.transaction_id)
        .bind(to.global_position)
        .bind(n as i64)
        .bind(Utc::now().timestamp_micros())
        .bind(self.name)
        .bind(from.transaction_id)
        .bind(from.global_position)
        .execute(self.store.read_models())
        .await?;
        Ok(())
    }

    /// Reacts to the next batch; returns how many events were handled. On an error the
    /// checkpoint stays after the last event handled, so the failed one is retried.
    pub async fn run_batch(&self) -> Result<usize, R::Error> {
        let from = self.checkpoint().await?;
        let events = self.store.read_global(from, PROCESS_BATCH).await?;
        let mut done = from;
        let mut handled = 0;
        for event in &events {
            if let Err(e) = self.reactor.react(event).await {
                if handled > 0 {
                    self.advance(from, done, handled).await?;
                }
                return Err(e);
            }
            done = event.position;
            handled += 1;
        }
        if handled > 0 {
            self.advance(from, done, handled).await?;
        }
        Ok(handled)
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

    /// Runs until `shutdown`: reacts as commits are signalled, polls for other processes'
    /// writes, backs off on errors.
    pub async fn run(self, mut commits: watch::Receiver<u64>, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self.prepare().await {
            tracing::error!(process = self.name, error = %e, "process manager cannot start");
            return;
        }
        let mut backoff = Duration::from_millis(100);
        while !*shutdown.borrow() {
            let pause = match self.run_batch().await {
                Ok(n) if n > 0 => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => Duration::from_millis(250),
                Err(e) => {
                    tracing::error!(process = self.name, error = %e, "process manager failed; retrying");
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    pause
                }
            };
            tokio::select! {
                _ = commits.changed() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
