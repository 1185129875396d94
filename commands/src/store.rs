//! The event store: one interface over PostgreSQL (postgres-es) and embedded SQLite (sqlite-es),
//! chosen by the database URL, plus the global-order reader that projections follow.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::persist::{
    PersistedEventRepository, PersistedEventStore, PersistenceError, ReplayStream, SerializedEvent,
    SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlite_es::SqliteEventRepository;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::append::{
    AppendSnapshot, Appender, BatchLimits, Commit, IngestError, IngestOutcome, IngestRecord,
    SnapshotRow, Target, WriteGate,
};
use crate::tail::{Tail, TailStats};
use crate::turns::AggregateTurns;

/// Connections the PostgreSQL write pool keeps at most (commands, catch-up reads).
pub const DEFAULT_PG_POOL_SIZE: u32 = 32;
/// Connections the read-model pool keeps at most (projection transactions, queries).
pub const DEFAULT_READ_POOL_SIZE: u32 = 16;
/// SQLite connections; writes are serialised by SQLite itself, reads run in parallel (WAL).
pub const DEFAULT_SQLITE_POOL_SIZE: u32 = 8;
/// How long a connection attempt or a wait for a pooled connection may take.
pub const ACQUIRE_TIMEOUT_MS: u64 = 10_000;
/// How long a SQLite writer waits for the write lock before failing.
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;
/// Most events one global-order read returns.
pub const MAX_READ_BATCH: i64 = 10_000;
/// Most events a backlog count reads ([`Store::pending_after`]): a lag beyond it is reported
/// as this many, so a scrape never counts a whole table.
pub const MAX_BACKLOG_EVENTS: i64 = 100_000;
/// Settings of the SQLite read-model connections (the `Any` driver takes no options but the URL).
/// Settings of the PostgreSQL read-model connections: see [`Store::begin_read_model_write`].
const PG_READ_POOL_SETTINGS: &str = "SET synchronous_commit = off";
/// Sessions of the read-only auditor commands: any write fails.
const PG_READ_ONLY_SETTINGS: &str = "SET default_transaction_read_only = on";
/// Connections per pool of the auditor's commands (they read sequentially).
pub const AUDIT_POOL_SIZE: u32 = 2;
/// `synchronous = NORMAL`: see [`Store::begin_read_model_write`].
const SQLITE_READ_POOL_PRAGMAS: &str =
    "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";
/// Settings of the durable `Any` connections (idempotency records, leases): every commit waits
/// for the disk, as the event log's do.
const SQLITE_DURABLE_POOL_PRAGMAS: &str =
    "PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";
/// Connections of the durable `Any` pool.
pub const DURABLE_POOL_SIZE: u32 = 4;
/// File name of the embedded database inside the data directory.
pub const SQLITE_FILE_NAME: &str = "agora.db";

static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Where the event log lives. Parsed from `DATABASE_URL` (or its absence).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    Postgres { url: String },
    Sqlite { path: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreConfigError {
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite:// (got scheme {scheme:?})")]
    UnsupportedScheme { scheme: String },
    #[error("sqlite URL has an empty path")]
    EmptySqlitePath,
}

impl StoreLocation {
    /// `postgres://…` → PostgreSQL; `sqlite://path` → that file; `None` → `data_dir/agora.db`.
    pub fn parse(database_url: Option<&str>, data_dir: &Path) -> Result<Self, StoreConfigError> {
        let Some(url) = database_url.filter(|u| !u.trim().is_empty()) else {
            return Ok(Self::Sqlite {
                path: data_dir.join(SQLITE_FILE_NAME),
            });
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres {
                url: url.to_string(),
            });
        }
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(StoreConfigError::EmptySqlitePath);
            }
            return Ok(Self::Sqlite {
                path: PathBuf::from(path),
            });
        }
        let scheme = url.split(':').next().unwrap_or_default().to_string();
        Err(StoreConfigError::UnsupportedScheme { scheme })
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres { .. } => Backend::Postgres,
            Self::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// The location with any password in the URL replaced, for logs.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url } => redact_url_password(url),
        }
    }
}

fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// Pool sizes; defaults are the named constants above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSizes {
    pub write: u32,
    pub read: u32,
}

impl Default for PoolSizes {
    fn default() -> Self {
        Self {
            write: DEFAULT_PG_POOL_SIZE,
            read: DEFAULT_READ_POOL_SIZE,
        }
    }
}

/// Whether a connection may write ([`Store::connect_existing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

#[derive(Clone, Debug)]
enum NativePool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A connected, migrated event store: the native pool the write side and the global reader use,
/// and an `Any` pool on the same database for read models (so each projection is written once
/// for both backends).
#[derive(Clone, Debug)]
pub struct Store {
    native: NativePool,
    read_models: AnyPool,
    durable: AnyPool,
    location: StoreLocation,
    /// Events read to load aggregates since connecting (see [`Store::events_loaded`]).
    events_loaded: Arc<AtomicU64>,
    /// Where appends go, and the group-commit queue every repository appends through.
    target: Target,
    appender: Appender,
    /// The events most recently read in global order, shared by this store's readers.
    tail: Tail,
    /// Per-aggregate turns shared by every command bus on this store.
    turns: Arc<AggregateTurns>,
}

impl Store {
    /// Connects to the location. Does not migrate: call [`Store::migrate`].
    pub async fn connect(location: &StoreLocation, sizes: &PoolSizes) -> anyhow::Result<Self> {
        Self::connect_gated(location, sizes, WriteGate::default()).await
    }

    /// Another store on the same database with pools and append writers of its own, for work
    /// on another runtime (a connection belongs to the runtime that opened it: call this on
    /// that runtime). On SQLite it shares this store's write gate, so the process keeps one
    /// writer at a time; it shares the per-aggregate turns on both backends.
    pub async fn sibling(&self, sizes: &PoolSizes) -> anyhow::Result<Self> {
        let gate = match &self.target {
            Target::Sqlite(_, gate) => gate.clone(),
            Target::Postgres(_) => WriteGate::default(),
        };
        let mut sibling = Self::connect_gated(&self.location, sizes, gate).await?;
        // Same process: commands on one aggregate take turns across both runtimes.
        sibling.turns = self.turns.clone();
        Ok(sibling)
    }

