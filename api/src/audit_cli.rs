//! Auditor commands: `agora verify`, `agora replay --projection NAME`, `agora export --from POS`.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use agora_commands::store::LogPosition;
use agora_commands::{PoolSizes, Store};
use agora_projections::audit::{self, VerifyReport};
use agora_projections::engine::ProjectionRunner;
use agora_projections::rebuild::{rebuild_and_compare, Comparison};
use agora_projections::{all_projections, projection_named};
use anyhow::Context;
use clap::Args;
use ed25519_dalek::SigningKey;
use serde_json::json;
use sqlx::Row;

use crate::config::Config;

/// Events read per chunk by `export`.
pub const EXPORT_CHUNK: i64 = 2_000;

#[derive(Args, Clone, Debug)]
pub struct ReplayArgs {
    /// The projection to rebuild from position zero and compare (e.g. `ledger`, `audit_seal`).
    #[arg(long)]
    pub projection: String,
    /// Keep the rebuilt `rb_*` tables for inspection.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Clone, Debug)]
pub struct ExportArgs {
    /// First global position to export (inclusive).
    #[arg(long, default_value_t = 1)]
    pub from: i64,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

async fn open(config: &Config) -> anyhow::Result<(Store, SigningKey)> {
    let store = Store::connect(&config.store, &PoolSizes::default()).await?;
    store.migrate().await?;
    let key = crate::keys::load_or_create(config.signing_key.as_ref(), &config.data_dir)?;
    Ok((store, key))
}

/// Makes sure every projection's tables and checkpoint exist (a fresh database).
async fn prepare_all(store: &Store, key: &SigningKey) -> anyhow::Result<()> {
    for p in all_projections(Arc::new(key.clone())) {
        ProjectionRunner::new(store.clone(), p).prepare().await?;
    }
    Ok(())
}

/// Recomputes the seal chain and the signatures; `Ok(false)` names the first difference.
pub async fn verify(config: &Config) -> anyhow::Result<bool> {
    let (store, key) = open(config).await?;
    prepare_all(&store, &key).await?;
    let public = key.verifying_key();
    let report = audit::verify(&store, &public).await?;
    print_verify(&report, &hex::encode(public.to_bytes()));
    store.close().await;
    Ok(report.failure.is_none())
}

fn print_verify(report: &VerifyReport, public_hex: &str) {
    println!("ledger public key: {public_hex}");
    println!(
        "verified {} events and {} signed checkpoints; {} events not sealed yet",
        report.verified_events, report.verified_checkpoints, report.unsealed_events
    );
    match &report.failure {
        None => println!("OK: the event log matches its seals"),
        Some(f) => println!("FAILED: {f}"),
    }
}

/// Rebuilds one projection from zero and compares; `Ok(false)` on any difference.
pub async fn replay(config: &Config, args: &ReplayArgs) -> anyhow::Result<bool> {
    let (store, key) = open(config).await?;
    prepare_all(&store, &key).await?;
    let projection = projection_named(&args.projection, Arc::new(key)).with_context(|| {
        format!(
            "no projection named {:?} (known: ledger, audit_seal)",
            args.projection
        )
    })?;
    let comparison = rebuild_and_compare(&store, projection.as_ref(), args.keep).await?;
    print_comparison(&comparison);
    store.close().await;
    Ok(comparison.is_equal())
}

fn print_comparison(c: &Comparison) {
    println!(
        "projection {} rebuilt from position zero up to {:?}",
        c.projection, c.position
    );
    for t in &c.tables {
        println!(
            "  {:<28} live {:>8} rows, rebuilt {:>8} rows, only live {:>6}, only rebuilt {:>6}  {}",
            t.live_table,
            t.live_rows,
            t.rebuilt_rows,
            t.only_live,
            t.only_rebuilt,
            if t.is_equal() { "equal" } else { "DIFFERENT" }
        );
    }
    println!(
        "{}",
        if c.is_equal() {
            "OK: equal"
        } else {
            "FAILED: the rebuild differs from the live projection"
        }
    );
}

/// Writes every event with global position ≥ `from`, in global order, as JSON Lines, with its
/// seal where the audit projection has sealed it.
pub async fn export(config: &Config, args: &ExportArgs) -> anyhow::Result<()> {
    let (store, key) = open(config).await?;
    prepare_all(&store, &key).await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut after = LogPosition::START;
    let mut written = 0u64;
    loop {
        let events = store.read_global(after, EXPORT_CHUNK).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        let seals = seals_for(&store, &events).await?;
        for e in events
            .iter()
            .filter(|e| e.position.global_position >= args.from)
        {
            let line = json!({
                "global_position": e.position.global_position,
                "transaction_id": e.position.transaction_id,
                "aggregate_type": e.aggregate_type,
                "aggregate_id": e.aggregate_id,
                "sequence": e.sequence,
                "event_type": e.event_type,
                "event_version": e.event_version,
                "payload": e.payload,
                "metadata": e.metadata,
                "recorded_at": e.recorded_at.to_rfc3339(),
                "seal": seals.get(&e.position.global_position),
            });
            writeln!(out, "{line}")?;
            written += 1;
        }
    }
    out.flush()?;
    eprintln!("exported {written} events");
    store.close().await;
    Ok(())
}

async fn seals_for(
    store: &Store,
    events: &[agora_commands::StoredEvent],
) -> anyhow::Result<HashMap<i64, String>> {
    let lo = events
        .iter()
        .map(|e| e.position.global_position)
        .min()
        .unwrap_or(0);
    let hi = events
        .iter()
        .map(|e| e.position.global_position)
        .max()
        .unwrap_or(0);
    let rows = sqlx::query(
        "SELECT global_position, seal FROM rm_audit_seals WHERE global_position BETWEEN $1 AND $2",
    )
    .bind(lo)
    .bind(hi)
    .fetch_all(store.read_models())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}
