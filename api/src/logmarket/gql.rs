//! The log marketplace over GraphQL: the same service as the REST adapters, typed.

use std::collections::BTreeMap;

use agora_commands::StoredEvent;
use agora_domain::access::Role;
use agora_domain::logmarket::aggregate::Verdict;
use agora_domain::logmarket::analysis::{Analysis, SellerId};
use agora_domain::logmarket::insight::Insight;
use agora_domain::logmarket::scoring::PotentialDimension;
use agora_domain::logmarket::seller::Achievement;
use agora_domain::money::Money;
use agora_projections::logmarket::{AgentRow, SellerRow, Totals};
use async_graphql::{Context, InputObject, Json, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::json;

use super::{views, AnalysisRecord, BatchItem, Receipt};
use crate::app::AppState;
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

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// Authenticated and within the marketplace's per-key request limit.
async fn market_caller<'a>(ctx: &'a Context<'_>) -> Result<&'a Principal, ApiError> {
    let p = caller(ctx, ANY_ROLE)?;
    state(ctx).market.admit(p).await?;
    Ok(p)
}

#[derive(SimpleObject)]
pub struct LmQuality {
    pub completeness: i32,
    pub relevance: i32,
    pub actionability: i32,
    pub uniqueness: i32,
    /// The mean of the four.
    pub overall: f64,
}

#[derive(SimpleObject)]
pub struct LmInsight {
    pub index: i32,
    /// `error-detective`, `performance-analyzer`, `security-guardian`, `quality-inspector`.
    pub agent: String,
    pub kind: String,
    pub severity: String,
    /// The seed's pattern / issue / threat.
    pub title: String,
    /// `file:line` when the log has one.
    pub location: Option<String>,
    pub log_line: i32,
    /// The cited log text, redacted.
    pub excerpt: String,
    pub impact: String,
    pub root_cause: Option<String>,
    /// The seed's fix / optimization / recommendation.
    pub fix: String,
    pub details: Json<BTreeMap<String, String>>,
}

fn insight_view(index: usize, i: &Insight) -> LmInsight {
    LmInsight {
        index: index as i32,
        agent: i.agent().id().into(),
        kind: serde_json::to_value(i.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        severity: i.severity.as_str().into(),
        title: i.title.clone(),
        location: i.location.clone(),
        log_line: i.log_line as i32,
        excerpt: i.excerpt.clone(),
        impact: i.impact.clone(),
        root_cause: i.root_cause.clone(),
        fix: i.fix.clone(),
        details: Json(i.details.clone()),
    }
}

#[derive(SimpleObject)]
pub struct LmPotential {
    pub current: i32,
    pub potential: i32,
    pub improvement: String,
}

fn potential(d: &PotentialDimension) -> LmPotential {
    LmPotential {
        current: d.current as i32,
        potential: d.potential as i32,
        improvement: d.improvement.clone(),
    }
}

#[derive(SimpleObject)]
pub struct LmImprovement {
    pub development_speed: LmPotential,
    pub code_quality: LmPotential,
    pub error_reduction: LmPotential,
    pub hours_saved: f64,
    #[graphql(name = "estimatedROI")]
    pub estimated_roi: MoneyScalar,
}

#[derive(SimpleObject)]
pub struct LmBonuses {
    pub uniqueness: bool,
    pub critical_error: bool,
    pub security: bool,
    pub performance: bool,
}

/// One analysed log.
#[derive(SimpleObject)]
pub struct LogAnalysisView {
    pub id: String,
    #[graphql(name = "subPKPId")]
    pub sub_pkp_id: String,
    pub source: String,
    pub timestamp: DateTime<Utc>,
    pub insights: Vec<LmInsight>,
    pub quality: LmQuality,
    pub value_score: i32,
    pub payment_amount: MoneyScalar,
    pub bonuses: LmBonuses,
    pub improvement_potential: LmImprovement,
    pub paid: bool,
    pub transaction_id: Option<String>,
    pub log_sha256: String,
    pub log_bytes: i64,
    pub line_count: i32,
    pub templates: i32,
    pub new_templates: i32,
    pub agents: Vec<String>,
}

pub fn analysis_view(r: &AnalysisRecord) -> LogAnalysisView {
    let a: &Analysis = &r.analysis;
    let p = &a.improvement;
    LogAnalysisView {
        id: r.id.clone(),
        sub_pkp_id: r.seller.sub_pkp_id().to_owned(),
        source: r.stage.as_str().into(),
        timestamp: r.timestamp,
        insights: a
            .insights
            .iter()
            .enumerate()
            .map(|(n, i)| insight_view(n, i))
            .collect(),
        quality: LmQuality {
            completeness: a.quality.completeness.into(),
            relevance: a.quality.relevance.into(),
            actionability: a.quality.actionability.into(),
            uniqueness: a.quality.uniqueness.into(),
            overall: f(a.overall_quality),
        },
        value_score: a.value_score.into(),
        payment_amount: MoneyScalar(a.payment),
        bonuses: LmBonuses {
            uniqueness: a.bonuses.uniqueness,
            critical_error: a.bonuses.critical_error,
            security: a.bonuses.security,
            performance: a.bonuses.performance,
        },
        improvement_potential: LmImprovement {
            development_speed: potential(&p.development_speed),
            code_quality: potential(&p.code_quality),
            error_reduction: potential(&p.error_reduction),
            hours_saved: f(p.hours_saved),
            estimated_roi: MoneyScalar(p.estimated_roi),
        },
        paid: r.paid,
        transaction_id: r.transaction_id.clone(),
        log_sha256: a.log_sha256.clone(),
        log_bytes: a.log_bytes as i64,
        line_count: a.line_count as i32,
        templates: a.template_count as i32,
        new_templates: a.templates.iter().filter(|t| t.new).count() as i32,
        agents: a.agents.iter().map(|g| g.id().to_owned()).collect(),
    }
}

/// A payment of an analysis.
#[derive(SimpleObject)]
pub struct LogPaymentView {
    pub transaction_id: String,
    pub analysis_id: String,
    #[graphql(name = "subPKPId")]
    pub sub_pkp_id: String,
    pub amount: MoneyScalar,
    pub journal_entry_id: String,
    pub timestamp: DateTime<Utc>,
    pub source: String,
    pub value_score: i32,
    pub quality: f64,
    /// `seller_signature` or `operator`.
    pub authorisation: String,
}

fn payment_view(r: &Receipt) -> LogPaymentView {
    LogPaymentView {
        transaction_id: r.transaction_id.clone(),
        analysis_id: r.analysis_id.clone(),
        sub_pkp_id: r.seller.sub_pkp_id().to_owned(),
        amount: MoneyScalar(r.amount),
        journal_entry_id: r.journal_entry_id.clone(),
        timestamp: r.timestamp,
        source: r.stage.as_str().into(),
        value_score: r.value_score.into(),
        quality: f(r.quality),
        authorisation: r.authorisation.clone(),
    }
}

#[derive(SimpleObject)]
pub struct SellerStanding {
    #[graphql(name = "subPKPId")]
    pub sub_pkp_id: String,
    pub earnings: MoneyScalar,
    pub logs: i64,
}

#[derive(SimpleObject)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub expertise: String,
    pub monitored_stages: Vec<String>,
    pub active: bool,
    /// The deterministic rule set that runs (no language model is involved).
    pub ai_model: String,
    pub logs_analyzed: i64,
    pub insights_generated: i64,
    pub money_paid: MoneyScalar,
    /// confirmed / (confirmed + false positives), in percent; null without feedback.
    pub accuracy: Option<f64>,
    pub confirmed: i64,
    pub false_positives: i64,
}

fn agent_view(a: &AgentRow, active: bool) -> AgentView {
    AgentView {
        id: a.agent.id().into(),
        name: a.agent.name().into(),
        expertise: a.agent.expertise().into(),
        monitored_stages: a
            .agent
            .monitored_stages()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        active,
        ai_model: a.agent.engine().into(),
        logs_analyzed: a.logs_analyzed,
        insights_generated: a.insights,
        money_paid: MoneyScalar(a.money_paid),
        accuracy: a.accuracy().map(f),
        confirmed: a.confirmed,
        false_positives: a.rejected,
    }
}

#[derive(SimpleObject)]
pub struct TrendsView {
    pub average_quality: f64,
    pub average_value: f64,
    #[graphql(name = "averageROI")]
    pub average_roi: MoneyScalar,
}

fn trends(t: &Totals) -> TrendsView {
    TrendsView {
        average_quality: f(t.average_quality()),
        average_value: f(t.average_value()),
        average_roi: MoneyScalar(t.average_roi()),
    }
}

#[derive(SimpleObject)]
pub struct DashboardView {
    pub total_paid: MoneyScalar,
    pub total_insights: i64,
    pub total_analyses: i64,
    pub paid_analyses: i64,
    pub average_payment: MoneyScalar,
    pub top_data_sellers: Vec<SellerStanding>,
    pub monitoring_agents: Vec<AgentView>,
    pub quality_trends: TrendsView,
}

#[derive(SimpleObject)]
pub struct PricingExampleView {
    pub name: String,
    pub quality: i32,
    pub value_score: i32,
    pub payment: Option<MoneyScalar>,
}

#[derive(SimpleObject)]
pub struct PricingView {
    pub base_price: MoneyScalar,
    pub quality_multiplier: MoneyScalar,
    pub uniqueness_bonus: MoneyScalar,
    pub critical_error_bonus: MoneyScalar,
    pub security_bonus: MoneyScalar,
    pub performance_bonus: MoneyScalar,
    pub min_payment: MoneyScalar,
    pub max_payment: MoneyScalar,
    pub formula: String,
    pub examples: Vec<PricingExampleView>,
}

#[derive(SimpleObject)]
pub struct TopEarnerView {
    pub rank: i32,
    #[graphql(name = "subPKPId")]
    pub sub_pkp_id: String,
    pub total_earnings: MoneyScalar,
    pub logs_submitted: i64,
    pub logs_paid: i64,
    pub average_earnings: MoneyScalar,
    pub points: i64,
    pub xp: i64,
}

fn earner(rank: usize, s: &SellerRow) -> TopEarnerView {
    TopEarnerView {
        rank: rank as i32,
        sub_pkp_id: views::sub_pkp_id(&s.seller),
        total_earnings: MoneyScalar(s.earnings),
        logs_submitted: s.logs,
        logs_paid: s.paid_logs,
        average_earnings: MoneyScalar(s.average_earnings()),
        points: s.points,
        xp: s.xp(),
    }
}

#[derive(SimpleObject)]
pub struct TrendInsightView {
    pub metric: String,
    pub value: f64,
    pub target: i64,
    pub status: String,
}

#[derive(SimpleObject)]
pub struct DailyTrendView {
    pub day: String,
    pub analyses: i64,
    pub average_quality: f64,
    pub average_value: f64,
    pub paid: MoneyScalar,
}

#[derive(SimpleObject)]
pub struct QualityTrendsView {
    pub current_trends: TrendsView,
    pub insights: Vec<TrendInsightView>,
    pub recommendations: Vec<String>,
    pub daily: Vec<DailyTrendView>,
}

#[derive(SimpleObject)]
pub struct AchievementView {
    pub id: String,
    pub name: String,
    pub requirement: String,
    pub xp: i64,
    pub analysis_id: String,
    pub unlocked_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct SellerProfileView {
    #[graphql(name = "subPKPId")]
    pub sub_pkp_id: String,
    pub logs_submitted: i64,
    pub logs_paid: i64,
    pub earnings: MoneyScalar,
    pub average_quality: f64,
    pub points: i64,
    /// Points plus achievement rewards.
    pub xp: i64,
    pub public_key: Option<String>,
    pub achievements: Vec<AchievementView>,
}

#[derive(SimpleObject)]
pub struct BatchResultView {
    pub total_logs: i32,
    pub total_payable: MoneyScalar,
    pub average_value: f64,
    pub average_quality: f64,
    pub results: Vec<LogAnalysisView>,
}

#[derive(SimpleObject)]
pub struct SimulationView {
    pub iterations: i32,
    pub total_payable: MoneyScalar,
    pub total_paid: MoneyScalar,
    pub results: Vec<LogAnalysisView>,
    pub payments: Vec<LogPaymentView>,
}

fn money_sum(it: impl Iterator<Item = Money>) -> MoneyScalar {
    MoneyScalar(Money::checked_sum(it).unwrap_or(Money::ZERO))
}

fn mean(values: impl Iterator<Item = Decimal>, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        f((values.sum::<Decimal>() / Decimal::from(n as u64)).round_dp(2))
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal("log marketplace read model", e)
}

enum SellerOrder {
    Earnings,
    Xp,
}

/// The top `limit` (1..=100) sellers in `order`, ranked from 1.
async fn ranked_sellers(
    ctx: &Context<'_>,
    limit: i32,
    order: SellerOrder,
) -> Res<Vec<TopEarnerView>> {
    let p = market_caller(ctx).await?;
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadUserInput("limit must be 1..=100".into()).into());
    }
    let scope = state(ctx).market.scope(p);
    let q = &state(ctx).market.queries;
    let rows = match order {
        SellerOrder::Earnings => q.top_earners(&scope, i64::from(limit)).await,
        SellerOrder::Xp => q.points_leaderboard(&scope, i64::from(limit)).await,
    }
    .map_err(internal)?;
    Ok(rows
        .iter()
        .enumerate()
        .map(|(i, s)| earner(i + 1, s))
        .collect())
}

