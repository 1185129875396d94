//! Leases on background work, and the supervisor that keeps background tasks alive.
//!
//! Every piece of background work (a projection, a process manager, a job queue, a purge) runs
//! in exactly one `agora` process at a time among those sharing one PostgreSQL database. The
//! owner holds a session advisory lock (`pg_try_advisory_lock(hashtextextended(key, 0))`) on a
//! **dedicated** connection opened for the lease and closed with it: the lock lives exactly as
//! long as that session, so when the owner dies its connection dies, PostgreSQL releases the
//! lock, and a standby polling every [`LEASE_RETRY_MS`] takes over. The owner checks the lease
//! connection before every batch ([`Lease::check`]); a failed check means the lease may be gone
//! and the work stops at once. SQLite has one process: the lease is held trivially, through the
//! same code path.
//!
//! [`supervise`] runs a task again, with capped backoff, whenever it returns an error or
//! panics, so one failure never ends background work for good.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Row};
use tokio::sync::watch;

use crate::store::Store;

/// How often a standby tries to take a lease it does not hold (the takeover delay after the
/// owner dies is at most this plus the time PostgreSQL takes to notice the dead session).
pub const LEASE_RETRY_MS: u64 = 1_000;
/// Longest a lease check (a round trip on the lease connection) may take before the lease is
/// treated as lost.
pub const LEASE_CHECK_TIMEOUT_MS: u64 = 2_000;
/// Longest the lease connection may take to open.
pub const LEASE_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// First and longest pause before a supervised task that failed is started again.
pub const SUPERVISOR_BACKOFF_MIN_MS: u64 = 100;
pub const SUPERVISOR_BACKOFF_MAX_MS: u64 = 10_000;
/// A run that lasted at least this long resets the supervisor's backoff.
pub const SUPERVISOR_HEALTHY_RUN_MS: u64 = 30_000;

/// Prefixes of lease keys, one per kind of background work.
pub const PROJECTION_LEASE: &str = "agora.projection:";
pub const PROCESS_LEASE: &str = "agora.process:";
pub const QUEUE_LEASE: &str = "agora.queue:";
pub const PURGE_LEASE: &str = "agora.purge:";

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease {key}: database error: {source}")]
    Database {
        key: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("lease {key}: the lease connection did not answer within {timeout_ms} ms")]
    Timeout { key: String, timeout_ms: u64 },
    #[error("lease {key} lost: {reason}")]
    Lost { key: String, reason: String },
}

/// The leases this process holds (for `/readyz` and tests). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Leases {
    held: Arc<Mutex<BTreeSet<String>>>,
}

impl Leases {
    /// Keys of the leases held right now, sorted.
    pub fn held(&self) -> Vec<String> {
        lock(&self.held).iter().cloned().collect()
    }

    pub fn holds(&self, key: &str) -> bool {
        lock(&self.held).contains(key)
    }

    /// Tries once to take lease `key`; `None` when another process holds it.
    pub async fn try_acquire(&self, store: &Store, key: &str) -> Result<Option<Lease>, LeaseError> {
        let conn = match store.pg_pool() {
            None => None,
            Some(pool) => {
                let db = |source| LeaseError::Database {
                    key: key.to_owned(),
                    source,
                };
                let options = pool.connect_options();
                let connect = PgConnection::connect_with(&options);
                let mut conn =
                    tokio::time::timeout(Duration::from_millis(LEASE_CONNECT_TIMEOUT_MS), connect)
                        .await
                        .map_err(|_| LeaseError::Timeout {
                            key: key.to_owned(),
                            timeout_ms: LEASE_CONNECT_TIMEOUT_MS,
                        })?
                        .map_err(db)?;
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(db)?;
                if !got {
                    // Closing the session would release nothing: the lock is someone else's.
                    let _ = conn.close().await;
                    return Ok(None);
                }
                Some(conn)
            }
        };
        lock(&self.held).insert(key.to_owned());
        tracing::info!(lease = key, "lease gained");
        Ok(Some(Lease {
            key: key.to_owned(),
            conn,
            leases: self.clone(),
        }))
    }

