//! The capsule notices process manager: every installation of a capsule hears of a breaking
//! version published above the version it holds, once per version, as a
//! `CapsuleBreakingVersionNotified` event on the installation and a `capsule_breaking_version`
//! webhook notification to its tenant (through the Lap-Verse notification queue and the webhook
//! dispatcher, with its retries and breaker).
//!
//! | event | reaction |
//! |---|---|
//! | `CapsuleInstalled`, `CapsuleUpgraded` | index the installation's version; if a breaking version above it is already published, notify the highest |
//! | `CapsuleUninstalled` | drop it from the index |
//! | `CapsuleVersionPublished` with breaking changes | notify every indexed installation of an older version |
//!
//! The index (`capsule_install_index`) is this process manager's own, written as it reads the
//! log, so at a publication it holds every installation before it in the log; an installation
//! after it finds the publication on the capsule aggregate. Either way each installation is
//! told, and the aggregate's `notified` set makes a repeat a no-op. Reactions are stamped with
//! the time of the event they react to.

use std::sync::Arc;

use agora_domain::capsules::aggregate::{CapsuleEvent, VersionStatus};
use agora_domain::capsules::install::{
    is_breaking_notice, InstallationCommand, InstallationEvent, NotifyNewVersion, Subject,
};
use agora_domain::capsules::CapsuleName;
use agora_domain::tenancy::delivery::{Notification, MAX_NOTIFICATION_ID_LEN};
use agora_domain::tenancy::tenant::WebhookEvent;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use semver::Version;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{command_error, install_error, CapsuleService, CapsuleServiceError};
use crate::lapverse::jobs;
use crate::metadata::CommandMetadata;
use crate::process::{ProcessRunner, Reactor};
use crate::store::{Store, StoredEvent};

/// Checkpoint name in `projection_checkpoints`.
pub const NOTICES_CHECKPOINT: &str = "pm_capsule_notices";
/// Actor stamped on the process manager's commands.
pub const NOTICES_ACTOR: &str = "process:capsule-notices";
/// Most installations of one capsule told in one reaction (the rest on the retry).
const MAX_INSTALLS_PER_PUBLICATION: i64 = 100_000;

/// Why a reaction failed.
#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("event {position} ({event_type}) is unreadable: {reason}")]
    Unreadable {
        position: i64,
        event_type: String,
        reason: String,
    },
    #[error("event {position} has unusable metadata: {reason}")]
    BadMetadata { position: i64, reason: String },
    #[error(transparent)]
    Service(#[from] CapsuleServiceError),
    #[error("storage: {0}")]
    Storage(String),
}

impl From<sqlx::Error> for NoticeError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

/// The reactor over the capsule service.
pub struct CapsuleNotices {
    service: Arc<CapsuleService>,
}

pub type NoticesProcess = ProcessRunner<CapsuleNotices>;

/// The process manager over `service`.
pub fn process(service: Arc<CapsuleService>) -> NoticesProcess {
    let store = service.store.clone();
    ProcessRunner::new(
        NOTICES_CHECKPOINT,
        &store,
        Arc::new(CapsuleNotices { service }),
    )
}

fn decode<T: serde::de::DeserializeOwned>(event: &StoredEvent) -> Result<T, NoticeError> {
    serde_json::from_value(event.payload.clone()).map_err(|e| NoticeError::Unreadable {
        position: event.position.global_position,
        event_type: event.event_type.clone(),
        reason: e.to_string(),
    })
}

fn meta_for(event: &StoredEvent, at: DateTime<Utc>) -> Result<CommandMetadata, NoticeError> {
    let mut meta = CommandMetadata::new(
        NOTICES_ACTOR,
        event.meta("tenant").unwrap_or("platform"),
        at,
    )
    .map_err(|e| NoticeError::BadMetadata {
        position: event.position.global_position,
        reason: e.to_string(),
    })?;
    if let Some(corr) = event.meta("correlation_id").and_then(|c| c.parse().ok()) {
        let cause = event.meta("event_id").and_then(|c| c.parse().ok());
        meta = meta.with_correlation(corr, cause);
    }
    Ok(meta)
}

/// The tenant told of an installation's notices: the tenant installed for, or the tenant of
/// the user who installed.
fn tenant_of(subject: &Subject, event: &StoredEvent) -> String {
    match subject {
        Subject::Tenant(t) => t.clone(),
        Subject::User(_) => event.meta("tenant").unwrap_or("platform").to_owned(),
    }
}

/// One installation as the index holds it.
struct Indexed {
    installation_id: String,
    tenant: String,
    version: Version,
}

async fn index(store: &Store, row: &Indexed, capsule: &str) -> Result<(), NoticeError> {
    store
        .write_read_models(
            sqlx::query(
                "INSERT INTO capsule_install_index (installation_id, capsule, tenant, version) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (installation_id) DO UPDATE SET version = excluded.version, \
                 tenant = excluded.tenant",
            )
            .bind(&row.installation_id)
            .bind(capsule)
            .bind(&row.tenant)
            .bind(row.version.to_string()),
        )
        .await?;
    Ok(())
}

async fn unindex(store: &Store, installation_id: &str) -> Result<(), NoticeError> {
    store
        .write_read_models(
            sqlx::query("DELETE FROM capsule_install_index WHERE installation_id = $1")
                .bind(installation_id),
        )
        .await?;
    Ok(())
}

