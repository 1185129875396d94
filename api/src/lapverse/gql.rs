//! Tenants, tasks and self-compete rounds over GraphQL: the same service as the REST adapters.
//! Tenant administration is admin-only; a tenant's own keys may submit and read its work.

use std::collections::BTreeSet;

use agora_commands::lapverse::{
    CompetitionRequest, LapVerseError, Receipt, SloStatus, TaskRequest, WorkRequest,
};
use agora_commands::CommandMetadata;
use agora_domain::access::Role;
use agora_domain::forecast::Strategy;
use agora_domain::tenancy::cost::{Complexity, TagValue};
use agora_domain::tenancy::flags::RolloutPercent;
use agora_domain::tenancy::guardrail::MarginThreshold;
use agora_domain::tenancy::slo::{SloTarget, DEFAULT_PERIOD_DAYS};
use agora_domain::tenancy::tenant::{
    FlagName, Tenant, TenantCommand, TenantName, TenantSlo, WebhookEvent, WebhookId, WebhookUrl,
};
use agora_domain::tenancy::work::{Priority, SeriesInput, TaskType};
use agora_projections::lapverse::{ChargebackLine, DeliveryRow, WorkRow};
use async_graphql::{Context, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;

use super::{api_error, may_act_for, may_read, views, READ_ANY_TENANT};
use crate::graphql::auth::Principal;
use crate::graphql::error::ApiError;
use crate::graphql::money::MoneyScalar;
use crate::graphql::schema::{caller, counted, metadata, resolve_key, state};

type Res<T> = Result<T, async_graphql::Error>;

const ANY_ROLE: &[Role] = &[
    Role::Client,
    Role::Seller,
    Role::Author,
    Role::Reviewer,
    Role::Finance,
    Role::Auditor,
    Role::Admin,
];

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadUserInput(e.to_string())
}

fn decimal(field: &str, s: &str) -> Result<Decimal, ApiError> {
    s.parse::<Decimal>()
        .map_err(|e| ApiError::BadUserInput(format!("{field}: {s:?} is not a decimal: {e}")))
}

#[derive(SimpleObject)]
pub struct LvFlag {
    pub name: String,
    pub enabled: bool,
    pub rollout_percent: i32,
}

#[derive(SimpleObject)]
pub struct LvWebhook {
    pub id: String,
    /// The destination URL: admins only (it may carry a secret); null for every other role.
    pub url: Option<String>,
    /// `competition_completed`, `champion_promoted`, `capsule_breaking_version`.
    pub events: Vec<String>,
}

#[derive(SimpleObject)]
pub struct LvSlo {
    /// e.g. "0.99".
    pub target: String,
    pub period_days: i32,
    pub good: i64,
    pub total: i64,
    /// Fraction of the error budget left, 0..=1.
    pub remaining: String,
    pub exhausted: bool,
    pub burn_rate_5m: String,
    pub burn_rate_30m: String,
    pub burn_rate_1h: String,
    pub burn_rate_6h: String,
    /// `page` or `ticket` when a multi-window burn-rate rule fires.
    pub alert: Option<String>,
}

impl From<&SloStatus> for LvSlo {
    fn from(s: &SloStatus) -> Self {
        Self {
            target: s.target.to_string(),
            period_days: s.period_days as i32,
            good: s.counts.period.good() as i64,
            total: s.counts.period.total() as i64,
            remaining: s.remaining.to_string(),
            exhausted: s.exhausted,
            burn_rate_5m: s.burn_5m.to_string(),
            burn_rate_30m: s.burn_30m.to_string(),
            burn_rate_1h: s.burn_1h.to_string(),
            burn_rate_6h: s.burn_6h.to_string(),
            alert: s.alert.map(str::to_owned),
        }
    }
}

#[derive(SimpleObject)]
pub struct LvTenant {
    pub id: String,
    pub name: String,
    pub mrr: MoneyScalar,
    pub cost_center: String,
    pub slo_target: String,
    pub slo_period_days: i32,
    pub margin_threshold: String,
    /// `threshold × MRR`: the month's spend limit.
    pub spend_limit: Option<MoneyScalar>,
    pub month_to_date: MoneyScalar,
    pub production_variant: String,
    pub stable_variant: String,
    pub flags: Vec<LvFlag>,
    pub webhooks: Vec<LvWebhook>,
    pub series_points: i32,
    pub slo: LvSlo,
}

