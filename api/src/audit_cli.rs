//! Auditor commands: `agora verify`, `agora replay --projection NAME`, `agora export --from POS`.
//!
//! None of them creates a database, runs migrations, creates a key or touches a live table:
//! `verify` and `export` open the database read-only; `replay` writes only its scratch `rb_*`
//! tables. A database that is missing, not Agora's, or not migrated is refused with an error.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agora_commands::store::LogPosition;
use agora_commands::{Access, PoolSizes, Store, StoredEvent};
use agora_projections::audit::{self, ExportVerifier, SignedCheckpoint, VerifyReport};
use agora_projections::rebuild::{rebuild_and_compare, Comparison};
use agora_projections::signing_key::{self, fingerprint, parse_public_key};
use agora_projections::{all_projections, projection_named};
use anyhow::Context;
use clap::Args;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::{json, Value};
use sqlx::Row;

use crate::config::Config;

/// Events read per chunk by `export`.
pub const EXPORT_CHUNK: i64 = 2_000;
/// Format name in the first line of an export.
pub const EXPORT_FORMAT: &str = "agora-export-v1";
/// Longest line `verify --export` reads (an event with its payload), in bytes.
pub const MAX_EXPORT_LINE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Args, Clone, Debug, Default)]
pub struct VerifyArgs {
    /// The ledger's public key (64 hex characters), obtained independently of the database:
    /// the auditor's way to verify.
    #[arg(long, conflicts_with = "public_key_file")]
    pub public_key: Option<String>,
    /// A file holding the ledger's public key (64 hex characters).
    #[arg(long)]
    pub public_key_file: Option<PathBuf>,
    /// Verify an `agora export` file (from position 1) instead of the database.
    #[arg(long)]
    pub export: Option<PathBuf>,
}

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
    /// First global position to export (inclusive). Only an export from 1 can be verified.
    #[arg(long, default_value_t = 1)]
    pub from: i64,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// The public key given on the command line, if any.
fn given_public_key(args: &VerifyArgs) -> anyhow::Result<Option<VerifyingKey>> {
    let text = match (&args.public_key, &args.public_key_file) {
        (Some(hex), _) => hex.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the public key from {}", path.display()))?,
        (None, None) => return Ok(None),
    };
    parse_public_key(text.trim())
        .map(Some)
        .context("the public key must be 64 hex characters (an ed25519 public key)")
}

/// Which key verification uses, and why.
struct ChosenKey {
    key: VerifyingKey,
    source: &'static str,
}

async fn choose_key(
    config: &Config,
    store: &Store,
    given: Option<VerifyingKey>,
) -> anyhow::Result<ChosenKey> {
    let recorded = signing_key::recorded(store).await?.map(|(k, _)| k);
    if let (Some(g), Some(r)) = (given, recorded) {
        if g != r {
            println!(
                "WARNING: the database records another ledger public key (fingerprint {}) than \
                 the one given (fingerprint {})",
                fingerprint(&r),
                fingerprint(&g)
            );
        }
    }
    if let Some(key) = given {
        let source = "given on the command line (independent of the database)";
        return Ok(ChosenKey { key, source });
    }
    if let Some(key) = recorded {
        let source = "recorded in the database (this trusts the database; pass --public-key \
                      for an independent check)";
        return Ok(ChosenKey { key, source });
    }
    // Never creates a key: only an existing one (configured, or in the data directory).
    match crate::keys::load_existing(config.signing_key.as_ref(), &config.data_dir)? {
        Some(private) => Ok(ChosenKey {
            key: private.verifying_key(),
            source: "derived from this deployment's signing key (AGORA_LEDGER_SIGNING_KEY or \
                     the key file)",
        }),
        None => anyhow::bail!(
            "no ledger public key: pass --public-key HEX or --public-key-file PATH (the \
             database records none)"
        ),
    }
}

/// Recomputes the seal chain and the signatures; `Ok(false)` names the first difference.
/// Refuses (an error) an empty log or a database the sealing projection never ran on.
pub async fn verify(config: &Config, args: &VerifyArgs) -> anyhow::Result<bool> {
    let given = given_public_key(args)?;
    if let Some(path) = &args.export {
        let key = given.context(
            "verifying an export needs the ledger's public key: --public-key or --public-key-file",
        )?;
        print_key(
            &key,
            "given on the command line (independent of the export)",
        );
        let report = verify_export_file(path, &key)?;
        return Ok(print_verify(&report));
    }
    let store =
        Store::connect_existing(&config.store, &PoolSizes::default(), Access::ReadOnly).await?;
    let result = verify_store(config, &store, given).await;
    store.close().await;
    result
}

