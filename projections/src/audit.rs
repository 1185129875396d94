//! Audit sealing: a hash chain over every event in global order, with checkpoints signed by the
//! ledger's ed25519 key, and the verifier that recomputes both from the log.
//!
//! `seal_n = sha256(seal_{n-1} || canonical(event_n))`, `seal_0 = sha256("agora-audit-seal-v1")`.
//! `canonical(event)` is compact JSON with object keys sorted at every level, over the event's
//! global position, aggregate, sequence, type, version, payload and metadata. Every
//! [`CHECKPOINT_INTERVAL`]-th seal is signed: the signature covers `"agora-seal:" || n || ":" ||
//! seal_n`. A change to a stored event (an `UPDATE` or `DELETE` made behind the triggers) makes
//! its recomputed seal differ from the stored one; rewriting the stored seals as well breaks the
//! signatures, which need the private key.

use std::collections::BTreeMap;
use std::sync::Arc;

use agora_commands::store::{LogPosition, Store, StoredEvent};
use async_trait::async_trait;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::engine::{read_checkpoint, Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub const NAME: &str = "audit_seal";
const VERSION: i64 = 1;
/// Every this many events, the seal is signed.
pub const CHECKPOINT_INTERVAL: i64 = 256;
/// Events read per chunk while verifying.
pub const VERIFY_CHUNK: i64 = 2_000;
const GENESIS: &[u8] = b"agora-audit-seal-v1";

const SEALS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    seq BIGINT PRIMARY KEY,
    transaction_id BIGINT NOT NULL,
    global_position BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    seal TEXT NOT NULL)"];

const CHECKPOINTS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    seq BIGINT PRIMARY KEY,
    seal TEXT NOT NULL,
    signature TEXT NOT NULL,
    public_key TEXT NOT NULL,
    sealed_event_recorded_at_us BIGINT NOT NULL)"];

/// The seal before the first event.
pub fn genesis_seal() -> [u8; 32] {
    Sha256::digest(GENESIS).into()
}

/// The next seal of the chain.
pub fn next_seal(previous: &[u8; 32], event: &StoredEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical_event(event).as_bytes());
    hasher.finalize().into()
}

/// The bytes a checkpoint signature covers.
pub fn checkpoint_message(seq: i64, seal_hex: &str) -> String {
    format!("agora-seal:{seq}:{seal_hex}")
}

/// Compact JSON of the event with keys sorted at every level.
pub fn canonical_event(event: &StoredEvent) -> String {
    let value = serde_json::json!({
        "global_position": event.position.global_position,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "sequence": event.sequence,
        "event_type": event.event_type,
        "event_version": event.event_version,
        "payload": event.payload,
        "metadata": event.metadata,
    });
    let mut out = String::new();
    write_canonical(&value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push(':');
                write_canonical(&map[*key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[derive(Clone, Debug)]
struct Tables {
    seals: String,
    checkpoints: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        Self {
            seals: format!("{prefix}audit_seals"),
            checkpoints: format!("{prefix}audit_checkpoints"),
        }
    }
}

/// The sealing projection. Holds the ledger's signing key.
#[derive(Clone)]
pub struct AuditSealProjection {
    t: Tables,
    key: Arc<SigningKey>,
}

impl AuditSealProjection {
    pub fn new(key: Arc<SigningKey>) -> Self {
        Self::with_tables(LIVE_PREFIX, key)
    }

    fn with_tables(prefix: &str, key: Arc<SigningKey>) -> Self {
        Self {
            t: Tables::new(prefix),
            key,
        }
    }

    async fn head(&self, tx: &mut ReadTx) -> Result<(i64, [u8; 32]), ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT seq, seal FROM {} ORDER BY seq DESC LIMIT 1",
            self.t.seals
        ))
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            None => Ok((0, genesis_seal())),
            Some(row) => {
                let seal: String = row.try_get("seal")?;
                Ok((row.try_get("seq")?, decode_seal(&seal)?))
            }
        }
    }
}

