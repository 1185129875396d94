//! The capsule registry's adapters (issue 13): GraphQL ([`gql`]), the seed's REST paths
//! ([`rest`]), the `agora verify-capsule` subcommand ([`cli`]) and the `marketplace_*` metrics
//! ([`metrics`]), over [`agora_commands::capsules::CapsuleService`] and the catalogue read model.
//!
//! Who may do what: authors (and admins) register keys, submit, deprecate and yank (their own
//! capsules; a platform admin any); platform reviewers review; every authenticated key reads
//! the catalogue; the manifest schema is public. An author is identified as `tenant/principal`,
//! so two tenants' principals of the same name never share a capsule.

pub mod cli;
pub mod collections;
pub mod demo;
pub mod demo_fixtures;
pub mod gql;
pub mod gql_collections;
pub mod gql_installs;
pub mod gql_reviews;
pub mod gql_search;
pub mod installs;
pub mod metrics;
pub mod rest;
pub mod rest_collections;
pub mod rest_installs;
pub mod rest_reviews;
pub mod reviews;
pub mod search;

use std::path::PathBuf;
use std::sync::Arc;

use agora_commands::capsules::blobs::{BlobError, BlobStore};
use agora_commands::capsules::{CapsuleService, CapsuleServiceError};
use agora_domain::access::Role;
use agora_domain::capsules::aggregate::Actor;
use agora_domain::capsules::bundle::BundleLimits;
use agora_domain::capsules::manifest::Problem;
use agora_projections::capsule_collections::{CollectionQueries, TrendingQueries};
use agora_projections::capsule_installs::CapsuleInstallQueries;
use agora_projections::capsule_reviews::CapsuleReviewQueries;
use agora_projections::capsule_search::CapsuleSearch;
use agora_projections::capsules::CapsuleQueries;
use serde::{Deserialize, Serialize};

use crate::graphql::auth::Principal;
use crate::graphql::error::ApiError;

/// Environment variable naming the blob store (`file:///srv/agora-blobs`, `memory:///`).
pub const BLOB_URL_ENV: &str = "AGORA_BLOB_URL";
/// Environment variable capping a bundle's compressed size, in bytes.
pub const BUNDLE_MAX_BYTES_ENV: &str = "AGORA_CAPSULE_BUNDLE_MAX_BYTES";
/// Largest manifest upload, in bytes (the domain's limit).
pub const MAX_MANIFEST_BYTES: usize = agora_domain::capsules::manifest::MAX_MANIFEST_BYTES;
/// Room for the multipart framing and a signature envelope, on top of bundle and manifest.
pub const MULTIPART_OVERHEAD_BYTES: usize = 32 * 1024;

/// Where blobs go and how large a bundle may be.
#[derive(Clone, Debug)]
pub struct CapsuleOptions {
    /// A blob store URL; `None`: the directory `blob_dir`.
    pub blob_url: Option<String>,
    pub blob_dir: PathBuf,
    pub bundle_limits: BundleLimits,
}