    async fn connect_gated(
        location: &StoreLocation,
        sizes: &PoolSizes,
        gate: WriteGate,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        sqlx::any::install_default_drivers();
        let acquire = Duration::from_millis(ACQUIRE_TIMEOUT_MS);
        let (native, any_url) = match location {
            StoreLocation::Postgres { url } => {
                let pool = PgPoolOptions::new()
                    .max_connections(sizes.write)
                    .acquire_timeout(acquire)
                    .connect(url)
                    .await
                    .with_context(|| format!("connecting to {}", location.redacted()))?;
                (NativePool::Postgres(pool), url.clone())
            }
            StoreLocation::Sqlite { path } => {
                let pool = connect_sqlite(path, acquire)
                    .await
                    .with_context(|| format!("opening {}", location.redacted()))?;
                (
                    NativePool::Sqlite(pool),
                    format!("sqlite://{}", path.display()),
                )
            }
        };
        let read_size = match location {
            StoreLocation::Postgres { .. } => sizes.read,
            StoreLocation::Sqlite { .. } => DEFAULT_SQLITE_POOL_SIZE,
        };
        let is_sqlite = location.backend() == Backend::Sqlite;
        let read_models = AnyPoolOptions::new()
            .max_connections(read_size)
            .acquire_timeout(acquire)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    use sqlx::Executor;
                    let settings = if is_sqlite {
                        SQLITE_READ_POOL_PRAGMAS
                    } else {
                        PG_READ_POOL_SETTINGS
                    };
                    conn.execute(settings).await?;
                    Ok(())
                })
            })
            .connect(&any_url)
            .await
            .with_context(|| format!("opening read-model pool on {}", location.redacted()))?;
        let durable = AnyPoolOptions::new()
            .max_connections(DURABLE_POOL_SIZE)
            .acquire_timeout(acquire)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    use sqlx::Executor;
                    if is_sqlite {
                        conn.execute(SQLITE_DURABLE_POOL_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect(&any_url)
            .await
            .with_context(|| format!("opening durable pool on {}", location.redacted()))?;
        let target = Self::target_of(&native, gate);
        Ok(Self {
            native,
            read_models,
            durable,
            location: location.clone(),
            events_loaded: Arc::default(),
            appender: Appender::start(target.clone(), BatchLimits::for_target(&target)),
            target,
            tail: Tail::default(),
            turns: Arc::default(),
        })
    }

    fn target_of(native: &NativePool, gate: WriteGate) -> Target {
        match native {
            NativePool::Postgres(pool) => Target::Postgres(pool.clone()),
            NativePool::Sqlite(pool) => Target::Sqlite(pool.clone(), gate),
        }
    }

    /// Connects to an existing, fully migrated database for the auditor's commands (`verify`,
    /// `export`, `replay`). Never creates a database file, never migrates: a missing file, a
    /// database without Agora's migration history or one migrated by an older binary is an
    /// error naming what is wrong. With [`Access::ReadOnly`] nothing can be written at all
    /// (SQLite opened `mode=ro`; PostgreSQL sessions `default_transaction_read_only`).
    pub async fn connect_existing(
        location: &StoreLocation,
        sizes: &PoolSizes,
        access: Access,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        sqlx::any::install_default_drivers();
        let read_only = access == Access::ReadOnly;
        let acquire = Duration::from_millis(ACQUIRE_TIMEOUT_MS);
        let store = match location {
            StoreLocation::Postgres { url } => {
                let setting = if read_only {
                    PG_READ_ONLY_SETTINGS
                } else {
                    PG_READ_POOL_SETTINGS
                };
                let native = PgPoolOptions::new()
                    .max_connections(sizes.write.min(AUDIT_POOL_SIZE))
                    .acquire_timeout(acquire)
                    .after_connect(move |conn, _meta| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            if read_only {
                                conn.execute(PG_READ_ONLY_SETTINGS).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await
                    .with_context(|| format!("connecting to {}", location.redacted()))?;
                let read_models = AnyPoolOptions::new()
                    .max_connections(AUDIT_POOL_SIZE)
                    .acquire_timeout(acquire)
                    .after_connect(move |conn, _meta| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            conn.execute(setting).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await
                    .with_context(|| format!("connecting to {}", location.redacted()))?;
                let native = NativePool::Postgres(native);
                let target = Self::target_of(&native, WriteGate::default());
                Self {
                    native,
                    // Auditor tools write no idempotency records: no separate durable pool.
                    durable: read_models.clone(),
                    read_models,
                    location: location.clone(),
                    events_loaded: Arc::default(),
                    appender: Appender::start(target.clone(), BatchLimits::for_target(&target)),
                    target,
                    tail: Tail::default(),
                    turns: Arc::default(),
                }
            }
            StoreLocation::Sqlite { path } => {
                anyhow::ensure!(
                    path.is_file(),
                    "no database at {}: nothing to read (point DATABASE_URL at the ledger's database)",
                    path.display()
                );
                let options =
                    SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
                        .create_if_missing(false)
                        .read_only(read_only)
                        .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS));
                let native = SqlitePoolOptions::new()
                    .max_connections(AUDIT_POOL_SIZE)
                    .acquire_timeout(acquire)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("opening {}", location.redacted()))?;
                let mode = if read_only { "ro" } else { "rw" };
                let read_models = AnyPoolOptions::new()
                    .max_connections(AUDIT_POOL_SIZE)
                    .acquire_timeout(acquire)
                    .connect(&format!("sqlite://{}?mode={mode}", path.display()))
                    .await
                    .with_context(|| format!("opening {}", location.redacted()))?;
                let native = NativePool::Sqlite(native);
                let target = Self::target_of(&native, WriteGate::default());
                Self {
                    native,
                    // Auditor tools write no idempotency records: no separate durable pool.
                    durable: read_models.clone(),
                    read_models,
                    location: location.clone(),
                    events_loaded: Arc::default(),
                    appender: Appender::start(target.clone(), BatchLimits::for_target(&target)),
                    target,
                    tail: Tail::default(),
                    turns: Arc::default(),
                }
            }
        };
        let migrated = store.migrations_applied().await.with_context(|| {
            format!(
                "{} is not an Agora database (no migration history); refusing to change it",
                location.redacted()
            )
        })?;
        anyhow::ensure!(
            migrated,
            "{} is not migrated to this version of agora: run `agora migrate` first (this \
             command never changes the schema)",
            location.redacted()
        );
        Ok(store)
    }

    /// Applies the backend's migrations (idempotent).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.native {
            NativePool::Postgres(pool) => PG_MIGRATOR.run(pool).await?,
            NativePool::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// True when every migration this binary knows is applied.
    pub async fn migrations_applied(&self) -> anyhow::Result<bool> {
        let (migrator, applied): (&sqlx::migrate::Migrator, Vec<i64>) = match &self.native {
            NativePool::Postgres(pool) => (
                &PG_MIGRATOR,
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await?,
            ),
            NativePool::Sqlite(pool) => (
                &SQLITE_MIGRATOR,
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await?,
            ),
        };
        Ok(migrator.iter().all(|m| applied.contains(&m.version)))
    }

    pub fn backend(&self) -> Backend {
        self.location.backend()
    }

    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The pool read models and checkpoints are written through.
    pub fn read_models(&self) -> &AnyPool {
        &self.read_models
    }

    /// A pool whose commits are durable (PostgreSQL's default `synchronous_commit`, SQLite
    /// `synchronous = FULL`): for records a client relies on, such as idempotent outcomes.
    pub fn durable(&self) -> &AnyPool {
        &self.durable
    }

    /// Begins a read-model write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it waits for other writers instead of failing on a stale snapshot.
    ///
    /// Read-model commits do not wait for the disk (PostgreSQL `synchronous_commit = off`,
    /// SQLite `synchronous = NORMAL` on read-model connections): a crash may undo the last few,
    /// but a checkpoint is always undone with its tables, and the events they came from are
    /// durable, so the projection simply applies them again. Commands stay fully durable.
    ///
    /// On SQLite the transaction holds the process's write gate (the one the appends take), so
    /// it never waits for SQLite's write lock inside the database.
    pub async fn begin_read_model_write(&self) -> Result<ReadModelTx, sqlx::Error> {
        match &self.target {
            Target::Sqlite(_, gate) => {
                let gate = gate.lock().await;
                let tx = self.read_models.begin_with("BEGIN IMMEDIATE").await?;
                Ok(ReadModelTx {
                    tx,
                    _gate: Some(gate),
                })
            }
            Target::Postgres(_) => Ok(ReadModelTx {
                tx: self.read_models.begin().await?,
                _gate: None,
            }),
        }
    }

    /// Ingests records that each start their own stream of `A` (see [`crate::append::ingest`]),
    /// with `metadata` on every event.
    pub async fn ingest<A: Aggregate>(
        &self,
        records: Vec<IngestRecord<A::Event>>,
        metadata: &serde_json::Map<String, Value>,
    ) -> Result<Vec<IngestOutcome>, IngestError> {
        crate::append::ingest::ingest::<A>(&self.target, self.appender.stats(), records, metadata)
            .await
    }

    /// The process's SQLite write gate (`None` on PostgreSQL): every SQLite writer of the
    /// process takes it, so none waits inside SQLite for its lock or starves behind the others.
    pub fn write_gate(&self) -> Option<WriteGate> {
        match &self.target {
            Target::Sqlite(_, gate) => Some(gate.clone()),
            Target::Postgres(_) => None,
        }
    }

    /// Runs one write statement on the read-model pool, holding the SQLite write gate while it
    /// runs (a no-op on PostgreSQL).
    pub async fn write_read_models<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<sqlx::any::AnyQueryResult, sqlx::Error> {
        let _writer = WriteGate::hold(&self.write_gate()).await;
        query.execute(&self.read_models).await
    }

    /// Commits waiting for an append writer now.
    pub fn append_queued(&self) -> usize {
        self.appender.queued()
    }

    /// The append path's counters since this store connected (shared by its clones).
    pub fn append_stats(&self) -> AppendSnapshot {
        self.appender.stats().snapshot()
    }

    /// The native PostgreSQL pool, when the backend is PostgreSQL.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.native {
            NativePool::Postgres(pool) => Some(pool),
            NativePool::Sqlite(_) => None,
        }
    }

    /// The native SQLite pool, when the backend is SQLite.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.native {
            NativePool::Sqlite(pool) => Some(pool),
            NativePool::Postgres(_) => None,
        }
    }

    /// The cqrs-es repository for this store.
    pub fn event_repository(&self) -> EventRepository {
        let inner = match &self.native {
            NativePool::Postgres(pool) => RepoInner::Postgres(PgRepo {
                repo: PostgresEventRepository::new(pool.clone()),
                pool: pool.clone(),
            }),
            NativePool::Sqlite(pool) => RepoInner::Sqlite(SqlitePoolRepo {
                repo: SqliteEventRepository::new(pool.clone()),
                pool: pool.clone(),
            }),
        };
        EventRepository {
            inner,
            events_loaded: Arc::clone(&self.events_loaded),
            appender: self.appender.clone(),
        }
    }

    /// Events read from the log to load aggregates through this store's repositories since it
    /// connected (snapshots not counted): what a bounded load is measured in.
    pub fn events_loaded(&self) -> u64 {
        self.events_loaded.load(Ordering::Relaxed)
    }

    /// The cqrs-es event store of aggregate `A` over this store: its events are loaded through
    /// the upcasters registered for `A` (`agora_domain::versioning`), so an event stored in an
    /// older shape reaches the aggregate in the current one, on either backend.
    ///
    /// Aggregates whose streams grow with use ([`SNAPSHOT_POLICIES`]) load from their latest
    /// snapshot plus fewer than [`SnapshotPolicy::every_events`] events after it.
    pub fn event_store<A: Aggregate>(&self) -> PersistedEventStore<EventRepository, A> {
        let repo = self.event_repository();
        let store = match snapshot_policy(A::TYPE) {
            Some(policy) => PersistedEventStore::new_snapshot_store(repo, policy.every_events),
            None => PersistedEventStore::new_event_store(repo),
        };
        store.with_upcasters(agora_domain::versioning::upcasters_for(A::TYPE))
    }

    /// Answers a trivial query: the store is reachable.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match &self.native {
            NativePool::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            NativePool::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.read_models.close().await;
        self.durable.close().await;
        match &self.native {
            NativePool::Postgres(pool) => pool.close().await,
            NativePool::Sqlite(pool) => pool.close().await,
        }
    }

    /// Reads committed events after `after` in global order, at most `limit`.
    ///
    /// PostgreSQL: gap-free under concurrent writers. An event becomes readable only once every
    /// transaction that started before it has ended (the transaction-id horizon), so a reader
    /// can never skip a late-committing transaction's events (DESIGN.md §2).
    ///
    /// What this store read last stays in memory ([`crate::tail`]): the projections and process
    /// managers following the log decode each event once between them. The result is always
    /// what the database returns for the same read.
    pub async fn read_global(
        &self,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        if !self.tail.is_shared() {
            return self.read_global_from_database(after, limit).await;
        }
        let limit = limit.clamp(1, MAX_READ_BATCH) as usize;
        let mut out = self.tail.cached(after, limit);
        let mut from = out.last().map_or(after, |e| e.position);
        let mut _reading = None;
        if out.len() < limit && self.tail.at_end(from) {
            // At the end of what this store has read: one reader at a time, and whoever waited
            // finds in memory what the reader before it fetched.
            _reading = Some(self.tail.fetching().await);
            out.extend(self.tail.cached(from, limit - out.len()));
            from = out.last().map_or(after, |e| e.position);
        }
        if out.len() < limit {
            let fresh = self
                .read_global_from_database(from, (limit - out.len()) as i64)
                .await?;
            self.tail.offer(from, &fresh);
            out.extend(fresh);
        }
        Ok(out)
    }

    /// Shares reads through the tail (the default) or not (a benchmark's baseline).
    pub fn share_tail(&self, on: bool) {
        self.tail.share(on);
    }

    /// Events read from memory and from the database by [`Store::read_global`] so far.
    pub fn tail_stats(&self) -> TailStats {
        self.tail.stats()
    }

    /// The lock a command on `aggregate_type`/`aggregate_id` holds while it decides and
    /// appends, so commands on one aggregate in this process take turns.
    pub(crate) fn turn(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Arc<tokio::sync::Mutex<()>> {
        self.turns.lock_for(aggregate_type, aggregate_id)
    }

    /// [`Store::read_global`] straight from the database, bypassing the shared tail: for
    /// verification and export, which must see exactly what the database holds now.
    pub async fn read_global_from_database(
        &self,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let limit = limit.clamp(1, MAX_READ_BATCH);
        match &self.native {
            NativePool::Postgres(pool) => {
                let rows = sqlx::query(PG_READ_GLOBAL)
                    .bind(after.transaction_id)
                    .bind(after.global_position)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(pg_row_to_event).collect()
            }
            NativePool::Sqlite(pool) => {
                let rows = sqlx::query(SQLITE_READ_GLOBAL)
                    .bind(after.global_position)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(sqlite_row_to_event).collect()
            }
        }
    }

    /// Events after `after` that exist but may not be readable yet (PostgreSQL: behind the
    /// horizon; SQLite: none), counted up to [`MAX_BACKLOG_EVENTS`], and the recording time of
    /// the next of them in read order. Two index range reads, never a scan of the whole
    /// backlog: `/metrics` and `/readyz` call it for every projection on every scrape.
    pub async fn pending_after(&self, after: LogPosition) -> Result<Backlog, sqlx::Error> {
        self.pending_after_at_most(after, MAX_BACKLOG_EVENTS).await
    }

    /// [`Store::pending_after`], counting at most `cap` events.
    pub async fn pending_after_at_most(
        &self,
        after: LogPosition,
        cap: i64,
    ) -> Result<Backlog, sqlx::Error> {
        let cap = cap.max(1);
        match &self.native {
            NativePool::Postgres(pool) => {
                let row = sqlx::query(PG_BACKLOG)
                    .bind(after.transaction_id)
                    .bind(after.global_position)
                    .bind(cap)
                    .fetch_one(pool)
                    .await?;
                Ok(Backlog {
                    events: row.try_get("n")?,
                    oldest_recorded_at: row.try_get("oldest")?,
                })
            }
            NativePool::Sqlite(pool) => {
                let row = sqlx::query(SQLITE_BACKLOG)
                    .bind(after.global_position)
                    .bind(cap)
                    .fetch_one(pool)
                    .await?;
                let oldest: Option<i64> = row.try_get("oldest")?;
                Ok(Backlog {
                    events: row.try_get("n")?,
                    oldest_recorded_at: oldest.and_then(micros_to_time),
                })
            }
        }
    }

    /// The newest position a reader can see now (PostgreSQL: below the transaction horizon).
    /// Every event committed later sorts after it, so following the log from here skips nothing.
    pub async fn visible_head(&self) -> Result<LogPosition, sqlx::Error> {
        match &self.native {
            NativePool::Postgres(pool) => {
                let row = sqlx::query(
                    "SELECT transaction_id::text::bigint AS txid, global_position FROM events \
                      WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                      ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
                )
                .fetch_optional(pool)
                .await?;
                match row {
                    Some(r) => Ok(LogPosition {
                        transaction_id: r.try_get("txid")?,
                        global_position: r.try_get("global_position")?,
                    }),
                    None => Ok(LogPosition::START),
                }
            }
            NativePool::Sqlite(_) => Ok(self.head().await?.unwrap_or(LogPosition::START)),
        }
    }

    /// The event at `global_position`, if it exists (operators' retries of parked events).
    pub async fn event_at(&self, global_position: i64) -> Result<Option<StoredEvent>, sqlx::Error> {
        match &self.native {
            NativePool::Postgres(pool) => {
                let row = sqlx::query(PG_EVENT_AT)
                    .bind(global_position)
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(pg_row_to_event).transpose()
            }
            NativePool::Sqlite(pool) => {
                let row = sqlx::query(SQLITE_EVENT_AT)
                    .bind(global_position)
                    .fetch_optional(pool)
                    .await?;
                row.as_ref().map(sqlite_row_to_event).transpose()
            }
        }
    }

    /// The position of the newest committed event, if any.
    pub async fn head(&self) -> Result<Option<LogPosition>, sqlx::Error> {
        match &self.native {
            NativePool::Postgres(pool) => {
                let row = sqlx::query(
                    "SELECT transaction_id::text::bigint AS txid, global_position FROM events \
                     ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
                )
                .fetch_optional(pool)
                .await?;
                row.map(|r| {
                    Ok(LogPosition {
                        transaction_id: r.try_get("txid")?,
                        global_position: r.try_get("global_position")?,
                    })
                })
                .transpose()
            }
            NativePool::Sqlite(pool) => {
                let pos: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(global_position) FROM events")
                        .fetch_one(pool)
                        .await?;
                Ok(pos.map(LogPosition::sqlite))
            }
        }
    }
}

