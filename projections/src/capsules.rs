//! The capsule catalogue read model: capsules (`rm_capsules`), their versions with status, risk
//! score and factors, review and publication facts (`rm_capsule_versions`; the review queue is
//! the versions whose status is `queued`), and the author history the risk score reads
//! (`rm_capsule_authors`). A dumb fold of the `capsule` events: every fact comes from an event,
//! except a version's dependency depth, folded from the depths of the dependencies already in
//! the catalogue (the order of the log makes it the same on a rebuild).

use std::collections::{BTreeMap, BTreeSet};

use agora_commands::capsules::{status_str, CatalogueFacts};
use agora_commands::store::StoredEvent;
use agora_domain::capsules::aggregate::{CapsuleEvent, ReviewDecision, VersionStatus};
use agora_domain::capsules::risk::AuthorHistory;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use semver::Version;
use sqlx::{AnyPool, Row};

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub const NAME: &str = "capsules";
const VERSION: i64 = 1;
/// Most capsules one list returns.
pub const MAX_PAGE: i64 = 100;
/// Most names read for the risk score's typosquatting check.
pub const MAX_NAMES: i64 = 100_000;

const CAPSULES_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    description TEXT NOT NULL,
    category TEXT,
    latest_version TEXT NOT NULL,
    published_version TEXT,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL)"];

const VERSIONS_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    risk_score TEXT NOT NULL,
    risk_factors TEXT NOT NULL,
    review_reasons TEXT NOT NULL,
    permissions TEXT NOT NULL,
    breaking_changes TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    bundle_sha256 TEXT NOT NULL,
    bundle_size_bytes BIGINT NOT NULL,
    sbom_sha256 TEXT NOT NULL,
    signer_keyid TEXT,
    submitted_by TEXT NOT NULL,
    submitted_at_us BIGINT NOT NULL,
    dependency_depth BIGINT NOT NULL,
    reviewed_by TEXT,
    review_decision TEXT,
    review_notes TEXT,
    reviewed_at_us BIGINT,
    published_at_us BIGINT,
    platform_keyid TEXT,
    deprecated TEXT,
    yanked TEXT,
    PRIMARY KEY (name, version))",
    "CREATE INDEX IF NOT EXISTS {t}_status ON {t} (status, submitted_at_us)",
];

const AUTHORS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    author TEXT PRIMARY KEY,
    published_capsules BIGINT NOT NULL,
    rejected_submissions BIGINT NOT NULL)"];

/// Table names under one prefix.
#[derive(Clone, Debug)]
struct Tables {
    capsules: String,
    versions: String,
    authors: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        Self {
            capsules: format!("{prefix}capsules"),
            versions: format!("{prefix}capsule_versions"),
            authors: format!("{prefix}capsule_authors"),
        }
    }
}

/// The catalogue projection.
#[derive(Clone, Debug)]
pub struct CapsuleProjection {
    t: Tables,
}

impl Default for CapsuleProjection {
    fn default() -> Self {
        Self::new(LIVE_PREFIX)
    }
}

impl CapsuleProjection {
    pub fn new(prefix: &str) -> Self {
        Self {
            t: Tables::new(prefix),
        }
    }
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn greater(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(a), Ok(b)) => a > b,
        _ => false,
    }
}