fn decode_seal(hex_seal: &str) -> Result<[u8; 32], ProjectionError> {
    let bytes =
        hex::decode(hex_seal).map_err(|e| ProjectionError::Corrupt(format!("seal: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| ProjectionError::Corrupt("seal is not 32 bytes".into()))
}

#[async_trait]
impl Projection for AuditSealProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            TableSpec::new(self.t.seals.clone(), SEALS_DDL),
            TableSpec::new(self.t.checkpoints.clone(), CHECKPOINTS_DDL),
        ]
    }

    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        self.apply_batch(tx, std::slice::from_ref(event)).await
    }

    async fn apply_batch(
        &self,
        tx: &mut ReadTx,
        events: &[StoredEvent],
    ) -> Result<(), ProjectionError> {
        let (mut seq, mut seal) = self.head(tx).await?;
        for event in events {
            seq += 1;
            seal = next_seal(&seal, event);
            let seal_hex = hex::encode(seal);
            sqlx::query(&format!(
                "INSERT INTO {} (seq, transaction_id, global_position, event_id, seal) VALUES ($1, $2, $3, $4, $5)",
                self.t.seals
            ))
            .bind(seq)
            .bind(event.position.transaction_id)
            .bind(event.position.global_position)
            .bind(event.meta("event_id").unwrap_or_default().to_string())
            .bind(seal_hex.clone())
            .execute(&mut *tx)
            .await?;
            if seq % CHECKPOINT_INTERVAL == 0 {
                let signature = self.key.sign(checkpoint_message(seq, &seal_hex).as_bytes());
                sqlx::query(&format!(
                    "INSERT INTO {} (seq, seal, signature, public_key, sealed_event_recorded_at_us) \
                     VALUES ($1, $2, $3, $4, $5)",
                    self.t.checkpoints
                ))
                .bind(seq)
                .bind(seal_hex)
                .bind(hex::encode(signature.to_bytes()))
                .bind(hex::encode(self.key.verifying_key().to_bytes()))
                .bind(event.recorded_at.timestamp_micros())
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(())
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::with_tables(prefix, self.key.clone()))
    }
}

/// The first place where the log and its seals disagree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The event at this place hashes to a different seal than the one stored for it: its
    /// content was changed, or an event before it was removed or inserted.
    SealMismatch {
        seq: i64,
        position: LogPosition,
        event_id: String,
        event_type: String,
        aggregate: String,
    },
    /// The stored seals name an event that is no longer in the log.
    EventMissing {
        seq: i64,
        sealed_position: i64,
        event_id: String,
    },
    /// A signed checkpoint does not verify with the ledger's public key, or does not match the
    /// recomputed chain.
    BadCheckpoint { seq: i64, reason: String },
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SealMismatch {
                seq,
                position,
                event_id,
                event_type,
                aggregate,
            } => write!(
                f,
                "event #{seq} (global position {}, id {event_id}, {event_type} on {aggregate}) does not match its seal",
                position.global_position
            ),
            Self::EventMissing {
                seq,
                sealed_position,
                event_id,
            } => write!(
                f,
                "event #{seq} (global position {sealed_position}, id {event_id}) is sealed but missing from the log"
            ),
            Self::BadCheckpoint { seq, reason } => write!(f, "signed checkpoint #{seq}: {reason}"),
        }
    }
}

/// What verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events whose recomputed seal matched.
    pub verified_events: i64,
    /// Signed checkpoints whose signature and seal matched.
    pub verified_checkpoints: i64,
    /// Events in the log after the last sealed one (not yet sealed by the projection).
    pub unsealed_events: i64,
    pub failure: Option<VerifyFailure>,
}

struct SealRow {
    seq: i64,
    transaction_id: i64,
    global_position: i64,
    event_id: String,
    seal: String,
}