/// A read-model write transaction ([`Store::begin_read_model_write`]). It derefs to the
/// connection, so `&mut *tx` executes statements in it; on SQLite it holds the write gate
/// until it ends.
pub struct ReadModelTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl ReadModelTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for ReadModelTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for ReadModelTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Which events a history query returns; every field narrows the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub from_position: Option<i64>,
    pub to_position: Option<i64>,
    pub from_time: Option<DateTime<Utc>>,
    pub to_time: Option<DateTime<Utc>>,
    pub aggregate_type: Option<String>,
    pub aggregate_id: Option<String>,
    pub correlation_id: Option<String>,
    pub actor: Option<String>,
    pub tenant: Option<String>,
}

impl Store {
    /// Events matching `filter` after `after`, in global order, at most `limit`. Like
    /// [`Store::read_global`], only events below the transaction horizon are returned, so paging
    /// with the last position as `after` never skips a late commit.
    pub async fn query_events(
        &self,
        filter: &EventFilter,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        self.query_events_page(filter, Page::After(after), limit)
            .await
    }

    /// One page of matching events in global order: the first `limit` after a position, or the
    /// last `limit` before one (or before the end of the readable log).
    pub async fn query_events_page(
        &self,
        filter: &EventFilter,
        page: Page,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let limit = limit.clamp(1, MAX_READ_BATCH);
        let (op, bound, order) = match page {
            Page::After(p) => (">", Some(p), "ASC"),
            Page::Before(p) => ("<", p, "DESC"),
        };
        let mut events = match &self.native {
            NativePool::Postgres(pool) => {
                let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                    "SELECT transaction_id::text::bigint AS txid, global_position, aggregate_type, \
                     aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at \
                     FROM events WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())",
                );
                if let Some(b) = bound {
                    q.push(format!(" AND (transaction_id, global_position) {op} (("))
                        .push_bind(b.transaction_id)
                        .push("::bigint)::text::xid8, ")
                        .push_bind(b.global_position)
                        .push("::bigint)");
                }
                push_filters(&mut q, filter, "metadata ->> ", "recorded_at", |t| t);
                q.push(format!(
                    " ORDER BY transaction_id {order}, global_position {order} LIMIT "
                ))
                .push_bind(limit);
                let rows = q.build().fetch_all(pool).await?;
                rows.iter()
                    .map(pg_row_to_event)
                    .collect::<Result<Vec<_>, _>>()?
            }
            NativePool::Sqlite(pool) => {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT global_position, aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata, recorded_at_us FROM events WHERE 1 = 1",
                );
                if let Some(b) = bound {
                    q.push(format!(" AND global_position {op} "))
                        .push_bind(b.global_position);
                }
                push_filters(
                    &mut q,
                    filter,
                    "json_extract(metadata, '$.",
                    "recorded_at_us",
                    |t| t.timestamp_micros(),
                );
                q.push(format!(" ORDER BY global_position {order} LIMIT "))
                    .push_bind(limit);
                let rows = q.build().fetch_all(pool).await?;
                rows.iter()
                    .map(sqlite_row_to_event)
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        if matches!(page, Page::Before(_)) {
            events.reverse();
        }
        Ok(events)
    }
}