#[derive(Default)]
pub struct LogMarketQuery;

#[Object]
impl LogMarketQuery {
    /// One analysis (its seller, or reviewer, finance, auditor, admin).
    async fn log_analysis(&self, ctx: &Context<'_>, id: String) -> Res<LogAnalysisView> {
        let p = market_caller(ctx).await?;
        let m = &state(ctx).market;
        let row = m
            .queries
            .analysis(&id)
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::NotFound("analysis not found".into()))?;
        m.may_read_stored(p, &row.seller)?;
        let record =
            views::record_from_row(&row).ok_or_else(|| internal("undecodable analysis"))?;
        Ok(analysis_view(&record))
    }

    /// A seller's analyses, newest first; `before` is the `globalPosition` paging key returned
    /// by the REST list, or omitted for the newest.
    async fn seller_analyses(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "subPKPId")] sub_pkp_id: String,
        #[graphql(default = false)] paid_only: bool,
        #[graphql(default = 20)] limit: i32,
        before: Option<i64>,
    ) -> Res<Vec<LogAnalysisView>> {
        let p = market_caller(ctx).await?;
        let m = &state(ctx).market;
        let id = m.may_read_seller(p, &sub_pkp_id)?;
        if !(1..=100).contains(&limit) {
            return Err(ApiError::BadUserInput("limit must be 1..=100".into()).into());
        }
        let rows = m
            .queries
            .analyses_for_seller(id.as_str(), paid_only, before, i64::from(limit))
            .await
            .map_err(internal)?;
        Ok(rows
            .iter()
            .filter_map(views::record_from_row)
            .map(|r| analysis_view(&r))
            .collect())
    }

    /// The seed's dashboard.
    async fn log_market_dashboard(&self, ctx: &Context<'_>) -> Res<DashboardView> {
        let p = market_caller(ctx).await?;
        let m = &state(ctx).market;
        let scope = m.scope(p);
        let t = m.queries.totals(&scope).await.map_err(internal)?;
        let top = m.queries.top_earners(&scope, 5).await.map_err(internal)?;
        let agents = m.queries.agents().await.map_err(internal)?;
        let disabled = &m.settings.config.disabled_agents;
        Ok(DashboardView {
            total_paid: MoneyScalar(t.total_paid),
            total_insights: t.insights,
            total_analyses: t.analyses,
            paid_analyses: t.paid_count,
            average_payment: MoneyScalar(t.average_payment()),
            top_data_sellers: top
                .iter()
                .map(|s| SellerStanding {
                    sub_pkp_id: views::sub_pkp_id(&s.seller),
                    earnings: MoneyScalar(s.earnings),
                    logs: s.logs,
                })
                .collect(),
            monitoring_agents: agents
                .iter()
                .map(|a| agent_view(a, !disabled.contains(&a.agent)))
                .collect(),
            quality_trends: trends(&t),
        })
    }

    /// The pricing model with the seed's examples priced live.
    async fn log_market_pricing(&self, ctx: &Context<'_>) -> Res<PricingView> {
        market_caller(ctx).await?;
        let p = &state(ctx).market.settings.config.pricing;
        let examples = views::pricing_examples(p)
            .into_iter()
            .map(|e| PricingExampleView {
                name: e.name.into(),
                quality: e.quality.into(),
                value_score: e.value_score.into(),
                payment: e.payment.map(MoneyScalar),
            })
            .collect();
        Ok(PricingView {
            base_price: MoneyScalar(p.base_price),
            quality_multiplier: MoneyScalar(p.quality_multiplier),
            uniqueness_bonus: MoneyScalar(p.uniqueness_bonus),
            critical_error_bonus: MoneyScalar(p.critical_error_bonus),
            security_bonus: MoneyScalar(p.security_bonus),
            performance_bonus: MoneyScalar(p.performance_bonus),
            min_payment: MoneyScalar(p.min_payment),
            max_payment: MoneyScalar(p.max_payment),
            formula: "Payment = (Base + Quality * Multiplier + Bonuses) * ValueScore%".into(),
            examples,
        })
    }

    /// The four monitoring agents and their stats.
    async fn log_market_agents(&self, ctx: &Context<'_>) -> Res<Vec<AgentView>> {
        market_caller(ctx).await?;
        let m = &state(ctx).market;
        let rows = m.queries.agents().await.map_err(internal)?;
        let disabled = &m.settings.config.disabled_agents;
        Ok(rows
            .iter()
            .map(|a| agent_view(a, !disabled.contains(&a.agent)))
            .collect())
    }

    /// Sellers by earnings.
    async fn log_market_top_earners(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] limit: i32,
    ) -> Res<Vec<TopEarnerView>> {
        ranked_sellers(ctx, limit, SellerOrder::Earnings).await
    }

    /// Sellers by XP (points + achievement rewards).
    async fn log_market_leaderboard(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] limit: i32,
    ) -> Res<Vec<TopEarnerView>> {
        ranked_sellers(ctx, limit, SellerOrder::Xp).await
    }

    /// Averages against targets, recommendations and a daily series.
    async fn log_market_quality_trends(&self, ctx: &Context<'_>) -> Res<QualityTrendsView> {
        let p = market_caller(ctx).await?;
        let scope = state(ctx).market.scope(p);
        let q = &state(ctx).market.queries;
        let t = q.totals(&scope).await.map_err(internal)?;
        let days = q.daily_trends(&scope, 30).await.map_err(internal)?;
        let insights = views::trend_insights(&t)
            .into_iter()
            .map(|i| TrendInsightView {
                metric: i.metric.into(),
                value: f(i.value),
                target: i.target,
                status: i.status.into(),
            })
            .collect();
        Ok(QualityTrendsView {
            current_trends: trends(&t),
            insights,
            recommendations: views::recommendations(&t),
            daily: days
                .iter()
                .map(|d| DailyTrendView {
                    day: d.day.to_string(),
                    analyses: d.analyses,
                    average_quality: f(d.average_quality),
                    average_value: f(d.average_value),
                    paid: MoneyScalar(d.paid),
                })
                .collect(),
        })
    }

    /// A seller's earnings, points, XP and achievements.
    async fn seller_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "subPKPId")] sub_pkp_id: String,
    ) -> Res<SellerProfileView> {
        let p = market_caller(ctx).await?;
        let m = &state(ctx).market;
        let id = m.may_read_seller(p, &sub_pkp_id)?;
        let s = m
            .queries
            .seller(id.as_str())
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::NotFound("seller not found".into()))?;
        let achievements = m
            .queries
            .achievements(id.as_str())
            .await
            .map_err(internal)?;
        Ok(SellerProfileView {
            sub_pkp_id: views::sub_pkp_id(&s.seller),
            logs_submitted: s.logs,
            logs_paid: s.paid_logs,
            earnings: MoneyScalar(s.earnings),
            average_quality: f(s.average_quality()),
            points: s.points,
            xp: s.xp(),
            public_key: s.public_key.clone(),
            achievements: achievements
                .iter()
                .map(|a| {
                    let known = Achievement::ALL
                        .into_iter()
                        .find(|x| x.id() == a.achievement);
                    AchievementView {
                        id: a.achievement.clone(),
                        name: known.map(|k| k.name()).unwrap_or_default().into(),
                        requirement: known.map(|k| k.requirement()).unwrap_or_default().into(),
                        xp: a.xp,
                        analysis_id: a.analysis_id.clone(),
                        unlocked_at: a.unlocked_at,
                    }
                })
                .collect(),
        })
    }
}