/// Recomputes the chain over the whole log and compares it with the stored seals and signed
/// checkpoints. Stops at the first difference. Read errors are errors, never a pass.
pub async fn verify(store: &Store, key: &VerifyingKey) -> Result<VerifyReport, ProjectionError> {
    let pool = store.read_models();
    let sealed_to = read_checkpoint(store, NAME).await?;
    let mut report = VerifyReport {
        verified_events: 0,
        verified_checkpoints: 0,
        unsealed_events: 0,
        failure: None,
    };
    let mut seal = genesis_seal();
    let mut seq = 0i64;
    let mut after = LogPosition::START;
    loop {
        let events = store.read_global_from_database(after, VERIFY_CHUNK).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        let seals = load_seals(pool, seq, events.len() as i64).await?;
        for event in &events {
            if event.position > sealed_to {
                report.unsealed_events += 1;
                continue;
            }
            seq += 1;
            seal = next_seal(&seal, event);
            let stored = seals.iter().find(|s| s.seq == seq);
            let matches = stored.is_some_and(|s| {
                s.seal == hex::encode(seal) && s.global_position == event.position.global_position
            });
            if !matches {
                report.failure = Some(mismatch_or_missing(seq, event, stored));
                return Ok(report);
            }
            report.verified_events += 1;
        }
    }
    // A seal past the last recomputed event, inside the sealed range, names a deleted event.
    let leftover = load_seals(pool, seq, 1).await?.into_iter().next();
    if let Some(row) = leftover.filter(|r| {
        LogPosition {
            transaction_id: r.transaction_id,
            global_position: r.global_position,
        } <= sealed_to
    }) {
        report.failure = Some(VerifyFailure::EventMissing {
            seq: row.seq,
            sealed_position: row.global_position,
            event_id: row.event_id,
        });
        return Ok(report);
    }
    verify_checkpoints(store, key, &mut report).await?;
    Ok(report)
}

fn mismatch_or_missing(seq: i64, event: &StoredEvent, stored: Option<&SealRow>) -> VerifyFailure {
    match stored {
        Some(s) if s.global_position < event.position.global_position => {
            VerifyFailure::EventMissing {
                seq,
                sealed_position: s.global_position,
                event_id: s.event_id.clone(),
            }
        }
        _ => VerifyFailure::SealMismatch {
            seq,
            position: event.position,
            event_id: event.meta("event_id").unwrap_or_default().to_string(),
            event_type: event.event_type.clone(),
            aggregate: format!("{}/{}", event.aggregate_type, event.aggregate_id),
        },
    }
}

async fn load_seals(
    pool: &sqlx::AnyPool,
    after_seq: i64,
    n: i64,
) -> Result<Vec<SealRow>, ProjectionError> {
    let rows = sqlx::query(&format!(
        "SELECT seq, transaction_id, global_position, event_id, seal FROM {LIVE_PREFIX}audit_seals \
          WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(after_seq)
    .bind(n)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SealRow {
                seq: r.try_get("seq")?,
                transaction_id: r.try_get("transaction_id")?,
                global_position: r.try_get("global_position")?,
                event_id: r.try_get("event_id")?,
                seal: r.try_get("seal")?,
            })
        })
        .collect()
}

/// Every signed checkpoint must verify with `key` and equal the stored (already recomputed and
/// matched) seal at its place.
async fn verify_checkpoints(
    store: &Store,
    key: &VerifyingKey,
    report: &mut VerifyReport,
) -> Result<(), ProjectionError> {
    let rows = sqlx::query(&format!(
        "SELECT c.seq, c.seal, c.signature, s.seal AS chain_seal FROM {LIVE_PREFIX}audit_checkpoints c \
           LEFT JOIN {LIVE_PREFIX}audit_seals s ON s.seq = c.seq ORDER BY c.seq"
    ))
    .fetch_all(store.read_models())
    .await?;
    let expected = report.verified_events / CHECKPOINT_INTERVAL;
    if rows.len() as i64 != expected {
        report.failure = Some(VerifyFailure::BadCheckpoint {
            seq: 0,
            reason: format!(
                "expected {expected} signed checkpoints, found {}",
                rows.len()
            ),
        });
        return Ok(());
    }
    for row in rows {
        let seq: i64 = row.try_get("seq")?;
        let seal: String = row.try_get("seal")?;
        let chain: Option<String> = row.try_get("chain_seal")?;
        let signature: String = row.try_get("signature")?;
        if chain.as_deref() != Some(seal.as_str()) {
            report.failure = Some(VerifyFailure::BadCheckpoint {
                seq,
                reason: "signed seal differs from the chain".into(),
            });
            return Ok(());
        }
        if !signature_verifies(key, seq, &seal, &signature) {
            report.failure = Some(VerifyFailure::BadCheckpoint {
                seq,
                reason: "signature does not verify with the ledger's public key".into(),
            });
            return Ok(());
        }
        report.verified_checkpoints += 1;
    }
    Ok(())
}

/// True when the sealing projection has run on this database (it has a checkpoint). Read-only.
pub async fn has_run(store: &Store) -> Result<bool, ProjectionError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints WHERE name = $1")
        .bind(NAME)
        .fetch_one(store.read_models())
        .await?;
    Ok(n > 0)
}

