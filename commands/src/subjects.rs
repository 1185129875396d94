//! Data subjects' keys (DESIGN.md §9): personal data (user and session ids, IP prefixes, user
//! agents, free-text feedback) goes into events sealed with its subject's key, XChaCha20-Poly1305
//! with a random 192-bit nonce; erasing the subject deletes the key, so every event that holds
//! its data keeps its bytes (the audit seal still verifies) and none can be read again.
//!
//! A subject is named by a digest of its tenant and id ([`subject_ref`]), never by the id. The
//! sealed value carries that reference and is bound to it (associated data), so a value moved to
//! another subject's record does not open. Keys live in `subject_keys` on the durable pool; an
//! erased subject keeps its row (with the time of erasure) so a later write for it is refused
//! instead of silently given a new key.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use crate::store::Store;

/// Longest plaintext sealed at once, in bytes.
pub const MAX_PLAINTEXT_BYTES: usize = 64 * 1024;
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// Why a seal or an open failed.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    /// The subject was erased: nothing more is recorded for it.
    #[error("data subject {subject} was erased at {at}")]
    Erased { subject: String, at: DateTime<Utc> },
    #[error("a sealed value holds at most {MAX_PLAINTEXT_BYTES} bytes")]
    TooLarge,
    /// The sealed value does not open with its subject's key (altered, or not that subject's).
    #[error("the sealed value does not open: {0}")]
    Tampered(String),
    #[error("subject key store: {0}")]
    Storage(#[from] sqlx::Error),
}

/// A value sealed for a subject, as stored in an event.
pub use agora_domain::executions::subject::Sealed;

/// What opening a sealed value gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    Plain(Vec<u8>),
    /// The subject was erased: the value is gone for good.
    Erased,
}

/// The reference of `tenant`'s subject `id`: hex SHA-256 of both, unambiguous.
pub fn subject_ref(tenant: &str, id: &str) -> String {
    let mut h = Sha256::new();
    h.update((tenant.len() as u64).to_be_bytes());
    h.update(tenant.as_bytes());
    h.update(id.as_bytes());
    hex::encode(h.finalize())
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// One subject's key, to seal several values without reading it again.
pub struct SubjectSealer {
    subject: String,
    key: [u8; KEY_BYTES],
}

impl SubjectSealer {
    /// Seals `plain`. With `context` (a record's unique id) the nonce is derived from the key,
    /// the context and the plaintext, so the same record sealed again gives the same bytes (the
    /// ingest path compares re-sent records by their bytes); only equal plaintexts of the same
    /// record share a nonce, and they seal to equal ciphertexts: nothing else is revealed.
    /// Without, the nonce is random.
    pub fn seal(&self, plain: &[u8], context: Option<&str>) -> Result<Sealed, SubjectError> {
        if plain.len() > MAX_PLAINTEXT_BYTES {
            return Err(SubjectError::TooLarge);
        }
        let mut nonce = [0u8; NONCE_BYTES];
        match context {
            None => rand::rngs::OsRng.fill_bytes(&mut nonce),
            Some(context) => {
                let mut h = Sha256::new();
                h.update(b"agora subject nonce v1");
                h.update(self.key);
                h.update((context.len() as u64).to_be_bytes());
                h.update(context.as_bytes());
                h.update(plain);
                nonce.copy_from_slice(&h.finalize()[..NONCE_BYTES]);
            }
        }
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.key));
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: self.subject.as_bytes(),
                },
            )
            .map_err(|e| SubjectError::Tampered(e.to_string()))?;
        Ok(Sealed {
            subject: self.subject.clone(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        })
    }
}

/// The key store.
#[derive(Clone)]
pub struct SubjectKeys {
    pool: AnyPool,
}

enum KeyState {
    Live([u8; KEY_BYTES]),
    Erased(DateTime<Utc>),
    Missing,
}

