//! Per-key limits in fixed windows (one minute for API requests, one hour for log submissions),
//! shared by every `agora` process (DESIGN.md §7): counted in Redis when `AGORA_REDIS_URL` is
//! set, else in the database (`limit_windows`, one row per scope, key and window, upserted).
//! The in-memory counter is for unit tests and single-process tools only.
//!
//! Windows are aligned on the wall clock (`unix_ms / window_ms`), so processes agree on them.
//! A check that cannot reach its counter fails closed ([`LimitError::Unavailable`]): a limit
//! that protects money or fairness is never skipped because a counter is down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_commands::append::WriteGate;
use chrono::{DateTime, Utc};
use sqlx::AnyPool;

/// Default requests per minute per key (`AGORA_RATE_LIMIT_PER_MINUTE`).
pub const DEFAULT_PER_MINUTE: u32 = 1_200;
/// Prefix of the Redis keys of the limits (a deployment sharing a Redis may set its own).
pub const DEFAULT_REDIS_PREFIX: &str = "agora:limit:";
const MINUTE: Duration = Duration::from_secs(60);
/// Past this many in-memory windows, those that have ended are dropped.
const PRUNE_ABOVE: usize = 10_000;
/// Database checks between deletions of ended windows.
const PRUNE_EVERY_CHECKS: u64 = 1_000;
/// Longest a Redis round trip may take before the check fails.
const REDIS_TIMEOUT_MS: u64 = 1_000;
/// Kept past a window's end in Redis, so clocks a little apart still find the counter.
const REDIS_GRACE_MS: i64 = 5_000;

/// Adds `ARGV[1]` to the counter `KEYS[1]` unless that passes the limit `ARGV[2]`; the first add
/// sets the expiry `ARGV[3]` (ms). Returns 1 when added, 0 when refused. Atomic in Redis.
const REDIS_SCRIPT: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBY', KEYS[1], n)
if used == 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
";

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("over the limit; retry after {retry_after:?}")]
    Exceeded { retry_after: Duration },
    /// The shared counter could not be reached (retryable; the request is refused).
    #[error("limit counter unavailable: {0}")]
    Unavailable(String),
}

impl LimitError {
    /// The API's answer: `THROTTLED` with the wait, or `BUSY` when the counter is down.
    pub fn into_api(self, message: String) -> crate::graphql::error::ApiError {
        use crate::graphql::error::ApiError;
        match self {
            Self::Exceeded { retry_after } => ApiError::Limited {
                message,
                retry_after_secs: retry_after.as_secs().max(1),
            },
            Self::Unavailable(cause) => ApiError::internal("rate limit counter", cause),
        }
    }
}

/// Where counters live; cheap to clone, shared by all limiters of a process.
#[derive(Clone)]
pub struct Counters(Arc<Backend>);

enum Backend {
    Memory(Mutex<HashMap<String, (u64, i64)>>),
    Database {
        pool: AnyPool,
        checks: AtomicU64,
        /// The store's SQLite write gate, held around each write.
        gate: Option<WriteGate>,
    },
    Redis {
        connection: redis::aio::ConnectionManager,
        prefix: String,
    },
}

/// One window of one key.
struct Window<'a> {
    scope: &'a str,
    key: &'a str,
    start_ms: i64,
    end_ms: i64,
    now_ms: i64,
}

impl Counters {
    /// Counters in this process's memory (tests, single-process tools).
    pub fn memory() -> Self {
        Self(Arc::new(Backend::Memory(Mutex::new(HashMap::new()))))
    }

    /// Counters in the database's `limit_windows` table (migration 0008); `gate` is the
    /// store's SQLite write gate (`Store::write_gate`), held around each write.
    pub fn database(pool: AnyPool, gate: Option<WriteGate>) -> Self {
        Self(Arc::new(Backend::Database {
            pool,
            checks: AtomicU64::new(0),
            gate,
        }))
    }

