//! The deployment's ledger signing key, recorded by its public half in `ledger_signing_key`
//! (migration 0005). Every process of one deployment signs audit checkpoints with the same key:
//! the first to start records it, any other refuses to start with a different one. An auditor
//! who trusts the database can take the public key from there; `agora verify --public-key` is
//! the independent way.

use agora_commands::store::Store;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// Hex characters of a key fingerprint.
pub const FINGERPRINT_HEX_CHARS: usize = 16;

/// Why the recorded key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(
        "this process's ledger signing key (fingerprint {ours}) is not the deployment's \
         (fingerprint {recorded}, recorded in the database at {recorded_at}): every process of \
         one deployment must use the same key (set AGORA_LEDGER_SIGNING_KEY or copy the key \
         file from the first process; see docs/OPERATIONS.md)"
    )]
    Mismatch {
        ours: String,
        recorded: String,
        recorded_at: String,
    },
    #[error("the recorded ledger public key {0:?} is not a valid ed25519 public key")]
    Corrupt(String),
    #[error("reading or recording the ledger public key: {0}")]
    Database(#[from] sqlx::Error),
}

/// A short, stable name of a public key: the first 16 hex characters of its SHA-256.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let digest = hex::encode(Sha256::digest(key.to_bytes()));
    digest[..FINGERPRINT_HEX_CHARS].to_string()
}

/// Records `key` as the deployment's key if none is recorded yet; otherwise checks that it is
/// the recorded one. Returns true when this call recorded it.
pub async fn record_or_check(store: &Store, key: &VerifyingKey) -> Result<bool, SigningKeyError> {
    let ours = hex::encode(key.to_bytes());
    let inserted = sqlx::query(
        "INSERT INTO ledger_signing_key (id, public_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
    )
    .bind(ours.clone())
    .execute(store.read_models())
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(true);
    }
    match recorded(store).await? {
        Some((recorded, _)) if recorded == *key => Ok(false),
        Some((recorded, recorded_at)) => Err(SigningKeyError::Mismatch {
            ours: fingerprint(key),
            recorded: fingerprint(&recorded),
            recorded_at,
        }),
        None => Err(SigningKeyError::Corrupt(String::new())),
    }
}

/// The recorded public key and when it was recorded, if any. Read-only.
pub async fn recorded(store: &Store) -> Result<Option<(VerifyingKey, String)>, SigningKeyError> {
    let row = sqlx::query(
        "SELECT public_key, CAST(recorded_at AS TEXT) AS recorded_at FROM ledger_signing_key WHERE id = 1",
    )
    .fetch_optional(store.read_models())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let text: String = row.try_get("public_key")?;
    let recorded_at: String = row.try_get("recorded_at")?;
    Ok(Some((parse_public_key(&text)?, recorded_at)))
}

/// A public key from 64 hex characters.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SigningKeyError> {
    let bad = || SigningKeyError::Corrupt(text.to_string());
    let bytes: [u8; 32] = hex::decode(text.trim())
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn fingerprints_are_short_and_distinct() {
        let a = SigningKey::from_bytes(&[1u8; 32]).verifying_key();
        let b = SigningKey::from_bytes(&[2u8; 32]).verifying_key();
        assert_eq!(fingerprint(&a).len(), FINGERPRINT_HEX_CHARS);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(parse_public_key(&hex::encode(a.to_bytes())).unwrap(), a);
        assert!(parse_public_key("zz").is_err());
    }
}
