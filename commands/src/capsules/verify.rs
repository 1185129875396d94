//! Offline verification of a published capsule version (`agora verify-capsule`, GraphQL
//! `verifyCapsule`): from the event log, the blob store and public keys alone.
//!
//! Checks, each failure named: the version is published; the stored bundle and manifest still
//! hash to the digests the events recorded; the publication's DSSE envelope names exactly those
//! digests; the platform's signature verifies with the given platform public key; and when the
//! submission was signed, the author's signature verifies with the author's registered key.

use std::collections::BTreeMap;

use agora_domain::capsules::aggregate::CapsuleEvent;
use agora_domain::capsules::sha256_hex;
use agora_domain::capsules::signature::{self, CapsuleStatement, Envelope, SignatureError};
use agora_domain::capsules::CapsuleName;
use ed25519_dalek::VerifyingKey;
use semver::Version;

use super::blobs::{BlobError, BlobStore};
use super::keys::{parse_public_key, AuthorKeyEvent, AUTHOR_KEY_TYPE};
use crate::store::Store;

/// Most events of one aggregate read.
const MAX_EVENTS: i64 = 10_000;

/// What the log says about a published version.
#[derive(Clone, Debug)]
pub struct VersionFacts {
    pub name: CapsuleName,
    pub version: Version,
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    pub signer_keyid: Option<String>,
    pub envelope: Envelope,
    pub platform_keyid: String,
    pub author_keys: BTreeMap<String, VerifyingKey>,
}

/// A version that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub name: String,
    pub version: String,
    pub bundle_sha256: String,
    pub manifest_sha256: String,
    pub platform_keyid: String,
    pub author_keyid: Option<String>,
}

/// Why a version does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("{name}@{version} has no published version in the log")]
    NotPublished { name: String, version: String },
    #[error("the stored {what} changed: it hashes to {found}, the log recorded {expected}")]
    BlobChanged {
        what: &'static str,
        expected: String,
        found: String,
    },
    #[error("the stored {what} ({digest}) is missing from the blob store")]
    BlobMissing { what: &'static str, digest: String },
    #[error("the publication's envelope does not verify: {0}")]
    Signature(SignatureError),
    #[error("the envelope has no valid signature by the platform key {keyid}")]
    PlatformSignatureMissing { keyid: String },
    #[error("the envelope has no valid signature by the author's key {keyid}")]
    AuthorSignatureMissing { keyid: String },
    #[error("the platform key given ({given}) is not the one that published ({recorded})")]
    WrongPlatformKey { given: String, recorded: String },
    #[error("reading the log or the blobs failed: {0}")]
    Storage(String),
}

impl VerifyFailure {
    /// Whether the failure is about the data (a tamper or a bad signature) rather than access.
    pub fn is_tamper(&self) -> bool {
        !matches!(self, Self::Storage(_) | Self::NotPublished { .. })
    }
}

fn storage(e: impl std::fmt::Display) -> VerifyFailure {
    VerifyFailure::Storage(e.to_string())
}

async fn events_of(
    store: &Store,
    aggregate_type: &str,
    id: &str,
) -> Result<Vec<crate::store::StoredEvent>, VerifyFailure> {
    store
        .stream_events(aggregate_type, id, MAX_EVENTS)
        .await
        .map_err(storage)
}

/// Reads what the log says about `name@version` (read-only).
pub async fn facts_from_log(
    store: &Store,
    name: &CapsuleName,
    version: &Version,
) -> Result<VersionFacts, VerifyFailure> {
    let mut submitted = None;
    let mut published = None;
    for stored in events_of(store, "capsule", name.as_str()).await? {
        let event: CapsuleEvent = serde_json::from_value(stored.payload).map_err(storage)?;
        match event {
            CapsuleEvent::VersionSubmitted {
                version: v,
                signer_keyid,
                submitted_by,
                ..
            } if &v == version => submitted = Some((signer_keyid, submitted_by)),
            CapsuleEvent::VersionPublished {
                version: v,
                manifest_sha256,
                bundle_sha256,
                platform_keyid,
                envelope,
                ..
            } if &v == version => {
                published = Some((manifest_sha256, bundle_sha256, platform_keyid, envelope))
            }
            _ => {}
        }
    }
    let not_published = || VerifyFailure::NotPublished {
        name: name.to_string(),
        version: version.to_string(),
    };
    let (signer_keyid, submitted_by) = submitted.ok_or_else(not_published)?;
    let (manifest_sha256, bundle_sha256, platform_keyid, envelope) =
        published.ok_or_else(not_published)?;
    let mut author_keys = BTreeMap::new();
    for stored in events_of(store, AUTHOR_KEY_TYPE, &submitted_by).await? {
        let AuthorKeyEvent::AuthorKeyRegistered {
            keyid,
            public_key_hex,
            ..
        } = serde_json::from_value(stored.payload).map_err(storage)?;
        if let Ok(key) = parse_public_key(&public_key_hex) {
            author_keys.insert(keyid, key);
        }
    }
    Ok(VersionFacts {
        name: name.clone(),
        version: version.clone(),
        manifest_sha256,
        bundle_sha256,
        signer_keyid,
        envelope,
        platform_keyid,
        author_keys,
    })
}

async fn check_blob(
    blobs: &BlobStore,
    what: &'static str,
    digest: &str,
) -> Result<(), VerifyFailure> {
    let bytes = match blobs.get_raw(digest).await {
        Ok(b) => b,
        Err(BlobError::Missing { .. }) => {
            return Err(VerifyFailure::BlobMissing {
                what,
                digest: digest.to_owned(),
            })
        }
        Err(e) => return Err(storage(e)),
    };
    let found = sha256_hex(&bytes);
    if found != digest {
        return Err(VerifyFailure::BlobChanged {
            what,
            expected: digest.to_owned(),
            found,
        });
    }
    Ok(())
}

/// Re-hashes the stored blobs and checks both signatures with `platform_key`.
pub async fn verify(
    facts: &VersionFacts,
    blobs: &BlobStore,
    platform_key: &VerifyingKey,
) -> Result<Verified, VerifyFailure> {
    let given = signature::key_id(platform_key);
    if given != facts.platform_keyid {
        return Err(VerifyFailure::WrongPlatformKey {
            given,
            recorded: facts.platform_keyid.clone(),
        });
    }
    check_blob(blobs, "bundle", &facts.bundle_sha256).await?;
    check_blob(blobs, "manifest", &facts.manifest_sha256).await?;
    let statement = CapsuleStatement::new(
        facts.name.as_str(),
        &facts.version.to_string(),
        &facts.manifest_sha256,
        &facts.bundle_sha256,
    );
    let mut keys = facts.author_keys.clone();
    keys.insert(given.clone(), *platform_key);
    let verified =
        signature::verify(&facts.envelope, &statement, &keys).map_err(VerifyFailure::Signature)?;
    if !verified.contains(&given) {
        return Err(VerifyFailure::PlatformSignatureMissing { keyid: given });
    }
    if let Some(author) = &facts.signer_keyid {
        if !verified.contains(author) {
            return Err(VerifyFailure::AuthorSignatureMissing {
                keyid: author.clone(),
            });
        }
    }
    Ok(Verified {
        name: facts.name.to_string(),
        version: facts.version.to_string(),
        bundle_sha256: facts.bundle_sha256.clone(),
        manifest_sha256: facts.manifest_sha256.clone(),
        platform_keyid: given,
        author_keyid: facts.signer_keyid.clone(),
    })
}
