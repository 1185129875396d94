//! Rebuilding a projection from position zero into fresh tables, and comparing the result with
//! the live tables at the same position of the log.

use std::sync::Arc;

use agora_commands::store::{Backend, LogPosition, Store};
use sqlx::Row;

use crate::engine::{read_checkpoint, Projection, ProjectionError, ProjectionRunner};

/// Prefix of scratch tables a rebuild writes.
pub const REBUILD_PREFIX: &str = "rb_";
/// Times a comparison re-aligns with a live projection that keeps moving.
pub const MAX_ALIGN_ATTEMPTS: u32 = 20;

/// One table's comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDiff {
    pub live_table: String,
    pub rebuilt_table: String,
    pub live_rows: i64,
    pub rebuilt_rows: i64,
    /// Rows in the live table that the rebuild does not have (exact row equality).
    pub only_live: i64,
    /// Rows the rebuild has that the live table does not.
    pub only_rebuilt: i64,
}

impl TableDiff {
    pub fn is_equal(&self) -> bool {
        self.only_live == 0 && self.only_rebuilt == 0
    }
}

/// The result of a rebuild-and-compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparison {
    pub projection: String,
    pub position: LogPosition,
    pub tables: Vec<TableDiff>,
}

impl Comparison {
    pub fn is_equal(&self) -> bool {
        self.tables.iter().all(TableDiff::is_equal)
    }
}

/// Rebuilds `live` from position zero into scratch tables, brings the rebuild to exactly the
/// live checkpoint, and compares every table row by row. The live projection may keep running:
/// the comparison reads both under one snapshot and re-aligns if the live one moved. The
/// scratch tables are dropped afterwards unless `keep` is set.
pub async fn rebuild_and_compare(
    store: &Store,
    live: &dyn Projection,
    keep: bool,
) -> Result<Comparison, ProjectionError> {
    let scratch: Arc<dyn Projection> = Arc::from(live.with_prefix(REBUILD_PREFIX));
    let checkpoint = format!("{}#rebuild", live.name());
    let runner = ProjectionRunner::with_checkpoint(store.clone(), scratch.clone(), checkpoint);
    runner.destroy().await?;
    runner.prepare().await?;
    let result = align_and_compare(store, live, &runner).await;
    if !keep {
        runner.destroy().await?;
    }
    result
}

async fn align_and_compare(
    store: &Store,
    live: &dyn Projection,
    runner: &ProjectionRunner,
) -> Result<Comparison, ProjectionError> {
    for _ in 0..MAX_ALIGN_ATTEMPTS {
        let target = read_checkpoint(store, live.name()).await?;
        runner.catch_up_until(Some(target)).await?;
        if runner.checkpoint().await? != target {
            continue;
        }
        if let Some(comparison) =
            compare_at(store, live, runner.projection().as_ref(), target).await?
        {
            return Ok(comparison);
        }
    }
    Err(ProjectionError::Handler(format!(
        "live projection {} kept moving; no stable point to compare after {MAX_ALIGN_ATTEMPTS} attempts",
        live.name()
    )))
}

/// Compares under one read snapshot, or `None` if the live checkpoint is no longer `at`.
async fn compare_at(
    store: &Store,
    live: &dyn Projection,
    rebuilt: &dyn Projection,
    at: LogPosition,
) -> Result<Option<Comparison>, ProjectionError> {
    let mut tx = store.read_models().begin().await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    let row = sqlx::query(
        "SELECT transaction_id, global_position FROM projection_checkpoints WHERE name = $1",
    )
    .bind(live.name())
    .fetch_one(&mut *tx)
    .await?;
    let now = LogPosition {
        transaction_id: row.try_get(0)?,
        global_position: row.try_get(1)?,
    };
    if now != at {
        tx.rollback().await?;
        return Ok(None);
    }
    let mut tables = Vec::new();
    for (l, r) in live.tables().iter().zip(rebuilt.tables().iter()) {
        let (a, b) = (&l.name, &r.name);
        let live_rows = count(&mut tx, &format!("SELECT COUNT(*) FROM {a}")).await?;
        let rebuilt_rows = count(&mut tx, &format!("SELECT COUNT(*) FROM {b}")).await?;
        let only_live = count(
            &mut tx,
            &format!("SELECT COUNT(*) FROM (SELECT * FROM {a} EXCEPT SELECT * FROM {b}) d"),
        )
        .await?;
        let only_rebuilt = count(
            &mut tx,
            &format!("SELECT COUNT(*) FROM (SELECT * FROM {b} EXCEPT SELECT * FROM {a}) d"),
        )
        .await?;
        tables.push(TableDiff {
            live_table: a.clone(),
            rebuilt_table: b.clone(),
            live_rows,
            rebuilt_rows,
            only_live,
            only_rebuilt,
        });
    }
    tx.rollback().await?;
    Ok(Some(Comparison {
        projection: live.name().to_string(),
        position: at,
        tables,
    }))
}

async fn count(tx: &mut sqlx::AnyConnection, sql: &str) -> Result<i64, ProjectionError> {
    Ok(sqlx::query_scalar(sql).fetch_one(&mut *tx).await?)
}
