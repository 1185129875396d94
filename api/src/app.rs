//! The application: store, command buses, projections, and the HTTP router over them.

use std::sync::Arc;

use agora_commands::lapverse::jobs::run_done_purge;
use agora_commands::lease::{supervise, Leases};
use agora_commands::logmarket::{self as market_process, LogMarket};
use agora_commands::process::{Redeliver, RetryPolicy};
use agora_commands::{CommandBus, CommitSignal, PoolSizes, Store, StoreLocation};
use agora_domain::access::ApiKey;
use agora_domain::ledger::JournalEntry;
use agora_projections::access::ApiKeyQueries;
use agora_projections::ledger::LedgerQueries;
use agora_projections::parking::ParkingStore;
use agora_projections::signing_key;
use agora_projections::{all_projections, Projection, ProjectionHost};
use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use ed25519_dalek::SigningKey;
use serde_json::json;

use crate::capsules::metrics::CapsuleMetrics;
use crate::capsules::{CapsuleOptions, CapsulesApi};
use crate::graphql::auth::{Keys, TokenSecret};
use crate::graphql::idempotency::Idempotency;
use crate::graphql::{build_schema, graphiql, graphql_handler, ws_handler, AgoraSchema};
use crate::lapverse::metrics::LapVerseMetrics;
use crate::lapverse::LapVerseApi;
use crate::logmarket::{MarketApi, MarketSettings};
use crate::metrics::{metrics_handler, track, Metrics};
use crate::parked::ParkedEvents;
use crate::ratelimit::{Counters, RateLimiter};
use crate::roles::{BackgroundRuntime, Role, BACKGROUND_THREADS};
use agora_commands::capsules::notices as capsule_notices;
use agora_commands::capsules::{CapsuleService, CapsuleSettings};
use agora_commands::executions::ExecutionService;
use agora_commands::lapverse::jobs::Workers;
use agora_commands::lapverse::process as lapverse_process;
use agora_commands::lapverse::{FaultInjector, LapVerse, LapVerseSettings};
use agora_projections::capsule_collections::{CollectionQueries, TrendingQueries};
use agora_projections::capsule_installs::CapsuleInstallQueries;
use agora_projections::capsule_reviews::CapsuleReviewQueries;
use agora_projections::capsule_search::CapsuleSearch;
use agora_projections::capsules::CapsuleQueries;
use agora_projections::lapverse::LapVerseQueries;
use tokio::runtime::Handle;

/// Everything a request handler may use. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub signal: CommitSignal,
    pub ledger: Arc<CommandBus<JournalEntry>>,
    pub ledger_queries: LedgerQueries,
    pub projections: Arc<ProjectionHost>,
    pub keys: Keys,
    pub api_key_queries: ApiKeyQueries,
    pub idempotency: Idempotency,
    pub public_key_hex: String,
    pub schema: AgoraSchema,
    pub metrics: Metrics,
    pub rate_limiter: Arc<RateLimiter>,
    pub market: Arc<MarketApi>,
    pub lapverse: LapVerseApi,
    pub capsules: CapsulesApi,
    /// Agent executions in (issue 14).
    pub executions: Arc<ExecutionService>,
    pub parked: ParkedEvents,
    /// The leases on background work this process holds.
    pub leases: Leases,
}

/// Tunables of a running application.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// GraphQL requests per key per minute.
    pub rate_limit_per_minute: u32,
    pub market: MarketSettings,
    pub lapverse: LapVerseSettings,
    /// Run the Lap-Verse workers in this process (off: accept work, let others run it).
    pub workers: bool,
    /// Fails chosen attempts (tests and drills only).
    pub faults: Option<FaultHook>,
    /// The secret API tokens are derived from (independent of the ledger key).
    pub token_secret: TokenSecret,
    /// Connections of the store's pools (PostgreSQL).
    pub pool_sizes: PoolSizes,
    /// Tries per event before a projection or process manager parks it.
    pub retry_policy: RetryPolicy,
    /// Projections run besides [`all_projections`] (tests and drills only).
    pub extra_projections: ExtraProjections,
    /// Where rate limits and quotas are counted.
    pub limits: LimitOptions,
    /// What this process runs (`agora serve --role`).
    pub role: Role,
    /// Run background work on a runtime of its own ([`BackgroundRuntime`]); off, it shares
    /// the caller's runtime.
    pub background_runtime: bool,
    /// The capsule registry's blobs and limits; `None`: from the environment
    /// ([`CapsuleOptions::from_env`]).
    pub capsules: Option<CapsuleOptions>,
}

