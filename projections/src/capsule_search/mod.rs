//! Capsule search. Two parts:
//!
//! - the **search documents** read model (this module): for every capsule with a published,
//!   unyanked version, the text a search matches (name, description, tags, category) and the
//!   filters (category, permissions) of its highest such version, each change numbered by a
//!   per-table `seq`. A dumb, checkpointed, rebuildable fold of the `capsule` events.
//! - the **index** ([`index`]): an in-memory `tantivy` index each API process builds from those
//!   documents and keeps current by reading the rows past the last `seq` it indexed before every
//!   query. It holds nothing the documents do not, so a restart rebuilds it.
//!
//! [`query`] runs a search: fuzzy full-text candidates from the index, then filters (category,
//! permission, minimum rating) and sorts (relevance, popularity, rating, recency) in SQL, joined
//! with the installs and ratings read models.

pub mod index;
pub mod query;

use std::collections::BTreeSet;

use agora_commands::store::StoredEvent;
use agora_domain::capsules::aggregate::CapsuleEvent;
use async_trait::async_trait;
use semver::Version;
use sqlx::Row;

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub use index::SearchIndex;
pub use query::{CapsuleSearch, SearchError, SearchHit, SearchPage, SearchRequest, SearchSort};

pub const NAME: &str = "capsule_search";
const VERSION: i64 = 1;

const VERSIONS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    category TEXT NOT NULL,
    permissions TEXT NOT NULL,
    published_at_us BIGINT,
    yanked BIGINT NOT NULL,
    PRIMARY KEY (name, version))"];

const DOCS_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    category TEXT NOT NULL,
    permissions TEXT NOT NULL,
    published_at_us BIGINT NOT NULL,
    listed BIGINT NOT NULL,
    seq BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS {t}_seq ON {t} (seq)",
];

#[derive(Clone, Debug)]
pub(crate) struct Tables {
    pub(crate) versions: String,
    pub(crate) docs: String,
}

impl Tables {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            versions: format!("{prefix}capsule_search_versions"),
            docs: format!("{prefix}capsule_search_docs"),
        }
    }
}

/// The search documents projection.
#[derive(Clone, Debug)]
pub struct CapsuleSearchProjection {
    t: Tables,
}

impl Default for CapsuleSearchProjection {
    fn default() -> Self {
        Self::new(LIVE_PREFIX)
    }
}

/// Permissions as stored: ` a b c ` (space-delimited, so `LIKE '% a %'` matches one exactly).
pub(crate) fn permission_text<'a>(permissions: impl IntoIterator<Item = &'a str>) -> String {
    let mut text = String::from(" ");
    for p in permissions {
        text.push_str(p);
        text.push(' ');
    }
    text
}

/// One version's searchable text, as stored.
struct VersionText {
    version: Version,
    description: String,
    tags: String,
    category: String,
    permissions: String,
    published_at_us: i64,
}

impl CapsuleSearchProjection {
    pub fn new(prefix: &str) -> Self {
        Self {
            t: Tables::new(prefix),
        }
    }

    async fn submitted(
        &self,
        tx: &mut ReadTx,
        name: &str,
        event: CapsuleEvent,
    ) -> Result<(), ProjectionError> {
        let CapsuleEvent::VersionSubmitted {
            version, manifest, ..
        } = event
        else {
            return Ok(());
        };
        let permissions: BTreeSet<String> = manifest
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        sqlx::query(&format!(
            "INSERT INTO {} (name, version, description, tags, category, permissions, \
             published_at_us, yanked) VALUES ($1, $2, $3, $4, $5, $6, NULL, 0) \
             ON CONFLICT (name, version) DO NOTHING",
            self.t.versions
        ))
        .bind(name)
        .bind(version.to_string())
        .bind(&manifest.description)
        .bind(manifest.tags.join(" "))
        .bind(manifest.category.clone().unwrap_or_default())
        .bind(permission_text(permissions.iter().map(String::as_str)))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn mark(
        &self,
        tx: &mut ReadTx,
        name: &str,
        version: &Version,
        set: &str,
        value: i64,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "UPDATE {} SET {set} = $1 WHERE name = $2 AND version = $3",
            self.t.versions
        ))
        .bind(value)
        .bind(name)
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Rewrites the capsule's document from its highest published, unyanked version (unlisted
    /// when there is none), under the next `seq`.
    async fn refresh(&self, tx: &mut ReadTx, name: &str) -> Result<(), ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT version, description, tags, category, permissions, published_at_us \
             FROM {} WHERE name = $1 AND published_at_us IS NOT NULL AND yanked = 0",
            self.t.versions
        ))
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        let mut best: Option<VersionText> = None;
        for r in &rows {
            let Ok(version) = Version::parse(&r.try_get::<String, _>(0)?) else {
                continue;
            };
            if best.as_ref().is_some_and(|b| b.version >= version) {
                continue;
            }
            best = Some(VersionText {
                version,
                description: r.try_get(1)?,
                tags: r.try_get(2)?,
                category: r.try_get(3)?,
                permissions: r.try_get(4)?,
                published_at_us: r.try_get(5)?,
            });
        }
        let seq: i64 = sqlx::query_scalar(&format!(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM {}",
            self.t.docs
        ))
        .fetch_one(&mut *tx)
        .await?;
        let existing: Option<i64> =
            sqlx::query_scalar(&format!("SELECT seq FROM {} WHERE name = $1", self.t.docs))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        match best {
            Some(doc) => {
                sqlx::query(&format!(
                    "INSERT INTO {t} (name, version, description, tags, category, permissions, \
                     published_at_us, listed, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8) \
                     ON CONFLICT (name) DO UPDATE SET version = $2, description = $3, tags = $4, \
                     category = $5, permissions = $6, published_at_us = $7, listed = 1, seq = $8",
                    t = self.t.docs
                ))
                .bind(name)
                .bind(doc.version.to_string())
                .bind(&doc.description)
                .bind(&doc.tags)
                .bind(&doc.category)
                .bind(&doc.permissions)
                .bind(doc.published_at_us)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
            None if existing.is_some() => {
                sqlx::query(&format!(
                    "UPDATE {} SET listed = 0, seq = $1 WHERE name = $2",
                    self.t.docs
                ))
                .bind(seq)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            None => {}
        }
        Ok(())
    }
}

#[async_trait]
impl Projection for CapsuleSearchProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            TableSpec::new(self.t.versions.clone(), VERSIONS_DDL),
            TableSpec::new(self.t.docs.clone(), DOCS_DDL),
        ]
    }

    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "capsule" {
            return Ok(());
        }
        let decoded: CapsuleEvent = serde_json::from_value(event.payload.clone())
            .map_err(|e| ProjectionError::decode(event, e))?;
        let name = event.aggregate_id.as_str();
        match decoded {
            e @ CapsuleEvent::VersionSubmitted { .. } => self.submitted(tx, name, e).await,
            CapsuleEvent::VersionPublished {
                version,
                occurred_at,
                ..
            } => {
                self.mark(
                    tx,
                    name,
                    &version,
                    "published_at_us",
                    occurred_at.timestamp_micros(),
                )
                .await?;
                self.refresh(tx, name).await
            }
            CapsuleEvent::VersionYanked { version, .. } => {
                self.mark(tx, name, &version, "yanked", 1).await?;
                self.refresh(tx, name).await
            }
            _ => Ok(()),
        }
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::new(prefix))
    }
}