impl Store {
    /// One aggregate's events in stream order (at most `limit`), every committed one: unlike
    /// [`Store::query_events`], which reads the global log only up to the horizon below which no
    /// transaction is still open (so global readers never skip an event), a single stream has
    /// no such gap: its sequence numbers are dense and a command appends after the last.
    /// Commands that read back what an earlier command of the same stream recorded use this.
    pub async fn stream_events(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let limit = limit.clamp(1, MAX_READ_BATCH);
        match &self.native {
            NativePool::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT transaction_id::text::bigint AS txid, global_position, aggregate_type, \
                     aggregate_id, sequence, event_type, event_version, payload, metadata, \
                     recorded_at FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
                     ORDER BY sequence LIMIT $3",
                )
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.iter().map(pg_row_to_event).collect()
            }
            NativePool::Sqlite(pool) => {
                let rows = sqlx::query(
                    "SELECT global_position, aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata, recorded_at_us FROM events \
                     WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence LIMIT $3",
                )
                .bind(aggregate_type)
                .bind(aggregate_id)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.iter().map(sqlite_row_to_event).collect()
            }
        }
    }
}

/// Which page of a history query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The first events after this position.
    After(LogPosition),
    /// The last events before this position (`None`: before the end of the readable log).
    Before(Option<LogPosition>),
}