/// Where rate limits and quotas are counted: Redis when a URL is given, else the database.
#[derive(Clone, Debug)]
pub struct LimitOptions {
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (tests give each a prefix of its own).
    pub redis_prefix: String,
}

impl Default for LimitOptions {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_prefix: crate::ratelimit::DEFAULT_REDIS_PREFIX.to_owned(),
        }
    }
}

/// Projections added to the standard ones.
#[derive(Clone, Default)]
pub struct ExtraProjections(pub Vec<Arc<dyn Projection>>);

impl std::fmt::Debug for ExtraProjections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|p| p.name()))
            .finish()
    }
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: crate::ratelimit::DEFAULT_PER_MINUTE,
            market: MarketSettings::default(),
            lapverse: LapVerseSettings::default(),
            workers: true,
            faults: None,
            token_secret: TokenSecret::random(),
            pool_sizes: PoolSizes::default(),
            retry_policy: RetryPolicy::default(),
            extra_projections: ExtraProjections::default(),
            limits: LimitOptions::default(),
            role: Role::default(),
            background_runtime: true,
            capsules: None,
        }
    }
}

/// A [`FaultInjector`] in the options.
#[derive(Clone)]
pub struct FaultHook(pub Arc<dyn FaultInjector>);

impl std::fmt::Debug for FaultHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaultHook")
    }
}

