//! DSSE envelopes (Dead Simple Signing Envelope, secure-systems-lab/dsse `envelope.md`) over a
//! [`CapsuleStatement`], signed with ed25519 (DESIGN.md §10).
//!
//! - payload type [`PAYLOAD_TYPE`]; payload = the statement's canonical JSON (keys in
//!   alphabetical order, no whitespace, strings only: the RFC 8785 form);
//! - each signature is ed25519 over `PAE(payloadType, payload)` =
//!   `"DSSEv1" SP len(type) SP type SP len(payload) SP payload` (lengths in ASCII decimal);
//! - envelope JSON: `{"payload": b64, "payloadType": ..., "signatures": [{"keyid", "sig": b64}]}`,
//!   standard base64 with padding (URL-safe accepted on read);
//! - a key id is the lowercase hex SHA-256 of the 32-byte ed25519 public key ([`key_id`]).
//!
//! The author signs at submission; publication adds the platform's signature to the same
//! envelope ([`add_signature`]), so `verify` with both public keys checks both offline.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::sha256_hex;

/// The DSSE payload type of a capsule statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.agora.capsule-statement+json";
/// Largest envelope accepted, in bytes.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024;
/// Most signatures in one envelope.
pub const MAX_SIGNATURES: usize = 8;

/// What is signed: a capsule version and the digests of its manifest (bytes as uploaded) and
/// bundle. Fields are in alphabetical order so serde_json writes the canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapsuleStatement {
    pub bundle_sha256: String,
    pub manifest_sha256: String,
    pub name: String,
    pub version: String,
}

impl CapsuleStatement {
    pub fn new(name: &str, version: &str, manifest_sha256: &str, bundle_sha256: &str) -> Self {
        CapsuleStatement {
            bundle_sha256: bundle_sha256.to_owned(),
            manifest_sha256: manifest_sha256.to_owned(),
            name: name.to_owned(),
            version: version.to_owned(),
        }
    }