async fn installs_of(store: &Store, capsule: &str) -> Result<Vec<Indexed>, NoticeError> {
    let rows = sqlx::query(
        "SELECT installation_id, tenant, version FROM capsule_install_index \
         WHERE capsule = $1 ORDER BY installation_id LIMIT $2",
    )
    .bind(capsule)
    .bind(MAX_INSTALLS_PER_PUBLICATION)
    .fetch_all(store.read_models())
    .await?;
    rows.iter()
        .map(|r| {
            let version: String = r.try_get(2)?;
            Ok(Indexed {
                installation_id: r.try_get(0)?,
                tenant: r.try_get(1)?,
                version: Version::parse(&version)
                    .map_err(|e| NoticeError::Storage(format!("indexed version: {e}")))?,
            })
        })
        .collect()
}

/// The notification id of `installation_id` hearing of `version`: readable when short enough
/// for a header, else its SHA-256.
fn notice_id(installation_id: &str, version: &Version) -> String {
    let id = format!("capsule-breaking-version:{installation_id}@{version}");
    if id.len() <= MAX_NOTIFICATION_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()) {
        return id;
    }
    let digest = Sha256::digest(format!("{installation_id}@{version}").as_bytes());
    format!("capsule-breaking-version:{}", hex::encode(digest))
}

impl CapsuleNotices {
    /// Tells `installed` of `new_version`, once: the event on the installation, then the
    /// webhook notification (queued once per id).
    async fn notify(
        &self,
        capsule: &str,
        installed: &Indexed,
        new_version: &Version,
        at: DateTime<Utc>,
        event: &StoredEvent,
    ) -> Result<(), NoticeError> {
        if !is_breaking_notice(&installed.version, new_version, true) {
            return Ok(());
        }
        let meta = meta_for(event, at)?;
        let command = InstallationCommand::NotifyNewVersion(NotifyNewVersion {
            new_version: new_version.clone(),
            breaking: true,
            occurred_at: at,
        });
        self.service
            .installs
            .execute(&installed.installation_id, command, &meta)
            .await
            .map_err(|e| command_error(e, install_error))?;
        let notification = Notification {
            id: notice_id(&installed.installation_id, new_version),
            tenant: installed.tenant.clone(),
            event: WebhookEvent::CapsuleBreakingVersion,
            payload: serde_json::json!({
                "capsule": capsule,
                "installationId": installed.installation_id,
                "installedVersion": installed.version.to_string(),
                "newVersion": new_version.to_string(),
            }),
            occurred_at: at,
        };
        jobs::enqueue_notification(&self.service.store, &notification)
            .await
            .map_err(|e| NoticeError::Storage(e.to_string()))
    }

    /// After an install or upgrade: the highest breaking version above it already published.
    async fn catch_up(
        &self,
        capsule: &str,
        installed: &Indexed,
        at: DateTime<Utc>,
        event: &StoredEvent,
    ) -> Result<(), NoticeError> {
        let name = CapsuleName::parse(capsule).map_err(|e| NoticeError::Unreadable {
            position: event.position.global_position,
            event_type: event.event_type.clone(),
            reason: e.to_string(),
        })?;
        let aggregate = self.service.capsule(&name).await?;
        let newest = aggregate
            .versions()
            .filter(|(v, s)| {
                s.status == VersionStatus::Published
                    && s.breaking
                    && !s.yanked
                    && **v > installed.version
            })
            .map(|(v, _)| v.clone())
            .max();
        match newest {
            Some(v) => self.notify(capsule, installed, &v, at, event).await,
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Reactor for CapsuleNotices {
    type Error = NoticeError;

    async fn react(&self, event: &StoredEvent) -> Result<(), NoticeError> {
        let store = &self.service.store;
        match event.aggregate_type.as_str() {
            "capsule_installation" => match decode::<InstallationEvent>(event)? {
                InstallationEvent::Installed {
                    subject,
                    capsule,
                    version,
                    occurred_at,
                    ..
                } => {
                    let row = Indexed {
                        installation_id: event.aggregate_id.clone(),
                        tenant: tenant_of(&subject, event),
                        version,
                    };
                    index(store, &row, capsule.as_str()).await?;
                    self.catch_up(capsule.as_str(), &row, occurred_at, event)
                        .await
                }
                InstallationEvent::Upgraded {
                    to, occurred_at, ..
                } => {
                    // The index row of the install gives the capsule and tenant.
                    let Some((capsule, tenant)) = indexed_row(store, &event.aggregate_id).await?
                    else {
                        return Ok(());
                    };
                    let row = Indexed {
                        installation_id: event.aggregate_id.clone(),
                        tenant,
                        version: to,
                    };
                    index(store, &row, &capsule).await?;
                    self.catch_up(&capsule, &row, occurred_at, event).await
                }
                InstallationEvent::Uninstalled { .. } => unindex(store, &event.aggregate_id).await,
                InstallationEvent::BreakingVersionNotified { .. } => Ok(()),
            },
            "capsule" => match decode::<CapsuleEvent>(event)? {
                CapsuleEvent::VersionPublished {
                    version,
                    breaking_changes,
                    occurred_at,
                    ..
                } if !breaking_changes.is_empty() => {
                    for installed in installs_of(store, &event.aggregate_id).await? {
                        self.notify(
                            &event.aggregate_id,
                            &installed,
                            &version,
                            occurred_at,
                            event,
                        )
                        .await?;
                    }
                    Ok(())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// Contention on an installation passes: tried again, never parked.
    fn is_transient(error: &NoticeError) -> bool {
        matches!(
            error,
            NoticeError::Service(CapsuleServiceError::Busy) | NoticeError::Storage(_)
        )
    }
}

async fn indexed_row(
    store: &Store,
    installation_id: &str,
) -> Result<Option<(String, String)>, NoticeError> {
    let row =
        sqlx::query("SELECT capsule, tenant FROM capsule_install_index WHERE installation_id = $1")
            .bind(installation_id)
            .fetch_optional(store.read_models())
            .await?;
    Ok(match row {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
        None => None,
    })
}
