//! Quality (completeness, relevance, actionability, uniqueness), value score, bonuses and
//! improvement potential of one analysed log. Every number here is a documented rule over the
//! insights and simple facts about the log text (docs/analysers.md, "Scoring"), so an auditor
//! can recompute why a log was paid what it was.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::insight::{Agent, Insight, InsightKind, Severity};
use super::pricing::Bonuses;
use crate::money::{Money, MoneyError};

/// Facts about the log text itself, measured once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFacts {
    /// Non-empty lines.
    pub lines: u32,
    /// Non-empty lines that carry a clock time (`HH:MM:SS`) in their first 64 bytes.
    pub timestamped_lines: u32,
    /// The log states measurements (durations, sizes, percentages).
    pub has_metrics: bool,
    /// The log marks levels or stages (`INFO`, `WARN`, `ERROR`, `[build]`, …).
    pub has_levels: bool,
}

/// The four quality dimensions, 0–100 each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quality {
    pub completeness: u8,
    pub relevance: u8,
    pub actionability: u8,
    pub uniqueness: u8,
}

impl Quality {
    /// The seed's overall quality: the mean of the four (a multiple of 0.25).
    pub fn overall(&self) -> Decimal {
        let sum = u32::from(self.completeness)
            + u32::from(self.relevance)
            + u32::from(self.actionability)
            + u32::from(self.uniqueness);
        Decimal::from(sum) / Decimal::from(4)
    }
}

/// Whether each insight's log line belongs to a template never seen before, and the share of
/// the log's templates that are new.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Novelty {
    /// One flag per insight, in insight order.
    pub insight_is_new: Vec<bool>,
    /// New templates / all templates of the log.
    pub new_templates: u32,
    pub templates: u32,
}

fn severity_points(s: Severity) -> u32 {
    match s {
        Severity::Critical => 60,
        Severity::High => 45,
        Severity::Medium => 30,
        Severity::Low => 15,
        Severity::Info => 5,
    }
}

fn pct(part: u32, whole: u32) -> u32 {
    (part * 100).checked_div(whole).unwrap_or(0)
}

fn clamp100(x: u32) -> u8 {
    x.min(100) as u8
}

/// Completeness: the seed's checklist, in points (sum 100):
/// timestamps 20 (scaled by the share of timestamped lines, full at ≥ 50 %), source given 10,
/// insight locations 25 (share of Error Detective / Quality Inspector insights with `file:line`;
/// 25 when there are none to locate), full stack traces 15 (share of runtime exceptions, crashes
/// and test failures that carry a `stackTrace`; 15 when there are none), error messages 10
/// (share of insights with a root cause; 5 when there are no insights), metrics 10, levels or
/// stage markers 10.
pub fn completeness(facts: &LogFacts, source_given: bool, insights: &[Insight]) -> u8 {
    let ts_share = pct(facts.timestamped_lines, facts.lines);
    let mut points = 20 * ts_share.min(50) / 50;
    if source_given {
        points += 10;
    }
    let locatable: Vec<&Insight> = insights
        .iter()
        .filter(|i| matches!(i.agent(), Agent::ErrorDetective | Agent::QualityInspector))
        .collect();
    let located = locatable.iter().filter(|i| i.location.is_some()).count() as u32;
    points += if locatable.is_empty() {
        25
    } else {
        25 * located / locatable.len() as u32
    };
    let traceable: Vec<&Insight> = insights
        .iter()
        .filter(|i| {
            matches!(
                i.kind,
                InsightKind::RuntimeException | InsightKind::Crash | InsightKind::TestFailure
            )
        })
        .collect();
    let traced = traceable
        .iter()
        .filter(|i| i.details.contains_key("stackTrace"))
        .count() as u32;
    points += if traceable.is_empty() {
        15
    } else {
        15 * traced / traceable.len() as u32
    };
    points += if insights.is_empty() {
        5
    } else {
        let explained = insights.iter().filter(|i| i.root_cause.is_some()).count() as u32;
        10 * explained / insights.len() as u32
    };
    if facts.has_metrics {
        points += 10;
    }
    if facts.has_levels {
        points += 10;
    }
    clamp100(points)
}

/// Relevance: does the log relate to actual problems? 20 with no insight; otherwise 40 plus the
/// worst severity's points (critical 60, high 45, medium 30, low 15, info 5).
pub fn relevance(insights: &[Insight]) -> u8 {
    match insights.iter().map(|i| i.severity).max() {
        None => 20,
        Some(worst) => clamp100(40 + severity_points(worst)),
    }
}