/// Appends the filter's conditions. `meta` opens a metadata field lookup (`metadata ->> ` takes
/// a quoted key, `json_extract(metadata, '$.` a key and `')`); `time_col` is the recorded time.
fn push_filters<'a, DB, T>(
    q: &mut sqlx::QueryBuilder<'a, DB>,
    f: &'a EventFilter,
    meta: &str,
    time_col: &str,
    time: impl Fn(DateTime<Utc>) -> T,
) where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    T: sqlx::Encode<'a, DB> + sqlx::Type<DB> + 'a,
{
    if let Some(p) = f.from_position {
        q.push(" AND global_position >= ").push_bind(p);
    }
    if let Some(p) = f.to_position {
        q.push(" AND global_position <= ").push_bind(p);
    }
    if let Some(t) = f.from_time {
        q.push(format!(" AND {time_col} >= ")).push_bind(time(t));
    }
    if let Some(t) = f.to_time {
        q.push(format!(" AND {time_col} <= ")).push_bind(time(t));
    }
    if let Some(v) = &f.aggregate_type {
        q.push(" AND aggregate_type = ").push_bind(v.as_str());
    }
    if let Some(v) = &f.aggregate_id {
        q.push(" AND aggregate_id = ").push_bind(v.as_str());
    }
    for (key, value) in [
        ("correlation_id", &f.correlation_id),
        ("actor", &f.actor),
        ("tenant", &f.tenant),
    ] {
        if let Some(v) = value {
            let lookup = if meta.starts_with("json_extract") {
                format!("{meta}{key}')")
            } else {
                format!("{meta}'{key}'")
            };
            q.push(format!(" AND {lookup} = ")).push_bind(v.as_str());
        }
    }
}