/// A signed checkpoint as `agora export` writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    pub seq: i64,
    pub seal: String,
    pub signature: String,
}

/// Every signed checkpoint, in order. Read-only.
pub async fn signed_checkpoints(store: &Store) -> Result<Vec<SignedCheckpoint>, ProjectionError> {
    let rows = sqlx::query(&format!(
        "SELECT seq, seal, signature FROM {LIVE_PREFIX}audit_checkpoints ORDER BY seq"
    ))
    .fetch_all(store.read_models())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SignedCheckpoint {
                seq: r.try_get("seq")?,
                seal: r.try_get("seal")?,
                signature: r.try_get("signature")?,
            })
        })
        .collect()
}

fn signature_verifies(key: &VerifyingKey, seq: i64, seal: &str, signature: &str) -> bool {
    hex::decode(signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .is_some_and(|sig| {
            key.verify(checkpoint_message(seq, seal).as_bytes(), &sig)
                .is_ok()
        })
}

/// Verifies an exported log with the public key only: the events are fed in global order from
/// the first, each with the seal the export carries (`None`: not sealed yet). The chain is
/// recomputed from the events; every stored seal must equal it, and every signed checkpoint
/// must sign the recomputed seal at its place. A checkpoint past the last exported sealed event
/// means the export was cut short; a missing one, that checkpoints were removed.
pub struct ExportVerifier<'k> {
    key: &'k VerifyingKey,
    checkpoints: BTreeMap<i64, SignedCheckpoint>,
    seal: [u8; 32],
    seq: i64,
    report: VerifyReport,
}

impl<'k> ExportVerifier<'k> {
    pub fn new(key: &'k VerifyingKey, checkpoints: Vec<SignedCheckpoint>) -> Self {
        Self {
            key,
            checkpoints: checkpoints.into_iter().map(|c| (c.seq, c)).collect(),
            seal: genesis_seal(),
            seq: 0,
            report: VerifyReport {
                verified_events: 0,
                verified_checkpoints: 0,
                unsealed_events: 0,
                failure: None,
            },
        }
    }

    /// Feeds the next event; false once a difference was found (then stop feeding).
    pub fn push(&mut self, event: &StoredEvent, stored_seal: Option<&str>) -> bool {
        if self.report.failure.is_some() {
            return false;
        }
        let Some(stored) = stored_seal else {
            self.report.unsealed_events += 1;
            return true;
        };
        if self.report.unsealed_events > 0 {
            self.fail(VerifyFailure::BadCheckpoint {
                seq: self.seq + 1,
                reason: "a sealed event follows an unsealed one: the export is out of order".into(),
            });
            return false;
        }
        self.seq += 1;
        self.seal = next_seal(&self.seal, event);
        let seal_hex = hex::encode(self.seal);
        if stored != seal_hex {
            self.fail(mismatch_or_missing(self.seq, event, None));
            return false;
        }
        self.report.verified_events += 1;
        if self.seq % CHECKPOINT_INTERVAL == 0 {
            let Some(c) = self.checkpoints.get(&self.seq) else {
                let seq = self.seq;
                self.fail(VerifyFailure::BadCheckpoint {
                    seq,
                    reason: "signed checkpoint missing from the export".into(),
                });
                return false;
            };
            let ok =
                c.seal == seal_hex && signature_verifies(self.key, c.seq, &c.seal, &c.signature);
            if !ok {
                let seq = self.seq;
                self.fail(VerifyFailure::BadCheckpoint {
                    seq,
                    reason: "signature does not verify with the ledger's public key, or signs \
                             another seal"
                        .into(),
                });
                return false;
            }
            self.report.verified_checkpoints += 1;
        }
        true
    }

    fn fail(&mut self, failure: VerifyFailure) {
        self.report.failure = Some(failure);
    }

