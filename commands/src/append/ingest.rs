//! Batched ingest of records that each start their own stream (DESIGN.md §8): agent
//! executions, token usage and other high-volume facts that no command decides over.
//!
//! One call appends up to [`MAX_INGEST_BATCH`] records in one transaction, as event 1 of the
//! stream named by each record's natural id. A record sent again with the same body is a
//! no-op ([`IngestOutcome::Duplicate`]); a different body under an id already used is refused
//! ([`IngestOutcome::Conflict`]); a record that breaks a limit is refused alone
//! ([`IngestOutcome::Invalid`]). Bodies are compared by a digest stored in the event's
//! metadata (`ingest_digest`), so the comparison does not depend on how the database
//! re-encodes JSON.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use cqrs_es::{Aggregate, DomainEvent};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{Postgres, QueryBuilder, Sqlite};
use uuid::Uuid;

use super::{classify, json_size, AppendError, AppendStats, Target};
use crate::store::EVENT_ID_KEY;

/// Records in one ingest call.
pub const MAX_INGEST_BATCH: usize = 1_000;
/// Characters of a natural id.
pub const MAX_INGEST_ID_CHARS: usize = 200;
/// Estimated encoded bytes of one record's body.
pub const MAX_INGEST_RECORD_BYTES: usize = 64 * 1024;
/// Estimated bytes per `INSERT` statement; a larger call is split into several statements of
/// the same transaction.
const STATEMENT_BYTES: usize = 4 * 1024 * 1024;
/// Metadata key of a record's body digest.
pub const INGEST_DIGEST_KEY: &str = "ingest_digest";

/// One record: its natural id (the stream's aggregate id) and its event.
#[derive(Clone, Debug)]
pub struct IngestRecord<E> {
    pub id: String,
    pub event: E,
}

/// What happened to one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored now.
    Stored,
    /// Stored before with the same body: nothing written.
    Duplicate,
    /// The id is taken by a different body: nothing written.
    Conflict(String),
    /// The record breaks a limit: nothing written.
    Invalid(String),
}

impl IngestOutcome {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Stored => "STORED",
            Self::Duplicate => "DUPLICATE",
            Self::Conflict(_) => "CONFLICT",
            Self::Invalid(_) => "INVALID",
        }
    }
}

/// Why a whole call failed (nothing of it was written).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("at most {MAX_INGEST_BATCH} records per call, got {0}")]
    TooMany(usize),
    #[error(transparent)]
    Store(#[from] AppendError),
}

/// A validated record ready to insert.
struct Row {
    index: usize,
    id: String,
    event_type: String,
    event_version: String,
    payload: Value,
    metadata: Value,
    digest: String,
    bytes: usize,
}

fn digest(event_type: &str, event_version: &str, payload: &Value) -> String {
    let mut h = Sha256::new();
    h.update(event_type.as_bytes());
    h.update([0]);
    h.update(event_version.as_bytes());
    h.update([0]);
    // serde_json's maps are ordered by key: the same value always encodes the same way.
    h.update(serde_json::to_vec(payload).unwrap_or_default());
    hex::encode(h.finalize())
}

fn check_id(id: &str) -> Result<(), String> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_INGEST_ID_CHARS {
        return Err(format!(
            "the id must have 1 to {MAX_INGEST_ID_CHARS} characters, it has {chars}"
        ));
    }
    if id.chars().any(char::is_control) {
        return Err("the id contains a control character".into());
    }
    Ok(())
}

