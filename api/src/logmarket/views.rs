//! The seed's JSON shapes for the REST adapters. Money is a decimal string ("11.55"), never a
//! JSON number; scores are numbers.

use agora_domain::logmarket::analysis::Analysis;
use agora_domain::logmarket::insight::{Agent, Insight, InsightKind};
use agora_domain::logmarket::pricing::{Bonuses, PricingConfig};
use agora_domain::logmarket::scoring::PotentialDimension;
use agora_domain::money::Money;
use agora_projections::logmarket::{
    AchievementRow, AgentRow, AnalysisRow, DailyTrend, SellerRow, Totals,
};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{AnalysisRecord, Receipt};

/// A score or average as a JSON number (these are not money: exact decimals with ≤ 2 places).
pub fn num(d: Decimal) -> Value {
    json!(d.to_f64().unwrap_or(0.0))
}

fn m(x: Money) -> Value {
    Value::String(x.to_string())
}

/// The seed's area names for quality findings.
pub fn area(kind: InsightKind) -> &'static str {
    match kind {
        InsightKind::LowCoverage => "test-coverage",
        InsightKind::DeprecatedDependency => "dependencies",
        InsightKind::Warning => "warnings",
        InsightKind::MissingErrorHandling => "error-handling",
        _ => "general",
    }
}

fn detail<'a>(i: &'a Insight, key: &str) -> Option<&'a str> {
    i.details.get(key).map(String::as_str)
}

/// One insight in its agent's seed shape, plus the common fields.
pub fn insight_json(index: usize, i: &Insight) -> Value {
    let mut v = match i.agent() {
        Agent::ErrorDetective => json!({
            "pattern": i.title,
            "location": i.location,
            "severity": i.severity.as_str(),
            "impact": i.impact,
            "rootCause": i.root_cause,
            "fix": i.fix,
        }),
        Agent::PerformanceAnalyzer => json!({
            "issue": i.title,
            "query": detail(i, "query"),
            "impact": i.impact,
            "optimization": i.fix,
            "estimatedImprovement": detail(i, "estimatedImprovement"),
            "severity": i.severity.as_str(),
        }),
        Agent::SecurityGuardian => json!({
            "threat": i.title,
            "source": detail(i, "source"),
            "method": detail(i, "method"),
            "severity": i.severity.as_str(),
            "action": detail(i, "action"),
            "recommendation": i.fix,
        }),
        Agent::QualityInspector => json!({
            "area": area(i.kind),
            "issue": i.title,
            "current": detail(i, "current"),
            "target": detail(i, "target"),
            "impact": i.impact,
            "suggestion": i.fix,
            "recommendation": i.fix,
            "severity": i.severity.as_str(),
        }),
    };
    if let Some(obj) = v.as_object_mut() {
        obj.insert("index".into(), json!(index));
        obj.insert("agent".into(), json!(i.agent().id()));
        obj.insert("kind".into(), json!(i.kind));
        obj.insert("location".into(), json!(i.location));
        obj.insert("logLine".into(), json!(i.log_line));
        obj.insert("excerpt".into(), json!(i.excerpt));
        obj.insert("details".into(), json!(i.details));
    }
    v
}

fn dimension(d: &PotentialDimension) -> Value {
    json!({"current": d.current, "potential": d.potential, "improvement": d.improvement})
}

fn bonuses(b: &Bonuses) -> Value {
    json!({
        "uniqueness": b.uniqueness,
        "criticalError": b.critical_error,
        "security": b.security,
        "performance": b.performance,
    })
}

/// Insights grouped as the seed's `aiInsights`.
pub fn ai_insights(a: &Analysis) -> Value {
    let group = |agent: Agent| -> Vec<Value> {
        a.insights
            .iter()
            .enumerate()
            .filter(|(_, i)| i.agent() == agent)
            .map(|(n, i)| insight_json(n, i))
            .collect()
    };
    json!({
        "errorPatterns": group(Agent::ErrorDetective),
        "performanceIssues": group(Agent::PerformanceAnalyzer),
        "securityConcerns": group(Agent::SecurityGuardian),
        "improvementOpportunities": group(Agent::QualityInspector),
    })
}

