//! The application: store, command buses, projections, and the HTTP router over them.

use std::sync::Arc;

use agora_commands::logmarket::{LogMarket, LogMarketProcess};
use agora_commands::{CommandBus, CommitSignal, PoolSizes, Store, StoreLocation};
use agora_domain::access::ApiKey;
use agora_domain::ledger::JournalEntry;
use agora_projections::ledger::LedgerQueries;
use agora_projections::{all_projections, ProjectionHost};
use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ed25519_dalek::SigningKey;
use serde_json::json;

use crate::graphql::auth::Keys;
use crate::graphql::idempotency::Idempotency;
use crate::graphql::{build_schema, graphiql, graphql_handler, ws_handler, AgoraSchema};
use crate::logmarket::{MarketApi, MarketSettings};
use crate::metrics::{metrics_handler, track, Metrics};
use crate::ratelimit::RateLimiter;

/// Everything a request handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub signal: CommitSignal,
    pub ledger: Arc<CommandBus<JournalEntry>>,
    pub ledger_queries: LedgerQueries,
    pub projections: Arc<ProjectionHost>,
    pub keys: Keys,
    pub idempotency: Idempotency,
    pub public_key_hex: String,
    pub schema: AgoraSchema,
    pub metrics: Metrics,
    pub rate_limiter: Arc<RateLimiter>,
    pub market: Arc<MarketApi>,
}

/// Tunables of a running application.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// GraphQL requests per key per minute.
    pub rate_limit_per_minute: u32,
    pub market: MarketSettings,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: crate::ratelimit::DEFAULT_PER_MINUTE,
            market: MarketSettings::default(),
        }
    }
}

/// A running application (without its HTTP listener).
pub struct App {
    pub state: AppState,
    process_stop: tokio::sync::watch::Sender<bool>,
    process: tokio::task::JoinHandle<()>,
}

impl App {
    /// Connects, migrates, starts the projections (the audit seal signs with `ledger_key`) and
    /// makes sure a first admin key exists (`bootstrap_admin_key`, else a generated one that is
    /// printed once).
    pub async fn start(
        location: &StoreLocation,
        ledger_key: SigningKey,
        bootstrap_admin_key: Option<&str>,
        rate_limit_per_minute: u32,
    ) -> anyhow::Result<Self> {
        let options = AppOptions {
            rate_limit_per_minute,
            ..AppOptions::default()
        };
        Self::start_with(location, ledger_key, bootstrap_admin_key, options).await
    }

    /// [`App::start`] with every option.
    pub async fn start_with(
        location: &StoreLocation,
        ledger_key: SigningKey,
        bootstrap_admin_key: Option<&str>,
        options: AppOptions,
    ) -> anyhow::Result<Self> {
        let store = Store::connect(location, &PoolSizes::default()).await?;
        store.migrate().await.context("running migrations")?;
        let signal = CommitSignal::new();
        let public_key_hex = hex::encode(ledger_key.verifying_key().to_bytes());
        let token_secret = ledger_key.to_bytes();
        let host = ProjectionHost::start(&store, &signal, all_projections(Arc::new(ledger_key)))
            .await
            .context("starting projections")?;
        let ledger = Arc::new(CommandBus::new(&store, signal.clone(), ()));
        let ledger_queries = LedgerQueries::new(store.read_models().clone());
        let keys = Keys::new(
            Arc::new(CommandBus::<ApiKey>::new(&store, signal.clone(), ())),
            token_secret,
        );
        if let Some(token) = keys
            .ensure_bootstrap(bootstrap_admin_key)
            .await
            .map_err(|e| anyhow::anyhow!("creating the bootstrap admin key: {}", e.message()))?
        {
            // Printed once, on the first start only; not logged.
            println!("agora: first start: admin API key (shown once, keep it): {token}");
        }
        let idempotency = Idempotency::new(store.read_models().clone());
        let projections = Arc::new(host);
        let market = Arc::new(LogMarket::new(
            &store,
            signal.clone(),
            options.market.config.clone(),
        ));
        let market_api =
            MarketApi::new(&store, market.clone(), projections.clone(), options.market);
        // The novelty index starts from every template the read model holds; the process
        // manager adds those of analyses it has not seen yet.
        let hashes = market_api
            .queries
            .template_hashes()
            .await
            .context("loading known log templates")?;
        market.remember_templates(hashes);
        let process = LogMarketProcess::new(market);
        process
            .catch_up()
            .await
            .map_err(|e| anyhow::anyhow!("log marketplace process manager: {e}"))?;
        let (process_stop, stop_rx) = tokio::sync::watch::channel(false);
        let commits = signal.subscribe();
        tokio::spawn(idempotency.clone().run_purge(stop_rx.clone()));
        let process = tokio::spawn(process.run(commits, stop_rx));
        Ok(Self {
            process_stop,
            process,
            state: AppState {
                store,
                signal,
                ledger,
                ledger_queries,
                projections,
                keys,
                idempotency,
                public_key_hex,
                schema: build_schema(),
                metrics: Metrics::new().context("registering metrics")?,
                rate_limiter: Arc::new(RateLimiter::new(options.rate_limit_per_minute)),
                market: Arc::new(market_api),
            },
        })
    }

    /// Stops the projections after their current batch (each checkpoints as it commits) and
    /// closes the pools.
    pub async fn shutdown(self) {
        let _ = self.process_stop.send(true);
        if let Err(e) = self.process.await {
            tracing::error!(error = %e, "log marketplace process manager panicked");
        }
        let AppState {
            store,
            projections,
            market,
            ..
        } = self.state;
        drop(market);
        match Arc::try_unwrap(projections) {
            Ok(host) => host.shutdown().await,
            Err(_) => tracing::warn!("projections still shared at shutdown; not waiting for them"),
        }
        store.close().await;
    }
}

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The HTTP routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(graphiql))
        .route("/graphiql", get(graphiql))
        .route(
            "/graphql",
            get(graphiql)
                .post(graphql_handler)
                .layer(middleware::from_fn(limit_body)),
        )
        .route("/graphql/ws", get(ws_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .merge(crate::logmarket::rest::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Refuses bodies over [`MAX_BODY_BYTES`] with 413 (the GraphQL extractor streams the body
/// itself, so axum's `DefaultBodyLimit` does not reach it).
async fn limit_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY_BYTES} bytes"),
        )
            .into_response(),
    }
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
