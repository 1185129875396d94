//! Log marketplace read models: analyses, sellers (earnings, points, achievements), agents
//! (logs, insights, money, feedback), templates seen, and marketplace totals. A dumb fold: the
//! events carry the scores and amounts.
//!
//! Every marketplace amount is a whole number of cents (prices are rounded to the cent before
//! they are recorded), so money is kept as integer cents and summed exactly in SQL; it leaves
//! this module as `Money`.

use agora_commands::store::StoredEvent;
use agora_domain::logmarket::aggregate::{
    LogAnalysis, LogAnalysisEvent, PayAuthorisation, Verdict,
};
use agora_domain::logmarket::analysis::tenant_prefix;
use agora_domain::logmarket::insight::Agent;
use agora_domain::logmarket::seller::{LogSeller, SellerEvent};
use agora_domain::money::Money;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use sqlx::{AnyPool, Row};

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub const NAME: &str = "logmarket";
const VERSION: i64 = 1;
/// Most rows a list query returns.
pub const MAX_LIST: i64 = 100;

const ANALYSES_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    analysis_id TEXT PRIMARY KEY,
    seller TEXT NOT NULL,
    stage TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    quality_q4 BIGINT NOT NULL,
    value_score BIGINT NOT NULL,
    payment_cents BIGINT NOT NULL,
    roi_cents BIGINT NOT NULL,
    insights BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    performance BIGINT NOT NULL,
    security BIGINT NOT NULL,
    improvements BIGINT NOT NULL,
    paid BIGINT NOT NULL,
    transaction_id TEXT,
    paid_at_us BIGINT,
    authorisation TEXT,
    global_position BIGINT NOT NULL,
    document TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {t}_seller ON {t} (seller, global_position)",
];

const SELLERS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    seller TEXT PRIMARY KEY,
    logs BIGINT NOT NULL,
    paid_logs BIGINT NOT NULL,
    earnings_cents BIGINT NOT NULL,
    quality_q4_sum BIGINT NOT NULL,
    value_sum BIGINT NOT NULL,
    points BIGINT NOT NULL,
    achievement_xp BIGINT NOT NULL,
    public_key TEXT)"];

const AGENTS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    agent TEXT PRIMARY KEY,
    logs_analyzed BIGINT NOT NULL,
    insights BIGINT NOT NULL,
    money_paid_cents BIGINT NOT NULL,
    confirmed BIGINT NOT NULL,
    rejected BIGINT NOT NULL)"];

const ACHIEVEMENTS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    seller TEXT NOT NULL,
    achievement TEXT NOT NULL,
    xp BIGINT NOT NULL,
    analysis_id TEXT NOT NULL,
    unlocked_at_us BIGINT NOT NULL,
    PRIMARY KEY (seller, achievement))"];

const TEMPLATES_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    hash TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    first_analysis TEXT NOT NULL,
    first_seen_us BIGINT NOT NULL,
    logs BIGINT NOT NULL,
    lines BIGINT NOT NULL)"];

const FEEDBACK_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    analysis_id TEXT NOT NULL,
    insight_index BIGINT NOT NULL,
    reviewer TEXT NOT NULL,
    agent TEXT NOT NULL,
    verdict TEXT NOT NULL,
    at_us BIGINT NOT NULL,
    PRIMARY KEY (analysis_id, insight_index, reviewer))"];

#[derive(Clone, Debug)]
struct Tables {
    analyses: String,
    sellers: String,
    agents: String,
    achievements: String,
    templates: String,
    feedback: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        Self {
            analyses: format!("{prefix}lm_analyses"),
            sellers: format!("{prefix}lm_sellers"),
            agents: format!("{prefix}lm_agents"),
            achievements: format!("{prefix}lm_achievements"),
            templates: format!("{prefix}lm_templates"),
            feedback: format!("{prefix}lm_feedback"),
        }
    }
}

/// The marketplace projection.
#[derive(Clone, Debug)]
pub struct LogMarketProjection {
    t: Tables,
}

impl Default for LogMarketProjection {
    fn default() -> Self {
        Self::new(LIVE_PREFIX)
    }
}

