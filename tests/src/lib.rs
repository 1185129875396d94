//! Test support: a fresh database per test on PostgreSQL or SQLite, and small helpers.

use std::path::PathBuf;

use agora_commands::store::LogPosition;
use agora_commands::{pgadmin, PoolSizes, Store, StoreLocation};

/// The server tests create their databases on: `TEST_DATABASE_URL`, else the local default.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

enum Cleanup {
    Postgres { admin: String, name: String },
    Sqlite { _dir: tempfile::TempDir },
}

/// A migrated store on its own fresh database; dropped with the value.
pub struct TestStore {
    pub store: Store,
    pub location: StoreLocation,
    cleanup: Option<Cleanup>,
}

impl TestStore {
    pub async fn postgres() -> Self {
        let name = format!("agora_test_{}", uuid::Uuid::now_v7().simple());
        let admin = admin_url();
        let url = pgadmin::create_database(&admin, &name)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL tests need a server: set TEST_DATABASE_URL or run one at \
                 127.0.0.1:5432 (scripts/test.sh provisions one). Error: {e:#}"
                )
            });
        let location = StoreLocation::Postgres { url };
        Self::open(location, Cleanup::Postgres { admin, name }).await
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let location = StoreLocation::Sqlite {
            path: dir.path().join("agora.db"),
        };
        Self::open(location, Cleanup::Sqlite { _dir: dir }).await
    }

    async fn open(location: StoreLocation, cleanup: Cleanup) -> Self {
        let store = Store::connect(&location, &PoolSizes::default())
            .await
            .expect("connect test store");
        store.migrate().await.expect("migrate test store");
        Self {
            store,
            location,
            cleanup: Some(cleanup),
        }
    }

    /// A second, independent connection to the same database (another "process").
    pub async fn reconnect(&self) -> Store {
        let store = Store::connect(&self.location, &PoolSizes::default())
            .await
            .expect("reconnect");
        store.migrate().await.expect("migrate");
        store
    }

    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.location {
            StoreLocation::Sqlite { path } => Some(path.clone()),
            StoreLocation::Postgres { .. } => None,
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(Cleanup::Postgres { admin, name }) = self.cleanup.take() {
            // Drop the database from a thread with its own runtime: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(pgadmin::drop_database(&admin, &name))
            })
            .join();
        }
    }
}

/// Every event committed before the call, in global order. On PostgreSQL, events become
/// readable once older transactions (other tests' too) end, so this waits for the head.
pub async fn read_all(store: &Store) -> Vec<agora_commands::StoredEvent> {
    let Some(head) = store.head().await.expect("head") else {
        return Vec::new();
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut out = Vec::new();
    let mut after = LogPosition::START;
    while after < head {
        let batch = store.read_global(after, 1000).await.expect("read_global");
        match batch.last() {
            Some(last) => after = last.position,
            None => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "head never became readable"
                );
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        out.extend(batch);
    }
    out
}

/// Runs an async test body once per backend: `both_backends!(name, async_fn)` makes
/// `name::postgres` and `name::sqlite`, each on its own fresh database.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$body($crate::TestStore::postgres().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$body($crate::TestStore::sqlite().await).await
            }
        }
    };
}
