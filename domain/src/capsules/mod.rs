//! The task-capsule registry (issue 13, DESIGN.md §10): pure rules for what an author submits
//! and what the platform decides about it. No IO: the commands layer reads the multipart upload,
//! stores the blobs (content-addressed by the digests computed here) and passes facts in.
//!
//! One file a concern:
//! - [`manifest`]: the YAML manifest, parsed by [`yaml`] into JSON under limits, validated
//!   against `docs/schemas/capsule-manifest.schema.json` (every problem with its JSON Pointer),
//!   then typed ([`manifest::Manifest`]) with its canonical JSON and SHA-256.
//! - [`permissions`]: the permission vocabulary and its tiers.
//! - [`bundle`]: safe inspection of a `.tar.gz` bundle (limits, no traversal, no links).
//! - [`sbom`]: a CycloneDX 1.6 document for a version.
//! - [`signature`]: DSSE envelopes over a [`signature::CapsuleStatement`] with ed25519.
//! - [`risk`]: the explainable risk score and the auto-approval rule.
//! - [`aggregate`]: the [`aggregate::Capsule`] aggregate (one per capsule name): submission,
//!   review, publication, deprecation and yanking.
//! - [`resolve`]: dependency resolution to one concrete version per capsule (cycles, conflicts,
//!   depth and size limits), with a deterministic graph generator for tests and the bench.
//! - [`install`]: the [`install::Installation`] aggregate (one per tenant or user and capsule):
//!   install with approved permissions and a token budget, upgrade (re-approval of added
//!   dangerous permissions), uninstall, breaking-version notices.
//! - [`community`]: the [`community::CapsuleReview`] aggregate (ratings, reviews, moderation,
//!   helpful votes), duplicate-text detection ([`community::spam`]) and the trending score
//!   ([`community::trending`]).
//! - [`collection`]: the [`collection::Collection`] aggregate (curated and user collections,
//!   featured by admins).

pub mod aggregate;
pub mod bundle;
pub mod collection;
pub mod community;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod install;
pub mod manifest;
pub mod permissions;
pub mod resolve;
pub mod risk;
pub mod sbom;
pub mod signature;
pub mod yaml;

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Shortest capsule name, in characters.
pub const MIN_NAME_CHARS: usize = 3;
/// Longest capsule name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Lowercase hex SHA-256 of `bytes`: the content address of every blob (DESIGN.md §10).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `s` is a lowercase hex SHA-256 (64 characters of `[0-9a-f]`).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why a capsule name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CapsuleNameError {
    #[error("a capsule name has {MIN_NAME_CHARS} to {MAX_NAME_CHARS} characters")]
    BadLength,
    #[error(
        "a capsule name is lowercase kebab case: [a-z] first, then [a-z0-9] words joined by single '-'"
    )]
    BadFormat,
}

/// A capsule's name and its aggregate id: lowercase kebab case, 3–64 characters, starting with a
/// letter (`data-pipeline-builder`). The same rule as the schema's `#/$defs/capsuleName`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CapsuleName(String);

impl CapsuleName {
    pub fn parse(input: &str) -> Result<CapsuleName, CapsuleNameError> {
        if !(MIN_NAME_CHARS..=MAX_NAME_CHARS).contains(&input.len()) {
            return Err(CapsuleNameError::BadLength);
        }
        let starts_with_letter = input.starts_with(|c: char| c.is_ascii_lowercase());
        let words_ok = input.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
        if !starts_with_letter || !words_ok {
            return Err(CapsuleNameError::BadFormat);
        }
        Ok(CapsuleName(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CapsuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CapsuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapsuleName({})", self.0)
    }
}

impl TryFrom<String> for CapsuleName {
    type Error = CapsuleNameError;

    fn try_from(input: String) -> Result<CapsuleName, CapsuleNameError> {
        CapsuleName::parse(&input)
    }
}

impl From<CapsuleName> for String {
    fn from(name: CapsuleName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capsule_names_are_lowercase_kebab_case() {
        assert!(CapsuleName::parse("data-pipeline-builder").is_ok());
        assert!(CapsuleName::parse("etl2").is_ok());
        assert_eq!(CapsuleName::parse("ab"), Err(CapsuleNameError::BadLength));
        assert_eq!(
            CapsuleName::parse(&"a".repeat(65)),
            Err(CapsuleNameError::BadLength)
        );
        for bad in [
            "Data-x", "9lives", "a--b", "abc-", "-abc", "a_b_c", "abc déf",
        ] {
            assert_eq!(
                CapsuleName::parse(bad),
                Err(CapsuleNameError::BadFormat),
                "{bad}"
            );
        }
    }

    #[test]
    fn digests_are_lowercase_hex_sha256() {
        let d = sha256_hex(b"abc");
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_sha256_hex(&d));
        assert!(!is_sha256_hex(&d.to_uppercase()));
        assert!(!is_sha256_hex("abc"));
    }
}
