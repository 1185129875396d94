//! The dead-letter store: events a projection or a process manager could not handle after its
//! retries (DESIGN.md §7).
//!
//! A row is inserted in the transaction that moves the runner's checkpoint past its event, so
//! the runner goes on and the event is never lost from view. While a row is `parked`, `/readyz`
//! answers degraded. An operator then either retries the event (the runner applies it again and
//! the row is deleted in that same transaction) or skips it (a `ParkedEventSkipped` event is
//! appended to the log by the API, then the row is marked `skipped`).
//!
//! The table is `parked_events` (migration 0004), written through the read-model pool so one
//! store serves both backends.

use std::collections::BTreeMap;

use agora_commands::process::{DeadLetter, DeadLetters};
use agora_commands::store::LogPosition;
use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

/// Most rows one listing returns.
pub const MAX_PARKED_PAGE: i64 = 500;

/// Status of a row awaiting an operator.
pub const STATUS_PARKED: &str = "parked";
/// Status of a row an operator skipped (the skip is an event in the log).
pub const STATUS_SKIPPED: &str = "skipped";

#[derive(Debug, thiserror::Error)]
pub enum ParkingError {
    #[error("no parked event with id {0}")]
    NotFound(i64),
    #[error("parked event {id} is already resolved ({status})")]
    AlreadyResolved { id: i64, status: String },
    #[error("no projection or process manager called {0} runs here")]
    UnknownRunner(String),
    #[error("the event at position {0} is not in the log")]
    EventMissing(i64),
    #[error("{runner} failed on the event again: {reason}")]
    StillFailing { runner: String, reason: String },
    #[error("dead-letter store error: {0}")]
    Database(#[from] sqlx::Error),
}

/// One dead-letter row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParkedEvent {
    pub id: i64,
    /// The projection or process manager (its checkpoint name).
    pub runner: String,
    pub transaction_id: i64,
    pub global_position: i64,
    pub event_id: Option<String>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub error: String,
    pub attempts: i64,
    pub parked_at_us: i64,
    /// [`STATUS_PARKED`] or [`STATUS_SKIPPED`].
    pub status: String,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
    pub resolved_at_us: Option<i64>,
}

impl ParkedEvent {
    pub fn position(&self) -> LogPosition {
        LogPosition {
            transaction_id: self.transaction_id,
            global_position: self.global_position,
        }
    }

    pub fn is_open(&self) -> bool {
        self.status == STATUS_PARKED
    }

    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            runner: row.try_get("runner")?,
            transaction_id: row.try_get("transaction_id")?,
            global_position: row.try_get("global_position")?,
            event_id: row.try_get("event_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            error: row.try_get("error")?,
            attempts: row.try_get("attempts")?,
            parked_at_us: row.try_get("parked_at_us")?,
            status: row.try_get("status")?,
            resolved_by: row.try_get("resolved_by")?,
            resolution: row.try_get("resolution")?,
            resolved_at_us: row.try_get("resolved_at_us")?,
        })
    }
}

const COLUMNS: &str = "id, runner, transaction_id, global_position, event_id, aggregate_type, \
    aggregate_id, sequence, event_type, event_version, error, attempts, parked_at_us, status, \
    resolved_by, resolution, resolved_at_us";

/// The `parked_events` table.
#[derive(Clone, Debug)]
pub struct ParkingStore {
    pool: AnyPool,
}