/// Actionability: can developers act on it? 10 with no insight; otherwise the mean over insights
/// of fix given 40 + location given 30 + root cause given 30.
pub fn actionability(insights: &[Insight]) -> u8 {
    if insights.is_empty() {
        return 10;
    }
    let total: u32 = insights
        .iter()
        .map(|i| {
            let fix = if i.fix.trim().is_empty() { 0 } else { 40 };
            let loc = if i.location.is_some() { 30 } else { 0 };
            let cause = if i.root_cause.is_some() { 30 } else { 0 };
            fix + loc + cause
        })
        .sum();
    clamp100(total / insights.len() as u32)
}

/// Uniqueness against every template the marketplace has seen: with insights, 70 × the share
/// of insights on a new template + 30 × the share of the log's templates that are new; without
/// insights, 100 × the share of new templates.
pub fn uniqueness(novelty: &Novelty) -> u8 {
    let template_share = pct(novelty.new_templates, novelty.templates);
    if novelty.insight_is_new.is_empty() {
        return clamp100(template_share);
    }
    let new_insights = novelty.insight_is_new.iter().filter(|n| **n).count() as u32;
    let insight_share = pct(new_insights, novelty.insight_is_new.len() as u32);
    clamp100((70 * insight_share + 30 * template_share) / 100)
}

/// Value score: the improvement the log makes possible. 10 with no insight; otherwise the worst
/// severity's base (critical 70, high 55, medium 40, low 20, info 10) + 5 per further distinct
/// insight kind (at most +20) + 10 when a finding is new to the marketplace, capped at 100.
pub fn value_score(insights: &[Insight], any_new_finding: bool) -> u8 {
    let Some(worst) = insights.iter().map(|i| i.severity).max() else {
        return 10;
    };
    let base = match worst {
        Severity::Critical => 70,
        Severity::High => 55,
        Severity::Medium => 40,
        Severity::Low => 20,
        Severity::Info => 10,
    };
    let kinds: BTreeSet<InsightKind> = insights.iter().map(|i| i.kind).collect();
    let breadth = (5 * (kinds.len() as u32 - 1)).min(20);
    let novelty = if any_new_finding { 10 } else { 0 };
    clamp100(base + breadth + novelty)
}

/// The seed's bonuses: uniqueness when a finding sits on a template never seen before; critical
/// when the Error Detective reports a critical finding; security when the Security Guardian
/// reports anything of medium severity or worse; performance when the Performance Analyzer does.
pub fn bonuses(insights: &[Insight], novelty: &Novelty) -> Bonuses {
    let by = |agent: Agent, min: Severity| {
        insights
            .iter()
            .any(|i| i.agent() == agent && i.severity >= min)
    };
    Bonuses {
        uniqueness: novelty.insight_is_new.iter().any(|n| *n),
        critical_error: by(Agent::ErrorDetective, Severity::Critical),
        security: by(Agent::SecurityGuardian, Severity::Medium),
        performance: by(Agent::PerformanceAnalyzer, Severity::Medium),
    }
}

/// One dimension of the seed's improvement potential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PotentialDimension {
    pub current: u32,
    pub potential: u32,
    pub improvement: String,
}

/// The seed's improvement potential and ROI estimate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImprovementPotential {
    pub development_speed: PotentialDimension,
    pub code_quality: PotentialDimension,
    pub error_reduction: PotentialDimension,
    /// Developer hours the fixes save (the table in [`hours_saved`]).
    pub hours_saved: Decimal,
    /// `hours_saved × hourly_rate + error cost reduction + performance gains`, in dollars.
    pub estimated_roi: Money,
}

/// Inputs of the ROI estimate (configurable).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoiConfig {
    /// Developer cost per hour.
    pub hourly_rate: Money,
    /// Cost of one production failure avoided (runtime exception, crash, OOM).
    pub production_error_cost: Money,
    /// Value of one performance fix (compute and latency saved).
    pub performance_fix_value: Money,
}

impl Default for RoiConfig {
    fn default() -> Self {
        Self {
            hourly_rate: Money::from_cents(10_000).expect("constant"),
            production_error_cost: Money::from_cents(50_000).expect("constant"),
            performance_fix_value: Money::from_cents(25_000).expect("constant"),
        }
    }
}

/// Developer hours saved by acting on one finding of this kind (finding the cause without the
/// insight, in hours; the documented estimate table).
pub fn hours_saved(kind: InsightKind) -> Decimal {
    use InsightKind::*;
    let tenths = match kind {
        CompileError => 5,
        TestFailure => 10,
        RuntimeException => 20,
        Crash | OutOfMemory => 40,
        DependencyConflict => 20,
        ConfigError => 10,
        SlowQuery | NPlusOneQuery => 30,
        HighMemory | SlowResponse => 20,
        LargeImage => 10,
        UnauthorizedAccess | AuthFailure | SuspiciousIp => 10,
        BruteForce | SqlInjection | Xss | CommandInjection | PathTraversal => 20,
        ExposedSecret => 30,
        LowCoverage => 20,
        DeprecatedDependency => 5,
        Warning => 1,
        MissingErrorHandling => 10,
    };
    Decimal::new(tenths, 1)
}