    /// The canonical JSON bytes (the DSSE payload).
    pub fn canonical_json(&self) -> Vec<u8> {
        // Four strings into a Vec: cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

/// Why an envelope does not verify. None is retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("envelope is {size_bytes} bytes; the limit is {MAX_ENVELOPE_BYTES}")]
    EnvelopeTooLarge { size_bytes: usize },
    #[error("envelope is not DSSE JSON: {message}")]
    InvalidEnvelope { message: String },
    #[error("envelope has no signatures")]
    NoSignatures,
    #[error("envelope has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error("{field} is not valid base64")]
    BadBase64 { field: &'static str },
    #[error("payload type is {found:?}, expected {PAYLOAD_TYPE}")]
    WrongPayloadType { found: String },
    #[error("payload is not a capsule statement: {message}")]
    InvalidStatement { message: String },
    #[error("statement names another capsule version ({field} differs)")]
    StatementMismatch { field: &'static str },
    #[error("statement's {field} does not match the submitted content")]
    DigestMismatch { field: &'static str },
    #[error("no signature is by a known key (key ids: {keyids:?})")]
    UnknownKey { keyids: Vec<String> },
    #[error("signature by key {keyid} does not verify")]
    BadSignature { keyid: String },
}

/// The DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The key id of a public key: lowercase hex SHA-256 of its 32 bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())
}

/// A new envelope over `statement`, signed by `key`.
pub fn sign(statement: &CapsuleStatement, key: &SigningKey) -> Envelope {
    let mut envelope = Envelope {
        payload: STANDARD.encode(statement.canonical_json()),
        payload_type: PAYLOAD_TYPE.to_owned(),
        signatures: Vec::new(),
    };
    push_signature(&mut envelope, &statement.canonical_json(), key);
    envelope
}

/// Adds `key`'s signature to an envelope (the platform's at publication). The envelope is first
/// checked to carry a well-formed statement of the right type; an existing signature by the same
/// key is replaced.
pub fn add_signature(envelope: &mut Envelope, key: &SigningKey) -> Result<(), SignatureError> {
    let payload = decode(&envelope.payload, "payload")?;
    check_payload(envelope, &payload)?;
    let keyid = key_id(&key.verifying_key());
    envelope.signatures.retain(|s| s.keyid != keyid);
    push_signature(envelope, &payload, key);
    Ok(())
}

fn push_signature(envelope: &mut Envelope, payload: &[u8], key: &SigningKey) {
    let signature = key.sign(&pae(&envelope.payload_type, payload));
    envelope.signatures.push(EnvelopeSignature {
        keyid: key_id(&key.verifying_key()),
        sig: STANDARD.encode(signature.to_bytes()),
    });
}

impl Envelope {
    /// Reads an envelope from JSON bytes, under [`MAX_ENVELOPE_BYTES`].
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, SignatureError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(SignatureError::EnvelopeTooLarge {
                size_bytes: bytes.len(),
            });
        }
        serde_json::from_slice(bytes).map_err(|e| SignatureError::InvalidEnvelope {
            message: e.to_string(),
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The statement the envelope carries, unverified.
    pub fn statement(&self) -> Result<CapsuleStatement, SignatureError> {
        let payload = decode(&self.payload, "payload")?;
        check_payload(self, &payload)
    }
}

fn decode(text: &str, field: &'static str) -> Result<Vec<u8>, SignatureError> {
    [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or(SignatureError::BadBase64 { field })
}

fn check_payload(envelope: &Envelope, payload: &[u8]) -> Result<CapsuleStatement, SignatureError> {
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(SignatureError::WrongPayloadType {
            found: envelope.payload_type.chars().take(100).collect(),
        });
    }
    serde_json::from_slice(payload).map_err(|e| SignatureError::InvalidStatement {
        message: e.to_string(),
    })
}

/// Verifies an envelope against the statement the caller expects and the public keys it trusts
/// (by key id). Signatures by keys not in `keys` are ignored; every signature by a known key must
/// verify, and at least one must exist. Returns the key ids that verified, in envelope order, so
/// a caller can require a particular one (the platform's at publication).
pub fn verify(
    envelope: &Envelope,
    expected: &CapsuleStatement,
    keys: &BTreeMap<String, VerifyingKey>,
) -> Result<Vec<String>, SignatureError> {
    if envelope.signatures.is_empty() {
        return Err(SignatureError::NoSignatures);
    }
    if envelope.signatures.len() > MAX_SIGNATURES {
        return Err(SignatureError::TooManySignatures);
    }
    let payload = decode(&envelope.payload, "payload")?;
    let statement = check_payload(envelope, &payload)?;
    compare(&statement, expected)?;
    let message = pae(&envelope.payload_type, &payload);
    let mut verified = Vec::new();
    for s in &envelope.signatures {
        let Some(key) = keys.get(&s.keyid) else {
            continue;
        };
        let bad = || SignatureError::BadSignature {
            keyid: s.keyid.clone(),
        };
        let bytes = decode(&s.sig, "sig")?;
        let signature = Signature::from_slice(&bytes).map_err(|_| bad())?;
        key.verify_strict(&message, &signature).map_err(|_| bad())?;
        verified.push(s.keyid.clone());
    }
    if verified.is_empty() {
        return Err(SignatureError::UnknownKey {
            keyids: envelope
                .signatures
                .iter()
                .map(|s| s.keyid.clone())
                .collect(),
        });
    }
    Ok(verified)
}

fn compare(found: &CapsuleStatement, expected: &CapsuleStatement) -> Result<(), SignatureError> {
    if found.name != expected.name {
        return Err(SignatureError::StatementMismatch { field: "name" });
    }
    if found.version != expected.version {
        return Err(SignatureError::StatementMismatch { field: "version" });
    }
    if found.manifest_sha256 != expected.manifest_sha256 {
        return Err(SignatureError::DigestMismatch {
            field: "manifest_sha256",
        });
    }
    if found.bundle_sha256 != expected.bundle_sha256 {
        return Err(SignatureError::DigestMismatch {
            field: "bundle_sha256",
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
