//! The Lap-Verse write side: tenants, tasks and self-compete rounds.
//!
//! A request is admitted in this order, and a refusal writes nothing: input (400) → tenant
//! (404 `TENANT_NOT_FOUND`) → feature flag (404 `FEATURE_NOT_AVAILABLE`) → SLO error budget
//! (503 `ERROR_BUDGET_EXHAUSTED`). It is then accepted (an event on the `Task` or `Competition`
//! aggregate, whose id is derived from the tenant and the client's idempotency key) and charged
//! on the tenant's month (`TenantBudget`, which applies the margin guardrail under optimistic
//! concurrency). A guardrail refusal rejects the accepted item (402
//! `MARGIN_GUARDRAIL_EXCEEDED`, recorded, never charged). A charge becomes a balanced journal
//! entry (tenant cost-center account → platform revenue) and a job on the durable queue.
//!
//! Everything after acceptance is repeated, idempotently, by the process manager
//! ([`process::LapVerseProcess`]) so that a crash between two commits loses nothing; the
//! workers ([`jobs::Workers`]) run the queued work.

pub mod jobs;
pub mod process;

use std::sync::Arc;

use agora_domain::forecast::Strategy;
use agora_domain::ledger::{
    AccountId, JournalEntry, LedgerCommand, Posting, LAPVERSE_CHARGE_ENTRY_PREFIX,
    LAPVERSE_REFUND_ENTRY_PREFIX,
};
use agora_domain::logmarket::redact::redact;
use agora_domain::money::{Currency, Money};
use agora_domain::tenancy::budget::{
    budget_id, BudgetCommand, BudgetError, TenantBudget, WorkKind,
};
use agora_domain::tenancy::competition::{
    Competition, CompetitionCommand, CompetitionError, CompetitionSpec,
};
use agora_domain::tenancy::cost::{
    CompetitorCount, Complexity, FinOpsTags, RawFinOpsTags, TagValue,
};
use agora_domain::tenancy::lifecycle::Status;
use agora_domain::tenancy::slo::{EventCounts, WindowCounts};
use agora_domain::tenancy::task::{Task, TaskCommand, TaskError, TaskSpec};
use agora_domain::tenancy::tenant::{Tenant, TenantCommand, TenantError};
use agora_domain::tenancy::work::{
    self, Priority, SeriesInput, TaskInput, TaskType, DEFAULT_HORIZON, DEFAULT_LEVEL_PERCENT,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::bus::{CommandBus, CommandError, CommitSignal};
use crate::journal::{balances_for, BalanceLookup};
use crate::metadata::CommandMetadata;
use crate::store::Store;
use crate::webhooks::{DispatchConfig, WebhookDispatcher};

/// Namespace of the work ids derived from (tenant, idempotency key).
const WORK_NAMESPACE: Uuid = Uuid::from_u128(0x6c61_7076_6572_7365_2d77_6f72_6b2d_6964);

/// Feature flag gating self-compete rounds (undefined = available).
pub const SELF_COMPETE_FLAG: &str = "self-compete";

/// Why a Lap-Verse command failed. Each maps to one HTTP status and GraphQL code.
#[derive(Debug, thiserror::Error)]
pub enum LapVerseError {
    /// 400 `BAD_REQUEST`.
    #[error("{0}")]
    BadInput(String),
    /// 404 `TENANT_NOT_FOUND`.
    #[error("tenant {0} is not registered")]
    TenantNotFound(String),
    /// 404 `NOT_FOUND`.
    #[error("{0} not found")]
    NotFound(String),
    /// 404 `FEATURE_NOT_AVAILABLE`.
    #[error("feature {feature} is not available for this tenant")]
    FeatureNotAvailable { feature: String },
    /// 402 `MARGIN_GUARDRAIL_EXCEEDED`.
    #[error("margin guardrail exceeded: month-end spend projected at {projected} exceeds the limit {limit}")]
    MarginGuardrailExceeded { projected: Money, limit: Money },
    /// 503 `ERROR_BUDGET_EXHAUSTED`.
    #[error("the tenant's SLO error budget is exhausted ({bad} of {total} work items failed in the last {period_days} days against a {target} target)")]
    ErrorBudgetExhausted {
        bad: u64,
        total: u64,
        period_days: u32,
        target: Decimal,
    },
    /// 409 `IDEMPOTENCY_KEY_REUSED`.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyConflict,
    /// 409 `CONFLICT`: a rule refuses the request as it stands (retrying will not help).
    #[error("{0}")]
    Conflict(String),
    /// 409 `CONFLICT`, retryable: the target kept changing under concurrent writers.
    #[error("{0}")]
    Busy(String),
    /// A replay of a request that was refused and recorded (the guardrail): the same code again.
    #[error("{reason}")]
    RefusedEarlier { code: String, reason: String },
    /// 500.
    #[error("store failure: {0}")]
    Storage(String),
    /// 500: a stored event the process manager cannot decode (it is parked, never skipped).
    #[error("event at position {position} ({event_type}) cannot be decoded: {reason}")]
    UnreadableEvent {
        position: i64,
        event_type: String,
        reason: String,
    },
}

impl LapVerseError {
    /// The stable error code (GraphQL `extensions.code`, REST `error.code`).
    pub fn code(&self) -> &str {
        match self {
            Self::RefusedEarlier { code, .. } => code,
            Self::BadInput(_) => "BAD_REQUEST",
            Self::TenantNotFound(_) => "TENANT_NOT_FOUND",
            Self::NotFound(_) => "NOT_FOUND",
            Self::FeatureNotAvailable { .. } => "FEATURE_NOT_AVAILABLE",
            Self::MarginGuardrailExceeded { .. } => "MARGIN_GUARDRAIL_EXCEEDED",
            Self::ErrorBudgetExhausted { .. } => "ERROR_BUDGET_EXHAUSTED",
            Self::IdempotencyConflict => "IDEMPOTENCY_KEY_REUSED",
            Self::Conflict(_) | Self::Busy(_) => "CONFLICT",
            Self::Storage(_) | Self::UnreadableEvent { .. } => "INTERNAL",
        }
    }

    /// Whether the same request could succeed if sent again (contention, storage).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Busy(_) | Self::Storage(_))
    }
}