impl ParkingStore {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Rows, newest first: only those awaiting an operator unless `include_resolved`; of one
    /// runner when given. At most `limit` (capped at [`MAX_PARKED_PAGE`]).
    pub async fn list(
        &self,
        runner: Option<&str>,
        include_resolved: bool,
        limit: i64,
    ) -> Result<Vec<ParkedEvent>, ParkingError> {
        // Numbered placeholders by hand: the `Any` query builder writes `?`, which PostgreSQL
        // does not take.
        let mut sql = format!("SELECT {COLUMNS} FROM parked_events WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if !include_resolved {
            sql.push_str(&format!(" AND status = {}", next()));
        }
        if runner.is_some() {
            sql.push_str(&format!(" AND runner = {}", next()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", next()));
        let mut q = sqlx::query(&sql);
        if !include_resolved {
            q = q.bind(STATUS_PARKED);
        }
        if let Some(runner) = runner {
            q = q.bind(runner);
        }
        let rows = q
            .bind(limit.clamp(1, MAX_PARKED_PAGE))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(ParkedEvent::from_row)
            .collect::<Result<_, _>>()?)
    }

    pub async fn get(&self, id: i64) -> Result<ParkedEvent, ParkingError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM parked_events WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(ParkingError::NotFound(id))?;
        Ok(ParkedEvent::from_row(&row)?)
    }

    /// The row, if it still awaits an operator.
    pub async fn open(&self, id: i64) -> Result<ParkedEvent, ParkingError> {
        let parked = self.get(id).await?;
        if !parked.is_open() {
            return Err(ParkingError::AlreadyResolved {
                id,
                status: parked.status,
            });
        }
        Ok(parked)
    }

    /// Rows awaiting an operator, per runner (runners with none are absent).
    pub async fn open_counts(&self) -> Result<BTreeMap<String, i64>, ParkingError> {
        let rows = sqlx::query(
            "SELECT runner, COUNT(*) AS n FROM parked_events WHERE status = $1 GROUP BY runner",
        )
        .bind(STATUS_PARKED)
        .fetch_all(&self.pool)
        .await?;
        let mut out = BTreeMap::new();
        for row in rows {
            out.insert(row.try_get("runner")?, row.try_get("n")?);
        }
        Ok(out)
    }

    /// Marks an open row skipped by `actor` for `reason` (after the skip event is appended).
    pub async fn mark_skipped(
        &self,
        id: i64,
        actor: &str,
        reason: &str,
    ) -> Result<(), ParkingError> {
        let done = sqlx::query(
            "UPDATE parked_events SET status = $1, resolved_by = $2, resolution = $3, \
                    resolved_at_us = $4 \
              WHERE id = $5 AND status = $6",
        )
        .bind(STATUS_SKIPPED)
        .bind(actor)
        .bind(reason)
        .bind(Utc::now().timestamp_micros())
        .bind(id)
        .bind(STATUS_PARKED)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        // Say why: missing, or resolved meanwhile.
        self.open(id).await.map(|_| ())
    }

    /// Deletes an open row inside the caller's transaction (the one that re-applied its
    /// event); false when it was resolved or deleted meanwhile.
    pub async fn remove_in(&self, conn: &mut AnyConnection, id: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM parked_events WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(STATUS_PARKED)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes an open row (after a process manager reacted to its event again).
    pub async fn remove(&self, id: i64) -> Result<bool, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        self.remove_in(&mut conn, id).await
    }
}

#[async_trait]
impl DeadLetters for ParkingStore {
    /// Inserts the row; a second park of the same event by the same runner (two processes
    /// racing) keeps the first.
    async fn park(&self, conn: &mut AnyConnection, letter: &DeadLetter) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO parked_events (runner, transaction_id, global_position, event_id, \
                aggregate_type, aggregate_id, sequence, event_type, event_version, error, \
                attempts, parked_at_us, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (runner, global_position) DO NOTHING",
        )
        .bind(&letter.runner)
        .bind(letter.position.transaction_id)
        .bind(letter.position.global_position)
        .bind(letter.event_id.clone())
        .bind(&letter.aggregate_type)
        .bind(&letter.aggregate_id)
        .bind(letter.sequence)
        .bind(&letter.event_type)
        .bind(&letter.event_version)
        .bind(&letter.error)
        .bind(i64::from(letter.attempts))
        .bind(letter.parked_at_us)
        .bind(STATUS_PARKED)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
