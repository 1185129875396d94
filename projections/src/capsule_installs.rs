//! The capsule installations read model: every installation with the version it holds, its
//! permissions, token budget, resolved dependencies and the breaking versions it was told of
//! (`rm_capsule_installations`), and each capsule's live install count
//! (`rm_capsule_install_counts`, the search's popularity). A dumb fold of the
//! `capsule_installation` events.

use agora_commands::store::StoredEvent;
use agora_domain::capsules::install::{InstallationEvent, Subject};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::{AnyPool, Row};

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub const NAME: &str = "capsule_installs";
const VERSION: i64 = 1;
/// Most installations one list returns.
pub const MAX_PAGE: i64 = 100;

const INSTALLS_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    installation_id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    capsule TEXT NOT NULL,
    version TEXT,
    permissions TEXT NOT NULL,
    token_budget_tokens BIGINT NOT NULL,
    dependencies TEXT NOT NULL,
    deprecation_warning TEXT,
    notices TEXT NOT NULL,
    installed_by TEXT NOT NULL,
    installed_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {t}_subject ON {t} (subject_kind, subject_id, capsule)",
    "CREATE INDEX IF NOT EXISTS {t}_tenant ON {t} (tenant, capsule)",
    // The trending list reads the installs of its window.
    "CREATE INDEX IF NOT EXISTS {t}_installed_at ON {t} (installed_at_us)",
];

const COUNTS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    capsule TEXT PRIMARY KEY,
    installs BIGINT NOT NULL,
    installs_ever BIGINT NOT NULL)"];

#[derive(Clone, Debug)]
struct Tables {
    installs: String,
    counts: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        Self {
            installs: format!("{prefix}capsule_installations"),
            counts: format!("{prefix}capsule_install_counts"),
        }
    }
}

/// The installations projection.
#[derive(Clone, Debug)]
pub struct CapsuleInstallProjection {
    t: Tables,
}

impl Default for CapsuleInstallProjection {
    fn default() -> Self {
        Self::new(LIVE_PREFIX)
    }
}

impl CapsuleInstallProjection {
    pub fn new(prefix: &str) -> Self {
        Self {
            t: Tables::new(prefix),
        }
    }
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn subject_parts(subject: &Subject) -> (&'static str, &str) {
    match subject {
        Subject::Tenant(id) => ("tenant", id),
        Subject::User(id) => ("user", id),
    }
}

impl CapsuleInstallProjection {
    /// Adds `delta` to the capsule's live count (and to the lifetime count when positive).
    async fn count(
        &self,
        tx: &mut ReadTx,
        capsule: &str,
        delta: i64,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "INSERT INTO {t} (capsule, installs, installs_ever) VALUES ($1, $2, $3) \
             ON CONFLICT (capsule) DO UPDATE SET installs = {t}.installs + $2, \
             installs_ever = {t}.installs_ever + $3",
            t = self.t.counts
        ))
        .bind(capsule)
        .bind(delta)
        .bind(delta.max(0))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn capsule_of(
        &self,
        tx: &mut ReadTx,
        id: &str,
    ) -> Result<Option<(String, Option<String>)>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT capsule, version FROM {} WHERE installation_id = $1",
            self.t.installs
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }
}

#[async_trait]
impl Projection for CapsuleInstallProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            TableSpec::new(self.t.installs.clone(), INSTALLS_DDL),
            TableSpec::new(self.t.counts.clone(), COUNTS_DDL),
        ]
    }

    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "capsule_installation" {
            return Ok(());
        }
        let decoded: InstallationEvent = serde_json::from_value(event.payload.clone())
            .map_err(|e| ProjectionError::decode(event, e))?;
        let id = event.aggregate_id.as_str();
        match decoded {
            InstallationEvent::Installed {
                subject,
                capsule,
                version,
                permissions,
                token_budget_tokens,
                dependencies,
                deprecation_warning,
                by,
                occurred_at,
                ..
            } => {
                let (kind, subject_id) = subject_parts(&subject);
                let tenant = match &subject {
                    Subject::Tenant(t) => t.as_str(),
                    Subject::User(_) => event.meta("tenant").unwrap_or("platform"),
                };
                let at = occurred_at.timestamp_micros();
                // A reinstall after an uninstall keeps the notices told before.
                sqlx::query(&format!(
                    "INSERT INTO {t} (installation_id, subject_kind, subject_id, tenant, capsule, \
                     version, permissions, token_budget_tokens, dependencies, deprecation_warning, \
                     notices, installed_by, installed_at_us, updated_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '[]', $11, $12, $12) \
                     ON CONFLICT (installation_id) DO UPDATE SET version = $6, permissions = $7, \
                     token_budget_tokens = $8, dependencies = $9, deprecation_warning = $10, \
                     installed_by = $11, installed_at_us = $12, updated_at_us = $12",
                    t = self.t.installs
                ))
                .bind(id)
                .bind(kind)
                .bind(subject_id)
                .bind(tenant)
                .bind(capsule.as_str())
                .bind(version.to_string())
                .bind(json_text(&permissions))
                .bind(i64::try_from(token_budget_tokens).unwrap_or(i64::MAX))
                .bind(json_text(&dependencies))
                .bind(deprecation_warning)
                .bind(by)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                self.count(tx, capsule.as_str(), 1).await
            }
            InstallationEvent::Upgraded {
                to,
                permissions,
                dependencies,
                deprecation_warning,
                occurred_at,
                ..
            } => {
                sqlx::query(&format!(
                    "UPDATE {} SET version = $1, permissions = $2, dependencies = $3, \
                     deprecation_warning = $4, updated_at_us = $5 WHERE installation_id = $6",
                    self.t.installs
                ))
                .bind(to.to_string())
                .bind(json_text(&permissions))
                .bind(json_text(&dependencies))
                .bind(deprecation_warning)
                .bind(occurred_at.timestamp_micros())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }
            InstallationEvent::Uninstalled { occurred_at, .. } => {
                let Some((capsule, Some(_))) = self.capsule_of(tx, id).await? else {
                    return Err(ProjectionError::Corrupt(format!(
                        "uninstall of {id}, which is not installed"
                    )));
                };
                sqlx::query(&format!(
                    "UPDATE {} SET version = NULL, updated_at_us = $1 WHERE installation_id = $2",
                    self.t.installs
                ))
                .bind(occurred_at.timestamp_micros())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                self.count(tx, &capsule, -1).await
            }
            InstallationEvent::BreakingVersionNotified {
                new_version,
                occurred_at,
                ..
            } => {
                let row = sqlx::query(&format!(
                    "SELECT notices FROM {} WHERE installation_id = $1",
                    self.t.installs
                ))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Err(ProjectionError::Corrupt(format!(
                        "notice to {id}, which was never installed"
                    )));
                };
                let mut notices: Vec<String> = serde_json::from_str(&row.try_get::<String, _>(0)?)
                    .map_err(|e| ProjectionError::Corrupt(e.to_string()))?;
                notices.push(new_version.to_string());
                sqlx::query(&format!(
                    "UPDATE {} SET notices = $1, updated_at_us = $2 WHERE installation_id = $3",
                    self.t.installs
                ))
                .bind(json_text(&notices))
                .bind(occurred_at.timestamp_micros())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }
        }
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::new(prefix))
    }
}