/// Runs an admission dry run of the work on the blocking pool: its refusal is `BadInput` (400).
async fn off_runtime<F>(check: F) -> Result<(), LapVerseError>
where
    F: FnOnce() -> Result<(), work::WorkError> + Send + 'static,
{
    tokio::task::spawn_blocking(check)
        .await
        .map_err(|e| LapVerseError::Storage(format!("admission check failed: {e}")))?
        .map_err(|e| LapVerseError::BadInput(e.to_string()))
}

/// Tries to settle an accepted item's charge this many times before leaving it to the process
/// manager (which repeats the settlement until it is done).
pub const SETTLE_ATTEMPTS: u32 = 5;
/// First pause between settlement attempts (doubled each time).
pub const SETTLE_BACKOFF_MS: u64 = 10;

fn command_error<E: std::error::Error>(
    e: CommandError<E>,
    rejected: impl FnOnce(E) -> LapVerseError,
) -> LapVerseError {
    match e {
        CommandError::Rejected(e) => rejected(e),
        CommandError::Conflict => LapVerseError::Busy("concurrent update; retry".into()),
        CommandError::Storage(s) => LapVerseError::Storage(s),
    }
}

/// How an aggregate's refusal reads as a Lap-Verse error.
pub trait Refusal: std::error::Error + Sized {
    fn refusal(self) -> LapVerseError;
}

impl<E: Refusal> From<CommandError<E>> for LapVerseError {
    fn from(e: CommandError<E>) -> Self {
        command_error(e, Refusal::refusal)
    }
}

impl Refusal for TenantError {
    fn refusal(self) -> LapVerseError {
        match self {
            TenantError::TenantNotFound => LapVerseError::TenantNotFound("requested".into()),
            TenantError::TenantAlreadyRegistered => LapVerseError::Conflict(self.to_string()),
            other => LapVerseError::BadInput(other.to_string()),
        }
    }
}

impl Refusal for TaskError {
    fn refusal(self) -> LapVerseError {
        match self {
            TaskError::IdempotencyConflict => LapVerseError::IdempotencyConflict,
            TaskError::InvalidSpec(m) => LapVerseError::BadInput(m),
            other => LapVerseError::Conflict(other.to_string()),
        }
    }
}

impl Refusal for CompetitionError {
    fn refusal(self) -> LapVerseError {
        match self {
            CompetitionError::IdempotencyConflict => LapVerseError::IdempotencyConflict,
            CompetitionError::InvalidSpec(m) => LapVerseError::BadInput(m),
            other => LapVerseError::Conflict(other.to_string()),
        }
    }
}

impl Refusal for BudgetError {
    fn refusal(self) -> LapVerseError {
        match self {
            BudgetError::MarginGuardrailExceeded { projected, limit } => {
                LapVerseError::MarginGuardrailExceeded { projected, limit }
            }
            other => LapVerseError::Conflict(other.to_string()),
        }
    }
}

/// Good and total finished work of a tenant in the SLO windows, counted by a read model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub windows: WindowCounts,
    /// Over the SLO period.
    pub period: EventCounts,
}

/// Where the SLO counts come from (the `rm_lv_work` read model in production).
#[async_trait]
pub trait OutcomeSource: Send + Sync {
    async fn counts(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        period_days: u32,
    ) -> Result<OutcomeCounts, String>;
}