impl LogMarketProjection {
    pub fn new(prefix: &str) -> Self {
        Self {
            t: Tables::new(prefix),
        }
    }
}

/// Whole cents of a marketplace amount (recorded amounts are rounded to the cent).
pub fn cents(m: Money) -> Result<i64, ProjectionError> {
    let c = m.as_decimal() * Decimal::ONE_HUNDRED;
    if c.fract() != Decimal::ZERO {
        return Err(ProjectionError::Invariant(format!(
            "marketplace amount {m} is not whole cents"
        )));
    }
    i64::try_from(c.trunc().mantissa() / 10i128.pow(c.trunc().scale()))
        .map_err(|_| ProjectionError::Invariant(format!("amount {m} out of range")))
}

fn money(c: i64) -> Money {
    Money::from_cents(c).unwrap_or(Money::ZERO)
}

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Overall quality (a multiple of 0.25) times four, as an integer.
fn q4(quality: Decimal) -> i64 {
    let x = (quality * Decimal::from(4)).round();
    i64::try_from(x.mantissa() / 10i128.pow(x.scale())).unwrap_or(0)
}

#[async_trait]
impl Projection for LogMarketProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            TableSpec::new(self.t.analyses.clone(), ANALYSES_DDL),
            TableSpec::new(self.t.sellers.clone(), SELLERS_DDL),
            TableSpec::new(self.t.agents.clone(), AGENTS_DDL),
            TableSpec::new(self.t.achievements.clone(), ACHIEVEMENTS_DDL),
            TableSpec::new(self.t.templates.clone(), TEMPLATES_DDL),
            TableSpec::new(self.t.feedback.clone(), FEEDBACK_DDL),
        ]
    }

    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type == LogAnalysis::TYPE {
            let e: LogAnalysisEvent = serde_json::from_value(event.payload.clone())
                .map_err(|e| ProjectionError::decode(event, e))?;
            self.fold_analysis(tx, event, e).await
        } else if event.aggregate_type == LogSeller::TYPE {
            let e: SellerEvent = serde_json::from_value(event.payload.clone())
                .map_err(|e| ProjectionError::decode(event, e))?;
            self.fold_seller(tx, &event.aggregate_id, e).await
        } else {
            Ok(())
        }
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::new(prefix))
    }
}