impl CapsuleOptions {
    /// Blobs under `<data_dir>/blobs` unless [`BLOB_URL_ENV`] names a store; the bundle limit
    /// from [`BUNDLE_MAX_BYTES_ENV`] (default 10 MiB). The data directory is `AGORA_DATA_DIR`
    /// (default `./data`), as for the rest of the configuration.
    pub fn from_env() -> anyhow::Result<Self> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let data_dir = PathBuf::from(
            get("AGORA_DATA_DIR").unwrap_or_else(|| crate::config::DEFAULT_DATA_DIR.into()),
        );
        let mut bundle_limits = BundleLimits::default();
        if let Some(v) = get(BUNDLE_MAX_BYTES_ENV) {
            let n: u64 = v.trim().parse().map_err(|_| {
                anyhow::anyhow!("{BUNDLE_MAX_BYTES_ENV} must be a positive number of bytes")
            })?;
            anyhow::ensure!(
                (1..=1024 * 1024 * 1024).contains(&n),
                "{BUNDLE_MAX_BYTES_ENV} must be 1..=1073741824 bytes"
            );
            bundle_limits.max_compressed_bytes = n;
        }
        Ok(Self {
            blob_url: get(BLOB_URL_ENV),
            blob_dir: data_dir.join("blobs"),
            bundle_limits,
        })
    }

    /// Blobs in `dir` with the default limits (tests).
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Self {
            blob_url: None,
            blob_dir: dir.to_path_buf(),
            bundle_limits: BundleLimits::default(),
        }
    }

    pub fn open_blobs(&self) -> Result<BlobStore, BlobError> {
        match &self.blob_url {
            Some(url) => BlobStore::from_url(url),
            None => BlobStore::local(&self.blob_dir),
        }
    }

    /// The body limit of the multipart submission route.
    pub fn max_body_bytes(&self) -> usize {
        usize::try_from(self.bundle_limits.max_compressed_bytes).unwrap_or(usize::MAX)
            + MAX_MANIFEST_BYTES
            + MULTIPART_OVERHEAD_BYTES
    }
}

/// The capsule service and its read model.
#[derive(Clone)]
pub struct CapsulesApi {
    pub service: Arc<CapsuleService>,
    pub queries: CapsuleQueries,
    pub installs: CapsuleInstallQueries,
    pub reviews: CapsuleReviewQueries,
    /// The catalogue search and its in-memory index (one per process).
    pub search: CapsuleSearch,
    pub collections: CollectionQueries,
    pub trending: TrendingQueries,
    pub metrics: metrics::CapsuleMetrics,
    /// The body limit of `POST /v1/marketplace/capsules/submit`.
    pub max_body_bytes: usize,
}

/// The author (or actor) id of a principal: `tenant/principal`.
pub fn actor_id(p: &Principal) -> String {
    format!("{}/{}", p.tenant, p.name)
}

/// The actor of a retire or review command: a tenant's admin acts as an author (its own
/// capsules only); only a platform admin overrides ownership.
pub fn actor(p: &Principal) -> Actor {
    let role = match p.role {
        Role::Admin if !p.is_platform() => Role::Author,
        r => r,
    };
    Actor {
        id: actor_id(p),
        role,
    }
}

/// A refusal as stored for idempotent replays and returned to the client: the code, the
/// message, the rule's name, and a manifest's JSON Pointer problems.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<Problem>>,
}

/// A refusal (stored as the outcome), or a failure a retry could fix (never stored).
pub fn refusal(e: CapsuleServiceError) -> Result<Refusal, ApiError> {
    match &e {
        CapsuleServiceError::Busy => return Err(ApiError::Busy(e.to_string())),
        // Retryable later: never stored as the outcome of the key.
        CapsuleServiceError::Review(
            agora_domain::capsules::community::ReviewError::RateLimited { .. },
        ) => return Err(ApiError::Throttled),
        CapsuleServiceError::Storage(detail) => {
            return Err(ApiError::internal("capsule store", detail))
        }
        _ => {}
    }
    Ok(Refusal {
        code: e.code().to_owned(),
        message: e.to_string(),
        reason: e.reason(),
        problems: e.problems().map(<[Problem]>::to_vec),
    })
}

/// A mutation's outcome: what it answered, or the refusal it was given.
pub type Outcome<T> = Result<T, Refusal>;

/// Runs `f`, keeping refusals as outcomes.
pub async fn outcome<T>(
    f: impl std::future::Future<Output = Result<T, CapsuleServiceError>>,
) -> Result<Outcome<T>, ApiError> {
    match f.await {
        Ok(v) => Ok(Ok(v)),
        Err(e) => Ok(Err(refusal(e)?)),
    }
}

/// A read failure of the catalogue.
pub fn read_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal("capsule catalogue", e)
}
