//! Idempotent mutations (as Stripe does it): the first outcome under a (principal, key) is
//! stored durably in the same database and every retry gets it back; the same key with a
//! different request is `IDEMPOTENCY_CONFLICT`; concurrent requests with one key run once (the
//! others wait for the first outcome). Retryable outcomes (contention, throttling, an exhausted
//! error budget, internal failures) are not stored: a retry runs again.
//!
//! A running request owns its `pending` record (a random owner id) and renews it every
//! [`HEARTBEAT_MS`]; a retry may take the record over only once the heartbeat has stopped for
//! [`PENDING_TAKEOVER_MS`] (its request died), so a slow request is never run twice. Records are
//! written on the store's durable pool, never one with `synchronous_commit = off`.

use std::future::Future;
use std::time::Duration;

use agora_commands::append::WriteGate;
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{AnyPool, Row};

use super::auth::{sha256_hex, Principal};
use super::error::ApiError;

/// Longest accepted client key (as the OpenAPI document says).
pub const MAX_KEY_LEN: usize = 200;
/// Longest stored key: a client key under an adapter's prefix (`rest:<scope>:`), or a derived one.
pub const MAX_STORED_KEY_LEN: usize = MAX_KEY_LEN + 120;

/// A client's idempotency key: 1..=[`MAX_KEY_LEN`] printable ASCII characters.
pub fn check_client_key(key: &str) -> Result<(), ApiError> {
    let printable = key.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if key.is_empty() || key.len() > MAX_KEY_LEN || !printable {
        return Err(ApiError::BadUserInput(format!(
            "idempotency key must be 1..={MAX_KEY_LEN} printable ASCII characters"
        )));
    }
    Ok(())
}
/// A `pending` record not renewed for this long belongs to a request that died: it may be
/// taken over.
pub const PENDING_TAKEOVER_MS: i64 = 15_000;
/// How often a running request renews its `pending` record.
pub const HEARTBEAT_MS: u64 = 2_000;
/// How long a concurrent request waits for the first one's outcome.
pub const WAIT_FOR_FIRST_MS: u64 = 30_000;
const POLL_MS: u64 = 20;

#[derive(Clone)]
pub struct Idempotency {
    pool: AnyPool,
    takeover_ms: i64,
    heartbeat_ms: u64,
    /// The store's SQLite write gate, taken around each write.
    gate: Option<WriteGate>,
}

enum Claim {
    /// Run the request; the record is held under this owner id.
    Execute(String),
    Replay(Value),
}

/// How long a finished outcome is kept for retries (Stripe keeps keys for 24 hours).
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// How often the purge runs.
pub const PURGE_EVERY_MS: u64 = 10 * 60 * 1000;
/// The purge runs in one process at a time, under the lease `agora.purge:idempotency`.
pub const PURGE_LEASE_NAME: &str = "idempotency";

impl Idempotency {
    pub fn new(pool: AnyPool) -> Self {
        Self::with_timing(pool, PENDING_TAKEOVER_MS, HEARTBEAT_MS)
    }

    /// With other takeover and heartbeat periods (tests and drills); the heartbeat must be well
    /// under the takeover period.
    pub fn with_timing(pool: AnyPool, takeover_ms: i64, heartbeat_ms: u64) -> Self {
        assert!(heartbeat_ms as i64 * 3 <= takeover_ms, "heartbeat too slow");
        Self {
            pool,
            takeover_ms,
            heartbeat_ms,
            gate: None,
        }
    }

    /// Runs one write statement, holding the SQLite write gate while it runs.
    async fn write<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<sqlx::any::AnyQueryResult, sqlx::Error> {
        let _writer = WriteGate::hold(&self.gate).await;
        query.execute(&self.pool).await
    }