impl LogMarketProjection {
    async fn ensure_seller(&self, tx: &mut ReadTx, seller: &str) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "INSERT INTO {} (seller, logs, paid_logs, earnings_cents, quality_q4_sum, value_sum, \
             points, achievement_xp, public_key) VALUES ($1, 0, 0, 0, 0, 0, 0, 0, NULL) \
             ON CONFLICT (seller) DO NOTHING",
            self.t.sellers
        ))
        .bind(seller)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn bump_agent(
        &self,
        tx: &mut ReadTx,
        agent: Agent,
        logs: i64,
        insights: i64,
        money_cents: i64,
        confirmed: i64,
        rejected: i64,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "INSERT INTO {t} (agent, logs_analyzed, insights, money_paid_cents, confirmed, rejected) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agent) DO UPDATE SET \
             logs_analyzed = {t}.logs_analyzed + $2, insights = {t}.insights + $3, \
             money_paid_cents = {t}.money_paid_cents + $4, confirmed = {t}.confirmed + $5, \
             rejected = {t}.rejected + $6",
            t = self.t.agents
        ))
        .bind(agent.id())
        .bind(logs)
        .bind(insights)
        .bind(money_cents)
        .bind(confirmed)
        .bind(rejected)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn fold_analysis(
        &self,
        tx: &mut ReadTx,
        event: &StoredEvent,
        e: LogAnalysisEvent,
    ) -> Result<(), ProjectionError> {
        let id = event.aggregate_id.as_str();
        match e {
            LogAnalysisEvent::LogAnalysisRecorded {
                seller,
                stage,
                analysis,
                occurred_at,
                ..
            } => {
                let count = |agent: Agent| {
                    analysis
                        .insights
                        .iter()
                        .filter(|i| i.agent() == agent)
                        .count() as i64
                };
                let mut document = serde_json::to_value(&analysis)
                    .map_err(|e| ProjectionError::decode(event, e))?;
                if let Some(obj) = document.as_object_mut() {
                    obj.remove("templates");
                }
                let q = q4(analysis.overall_quality);
                sqlx::query(&format!(
                    "INSERT INTO {} (analysis_id, seller, stage, created_at_us, quality_q4, \
                     value_score, payment_cents, roi_cents, insights, errors, performance, \
                     security, improvements, paid, transaction_id, paid_at_us, authorisation, \
                     global_position, document) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                     $10, $11, $12, $13, 0, NULL, NULL, NULL, $14, $15)",
                    self.t.analyses
                ))
                .bind(id)
                .bind(seller.as_str())
                .bind(stage.as_str())
                .bind(us(occurred_at))
                .bind(q)
                .bind(i64::from(analysis.value_score))
                .bind(cents(analysis.payment)?)
                .bind(cents(analysis.improvement.estimated_roi)?)
                .bind(analysis.insights.len() as i64)
                .bind(count(Agent::ErrorDetective))
                .bind(count(Agent::PerformanceAnalyzer))
                .bind(count(Agent::SecurityGuardian))
                .bind(count(Agent::QualityInspector))
                .bind(event.position.global_position)
                .bind(document.to_string())
                .execute(&mut *tx)
                .await?;
                self.ensure_seller(tx, seller.as_str()).await?;
                sqlx::query(&format!(
                    "UPDATE {} SET logs = logs + 1, quality_q4_sum = quality_q4_sum + $2, \
                     value_sum = value_sum + $3 WHERE seller = $1",
                    self.t.sellers
                ))
                .bind(seller.as_str())
                .bind(q)
                .bind(i64::from(analysis.value_score))
                .execute(&mut *tx)
                .await?;
                for agent in Agent::ALL {
                    let ran = i64::from(analysis.agents.contains(&agent));
                    let n = count(agent);
                    if ran + n > 0 {
                        self.bump_agent(tx, agent, ran, n, 0, 0, 0).await?;
                    }
                }
                for t in &analysis.templates {
                    sqlx::query(&format!(
                        "INSERT INTO {t} (hash, template, first_analysis, first_seen_us, logs, lines) \
                         VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (hash) DO UPDATE SET \
                         logs = {t}.logs + 1, lines = {t}.lines + $5",
                        t = self.t.templates
                    ))
                    .bind(&t.hash)
                    .bind(&t.template)
                    .bind(id)
                    .bind(us(occurred_at))
                    .bind(i64::from(t.lines))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            LogAnalysisEvent::AnalysisPaid {
                transaction_id,
                seller,
                amount,
                agent_shares,
                authorisation,
                occurred_at,
                ..
            } => {
                let how = match authorisation {
                    PayAuthorisation::SellerSignature { .. } => "seller_signature",
                    PayAuthorisation::Operator { .. } => "operator",
                };
                sqlx::query(&format!(
                    "UPDATE {} SET paid = 1, transaction_id = $2, paid_at_us = $3, \
                     authorisation = $4 WHERE analysis_id = $1",
                    self.t.analyses
                ))
                .bind(id)
                .bind(&transaction_id)
                .bind(us(occurred_at))
                .bind(how)
                .execute(&mut *tx)
                .await?;
                self.ensure_seller(tx, seller.as_str()).await?;
                sqlx::query(&format!(
                    "UPDATE {} SET paid_logs = paid_logs + 1, earnings_cents = earnings_cents + $2 \
                     WHERE seller = $1",
                    self.t.sellers
                ))
                .bind(seller.as_str())
                .bind(cents(amount)?)
                .execute(&mut *tx)
                .await?;
                for share in agent_shares {
                    self.bump_agent(tx, share.agent, 0, 0, cents(share.amount)?, 0, 0)
                        .await?;
                }
            }
            LogAnalysisEvent::InsightFeedbackRecorded {
                insight_index,
                agent,
                verdict,
                reviewer,
                occurred_at,
            } => {
                let (c, r, v) = match verdict {
                    Verdict::Confirmed => (1, 0, "confirmed"),
                    Verdict::FalsePositive => (0, 1, "false_positive"),
                };
                sqlx::query(&format!(
                    "INSERT INTO {} (analysis_id, insight_index, reviewer, agent, verdict, at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    self.t.feedback
                ))
                .bind(id)
                .bind(i64::from(insight_index))
                .bind(&reviewer)
                .bind(agent.id())
                .bind(v)
                .bind(us(occurred_at))
                .execute(&mut *tx)
                .await?;
                self.bump_agent(tx, agent, 0, 0, 0, c, r).await?;
            }
        }
        Ok(())
    }

    async fn fold_seller(
        &self,
        tx: &mut ReadTx,
        seller: &str,
        e: SellerEvent,
    ) -> Result<(), ProjectionError> {
        self.ensure_seller(tx, seller).await?;
        match e {
            SellerEvent::SellerKeyRegistered { public_key_hex, .. } => {
                sqlx::query(&format!(
                    "UPDATE {} SET public_key = $2 WHERE seller = $1",
                    self.t.sellers
                ))
                .bind(seller)
                .bind(public_key_hex)
                .execute(&mut *tx)
                .await?;
            }
            SellerEvent::PointsAwarded { points, .. } => {
                sqlx::query(&format!(
                    "UPDATE {} SET points = points + $2 WHERE seller = $1",
                    self.t.sellers
                ))
                .bind(seller)
                .bind(i64::try_from(points).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            }
            SellerEvent::AchievementUnlocked {
                achievement,
                xp,
                analysis_id,
                occurred_at,
            } => {
                let xp = i64::try_from(xp).unwrap_or(i64::MAX);
                sqlx::query(&format!(
                    "INSERT INTO {} (seller, achievement, xp, analysis_id, unlocked_at_us) \
                     VALUES ($1, $2, $3, $4, $5)",
                    self.t.achievements
                ))
                .bind(seller)
                .bind(achievement.id())
                .bind(xp)
                .bind(analysis_id)
                .bind(us(occurred_at))
                .execute(&mut *tx)
                .await?;
                sqlx::query(&format!(
                    "UPDATE {} SET achievement_xp = achievement_xp + $2 WHERE seller = $1",
                    self.t.sellers
                ))
                .bind(seller)
                .bind(xp)
                .execute(&mut *tx)
                .await?;
            }
            SellerEvent::AnalysisCredited { .. } | SellerEvent::SellerKeyRequested { .. } => {}
        }
        Ok(())
    }
}

/// Marketplace totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Totals {
    pub analyses: i64,
    pub insights: i64,
    pub paid_count: i64,
    pub total_paid: Money,
    /// Sum of overall quality × 4 over all analyses.
    pub quality_q4_sum: i64,
    pub value_sum: i64,
    pub roi_sum: Money,
    pub errors: i64,
    pub performance: i64,
    pub security: i64,
    pub improvements: i64,
}

impl Totals {
    /// Mean overall quality, to two decimals (0 without analyses).
    pub fn average_quality(&self) -> Decimal {
        avg(
            Decimal::from(self.quality_q4_sum) / Decimal::from(4),
            self.analyses,
        )
    }

    pub fn average_value(&self) -> Decimal {
        avg(Decimal::from(self.value_sum), self.analyses)
    }

    pub fn average_roi(&self) -> Money {
        Money::try_from_decimal(avg(self.roi_sum.as_decimal(), self.analyses))
            .unwrap_or(Money::ZERO)
    }

    /// Mean payment over paid analyses, to the cent.
    pub fn average_payment(&self) -> Money {
        Money::try_from_decimal(avg(self.total_paid.as_decimal(), self.paid_count))
            .unwrap_or(Money::ZERO)
    }
}

fn avg(sum: Decimal, n: i64) -> Decimal {
    if n == 0 {
        Decimal::ZERO
    } else {
        (sum / Decimal::from(n))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven)
    }
}