    /// The report; checks that no signed checkpoint lies past the exported events.
    pub fn finish(mut self) -> VerifyReport {
        if self.report.failure.is_none() {
            if let Some((&seq, _)) = self.checkpoints.range(self.seq + 1..).next() {
                self.fail(VerifyFailure::BadCheckpoint {
                    seq,
                    reason: format!(
                        "signed checkpoint past the last exported sealed event (#{}): the \
                         export is incomplete",
                        self.seq
                    ),
                });
            }
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn event(payload: Value) -> StoredEvent {
        StoredEvent {
            position: LogPosition::sqlite(1),
            aggregate_type: "t".into(),
            aggregate_id: "a".into(),
            sequence: 1,
            event_type: "E".into(),
            event_version: "1.0".into(),
            payload,
            metadata: json!({"z": 1, "a": {"y": [2, {"b": 1, "a": 0}], "x": "s"}}),
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_level() {
        let c = canonical_event(&event(json!({"b": 1, "a": "x"})));
        assert!(c.starts_with(r#"{"aggregate_id":"a","aggregate_type":"t","event_type":"E""#));
        assert!(c.contains(r#""metadata":{"a":{"x":"s","y":[2,{"a":0,"b":1}]},"z":1}"#));
        assert!(c.contains(r#""payload":{"a":"x","b":1}"#));
    }

    fn chain(n: i64, key: &SigningKey) -> (Vec<(StoredEvent, String)>, Vec<SignedCheckpoint>) {
        let mut seal = genesis_seal();
        let mut events = Vec::new();
        let mut checkpoints = Vec::new();
        for i in 1..=n {
            let mut e = event(json!({ "i": i }));
            e.position = LogPosition::sqlite(i);
            seal = next_seal(&seal, &e);
            let hex_seal = hex::encode(seal);
            if i % CHECKPOINT_INTERVAL == 0 {
                let signature = key.sign(checkpoint_message(i, &hex_seal).as_bytes());
                checkpoints.push(SignedCheckpoint {
                    seq: i,
                    seal: hex_seal.clone(),
                    signature: hex::encode(signature.to_bytes()),
                });
            }
            events.push((e, hex_seal));
        }
        (events, checkpoints)
    }

    fn run(
        events: &[(StoredEvent, String)],
        checkpoints: Vec<SignedCheckpoint>,
        key: &VerifyingKey,
    ) -> VerifyReport {
        let mut v = ExportVerifier::new(key, checkpoints);
        for (e, s) in events {
            if !v.push(e, Some(s)) {
                break;
            }
        }
        v.finish()
    }

    #[test]
    fn an_export_verifies_with_the_public_key_only_and_tampering_is_named() {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let public = key.verifying_key();
        let (events, checkpoints) = chain(600, &key);
        let report = run(&events, checkpoints.clone(), &public);
        assert_eq!(report.failure, None);
        assert_eq!(
            (report.verified_events, report.verified_checkpoints),
            (600, 2)
        );

        let other = SigningKey::from_bytes(&[6u8; 32]).verifying_key();
        let report = run(&events, checkpoints.clone(), &other);
        assert!(matches!(
            report.failure,
            Some(VerifyFailure::BadCheckpoint { seq: 256, .. })
        ));

        let mut changed = events.clone();
        changed[99].0.payload = json!({ "i": "forged" });
        let report = run(&changed, checkpoints.clone(), &public);
        assert!(matches!(
            report.failure,
            Some(VerifyFailure::SealMismatch { seq: 100, .. })
        ));

        let report = run(&events[..300], vec![checkpoints[0].clone()], &public);
        assert_eq!(report.failure, None, "a consistent older export verifies");
        let report = run(&events[..400], checkpoints.clone(), &public);
        assert!(matches!(
            report.failure,
            Some(VerifyFailure::BadCheckpoint { seq: 512, .. })
        ));
        let report = run(&events, vec![checkpoints[1].clone()], &public);
        assert!(matches!(
            report.failure,
            Some(VerifyFailure::BadCheckpoint { seq: 256, .. })
        ));
    }

    #[test]
    fn any_change_changes_the_seal() {
        let g = genesis_seal();
        let a = next_seal(&g, &event(json!({"amount": "1.00"})));
        assert_eq!(a, next_seal(&g, &event(json!({"amount": "1.00"}))));
        assert_ne!(a, next_seal(&g, &event(json!({"amount": "1.01"}))));
        let mut moved = event(json!({"amount": "1.00"}));
        moved.position = LogPosition::sqlite(2);
        assert_ne!(a, next_seal(&g, &moved));
        assert_ne!(
            next_seal(&a, &event(json!({}))),
            next_seal(&g, &event(json!({})))
        );
    }
}
