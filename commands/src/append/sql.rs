//! The append statements per backend: one multi-row `INSERT` for a whole batch, and the
//! snapshot rows of the commits that carry one, in one transaction.

use std::collections::HashSet;

use sqlx::{Postgres, QueryBuilder, Sqlite};

use super::{Commit, Target};

const INSERT_EVENTS: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, \
                             event_type, event_version, payload, metadata) ";
/// A snapshot at a sequence is a function of the events up to it: a second writer of the same
/// row (impossible once the events' primary key admitted this commit) changes nothing.
const INSERT_SNAPSHOT: &str = "
INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
const DELETE_OLDER_SNAPSHOTS: &str = "
DELETE FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2 AND last_sequence < $3";
const ON_CONFLICT_SKIP: &str = " ON CONFLICT (aggregate_type, aggregate_id, sequence) DO NOTHING \
                                RETURNING aggregate_type, aggregate_id, sequence";

/// A stored row's key: (aggregate type, aggregate id, sequence).
pub type RowKey = (String, String, i64);

/// What a probing insert found.
pub enum Probe {
    /// Every row was stored and committed.
    Stored,
    /// These rows' keys already existed: nothing was stored (the transaction was rolled back).
    Skipped(HashSet<RowKey>),
}

/// The `INSERT` of every event of `commits` (binds are pushed per backend by the macro, as
/// the two `QueryBuilder`s are different types).
macro_rules! insert_events {
    ($db:ty, $commits:expr) => {{
        let mut builder = QueryBuilder::<$db>::new(INSERT_EVENTS);
        let rows = $commits
            .iter()
            .flat_map(|c| c.events.iter().map(move |e| (c.aggregate_type, e)));
        builder.push_values(rows, |mut row, (aggregate_type, e)| {
            row.push_bind(aggregate_type)
                .push_bind(e.aggregate_id.as_str())
                .push_bind(e.sequence as i64)
                .push_bind(e.event_type.as_str())
                .push_bind(e.event_version.as_str())
                .push_bind(&e.payload)
                .push_bind(&e.metadata);
        });
        builder
    }};
}

/// The snapshot rows of `commits`, through `$tx`.
macro_rules! write_snapshots {
    ($tx:expr, $commits:expr) => {{
        for c in $commits.iter() {
            let Some(s) = &c.snapshot else { continue };
            sqlx::query(INSERT_SNAPSHOT)
                .bind(c.aggregate_type)
                .bind(&s.aggregate_id)
                .bind(s.last_sequence)
                .bind(s.current_snapshot)
                .bind(&s.payload)
                .execute(&mut *$tx)
                .await?;
            sqlx::query(DELETE_OLDER_SNAPSHOTS)
                .bind(c.aggregate_type)
                .bind(&s.aggregate_id)
                .bind(s.last_sequence)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

/// In transaction `$tx`: inserts skipping existing keys; commits with the snapshots if every
/// row went in, else rolls back and names the keys that exist.
macro_rules! probe_in {
    ($tx:ident, $db:ty, $commits:expr, $expected:expr, $all_keys:expr) => {{
        let mut $tx = $tx;
        let mut builder = insert_events!($db, $commits);
        builder.push(ON_CONFLICT_SKIP);
        let stored: Vec<RowKey> = builder.build_query_as().fetch_all(&mut *$tx).await?;
        if stored.len() == $expected {
            write_snapshots!($tx, $commits);
            $tx.commit().await?;
            return Ok(Probe::Stored);
        }
        $tx.rollback().await?;
        let stored: HashSet<RowKey> = stored.into_iter().collect();
        Ok(Probe::Skipped(
            $all_keys().filter(|k| !stored.contains(k)).collect(),
        ))
    }};
}

/// Appends every commit's events (and snapshots) at once; a duplicate key anywhere fails the
/// whole statement with a unique violation and stores nothing. PostgreSQL without snapshots
/// sends the one statement alone (atomic by itself: no BEGIN/COMMIT round trips).
pub async fn insert_all(target: &Target, commits: &[&Commit]) -> Result<(), sqlx::Error> {
    let snapshots = commits.iter().any(|c| c.snapshot.is_some());
    match target {
        Target::Postgres(pool) if !snapshots => {
            insert_events!(Postgres, commits)
                .build()
                .execute(pool)
                .await?;
            Ok(())
        }
        Target::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            insert_events!(Postgres, commits)
                .build()
                .execute(&mut *tx)
                .await?;
            write_snapshots!(tx, commits);
            tx.commit().await
        }
        Target::Sqlite(pool, gate) => {
            let _writer = gate.lock().await;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            insert_events!(Sqlite, commits)
                .build()
                .execute(&mut *tx)
                .await?;
            write_snapshots!(tx, commits);
            tx.commit().await
        }
    }
}

/// Appends the commits' events skipping rows whose key exists. If every row went in, writes
/// the snapshots and commits; otherwise rolls back and names the keys that exist, so the
/// caller can refuse exactly the commits whose stream moved.
pub async fn insert_probing(target: &Target, commits: &[&Commit]) -> Result<Probe, sqlx::Error> {
    let expected: usize = commits.iter().map(|c| c.events.len()).sum();
    let all_keys = || {
        commits.iter().flat_map(|c| {
            c.events.iter().map(move |e| {
                (
                    c.aggregate_type.to_owned(),
                    e.aggregate_id.clone(),
                    e.sequence as i64,
                )
            })
        })
    };
    match target {
        Target::Postgres(pool) => {
            let tx = pool.begin().await?;
            probe_in!(tx, Postgres, commits, expected, all_keys)
        }
        Target::Sqlite(pool, gate) => {
            let _writer = gate.lock().await;
            let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            probe_in!(tx, Sqlite, commits, expected, all_keys)
        }
    }
}