/// A seller's standing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SellerRow {
    pub seller: String,
    pub logs: i64,
    pub paid_logs: i64,
    pub earnings: Money,
    pub quality_q4_sum: i64,
    pub value_sum: i64,
    pub points: i64,
    pub achievement_xp: i64,
    pub public_key: Option<String>,
}

impl SellerRow {
    /// Points plus achievement rewards.
    pub fn xp(&self) -> i64 {
        self.points.saturating_add(self.achievement_xp)
    }

    pub fn average_earnings(&self) -> Money {
        Money::try_from_decimal(avg(self.earnings.as_decimal(), self.paid_logs))
            .unwrap_or(Money::ZERO)
    }

    pub fn average_quality(&self) -> Decimal {
        avg(
            Decimal::from(self.quality_q4_sum) / Decimal::from(4),
            self.logs,
        )
    }
}

/// One agent's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRow {
    pub agent: Agent,
    pub logs_analyzed: i64,
    pub insights: i64,
    pub money_paid: Money,
    pub confirmed: i64,
    pub rejected: i64,
}

impl AgentRow {
    fn empty(agent: Agent) -> Self {
        Self {
            agent,
            logs_analyzed: 0,
            insights: 0,
            money_paid: Money::ZERO,
            confirmed: 0,
            rejected: 0,
        }
    }