#[derive(InputObject, serde::Serialize)]
pub struct AnalyzeLogInput {
    /// build, test, deploy or runtime.
    pub source: String,
    pub log_content: String,
    #[graphql(name = "subPKPId")]
    pub sub_pkp_id: String,
}

#[derive(InputObject, serde::Serialize)]
pub struct BatchLogInput {
    pub source: String,
    pub content: String,
}

#[derive(Default)]
pub struct LogMarketMutation;

#[Object]
impl LogMarketMutation {
    /// Analyses, scores and prices one log (the seller itself, or admin).
    async fn analyze_log(
        &self,
        ctx: &Context<'_>,
        input: AnalyzeLogInput,
        idempotency_key: Option<String>,
    ) -> Res<LogAnalysisView> {
        let p = market_caller(ctx).await?;
        let key = resolve_key(ctx, idempotency_key)?;
        let s = state(ctx);
        let req = json!({"analyzeLog": &input});
        let out: AnalysisRecord = counted(
            s,
            "logmarket.analyze",
            s.idempotency
                .once(p, &key, &req, || async {
                    let meta = metadata(ctx, p, &key)?;
                    s.market
                        .analyze(
                            p,
                            &meta,
                            &input.sub_pkp_id,
                            &input.source,
                            &input.log_content,
                        )
                        .await
                })
                .await,
        )?;
        Ok(analysis_view(&out))
    }