    /// Counters in Redis at `url`, under keys starting with `prefix`.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, LimitError> {
        let client =
            redis::Client::open(url).map_err(|e| LimitError::Unavailable(e.to_string()))?;
        let connection = tokio::time::timeout(
            Duration::from_millis(REDIS_TIMEOUT_MS),
            client.get_connection_manager(),
        )
        .await
        .map_err(|_| LimitError::Unavailable("connecting to Redis timed out".into()))?
        .map_err(|e| LimitError::Unavailable(e.to_string()))?;
        Ok(Self(Arc::new(Backend::Redis {
            connection,
            prefix: prefix.to_owned(),
        })))
    }

    /// Adds `n` to the window's counter unless that passes `limit`; whether it was added.
    async fn add(&self, w: &Window<'_>, n: u32, limit: u32) -> Result<bool, LimitError> {
        match self.0.as_ref() {
            Backend::Memory(windows) => {
                let mut windows = windows.lock().unwrap_or_else(|p| p.into_inner());
                if windows.len() > PRUNE_ABOVE {
                    windows.retain(|_, (_, end_ms)| *end_ms > w.now_ms);
                }
                let name = format!("{}\n{}\n{}", w.scope, w.key, w.start_ms);
                let entry = windows.entry(name).or_insert((0, w.end_ms));
                if entry.0 + u64::from(n) > u64::from(limit) {
                    return Ok(false);
                }
                entry.0 += u64::from(n);
                Ok(true)
            }
            Backend::Database { pool, checks, gate } => {
                let _writer = WriteGate::hold(gate).await;
                if checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY_CHECKS == 0 {
                    prune(pool, w.now_ms).await?;
                }
                add_in_database(pool, w, n, limit).await
            }
            Backend::Redis { connection, prefix } => {
                let key = format!("{prefix}{}:{}:{}", w.scope, w.key, w.start_ms);
                let ttl_ms = (w.end_ms - w.now_ms).max(1) + REDIS_GRACE_MS;
                let mut connection = connection.clone();
                let added: i64 = tokio::time::timeout(
                    Duration::from_millis(REDIS_TIMEOUT_MS),
                    redis::cmd("EVAL")
                        .arg(REDIS_SCRIPT)
                        .arg(1)
                        .arg(&key)
                        .arg(n)
                        .arg(limit)
                        .arg(ttl_ms)
                        .query_async(&mut connection),
                )
                .await
                .map_err(|_| LimitError::Unavailable("Redis timed out".into()))?
                .map_err(|e| LimitError::Unavailable(e.to_string()))?;
                Ok(added == 1)
            }
        }
    }
}

async fn add_in_database(
    pool: &AnyPool,
    w: &Window<'_>,
    n: u32,
    limit: u32,
) -> Result<bool, LimitError> {
    // One statement: insert the window, or add to it only while it stays within the limit.
    let row = sqlx::query(
        "INSERT INTO limit_windows (scope, limit_key, window_start_ms, window_end_ms, used) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (scope, limit_key, window_start_ms) \
         DO UPDATE SET used = limit_windows.used + excluded.used \
         WHERE limit_windows.used + excluded.used <= $6 \
         RETURNING used",
    )
    .bind(w.scope)
    .bind(w.key)
    .bind(w.start_ms)
    .bind(w.end_ms)
    .bind(i64::from(n))
    .bind(i64::from(limit))
    .fetch_optional(pool)
    .await
    .map_err(|e| LimitError::Unavailable(e.to_string()))?;
    Ok(row.is_some())
}

async fn prune(pool: &AnyPool, now_ms: i64) -> Result<(), LimitError> {
    sqlx::query("DELETE FROM limit_windows WHERE window_end_ms < $1")
        .bind(now_ms)
        .execute(pool)
        .await
        .map_err(|e| LimitError::Unavailable(e.to_string()))?;
    Ok(())
}

/// `limit` units per key per `window` in one scope (the limit's name).
pub struct RateLimiter {
    scope: &'static str,
    limit: u32,
    window: Duration,
    counters: Counters,
}