    /// confirmed / (confirmed + rejected) in percent, to one decimal; `None` without feedback.
    pub fn accuracy(&self) -> Option<Decimal> {
        let n = self.confirmed + self.rejected;
        (n > 0).then(|| {
            (Decimal::from(self.confirmed) * Decimal::ONE_HUNDRED / Decimal::from(n)).round_dp(1)
        })
    }
}

/// One analysis as listed.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisRow {
    pub analysis_id: String,
    pub seller: String,
    pub stage: String,
    pub created_at: DateTime<Utc>,
    pub quality: Decimal,
    pub value_score: i64,
    pub payment: Money,
    pub roi: Money,
    pub insights: i64,
    pub errors: i64,
    pub performance: i64,
    pub security: i64,
    pub improvements: i64,
    pub paid: bool,
    pub transaction_id: Option<String>,
    pub paid_at: Option<DateTime<Utc>>,
    pub authorisation: Option<String>,
    pub global_position: i64,
    /// The recorded analysis (insights, quality, improvement potential) as JSON.
    pub document: serde_json::Value,
}

/// An unlocked achievement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AchievementRow {
    pub achievement: String,
    pub xp: i64,
    pub analysis_id: String,
    pub unlocked_at: DateTime<Utc>,
}

/// One day's averages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyTrend {
    pub day: chrono::NaiveDate,
    pub analyses: i64,
    pub average_quality: Decimal,
    pub average_value: Decimal,
    pub paid: Money,
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// `SUM(expr)` as a BIGINT on both backends (PostgreSQL sums BIGINT into NUMERIC).
fn total(expr: &str) -> String {
    format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)")
}

/// Read-side queries over the live tables.
#[derive(Clone)]
pub struct LogMarketQueries {
    pool: AnyPool,
    t: Tables,
}

/// Whose sellers a read covers: every tenant's (platform staff), or one tenant's (sellers' ids
/// are scoped by tenant: see `SellerId`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SellerScope {
    All,
    Tenant(String),
}

impl SellerScope {
    /// A SQL condition on the `seller` column (no parameters: a tenant's prefix is hex and
    /// `__`, so it is inlined safely).
    fn condition(&self) -> String {
        match self {
            Self::All => "1 = 1".to_owned(),
            Self::Tenant(tenant) => match tenant_prefix(tenant) {
                Some(prefix) => format!("substr(seller, 1, {}) = '{prefix}'", prefix.len()),
                None => "NOT (substr(seller, 17, 2) = '__')".to_owned(),
            },
        }
    }
}

const ANALYSIS_COLUMNS: &str = "analysis_id, seller, stage, created_at_us, quality_q4, \
    value_score, payment_cents, roi_cents, insights, errors, performance, security, \
    improvements, paid, transaction_id, paid_at_us, authorisation, global_position, document";