#[derive(SimpleObject)]
pub struct LvWork {
    pub id: String,
    /// `task` or `competition`.
    pub kind: String,
    pub tenant: String,
    /// Tasks: FORECAST, ANALYSIS, LOG_ANALYSIS.
    pub task_type: Option<String>,
    /// accepted, rejected, running, retrying, completed, failed.
    pub status: String,
    pub priority: String,
    pub description: String,
    pub attempts: i64,
    pub cost: MoneyScalar,
    pub cost_center: String,
    pub tags: Json<serde_json::Value>,
    pub variant: Option<String>,
    pub last_error: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
    pub accepted_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub result: Option<Json<serde_json::Value>>,
    pub champion: Option<String>,
    pub production: Option<String>,
    pub win_rate_delta: Option<String>,
    pub promoted: Option<bool>,
    /// Rounds: every strategy's backtest with its rank among the competitors.
    pub entries: Option<Json<serde_json::Value>>,
    /// Keyset cursor for `before`.
    pub position: i64,
}

impl From<WorkRow> for LvWork {
    fn from(r: WorkRow) -> Self {
        let entries = views::entries(&r).map(|e| Json(json!(e)));
        Self {
            id: r.id,
            kind: r.kind,
            tenant: r.tenant,
            task_type: r.task_type,
            status: r.status,
            priority: r.priority,
            description: r.description,
            attempts: r.attempts,
            cost: MoneyScalar(r.cost),
            cost_center: r.cost_center,
            tags: Json(r.tags),
            variant: r.variant,
            last_error: r.last_error,
            retry_at: r.retry_at,
            accepted_at: r.accepted_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
            result: r.result.map(Json),
            champion: r.champion,
            production: r.production,
            win_rate_delta: r.win_rate_delta,
            promoted: r.promoted,
            entries,
            position: r.global_position,
        }
    }
}

#[derive(SimpleObject)]
pub struct LvChargebackLine {
    pub tenant: String,
    pub cost_center: String,
    /// `YYYY-MM`, UTC.
    pub month: String,
    /// Charges minus refunds, from the journal.
    pub amount: MoneyScalar,
    pub charges: i64,
    pub refunds: i64,
}

impl From<ChargebackLine> for LvChargebackLine {
    fn from(l: ChargebackLine) -> Self {
        Self {
            tenant: l.tenant,
            cost_center: l.cost_center,
            month: l.month,
            amount: MoneyScalar(l.amount),
            charges: l.charges,
            refunds: l.refunds,
        }
    }
}