    /// Takes the store's SQLite write gate around every write (see `Store::write_gate`).
    pub fn with_gate(mut self, gate: Option<WriteGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Deletes finished records last touched before `older_than_us` (and `pending` ones left by
    /// requests that died long ago); returns how many. A retry after that runs as a new request.
    pub async fn purge(&self, older_than_us: i64) -> Result<u64, sqlx::Error> {
        let done = self
            .write(
                sqlx::query("DELETE FROM idempotency_records WHERE updated_at_us < $1")
                    .bind(older_than_us),
            )
            .await?;
        Ok(done.rows_affected())
    }

    /// Purges records older than [`RETENTION_MS`] every [`PURGE_EVERY_MS`] until `stop`.
    pub async fn run_purge(
        self,
        store: agora_commands::Store,
        leases: agora_commands::lease::Leases,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), agora_commands::lease::LeaseError> {
        let key = format!("{}{PURGE_LEASE_NAME}", agora_commands::lease::PURGE_LEASE);
        let Some(mut lease) = leases.acquire(&store, &key, &mut stop).await? else {
            return Ok(());
        };
        while !*stop.borrow() {
            lease.check().await?;
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
        Ok(())
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
        if key.is_empty() || key.len() > MAX_STORED_KEY_LEN {
            return Err(ApiError::BadUserInput(format!(
                "idempotency key must be 1..={MAX_KEY_LEN} characters"
            )));
        }
        let scope = format!("{}/{}", principal.tenant, principal.name);
        let hash = sha256_hex(&request.to_string());
        match self.claim(&scope, key, &hash).await? {
            Claim::Replay(outcome) => decode(outcome),
            Claim::Execute(owner) => {
                let heartbeat = tokio::spawn(self.clone().heartbeat(
                    scope.clone(),
                    key.to_owned(),
                    owner.clone(),
                ));
                let result = run().await;
                heartbeat.abort();
                self.finish(&scope, key, &owner, &result).await?;
                result
            }
        }
    }

    async fn claim(&self, scope: &str, key: &str, hash: &str) -> Result<Claim, ApiError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_FOR_FIRST_MS);
        loop {
            let now = Utc::now().timestamp_micros();
            let owner = uuid::Uuid::now_v7().to_string();
            let inserted = self.write(sqlx::query(
                "INSERT INTO idempotency_records (principal, key, request_hash, state, created_at_us, updated_at_us, owner) \
                 VALUES ($1, $2, $3, 'pending', $4, $4, $5) ON CONFLICT (principal, key) DO NOTHING",
            )
            .bind(scope)
            .bind(key)
            .bind(hash)
            .bind(now)
            .bind(&owner)
            )
            .await
            .map_err(|e| ApiError::internal("idempotency claim", e))?
            .rows_affected();
            if inserted == 1 {
                return Ok(Claim::Execute(owner));
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
            if now - updated > self.takeover_ms * 1000
                && self.take_over(scope, key, updated, now, &owner).await?
            {
                tracing::warn!("took over an idempotency record whose request stopped renewing it");
                return Ok(Claim::Execute(owner));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::Busy(
                    "a request with this idempotency key is still in progress".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Renews the record every heartbeat period while its request runs (aborted when it ends).
    async fn heartbeat(self, scope: String, key: String, owner: String) {
        loop {
            tokio::time::sleep(Duration::from_millis(self.heartbeat_ms)).await;
            let renewed = self
                .write(
                    sqlx::query(
                        "UPDATE idempotency_records SET updated_at_us = $1 \
                  WHERE principal = $2 AND key = $3 AND state = 'pending' AND owner = $4",
                    )
                    .bind(Utc::now().timestamp_micros())
                    .bind(&scope)
                    .bind(&key)
                    .bind(&owner),
                )
                .await;
            match renewed {
                Ok(r) if r.rows_affected() == 1 => {}
                Ok(_) => return,
                Err(e) => tracing::warn!(error = %e, "idempotency heartbeat failed; will retry"),
            }
        }
    }

    async fn take_over(
        &self,
        scope: &str,
        key: &str,
        seen: i64,
        now: i64,
        owner: &str,
    ) -> Result<bool, ApiError> {
        let n = self
            .write(
                sqlx::query(
                    "UPDATE idempotency_records SET updated_at_us = $1, owner = $5 \
              WHERE principal = $2 AND key = $3 AND state = 'pending' AND updated_at_us = $4",
                )
                .bind(now)
                .bind(scope)
                .bind(key)
                .bind(seen)
                .bind(owner),
            )
            .await
            .map_err(|e| ApiError::internal("idempotency takeover", e))?
            .rows_affected();
        Ok(n == 1)
    }

    async fn finish<T: Serialize>(
        &self,
        scope: &str,
        key: &str,
        owner: &str,
        result: &Result<T, ApiError>,
    ) -> Result<(), ApiError> {
        let outcome = match result {
            Ok(value) => json!({ "ok": value }),
            Err(e) if e.is_retryable() => {
                self.write(
                    sqlx::query(
                        "DELETE FROM idempotency_records WHERE principal = $1 AND key = $2 \
                      AND owner = $3 AND state = 'pending'",
                    )
                    .bind(scope)
                    .bind(key)
                    .bind(owner),
                )
                .await
                .map_err(|e| ApiError::internal("idempotency release", e))?;
                return Ok(());
            }
            Err(e) => json!({ "error": { "code": e.code(), "message": e.message() } }),
        };
        let stored = self.write(sqlx::query(
            "UPDATE idempotency_records SET state = 'done', outcome = $1, updated_at_us = $2 \
              WHERE principal = $3 AND key = $4 AND owner = $5 AND state = 'pending'",
        )
        .bind(outcome.to_string())
        .bind(Utc::now().timestamp_micros())
        .bind(scope)
        .bind(key)
        .bind(owner)
        )
        .await
        .map_err(|e| ApiError::internal("idempotency store", e))?;
        if stored.rows_affected() == 0 {
            tracing::warn!("an idempotency record was taken over before its outcome was stored");
        }
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