const SELLER_COLUMNS: &str = "seller, logs, paid_logs, earnings_cents, quality_q4_sum, \
    value_sum, points, achievement_xp, public_key";

impl LogMarketQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            t: Tables::new(LIVE_PREFIX),
        }
    }

    pub async fn totals(&self, scope: &SellerScope) -> Result<Totals, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*), {}, {}, {}, {}, {}, {}, {}, {}, {}, {} FROM {} WHERE {}",
            total("insights"),
            total("paid"),
            total("CASE WHEN paid = 1 THEN payment_cents ELSE 0 END"),
            total("quality_q4"),
            total("value_score"),
            total("roi_cents"),
            total("errors"),
            total("performance"),
            total("security"),
            total("improvements"),
            self.t.analyses,
            scope.condition()
        ))
        .fetch_one(&self.pool)
        .await?;
        let n = |i: usize| -> Result<i64, ProjectionError> { Ok(row.try_get::<i64, _>(i)?) };
        Ok(Totals {
            analyses: n(0)?,
            insights: n(1)?,
            paid_count: n(2)?,
            total_paid: money(n(3)?),
            quality_q4_sum: n(4)?,
            value_sum: n(5)?,
            roi_sum: money(n(6)?),
            errors: n(7)?,
            performance: n(8)?,
            security: n(9)?,
            improvements: n(10)?,
        })
    }

    /// Sellers by earnings (then id), at most `limit` (≤ [`MAX_LIST`]).
    pub async fn top_earners(
        &self,
        scope: &SellerScope,
        limit: i64,
    ) -> Result<Vec<SellerRow>, ProjectionError> {
        self.sellers_by(scope, "earnings_cents DESC, seller", limit)
            .await
    }

    /// Sellers by XP (points + achievement rewards), then id.
    pub async fn points_leaderboard(
        &self,
        scope: &SellerScope,
        limit: i64,
    ) -> Result<Vec<SellerRow>, ProjectionError> {
        self.sellers_by(scope, "(points + achievement_xp) DESC, seller", limit)
            .await
    }

    async fn sellers_by(
        &self,
        scope: &SellerScope,
        order: &str,
        limit: i64,
    ) -> Result<Vec<SellerRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT {SELLER_COLUMNS} FROM {} WHERE {} ORDER BY {order} LIMIT $1",
            self.t.sellers,
            scope.condition()
        ))
        .bind(limit.clamp(1, MAX_LIST))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(seller_row).collect()
    }

    pub async fn seller(&self, seller: &str) -> Result<Option<SellerRow>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT {SELLER_COLUMNS} FROM {} WHERE seller = $1",
            self.t.sellers
        ))
        .bind(seller)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(seller_row).transpose()
    }

    pub async fn achievements(&self, seller: &str) -> Result<Vec<AchievementRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT achievement, xp, analysis_id, unlocked_at_us FROM {} WHERE seller = $1 \
             ORDER BY unlocked_at_us, achievement",
            self.t.achievements
        ))
        .bind(seller)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AchievementRow {
                    achievement: r.try_get(0)?,
                    xp: r.try_get(1)?,
                    analysis_id: r.try_get(2)?,
                    unlocked_at: time(r.try_get(3)?),
                })
            })
            .collect()
    }

    /// All four agents, with zero counters for an agent that has not run yet.
    pub async fn agents(&self) -> Result<Vec<AgentRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT agent, logs_analyzed, insights, money_paid_cents, confirmed, rejected FROM {}",
            self.t.agents
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<AgentRow> = Agent::ALL.into_iter().map(AgentRow::empty).collect();
        for r in rows {
            let id: String = r.try_get(0)?;
            if let Some(slot) = out.iter_mut().find(|a| a.agent.id() == id) {
                slot.logs_analyzed = r.try_get(1)?;
                slot.insights = r.try_get(2)?;
                slot.money_paid = money(r.try_get(3)?);
                slot.confirmed = r.try_get(4)?;
                slot.rejected = r.try_get(5)?;
            }
        }
        Ok(out)
    }

    pub async fn analysis(&self, id: &str) -> Result<Option<AnalysisRow>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT {ANALYSIS_COLUMNS} FROM {} WHERE analysis_id = $1",
            self.t.analyses
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(analysis_row).transpose()
    }

    /// A seller's analyses, newest first, before global position `before` (keyset paging).
    pub async fn analyses_for_seller(
        &self,
        seller: &str,
        only_paid: bool,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AnalysisRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT {ANALYSIS_COLUMNS} FROM {} WHERE seller = $1 AND global_position < $2 \
             AND paid >= $3 ORDER BY global_position DESC LIMIT $4",
            self.t.analyses
        ))
        .bind(seller)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(only_paid))
        .bind(limit.clamp(1, MAX_LIST))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(analysis_row).collect()
    }

    /// Daily averages, newest day first, at most `days`.
    pub async fn daily_trends(
        &self,
        scope: &SellerScope,
        days: i64,
    ) -> Result<Vec<DailyTrend>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT created_at_us / 86400000000 AS d, COUNT(*), {}, {}, {} FROM {} WHERE {} \
             GROUP BY created_at_us / 86400000000 ORDER BY d DESC LIMIT $1",
            total("quality_q4"),
            total("value_score"),
            total("CASE WHEN paid = 1 THEN payment_cents ELSE 0 END"),
            self.t.analyses,
            scope.condition()
        ))
        .bind(days.clamp(1, MAX_LIST))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let day: i64 = r.try_get(0)?;
                let n: i64 = r.try_get(1)?;
                let q: i64 = r.try_get(2)?;
                let v: i64 = r.try_get(3)?;
                let paid: i64 = r.try_get(4)?;
                Ok(DailyTrend {
                    day: time(day * 86_400_000_000).date_naive(),
                    analyses: n,
                    average_quality: avg(Decimal::from(q) / Decimal::from(4), n),
                    average_value: avg(Decimal::from(v), n),
                    paid: money(paid),
                })
            })
            .collect()
    }

    /// Every template hash the marketplace has seen (to seed the novelty index at start).
    pub async fn template_hashes(&self) -> Result<Vec<String>, ProjectionError> {
        let rows = sqlx::query(&format!("SELECT hash FROM {}", self.t.templates))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    /// Distinct templates seen.
    pub async fn template_count(&self) -> Result<i64, ProjectionError> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", self.t.templates))
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }
}

