//! The Lap-Verse process manager: repeats, idempotently, everything that follows an accepted
//! task or round, so a crash between two commits loses nothing.
//!
//! | event | reaction |
//! |---|---|
//! | `TaskAccepted`, `CompetitionAccepted` (still accepted) | charge the tenant's month (or reject on the guardrail), book the charge, queue the job |
//! | `CostCharged` | the charge's journal entry (`lvcost-<work>`) |
//! | `CostRefunded` | the refund's journal entry (`lvrefund-<work>`) |
//! | `TaskFailed`, `CompetitionFailed` | refund the charge (failed work is not billed) |
//! | `CompetitionCompleted` | promote the champion when the round says so; queue the competition-completed notification |
//! | `VariantPromoted` | queue the champion-promoted notification |
//!
//! Reactions are stamped with the time of the event they react to, so a replay writes exactly
//! what the first delivery did.

use std::sync::Arc;

use agora_domain::tenancy::budget::{budget_id, BudgetCommand, BudgetEvent, WorkKind};
use agora_domain::tenancy::competition::CompetitionEvent;
use agora_domain::tenancy::lifecycle::Status;
use agora_domain::tenancy::task::TaskEvent;
use agora_domain::tenancy::tenant::TenantEvent;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::{self, competition_notification, promotion_notification};
use super::{stamp, LapVerse, LapVerseError};
use crate::metadata::CommandMetadata;
use crate::process::{ProcessRunner, Reactor};
use crate::store::StoredEvent;

/// Checkpoint name in `projection_checkpoints`.
pub const PROCESS_CHECKPOINT: &str = "pm_lapverse";
/// Actor stamped on the process manager's commands.
pub const PROCESS_ACTOR: &str = "process:lapverse";

/// Why failed work is refunded.
pub const REFUND_REASON: &str = "the work failed after its last attempt";

pub type LapVerseProcess = ProcessRunner<LapVerse>;

/// The process manager over `service`.
pub fn process(service: Arc<LapVerse>) -> LapVerseProcess {
    let store = service.store.clone();
    ProcessRunner::new(PROCESS_CHECKPOINT, &store, service)
}

impl From<sqlx::Error> for LapVerseError {
    fn from(e: sqlx::Error) -> Self {
        LapVerseError::Storage(e.to_string())
    }
}

fn meta_for(event: &StoredEvent, at: DateTime<Utc>) -> Result<CommandMetadata, LapVerseError> {
    let mut meta = CommandMetadata::new(
        PROCESS_ACTOR,
        event.meta("tenant").unwrap_or("platform"),
        at,
    )
    .map_err(|e| LapVerseError::BadInput(e.to_string()))?;
    if let Some(corr) = event.meta("correlation_id").and_then(|c| c.parse().ok()) {
        let cause = event.meta("event_id").and_then(|c| c.parse().ok());
        meta = meta.with_correlation(corr, cause);
    }
    Ok(meta)
}

fn decode<T: serde::de::DeserializeOwned>(event: &StoredEvent) -> Option<T> {
    match serde_json::from_value(event.payload.clone()) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(position = ?event.position, error = %e, "unreadable lap-verse event");
            None
        }
    }
}

#[async_trait]
impl Reactor for LapVerse {
    type Error = LapVerseError;