/// Improvement potential (docs/analysers.md, "Improvement potential and ROI"):
/// - development speed: current 100; potential 100 + 10 per build-blocking finding (compile
///   errors, test failures, dependency and config errors) + 5 per performance finding, at most
///   +60;
/// - code quality: current 100 − (1 per warning, at most 20) − (coverage gap points) − 5 per
///   missing-error-handling sign − 2 per deprecated dependency (floor 0); potential: the current
///   value plus 80 % of the penalty (the share of findings we assume get fixed), at most 100;
/// - error reduction: current = the error findings; potential = those without a `file:line`
///   (located errors are assumed fixed);
/// - ROI = hours saved × hourly rate + production errors avoided × their cost + performance
///   fixes × their value.
pub fn improvement_potential(
    insights: &[Insight],
    roi: &RoiConfig,
) -> Result<ImprovementPotential, MoneyError> {
    use InsightKind::*;
    let count = |f: &dyn Fn(&Insight) -> bool| insights.iter().filter(|i| f(i)).count() as u32;
    let blocking = count(&|i| {
        matches!(
            i.kind,
            CompileError | TestFailure | DependencyConflict | ConfigError
        )
    });
    let perf = count(&|i| i.agent() == Agent::PerformanceAnalyzer);
    let speed_gain = (10 * blocking + 5 * perf).min(60);
    let development_speed = PotentialDimension {
        current: 100,
        potential: 100 + speed_gain,
        improvement: if speed_gain == 0 {
            "no build or performance blockers found".to_owned()
        } else {
            format!(
                "{speed_gain}% faster delivery by fixing {blocking} blocking and {perf} performance findings"
            )
        },
    };

    let warnings = count(&|i| i.kind == Warning).min(20);
    let coverage_gap: u32 = insights
        .iter()
        .filter(|i| i.kind == LowCoverage)
        .filter_map(coverage_gap_points)
        .max()
        .unwrap_or(0);
    let handling = count(&|i| i.kind == MissingErrorHandling);
    let deprecated = count(&|i| i.kind == DeprecatedDependency);
    let penalty = (warnings + coverage_gap + 5 * handling + 2 * deprecated).min(100);
    let quality_now = 100 - penalty;
    let quality_potential = (quality_now + penalty * 4 / 5).min(100);
    let code_quality = PotentialDimension {
        current: quality_now,
        potential: quality_potential,
        improvement: if penalty == 0 {
            "no code quality findings".to_owned()
        } else {
            format!(
                "{}% quality increase by fixing warnings, coverage and error handling",
                quality_potential - quality_now
            )
        },
    };

    let errors: Vec<&Insight> = insights
        .iter()
        .filter(|i| i.agent() == Agent::ErrorDetective)
        .collect();
    let remaining = errors.iter().filter(|i| i.location.is_none()).count() as u32;
    let errors_now = errors.len() as u32;
    let error_reduction = PotentialDimension {
        current: errors_now,
        potential: remaining,
        improvement: if errors_now == 0 {
            "no errors found".to_owned()
        } else {
            format!(
                "{}% fewer errors by fixing the located ones",
                pct(errors_now - remaining, errors_now)
            )
        },
    };

    let hours: Decimal = insights.iter().map(|i| hours_saved(i.kind)).sum();
    let production_errors = count(&|i| matches!(i.kind, RuntimeException | Crash | OutOfMemory));
    let roi_amount = roi
        .hourly_rate
        .checked_mul(hours)?
        .checked_add(
            roi.production_error_cost
                .checked_mul(Decimal::from(production_errors))?,
        )?
        .checked_add(roi.performance_fix_value.checked_mul(Decimal::from(perf))?)?
        .round_to_cents_half_even();
    Ok(ImprovementPotential {
        development_speed,
        code_quality,
        error_reduction,
        hours_saved: hours,
        estimated_roi: roi_amount,
    })
}