/// A running application (without its HTTP listener).
pub struct App {
    pub state: AppState,
    process_stop: tokio::sync::watch::Sender<bool>,
    processes: Vec<tokio::task::JoinHandle<()>>,
    /// The background work's own store (pools opened on its runtime), when it has one.
    background_store: Option<Store>,
    /// Dropped last, once the work on it has stopped.
    background: Option<BackgroundRuntime>,
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
        let store = Store::connect(location, &options.pool_sizes).await?;
        store.migrate().await.context("running migrations")?;
        let public = ledger_key.verifying_key();
        if signing_key::record_or_check(&store, &public).await? {
            tracing::info!(
                fingerprint = %signing_key::fingerprint(&public),
                "recorded the deployment's ledger public key"
            );
        }
        let signal = CommitSignal::new();
        let public_key_hex = hex::encode(ledger_key.verifying_key().to_bytes());
        let platform_key = Arc::new(ledger_key);
        let mut projections = all_projections(platform_key.clone());
        projections.extend(options.extra_projections.0.iter().cloned());
        // Every piece of background work runs under a lease (one process at a time) and is
        // supervised (restarted after an error or a panic).
        let leases = Leases::default();
        let role = options.role;
        let background = if role.runs_background() && options.background_runtime {
            Some(
                BackgroundRuntime::start(BACKGROUND_THREADS)
                    .context("starting the background runtime")?,
            )
        } else {
            None
        };
        let bg = background
            .as_ref()
            .map_or_else(Handle::current, BackgroundRuntime::handle);
        // The projections' own pools, opened on their runtime.
        let background_store = match &background {
            Some(_) => {
                let (main, sizes) = (store.clone(), background_pool_sizes(&options.pool_sizes));
                Some(
                    bg.spawn(async move { main.sibling(&sizes).await })
                        .await
                        .context("opening the background pools")??,
                )
            }
            None => None,
        };
        let projector_store = background_store.as_ref().unwrap_or(&store);
        // Starts the runners without waiting for them to catch up (`/readyz` reports lag).
        let host = if role.runs_background() {
            ProjectionHost::start_on(
                &bg,
                projector_store,
                &signal,
                projections,
                options.retry_policy,
                leases.clone(),
            )
            .await
        } else {
            ProjectionHost::standby(&store, projections, options.retry_policy).await
        }
        .context("starting projections")?;
        let dead_letters = Arc::new(ParkingStore::new(store.read_models().clone()));
        let ledger = Arc::new(CommandBus::new(&store, signal.clone(), ()));
        let ledger_queries = LedgerQueries::new(store.read_models().clone());
        let keys = Keys::new(
            Arc::new(CommandBus::<ApiKey>::new(&store, signal.clone(), ())),
            options.token_secret.clone(),
        );
        if let Some(token) = keys
            .ensure_bootstrap(bootstrap_admin_key)
            .await
            .map_err(|e| anyhow::anyhow!("creating the bootstrap admin key: {}", e.message()))?
        {
            // Printed once, on the first start only; not logged.
            println!("agora: first start: admin API key (shown once, keep it): {token}");
        }
        // Outcomes a client relies on are committed durably, not on the read-model pool.
        let idempotency = Idempotency::new(store.durable().clone()).with_gate(store.write_gate());
        let api_key_queries = ApiKeyQueries::new(store.read_models().clone());
        let projections = Arc::new(host);
        let market = Arc::new(LogMarket::new(
            &store,
            signal.clone(),
            options.market.config.clone(),
            Arc::new(ledger_queries.clone()),
        ));
        let counters = match &options.limits.redis_url {
            Some(url) => Counters::redis(url, &options.limits.redis_prefix)
                .await
                .context("connecting to Redis (AGORA_REDIS_URL)")?,
            None => Counters::database(store.durable().clone(), store.write_gate()),
        };
        let market_api = MarketApi::new(
            &store,
            market.clone(),
            projections.clone(),
            options.market,
            counters.clone(),
        );
        // The novelty index starts from every template the read model holds; the process
        // manager adds those of analyses it has not seen yet.
        let hashes = market_api
            .queries
            .template_hashes()
            .await
            .context("loading known log templates")?;
        market.remember_templates(hashes);
        let process = market_process::process(market)
            .with_dead_letters(dead_letters.clone())
            .with_retry_policy(options.retry_policy)
            .with_leases(leases.clone());
        // The process that gets the lease first (the only one, on SQLite) catches up before it
        // serves, so the novelty index knows every recorded template; the others stand by.
        let first_lease = if role.runs_background() {
            leases.try_acquire(&store, &process.lease_key()).await
        } else {
            Ok(None)
        };
        match first_lease {
            Ok(Some(_lease)) => process
                .catch_up()
                .await
                .map_err(|e| anyhow::anyhow!("log marketplace process manager: {e}"))?,
            Ok(None) => 0,
            Err(e) => {
                tracing::warn!(error = %e, "could not try the marketplace lease; its runner will");
                0
            }
        };
        let (process_stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut processes = Vec::new();
        if role.runs_background() {
            let (idempotency, store, leases, stop) = (
                idempotency.clone(),
                store.clone(),
                leases.clone(),
                stop_rx.clone(),
            );
            processes.push(bg.spawn(supervise(
                "idempotency purge".into(),
                stop_rx.clone(),
                move || {
                    idempotency
                        .clone()
                        .run_purge(store.clone(), leases.clone(), stop.clone())
                },
            )));
        }
        if role.runs_background() {
            let (store, leases, stop) = (store.clone(), leases.clone(), stop_rx.clone());
            processes.push(
                bg.spawn(supervise("job purge".into(), stop_rx.clone(), move || {
                    run_done_purge(store.clone(), leases.clone(), stop.clone())
                })),
            );
        }
        let metrics = Metrics::new().context("registering metrics")?;
        let lv_metrics = LapVerseMetrics::register(metrics.registry())
            .context("registering lap-verse metrics")?;
        let lv_queries = LapVerseQueries::new(store.read_models().clone());
        let mut service = LapVerse::new(
            &store,
            signal.clone(),
            options.lapverse.clone(),
            Arc::new(lv_queries.clone()),
            Arc::new(ledger_queries.clone()),
        )
        .with_observer(Arc::new(lv_metrics));
        if let Some(FaultHook(faults)) = &options.faults {
            service = service.with_faults(faults.clone());
        }
        let service = Arc::new(service);
        let capsules = capsules_api(&store, &signal, &metrics, platform_key, &options.capsules)?;
        let executions = Arc::new(ExecutionService::new(&store, signal.clone()));
        let lv_process = lapverse_process::process(service.clone())
            .with_dead_letters(dead_letters.clone())
            .with_retry_policy(options.retry_policy)
            .with_leases(leases.clone());
        let notices = capsule_notices::process(capsules.service.clone())
            .with_dead_letters(dead_letters)
            .with_retry_policy(options.retry_policy)
            .with_leases(leases.clone());
        let redeliver: Vec<Arc<dyn Redeliver>> = vec![
            Arc::new(process.clone()),
            Arc::new(lv_process.clone()),
            Arc::new(notices.clone()),
        ];
        let parked = ParkedEvents::new(
            &store,
            signal.clone(),
            projections.runners().to_vec(),
            redeliver,
        );
        // The process managers catch up in whichever process holds their lease.
        if role.runs_background() {
            processes.push(spawn_process(&bg, process, &signal, stop_rx.clone()));
            processes.push(spawn_process(&bg, lv_process, &signal, stop_rx.clone()));
            processes.push(spawn_process(&bg, notices, &signal, stop_rx.clone()));
        }
        if options.workers && role.runs_background() {
            let workers = Workers::new(service.clone()).with_leases(leases.clone());
            let commits = signal.subscribe();
            processes.push(bg.spawn(workers.run(commits, stop_rx)));
        }
        Ok(Self {
            process_stop,
            processes,
            background_store,
            background,
            state: AppState {
                store,
                signal,
                ledger,
                ledger_queries,
                projections,
                keys,
                api_key_queries,
                idempotency,
                public_key_hex,
                schema: build_schema(),
                metrics,
                rate_limiter: Arc::new(RateLimiter::new(
                    "requests",
                    options.rate_limit_per_minute,
                    counters,
                )),
                market: Arc::new(market_api),
                lapverse: LapVerseApi {
                    service,
                    queries: lv_queries,
                },
                capsules,
                executions,
                parked,
                leases,
            },
        })
    }

