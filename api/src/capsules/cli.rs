//! `agora verify-capsule NAME@VERSION`: checks a published capsule version offline, from public
//! keys only. Opens the database read-only (like `agora verify`), reads the version's events and
//! its author's registered keys, re-hashes the stored bundle and manifest from the blob store
//! (`AGORA_BLOB_URL`, else `<AGORA_DATA_DIR>/blobs`), and verifies the author's and the
//! platform's DSSE signatures. Exit 1 naming the reason on any difference.

use agora_commands::capsules::verify::{facts_from_log, verify, VerifyFailure};
use agora_commands::capsules::{capsule_name, parse_version};
use agora_commands::{Access, PoolSizes, Store};
use agora_projections::signing_key::{self, parse_public_key};
use anyhow::Context;
use clap::Args;

use super::CapsuleOptions;
use crate::config::Config;

#[derive(Args, Clone, Debug)]
pub struct VerifyCapsuleArgs {
    /// The version to check, as NAME@VERSION (`data-pipeline-builder@1.2.3`).
    pub capsule: String,
    /// The platform's public key (64 hex characters), obtained independently of the database;
    /// without it, the key the database records is used (and trusted).
    #[arg(long)]
    pub public_key: Option<String>,
}

/// Verifies; `Ok(false)` (exit 1) when the version does not verify, naming why.
pub async fn run(config: &Config, args: &VerifyCapsuleArgs) -> anyhow::Result<bool> {
    let (name, version) = args
        .capsule
        .split_once('@')
        .context("name the version as NAME@VERSION")?;
    let name = capsule_name(name).map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = parse_version(version).map_err(|e| anyhow::anyhow!("{e}"))?;
    let blobs = CapsuleOptions::from_env()?
        .open_blobs()
        .context("opening the blob store")?;
    let store =
        Store::connect_existing(&config.store, &PoolSizes::default(), Access::ReadOnly).await?;
    let result = check(&store, &blobs, &name, &version, args.public_key.as_deref()).await;
    store.close().await;
    let outcome = result?;
    match outcome {
        Ok(ok) => {
            println!(
                "{}@{}: OK: bundle {} and manifest {} unchanged; platform signature {} verified; {}",
                ok.name,
                ok.version,
                ok.bundle_sha256,
                ok.manifest_sha256,
                ok.platform_keyid,
                match &ok.author_keyid {
                    Some(k) => format!("author signature {k} verified"),
                    None => "unsigned by its author".to_owned(),
                }
            );
            Ok(true)
        }
        Err(failure) => {
            println!("{name}@{version}: FAILED: {failure}");
            Ok(false)
        }
    }
}

async fn check(
    store: &Store,
    blobs: &agora_commands::capsules::blobs::BlobStore,
    name: &agora_domain::capsules::CapsuleName,
    version: &semver::Version,
    given: Option<&str>,
) -> anyhow::Result<Result<agora_commands::capsules::verify::Verified, VerifyFailure>> {
    let key = match given {
        Some(hex) => parse_public_key(hex.trim())
            .context("the public key must be 64 hex characters (an ed25519 public key)")?,
        None => signing_key::recorded(store)
            .await?
            .map(|(k, _)| k)
            .context("no platform public key: pass --public-key HEX (the database records none)")?,
    };
    let facts = match facts_from_log(store, name, version).await {
        Ok(f) => f,
        Err(VerifyFailure::Storage(e)) => anyhow::bail!("reading the log: {e}"),
        Err(other) => return Ok(Err(other)),
    };
    match verify(&facts, blobs, &key).await {
        Err(VerifyFailure::Storage(e)) => anyhow::bail!("reading the blobs: {e}"),
        other => Ok(other),
    }
}