/// Ingests `records` as new streams of `A` with `metadata` (a JSON object: tenant, actor, …)
/// on every event. Outcomes are in the order of `records`.
pub async fn ingest<A: Aggregate>(
    target: &Target,
    stats: &AppendStats,
    records: Vec<IngestRecord<A::Event>>,
    metadata: &Map<String, Value>,
) -> Result<Vec<IngestOutcome>, IngestError> {
    if records.len() > MAX_INGEST_BATCH {
        return Err(IngestError::TooMany(records.len()));
    }
    let started = Instant::now();
    let mut outcomes: Vec<Option<IngestOutcome>> = vec![None; records.len()];
    // In-batch repeats: the index of the first record with the id.
    let mut first_of: HashMap<String, (usize, String)> = HashMap::new();
    let mut repeat_of: Vec<(usize, usize)> = Vec::new();
    let mut rows = Vec::with_capacity(records.len());
    for (index, record) in records.into_iter().enumerate() {
        if let Err(why) = check_id(&record.id) {
            outcomes[index] = Some(IngestOutcome::Invalid(why));
            continue;
        }
        let event_type = record.event.event_type();
        let event_version = record.event.event_version();
        let payload = match serde_json::to_value(&record.event) {
            Ok(p) => p,
            Err(e) => {
                outcomes[index] = Some(IngestOutcome::Invalid(format!("unencodable body: {e}")));
                continue;
            }
        };
        let bytes = json_size(&payload);
        if bytes > MAX_INGEST_RECORD_BYTES {
            outcomes[index] = Some(IngestOutcome::Invalid(format!(
                "the body is about {bytes} bytes, more than {MAX_INGEST_RECORD_BYTES}"
            )));
            continue;
        }
        let digest = digest(&event_type, &event_version, &payload);
        if let Some((first, first_digest)) = first_of.get(&record.id) {
            outcomes[index] = Some(if *first_digest == digest {
                repeat_of.push((index, *first));
                IngestOutcome::Duplicate
            } else {
                IngestOutcome::Conflict(
                    "the id is sent twice in the call with different bodies".into(),
                )
            });
            continue;
        }
        first_of.insert(record.id.clone(), (index, digest.clone()));
        let mut meta = metadata.clone();
        meta.insert(
            EVENT_ID_KEY.into(),
            Value::String(Uuid::now_v7().to_string()),
        );
        meta.insert(INGEST_DIGEST_KEY.into(), Value::String(digest.clone()));
        rows.push(Row {
            index,
            id: record.id,
            event_type,
            event_version,
            payload,
            metadata: Value::Object(meta),
            digest,
            bytes,
        });
    }
    let stored = match write::<A>(target, &rows).await {
        Ok(stored) => stored,
        Err(e) => return Err(IngestError::Store(classify(&e))),
    };
    for (row, found) in rows.iter().zip(stored) {
        outcomes[row.index] = Some(match found {
            None => IngestOutcome::Stored,
            Some(existing) if existing == row.digest => IngestOutcome::Duplicate,
            Some(_) => {
                IngestOutcome::Conflict("the id is already stored with a different body".into())
            }
        });
    }
    // A repeat inside the call shares the fate of the record it repeats.
    for (index, first) in repeat_of {
        if let Some(IngestOutcome::Conflict(why)) = &outcomes[first] {
            outcomes[index] = Some(IngestOutcome::Conflict(why.clone()));
        }
    }
    let outcomes: Vec<IngestOutcome> = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| IngestOutcome::Invalid("not processed".into())))
        .collect();
    for o in &outcomes {
        let counter = match o {
            IngestOutcome::Stored => &stats.ingest_stored,
            IngestOutcome::Duplicate => &stats.ingest_duplicates,
            IngestOutcome::Conflict(_) => &stats.ingest_conflicts,
            IngestOutcome::Invalid(_) => &stats.ingest_invalid,
        };
        AppendStats::add(counter, 1);
    }
    AppendStats::add(&stats.ingest_batches, 1);
    AppendStats::add(
        &stats.ingest_micros,
        usize::try_from(started.elapsed().as_micros()).unwrap_or(usize::MAX),
    );
    Ok(outcomes)
}

