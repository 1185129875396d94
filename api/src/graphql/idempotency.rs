//! Idempotent mutations (as Stripe does it): the first outcome under a (principal, key) is
//! stored durably in the same database and every retry gets it back; the same key with a
//! different request is `IDEMPOTENCY_CONFLICT`; concurrent requests with one key run once (the
//! others wait for the first outcome). Internal failures are not stored: a retry runs again.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{AnyPool, Row};

use super::auth::{sha256_hex, Principal};
use super::error::ApiError;

/// Longest accepted client key.
pub const MAX_KEY_LEN: usize = 200;
/// A `pending` record older than this belongs to a request that died: it may be taken over.
pub const PENDING_TAKEOVER_MS: i64 = 60_000;
/// How long a concurrent request waits for the first one's outcome.
pub const WAIT_FOR_FIRST_MS: u64 = 30_000;
const POLL_MS: u64 = 20;

#[derive(Clone)]
pub struct Idempotency {
    pool: AnyPool,
}

enum Claim {
    Execute,
    Replay(Value),
}

/// How long a finished outcome is kept for retries (Stripe keeps keys for 24 hours).
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// How often the purge runs.
pub const PURGE_EVERY_MS: u64 = 10 * 60 * 1000;

impl Idempotency {
    pub fn new(pool: AnyPool) -> Self {
        Self { pool }
    }

    /// Deletes finished records last touched before `older_than_us` (and `pending` ones left by
    /// requests that died long ago); returns how many. A retry after that runs as a new request.
    pub async fn purge(&self, older_than_us: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM idempotency_records WHERE updated_at_us < $1")
            .bind(older_than_us)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Purges records older than [`RETENTION_MS`] every [`PURGE_EVERY_MS`] until `stop`.
    pub async fn run_purge(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        while !*stop.borrow() {
            let cutoff = Utc::now().timestamp_micros() - RETENTION_MS * 1000;
            match self.purge(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "purged expired idempotency records"),
                Err(e) => tracing::warn!(error = %e, "idempotency purge failed; will retry"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(PURGE_EVERY_MS)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Runs `run` once per (principal, key); `request` identifies the mutation and its input.
    pub async fn once<T, F, Fut>(
        &self,
        principal: &Principal,
        key: &str,
        request: &Value,
        run: F,
    ) -> Result<T, ApiError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(ApiError::BadUserInput(format!(
                "idempotency key must be 1..={MAX_KEY_LEN} characters"
            )));
        }
        let scope = format!("{}/{}", principal.tenant, principal.name);
        let hash = sha256_hex(&request.to_string());
        match self.claim(&scope, key, &hash).await? {
            Claim::Replay(outcome) => decode(outcome),
            Claim::Execute => {
                let result = run().await;
                self.finish(&scope, key, &result).await?;
                result
            }
        }
    }

    async fn claim(&self, scope: &str, key: &str, hash: &str) -> Result<Claim, ApiError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_FOR_FIRST_MS);
        loop {
            let now = Utc::now().timestamp_micros();
            let inserted = sqlx::query(
                "INSERT INTO idempotency_records (principal, key, request_hash, state, created_at_us, updated_at_us) \
                 VALUES ($1, $2, $3, 'pending', $4, $4) ON CONFLICT (principal, key) DO NOTHING",
            )
            .bind(scope)
            .bind(key)
            .bind(hash)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| ApiError::internal("idempotency claim", e))?
            .rows_affected();
            if inserted == 1 {
                return Ok(Claim::Execute);
            }
            let row = sqlx::query(
                "SELECT request_hash, state, outcome, updated_at_us FROM idempotency_records \
                  WHERE principal = $1 AND key = $2",
            )
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| ApiError::internal("idempotency lookup", e))?;
            let Some(row) = row else { continue };
            let stored_hash: String = row
                .try_get(0)
                .map_err(|e| ApiError::internal("idempotency row", e))?;
            if stored_hash != hash {
                return Err(ApiError::IdempotencyConflict);
            }
            let state: String = row
                .try_get(1)
                .map_err(|e| ApiError::internal("idempotency row", e))?;
            if state == "done" {
                let outcome: String = row
                    .try_get(2)
                    .map_err(|e| ApiError::internal("idempotency row", e))?;
                let value = serde_json::from_str(&outcome)
                    .map_err(|e| ApiError::internal("idempotency outcome", e))?;
                return Ok(Claim::Replay(value));
            }
            let updated: i64 = row
                .try_get(3)
                .map_err(|e| ApiError::internal("idempotency row", e))?;
            if now - updated > PENDING_TAKEOVER_MS * 1000
                && self.take_over(scope, key, updated, now).await?
            {
                return Ok(Claim::Execute);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::Conflict(
                    "a request with this idempotency key is still in progress".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    async fn take_over(
        &self,
        scope: &str,
        key: &str,
        seen: i64,
        now: i64,
    ) -> Result<bool, ApiError> {
        let n = sqlx::query(
            "UPDATE idempotency_records SET updated_at_us = $1 \
              WHERE principal = $2 AND key = $3 AND state = 'pending' AND updated_at_us = $4",
        )
        .bind(now)
        .bind(scope)
        .bind(key)
        .bind(seen)
        .execute(&self.pool)
        .await
        .map_err(|e| ApiError::internal("idempotency takeover", e))?
        .rows_affected();
        Ok(n == 1)
    }

    async fn finish<T: Serialize>(
        &self,
        scope: &str,
        key: &str,
        result: &Result<T, ApiError>,
    ) -> Result<(), ApiError> {
        let outcome = match result {
            Ok(value) => json!({ "ok": value }),
            Err(ApiError::Internal(_)) => {
                sqlx::query("DELETE FROM idempotency_records WHERE principal = $1 AND key = $2")
                    .bind(scope)
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| ApiError::internal("idempotency release", e))?;
                return Ok(());
            }
            Err(e) => json!({ "error": { "code": e.code(), "message": e.message() } }),
        };
        sqlx::query(
            "UPDATE idempotency_records SET state = 'done', outcome = $1, updated_at_us = $2 \
              WHERE principal = $3 AND key = $4",
        )
        .bind(outcome.to_string())
        .bind(Utc::now().timestamp_micros())
        .bind(scope)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(|e| ApiError::internal("idempotency store", e))?;
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(outcome: Value) -> Result<T, ApiError> {
    if let Some(ok) = outcome.get("ok") {
        return serde_json::from_value(ok.clone())
            .map_err(|e| ApiError::internal("idempotency replay", e));
    }
    let code = outcome["error"]["code"].as_str().unwrap_or("INTERNAL");
    let message = outcome["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Err(ApiError::from_stored(code, message))
}
