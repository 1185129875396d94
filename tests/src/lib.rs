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

/// Every event committed before the call, in global order, as the database holds it now (not
/// the store's shared tail: tests tamper with rows behind its back). On PostgreSQL, events become
/// readable once older transactions (other tests' too) end, so this waits for the head.
pub async fn read_all(store: &Store) -> Vec<agora_commands::StoredEvent> {
    let Some(head) = store.head().await.expect("head") else {
        return Vec::new();
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut out = Vec::new();
    let mut after = LogPosition::START;
    while after < head {
        let batch = store
            .read_global_from_database(after, 1000)
            .await
            .expect("read_global");
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

/// A running Agora HTTP server on a fresh database, bound to a free loopback port.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub store: TestStore,
    pub state: agora_api::app::AppState,
    pub admin_token: String,
    task: tokio::task::JoinHandle<()>,
}

pub const TEST_ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// Requests per key per minute in test servers (low enough to test THROTTLED).
pub const TEST_RATE_LIMIT: u32 = 200;

impl TestServer {
    pub async fn start(store: TestStore) -> Self {
        let options = agora_api::app::AppOptions {
            rate_limit_per_minute: TEST_RATE_LIMIT,
            ..Default::default()
        };
        Self::start_with(store, options).await
    }

    /// Pools small enough that four test servers at once stay well inside PostgreSQL's
    /// default 100 connections.
    pub const POOL_SIZES: agora_commands::PoolSizes =
        agora_commands::PoolSizes { write: 10, read: 6 };

    /// A server with explicit options (limits, marketplace settings).
    pub async fn start_with(store: TestStore, mut options: agora_api::app::AppOptions) -> Self {
        if options.pool_sizes == agora_commands::PoolSizes::default() {
            options.pool_sizes = Self::POOL_SIZES;
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
        let app =
            agora_api::app::App::start_with(&store.location, key, Some(TEST_ADMIN_TOKEN), options)
                .await
                .expect("start app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = app.state.clone();
        let router = agora_api::app::router(app.state.clone());
        let task = tokio::spawn(async move {
            let _app = app;
            let _ = axum::serve(listener, router).await;
        });
        Self {
            addr,
            store,
            state,
            admin_token: TEST_ADMIN_TOKEN.to_string(),
            task,
        }
    }

    /// The per-request facts a resolver sees for a caller with `token` (for running the schema
    /// directly, e.g. subscriptions with `execute_stream`).
    pub async fn request_context(&self, token: &str) -> agora_api::graphql::RequestContext {
        agora_api::graphql::RequestContext {
            principal: self
                .state
                .keys
                .authenticate(Some(&format!("Bearer {token}")))
                .await,
            idempotency_key: None,
            correlation_id: uuid::Uuid::now_v7(),
        }
    }

    /// POSTs a GraphQL request; returns the HTTP status and the raw body.
    pub async fn graphql_raw(
        &self,
        token: Option<&str>,
        idempotency_key: Option<&str>,
        body: &serde_json::Value,
    ) -> (u16, String) {
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(t) = token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        if let Some(k) = idempotency_key {
            headers.push(("idempotency-key", k.to_string()));
        }
        http_request(self.addr, "POST", "/graphql", &headers, &body.to_string()).await
    }

    /// POSTs `query` with `variables`; returns the parsed JSON body.
    pub async fn graphql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: serde_json::Value,
    ) -> serde_json::Value {
        let body = serde_json::json!({ "query": query, "variables": variables });
        let (_, text) = self.graphql_raw(token, None, &body).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_request(self.addr, "GET", path, &[], "").await
    }

    /// A REST call with a bearer token, an optional `Idempotency-Key` and a JSON body; returns
    /// the status, the response head (lower-cased) and the parsed body (`null` if not JSON).
    pub async fn rest(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        idempotency_key: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, String, serde_json::Value) {
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(t) = token {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        if let Some(k) = idempotency_key {
            headers.push(("idempotency-key", k.to_string()));
        }
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, head, body) =
            http_request_full(self.addr, method, path, &headers, &text).await;
        let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (status, head, json)
    }

    /// The response head (status line and headers) of `GET path`, lower-cased.
    pub async fn get_head(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        text.split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(response: &serde_json::Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// A minimal HTTP/1.1 client: one request per connection.
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String) {
    let (status, _, body) = http_request_full(addr, method, path, headers, body).await;
    (status, body)
}

/// [`http_request`] that also returns the response head, lower-cased.
pub async fn http_request_full(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, head, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(&after[..n.min(after.len())]);
        rest = after.get(n + 2..).unwrap_or("");
    }
    out
}

/// Waits out the end of the current clock minute when it is near (the last 15 s), so a test's
/// counts against a per-minute (or per-hour) limit stay in one window.
pub async fn within_one_window() {
    use chrono::Timelike;
    let second = chrono::Utc::now().second();
    if second >= 45 {
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(61 - second))).await;
    }
}