fn parse_key(hex_key: &str) -> Result<[u8; KEY_BYTES], SubjectError> {
    let bytes =
        hex::decode(hex_key).map_err(|e| SubjectError::Tampered(format!("stored key: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| SubjectError::Tampered("stored key has the wrong length".into()))
}

impl SubjectKeys {
    pub fn new(store: &Store) -> Self {
        Self {
            pool: store.durable().clone(),
        }
    }

    async fn key(&self, subject: &str) -> Result<KeyState, SubjectError> {
        let row = sqlx::query("SELECT key_hex, erased_at_us FROM subject_keys WHERE subject = $1")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(KeyState::Missing);
        };
        let key: Option<String> = row.try_get(0)?;
        let erased: Option<i64> = row.try_get(1)?;
        match (key, erased) {
            (Some(k), None) => Ok(KeyState::Live(parse_key(&k)?)),
            (_, Some(at)) => Ok(KeyState::Erased(time(at))),
            (None, None) => Err(SubjectError::Tampered(format!(
                "subject {subject} has neither a key nor an erasure"
            ))),
        }
    }

    /// The subject's key, made on first use (two writers making it at once agree on one).
    async fn key_for_sealing(&self, subject: &str) -> Result<[u8; KEY_BYTES], SubjectError> {
        match self.key(subject).await? {
            KeyState::Live(k) => return Ok(k),
            KeyState::Erased(at) => {
                return Err(SubjectError::Erased {
                    subject: subject.to_owned(),
                    at,
                })
            }
            KeyState::Missing => {}
        }
        let mut fresh = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        sqlx::query(
            "INSERT INTO subject_keys (subject, key_hex, created_at_us, erased_at_us) \
             VALUES ($1, $2, $3, NULL) ON CONFLICT (subject) DO NOTHING",
        )
        .bind(subject)
        .bind(hex::encode(fresh))
        .bind(Utc::now().timestamp_micros())
        .execute(&self.pool)
        .await?;
        match self.key(subject).await? {
            KeyState::Live(k) => Ok(k),
            KeyState::Erased(at) => Err(SubjectError::Erased {
                subject: subject.to_owned(),
                at,
            }),
            KeyState::Missing => Err(SubjectError::Tampered(format!(
                "the key of {subject} vanished as it was made"
            ))),
        }
    }

    /// The subject's sealer: its key, read (or made) once, for any number of values. Refused
    /// once the subject is erased.
    pub async fn sealer(&self, subject: &str) -> Result<SubjectSealer, SubjectError> {
        Ok(SubjectSealer {
            subject: subject.to_owned(),
            key: self.key_for_sealing(subject).await?,
        })
    }

    /// Seals `plain` for `subject` (a [`subject_ref`]) with a random nonce; refused once the
    /// subject is erased.
    pub async fn seal(&self, subject: &str, plain: &[u8]) -> Result<Sealed, SubjectError> {
        self.sealer(subject).await?.seal(plain, None)
    }

    /// Opens a sealed value: the plaintext, or [`Opened::Erased`] when its subject was erased.
    pub async fn open(&self, sealed: &Sealed) -> Result<Opened, SubjectError> {
        let key = match self.key(&sealed.subject).await? {
            KeyState::Live(k) => k,
            KeyState::Erased(_) => return Ok(Opened::Erased),
            KeyState::Missing => {
                return Err(SubjectError::Tampered(format!(
                    "no key was ever made for subject {}",
                    sealed.subject
                )))
            }
        };
        let bad = |what: &str| SubjectError::Tampered(what.to_owned());
        let nonce = hex::decode(&sealed.nonce).map_err(|_| bad("nonce is not hex"))?;
        if nonce.len() != NONCE_BYTES {
            return Err(bad("nonce has the wrong length"));
        }
        let ciphertext = hex::decode(&sealed.ciphertext).map_err(|_| bad("not hex"))?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&key));
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: sealed.subject.as_bytes(),
                },
            )
            .map(Opened::Plain)
            .map_err(|_| bad("authentication failed"))
    }

    /// Erases `subject`: deletes its key, records when. Idempotent: the first erasure's time
    /// stays. Returns that time.
    pub async fn erase(&self, subject: &str) -> Result<DateTime<Utc>, SubjectError> {
        let now = Utc::now().timestamp_micros();
        sqlx::query(
            "INSERT INTO subject_keys (subject, key_hex, created_at_us, erased_at_us) \
             VALUES ($1, NULL, $2, $2) ON CONFLICT (subject) DO UPDATE SET key_hex = NULL, \
             erased_at_us = COALESCE(subject_keys.erased_at_us, $2)",
        )
        .bind(subject)
        .bind(now)
        .execute(&self.pool)
        .await?;
        match self.key(subject).await? {
            KeyState::Erased(at) => Ok(at),
            _ => Err(SubjectError::Tampered(format!(
                "subject {subject} is still readable after its erasure"
            ))),
        }
    }
}