async fn verify_store(
    config: &Config,
    store: &Store,
    given: Option<VerifyingKey>,
) -> anyhow::Result<bool> {
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(store.read_models())
        .await
        .context("counting the events")?;
    anyhow::ensure!(
        events > 0,
        "the event log of {} is empty: nothing to verify (is DATABASE_URL the ledger's database?)",
        config.store.redacted()
    );
    let chosen = choose_key(config, store, given).await?;
    print_key(&chosen.key, chosen.source);
    anyhow::ensure!(
        audit::has_run(store).await?,
        "the audit seal projection has never run on {}: there are no seals to verify (start \
         `agora serve` on it once)",
        config.store.redacted()
    );
    let report = audit::verify(store, &chosen.key).await?;
    Ok(print_verify(&report))
}

fn print_key(key: &VerifyingKey, source: &str) {
    println!(
        "ledger public key: {} (fingerprint {}), {source}",
        hex::encode(key.to_bytes()),
        fingerprint(key)
    );
}

/// Prints the report; true when it is a pass (no difference, at least one event verified).
fn print_verify(report: &VerifyReport) -> bool {
    println!(
        "verified {} events and {} signed checkpoints; {} events not sealed yet",
        report.verified_events, report.verified_checkpoints, report.unsealed_events
    );
    match &report.failure {
        Some(f) => {
            println!("FAILED: {f}");
            false
        }
        None if report.verified_events == 0 => {
            println!("FAILED: no sealed event to verify");
            false
        }
        None => {
            if report.verified_checkpoints == 0 {
                println!(
                    "note: no signed checkpoint yet (one every {} events): the seals are not \
                     signed",
                    audit::CHECKPOINT_INTERVAL
                );
            }
            println!("OK: the event log matches its seals");
            true
        }
    }
}

/// One line of an export.
fn parse_line(line: &str) -> anyhow::Result<Value> {
    serde_json::from_str(line).context("not a JSON line")
}

fn exported_event(v: &Value) -> anyhow::Result<(StoredEvent, Option<String>)> {
    let text = |k: &str| -> anyhow::Result<String> {
        v[k].as_str()
            .map(str::to_string)
            .with_context(|| format!("field {k:?} missing or not a string"))
    };
    let int = |k: &str| -> anyhow::Result<i64> {
        v[k].as_i64()
            .with_context(|| format!("field {k:?} missing or not an integer"))
    };
    let recorded_at = chrono::DateTime::parse_from_rfc3339(&text("recorded_at")?)
        .context("recorded_at")?
        .with_timezone(&chrono::Utc);
    let event = StoredEvent {
        position: LogPosition {
            transaction_id: int("transaction_id")?,
            global_position: int("global_position")?,
        },
        aggregate_type: text("aggregate_type")?,
        aggregate_id: text("aggregate_id")?,
        sequence: int("sequence")?,
        event_type: text("event_type")?,
        event_version: text("event_version")?,
        payload: v["payload"].clone(),
        metadata: v["metadata"].clone(),
        recorded_at,
    };
    Ok((event, v["seal"].as_str().map(str::to_string)))
}

/// Verifies an export with the public key only: header, then signed checkpoints, then events.
pub fn verify_export_file(path: &Path, key: &VerifyingKey) -> anyhow::Result<VerifyReport> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header = lines
        .next()
        .with_context(|| format!("{} is empty", path.display()))??;
    let header = parse_line(&header).context("line 1")?;
    anyhow::ensure!(
        header["kind"] == "header" && header["format"] == EXPORT_FORMAT,
        "{} is not an `agora export` file (format {EXPORT_FORMAT})",
        path.display()
    );
    anyhow::ensure!(
        header["from"] == 1,
        "the export starts at global position {}: only an export of the whole log (--from 1) can \
         be verified",
        header["from"]
    );
    let mut checkpoints: Vec<SignedCheckpoint> = Vec::new();
    let mut verifier: Option<ExportVerifier> = None;
    for (i, line) in lines.enumerate() {
        let line = line.with_context(|| format!("reading line {}", i + 2))?;
        anyhow::ensure!(
            line.len() <= MAX_EXPORT_LINE_BYTES,
            "line {} is longer than {MAX_EXPORT_LINE_BYTES} bytes",
            i + 2
        );
        let v = parse_line(&line).with_context(|| format!("line {}", i + 2))?;
        match v["kind"].as_str() {
            Some("checkpoint") => {
                anyhow::ensure!(
                    verifier.is_none(),
                    "line {}: checkpoints must precede the events",
                    i + 2
                );
                checkpoints
                    .push(serde_json::from_value(v).with_context(|| format!("line {}", i + 2))?);
            }
            Some("event") => {
                let (event, seal) =
                    exported_event(&v).with_context(|| format!("line {}", i + 2))?;
                let v = verifier.get_or_insert_with(|| {
                    ExportVerifier::new(key, std::mem::take(&mut checkpoints))
                });
                if !v.push(&event, seal.as_deref()) {
                    break;
                }
            }
            other => anyhow::bail!("line {}: unknown kind {other:?}", i + 2),
        }
    }
    let verifier = verifier.unwrap_or_else(|| ExportVerifier::new(key, checkpoints));
    Ok(verifier.finish())
}