#[derive(SimpleObject)]
pub struct LvDelivery {
    pub id: String,
    pub notification_id: String,
    pub event: String,
    pub webhook_id: String,
    /// The destination URL: admins only (it may carry a secret); null for every other role.
    pub url: Option<String>,
    /// pending, succeeded, skipped, abandoned.
    pub status: String,
    pub attempts: i64,
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl LvDelivery {
    fn view(d: DeliveryRow, show_url: bool) -> Self {
        Self {
            id: d.delivery_id,
            notification_id: d.notification_id,
            event: d.event,
            webhook_id: d.webhook_id,
            url: show_url.then_some(d.url),
            status: d.status,
            attempts: d.attempts,
            reason: d.reason,
            updated_at: d.updated_at,
        }
    }
}

#[derive(SimpleObject, Serialize, serde::Deserialize)]
pub struct LvReceipt {
    pub id: String,
    pub status: String,
}

impl From<Receipt> for LvReceipt {
    fn from(r: Receipt) -> Self {
        Self {
            id: r.id,
            status: r.status.as_str().to_owned(),
        }
    }
}

async fn tenant_view(ctx: &Context<'_>, id: &str, tenant: &Tenant) -> Result<LvTenant, ApiError> {
    let s = state(ctx);
    let show_urls = caller(ctx, ANY_ROLE)?.is_admin();
    let now = Utc::now();
    let service = &s.lapverse.service;
    let slo = service
        .slo_status(tenant, id, now)
        .await
        .map_err(api_error)?;
    let budget = service.budget(id, now).await.map_err(api_error)?;
    let profile = tenant
        .profile()
        .ok_or_else(|| ApiError::TenantNotFound(format!("tenant {id} is not registered")))?;
    Ok(LvTenant {
        id: id.to_owned(),
        name: profile.name.as_str().to_owned(),
        mrr: MoneyScalar(profile.mrr),
        cost_center: profile.cost_center.as_str().to_owned(),
        slo_target: slo.target.to_string(),
        slo_period_days: slo.period_days as i32,
        margin_threshold: profile.margin_threshold.as_decimal().to_string(),
        spend_limit: tenant
            .margin_guardrail()
            .and_then(|g| g.limit().ok())
            .map(MoneyScalar),
        month_to_date: MoneyScalar(budget.month_to_date()),
        production_variant: tenant.production_variant().name().to_owned(),
        stable_variant: tenant.stable_variant().name().to_owned(),
        flags: profile
            .flags
            .iter()
            .map(|(name, f)| LvFlag {
                name: name.as_str().to_owned(),
                enabled: f.enabled,
                rollout_percent: f.rollout_percent.get() as i32,
            })
            .collect(),
        webhooks: profile
            .webhooks
            .iter()
            .map(|(id, w)| LvWebhook {
                id: id.as_str().to_owned(),
                url: show_urls.then(|| w.url.as_str().to_owned()),
                events: w.events.iter().map(|e| e.as_str().to_owned()).collect(),
            })
            .collect(),
        series_points: tenant.series().map_or(0, |s| s.values.len() as i32),
        slo: LvSlo::from(&slo),
    })
}

/// Runs a tenant admin command once per idempotency key and returns the tenant.
async fn admin_command(
    ctx: &Context<'_>,
    tenant: &str,
    key: Option<String>,
    request: serde_json::Value,
    commands: impl FnOnce(DateTime<Utc>) -> Result<Vec<TenantCommand>, ApiError>,
) -> Res<LvTenant> {
    let p = caller(ctx, &[Role::Admin])?;
    may_act_for(p, tenant)?;
    let key = resolve_key(ctx, key)?;
    let s = state(ctx);
    counted(
        s,
        "tenant",
        s.idempotency
            .once(p, &key, &request, || async {
                let meta = metadata(ctx, p, &key)?;
                for command in commands(meta.occurred_at)? {
                    s.lapverse
                        .service
                        .tenant_command(tenant, command, &meta)
                        .await
                        .map_err(api_error)?;
                }
                Ok(true)
            })
            .await,
    )?;
    let state = s.lapverse.service.tenant(tenant).await.map_err(api_error)?;
    Ok(tenant_view(ctx, tenant, &state).await?)
}

fn slo(target: &str, days: Option<i32>) -> Result<TenantSlo, ApiError> {
    let target = SloTarget::try_new(decimal("sloTarget", target)?).map_err(bad)?;
    let days = days.map_or(Ok(DEFAULT_PERIOD_DAYS), |d| {
        u32::try_from(d).map_err(|_| bad("sloPeriodDays must be positive"))
    })?;
    TenantSlo::try_new(target, days).map_err(bad)
}

fn threshold(s: &str) -> Result<MarginThreshold, ApiError> {
    MarginThreshold::try_new(decimal("marginThreshold", s)?).map_err(bad)
}

#[derive(InputObject, Serialize)]
pub struct RegisterTenantInput {
    /// `[a-z0-9][a-z0-9_-]{0,62}`.
    pub id: String,
    pub name: String,
    pub mrr: MoneyScalar,
    /// Default cost center for requests that name none.
    pub cost_center: String,
    /// e.g. "0.99" (default): 99 % of finished work succeeds.
    pub slo_target: Option<String>,
    /// Default 30.
    pub slo_period_days: Option<i32>,
    /// Share of MRR the month's projected spend may reach; default "0.70".
    pub margin_threshold: Option<String>,
}

#[derive(InputObject, Serialize)]
pub struct UpdateTenantInput {
    pub mrr: Option<MoneyScalar>,
    pub cost_center: Option<String>,
    pub slo_target: Option<String>,
    pub slo_period_days: Option<i32>,
    pub margin_threshold: Option<String>,
}

#[derive(InputObject, Serialize)]
pub struct SeriesInputGql {
    pub values: Vec<f64>,
    pub season_length: Option<i32>,
}

impl SeriesInputGql {
    fn to_domain(&self) -> Result<SeriesInput, ApiError> {
        let season_length = self
            .season_length
            .map(|m| usize::try_from(m).map_err(|_| bad("seasonLength must be positive")))
            .transpose()?;
        Ok(SeriesInput {
            values: self.values.clone(),
            season_length,
        })
    }
}

#[derive(InputObject, Serialize)]
pub struct SubmitTaskInput {
    /// FORECAST, ANALYSIS or LOG_ANALYSIS.
    pub task_type: String,
    pub description: String,
    /// low, normal (default), high, critical.
    pub priority: Option<String>,
    /// simple (default), intermediate, advanced, expert.
    pub complexity: Option<String>,
    pub cost_center: Option<String>,
    pub owner: Option<String>,
    pub targeting_key: Option<String>,
    #[graphql(default)]
    pub platforms: Vec<String>,
    /// Default: the tenant's registered series.
    pub series: Option<SeriesInputGql>,
    pub horizon: Option<i32>,
    pub level: Option<f64>,
    /// LOG_ANALYSIS: the log text (redacted before it is stored).
    pub log: Option<String>,
}

#[derive(InputObject, Serialize)]
pub struct LaunchCompetitionInput {
    pub content: String,
    pub priority: Option<String>,
    /// Default: all four (aggressive, conservative, balanced, experimental).
    #[graphql(default)]
    pub competitors: Vec<String>,
    pub cost_center: Option<String>,
    pub owner: Option<String>,
    #[graphql(default)]
    pub platforms: Vec<String>,
    pub series: Option<SeriesInputGql>,
    pub horizon: Option<i32>,
}

fn priority(p: Option<&str>) -> Result<Priority, ApiError> {
    p.map_or(Ok(Priority::default()), |p| {
        Priority::parse(p).ok_or_else(|| bad(format!("unknown priority {p:?}")))
    })
}

fn horizon(h: Option<i32>) -> Result<Option<usize>, ApiError> {
    h.map(|h| usize::try_from(h).map_err(|_| bad("horizon must be positive")))
        .transpose()
}

/// The fields tasks and rounds share, read from either input.
struct Common<'a> {
    priority: Option<&'a str>,
    cost_center: &'a Option<String>,
    owner: &'a Option<String>,
    platforms: &'a [String],
    series: Option<&'a SeriesInputGql>,
    horizon: Option<i32>,
}