impl RateLimiter {
    /// `per_minute` requests per key per minute.
    pub fn new(scope: &'static str, per_minute: u32, counters: Counters) -> Self {
        Self::with_window(scope, per_minute, MINUTE, counters)
    }

    /// `limit` units per key per `window`.
    pub fn with_window(
        scope: &'static str,
        limit: u32,
        window: Duration,
        counters: Counters,
    ) -> Self {
        Self {
            scope,
            limit: limit.max(1),
            window: window.max(Duration::from_millis(1)),
            counters,
        }
    }

    /// Counts a request by `key` now.
    pub async fn check(&self, key: &str) -> Result<(), LimitError> {
        self.check_n_at(key, 1, Utc::now()).await
    }

    /// Counts `n` units by `key` now, all or none.
    pub async fn check_n(&self, key: &str, n: u32) -> Result<(), LimitError> {
        self.check_n_at(key, n, Utc::now()).await
    }

    /// Counts `n` units by `key` at `now`, all or none; [`LimitError::Exceeded`] with the time
    /// to the window's end when they would go over the limit.
    pub async fn check_n_at(
        &self,
        key: &str,
        n: u32,
        now: DateTime<Utc>,
    ) -> Result<(), LimitError> {
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let now_ms = now.timestamp_millis();
        let start_ms = now_ms.div_euclid(window_ms) * window_ms;
        let end_ms = start_ms.saturating_add(window_ms);
        let retry_after = Duration::from_millis(u64::try_from(end_ms - now_ms).unwrap_or(0));
        if n > self.limit {
            return Err(LimitError::Exceeded { retry_after });
        }
        let w = Window {
            scope: self.scope,
            key,
            start_ms,
            end_ms,
            now_ms,
        };
        if self.counters.add(&w, n, self.limit).await? {
            Ok(())
        } else {
            Err(LimitError::Exceeded { retry_after })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[tokio::test]
    async fn limits_per_key_per_window() {
        let limiter = RateLimiter::new("test", 3, Counters::memory());
        for _ in 0..3 {
            assert!(limiter.check_n_at("a", 1, at(0)).await.is_ok());
        }
        let refused = limiter.check_n_at("a", 1, at(10)).await;
        assert_eq!(
            refused,
            Err(LimitError::Exceeded {
                retry_after: Duration::from_secs(50)
            })
        );
        assert!(
            limiter.check_n_at("b", 1, at(0)).await.is_ok(),
            "keys are counted separately"
        );
        assert!(
            limiter.check_n_at("a", 1, at(60)).await.is_ok(),
            "a new window"
        );
    }

    #[tokio::test]
    async fn counts_batches_all_or_nothing() {
        let limiter =
            RateLimiter::with_window("test", 1000, Duration::from_secs(3600), Counters::memory());
        // 1_800_000_000 starts an hour (and a minute).
        assert!(limiter.check_n_at("s", 990, at(0)).await.is_ok());
        let refused = limiter.check_n_at("s", 11, at(600)).await;
        assert_eq!(
            refused,
            Err(LimitError::Exceeded {
                retry_after: Duration::from_secs(3000)
            })
        );
        assert!(
            limiter.check_n_at("s", 10, at(0)).await.is_ok(),
            "the refused batch counted nothing"
        );
        assert!(limiter.check_n_at("s", 1, at(0)).await.is_err());
    }

    #[tokio::test]
    async fn scopes_sharing_counters_are_counted_apart() {
        let counters = Counters::memory();
        let a = RateLimiter::new("requests", 1, counters.clone());
        let b = RateLimiter::new("submissions", 1, counters);
        assert!(a.check_n_at("k", 1, at(0)).await.is_ok());
        assert!(b.check_n_at("k", 1, at(0)).await.is_ok());
        assert!(a.check_n_at("k", 1, at(0)).await.is_err());
    }
}