    /// Stops the projections after their current batch (each checkpoints as it commits) and
    /// closes the pools.
    pub async fn shutdown(self) {
        let _ = self.process_stop.send(true);
        for process in self.processes {
            if let Err(e) = process.await {
                tracing::error!(error = %e, "a background process panicked");
            }
        }
        let AppState {
            store,
            projections,
            market,
            lapverse,
            ..
        } = self.state;
        drop(market);
        drop(lapverse);
        match Arc::try_unwrap(projections) {
            Ok(host) => host.shutdown().await,
            Err(_) => tracing::warn!("projections still shared at shutdown; not waiting for them"),
        }
        if let Some(background_store) = self.background_store {
            background_store.close().await;
        }
        store.close().await;
        drop(self.background);
    }
}

/// The capsule registry: its blob store (opened here, so a bad location fails the start), the
/// service signing publications with the platform key, and the catalogue read model.
fn capsules_api(
    store: &Store,
    signal: &CommitSignal,
    metrics: &Metrics,
    platform_key: Arc<SigningKey>,
    options: &Option<CapsuleOptions>,
) -> anyhow::Result<CapsulesApi> {
    let options = match options {
        Some(o) => o.clone(),
        None => CapsuleOptions::from_env().context("capsule registry configuration")?,
    };
    let blobs = options
        .open_blobs()
        .context("opening the capsule blob store")?;
    let queries = CapsuleQueries::new(store.read_models().clone());
    let installs = CapsuleInstallQueries::new(store.read_models().clone());
    let reviews = CapsuleReviewQueries::new(store.read_models().clone());
    let search = CapsuleSearch::new(store.read_models().clone()).context("capsule search index")?;
    let metrics =
        CapsuleMetrics::register(metrics.registry()).context("registering marketplace metrics")?;
    let settings = CapsuleSettings {
        bundle_limits: options.bundle_limits,
    };
    let service = CapsuleService::new(
        store,
        signal.clone(),
        blobs,
        platform_key,
        settings,
        Arc::new(queries.clone()),
    )
    .with_observer(Arc::new(metrics.clone()))
    .with_review_facts(Arc::new(reviews.clone()));
    Ok(CapsulesApi {
        service: Arc::new(service),
        queries,
        installs,
        reviews,
        search,
        collections: CollectionQueries::new(store.read_models().clone()),
        trending: TrendingQueries::new(store.read_models().clone()),
        metrics,
        max_body_bytes: options.max_body_bytes(),
    })
}