async fn connect_sqlite(path: &Path, acquire: Duration) -> Result<SqlitePool, sqlx::Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed event survives power loss, not only a killed process.
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(DEFAULT_SQLITE_POOL_SIZE)
        .acquire_timeout(acquire)
        .connect_with(options)
        .await
}

const PG_READ_GLOBAL: &str = "
SELECT transaction_id::text::bigint AS txid, global_position, aggregate_type, aggregate_id,
       sequence, event_type, event_version, payload, metadata, recorded_at
  FROM events
 WHERE (transaction_id, global_position) > (($1::bigint)::text::xid8, $2::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, global_position
 LIMIT $3";

const PG_EVENT_AT: &str = "
SELECT transaction_id::text::bigint AS txid, global_position, aggregate_type, aggregate_id,
       sequence, event_type, event_version, payload, metadata, recorded_at
  FROM events
 WHERE global_position = $1";

const SQLITE_EVENT_AT: &str = "
SELECT global_position, aggregate_type, aggregate_id, sequence, event_type, event_version,
       payload, metadata, recorded_at_us
  FROM events
 WHERE global_position = $1";

const PG_BACKLOG: &str = "
SELECT (SELECT count(*) FROM (SELECT 1 FROM events
          WHERE (transaction_id, global_position) > (($1::bigint)::text::xid8, $2::bigint)
          LIMIT $3) AS behind) AS n,
       (SELECT recorded_at FROM events
          WHERE (transaction_id, global_position) > (($1::bigint)::text::xid8, $2::bigint)
          ORDER BY transaction_id, global_position LIMIT 1) AS oldest";

const SQLITE_READ_GLOBAL: &str = "
SELECT global_position, aggregate_type, aggregate_id, sequence, event_type, event_version,
       payload, metadata, recorded_at_us
  FROM events
 WHERE global_position > $1
 ORDER BY global_position
 LIMIT $2";

const SQLITE_BACKLOG: &str = "
SELECT (SELECT count(*) FROM (SELECT 1 FROM events WHERE global_position > $1 LIMIT $2)) AS n,
       (SELECT recorded_at_us FROM events WHERE global_position > $1
         ORDER BY global_position LIMIT 1) AS oldest";

fn pg_row_to_event(row: &sqlx::postgres::PgRow) -> Result<StoredEvent, sqlx::Error> {
    Ok(StoredEvent {
        position: LogPosition {
            transaction_id: row.try_get("txid")?,
            global_position: row.try_get("global_position")?,
        },
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

fn sqlite_row_to_event(row: &sqlx::sqlite::SqliteRow) -> Result<StoredEvent, sqlx::Error> {
    let decode = |col: &str| -> Result<Value, sqlx::Error> {
        let text: String = row.try_get(col)?;
        serde_json::from_str(&text).map_err(|e| sqlx::Error::ColumnDecode {
            index: col.to_string(),
            source: Box::new(e),
        })
    };
    let recorded_us: i64 = row.try_get("recorded_at_us")?;
    Ok(StoredEvent {
        position: LogPosition::sqlite(row.try_get("global_position")?),
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: decode("payload")?,
        metadata: decode("metadata")?,
        recorded_at: micros_to_time(recorded_us).unwrap_or_default(),
    })
}

/// Microseconds since the Unix epoch to a UTC time (None when out of range).
pub fn micros_to_time(micros: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_micros(micros).single()
}

/// A place in the global order. PostgreSQL orders by (transaction id, position); SQLite by
/// position alone (its transaction id is always 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    pub transaction_id: i64,
    pub global_position: i64,
}

impl LogPosition {
    pub const START: Self = Self {
        transaction_id: 0,
        global_position: 0,
    };

    pub fn sqlite(global_position: i64) -> Self {
        Self {
            transaction_id: 0,
            global_position,
        }
    }
}

/// Unread events behind a position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub events: i64,
    pub oldest_recorded_at: Option<DateTime<Utc>>,
}

/// One event as stored, with its place in the global order.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub position: LogPosition,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// A metadata field as a string, if present.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }
}

enum RepoInner {
    Postgres(PgRepo),
    Sqlite(SqlitePoolRepo),
}

/// sqlite-es for reads, plus our pool for the commits that write a snapshot.
struct SqlitePoolRepo {
    repo: SqliteEventRepository,
    pool: SqlitePool,
}

/// postgres-es for reads and snapshots, plus our pool for the one-statement append.
struct PgRepo {
    repo: PostgresEventRepository,
    pool: PgPool,
}

impl PgRepo {
    fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The cqrs-es repository over either backend. On persist it gives every event its own id
/// (UUIDv7) in the metadata; the rest of the metadata comes from the command.
pub struct EventRepository {
    inner: RepoInner,
    events_loaded: Arc<AtomicU64>,
    appender: Appender,
}

/// Metadata key of the per-event id.
pub const EVENT_ID_KEY: &str = "event_id";

/// How often an aggregate type is snapshotted, and the shape of its stored state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    pub aggregate_type: &'static str,
    /// A snapshot is written with the commit that reaches each multiple of this sequence, so
    /// a load reads the latest snapshot and fewer than this many events.
    pub every_events: usize,
    /// Bumped when the aggregate's serialized state changes meaning: snapshots of another
    /// version are ignored (the aggregate is folded from its events, and the next boundary
    /// writes a current one).
    pub state_version: u32,
}

/// Events between two snapshots of a long-lived aggregate.
pub const SNAPSHOT_EVERY_EVENTS: usize = 100;

/// The aggregates whose streams grow with use: a seller's credits (one or more events per paid
/// analysis, forever) and a tenant-month budget (one per charge or refund). Snapshots are our
/// own SQL (DESIGN.md §6: postgres-es commits its snapshot update before checking it, reads
/// one without `ORDER BY`, and records the commit's last sequence even when the snapshot stops
/// at an earlier boundary).
pub const SNAPSHOT_POLICIES: &[SnapshotPolicy] = &[
    SnapshotPolicy {
        aggregate_type: "log_seller",
        every_events: SNAPSHOT_EVERY_EVENTS,
        state_version: 1,
    },
    SnapshotPolicy {
        aggregate_type: "tenant_budget",
        every_events: SNAPSHOT_EVERY_EVENTS,
        state_version: 1,
    },
];

/// The snapshot policy of an aggregate type, if it has one.
pub fn snapshot_policy(aggregate_type: &str) -> Option<SnapshotPolicy> {
    SNAPSHOT_POLICIES
        .iter()
        .find(|p| p.aggregate_type == aggregate_type)
        .copied()
}

/// Keys of the stored snapshot payload: `{"v": state_version, "state": aggregate}`.
const SNAPSHOT_VERSION_KEY: &str = "v";
const SNAPSHOT_STATE_KEY: &str = "state";

/// The sequence a snapshot handed over with `events` stands at. cqrs-es folds the snapshot
/// only up to the last multiple of `every` among the commit's events (not necessarily the
/// last event), so that multiple is its sequence. `None` if no event of the commit reaches one.
fn snapshot_sequence(events: &[SerializedEvent], every: usize) -> Option<usize> {
    let first = events.first()?.sequence;
    let last = events.last()?.sequence;
    let at = last.checked_div(every)?.checked_mul(every)?;
    (at >= first && at > 0).then_some(at)
}

fn wrap_snapshot(policy: SnapshotPolicy, state: Value) -> Value {
    serde_json::json!({ SNAPSHOT_VERSION_KEY: policy.state_version, SNAPSHOT_STATE_KEY: state })
}

/// The aggregate state of a stored snapshot payload, if it is of the current version.
fn unwrap_snapshot(policy: SnapshotPolicy, mut payload: Value) -> Option<Value> {
    let version = payload.get(SNAPSHOT_VERSION_KEY)?.as_u64()?;
    if version != u64::from(policy.state_version) {
        return None;
    }
    payload.get_mut(SNAPSHOT_STATE_KEY).map(Value::take)
}

const PG_SELECT_SNAPSHOT: &str = "
SELECT last_sequence, current_snapshot, payload FROM snapshots
 WHERE aggregate_type = $1 AND aggregate_id = $2
 ORDER BY last_sequence DESC LIMIT 1";
const SQLITE_SELECT_SNAPSHOT: &str = "
SELECT last_sequence, current_snapshot, payload FROM snapshots
 WHERE aggregate_type = ?1 AND aggregate_id = ?2
 ORDER BY last_sequence DESC LIMIT 1";
fn persistence_error(e: sqlx::Error) -> PersistenceError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            PersistenceError::OptimisticLockError
        }
        e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
            PersistenceError::ConnectionError(Box::new(e))
        }
        e => PersistenceError::UnknownError(Box::new(e)),
    }
}

