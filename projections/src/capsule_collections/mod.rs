//! The collections read model: every collection (`rm_capsule_collections`) and its capsules in
//! the order added (`rm_capsule_collection_items`), a dumb fold of the `capsule_collection`
//! events; and [`trending`], the trending list computed from the installs and ratings read
//! models over the domain's window.

pub mod trending;

use agora_commands::store::StoredEvent;
use agora_domain::capsules::collection::{CollectionEvent, CollectionKind};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::{AnyPool, Row};

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub use trending::TrendingQueries;

pub const NAME: &str = "capsule_collections";
const VERSION: i64 = 1;
/// Most collections one list returns.
pub const MAX_PAGE: i64 = 100;

const COLLECTIONS_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    owner TEXT NOT NULL,
    featured BIGINT NOT NULL,
    capsule_count BIGINT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {t}_featured ON {t} (featured, updated_at_us)",
    "CREATE INDEX IF NOT EXISTS {t}_owner ON {t} (owner, created_at_us)",
];

const ITEMS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    id TEXT NOT NULL,
    capsule TEXT NOT NULL,
    position BIGINT NOT NULL,
    added_at_us BIGINT NOT NULL,
    PRIMARY KEY (id, capsule))"];

#[derive(Clone, Debug)]
struct Tables {
    collections: String,
    items: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        Self {
            collections: format!("{prefix}capsule_collections"),
            items: format!("{prefix}capsule_collection_items"),
        }
    }
}

/// The collections projection.
#[derive(Clone, Debug)]
pub struct CapsuleCollectionProjection {
    t: Tables,
}

impl Default for CapsuleCollectionProjection {
    fn default() -> Self {
        Self::new(LIVE_PREFIX)
    }
}

impl CapsuleCollectionProjection {
    pub fn new(prefix: &str) -> Self {
        Self {
            t: Tables::new(prefix),
        }
    }

    async fn touch(
        &self,
        tx: &mut ReadTx,
        id: &str,
        set: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "UPDATE {} SET {set}, updated_at_us = $1 WHERE id = $2",
            self.t.collections
        ))
        .bind(at.timestamp_micros())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Projection for CapsuleCollectionProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            TableSpec::new(self.t.collections.clone(), COLLECTIONS_DDL),
            TableSpec::new(self.t.items.clone(), ITEMS_DDL),
        ]
    }

    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "capsule_collection" {
            return Ok(());
        }
        let decoded: CollectionEvent = serde_json::from_value(event.payload.clone())
            .map_err(|e| ProjectionError::decode(event, e))?;
        let id = event.aggregate_id.as_str();
        match decoded {
            CollectionEvent::CollectionCreated {
                kind,
                title,
                description,
                owner,
                occurred_at,
            } => {
                let kind = match kind {
                    CollectionKind::Curated => "curated",
                    CollectionKind::UserCreated => "user",
                };
                sqlx::query(&format!(
                    "INSERT INTO {} (id, kind, title, description, owner, featured, \
                     capsule_count, created_at_us, updated_at_us) \
                     VALUES ($1, $2, $3, $4, $5, 0, 0, $6, $6) ON CONFLICT (id) DO NOTHING",
                    self.t.collections
                ))
                .bind(id)
                .bind(kind)
                .bind(title.as_str())
                .bind(&description)
                .bind(&owner)
                .bind(occurred_at.timestamp_micros())
                .execute(&mut *tx)
                .await?;
            }
            CollectionEvent::CapsuleAdded {
                capsule,
                occurred_at,
                ..
            } => {
                let position: i64 = sqlx::query_scalar(&format!(
                    "SELECT COALESCE(MAX(position), 0) + 1 FROM {} WHERE id = $1",
                    self.t.items
                ))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(&format!(
                    "INSERT INTO {} (id, capsule, position, added_at_us) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id, capsule) DO NOTHING",
                    self.t.items
                ))
                .bind(id)
                .bind(capsule.as_str())
                .bind(position)
                .bind(occurred_at.timestamp_micros())
                .execute(&mut *tx)
                .await?;
                self.touch(tx, id, "capsule_count = capsule_count + 1", occurred_at)
                    .await?;
            }
            CollectionEvent::CapsuleRemoved {
                capsule,
                occurred_at,
                ..
            } => {
                sqlx::query(&format!(
                    "DELETE FROM {} WHERE id = $1 AND capsule = $2",
                    self.t.items
                ))
                .bind(id)
                .bind(capsule.as_str())
                .execute(&mut *tx)
                .await?;
                self.touch(tx, id, "capsule_count = capsule_count - 1", occurred_at)
                    .await?;
            }
            CollectionEvent::CollectionRenamed {
                to, occurred_at, ..
            } => {
                sqlx::query(&format!(
                    "UPDATE {} SET title = $1, updated_at_us = $2 WHERE id = $3",
                    self.t.collections
                ))
                .bind(to.as_str())
                .bind(occurred_at.timestamp_micros())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            CollectionEvent::CollectionFeatured { occurred_at, .. } => {
                self.touch(tx, id, "featured = 1", occurred_at).await?;
            }
            CollectionEvent::CollectionUnfeatured { occurred_at, .. } => {
                self.touch(tx, id, "featured = 0", occurred_at).await?;
            }
        }
        Ok(())
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::new(prefix))
    }
}

