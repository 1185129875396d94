//! `agora serve`: the HTTP server with graceful shutdown.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::{ops_router, router, App};
use crate::config::{Config, LogFormat};
use crate::roles::Role;

/// `agora serve` options.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// What this process runs: `api` (GraphQL and REST), `projector` (projections, process
    /// managers and workers, with the operations routes) or `all`.
    #[arg(long, value_enum, env = "AGORA_ROLE", default_value_t = Role::All)]
    pub role: Role,
}

/// Sets up tracing once: human-readable or JSON, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tantivy=warn"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(crate::redact::RedactingStderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Starts the application and serves until SIGTERM or Ctrl-C: in-flight requests finish, then
/// the projections stop after their current batch.
pub async fn serve(config: &Config, args: &ServeArgs) -> anyhow::Result<()> {
    tracing::info!(store = %config.store.redacted(), role = args.role.as_str(), "starting agora");
    // The listen address first: a taken or invalid address fails before a key is generated or
    // printed and before a database is created.
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let key = crate::keys::load_or_create(config.signing_key.as_ref(), &config.data_dir)?;
    tracing::info!(public_key = %hex::encode(key.verifying_key().to_bytes()), "ledger signing key");
    let bootstrap = config.bootstrap_admin_key.as_ref().map(|s| s.expose());
    let options = crate::app::AppOptions {
        rate_limit_per_minute: config.rate_limit_per_minute,
        market: config.market.clone(),
        lapverse: config.lapverse.clone(),
        workers: config.workers,
        limits: crate::app::LimitOptions {
            redis_url: config.redis_url.as_ref().map(|s| s.expose().to_owned()),
            ..crate::app::LimitOptions::default()
        },
        token_secret: crate::graphql::auth::TokenSecret::load_or_create(
            config.api_token_secret.as_ref(),
            &config.data_dir,
        )?,
        role: args.role,
        ..crate::app::AppOptions::default()
    };
    let app = App::start_with(&config.store, key, bootstrap, options).await?;
    if config.demo_tenant && args.role.serves_api() {
        crate::lapverse::demo::ensure_demo_tenant(&app.state.lapverse.service)
            .await
            .context("registering the demo tenant")?;
        // The demo catalogue loads before the server answers (under a second on first start;
        // later starts only find it), so what a client sees first is the whole catalogue.
        let state = &app.state;
        let settle = || state.market.settle_reads();
        if let Err(e) =
            crate::capsules::demo::ensure_demo_catalogue(&state.capsules.service, settle).await
        {
            tracing::warn!(error = %e, "the demo capsule catalogue did not load");
        }
    }
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "listening");
    let routes = if args.role.serves_api() {
        router(app.state.clone())
    } else {
        ops_router(app.state.clone())
    };
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("shutting down: stopping projections");
    app.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