fn to_usize(v: i64) -> Result<usize, PersistenceError> {
    usize::try_from(v).map_err(|e| PersistenceError::UnknownError(Box::new(e)))
}

fn to_i64(v: usize) -> Result<i64, PersistenceError> {
    i64::try_from(v).map_err(|e| PersistenceError::UnknownError(Box::new(e)))
}

fn with_event_ids(events: &[SerializedEvent]) -> Vec<SerializedEvent> {
    events
        .iter()
        .cloned()
        .map(|mut event| {
            if let Value::Object(map) = &mut event.metadata {
                map.entry(EVENT_ID_KEY)
                    .or_insert_with(|| Value::String(Uuid::now_v7().to_string()));
            }
            event
        })
        .collect()
}

impl EventRepository {
    fn count_loaded(&self, events: &[SerializedEvent]) {
        self.events_loaded
            .fetch_add(events.len() as u64, Ordering::Relaxed);
    }

    /// The state of aggregate `A` at sequence `at`: its latest snapshot, the stored events
    /// after it, and the uncommitted `commit` events up to `at`. Read at a boundary only (once
    /// per [`SnapshotPolicy::every_events`] events), so it reads fewer than that many events;
    /// those reads are not counted in [`Store::events_loaded`].
    async fn fold_to<A: Aggregate>(
        &self,
        aggregate_id: &str,
        commit: &[SerializedEvent],
        at: usize,
    ) -> Result<Value, PersistenceError> {
        let (mut state, since) = match self.get_snapshot::<A>(aggregate_id).await? {
            Some(s) => match serde_json::from_value::<A>(s.aggregate) {
                Ok(state) => (state, s.current_sequence),
                Err(_) => (A::default(), 0),
            },
            None => (A::default(), 0),
        };
        let stored = match &self.inner {
            RepoInner::Postgres(r) => r.repo.get_last_events::<A>(aggregate_id, since).await,
            RepoInner::Sqlite(r) => r.repo.get_last_events::<A>(aggregate_id, since).await,
        }?;
        let upcasters = agora_domain::versioning::upcasters_for(A::TYPE);
        let pending = commit.iter().filter(|e| e.sequence <= at).cloned();
        for event in stored.into_iter().chain(pending) {
            let event = upcasters.iter().fold(event, |e, u| {
                if u.can_upcast(&e.event_type, &e.event_version) {
                    u.upcast(e)
                } else {
                    e
                }
            });
            let event: A::Event = serde_json::from_value(event.payload)?;
            state.apply(event);
        }
        Ok(serde_json::to_value(state)?)
    }