/// A tenant's SLO position at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct SloStatus {
    pub target: Decimal,
    pub period_days: u32,
    pub counts: OutcomeCounts,
    /// Burn rates over 5 m, 30 m, 1 h, 6 h and the whole period.
    pub burn_5m: Decimal,
    pub burn_30m: Decimal,
    pub burn_1h: Decimal,
    pub burn_6h: Decimal,
    pub burn_period: Decimal,
    pub remaining: Decimal,
    pub exhausted: bool,
    /// `page` or `ticket` when a multi-window rule fires.
    pub alert: Option<&'static str>,
}

/// Told when work finishes (metrics).
pub trait WorkObserver: Send + Sync {
    fn task_finished(&self, tenant: &str, task_type: TaskType, completed: bool, duration_ms: u64);
    fn competition_finished(&self, tenant: &str, cost: Money, win_rate_delta: Decimal);
    fn burn_rate(&self, tenant: &str, one_hour: Decimal);
}

/// Injects failures into attempts (tests and chaos drills; never set in production).
pub trait FaultInjector: Send + Sync {
    /// `Some(reason)` fails this attempt with the reason.
    fn before_attempt(&self, kind: WorkKind, id: &str, attempt: u32) -> Option<String>;
}

/// FinOps tag defaults and worker settings.
#[derive(Clone, Debug)]
pub struct LapVerseSettings {
    pub application: String,
    pub environment: String,
    pub version: String,
    /// Concurrent jobs per queue.
    pub concurrency: usize,
    /// How long a claimed job is held before another worker may take it over.
    pub lease: std::time::Duration,
    /// Queue poll interval when idle.
    pub poll: std::time::Duration,
    pub webhooks: DispatchConfig,
}

impl Default for LapVerseSettings {
    fn default() -> Self {
        Self {
            application: "lapverse-monitoring".into(),
            environment: "dev".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            concurrency: 10,
            lease: std::time::Duration::from_secs(60),
            poll: std::time::Duration::from_millis(250),
            webhooks: DispatchConfig::default(),
        }
    }
}

/// Common request fields of tasks and rounds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkRequest {
    pub tenant: String,
    pub idempotency_key: String,
    pub priority: Priority,
    pub cost_center: Option<String>,
    pub owner: Option<String>,
    pub platforms: Vec<String>,
    pub series: Option<SeriesInput>,
    pub horizon: Option<usize>,
}

/// `POST /api/v2/tasks`.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRequest {
    pub work: WorkRequest,
    pub task_type: TaskType,
    pub description: String,
    pub complexity: Complexity,
    pub targeting_key: Option<String>,
    pub level_percent: Option<f64>,
    pub log: Option<String>,
}

/// `POST /api/v2/self-compete`.
#[derive(Clone, Debug, PartialEq)]
pub struct CompetitionRequest {
    pub work: WorkRequest,
    pub content: String,
    pub competitors: Vec<Strategy>,
}

/// What an accepted (or replayed) request returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub id: String,
    pub status: Status,
}

/// The work id of a client key: the same tenant and key always name the same task or round.
pub fn work_id(kind: WorkKind, tenant: &str, idempotency_key: &str) -> String {
    Uuid::new_v5(
        &WORK_NAMESPACE,
        format!("{}\n{tenant}\n{idempotency_key}", kind.as_str()).as_bytes(),
    )
    .to_string()
}

/// `tenant:{tenant}:cc:{cost center}`: what a tenant's cost center owes.
pub fn cost_account(tenant: &str, cost_center: &str) -> Result<AccountId, LapVerseError> {
    AccountId::parse(&format!("tenant:{tenant}:cc:{cost_center}"))
        .map_err(|e| LapVerseError::BadInput(format!("cost center {cost_center:?}: {e}")))
}

/// Journal entry id of a work item's charge.
pub fn charge_entry_id(work_id: &str) -> String {
    format!("{LAPVERSE_CHARGE_ENTRY_PREFIX}{work_id}")
}

/// Journal entry id of a work item's refund.
pub fn refund_entry_id(work_id: &str) -> String {
    format!("{LAPVERSE_REFUND_ENTRY_PREFIX}{work_id}")
}

/// A valid tenant id: `[a-z0-9][a-z0-9_-]{0,62}` (also a ledger account segment).
pub fn check_tenant_id(tenant: &str) -> Result<(), LapVerseError> {
    let ok = (1..=63).contains(&tenant.len())
        && tenant.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && tenant
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LapVerseError::BadInput(format!(
            "tenant id {tenant:?} must match [a-z0-9][a-z0-9_-]{{0,62}}"
        )))
    }
}