/// The seed's `/analyze` response.
pub fn analysis_json(r: &AnalysisRecord) -> Value {
    let a = &r.analysis;
    let p = &a.improvement;
    json!({
        "id": r.id,
        "source": r.stage.as_str(),
        "timestamp": r.timestamp,
        "subPKPId": r.seller.sub_pkp_id(),
        "aiInsights": ai_insights(a),
        "quality": {
            "completeness": a.quality.completeness,
            "relevance": a.quality.relevance,
            "actionability": a.quality.actionability,
            "uniqueness": a.quality.uniqueness,
            "overall": num(a.overall_quality),
        },
        "valueScore": a.value_score,
        "paymentAmount": m(a.payment),
        "bonuses": bonuses(&a.bonuses),
        "improvementPotential": {
            "developmentSpeed": dimension(&p.development_speed),
            "codeQuality": dimension(&p.code_quality),
            "errorReduction": dimension(&p.error_reduction),
            "hoursSaved": num(p.hours_saved),
            "estimatedROI": m(p.estimated_roi),
        },
        "paid": r.paid,
        "transactionId": r.transaction_id,
        "log": {
            "sha256": a.log_sha256,
            "bytes": a.log_bytes,
            "lines": a.line_count,
            "templates": a.template_count,
            "newTemplates": a.templates.iter().filter(|t| t.new).count(),
        },
        "agents": a.agents.iter().map(|g| g.id()).collect::<Vec<_>>(),
    })
}

/// An analysis read back from the read model.
pub fn record_from_row(row: &AnalysisRow) -> Option<AnalysisRecord> {
    let analysis: Analysis = serde_json::from_value(row.document.clone()).ok()?;
    Some(AnalysisRecord {
        id: row.analysis_id.clone(),
        seller: agora_domain::logmarket::analysis::SellerId::parse(&row.seller).ok()?,
        stage: agora_domain::logmarket::analysis::Stage::parse(&row.stage)?,
        timestamp: row.created_at,
        analysis,
        paid: row.paid,
        transaction_id: row.transaction_id.clone(),
    })
}

/// The seed's `/pay` response.
pub fn receipt_json(r: &Receipt) -> Value {
    json!({
        "id": r.transaction_id,
        "type": "log-data",
        "amount": m(r.amount),
        "subPKPId": r.seller.sub_pkp_id(),
        "analysisId": r.analysis_id,
        "timestamp": r.timestamp,
        "journalEntryId": r.journal_entry_id,
        "metadata": {
            "source": r.stage.as_str(),
            "valueScore": r.value_score,
            "quality": num(r.quality),
            "authorisation": r.authorisation,
        },
    })
}

/// A summary line of a simulation or batch result.
pub fn short_result(r: &AnalysisRecord) -> Value {
    let count = |agent: Agent| {
        r.analysis
            .insights
            .iter()
            .filter(|i| i.agent() == agent)
            .count()
    };
    json!({
        "id": r.id,
        "source": r.stage.as_str(),
        "valueScore": r.analysis.value_score,
        "paymentAmount": m(r.analysis.payment),
        "quality": num(r.analysis.overall_quality),
        "paid": r.paid,
        "insights": {
            "errors": count(Agent::ErrorDetective),
            "performance": count(Agent::PerformanceAnalyzer),
            "security": count(Agent::SecurityGuardian),
            "improvements": count(Agent::QualityInspector),
        },
    })
}

fn mean(sum: Decimal, n: usize) -> Decimal {
    if n == 0 {
        Decimal::ZERO
    } else {
        (sum / Decimal::from(n as u64)).round_dp(2)
    }
}

/// Totals over a set of results: payable (the analyses' prices), paid, averages.
pub fn summary(records: &[&AnalysisRecord], paid: Money) -> Value {
    let payable =
        Money::checked_sum(records.iter().map(|r| r.analysis.payment)).unwrap_or(Money::ZERO);
    let n = records.len();
    let value: Decimal = records
        .iter()
        .map(|r| Decimal::from(r.analysis.value_score))
        .sum();
    let quality: Decimal = records.iter().map(|r| r.analysis.overall_quality).sum();
    let insights: usize = records.iter().map(|r| r.analysis.insights.len()).sum();
    json!({
        "totalPayable": m(payable),
        "totalPaid": m(paid),
        "averageValue": num(mean(value, n)),
        "averageQuality": num(mean(quality, n)),
        "averagePayment": m(Money::try_from_decimal(mean(payable.as_decimal(), n)).unwrap_or(Money::ZERO)),
        "totalInsights": insights,
    })
}

pub fn agent_stats(a: &AgentRow) -> Value {
    json!({
        "logsAnalyzed": a.logs_analyzed,
        "insightsGenerated": a.insights,
        "moneyPaid": m(a.money_paid),
        "accuracy": a.accuracy().map(num),
        "feedback": {"confirmed": a.confirmed, "falsePositives": a.rejected},
    })
}