    /// The latest snapshot row: (last_sequence, current_snapshot, payload).
    async fn latest_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(i64, i64, Value)>, PersistenceError> {
        match &self.inner {
            RepoInner::Postgres(r) => sqlx::query_as(PG_SELECT_SNAPSHOT)
                .bind(A::TYPE)
                .bind(aggregate_id)
                .fetch_optional(r.pool())
                .await
                .map_err(persistence_error),
            RepoInner::Sqlite(r) => {
                let row: Option<(i64, i64, sqlx::types::Json<Value>)> =
                    sqlx::query_as(SQLITE_SELECT_SNAPSHOT)
                        .bind(A::TYPE)
                        .bind(aggregate_id)
                        .fetch_optional(&r.pool)
                        .await
                        .map_err(persistence_error)?;
                Ok(row.map(|(seq, n, payload)| (seq, n, payload.0)))
            }
        }
    }
}

impl PersistedEventRepository for EventRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let events = match &self.inner {
            RepoInner::Postgres(r) => r.repo.get_events::<A>(aggregate_id).await,
            RepoInner::Sqlite(r) => r.repo.get_events::<A>(aggregate_id).await,
        }?;
        self.count_loaded(&events);
        Ok(events)
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let events = match &self.inner {
            RepoInner::Postgres(r) => {
                r.repo
                    .get_last_events::<A>(aggregate_id, last_sequence)
                    .await
            }
            RepoInner::Sqlite(r) => {
                r.repo
                    .get_last_events::<A>(aggregate_id, last_sequence)
                    .await
            }
        }?;
        self.count_loaded(&events);
        Ok(events)
    }

    /// The latest snapshot of the current state version, if the aggregate type has a policy.
    async fn get_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        let Some(policy) = snapshot_policy(A::TYPE) else {
            return Ok(None);
        };
        let Some((last_sequence, current_snapshot, payload)) =
            self.latest_snapshot::<A>(aggregate_id).await?
        else {
            return Ok(None);
        };
        let Some(aggregate) = unwrap_snapshot(policy, payload) else {
            return Ok(None);
        };
        Ok(Some(SerializedSnapshot {
            aggregate_id: aggregate_id.to_owned(),
            aggregate,
            current_sequence: to_usize(last_sequence)?,
            current_snapshot: to_usize(current_snapshot)?,
        }))
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = with_event_ids(events);
        // cqrs-es hands over a snapshot when the commit reaches a boundary, but its state is
        // folded from a context the command's events were already applied to (cqrs-es 0.5
        // `EventSink::write` applies them, then `update_snapshot_with_events` applies them
        // again): only the signal is used, the state is folded here from the log.
        let snapshot = match (snapshot_update, snapshot_policy(A::TYPE)) {
            (Some((id, _, n)), Some(policy)) => {
                match snapshot_sequence(&events, policy.every_events) {
                    Some(at) => {
                        let state = self.fold_to::<A>(&id, &events, at).await?;
                        Some(((id, wrap_snapshot(policy, state), n), at))
                    }
                    None => None,
                }
            }
            _ => None,
        };
        let snapshot = match snapshot {
            Some(((aggregate_id, payload, current_snapshot), at)) => Some(SnapshotRow {
                aggregate_id,
                last_sequence: to_i64(at)?,
                current_snapshot: to_i64(current_snapshot)?,
                payload,
            }),
            None => None,
        };
        self.appender
            .append(Commit {
                aggregate_type: A::TYPE,
                events,
                snapshot,
            })
            .await
            .map_err(PersistenceError::from)
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        match &self.inner {
            RepoInner::Postgres(r) => r.repo.stream_events::<A>(aggregate_id).await,
            RepoInner::Sqlite(r) => r.repo.stream_events::<A>(aggregate_id).await,
        }
    }

    /// Not in commit order and swallows read errors (DESIGN.md §6): use [`Store::read_global`].
    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        match &self.inner {
            RepoInner::Postgres(r) => r.repo.stream_all_events::<A>().await,
            RepoInner::Sqlite(r) => r.repo.stream_all_events::<A>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_defaults_to_sqlite_in_data_dir() {
        let loc = StoreLocation::parse(None, Path::new("./data")).unwrap();
        assert_eq!(
            loc,
            StoreLocation::Sqlite {
                path: PathBuf::from("./data/agora.db")
            }
        );
        let loc = StoreLocation::parse(Some("  "), Path::new("d")).unwrap();
        assert_eq!(loc.backend(), Backend::Sqlite);
    }

    #[test]
    fn location_parses_postgres_and_sqlite_urls() {
        let pg = StoreLocation::parse(Some("postgres://u:secret@h/db"), Path::new("d")).unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        assert_eq!(pg.redacted(), "postgres://u:***@h/db");
        let lite =
            StoreLocation::parse(Some("sqlite:///tmp/x.db?mode=rwc"), Path::new("d")).unwrap();
        assert_eq!(
            lite,
            StoreLocation::Sqlite {
                path: PathBuf::from("/tmp/x.db")
            }
        );
    }

    #[test]
    fn location_rejects_other_schemes() {
        let err = StoreLocation::parse(Some("mysql://x"), Path::new("d")).unwrap_err();
        assert!(matches!(err, StoreConfigError::UnsupportedScheme { scheme } if scheme == "mysql"));
        assert!(matches!(
            StoreLocation::parse(Some("sqlite://"), Path::new("d")),
            Err(StoreConfigError::EmptySqlitePath)
        ));
    }

    #[test]
    fn event_ids_are_added_once_per_event() {
        let ev = SerializedEvent::new(
            "a".into(),
            1,
            "t".into(),
            "E".into(),
            "1.0".into(),
            Value::Null,
            serde_json::json!({"actor": "x"}),
        );
        let out = with_event_ids(&[ev.clone(), ev]);
        let a = out[0].metadata[EVENT_ID_KEY].as_str().unwrap();
        let b = out[1].metadata[EVENT_ID_KEY].as_str().unwrap();
        assert_ne!(a, b);
        assert_eq!(Uuid::parse_str(a).unwrap().get_version_num(), 7);
        assert_eq!(out[0].metadata["actor"], "x");
    }
}