/// Statements of at most [`STATEMENT_BYTES`] each.
fn chunks(rows: &[Row]) -> Vec<&[Row]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in rows.iter().enumerate() {
        if i > start && bytes + r.bytes > STATEMENT_BYTES {
            out.push(&rows[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += r.bytes;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

macro_rules! insert_rows {
    ($db:ty, $aggregate_type:expr, $rows:expr) => {{
        let mut b = QueryBuilder::<$db>::new(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) ",
        );
        b.push_values($rows.iter(), |mut row, r| {
            row.push_bind($aggregate_type)
                .push_bind(r.id.as_str())
                .push_bind(1_i64)
                .push_bind(r.event_type.as_str())
                .push_bind(r.event_version.as_str())
                .push_bind(&r.payload)
                .push_bind(&r.metadata);
        });
        b.push(
            " ON CONFLICT (aggregate_type, aggregate_id, sequence) DO NOTHING \
             RETURNING aggregate_id",
        );
        b
    }};
}

/// Inserts `$rows` in statements of at most [`STATEMENT_BYTES`] through `$tx`, adding the ids
/// stored to `$inserted`; the ids skipped (already stored).
macro_rules! insert_chunks {
    ($tx:ident, $db:ty, $aggregate_type:expr, $rows:expr, $inserted:ident) => {{
        for chunk in chunks($rows) {
            let ids: Vec<String> = insert_rows!($db, $aggregate_type, chunk)
                .build_query_scalar()
                .fetch_all(&mut *$tx)
                .await?;
            $inserted.extend(ids);
        }
        $rows
            .iter()
            .filter(|r| !$inserted.contains(&r.id))
            .map(|r| r.id.as_str())
            .collect::<Vec<&str>>()
    }};
}

/// Inserts the rows in one transaction. Per row: `None` if stored now, or the digest stored
/// under its id before (empty when that stream was not ingested).
async fn write<A: Aggregate>(
    target: &Target,
    rows: &[Row],
) -> Result<Vec<Option<String>>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut inserted: HashSet<String> = HashSet::new();
    let existing: HashMap<String, String> = match target {
        Target::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let skipped = insert_chunks!(tx, Postgres, A::TYPE, rows, inserted);
            let found: Vec<(String, Option<String>)> = if skipped.is_empty() {
                Vec::new()
            } else {
                sqlx::query_as(
                    "SELECT aggregate_id, metadata->>'ingest_digest' FROM events \
                      WHERE aggregate_type = $1 AND sequence = 1 AND aggregate_id = ANY($2)",
                )
                .bind(A::TYPE)
                .bind(&skipped)
                .fetch_all(&mut *tx)
                .await?
            };
            tx.commit().await?;
            found
                .into_iter()
                .map(|(id, d)| (id, d.unwrap_or_default()))
                .collect()
        }
        Target::Sqlite(pool, gate) => {
            let _writer = gate.lock().await;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let skipped = insert_chunks!(tx, Sqlite, A::TYPE, rows, inserted);
            let mut found: Vec<(String, Option<String>)> = Vec::new();
            for part in skipped.chunks(500) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "SELECT aggregate_id, json_extract(metadata, '$.ingest_digest') FROM events \
                      WHERE aggregate_type = ",
                );
                q.push_bind(A::TYPE)
                    .push(" AND sequence = 1 AND aggregate_id IN (");
                let mut list = q.separated(", ");
                for id in part {
                    list.push_bind(*id);
                }
                q.push(")");
                found.extend(
                    q.build_query_as::<(String, Option<String>)>()
                        .fetch_all(&mut *tx)
                        .await?,
                );
            }
            tx.commit().await?;
            found
                .into_iter()
                .map(|(id, d)| (id, d.unwrap_or_default()))
                .collect()
        }
    };
    Ok(rows
        .iter()
        .map(|r| {
            if inserted.contains(&r.id) {
                None
            } else {
                Some(existing.get(&r.id).cloned().unwrap_or_default())
            }
        })
        .collect())
}