impl CapsuleProjection {
    async fn set_status(
        &self,
        tx: &mut ReadTx,
        name: &str,
        version: &Version,
        status: VersionStatus,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "UPDATE {} SET status = $1 WHERE name = $2 AND version = $3",
            self.t.versions
        ))
        .bind(status_str(status))
        .bind(name)
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn depth_of(&self, tx: &mut ReadTx, deps: &[String]) -> Result<i64, ProjectionError> {
        if deps.is_empty() {
            return Ok(0);
        }
        let mut deepest = 0i64;
        for dep in deps {
            let d: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT MAX(dependency_depth) FROM {} WHERE name = $1 AND status = 'published'",
                self.t.versions
            ))
            .bind(dep)
            .fetch_one(&mut *tx)
            .await?;
            deepest = deepest.max(d.unwrap_or(0));
        }
        Ok(1 + deepest)
    }

    async fn submitted(
        &self,
        tx: &mut ReadTx,
        name: &str,
        event: CapsuleEvent,
    ) -> Result<(), ProjectionError> {
        let CapsuleEvent::VersionSubmitted {
            version,
            manifest,
            manifest_sha256,
            bundle_sha256,
            bundle_size_bytes,
            sbom_sha256,
            risk,
            signer_keyid,
            submitted_by,
            breaking_changes,
            occurred_at,
            ..
        } = event
        else {
            return Ok(());
        };
        let at = occurred_at.timestamp_micros();
        let v = version.to_string();
        let current: Option<String> = sqlx::query_scalar(&format!(
            "SELECT latest_version FROM {} WHERE name = $1",
            self.t.capsules
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        match current {
            None => {
                sqlx::query(&format!(
                    "INSERT INTO {} (name, owner, description, category, latest_version, \
                     published_version, created_at_us, updated_at_us) \
                     VALUES ($1, $2, $3, $4, $5, NULL, $6, $6)",
                    self.t.capsules
                ))
                .bind(name)
                .bind(&submitted_by)
                .bind(&manifest.description)
                .bind(manifest.category.clone())
                .bind(&v)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            Some(latest) if !greater(&latest, &v) => {
                sqlx::query(&format!(
                    "UPDATE {} SET description = $1, category = $2, latest_version = $3, \
                     updated_at_us = $4 WHERE name = $5",
                    self.t.capsules
                ))
                .bind(&manifest.description)
                .bind(manifest.category.clone())
                .bind(&v)
                .bind(at)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
            Some(_) => {
                sqlx::query(&format!(
                    "UPDATE {} SET updated_at_us = $1 WHERE name = $2",
                    self.t.capsules
                ))
                .bind(at)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
        }
        let deps: Vec<String> = manifest
            .dependencies
            .iter()
            .map(|d| d.name.clone())
            .collect();
        let depth = self.depth_of(tx, &deps).await?;
        // A resubmission after "changes requested" replaces the version's row.
        sqlx::query(&format!(
            "DELETE FROM {} WHERE name = $1 AND version = $2",
            self.t.versions
        ))
        .bind(name)
        .bind(&v)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {} (name, version, status, risk_score, risk_factors, review_reasons, \
             permissions, breaking_changes, manifest_sha256, bundle_sha256, bundle_size_bytes, \
             sbom_sha256, signer_keyid, submitted_by, submitted_at_us, dependency_depth) \
             VALUES ($1, $2, 'queued', $3, $4, '[]', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            self.t.versions
        ))
        .bind(name)
        .bind(&v)
        .bind(risk.score.to_string())
        .bind(json_text(&risk.factors))
        .bind(json_text(&manifest.permissions))
        .bind(json_text(&breaking_changes))
        .bind(manifest_sha256)
        .bind(bundle_sha256)
        .bind(i64::try_from(bundle_size_bytes).unwrap_or(i64::MAX))
        .bind(sbom_sha256)
        .bind(signer_keyid)
        .bind(submitted_by)
        .bind(at)
        .bind(depth)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn bump_author(
        &self,
        tx: &mut ReadTx,
        author: &str,
        published: i64,
        rejected: i64,
    ) -> Result<(), ProjectionError> {
        let t = &self.t.authors;
        sqlx::query(&format!(
            "INSERT INTO {t} (author, published_capsules, rejected_submissions) VALUES ($1, $2, $3) \
             ON CONFLICT (author) DO UPDATE SET \
             published_capsules = {t}.published_capsules + $2, \
             rejected_submissions = {t}.rejected_submissions + $3"
        ))
        .bind(author)
        .bind(published)
        .bind(rejected)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn reviewed(
        &self,
        tx: &mut ReadTx,
        name: &str,
        event: CapsuleEvent,
    ) -> Result<(), ProjectionError> {
        let CapsuleEvent::Reviewed {
            version,
            decision,
            reviewer_id,
            notes,
            occurred_at,
            ..
        } = event
        else {
            return Ok(());
        };
        let (status, decision_text) = match decision {
            ReviewDecision::Approve => (VersionStatus::Approved, "approve"),
            ReviewDecision::Reject => (VersionStatus::Rejected, "reject"),
            ReviewDecision::RequestChanges => (VersionStatus::ChangesRequested, "request_changes"),
        };
        sqlx::query(&format!(
            "UPDATE {} SET status = $1, reviewed_by = $2, review_decision = $3, review_notes = $4, \
             reviewed_at_us = $5 WHERE name = $6 AND version = $7",
            self.t.versions
        ))
        .bind(status_str(status))
        .bind(reviewer_id)
        .bind(decision_text)
        .bind(notes)
        .bind(occurred_at.timestamp_micros())
        .bind(name)
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
        if decision == ReviewDecision::Reject {
            let author: Option<String> = sqlx::query_scalar(&format!(
                "SELECT submitted_by FROM {} WHERE name = $1 AND version = $2",
                self.t.versions
            ))
            .bind(name)
            .bind(version.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(author) = author {
                self.bump_author(tx, &author, 0, 1).await?;
            }
        }
        Ok(())
    }

    async fn published(
        &self,
        tx: &mut ReadTx,
        name: &str,
        version: &Version,
        platform_keyid: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        let v = version.to_string();
        sqlx::query(&format!(
            "UPDATE {} SET status = 'published', published_at_us = $1, platform_keyid = $2 \
             WHERE name = $3 AND version = $4",
            self.t.versions
        ))
        .bind(at.timestamp_micros())
        .bind(platform_keyid)
        .bind(name)
        .bind(&v)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT owner, published_version FROM {} WHERE name = $1",
            self.t.capsules
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(ProjectionError::Invariant(format!(
                "capsule {name} published before it was submitted"
            )));
        };
        let owner: String = row.try_get(0)?;
        let current: Option<String> = row.try_get(1)?;
        if current.is_none() {
            self.bump_author(tx, &owner, 1, 0).await?;
        }
        if current.as_deref().is_none_or(|c| greater(&v, c)) {
            sqlx::query(&format!(
                "UPDATE {} SET published_version = $1, updated_at_us = $2 WHERE name = $3",
                self.t.capsules
            ))
            .bind(&v)
            .bind(at.timestamp_micros())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    async fn set_text(
        &self,
        tx: &mut ReadTx,
        column: &str,
        name: &str,
        version: &Version,
        text: &str,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "UPDATE {} SET {column} = $1 WHERE name = $2 AND version = $3",
            self.t.versions
        ))
        .bind(text)
        .bind(name)
        .bind(version.to_string())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Projection for CapsuleProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            TableSpec::new(self.t.capsules.clone(), CAPSULES_DDL),
            TableSpec::new(self.t.versions.clone(), VERSIONS_DDL),
            TableSpec::new(self.t.authors.clone(), AUTHORS_DDL),
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
            CapsuleEvent::AutoApproved { version, .. } => {
                self.set_status(tx, name, &version, VersionStatus::Approved)
                    .await
            }
            CapsuleEvent::QueuedForReview {
                version, reasons, ..
            } => {
                self.set_status(tx, name, &version, VersionStatus::Queued)
                    .await?;
                self.set_text(tx, "review_reasons", name, &version, &json_text(&reasons))
                    .await
            }
            e @ CapsuleEvent::Reviewed { .. } => self.reviewed(tx, name, e).await,
            CapsuleEvent::VersionPublished {
                version,
                platform_keyid,
                occurred_at,
                ..
            } => {
                self.published(tx, name, &version, &platform_keyid, occurred_at)
                    .await
            }
            CapsuleEvent::VersionDeprecated {
                version, message, ..
            } => {
                self.set_text(tx, "deprecated", name, &version, &message)
                    .await
            }
            CapsuleEvent::VersionYanked {
                version, reason, ..
            } => self.set_text(tx, "yanked", name, &version, &reason).await,
        }
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::new(prefix))
    }
}

/// A capsule as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapsuleRow {
    pub name: String,
    pub owner: String,
    pub description: String,
    pub category: Option<String>,
    pub latest_version: String,
    pub published_version: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One version of a capsule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRow {
    pub name: String,
    pub version: String,
    pub status: String,
    pub risk_score: String,
    /// JSON array of `RiskFactor`.
    pub risk_factors: serde_json::Value,
    /// JSON array of `ReviewReason`.
    pub review_reasons: serde_json::Value,
    pub permissions: Vec<String>,
    pub breaking_changes: serde_json::Value,
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    pub bundle_size_bytes: i64,
    pub sbom_sha256: String,
    pub signer_keyid: Option<String>,
    pub submitted_by: String,
    pub submitted_at: DateTime<Utc>,
    pub dependency_depth: i64,
    pub reviewed_by: Option<String>,
    pub review_decision: Option<String>,
    pub review_notes: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    pub platform_keyid: Option<String>,
    pub deprecated: Option<String>,
    pub yanked: Option<String>,
}

fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

fn json_column(text: &str) -> Result<serde_json::Value, ProjectionError> {
    serde_json::from_str(text).map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

const CAPSULE_COLUMNS: &str = "name, owner, description, category, latest_version, \
     published_version, created_at_us, updated_at_us";
const VERSION_COLUMNS: &str = "name, version, status, risk_score, risk_factors, review_reasons, \
     permissions, breaking_changes, manifest_sha256, bundle_sha256, bundle_size_bytes, \
     sbom_sha256, signer_keyid, submitted_by, submitted_at_us, dependency_depth, reviewed_by, \
     review_decision, review_notes, reviewed_at_us, published_at_us, platform_keyid, deprecated, \
     yanked";

fn capsule_row(r: &sqlx::any::AnyRow) -> Result<CapsuleRow, ProjectionError> {
    Ok(CapsuleRow {
        name: r.try_get(0)?,
        owner: r.try_get(1)?,
        description: r.try_get(2)?,
        category: r.try_get(3)?,
        latest_version: r.try_get(4)?,
        published_version: r.try_get(5)?,
        created_at: time(r.try_get(6)?),
        updated_at: time(r.try_get(7)?),
    })
}

fn version_row(r: &sqlx::any::AnyRow) -> Result<VersionRow, ProjectionError> {
    let permissions: String = r.try_get(6)?;
    Ok(VersionRow {
        name: r.try_get(0)?,
        version: r.try_get(1)?,
        status: r.try_get(2)?,
        risk_score: r.try_get(3)?,
        risk_factors: json_column(&r.try_get::<String, _>(4)?)?,
        review_reasons: json_column(&r.try_get::<String, _>(5)?)?,
        permissions: serde_json::from_str(&permissions)
            .map_err(|e| ProjectionError::Corrupt(e.to_string()))?,
        breaking_changes: json_column(&r.try_get::<String, _>(7)?)?,
        manifest_sha256: r.try_get(8)?,
        bundle_sha256: r.try_get(9)?,
        bundle_size_bytes: r.try_get(10)?,
        sbom_sha256: r.try_get(11)?,
        signer_keyid: r.try_get(12)?,
        submitted_by: r.try_get(13)?,
        submitted_at: time(r.try_get(14)?),
        dependency_depth: r.try_get(15)?,
        reviewed_by: r.try_get(16)?,
        review_decision: r.try_get(17)?,
        review_notes: r.try_get(18)?,
        reviewed_at: r.try_get::<Option<i64>, _>(19)?.map(time),
        published_at: r.try_get::<Option<i64>, _>(20)?.map(time),
        platform_keyid: r.try_get(21)?,
        deprecated: r.try_get(22)?,
        yanked: r.try_get(23)?,
    })
}

/// What a catalogue list is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// A plain, case-insensitive substring of the name or the description.
    pub q: Option<String>,
    pub category: Option<String>,
    /// List capsules with no published version too (reviewers, admins).
    pub include_unpublished: bool,
}

/// Reads of the catalogue.
#[derive(Clone)]
pub struct CapsuleQueries {
    pool: AnyPool,
    t: Tables,
}

fn like_pattern(q: &str) -> String {
    let escaped = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl CapsuleQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            t: Tables::new(LIVE_PREFIX),
        }
    }

    /// Capsules by name after `after`, at most `limit` (≤ [`MAX_PAGE`]).
    pub async fn list(
        &self,
        filter: &ListFilter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CapsuleRow>, ProjectionError> {
        let q = filter.q.as_deref().map(like_pattern);
        let rows = sqlx::query(&format!(
            "SELECT {CAPSULE_COLUMNS} FROM {} WHERE name > $1 \
             AND ($2 = 1 OR published_version IS NOT NULL) \
             AND ($3 = '' OR LOWER(name) LIKE $3 ESCAPE '\\' OR LOWER(description) LIKE $3 ESCAPE '\\') \
             AND ($4 = '' OR category = $4) \
             ORDER BY name LIMIT $5",
            self.t.capsules
        ))
        .bind(after.unwrap_or(""))
        .bind(i64::from(filter.include_unpublished))
        .bind(q.unwrap_or_default())
        .bind(filter.category.clone().unwrap_or_default())
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(capsule_row).collect()
    }

    pub async fn capsule(&self, name: &str) -> Result<Option<CapsuleRow>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT {CAPSULE_COLUMNS} FROM {} WHERE name = $1",
            self.t.capsules
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(capsule_row).transpose()
    }

    /// A capsule's versions, newest (by semantic version) first.
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM {} WHERE name = $1",
            self.t.versions
        ))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(version_row)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| {
            let (va, vb) = (
                Version::parse(&a.version).ok(),
                Version::parse(&b.version).ok(),
            );
            vb.cmp(&va)
        });
        Ok(out)
    }

    pub async fn version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<VersionRow>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM {} WHERE name = $1 AND version = $2",
            self.t.versions
        ))
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_row).transpose()
    }

    /// Versions waiting for a reviewer, oldest first.
    pub async fn review_queue(&self, limit: i64) -> Result<Vec<VersionRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM {} WHERE status = 'queued' \
             ORDER BY submitted_at_us, name, version LIMIT $1",
            self.t.versions
        ))
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_row).collect()
    }

    /// Published capsules (the `marketplace_capsules_total` gauge).
    pub async fn published_count(&self) -> Result<i64, ProjectionError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE published_version IS NOT NULL",
            self.t.capsules
        ))
        .fetch_one(&self.pool)
        .await?)
    }
}