/// `target − current` in whole points from a coverage insight's details (`"78.5%"`, `"80%"`).
fn coverage_gap_points(i: &Insight) -> Option<u32> {
    let parse = |key: &str| -> Option<Decimal> {
        i.details
            .get(key)?
            .trim()
            .trim_end_matches('%')
            .trim()
            .parse()
            .ok()
    };
    let gap = (parse("target")? - parse("current")?).ceil();
    u32::try_from(gap.mantissa() / 10i128.pow(gap.scale())).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn insight(kind: InsightKind, severity: Severity) -> Insight {
        Insight {
            kind,
            severity,
            title: "t".into(),
            location: None,
            log_line: 1,
            excerpt: "x".into(),
            impact: "i".into(),
            root_cause: None,
            fix: "do it".into(),
            details: BTreeMap::new(),
        }
    }

    #[test]
    fn overall_is_the_mean() {
        let q = Quality {
            completeness: 95,
            relevance: 100,
            actionability: 90,
            uniqueness: 85,
        };
        assert_eq!(q.overall(), Decimal::new(925, 1));
    }

    #[test]
    fn a_clean_log_scores_low_on_relevance_and_value() {
        assert_eq!(relevance(&[]), 20);
        assert_eq!(actionability(&[]), 10);
        assert_eq!(value_score(&[], false), 10);
        let facts = LogFacts {
            lines: 10,
            timestamped_lines: 10,
            has_metrics: true,
            has_levels: true,
        };
        // 20 + 10 + 25 + 15 + 5 + 10 + 10
        assert_eq!(completeness(&facts, true, &[]), 95);
        assert_eq!(completeness(&LogFacts::default(), false, &[]), 45);
    }

    #[test]
    fn severity_and_breadth_drive_value() {
        let crit = insight(InsightKind::Crash, Severity::Critical);
        let slow = insight(InsightKind::SlowQuery, Severity::Medium);
        assert_eq!(value_score(std::slice::from_ref(&crit), false), 70);
        assert_eq!(value_score(&[crit.clone(), slow.clone()], false), 75);
        assert_eq!(value_score(&[crit.clone(), slow], true), 85);
        assert_eq!(relevance(&[crit]), 100);
    }

    #[test]
    fn actionability_rewards_fix_location_and_cause() {
        let mut a = insight(InsightKind::CompileError, Severity::High);
        assert_eq!(actionability(std::slice::from_ref(&a)), 40);
        a.location = Some("src/main.rs:4:5".into());
        a.root_cause = Some("unresolved name".into());
        assert_eq!(actionability(std::slice::from_ref(&a)), 100);
        let b = insight(InsightKind::Warning, Severity::Low);
        assert_eq!(actionability(&[a, b]), 70);
    }

    #[test]
    fn uniqueness_first_time_high_repeat_low() {
        let first = Novelty {
            insight_is_new: vec![true, true],
            new_templates: 5,
            templates: 5,
        };
        assert_eq!(uniqueness(&first), 100);
        let repeat = Novelty {
            insight_is_new: vec![false, false],
            new_templates: 0,
            templates: 5,
        };
        assert_eq!(uniqueness(&repeat), 0);
        let half = Novelty {
            insight_is_new: vec![true, false],
            new_templates: 1,
            templates: 4,
        };
        assert_eq!(uniqueness(&half), 42); // (70 × 50 + 30 × 25) / 100
        let no_insights = Novelty {
            insight_is_new: vec![],
            new_templates: 3,
            templates: 4,
        };
        assert_eq!(uniqueness(&no_insights), 75);
    }

    #[test]
    fn bonuses_follow_agents_and_severity() {
        let novelty = Novelty {
            insight_is_new: vec![false, true],
            ..Novelty::default()
        };
        let insights = [
            insight(InsightKind::SqlInjection, Severity::High),
            insight(InsightKind::SlowQuery, Severity::Low),
        ];
        let b = bonuses(&insights, &novelty);
        assert!(b.security && b.uniqueness);
        assert!(
            !b.performance,
            "a low-severity performance note is no bottleneck"
        );
        assert!(!b.critical_error);
        let b = bonuses(
            &[insight(InsightKind::Crash, Severity::Critical)],
            &Novelty::default(),
        );
        assert!(b.critical_error && !b.uniqueness);
    }

    #[test]
    fn improvement_potential_and_roi() {
        let mut compile = insight(InsightKind::CompileError, Severity::High);
        compile.location = Some("src/lib.rs:3:1".into());
        let crash = insight(InsightKind::Crash, Severity::Critical);
        let slow = insight(InsightKind::SlowQuery, Severity::Medium);
        let mut cov = insight(InsightKind::LowCoverage, Severity::Medium);
        cov.details.insert("current".into(), "78.5%".into());
        cov.details.insert("target".into(), "80%".into());
        let p = improvement_potential(&[compile, crash, slow, cov], &RoiConfig::default()).unwrap();
        assert_eq!(p.development_speed.potential, 115);
        assert_eq!(p.code_quality.current, 98);
        assert_eq!(p.code_quality.potential, 99);
        assert_eq!(p.error_reduction.current, 2);
        assert_eq!(p.error_reduction.potential, 1);
        // hours 0.5 + 4 + 3 + 2 = 9.5 → 950 + 1 crash × 500 + 1 perf × 250
        assert_eq!(p.hours_saved, Decimal::new(95, 1));
        assert_eq!(p.estimated_roi, Money::parse("1700.00").unwrap());
    }
}