impl Common<'_> {
    fn request(&self, tenant: &str, key: &str) -> Result<WorkRequest, ApiError> {
        Ok(WorkRequest {
            tenant: tenant.to_owned(),
            idempotency_key: key.to_owned(),
            priority: priority(self.priority)?,
            cost_center: self.cost_center.clone(),
            owner: self.owner.clone(),
            platforms: self.platforms.to_vec(),
            series: self.series.map(SeriesInputGql::to_domain).transpose()?,
            horizon: horizon(self.horizon)?,
        })
    }
}

async fn submit<F, Fut>(
    ctx: &Context<'_>,
    p: &Principal,
    op: &str,
    key: String,
    request: serde_json::Value,
    run: F,
) -> Res<LvReceipt>
where
    F: FnOnce(CommandMetadata) -> Fut,
    Fut: std::future::Future<Output = Result<Receipt, LapVerseError>>,
{
    let s = state(ctx);
    let out = counted(
        s,
        op,
        s.idempotency
            .once(p, &key, &request, || async {
                let meta = metadata(ctx, p, &key)?;
                let receipt = run(meta).await.map_err(api_error)?;
                s.market.settle_reads().await;
                Ok(LvReceipt::from(receipt))
            })
            .await,
    )?;
    Ok(out)
}

async fn work_row(ctx: &Context<'_>, id: &str, kind: &str) -> Res<Option<LvWork>> {
    let p = caller(ctx, ANY_ROLE)?;
    let row = state(ctx)
        .lapverse
        .queries
        .work(id)
        .await
        .map_err(|e| ApiError::internal("lap-verse read", e))?;
    Ok(row
        .filter(|r| r.kind == kind && may_read(p, &r.tenant).is_ok())
        .map(LvWork::from))
}

/// The tenant a list is for: the argument (checked), else the caller's own unless it may read
/// every tenant.
fn list_tenant(p: &Principal, tenant: Option<String>) -> Result<Option<String>, ApiError> {
    match tenant {
        Some(t) => {
            may_read(p, &t)?;
            Ok(Some(t))
        }
        None if p.sees_all_tenants(&READ_ANY_TENANT) => Ok(None),
        None => Ok(Some(p.tenant.clone())),
    }
}