#[async_trait]
impl CatalogueFacts for CapsuleQueries {
    async fn existing_names(&self) -> Result<BTreeSet<String>, String> {
        let names: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT name FROM {} ORDER BY name LIMIT $1",
            self.t.capsules
        ))
        .bind(MAX_NAMES)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        Ok(names.into_iter().collect())
    }

    async fn author_history(&self, author: &str) -> Result<AuthorHistory, String> {
        let row = sqlx::query(&format!(
            "SELECT published_capsules, rejected_submissions FROM {} WHERE author = $1",
            self.t.authors
        ))
        .bind(author)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        let Some(row) = row else {
            return Ok(AuthorHistory::default());
        };
        let count = |i: usize| -> Result<u32, String> {
            let n: i64 = row.try_get(i).map_err(|e| e.to_string())?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        };
        Ok(AuthorHistory {
            published_capsules: count(0)?,
            rejected_submissions: count(1)?,
        })
    }

    async fn dependency_depths(&self, names: &[String]) -> Result<BTreeMap<String, u32>, String> {
        let mut out = BTreeMap::new();
        for name in names {
            let depth: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT MAX(dependency_depth) FROM {} WHERE name = $1 AND status = 'published'",
                self.t.versions
            ))
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
            if let Some(d) = depth {
                out.insert(name.clone(), u32::try_from(d).unwrap_or(u32::MAX));
            }
        }
        Ok(out)
    }
}