    /// Analyses up to 100 logs in one call; all are validated before any is recorded.
    async fn batch_analyze_logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "subPKPId")] sub_pkp_id: String,
        logs: Vec<BatchLogInput>,
        idempotency_key: Option<String>,
    ) -> Res<BatchResultView> {
        let p = market_caller(ctx).await?;
        let key = resolve_key(ctx, idempotency_key)?;
        let s = state(ctx);
        let req = json!({"batchAnalyzeLogs": {"subPKPId": &sub_pkp_id, "logs": &logs}});
        let items: Vec<BatchItem> = logs
            .into_iter()
            .map(|l| BatchItem {
                source: l.source,
                content: l.content,
            })
            .collect();
        let out = counted(
            s,
            "logmarket.batch",
            s.idempotency
                .once(p, &key, &req, || async {
                    let meta = metadata(ctx, p, &key)?;
                    s.market.batch(p, &meta, &sub_pkp_id, &items).await
                })
                .await,
        )?;
        let n = out.results.len();
        Ok(BatchResultView {
            total_logs: n as i32,
            total_payable: money_sum(out.results.iter().map(|r| r.analysis.payment)),
            average_value: mean(
                out.results
                    .iter()
                    .map(|r| Decimal::from(r.analysis.value_score)),
                n,
            ),
            average_quality: mean(out.results.iter().map(|r| r.analysis.overall_quality), n),
            results: out.results.iter().map(analysis_view).collect(),
        })
    }

    /// Analyses `iterations` logs of the shipped corpus for a seller; `autoPay` (admin,
    /// finance) pays those with a value score over 70.
    async fn simulate_logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "subPKPId")] sub_pkp_id: String,
        iterations: i32,
        #[graphql(default = false)] auto_pay: bool,
        idempotency_key: Option<String>,
    ) -> Res<SimulationView> {
        let p = market_caller(ctx).await?;
        let key = resolve_key(ctx, idempotency_key)?;
        let s = state(ctx);
        let n = u32::try_from(iterations)
            .map_err(|_| ApiError::BadUserInput("iterations must be positive".into()))?;
        let req = json!({"simulateLogs": {"subPKPId": &sub_pkp_id, "iterations": n, "autoPay": auto_pay}});
        let out = counted(
            s,
            "logmarket.simulate",
            s.idempotency
                .once(p, &key, &req, || async {
                    let meta = metadata(ctx, p, &key)?;
                    s.market.simulate(p, &meta, &sub_pkp_id, n, auto_pay).await
                })
                .await,
        )?;
        let payments: Vec<&Receipt> = out.results.iter().filter_map(|(_, r)| r.as_ref()).collect();
        Ok(SimulationView {
            iterations,
            total_payable: money_sum(out.results.iter().map(|(r, _)| r.analysis.payment)),
            total_paid: money_sum(payments.iter().map(|r| r.amount)),
            results: out.results.iter().map(|(r, _)| analysis_view(r)).collect(),
            payments: payments.into_iter().map(payment_view).collect(),
        })
    }

    /// Pays an analysis to its seller, exactly once: a second pay is CONFLICT. `signature` is
    /// the seller's hex ed25519 signature over the canonical pay message (docs/API.md); it is
    /// required when the seller has registered a key or when the caller is the seller.
    async fn pay_log_analysis(
        &self,
        ctx: &Context<'_>,
        analysis_id: String,
        #[graphql(name = "subPKPId")] sub_pkp_id: String,
        signature: Option<String>,
        idempotency_key: Option<String>,
    ) -> Res<LogPaymentView> {
        let p = market_caller(ctx).await?;
        let key = resolve_key(ctx, idempotency_key)?;
        let s = state(ctx);
        let req = json!({"payLogAnalysis": {"analysisId": &analysis_id, "subPKPId": &sub_pkp_id, "signature": &signature}});
        let out = counted(
            s,
            "logmarket.pay",
            s.idempotency
                .once(p, &key, &req, || async {
                    let meta = metadata(ctx, p, &key)?;
                    s.market
                        .pay(p, &meta, &analysis_id, &sub_pkp_id, signature.as_deref())
                        .await
                })
                .await,
        )?;
        Ok(payment_view(&out))
    }

    /// Registers or rotates a seller's ed25519 payment key (hex, 32 bytes). True: active now
    /// (set by admin or finance); false: a seller's request, pending an operator's approval.
    async fn register_seller_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "subPKPId")] sub_pkp_id: String,
        public_key: String,
        idempotency_key: Option<String>,
    ) -> Res<bool> {
        let p = market_caller(ctx).await?;
        let key = resolve_key(ctx, idempotency_key)?;
        let s = state(ctx);
        let req = json!({"registerSellerKey": {"subPKPId": &sub_pkp_id, "publicKey": &public_key}});
        Ok(counted(
            s,
            "logmarket.key",
            s.idempotency
                .once(p, &key, &req, || async {
                    let meta = metadata(ctx, p, &key)?;
                    s.market
                        .register_key(p, &meta, &sub_pkp_id, &public_key)
                        .await
                })
                .await,
        )?)
    }

    /// Approves the payment key a seller asked for (admin, finance); the key must be the one
    /// pending.
    async fn approve_seller_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "subPKPId")] sub_pkp_id: String,
        public_key: String,
        idempotency_key: Option<String>,
    ) -> Res<bool> {
        let p = market_caller(ctx).await?;
        let key = resolve_key(ctx, idempotency_key)?;
        let s = state(ctx);
        let req = json!({"approveSellerKey": {"subPKPId": &sub_pkp_id, "publicKey": &public_key}});
        Ok(counted(
            s,
            "logmarket.key_approval",
            s.idempotency
                .once(p, &key, &req, || async {
                    let meta = metadata(ctx, p, &key)?;
                    s.market
                        .approve_key(p, &meta, &sub_pkp_id, &public_key)
                        .await
                })
                .await,
        )?)
    }

    /// Confirms an insight or marks it a false positive (`confirmed`, `false_positive`).
    /// Returns the agent whose accuracy it counts for.
    async fn record_insight_feedback(
        &self,
        ctx: &Context<'_>,
        analysis_id: String,
        insight_index: i32,
        verdict: String,
        idempotency_key: Option<String>,
    ) -> Res<String> {
        let p = market_caller(ctx).await?;
        let key = resolve_key(ctx, idempotency_key)?;
        let s = state(ctx);
        let v: Verdict = serde_json::from_value(json!(verdict)).map_err(|_| {
            ApiError::BadUserInput("verdict must be confirmed or false_positive".into())
        })?;
        let index = u32::try_from(insight_index)
            .map_err(|_| ApiError::BadUserInput("insightIndex must be ≥ 0".into()))?;
        let req = json!({"recordInsightFeedback": {"analysisId": &analysis_id, "insightIndex": index, "verdict": &verdict}});
        Ok(counted(
            s,
            "logmarket.feedback",
            s.idempotency
                .once(p, &key, &req, || async {
                    let meta = metadata(ctx, p, &key)?;
                    s.market.feedback(p, &meta, &analysis_id, index, v).await
                })
                .await,
        )?)
    }
}