pub fn agent_json(a: &AgentRow, active: bool) -> Value {
    let g = a.agent;
    json!({
        "id": g.id(),
        "name": g.name(),
        "expertise": g.expertise(),
        "monitoredStages": g.monitored_stages(),
        "active": active,
        "stats": agent_stats(a),
        "aiModel": g.engine(),
    })
}

/// The seed's `/dashboard` response.
pub fn dashboard_json(t: &Totals, top: &[SellerRow], agents: &[AgentRow]) -> Value {
    json!({
        "totalPaid": m(t.total_paid),
        "totalInsights": t.insights,
        "totalAnalyses": t.analyses,
        "paidAnalyses": t.paid_count,
        "averagePayment": m(t.average_payment()),
        "topDataSellers": top.iter().map(|s| json!({
            "subPKPId": sub_pkp_id(&s.seller), "earnings": m(s.earnings), "logs": s.logs,
        })).collect::<Vec<_>>(),
        "monitoringAgents": agents.iter().map(|a| {
            let mut v = agent_stats(a);
            if let Some(o) = v.as_object_mut() {
                o.insert("id".into(), json!(a.agent.id()));
                o.insert("name".into(), json!(a.agent.name()));
            }
            v
        }).collect::<Vec<_>>(),
        "qualityTrends": {
            "averageQuality": num(t.average_quality()),
            "averageValue": num(t.average_value()),
            "averageROI": m(t.average_roi()),
        },
    })
}

/// One of the seed's worked examples, priced with the live configuration.
pub struct PricingExample {
    pub name: &'static str,
    pub quality: u8,
    pub value_score: u8,
    pub bonuses: Bonuses,
    /// `None` only if the configuration overflows.
    pub payment: Option<Money>,
}

/// The seed's three worked examples, priced with the live configuration.
pub fn pricing_examples(p: &PricingConfig) -> Vec<PricingExample> {
    let ex = [
        (
            "Basic log entry: build log with standard compilation output",
            60,
            50,
            Bonuses::default(),
        ),
        (
            "Performance issue: slow database query detected (1842ms)",
            85,
            75,
            Bonuses {
                performance: true,
                ..Bonuses::default()
            },
        ),
        (
            "Critical security vulnerability: unauthorized access attempt + SQL injection",
            95,
            100,
            Bonuses {
                security: true,
                uniqueness: true,
                ..Bonuses::default()
            },
        ),
    ];
    ex.into_iter()
        .map(|(name, quality, value_score, bonuses)| PricingExample {
            name,
            quality,
            value_score,
            bonuses,
            payment: p.payment(Decimal::from(quality), value_score, bonuses).ok(),
        })
        .collect()
}

/// The seed's `/pricing` response.
pub fn pricing_json(p: &PricingConfig) -> Value {
    json!({
        "basePrice": m(p.base_price),
        "qualityMultiplier": m(p.quality_multiplier),
        "bonuses": {
            "uniqueness": m(p.uniqueness_bonus),
            "criticalError": m(p.critical_error_bonus),
            "security": m(p.security_bonus),
            "performance": m(p.performance_bonus),
        },
        "minPayment": m(p.min_payment),
        "maxPayment": m(p.max_payment),
        "rounding": "half-even to the cent, then clamped to [minPayment, maxPayment]",
        "formula": "Payment = (Base + Quality * Multiplier + Bonuses) * ValueScore%",
        "examples": pricing_examples(p).iter().map(|e| json!({
            "name": e.name,
            "quality": e.quality,
            "valueScore": e.value_score,
            "bonuses": bonuses(&e.bonuses),
            "payment": e.payment.map(m),
        })).collect::<Vec<_>>(),
    })
}

/// The seed's `/top-earners` response.
pub fn top_earners_json(rows: &[SellerRow], t: &Totals) -> Value {
    json!({
        "topEarners": rows.iter().enumerate().map(|(i, s)| json!({
            "rank": i + 1,
            "subPKPId": sub_pkp_id(&s.seller),
            "totalEarnings": m(s.earnings),
            "logsSubmitted": s.logs,
            "logsPaid": s.paid_logs,
            "averageEarnings": m(s.average_earnings()),
        })).collect::<Vec<_>>(),
        "totalMarketplace": {
            "totalPaid": m(t.total_paid),
            "totalInsights": t.insights,
            "averagePayment": m(t.average_payment()),
        },
    })
}

/// Targets the quality-trend insights compare against.
pub const QUALITY_TARGET: i64 = 80;
pub const VALUE_TARGET: i64 = 70;
pub const ROI_TARGET_DOLLARS: i64 = 5_000;