/// The Lap-Verse service.
pub struct LapVerse {
    pub(crate) store: Store,
    pub(crate) tenants: CommandBus<Tenant>,
    pub(crate) tasks: CommandBus<Task>,
    pub(crate) competitions: CommandBus<Competition>,
    pub(crate) budgets: CommandBus<TenantBudget>,
    pub(crate) journal: CommandBus<JournalEntry>,
    pub(crate) dispatcher: WebhookDispatcher,
    pub(crate) settings: LapVerseSettings,
    pub(crate) outcomes: Arc<dyn OutcomeSource>,
    pub(crate) balances: Arc<dyn BalanceLookup>,
    pub(crate) observer: Option<Arc<dyn WorkObserver>>,
    pub(crate) faults: Option<Arc<dyn FaultInjector>>,
}

impl LapVerse {
    pub fn new(
        store: &Store,
        signal: CommitSignal,
        settings: LapVerseSettings,
        outcomes: Arc<dyn OutcomeSource>,
        balances: Arc<dyn BalanceLookup>,
    ) -> Self {
        Self {
            store: store.clone(),
            tenants: CommandBus::new(store, signal.clone(), ()),
            tasks: CommandBus::new(store, signal.clone(), ()),
            competitions: CommandBus::new(store, signal.clone(), ()),
            budgets: CommandBus::new(store, signal.clone(), ()),
            journal: CommandBus::new(store, signal.clone(), ()),
            dispatcher: WebhookDispatcher::new(store, signal, settings.webhooks.clone()),
            settings,
            outcomes,
            balances,
            observer: None,
            faults: None,
        }
    }