    /// Waits until lease `key` is taken (trying every [`LEASE_RETRY_MS`]); `None` when
    /// `shutdown` turns true first.
    pub async fn acquire(
        &self,
        store: &Store,
        key: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Lease>, LeaseError> {
        let mut told = false;
        loop {
            if *shutdown.borrow() {
                return Ok(None);
            }
            if let Some(lease) = self.try_acquire(store, key).await? {
                return Ok(Some(lease));
            }
            if !told {
                tracing::info!(lease = key, "another process holds the lease; standing by");
                told = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(LEASE_RETRY_MS)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// A held lease: on PostgreSQL the dedicated session that holds the advisory lock. Dropping it
/// closes the session, which releases the lock.
pub struct Lease {
    key: String,
    conn: Option<PgConnection>,
    leases: Leases,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("key", &self.key).finish()
    }
}

impl Lease {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Proves the lease is still held: one round trip on the lease's own session, which holds
    /// the lock for as long as it is alive (and this process never unlocks it). An error or a
    /// slow answer means the session (and with it the lock) may be gone: the caller must stop.
    pub async fn check(&mut self) -> Result<(), LeaseError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let key = self.key.clone();
        let held = tokio::time::timeout(
            Duration::from_millis(LEASE_CHECK_TIMEOUT_MS),
            sqlx::query(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted \
                 AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0))",
            )
            .bind(&key)
            .fetch_one(&mut *conn),
        )
        .await;
        let lost = match held {
            Err(_) => LeaseError::Timeout {
                key: key.clone(),
                timeout_ms: LEASE_CHECK_TIMEOUT_MS,
            },
            Ok(Err(source)) => LeaseError::Database {
                key: key.clone(),
                source,
            },
            Ok(Ok(row)) => match row.try_get::<bool, _>(0) {
                Ok(true) => return Ok(()),
                Ok(false) => LeaseError::Lost {
                    key: key.clone(),
                    reason: "the advisory lock is no longer held by the lease session".into(),
                },
                Err(source) => LeaseError::Database {
                    key: key.clone(),
                    source,
                },
            },
        };
        tracing::error!(lease = %key, error = %lost, "lease lost; stopping its work");
        self.release();
        Err(lost)
    }

    /// Gives the lease up (closing the session) and forgets it.
    fn release(&mut self) {
        if lock(&self.leases.held).remove(&self.key) {
            tracing::info!(lease = %self.key, "lease released");
        }
        // Closing the session ends the lock with it (dropping the connection would too, once
        // the server notices the socket closed).
        if let Some(conn) = self.conn.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = conn.close().await;
                });
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release();
    }
}

/// Runs `start()` until `shutdown` turns true, starting it again after it returns an error,
/// panics, or returns while not shut down, pausing [`SUPERVISOR_BACKOFF_MIN_MS`] doubling to
/// [`SUPERVISOR_BACKOFF_MAX_MS`] (reset after a run of [`SUPERVISOR_HEALTHY_RUN_MS`]).
pub async fn supervise<F, Fut, E>(name: String, mut shutdown: watch::Receiver<bool>, mut start: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let mut backoff = Duration::from_millis(SUPERVISOR_BACKOFF_MIN_MS);
    let mut restarts = 0;
    loop {
        let started = tokio::time::Instant::now();
        let outcome = tokio::spawn(start()).await;
        if *shutdown.borrow() {
            if let Ok(Err(e)) = &outcome {
                tracing::warn!(task = %name, error = %e, "background task ended with an error at shutdown");
            }
            return;
        }
        match outcome {
            Ok(Ok(())) => tracing::warn!(task = %name, "background task returned; restarting it"),
            Ok(Err(e)) => {
                tracing::error!(task = %name, error = %e, "background task failed; restarting it")
            }
            Err(e) => {
                tracing::error!(task = %name, error = %e, "background task panicked; restarting it")
            }
        }
        if started.elapsed() >= Duration::from_millis(SUPERVISOR_HEALTHY_RUN_MS) {
            backoff = Duration::from_millis(SUPERVISOR_BACKOFF_MIN_MS);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_millis(SUPERVISOR_BACKOFF_MAX_MS));
        restarts += 1;
        tracing::info!(task = %name, restarts, "restarting background task");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