/// Starts process manager `runner` under its supervisor.
fn spawn_process<R: agora_commands::process::Reactor>(
    runtime: &Handle,
    runner: agora_commands::process::ProcessRunner<R>,
    signal: &CommitSignal,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let signal = signal.clone();
    let name = format!("process manager {}", runner.name());
    runtime.spawn(async move {
        supervise(name, stop.clone(), move || {
            runner.clone().run(signal.subscribe(), stop.clone())
        })
        .await;
    })
}

/// Pools of the background work's own store: the projections and leases need few
/// connections, whatever the API's pools are.
fn background_pool_sizes(api: &PoolSizes) -> PoolSizes {
    PoolSizes {
        write: api.write.min(BACKGROUND_POOL_SIZE),
        read: api.read.min(BACKGROUND_POOL_SIZE),
    }
}

/// Largest connections per pool of the background store.
pub const BACKGROUND_POOL_SIZE: u32 = 8;

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
        .merge(crate::lapverse::rest::routes())
        .merge(crate::capsules::rest::routes(state.capsules.max_body_bytes))
        .merge(crate::capsules::rest_installs::routes())
        .merge(crate::capsules::rest_reviews::routes())
        .merge(crate::capsules::rest_collections::routes())
        .merge(crate::executions::rest::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .fallback(crate::http_errors::not_found)
        .layer(middleware::from_fn(crate::http_errors::typed_errors))
        .with_state(state)
}

/// The operations routes alone (`agora serve --role projector`): health, readiness, metrics.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .fallback(crate::http_errors::not_found)
        .layer(middleware::from_fn(crate::http_errors::typed_errors))
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
        Err(_) => crate::http_errors::json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over the limit of {MAX_BODY_BYTES} bytes"),
        ),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready (200) when the store answers, every migration is applied, every projection runs
/// without a standing error and nothing is parked. Otherwise 503 with `status` `unavailable`
/// (store or migrations) or `degraded`, naming the stopped and failing projections and the
/// runners with parked events. Projections still catching up are listed but do not fail it.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let store_ok = state.store.ping().await.is_ok();
    let migrated = state.store.migrations_applied().await.unwrap_or(false);
    let stopped = state.projections.stopped();
    let mut failing = Vec::new();
    let mut catching_up = Vec::new();
    for (runner, status) in state
        .projections
        .runners()
        .iter()
        .zip(state.projections.statuses().await)
    {
        match status {
            Ok(s) if s.last_error.is_some() => failing.push(s.name),
            Ok(s) if s.lag_events > 0 => catching_up.push(s.name),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(projection = runner.name(), error = %e, "status unreadable");
                failing.push(runner.name().to_string());
            }
        }
    }
    let parked = state.parked.store.open_counts().await;
    let parked_ok = matches!(&parked, Ok(counts) if counts.is_empty());
    let parked_json = match parked {
        Ok(counts) => json!(counts),
        Err(e) => {
            tracing::warn!(error = %e, "counting parked events failed");
            json!(null)
        }
    };
    let available = store_ok && migrated;
    let healthy = stopped.is_empty() && failing.is_empty() && parked_ok;
    let (code, status) = match (available, healthy) {
        (true, true) => (StatusCode::OK, "ready"),
        (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    (
        code,
        Json(json!({
            "ready": code == StatusCode::OK,
            "status": status,
            "store": store_ok,
            "migrations": migrated,
            "projections": stopped.is_empty() && failing.is_empty(),
            "stopped": stopped,
            "failing": failing,
            "catching_up": catching_up,
            "parked": parked_json,
            "leases": state.leases.held(),
        })),
    )
}