/// Recommendations, each from a documented rule over the averages (docs/analysers.md).
pub fn recommendations(t: &Totals) -> Vec<String> {
    let mut out = Vec::new();
    if t.analyses == 0 {
        out.push("No logs analysed yet: submit build, test, deploy and runtime logs".to_owned());
        return out;
    }
    if t.average_quality() < Decimal::from(60) {
        out.push("Quality below 60: include complete stack traces, timestamps and context about failures".to_owned());
    } else if t.average_quality() < Decimal::from(QUALITY_TARGET) {
        out.push(
            "Quality below target: include file paths with line numbers and full stack traces"
                .to_owned(),
        );
    }
    if t.average_value() < Decimal::from(VALUE_TARGET) {
        out.push("Value below target: submit logs that capture failures, performance metrics and security events".to_owned());
    }
    if t.performance == 0 {
        out.push("No performance findings yet: add execution times, memory usage and query durations to logs".to_owned());
    }
    if t.average_roi().as_decimal() >= Decimal::from(ROI_TARGET_DOLLARS) {
        out.push("Excellent ROI! Keep focusing on high-value data generation".to_owned());
    }
    if out.is_empty() {
        out.push("On target: keep submitting logs with actionable detail".to_owned());
    }
    out
}

/// One average against its target.
pub struct TrendInsight {
    pub metric: &'static str,
    pub value: Decimal,
    pub target: i64,
    /// `good` or `needs-improvement`.
    pub status: &'static str,
}

/// Quality, value and ROI against [`QUALITY_TARGET`], [`VALUE_TARGET`], [`ROI_TARGET_DOLLARS`].
pub fn trend_insights(t: &Totals) -> Vec<TrendInsight> {
    [
        ("Quality", t.average_quality(), QUALITY_TARGET),
        ("Value", t.average_value(), VALUE_TARGET),
        ("ROI", t.average_roi().as_decimal(), ROI_TARGET_DOLLARS),
    ]
    .into_iter()
    .map(|(metric, value, target)| TrendInsight {
        metric,
        value,
        target,
        status: if value >= Decimal::from(target) {
            "good"
        } else {
            "needs-improvement"
        },
    })
    .collect()
}

/// The seed's `/quality-trends` response, with daily series.
pub fn quality_trends_json(t: &Totals, days: &[DailyTrend]) -> Value {
    json!({
        "currentTrends": {
            "averageQuality": num(t.average_quality()),
            "averageValue": num(t.average_value()),
            "averageROI": m(t.average_roi()),
        },
        "insights": trend_insights(t).iter().map(|i| json!({
            "metric": i.metric, "value": num(i.value), "target": i.target, "status": i.status,
        })).collect::<Vec<_>>(),
        "recommendations": recommendations(t),
        "daily": days.iter().map(|d| json!({
            "day": d.day.to_string(),
            "analyses": d.analyses,
            "averageQuality": num(d.average_quality),
            "averageValue": num(d.average_value),
            "paid": m(d.paid),
        })).collect::<Vec<_>>(),
    })
}

/// The seed's `subPKPId` of a stored seller id (without its tenant's tag).
pub fn sub_pkp_id(seller: &str) -> String {
    agora_domain::logmarket::analysis::SellerId::parse(seller)
        .map_or_else(|_| seller.to_owned(), |id| id.sub_pkp_id().to_owned())
}

/// A seller's game standing.
pub fn seller_json(s: &SellerRow, achievements: &[AchievementRow]) -> Value {
    json!({
        "subPKPId": sub_pkp_id(&s.seller),
        "logsSubmitted": s.logs,
        "logsPaid": s.paid_logs,
        "earnings": m(s.earnings),
        "averageQuality": num(s.average_quality()),
        "points": s.points,
        "xp": s.xp(),
        "publicKey": s.public_key,
        "achievements": achievements.iter().map(|a| json!({
            "id": a.achievement, "xp": a.xp, "analysisId": a.analysis_id, "unlockedAt": a.unlocked_at,
        })).collect::<Vec<_>>(),
    })
}

/// The points leaderboard.
pub fn leaderboard_json(rows: &[SellerRow]) -> Value {
    json!({
        "leaderboard": rows.iter().enumerate().map(|(i, s)| json!({
            "rank": i + 1, "subPKPId": sub_pkp_id(&s.seller), "points": s.points, "xp": s.xp(),
        })).collect::<Vec<_>>(),
    })
}