async fn list(
    ctx: &Context<'_>,
    kind: &str,
    tenant: Option<String>,
    before: Option<i64>,
    limit: Option<i32>,
) -> Res<Vec<LvWork>> {
    let p = caller(ctx, ANY_ROLE)?;
    let tenant = list_tenant(p, tenant)?;
    let rows = state(ctx)
        .lapverse
        .queries
        .list_work(
            kind,
            tenant.as_deref(),
            before,
            i64::from(limit.unwrap_or(50)),
        )
        .await
        .map_err(|e| ApiError::internal("lap-verse list", e))?;
    Ok(rows.into_iter().map(LvWork::from).collect())
}

#[derive(Default)]
pub struct LapVerseQuery;

#[Object]
impl LapVerseQuery {
    /// A tenant's settings, SLO position and month-to-date spend (admin, finance, auditor, or
    /// the tenant's own keys).
    async fn lapverse_tenant(&self, ctx: &Context<'_>, id: String) -> Res<LvTenant> {
        let p = caller(ctx, ANY_ROLE)?;
        may_read(p, &id)?;
        let tenant = state(ctx)
            .lapverse
            .service
            .tenant(&id)
            .await
            .map_err(api_error)?;
        Ok(tenant_view(ctx, &id, &tenant).await?)
    }

    /// Every tenant's id (platform admin, finance, auditor); a tenant's own admin, finance or
    /// auditor key sees its own tenant only.
    async fn lapverse_tenants(&self, ctx: &Context<'_>) -> Res<Vec<String>> {
        let p = caller(ctx, &READ_ANY_TENANT)?;
        let rows = state(ctx)
            .lapverse
            .queries
            .tenants()
            .await
            .map_err(|e| ApiError::internal("tenants", e))?;
        Ok(rows
            .into_iter()
            .map(|r| r.tenant)
            .filter(|t| may_read(p, t).is_ok())
            .collect())
    }

    async fn task(&self, ctx: &Context<'_>, id: String) -> Res<Option<LvWork>> {
        work_row(ctx, &id, "task").await
    }

    async fn competition(&self, ctx: &Context<'_>, id: String) -> Res<Option<LvWork>> {
        work_row(ctx, &id, "competition").await
    }

    /// Newest first; page with `before` = the last item's `position`.
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        tenant: Option<String>,
        before: Option<i64>,
        limit: Option<i32>,
    ) -> Res<Vec<LvWork>> {
        list(ctx, "task", tenant, before, limit).await
    }

    /// Newest first; page with `before` = the last item's `position`.
    async fn competitions(
        &self,
        ctx: &Context<'_>,
        tenant: Option<String>,
        before: Option<i64>,
        limit: Option<i32>,
    ) -> Res<Vec<LvWork>> {
        list(ctx, "competition", tenant, before, limit).await
    }

    /// Charges minus refunds per tenant × cost center × month, summed from the journal.
    async fn chargeback(
        &self,
        ctx: &Context<'_>,
        tenant: Option<String>,
    ) -> Res<Vec<LvChargebackLine>> {
        let p = caller(ctx, ANY_ROLE)?;
        let tenant = list_tenant(p, tenant)?;
        let lines = state(ctx)
            .lapverse
            .queries
            .chargeback(tenant.as_deref())
            .await
            .map_err(|e| ApiError::internal("chargeback", e))?;
        Ok(lines.into_iter().map(LvChargebackLine::from).collect())
    }

    /// A tenant's webhook deliveries, newest first.
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        limit: Option<i32>,
    ) -> Res<Vec<LvDelivery>> {
        let p = caller(ctx, ANY_ROLE)?;
        may_read(p, &tenant)?;
        let rows = state(ctx)
            .lapverse
            .queries
            .deliveries(&tenant, i64::from(limit.unwrap_or(50)))
            .await
            .map_err(|e| ApiError::internal("deliveries", e))?;
        let show_urls = p.is_admin();
        Ok(rows
            .into_iter()
            .map(|d| LvDelivery::view(d, show_urls))
            .collect())
    }
}

#[derive(Default)]
pub struct LapVerseMutation;