/// Rebuilds one projection from zero and compares; `Ok(false)` on any difference.
/// Writes only the scratch `rb_*` tables and their checkpoint; refuses a projection that has
/// never run here (its live tables would have to be created).
pub async fn replay(config: &Config, args: &ReplayArgs) -> anyhow::Result<bool> {
    let known: Vec<String> = all_projections(Arc::new(SigningKey::from_bytes(&[0u8; 32])))
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    anyhow::ensure!(
        known.contains(&args.projection),
        "no projection named {:?} (known: {})",
        args.projection,
        known.join(", ")
    );
    let key = match crate::keys::load_existing(config.signing_key.as_ref(), &config.data_dir)? {
        Some(key) => key,
        // Rebuilding the seals signs checkpoints: that needs the deployment's private key.
        None if args.projection == audit::NAME => anyhow::bail!(
            "replaying {} needs the ledger's signing key (AGORA_LEDGER_SIGNING_KEY or the key \
             file in the data directory); none was found and none is created",
            audit::NAME
        ),
        // Only the sealing projection signs; the others never use the key.
        None => SigningKey::from_bytes(&[0u8; 32]),
    };
    let store =
        Store::connect_existing(&config.store, &PoolSizes::default(), Access::ReadWrite).await?;
    let result = replay_on(&store, args, key).await;
    store.close().await;
    result
}

async fn replay_on(store: &Store, args: &ReplayArgs, key: SigningKey) -> anyhow::Result<bool> {
    let projection = projection_named(&args.projection, Arc::new(key))
        .with_context(|| format!("no projection named {:?}", args.projection))?;
    let checkpoints: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints WHERE name = $1")
            .bind(projection.name())
            .fetch_one(store.read_models())
            .await?;
    anyhow::ensure!(
        checkpoints > 0,
        "projection {} has never run on this database: nothing to compare (its live tables are \
         created by `agora serve`, never by replay)",
        projection.name()
    );
    let comparison = rebuild_and_compare(store, projection.as_ref(), args.keep).await?;
    print_comparison(&comparison);
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
///
/// The first line is a header (`kind: header`, the format and `from`); then every signed
/// checkpoint (`kind: checkpoint`), then the events (`kind: event`). With the ledger's public
/// key, `agora verify --export FILE` recomputes the chain from the events and checks the
/// signatures, without the database. Opens the database read-only.
pub async fn export(config: &Config, args: &ExportArgs) -> anyhow::Result<()> {
    let store =
        Store::connect_existing(&config.store, &PoolSizes::default(), Access::ReadOnly).await?;
    let result = export_from(&store, args).await;
    store.close().await;
    result
}

async fn export_from(store: &Store, args: &ExportArgs) -> anyhow::Result<()> {
    let sealed = audit::has_run(store).await?;
    let checkpoints = if sealed {
        audit::signed_checkpoints(store).await?
    } else {
        Vec::new()
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let header = json!({"kind": "header", "format": EXPORT_FORMAT, "from": args.from});
    writeln!(out, "{header}")?;
    for c in &checkpoints {
        let line =
            json!({"kind": "checkpoint", "seq": c.seq, "seal": c.seal, "signature": c.signature});
        writeln!(out, "{line}")?;
    }
    let mut after = LogPosition::START;
    let mut written = 0u64;
    loop {
        let events = store.read_global_from_database(after, EXPORT_CHUNK).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        let seals = if sealed {
            seals_for(store, &events).await?
        } else {
            HashMap::new()
        };
        for e in events
            .iter()
            .filter(|e| e.position.global_position >= args.from)
        {
            let line = json!({
                "kind": "event",
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
    eprintln!(
        "exported {written} events and {} signed checkpoints",
        checkpoints.len()
    );
    Ok(())
}

async fn seals_for(store: &Store, events: &[StoredEvent]) -> anyhow::Result<HashMap<i64, String>> {
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
