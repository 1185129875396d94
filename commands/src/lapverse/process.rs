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

use agora_domain::money::Money;
use agora_domain::tenancy::budget::{budget_id, BudgetCommand, BudgetEvent, WorkKind};
use agora_domain::tenancy::competition::CompetitionEvent;
use agora_domain::tenancy::cost::FinOpsTags;
use agora_domain::tenancy::lifecycle::Status;
use agora_domain::tenancy::task::TaskEvent;
use agora_domain::tenancy::tenant::TenantEvent;
use agora_domain::tenancy::work::{CompetitionResult, Priority};
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

/// The event's payload; an undecodable one is an error (parked after retries, never skipped).
fn decode<T: serde::de::DeserializeOwned>(event: &StoredEvent) -> Result<T, LapVerseError> {
    serde_json::from_value(event.payload.clone()).map_err(|e| LapVerseError::UnreadableEvent {
        position: event.position.global_position,
        event_type: event.event_type.clone(),
        reason: e.to_string(),
    })
}

#[async_trait]
impl Reactor for LapVerse {
    type Error = LapVerseError;

    async fn react(&self, event: &StoredEvent) -> Result<(), LapVerseError> {
        let id = event.aggregate_id.as_str();
        match event.aggregate_type.as_str() {
            "task" => match decode::<TaskEvent>(event)? {
                TaskEvent::TaskAccepted { spec, occurred_at } => {
                    let accepted = Accepted {
                        kind: WorkKind::Task,
                        tenant: &spec.tenant,
                        cost: spec.cost,
                        tags: &spec.tags,
                        priority: spec.priority,
                        at: occurred_at,
                    };
                    self.resettle(id, accepted, event).await
                }
                TaskEvent::TaskFailed { occurred_at, .. } => {
                    self.refund(WorkKind::Task, id, occurred_at, event).await
                }
                _ => Ok(()),
            },
            "competition" => match decode::<CompetitionEvent>(event)? {
                CompetitionEvent::CompetitionAccepted { spec, occurred_at } => {
                    let accepted = Accepted {
                        kind: WorkKind::Competition,
                        tenant: &spec.tenant,
                        cost: spec.cost,
                        tags: &spec.tags,
                        priority: spec.priority,
                        at: occurred_at,
                    };
                    self.resettle(id, accepted, event).await
                }
                CompetitionEvent::CompetitionFailed { occurred_at, .. } => {
                    self.refund(WorkKind::Competition, id, occurred_at, event)
                        .await
                }
                CompetitionEvent::CompetitionCompleted {
                    result,
                    occurred_at,
                    ..
                } => self.round_completed(id, &result, occurred_at, event).await,
                _ => Ok(()),
            },
            "tenant" => match decode::<TenantEvent>(event)? {
                TenantEvent::VariantPromoted {
                    competition_id,
                    from,
                    to,
                    win_rate_delta,
                    occurred_at,
                } => {
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
            "tenant_budget" => match decode::<BudgetEvent>(event)? {
                BudgetEvent::CostCharged {
                    work_id,
                    amount,
                    cost_center,
                    tags,
                    occurred_at,
                    ..
                } => {
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
                BudgetEvent::CostRefunded {
                    work_id,
                    amount,
                    cost_center,
                    occurred_at,
                    ..
                } => {
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
            },
            _ => Ok(()),
        }
    }

    /// Contention (the tenant's month budget changing under a burst of charges) passes; the
    /// event is tried again, never parked, so an acceptance is always settled.
    fn is_transient(error: &LapVerseError) -> bool {
        matches!(error, LapVerseError::Busy(_))
    }
}

/// The facts of an acceptance the process manager settles.
struct Accepted<'a> {
    kind: WorkKind,
    tenant: &'a str,
    cost: Money,
    tags: &'a FinOpsTags,
    priority: Priority,
    at: DateTime<Utc>,
}

impl LapVerse {
    /// After a crash between acceptance and charge: charge (or reject), book, queue.
    async fn resettle(
        &self,
        id: &str,
        a: Accepted<'_>,
        event: &StoredEvent,
    ) -> Result<(), LapVerseError> {
        if self.status(a.kind, id).await? == Some(Status::Rejected) {
            return Ok(());
        }
        let tenant = self.tenant(a.tenant).await?;
        let meta = stamp(meta_for(event, a.at)?, a.tags);
        let settled = self
            .settle_acceptance(
                a.kind,
                id,
                a.tenant,
                &tenant,
                a.cost,
                &a.tags.cost_center,
                a.tags,
                a.priority,
                a.at,
                &meta,
            )
            .await;
        match settled {
            Ok(()) | Err(LapVerseError::MarginGuardrailExceeded { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Promotes the round's champion when it says so, and queues its notification.
    async fn round_completed(
        &self,
        id: &str,
        result: &CompetitionResult,
        at: DateTime<Utc>,
        event: &StoredEvent,
    ) -> Result<(), LapVerseError> {
        let Some(spec) = self.competition(id).await?.spec().cloned() else {
            return Ok(());
        };
        if result.promote {
            let meta = stamp(meta_for(event, at)?, &spec.tags);
            self.promote(
                &spec.tenant,
                id,
                result.champion,
                result.win_rate_delta,
                at,
                &meta,
            )
            .await?;
        }
        let n = competition_notification(&spec.tenant, id, result, at);
        jobs::enqueue_notification(&self.store, &n).await
    }

    /// Refunds failed work's charge, in the month it was charged in.
    async fn refund(
        &self,
        kind: WorkKind,
        id: &str,
        failed_at: DateTime<Utc>,
        event: &StoredEvent,
    ) -> Result<(), LapVerseError> {
        let owner = match kind {
            WorkKind::Task => {
                let t = self.task(id).await?;
                t.spec()
                    .map(|s| s.tags.clone())
                    .zip(t.lifecycle().map(|l| l.accepted_at))
            }
            WorkKind::Competition => {
                let c = self.competition(id).await?;
                c.spec()
                    .map(|s| s.tags.clone())
                    .zip(c.lifecycle().map(|l| l.accepted_at))
            }
        };
        let Some((tags, accepted_at)) = owner else {
            return Ok(());
        };
        let tenant = tags.tenant_id.as_str();
        let budget = self.budget(tenant, accepted_at).await?;
        if budget.charged(id).is_none() || budget.is_refunded(id) {
            return Ok(());
        }
        let meta = stamp(meta_for(event, failed_at)?, &tags);
        let refund = BudgetCommand::Refund {
            work_id: id.to_owned(),
            reason: REFUND_REASON.to_owned(),
            occurred_at: failed_at,
        };
        self.budgets
            .execute(&budget_id(tenant, accepted_at), refund, &meta)
            .await
            .map_err(LapVerseError::from)
    }
}