fn seller_row(r: &sqlx::any::AnyRow) -> Result<SellerRow, ProjectionError> {
    Ok(SellerRow {
        seller: r.try_get(0)?,
        logs: r.try_get(1)?,
        paid_logs: r.try_get(2)?,
        earnings: money(r.try_get(3)?),
        quality_q4_sum: r.try_get(4)?,
        value_sum: r.try_get(5)?,
        points: r.try_get(6)?,
        achievement_xp: r.try_get(7)?,
        public_key: r.try_get(8)?,
    })
}

fn analysis_row(r: &sqlx::any::AnyRow) -> Result<AnalysisRow, ProjectionError> {
    let paid_at: Option<i64> = r.try_get(15)?;
    let document: String = r.try_get(18)?;
    Ok(AnalysisRow {
        analysis_id: r.try_get(0)?,
        seller: r.try_get(1)?,
        stage: r.try_get(2)?,
        created_at: time(r.try_get(3)?),
        quality: Decimal::from(r.try_get::<i64, _>(4)?) / Decimal::from(4),
        value_score: r.try_get(5)?,
        payment: money(r.try_get(6)?),
        roi: money(r.try_get(7)?),
        insights: r.try_get(8)?,
        errors: r.try_get(9)?,
        performance: r.try_get(10)?,
        security: r.try_get(11)?,
        improvements: r.try_get(12)?,
        paid: r.try_get::<i64, _>(13)? == 1,
        transaction_id: r.try_get(14)?,
        paid_at: paid_at.map(time),
        authorisation: r.try_get(16)?,
        global_position: r.try_get(17)?,
        document: serde_json::from_str(&document)
            .map_err(|e| ProjectionError::Invariant(format!("analysis document: {e}")))?,
    })
}