#[derive(Default)]
pub struct LogMarketSubscription;

struct Follow {
    state: AppState,
    seller: Option<String>,
    /// Only this tenant's sellers (tenant-bound keys).
    tenant: Option<String>,
    after: agora_commands::LogPosition,
    buffer: std::collections::VecDeque<StoredEvent>,
    commits: tokio::sync::watch::Receiver<u64>,
}

#[Subscription]
impl LogMarketSubscription {
    /// New analyses as they are recorded. Sellers see their own; reviewer, finance, auditor
    /// and admin see all (optionally one seller's).
    async fn log_analyses(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "subPKPId")] sub_pkp_id: Option<String>,
    ) -> async_graphql::Result<impl futures::Stream<Item = Res<LogAnalysisView>>> {
        let p = caller(ctx, ANY_ROLE)?;
        let seller = match p.role {
            Role::Seller => Some(
                SellerId::for_tenant(&p.tenant, &p.name)
                    .map_err(|e| ApiError::Forbidden(format!("this key names no seller: {e}")))?
                    .as_str()
                    .to_owned(),
            ),
            Role::Admin | Role::Finance | Role::Auditor | Role::Reviewer => match sub_pkp_id {
                Some(sub) => Some(
                    state(ctx)
                        .market
                        .may_read_seller(p, &sub)?
                        .as_str()
                        .to_owned(),
                ),
                None => None,
            },
            _ => {
                return Err(ApiError::Forbidden(
                    "sellers, reviewers, finance, auditors and admins follow analyses".into(),
                )
                .into())
            }
        };
        // Tenant-bound staff follow their tenant's sellers only.
        let tenant =
            (!p.sees_all_tenants(crate::logmarket::CROSS_TENANT_READERS)).then(|| p.tenant.clone());
        let s = state(ctx).clone();
        let after = s
            .store
            .visible_head()
            .await
            .map_err(|e| ApiError::internal("subscription start", e))?;
        let follow = Follow {
            commits: s.signal.subscribe(),
            state: s.clone(),
            seller,
            tenant,
            after,
            buffer: Default::default(),
        };
        Ok(crate::graphql::schema::guard_subscription(
            &s,
            p,
            futures::stream::unfold(follow, next_analysis),
        )?)
    }
}