#[Object]
impl LapVerseMutation {
    /// Registers a tenant (admin).
    async fn register_tenant(
        &self,
        ctx: &Context<'_>,
        input: RegisterTenantInput,
        idempotency_key: Option<String>,
    ) -> Res<LvTenant> {
        let request = json!({"registerTenant": &input});
        let id = input.id.clone();
        admin_command(ctx, &id, idempotency_key, request, |at| {
            Ok(vec![TenantCommand::Register {
                name: TenantName::parse(&input.name).map_err(bad)?,
                mrr: input.mrr.0,
                cost_center: TagValue::parse(&input.cost_center)
                    .map_err(|e| bad(format!("{e:?}")))?,
                slo: slo(
                    input.slo_target.as_deref().unwrap_or("0.99"),
                    input.slo_period_days,
                )?,
                margin_threshold: threshold(input.margin_threshold.as_deref().unwrap_or("0.70"))?,
                occurred_at: at,
            }])
        })
        .await
    }

    /// Changes a tenant's MRR, cost center, SLO or margin threshold (admin); each change is an
    /// event with the old and new value.
    async fn update_tenant(
        &self,
        ctx: &Context<'_>,
        id: String,
        input: UpdateTenantInput,
        idempotency_key: Option<String>,
    ) -> Res<LvTenant> {
        let request = json!({"updateTenant": {"id": &id, "input": &input}});
        may_act_for(caller(ctx, &[Role::Admin])?, &id)?;
        let current = state(ctx)
            .lapverse
            .service
            .tenant(&id)
            .await
            .map_err(api_error)?;
        admin_command(ctx, &id, idempotency_key, request, |at| {
            let mut out = Vec::new();
            if let Some(mrr) = input.mrr {
                out.push(TenantCommand::ChangeMrr {
                    mrr: mrr.0,
                    occurred_at: at,
                });
            }
            if let Some(cc) = &input.cost_center {
                out.push(TenantCommand::ChangeCostCenter {
                    cost_center: TagValue::parse(cc).map_err(|e| bad(format!("{e:?}")))?,
                    occurred_at: at,
                });
            }
            if input.slo_target.is_some() || input.slo_period_days.is_some() {
                let old = current.slo();
                let target = input
                    .slo_target
                    .clone()
                    .or_else(|| old.map(|s| s.target().as_decimal().to_string()))
                    .unwrap_or_else(|| "0.99".into());
                let days = input
                    .slo_period_days
                    .or_else(|| old.map(|s| s.period_days() as i32));
                out.push(TenantCommand::ChangeSlo {
                    slo: slo(&target, days)?,
                    occurred_at: at,
                });
            }
            if let Some(t) = &input.margin_threshold {
                out.push(TenantCommand::ChangeMarginThreshold {
                    margin_threshold: threshold(t)?,
                    occurred_at: at,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Creates or changes a feature flag (admin): percentage rollout, sticky per targeting key.
    /// Task types are gated by `task.forecast`, `task.analysis`, `task.log_analysis`; rounds by
    /// `self-compete`; promoted champions roll out through `champion-rollout`.
    async fn set_tenant_flag(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        flag: String,
        enabled: bool,
        rollout_percent: i32,
        idempotency_key: Option<String>,
    ) -> Res<LvTenant> {
        let request = json!({"setTenantFlag": [&tenant, &flag, enabled, rollout_percent]});
        admin_command(ctx, &tenant, idempotency_key, request, |at| {
            let percent = u32::try_from(rollout_percent)
                .map_err(|_| bad("rolloutPercent must be 0..=100"))?;
            Ok(vec![TenantCommand::SetFlag {
                flag: FlagName::parse(&flag).map_err(bad)?,
                enabled,
                rollout_percent: RolloutPercent::try_new(percent).map_err(bad)?,
                occurred_at: at,
            }])
        })
        .await
    }

    async fn remove_tenant_flag(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        flag: String,
        idempotency_key: Option<String>,
    ) -> Res<LvTenant> {
        let request = json!({"removeTenantFlag": [&tenant, &flag]});
        admin_command(ctx, &tenant, idempotency_key, request, |at| {
            Ok(vec![TenantCommand::RemoveFlag {
                flag: FlagName::parse(&flag).map_err(bad)?,
                occurred_at: at,
            }])
        })
        .await
    }

    /// Registers a webhook for `competition_completed`, `champion_promoted` and/or
    /// `capsule_breaking_version` (admin).
    async fn register_webhook(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        id: String,
        url: String,
        events: Vec<String>,
        idempotency_key: Option<String>,
    ) -> Res<LvTenant> {
        let request = json!({"registerWebhook": [&tenant, &id, &url, &events]});
        admin_command(ctx, &tenant, idempotency_key, request, |at| {
            let events = events
                .iter()
                .map(|e| {
                    WebhookEvent::ALL
                        .into_iter()
                        .find(|x| x.as_str() == e)
                        .ok_or_else(|| bad(format!("unknown webhook event {e:?}")))
                })
                .collect::<Result<BTreeSet<_>, _>>()?;
            Ok(vec![TenantCommand::RegisterWebhook {
                webhook_id: WebhookId::parse(&id).map_err(bad)?,
                url: WebhookUrl::parse(&url).map_err(bad)?,
                events,
                occurred_at: at,
            }])
        })
        .await
    }

    async fn remove_webhook(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        id: String,
        idempotency_key: Option<String>,
    ) -> Res<LvTenant> {
        let request = json!({"removeWebhook": [&tenant, &id]});
        admin_command(ctx, &tenant, idempotency_key, request, |at| {
            Ok(vec![TenantCommand::RemoveWebhook {
                webhook_id: WebhookId::parse(&id).map_err(bad)?,
                occurred_at: at,
            }])
        })
        .await
    }

    /// Registers the tenant's time series (admin): what tasks and rounds use when a request
    /// carries none.
    async fn set_tenant_series(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        series: SeriesInputGql,
        idempotency_key: Option<String>,
    ) -> Res<LvTenant> {
        let request = json!({"setTenantSeries": [&tenant, &series]});
        admin_command(ctx, &tenant, idempotency_key, request, |at| {
            Ok(vec![TenantCommand::SetSeries {
                series: series.to_domain()?,
                occurred_at: at,
            }])
        })
        .await
    }

    /// Accepts a task for asynchronous processing (the REST `POST /api/v2/tasks`).
    async fn submit_task(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        input: SubmitTaskInput,
        idempotency_key: Option<String>,
    ) -> Res<LvReceipt> {
        let p = caller(ctx, ANY_ROLE)?;
        may_act_for(p, &tenant)?;
        let key = resolve_key(ctx, idempotency_key)?;
        let request_json = json!({"submitTask": [&tenant, &input]});
        let task_type = TaskType::parse(&input.task_type)
            .ok_or_else(|| bad(format!("unknown task type {:?}", input.task_type)))?;
        let complexity = match input.complexity.as_deref() {
            None => Complexity::Simple,
            Some(c) => Complexity::ALL
                .into_iter()
                .find(|x| x.as_str() == c)
                .ok_or_else(|| bad(format!("unknown complexity {c:?}")))?,
        };
        let request = TaskRequest {
            work: Common {
                priority: input.priority.as_deref(),
                cost_center: &input.cost_center,
                owner: &input.owner,
                platforms: &input.platforms,
                series: input.series.as_ref(),
                horizon: input.horizon,
            }
            .request(&tenant, &key)?,
            task_type,
            description: input.description.clone(),
            complexity,
            targeting_key: input.targeting_key.clone(),
            level_percent: input.level,
            log: input.log.clone(),
        };
        let service = state(ctx).lapverse.service.clone();
        submit(
            ctx,
            p,
            "submitTask",
            key.clone(),
            request_json,
            |meta| async move { service.submit_task(request, &meta).await },
        )
        .await
    }

    /// Launches a self-compete round (the REST `POST /api/v2/self-compete`).
    async fn launch_competition(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        input: LaunchCompetitionInput,
        idempotency_key: Option<String>,
    ) -> Res<LvReceipt> {
        let p = caller(ctx, ANY_ROLE)?;
        may_act_for(p, &tenant)?;
        let key = resolve_key(ctx, idempotency_key)?;
        let request_json = json!({"launchCompetition": [&tenant, &input]});
        let competitors = input
            .competitors
            .iter()
            .map(|c| {
                Strategy::ALL
                    .into_iter()
                    .find(|s| s.name() == c)
                    .ok_or_else(|| bad(format!("unknown competitor {c:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let request = CompetitionRequest {
            work: Common {
                priority: input.priority.as_deref(),
                cost_center: &input.cost_center,
                owner: &input.owner,
                platforms: &input.platforms,
                series: input.series.as_ref(),
                horizon: input.horizon,
            }
            .request(&tenant, &key)?,
            content: input.content.clone(),
            competitors,
        };
        let service = state(ctx).lapverse.service.clone();
        submit(
            ctx,
            p,
            "launchCompetition",
            key.clone(),
            request_json,
            |meta| async move { service.launch_competition(request, &meta).await },
        )
        .await
    }
}