/// A collection as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionRow {
    pub id: String,
    /// `curated` or `user`.
    pub kind: String,
    pub title: String,
    pub description: String,
    pub owner: String,
    pub featured: bool,
    pub capsule_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

fn collection_row(r: &sqlx::any::AnyRow) -> Result<CollectionRow, ProjectionError> {
    Ok(CollectionRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        title: r.try_get(2)?,
        description: r.try_get(3)?,
        owner: r.try_get(4)?,
        featured: r.try_get::<i64, _>(5)? != 0,
        capsule_count: r.try_get(6)?,
        created_at: time(r.try_get(7)?),
        updated_at: time(r.try_get(8)?),
    })
}

const COLUMNS: &str =
    "id, kind, title, description, owner, featured, capsule_count, created_at_us, updated_at_us";

/// Which collections a list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectionFilter {
    /// Only featured ones (the home page).
    pub featured_only: bool,
    /// Only this owner's.
    pub owner: Option<String>,
    /// Only `curated` or `user` ones.
    pub kind: Option<String>,
}

/// Reads of the collections.
#[derive(Clone)]
pub struct CollectionQueries {
    pool: AnyPool,
    t: Tables,
}

impl CollectionQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            t: Tables::new(LIVE_PREFIX),
        }
    }

    /// Collections, most recently changed first; `offset` pages. Empty collections are listed
    /// only to their owner's filter.
    pub async fn list(
        &self,
        filter: &CollectionFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<CollectionRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {} WHERE ($1 = 0 OR featured = 1) \
             AND ($2 = '' OR owner = $2) AND ($3 = '' OR kind = $3) \
             AND ($2 <> '' OR capsule_count > 0) \
             ORDER BY updated_at_us DESC, id LIMIT $4 OFFSET $5",
            self.t.collections
        ))
        .bind(i64::from(filter.featured_only))
        .bind(filter.owner.clone().unwrap_or_default())
        .bind(filter.kind.clone().unwrap_or_default())
        .bind(limit.clamp(1, MAX_PAGE))
        .bind(offset.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(collection_row).collect()
    }

    /// One collection and its capsules in the order added.
    pub async fn get(
        &self,
        id: &str,
    ) -> Result<Option<(CollectionRow, Vec<String>)>, ProjectionError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {} WHERE id = $1",
            self.t.collections
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let capsules: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT capsule FROM {} WHERE id = $1 ORDER BY position",
            self.t.items
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((collection_row(&row)?, capsules)))
    }
}