async fn next_analysis(mut f: Follow) -> Option<(Res<LogAnalysisView>, Follow)> {
    let filter = agora_commands::EventFilter {
        aggregate_type: Some("log_analysis".into()),
        ..Default::default()
    };
    loop {
        while let Some(e) = f.buffer.pop_front() {
            if e.event_type != "LogAnalysisRecorded" {
                continue;
            }
            let Ok(agora_domain::logmarket::aggregate::LogAnalysisEvent::LogAnalysisRecorded {
                seller,
                stage,
                analysis,
                occurred_at,
                ..
            }) = serde_json::from_value(e.payload.clone())
            else {
                continue;
            };
            if f.seller.as_deref().is_some_and(|s| s != seller.as_str())
                || f.tenant.as_deref().is_some_and(|t| !seller.belongs_to(t))
            {
                continue;
            }
            let record = AnalysisRecord {
                id: e.aggregate_id.clone(),
                seller,
                stage,
                timestamp: occurred_at,
                analysis: *analysis,
                paid: false,
                transaction_id: None,
            };
            return Some((Ok(analysis_view(&record)), f));
        }
        match f
            .state
            .store
            .query_events(&filter, f.after, crate::graphql::schema::SUBSCRIPTION_BATCH)
            .await
        {
            Ok(events) if !events.is_empty() => {
                if let Some(last) = events.last() {
                    f.after = last.position;
                }
                f.buffer.extend(events);
                continue;
            }
            Ok(_) => {}
            Err(e) => return Some((Err(ApiError::internal("subscription read", e).into()), f)),
        }
        tokio::select! {
            _ = f.commits.changed() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(crate::graphql::schema::SUBSCRIPTION_POLL_MS)) => {}
        }
    }
}
