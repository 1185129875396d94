//! `agora parked list | retry ID | skip ID --reason TEXT`: operators' handling of parked
//! events from the command line (the same operations as GraphQL's `parkedEvents`,
//! `retryParkedEvent` and `skipParkedEvent`; see [`crate::parked`]).
//!
//! A retry runs the runner's code in this process: a projection applies the event to the live
//! tables (and deletes the row in that transaction); a process manager reacts to it again
//! (its reactions are idempotent, so a server running the same manager meanwhile is harmless).

use std::sync::Arc;

use agora_commands::lapverse::{process as lapverse_process, LapVerse};
use agora_commands::logmarket::{self as market_process, LogMarket};
use agora_commands::process::Redeliver;
use agora_commands::{CommandMetadata, CommitSignal, PoolSizes, Store};
use agora_projections::all_projections;
use agora_projections::lapverse::LapVerseQueries;
use agora_projections::parking::{ParkedEvent, MAX_PARKED_PAGE};
use agora_projections::ProjectionRunner;
use anyhow::Context;
use chrono::Utc;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::parked::ParkedEvents;

/// Tenant stamped on skips recorded from the command line.
pub const CLI_TENANT: &str = "platform";

#[derive(Args, Clone, Debug)]
pub struct ParkedArgs {
    #[command(subcommand)]
    pub command: ParkedCommand,
}

#[derive(Subcommand, Clone, Debug)]
pub enum ParkedCommand {
    /// List parked events, newest first (JSON Lines).
    List {
        /// Only this projection or process manager.
        #[arg(long)]
        runner: Option<String>,
        /// Include skipped rows.
        #[arg(long)]
        all: bool,
        /// At most this many rows (≤ 500).
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Have the runner that parked event ID handle it again; the row is deleted on success.
    Retry { id: i64 },
    /// Let the runner do without event ID: recorded as a `ParkedEventSkipped` event.
    Skip {
        id: i64,
        /// Why the event may be skipped (recorded in the event).
        #[arg(long)]
        reason: String,
        /// Who skips it (recorded in the event); default `cli:$USER`.
        #[arg(long)]
        actor: Option<String>,
    },
}

/// Runs the subcommand; `Ok(false)` when the operation was refused.
pub async fn run(config: &Config, args: &ParkedArgs) -> anyhow::Result<bool> {
    let store = Store::connect(&config.store, &PoolSizes::default()).await?;
    store.migrate().await.context("running migrations")?;
    let outcome = execute(config, &store, &args.command).await;
    store.close().await;
    outcome
}

async fn execute(config: &Config, store: &Store, command: &ParkedCommand) -> anyhow::Result<bool> {
    let parked = parked_events(config, store)?;
    let result = match command {
        ParkedCommand::List { runner, all, limit } => {
            let rows = parked
                .store
                .list(runner.as_deref(), *all, (*limit).clamp(1, MAX_PARKED_PAGE))
                .await?;
            for row in &rows {
                println!("{}", serde_json::to_string(row)?);
            }
            eprintln!("{} parked event(s)", rows.len());
            return Ok(true);
        }
        ParkedCommand::Retry { id } => parked.retry(*id).await.map(|p| ("retried", p)),
        ParkedCommand::Skip { id, reason, actor } => {
            let actor = actor.clone().unwrap_or_else(default_actor);
            let meta = CommandMetadata::new(&actor, CLI_TENANT, Utc::now())?;
            parked
                .skip(*id, reason, &meta)
                .await
                .map(|p| ("skipped", p))
        }
    };
    match result {
        Ok((what, row)) => {
            print_done(what, &row);
            Ok(true)
        }
        Err(e) => {
            eprintln!("agora: {e}");
            Ok(false)
        }
    }
}

fn print_done(what: &str, row: &ParkedEvent) {
    println!(
        "{what}: parked event {} ({} at position {}, {} {}#{})",
        row.id, row.runner, row.global_position, row.event_type, row.aggregate_id, row.sequence
    );
}

fn default_actor() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "operator".into());
    format!("cli:{user}")
}

/// Every runner of a server, built in this process (not started): the projections and the two
/// process managers.
fn parked_events(config: &Config, store: &Store) -> anyhow::Result<ParkedEvents> {
    let signal = CommitSignal::new();
    // The audit seal signs what a retry applies: the deployment's key, never a new one.
    let key = crate::keys::load_existing(config.signing_key.as_ref(), &config.data_dir)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no ledger signing key: set AGORA_LEDGER_SIGNING_KEY or AGORA_DATA_DIR to the \
                 deployment's"
            )
        })?;
    let runners = all_projections(Arc::new(key))
        .into_iter()
        .map(|p| ProjectionRunner::new(store.clone(), p))
        .collect();
    let balances = Arc::new(agora_projections::ledger::LedgerQueries::new(
        store.read_models().clone(),
    ));
    let market = Arc::new(LogMarket::new(
        store,
        signal.clone(),
        config.market.config.clone(),
        balances.clone(),
    ));
    let lapverse = Arc::new(LapVerse::new(
        store,
        signal.clone(),
        config.lapverse.clone(),
        Arc::new(LapVerseQueries::new(store.read_models().clone())),
        balances,
    ));
    let processes: Vec<Arc<dyn Redeliver>> = vec![
        Arc::new(market_process::process(market)),
        Arc::new(lapverse_process::process(lapverse)),
    ];
    Ok(ParkedEvents::new(store, signal, runners, processes))
}
