//! The application: store, command buses, projections, and the HTTP router over them.

use std::sync::Arc;

use agora_commands::{CommandBus, CommitSignal, PoolSizes, Store, StoreLocation};
use agora_domain::ledger::JournalEntry;
use agora_projections::ledger::LedgerQueries;
use agora_projections::{all_projections, ProjectionHost};
use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use ed25519_dalek::SigningKey;
use serde_json::json;

/// Everything a request handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub signal: CommitSignal,
    pub ledger: Arc<CommandBus<JournalEntry>>,
    pub ledger_queries: LedgerQueries,
    pub projections: Arc<ProjectionHost>,
}

/// A running application (without its HTTP listener).
pub struct App {
    pub state: AppState,
}

impl App {
    /// Connects, migrates, and starts the projections (the audit seal signs with `ledger_key`).
    pub async fn start(location: &StoreLocation, ledger_key: SigningKey) -> anyhow::Result<Self> {
        let store = Store::connect(location, &PoolSizes::default()).await?;
        store.migrate().await.context("running migrations")?;
        let signal = CommitSignal::new();
        let host = ProjectionHost::start(&store, &signal, all_projections(Arc::new(ledger_key)))
            .await
            .context("starting projections")?;
        let ledger = Arc::new(CommandBus::new(&store, signal.clone(), ()));
        let ledger_queries = LedgerQueries::new(store.read_models().clone());
        Ok(Self {
            state: AppState {
                store,
                signal,
                ledger,
                ledger_queries,
                projections: Arc::new(host),
            },
        })
    }

    /// Stops the projections after their current batch (each checkpoints as it commits) and
    /// closes the pools.
    pub async fn shutdown(self) {
        let AppState {
            store, projections, ..
        } = self.state;
        match Arc::try_unwrap(projections) {
            Ok(host) => host.shutdown().await,
            Err(_) => tracing::warn!("projections still shared at shutdown; not waiting for them"),
        }
        store.close().await;
    }
}

/// The HTTP routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store answers, every migration is applied and every projection runs.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let store_ok = state.store.ping().await.is_ok();
    let migrated = state.store.migrations_applied().await.unwrap_or(false);
    let projections_ok = state.projections.all_running();
    let ready = store_ok && migrated && projections_ok;
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "ready": ready,
            "store": store_ok,
            "migrations": migrated,
            "projections": projections_ok,
        })),
    )
}