/// One installation as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallRow {
    pub installation_id: String,
    pub subject_kind: String,
    pub subject_id: String,
    pub tenant: String,
    pub capsule: String,
    /// `None` once uninstalled.
    pub version: Option<String>,
    pub permissions: Vec<String>,
    pub token_budget_tokens: i64,
    /// `name@version`, dependencies first.
    pub dependencies: Vec<String>,
    pub deprecation_warning: Option<String>,
    /// The breaking versions it was told of, in order.
    pub notices: Vec<String>,
    pub installed_by: String,
    pub installed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const INSTALL_COLUMNS: &str = "installation_id, subject_kind, subject_id, tenant, capsule, \
    version, permissions, token_budget_tokens, dependencies, deprecation_warning, notices, \
    installed_by, installed_at_us, updated_at_us";

fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

fn json_column<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ProjectionError> {
    serde_json::from_str(text).map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

fn install_row(r: &sqlx::any::AnyRow) -> Result<InstallRow, ProjectionError> {
    let dependencies: Vec<serde_json::Value> = json_column(&r.try_get::<String, _>(8)?)?;
    Ok(InstallRow {
        installation_id: r.try_get(0)?,
        subject_kind: r.try_get(1)?,
        subject_id: r.try_get(2)?,
        tenant: r.try_get(3)?,
        capsule: r.try_get(4)?,
        version: r.try_get(5)?,
        permissions: json_column(&r.try_get::<String, _>(6)?)?,
        token_budget_tokens: r.try_get(7)?,
        dependencies: dependencies
            .iter()
            .map(|p| {
                format!(
                    "{}@{}",
                    p["name"].as_str().unwrap_or_default(),
                    p["version"].as_str().unwrap_or_default()
                )
            })
            .collect(),
        deprecation_warning: r.try_get(9)?,
        notices: json_column(&r.try_get::<String, _>(10)?)?,
        installed_by: r.try_get(11)?,
        installed_at: time(r.try_get(12)?),
        updated_at: time(r.try_get(13)?),
    })
}

/// Reads of the installations.
#[derive(Clone)]
pub struct CapsuleInstallQueries {
    pool: AnyPool,
    t: Tables,
}

impl CapsuleInstallQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            t: Tables::new(LIVE_PREFIX),
        }
    }

    /// The live installations of one subject (`tenant` or `user`, id), by capsule name after
    /// `after`, at most `limit` (≤ [`MAX_PAGE`]).
    pub async fn of_subject(
        &self,
        kind: &str,
        id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<InstallRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTALL_COLUMNS} FROM {} WHERE subject_kind = $1 AND subject_id = $2 \
             AND version IS NOT NULL AND capsule > $3 ORDER BY capsule LIMIT $4",
            self.t.installs
        ))
        .bind(kind)
        .bind(id)
        .bind(after.unwrap_or(""))
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(install_row).collect()
    }

    /// One installation, live or uninstalled.
    pub async fn installation(
        &self,
        installation_id: &str,
    ) -> Result<Option<InstallRow>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT {INSTALL_COLUMNS} FROM {} WHERE installation_id = $1",
            self.t.installs
        ))
        .bind(installation_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(install_row).transpose()
    }

    /// Live installs of `capsule` (0 when never installed).
    pub async fn install_count(&self, capsule: &str) -> Result<i64, ProjectionError> {
        let n: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT installs FROM {} WHERE capsule = $1",
            self.t.counts
        ))
        .bind(capsule)
        .fetch_optional(&self.pool)
        .await?;
        Ok(n.unwrap_or(0))
    }

    /// Live installs of every capsule (`marketplace_installs_total` counts events; this is the
    /// state).
    pub async fn total_installs(&self) -> Result<i64, ProjectionError> {
        let n: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT CAST(SUM(installs) AS BIGINT) FROM {}",
            self.t.counts
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(n.unwrap_or(0))
    }
}