    pub fn with_observer(mut self, observer: Arc<dyn WorkObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn with_faults(mut self, faults: Arc<dyn FaultInjector>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Runs an admin command on a tenant.
    pub async fn tenant_command(
        &self,
        tenant: &str,
        command: TenantCommand,
        meta: &CommandMetadata,
    ) -> Result<Tenant, LapVerseError> {
        check_tenant_id(tenant)?;
        self.tenants.execute(tenant, command, meta).await.map_err(
            |e| match LapVerseError::from(e) {
                LapVerseError::TenantNotFound(_) => LapVerseError::TenantNotFound(tenant.into()),
                other => other,
            },
        )?;
        self.tenant(tenant).await
    }

    /// A tenant's current state (unregistered → `TenantNotFound`).
    pub async fn tenant(&self, tenant: &str) -> Result<Tenant, LapVerseError> {
        let state = self
            .tenants
            .load(tenant)
            .await
            .map_err(LapVerseError::from)?;
        if state.is_registered() {
            Ok(state)
        } else {
            Err(LapVerseError::TenantNotFound(tenant.into()))
        }
    }

    pub async fn task(&self, id: &str) -> Result<Task, LapVerseError> {
        let state = self.tasks.load(id).await.map_err(LapVerseError::from)?;
        if state.spec().is_some() {
            Ok(state)
        } else {
            Err(LapVerseError::NotFound(format!("task {id}")))
        }
    }

    pub async fn competition(&self, id: &str) -> Result<Competition, LapVerseError> {
        let state = self
            .competitions
            .load(id)
            .await
            .map_err(LapVerseError::from)?;
        if state.spec().is_some() {
            Ok(state)
        } else {
            Err(LapVerseError::NotFound(format!("competition {id}")))
        }
    }

    /// The tenant's month budget containing `at`.
    pub async fn budget(
        &self,
        tenant: &str,
        at: DateTime<Utc>,
    ) -> Result<TenantBudget, LapVerseError> {
        self.budgets
            .load(&budget_id(tenant, at))
            .await
            .map_err(LapVerseError::from)
    }

    /// The tenant's SLO position now (also reported to the observer as a burn rate).
    pub async fn slo_status(
        &self,
        tenant: &Tenant,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<SloStatus, LapVerseError> {
        let slo = tenant
            .slo()
            .ok_or_else(|| LapVerseError::TenantNotFound(id.into()))?;
        let counts = self
            .outcomes
            .counts(id, now, slo.period_days())
            .await
            .map_err(LapVerseError::Storage)?;
        let burn = |c: EventCounts| slo.burn_rate(c).to_decimal();
        let budget = slo.error_budget(counts.period);
        let alert = slo.default_alert(&counts.windows).map(|a| match a {
            agora_domain::tenancy::slo::AlertSeverity::Page => "page",
            agora_domain::tenancy::slo::AlertSeverity::Ticket => "ticket",
        });
        let status = SloStatus {
            target: slo.target().as_decimal(),
            period_days: slo.period_days(),
            counts,
            burn_5m: burn(counts.windows.five_minutes),
            burn_30m: burn(counts.windows.thirty_minutes),
            burn_1h: burn(counts.windows.one_hour),
            burn_6h: burn(counts.windows.six_hours),
            burn_period: burn(counts.period),
            remaining: budget.remaining(),
            exhausted: budget.budget_exhausted(),
            alert,
        };
        if let Some(o) = &self.observer {
            o.burn_rate(id, status.burn_1h);
        }
        Ok(status)
    }

    /// Tenant, flag and error-budget checks shared by tasks and rounds.
    async fn admit(
        &self,
        request: &WorkRequest,
        feature: &str,
        targeting_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Tenant, LapVerseError> {
        check_tenant_id(&request.tenant)?;
        let tenant = self.tenant(&request.tenant).await?;
        if let Some(flag) = tenant.flag(feature) {
            if !flag.is_enabled_for(targeting_key) {
                return Err(LapVerseError::FeatureNotAvailable {
                    feature: feature.to_owned(),
                });
            }
        }
        let slo = self.slo_status(&tenant, &request.tenant, now).await?;
        if slo.exhausted {
            return Err(LapVerseError::ErrorBudgetExhausted {
                bad: slo.counts.period.bad(),
                total: slo.counts.period.total(),
                period_days: slo.period_days,
                target: slo.target,
            });
        }
        Ok(tenant)
    }

    fn tags(
        &self,
        tenant: &str,
        cost_center: &str,
        owner: &str,
    ) -> Result<FinOpsTags, LapVerseError> {
        FinOpsTags::parse(RawFinOpsTags {
            application: &self.settings.application,
            environment: &self.settings.environment,
            tenant_id: tenant,
            cost_center,
            owner,
            version: &self.settings.version,
        })
        .map_err(|e| LapVerseError::BadInput(format!("FinOps tags: {e:?}")))
    }

    /// Resolves cost center and owner, validates them, and stamps the FinOps tags on `meta`.
    fn finops(
        &self,
        tenant: &Tenant,
        request: &WorkRequest,
        meta: &CommandMetadata,
    ) -> Result<(TagValue, FinOpsTags, CommandMetadata), LapVerseError> {
        let cost_center = match &request.cost_center {
            Some(cc) => cc.clone(),
            None => tenant
                .cost_center()
                .map(|c| c.as_str().to_owned())
                .ok_or_else(|| LapVerseError::TenantNotFound(request.tenant.clone()))?,
        };
        cost_account(&request.tenant, &cost_center)?;
        let owner = request.owner.clone().unwrap_or_else(|| meta.actor.clone());
        let owner = sanitize_owner(&owner);
        let tags = self.tags(&request.tenant, &cost_center, &owner)?;
        let meta = stamp(meta.clone(), &tags);
        Ok((tags.cost_center.clone(), tags, meta))
    }

    fn series_of(
        &self,
        tenant: &Tenant,
        request: &WorkRequest,
    ) -> Result<SeriesInput, LapVerseError> {
        let series = match &request.series {
            Some(s) => s.clone(),
            None => tenant.series().cloned().ok_or_else(|| {
                LapVerseError::BadInput(
                    "no series: send `series` or register one for the tenant".into(),
                )
            })?,
        };
        work::validate_series(&series).map_err(|e| LapVerseError::BadInput(e.to_string()))?;
        Ok(series)
    }

    /// Accepts a task (202) or refuses it; see the module docs for the order of checks.
    pub async fn submit_task(
        &self,
        request: TaskRequest,
        meta: &CommandMetadata,
    ) -> Result<Receipt, LapVerseError> {
        check_tenant_id(&request.work.tenant)?;
        let id = work_id(
            WorkKind::Task,
            &request.work.tenant,
            &request.work.idempotency_key,
        );
        if let Some(receipt) = self.task_replay(&id, &request).await? {
            return Ok(receipt);
        }
        let now = meta.occurred_at;
        let targeting = request
            .targeting_key
            .clone()
            .or_else(|| request.work.cost_center.clone())
            .unwrap_or_else(|| request.work.tenant.clone());
        let tenant = self
            .admit(
                &request.work,
                &request.task_type.flag_name(),
                &targeting,
                now,
            )
            .await?;
        let (cost_center, tags, meta) = self.finops(&tenant, &request.work, meta)?;
        let input = match request.task_type {
            TaskType::Forecast | TaskType::Analysis => TaskInput::Series {
                series: self.series_of(&tenant, &request.work)?,
                horizon: request.work.horizon.unwrap_or(DEFAULT_HORIZON),
                level_percent: request.level_percent.unwrap_or(DEFAULT_LEVEL_PERCENT),
            },
            TaskType::LogAnalysis => {
                let log = request.log.as_deref().ok_or_else(|| {
                    LapVerseError::BadInput("a LOG_ANALYSIS task needs `log`".into())
                })?;
                TaskInput::Log {
                    redacted_text: redact(log).into_owned(),
                }
            }
        };
        let variant =
            (request.task_type == TaskType::Forecast).then(|| tenant.variant_for(&targeting));
        // Refuse now (400) what the work would refuse whenever it ran: accepted work that can
        // only fail would be charged, retried and counted against the tenant's error budget.
        let (task_type, probe, strategy) = (
            request.task_type,
            input.clone(),
            variant.unwrap_or(Strategy::Balanced),
        );
        off_runtime(move || work::check_task_input(task_type, &probe, strategy)).await?;
        let cost = request.complexity.task_cost();
        let spec = TaskSpec {
            tenant: request.work.tenant.clone(),
            task_type: request.task_type,
            priority: request.work.priority,
            // Free text is stored redacted, like logs (secrets, e-mail, IPs).
            description: redact(&request.description).into_owned(),
            complexity: request.complexity,
            cost,
            tags: tags.clone(),
            input,
            variant,
            targeting_key: targeting,
            platforms: request.work.platforms,
        };
        self.tasks
            .execute(
                &id,
                TaskCommand::Accept {
                    spec,
                    occurred_at: now,
                },
                &meta,
            )
            .await?;
        self.settle_or_defer(&id, || {
            self.settle_acceptance(
                WorkKind::Task,
                &id,
                &request.work.tenant,
                &tenant,
                cost,
                &cost_center,
                &tags,
                request.work.priority,
                now,
                &meta,
            )
        })
        .await?;
        Ok(Receipt {
            id,
            status: Status::Accepted,
        })
    }

    /// Settles an accepted item (charge, books, queue). Once accepted, an item is never answered
    /// with a retryable error: contention or a storage failure that outlasts
    /// [`SETTLE_ATTEMPTS`] leaves the settlement to the process manager, and the client gets its
    /// 202 (a retry under a new key would otherwise be a second, charged item). A rule's refusal
    /// (the guardrail) is still returned.
    async fn settle_or_defer<F, Fut>(&self, id: &str, settle: F) -> Result<(), LapVerseError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), LapVerseError>>,
    {
        let mut pause = std::time::Duration::from_millis(SETTLE_BACKOFF_MS);
        for attempt in 1..=SETTLE_ATTEMPTS {
            match settle().await {
                Err(e) if e.is_retryable() && attempt < SETTLE_ATTEMPTS => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(work = id, error = %e, "settlement left to the process manager");
                    return Ok(());
                }
                other => return other,
            }
        }
        Ok(())
    }

    /// The receipt of a task already accepted under this key, if the request is the same one;
    /// `IdempotencyConflict` when the key names a different request.
    async fn task_replay(
        &self,
        id: &str,
        request: &TaskRequest,
    ) -> Result<Option<Receipt>, LapVerseError> {
        let existing = self.tasks.load(id).await.map_err(LapVerseError::from)?;
        if let Some(spec) = existing.spec() {
            if !same_task(spec, request) {
                return Err(LapVerseError::IdempotencyConflict);
            }
        }
        replay_of(id, existing.status(), existing.rejection())
    }

    async fn competition_replay(
        &self,
        id: &str,
        request: &CompetitionRequest,
    ) -> Result<Option<Receipt>, LapVerseError> {
        let existing = self
            .competitions
            .load(id)
            .await
            .map_err(LapVerseError::from)?;
        if let Some(spec) = existing.spec() {
            if !same_competition(spec, request) {
                return Err(LapVerseError::IdempotencyConflict);
            }
        }
        replay_of(id, existing.status(), existing.rejection())
    }

    /// Launches a self-compete round (202) or refuses it.
    pub async fn launch_competition(
        &self,
        request: CompetitionRequest,
        meta: &CommandMetadata,
    ) -> Result<Receipt, LapVerseError> {
        check_tenant_id(&request.work.tenant)?;
        let id = work_id(
            WorkKind::Competition,
            &request.work.tenant,
            &request.work.idempotency_key,
        );
        if let Some(receipt) = self.competition_replay(&id, &request).await? {
            return Ok(receipt);
        }
        let now = meta.occurred_at;
        let competitors = if request.competitors.is_empty() {
            Strategy::ALL.to_vec()
        } else {
            request.competitors.clone()
        };
        let count = CompetitorCount::try_new(competitors.len())
            .map_err(|e| LapVerseError::BadInput(e.to_string()))?;
        let targeting = request
            .work
            .cost_center
            .clone()
            .unwrap_or_else(|| request.work.tenant.clone());
        let tenant = self
            .admit(&request.work, SELF_COMPETE_FLAG, &targeting, now)
            .await?;
        let (cost_center, tags, meta) = self.finops(&tenant, &request.work, meta)?;
        let series = self.series_of(&tenant, &request.work)?;
        let horizon = request.work.horizon.unwrap_or(DEFAULT_HORIZON);
        let (probe, rivals) = (series.clone(), competitors.clone());
        off_runtime(move || work::check_competition_input(&probe, horizon, &rivals)).await?;
        let cost = count.competition_cost();
        let spec = CompetitionSpec {
            tenant: request.work.tenant.clone(),
            content: redact(&request.content).into_owned(),
            priority: request.work.priority,
            competitors,
            series,
            horizon,
            production: tenant.production_variant(),
            cost,
            tags: tags.clone(),
            platforms: request.work.platforms,
        };
        self.competitions
            .execute(
                &id,
                CompetitionCommand::Launch {
                    spec,
                    occurred_at: now,
                },
                &meta,
            )
            .await?;
        self.settle_or_defer(&id, || {
            self.settle_acceptance(
                WorkKind::Competition,
                &id,
                &request.work.tenant,
                &tenant,
                cost,
                &cost_center,
                &tags,
                request.work.priority,
                now,
                &meta,
            )
        })
        .await?;
        Ok(Receipt {
            id,
            status: Status::Accepted,
        })
    }

    /// Charges an accepted item (or rejects it on the guardrail), books the charge and queues
    /// the job. Idempotent; the process manager repeats it after a crash.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn settle_acceptance(
        &self,
        kind: WorkKind,
        id: &str,
        tenant_id: &str,
        tenant: &Tenant,
        cost: Money,
        cost_center: &TagValue,
        tags: &FinOpsTags,
        priority: Priority,
        accepted_at: DateTime<Utc>,
        meta: &CommandMetadata,
    ) -> Result<(), LapVerseError> {
        let guardrail = tenant
            .margin_guardrail()
            .ok_or_else(|| LapVerseError::TenantNotFound(tenant_id.into()))?;
        let charge = BudgetCommand::Charge {
            work_id: id.to_owned(),
            kind,
            amount: cost,
            cost_center: cost_center.clone(),
            tags: tags.clone(),
            guardrail,
            occurred_at: accepted_at,
        };
        match self
            .budgets
            .execute(&budget_id(tenant_id, accepted_at), charge, meta)
            .await
            .map_err(LapVerseError::from)
        {
            Ok(()) => {}
            Err(refused @ LapVerseError::MarginGuardrailExceeded { .. }) => {
                self.reject(
                    kind,
                    id,
                    refused.code(),
                    &refused.to_string(),
                    accepted_at,
                    meta,
                )
                .await?;
                return Err(refused);
            }
            Err(other) => return Err(other),
        }
        self.book_charge(id, tenant_id, cost_center.as_str(), cost, accepted_at, meta)
            .await?;
        jobs::enqueue_work(&self.store, kind, id, tenant_id, priority, accepted_at).await
    }

    async fn reject(
        &self,
        kind: WorkKind,
        id: &str,
        code: &str,
        reason: &str,
        at: DateTime<Utc>,
        meta: &CommandMetadata,
    ) -> Result<(), LapVerseError> {
        let (code, reason) = (code.to_owned(), reason.to_owned());
        let done = match kind {
            WorkKind::Task => self
                .tasks
                .execute(
                    id,
                    TaskCommand::Reject {
                        code,
                        reason,
                        occurred_at: at,
                    },
                    meta,
                )
                .await
                .map_err(LapVerseError::from),
            WorkKind::Competition => self
                .competitions
                .execute(
                    id,
                    CompetitionCommand::Reject {
                        code,
                        reason,
                        occurred_at: at,
                    },
                    meta,
                )
                .await
                .map_err(LapVerseError::from),
        };
        // The process manager may have rejected it first (it repeats this after a crash).
        match done {
            Err(LapVerseError::Conflict(_) | LapVerseError::Busy(_))
                if self.status(kind, id).await? == Some(Status::Rejected) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// The current status of a task or round.
    pub async fn status(&self, kind: WorkKind, id: &str) -> Result<Option<Status>, LapVerseError> {
        Ok(match kind {
            WorkKind::Task => self
                .tasks
                .load(id)
                .await
                .map_err(LapVerseError::from)?
                .status(),
            WorkKind::Competition => self
                .competitions
                .load(id)
                .await
                .map_err(LapVerseError::from)?
                .status(),
        })
    }

    /// The charge's journal entry: the cost center owes, the platform earns.
    pub(crate) async fn book_charge(
        &self,
        work_id: &str,
        tenant: &str,
        cost_center: &str,
        amount: Money,
        at: DateTime<Utc>,
        meta: &CommandMetadata,
    ) -> Result<(), LapVerseError> {
        let memo = format!("lap-verse work {work_id} charged to {tenant}/{cost_center}");
        self.book(
            &charge_entry_id(work_id),
            tenant,
            cost_center,
            amount,
            memo,
            at,
            meta,
        )
        .await
    }

    /// The refund's journal entry: the charge reversed.
    pub(crate) async fn book_refund(
        &self,
        work_id: &str,
        tenant: &str,
        cost_center: &str,
        amount: Money,
        at: DateTime<Utc>,
        meta: &CommandMetadata,
    ) -> Result<(), LapVerseError> {
        let memo = format!("lap-verse work {work_id} refunded to {tenant}/{cost_center}");
        let negative = amount
            .checked_neg()
            .map_err(|e| LapVerseError::BadInput(e.to_string()))?;
        self.book(
            &refund_entry_id(work_id),
            tenant,
            cost_center,
            negative,
            memo,
            at,
            meta,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn book(
        &self,
        entry_id: &str,
        tenant: &str,
        cost_center: &str,
        debit: Money,
        memo: String,
        at: DateTime<Utc>,
        meta: &CommandMetadata,
    ) -> Result<(), LapVerseError> {
        let credit = debit
            .checked_neg()
            .map_err(|e| LapVerseError::BadInput(e.to_string()))?;
        let postings = vec![
            Posting::new(cost_account(tenant, cost_center)?, debit),
            Posting::new(AccountId::platform_revenue(), credit),
        ];
        let balances = balances_for(self.balances.as_ref(), Currency::usd(), &postings)
            .await
            .map_err(LapVerseError::Storage)?;
        let record = LedgerCommand::Record {
            currency: Currency::usd(),
            postings,
            memo,
            occurred_at: at,
            balances,
        };
        self.journal
            .execute(entry_id, record, meta)
            .await
            .map_err(|e| command_error(e, |e| LapVerseError::Conflict(e.to_string())))
    }
}

/// Whether the shared fields the client chose match what was accepted (fields it left to
/// defaults match whatever the defaults were).
fn same_work(
    w: &WorkRequest,
    priority: Priority,
    tags: &FinOpsTags,
    platforms: &[String],
    series: Option<&SeriesInput>,
    horizon: usize,
) -> bool {
    let given =
        |asked: &Option<String>, got: &TagValue| asked.as_ref().is_none_or(|a| a == got.as_str());
    w.priority == priority
        && given(&w.cost_center, &tags.cost_center)
        && w.platforms == platforms
        && w.series.as_ref().is_none_or(|s| Some(s) == series)
        && w.horizon.is_none_or(|h| h == horizon)
}

fn same_task(spec: &TaskSpec, r: &TaskRequest) -> bool {
    let (series, horizon, level) = match &spec.input {
        TaskInput::Series {
            series,
            horizon,
            level_percent,
        } => (Some(series), *horizon, Some(*level_percent)),
        TaskInput::Log { .. } => (None, DEFAULT_HORIZON, None),
    };
    let log_matches = match (&spec.input, &r.log) {
        (TaskInput::Log { redacted_text }, Some(log)) => redact(log) == redacted_text.as_str(),
        (TaskInput::Log { .. }, None) => false,
        (_, log) => log.is_none(),
    };
    spec.task_type == r.task_type
        && spec.description == redact(&r.description)
        && spec.complexity == r.complexity
        && r.targeting_key
            .as_ref()
            .is_none_or(|k| *k == spec.targeting_key)
        && r.level_percent.is_none_or(|l| Some(l) == level)
        && log_matches
        && same_work(
            &r.work,
            spec.priority,
            &spec.tags,
            &spec.platforms,
            series,
            horizon,
        )
}

fn same_competition(spec: &CompetitionSpec, r: &CompetitionRequest) -> bool {
    let competitors = if r.competitors.is_empty() {
        Strategy::ALL.to_vec()
    } else {
        r.competitors.clone()
    };
    spec.content == redact(&r.content)
        && spec.competitors == competitors
        && same_work(
            &r.work,
            spec.priority,
            &spec.tags,
            &spec.platforms,
            Some(&spec.series),
            spec.horizon,
        )
}

fn replay_of(
    id: &str,
    status: Option<Status>,
    rejection: Option<(&str, &str)>,
) -> Result<Option<Receipt>, LapVerseError> {
    let Some(status) = status else {
        return Ok(None);
    };
    if status == Status::Rejected {
        let (code, reason) = rejection.unwrap_or(("MARGIN_GUARDRAIL_EXCEEDED", "rejected"));
        return Err(LapVerseError::RefusedEarlier {
            code: code.to_owned(),
            reason: reason.to_owned(),
        });
    }
    Ok(Some(Receipt {
        id: id.to_owned(),
        status,
    }))
}

/// Owner tag from a principal name: keeps `[A-Za-z0-9._-]`, at most 64 characters.
fn sanitize_owner(owner: &str) -> String {
    let cleaned: String = owner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "unknown".into()
    } else {
        cleaned
    }
}

/// Stamps the six FinOps tags on every event of the commit.
pub fn stamp(meta: CommandMetadata, tags: &FinOpsTags) -> CommandMetadata {
    meta.with_tag("application", tags.application.as_str())
        .with_tag("environment", tags.environment.as_str())
        .with_tag("tenantId", tags.tenant_id.as_str())
        .with_tag("costCenter", tags.cost_center.as_str())
        .with_tag("owner", tags.owner.as_str())
        .with_tag("version", tags.version.as_str())
}