    async fn react(&self, event: &StoredEvent) -> Result<(), LapVerseError> {
        let id = event.aggregate_id.as_str();
        match event.aggregate_type.as_str() {
            "task" => match decode::<TaskEvent>(event) {
                Some(TaskEvent::TaskAccepted { spec, occurred_at }) => {
                    self.resettle(
                        WorkKind::Task,
                        id,
                        &spec.tenant,
                        spec.cost,
                        &spec.tags,
                        spec.priority,
                        occurred_at,
                        event,
                    )
                    .await
                }
                Some(TaskEvent::TaskFailed { occurred_at, .. }) => {
                    let spec = self.task(id).await?.spec().cloned();
                    match spec {
                        Some(spec) => {
                            self.refund(id, &spec.tenant, &spec.tags, occurred_at, event)
                                .await
                        }
                        None => Ok(()),
                    }
                }
                _ => Ok(()),
            },
            "competition" => match decode::<CompetitionEvent>(event) {
                Some(CompetitionEvent::CompetitionAccepted { spec, occurred_at }) => {
                    self.resettle(
                        WorkKind::Competition,
                        id,
                        &spec.tenant,
                        spec.cost,
                        &spec.tags,
                        spec.priority,
                        occurred_at,
                        event,
                    )
                    .await
                }
                Some(CompetitionEvent::CompetitionFailed { occurred_at, .. }) => {
                    let spec = self.competition(id).await?.spec().cloned();
                    match spec {
                        Some(spec) => {
                            self.refund(id, &spec.tenant, &spec.tags, occurred_at, event)
                                .await
                        }
                        None => Ok(()),
                    }
                }
                Some(CompetitionEvent::CompetitionCompleted {
                    result,
                    occurred_at,
                    ..
                }) => {
                    let Some(spec) = self.competition(id).await?.spec().cloned() else {
                        return Ok(());
                    };
                    if result.promote {
                        let meta = stamp(meta_for(event, occurred_at)?, &spec.tags);
                        self.promote(
                            &spec.tenant,
                            id,
                            result.champion,
                            result.win_rate_delta,
                            occurred_at,
                            &meta,
                        )
                        .await?;
                    }
                    let n = competition_notification(&spec.tenant, id, &result, occurred_at);
                    jobs::enqueue_notification(&self.store, &n).await
                }
                _ => Ok(()),
            },
            "tenant" => match decode::<TenantEvent>(event) {
                Some(TenantEvent::VariantPromoted {
                    competition_id,
                    from,
                    to,
                    win_rate_delta,
                    occurred_at,
                }) => {
                    let n = promotion_notification(
                        id,
                        &competition_id,
                        from,
                        to,
                        win_rate_delta,
                        occurred_at,
                    );
                    jobs::enqueue_notification(&self.store, &n).await
                }
                _ => Ok(()),
            },
            "tenant_budget" => match decode::<BudgetEvent>(event) {
                Some(BudgetEvent::CostCharged {
                    work_id,
                    amount,
                    cost_center,
                    tags,
                    occurred_at,
                    ..
                }) => {
                    let meta = stamp(meta_for(event, occurred_at)?, &tags);
                    self.book_charge(
                        &work_id,
                        tags.tenant_id.as_str(),
                        cost_center.as_str(),
                        amount,
                        occurred_at,
                        &meta,
                    )
                    .await
                }
                Some(BudgetEvent::CostRefunded {
                    work_id,
                    amount,
                    cost_center,
                    occurred_at,
                    ..
                }) => {
                    let tenant = id.split(':').next().unwrap_or(id);
                    let meta = meta_for(event, occurred_at)?;
                    self.book_refund(
                        &work_id,
                        tenant,
                        cost_center.as_str(),
                        amount,
                        occurred_at,
                        &meta,
                    )
                    .await
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

impl LapVerse {
    /// After a crash between acceptance and charge: charge (or reject), book, queue.
    #[allow(clippy::too_many_arguments)]
    async fn resettle(
        &self,
        kind: WorkKind,
        id: &str,
        tenant_id: &str,
        cost: agora_domain::money::Money,
        tags: &agora_domain::tenancy::cost::FinOpsTags,
        priority: agora_domain::tenancy::work::Priority,
        accepted_at: DateTime<Utc>,
        event: &StoredEvent,
    ) -> Result<(), LapVerseError> {
        if self.status(kind, id).await? == Some(Status::Rejected) {
            return Ok(());
        }
        let tenant = self.tenant(tenant_id).await?;
        let meta = stamp(meta_for(event, accepted_at)?, tags);
        match self
            .settle_acceptance(
                kind,
                id,
                tenant_id,
                &tenant,
                cost,
                &tags.cost_center,
                tags,
                priority,
                accepted_at,
                &meta,
            )
            .await
        {
            Ok(()) | Err(LapVerseError::MarginGuardrailExceeded { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn refund(
        &self,
        id: &str,
        tenant: &str,
        tags: &agora_domain::tenancy::cost::FinOpsTags,
        failed_at: DateTime<Utc>,
        event: &StoredEvent,
    ) -> Result<(), LapVerseError> {
        // The charge lives in the month the work was accepted in: find it from the budget.
        let accepted_at = match self.task(id).await {
            Ok(t) => t.lifecycle().map(|l| l.accepted_at),
            Err(_) => self
                .competition(id)
                .await?
                .lifecycle()
                .map(|l| l.accepted_at),
        };
        let Some(accepted_at) = accepted_at else {
            return Ok(());
        };
        let budget = self.budget(tenant, accepted_at).await?;
        if budget.charged(id).is_none() || budget.is_refunded(id) {
            return Ok(());
        }
        let meta = stamp(meta_for(event, failed_at)?, tags);
        let refund = BudgetCommand::Refund {
            work_id: id.to_owned(),
            reason: super::process::REFUND_REASON.to_owned(),
            occurred_at: failed_at,
        };
        self.budgets
            .execute(&budget_id(tenant, accepted_at), refund, &meta)
            .await
            .map_err(LapVerseError::from)
    }
}
