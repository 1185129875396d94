//! What tasks and self-compete rounds compute: the declared task types, their inputs and
//! outputs, and the evolution rule applied after a round. Pure and deterministic: the same
//! input always gives the same output, so a replayed event explains itself.

use std::collections::BTreeSet;

use rust_decimal::prelude::FromPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::forecast::{
    backtest, compete, fit, holdout_length, Forecast, ForecastError, Horizon, Level, MethodKind,
    Score, Series, Strategy, Tournament, MAX_SEASON_LENGTH, MIN_SEASON_LENGTH,
};
use crate::logmarket::analysers::{analyse_all, AnalyserConfig, LogText};
use crate::logmarket::insight::InsightKind;

/// The kinds of work a task declares. Wire names are the seed's upper-case style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskType {
    /// A time series in; a forecast with prediction intervals out, made by the tenant's
    /// production variant (forecasting strategy).
    Forecast,
    /// A time series in; descriptive statistics, linear trend, detected season and robust
    /// outliers out.
    Analysis,
    /// A build/test/runtime log in; the four log analysers' findings out.
    LogAnalysis,
}

impl TaskType {
    pub const ALL: [TaskType; 3] = [Self::Forecast, Self::Analysis, Self::LogAnalysis];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forecast => "FORECAST",
            Self::Analysis => "ANALYSIS",
            Self::LogAnalysis => "LOG_ANALYSIS",
        }
    }

    /// Exact wire name (`FORECAST`, `ANALYSIS`, `LOG_ANALYSIS`).
    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == input)
    }

    /// The feature flag that gates this type for a tenant (`task.forecast`, …). A type whose
    /// flag the tenant has not defined is available.
    pub fn flag_name(self) -> String {
        format!("task.{}", self.as_str().to_ascii_lowercase())
    }

    /// Whether the task reads a time series (given or the tenant's registered one).
    pub fn needs_series(self) -> bool {
        matches!(self, Self::Forecast | Self::Analysis)
    }
}

/// The seed's request priority.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Normal, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == input)
    }
}

/// A time series as recorded in events (validated with `forecast::Series::parse` before it is
/// accepted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesInput {
    pub values: Vec<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub season_length: Option<usize>,
}

/// A task's input, fixed at acceptance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskInput {
    /// FORECAST and ANALYSIS.
    Series {
        series: SeriesInput,
        horizon: usize,
        level_percent: f64,
    },
    /// LOG_ANALYSIS: the log after redaction (secrets, e-mail, IPs), never the raw text.
    Log { redacted_text: String },
}

/// A FORECAST task's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForecastOutput {
    pub variant: Strategy,
    pub method: MethodKind,
    /// The variant's backtest on the held-out tail, when the series is long enough.
    pub backtest: Option<Score>,
    pub forecast: Forecast,
}

/// One robust outlier of an ANALYSIS task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outlier {
    pub index: usize,
    pub value: f64,
    /// `0.6745 × (x − median) / MAD`.
    pub robust_z: f64,
}

/// An ANALYSIS task's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesSummary {
    pub observations: usize,
    pub mean: f64,
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    pub median: f64,
    /// Least-squares slope per step and its R².
    pub trend_slope: f64,
    pub trend_r_squared: f64,
    /// The season length used: the declared one, else the lag of the strongest significant
    /// autocorrelation of the detrended series.
    pub season_length: Option<usize>,
    /// `max(0, 1 − Var(remainder) / Var(detrended))`.
    pub seasonal_strength: Option<f64>,
    pub outliers: Vec<Outlier>,
}

/// One finding of a LOG_ANALYSIS task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFinding {
    pub agent: String,
    pub kind: String,
    pub severity: String,
    pub title: String,
    pub line: Option<u32>,
}

/// A LOG_ANALYSIS task's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFindings {
    pub lines: usize,
    pub findings: Vec<LogFinding>,
}

/// A task's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskOutput {
    Forecast(ForecastOutput),
    Analysis(SeriesSummary),
    LogAnalysis(LogFindings),
}

/// A self-compete round's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompetitionResult {
    /// All four strategies' backtests and forecasts (the production variant is scored even when
    /// it did not compete, to measure the champion against it).
    pub tournament: Tournament,
    /// The requested competitors, best first (by backtest MASE, then sMAPE).
    pub ranking: Vec<Strategy>,
    /// The best of the requested competitors.
    pub champion: Strategy,
    /// The tenant's production variant when the round was accepted.
    pub production: Strategy,
    /// `(MASE_production − MASE_champion) / MASE_production`, rounded half-even to 4 places;
    /// 0 when the champion is the production variant or MASE_production is 0.
    pub win_rate_delta: Decimal,
    /// The tenant's 1-hour burn rate when the round finished.
    pub burn_rate: Decimal,
    /// `burn_rate < 1 && win_rate_delta > 0.05` (and the champion is not already production).
    pub promote: bool,
}

/// Why a task or a self-compete round could not be computed. Every case is a property of the
/// input: the computation is deterministic, so retrying the same request fails the same way.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Forecast(#[from] ForecastError),
    #[error("bad input: {0}")]
    BadInput(String),
}

impl WorkError {
    /// Always `false`: see the type's documentation.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Forecast(_) | Self::BadInput(_) => false,
        }
    }
}

/// Forecast steps when a request names none.
pub const DEFAULT_HORIZON: usize = 12;
/// Prediction-interval level when a request names none, in percent.
pub const DEFAULT_LEVEL_PERCENT: f64 = 95.0;
/// A round promotes its champion only when it beats production by more than this share of
/// production's MASE (5 %).
pub const PROMOTION_MIN_DELTA: Decimal = Decimal::from_parts(5, 0, 0, false, 2);
/// Decimal places of [`win_rate_delta`].
pub const WIN_RATE_DELTA_DP: u32 = 4;
/// Most outliers an analysis reports (the strongest first).
pub const MAX_OUTLIERS: usize = 100;
/// Iglewicz–Hoaglin: a point is an outlier when its modified z-score exceeds this.
pub const OUTLIER_Z_THRESHOLD: f64 = 3.5;
/// `Φ⁻¹(0.75)`: scales the MAD to the standard deviation of a normal sample.
pub const MAD_SCALE: f64 = 0.6745;
/// Longest season the detector tries (daily data, yearly season, leap year).
pub const MAX_DETECTED_SEASON: usize = MAX_SEASON_LENGTH;
/// A detrended series whose RMS is at most this share of the largest `|y|` is treated as a
/// perfect line: what is left is rounding noise, not a season.
pub const DETREND_NOISE_SHARE: f64 = 1e-10;

/// The most competitors a round may name (every strategy once).
pub const MAX_COMPETITORS: usize = Strategy::ALL.len();

fn parse_series(input: &SeriesInput) -> Result<Series, WorkError> {
    Ok(Series::parse(input.values.clone(), input.season_length)?)
}

/// Validates a series input (via [`Series::parse`]) – used at acceptance.
pub fn validate_series(input: &SeriesInput) -> Result<(), WorkError> {
    parse_series(input).map(|_| ())
}

/// What a task's input must pass before it is accepted: the work itself, run once. The work is
/// a pure function of its stored input, so a task that passes can fail later only through the
/// service's own fault (a crash, the store), never through its input: only such failures reach
/// the tenant's error budget. A LOG_ANALYSIS never fails on its input.
pub fn check_task_input(
    task_type: TaskType,
    input: &TaskInput,
    variant: Strategy,
) -> Result<(), WorkError> {
    match (task_type, input) {
        (TaskType::LogAnalysis, TaskInput::Log { .. }) => Ok(()),
        _ => execute(task_type, input, variant).map(|_| ()),
    }
}

/// What a round's input must pass before it is accepted: the tournament itself, run once (see
/// [`check_task_input`]; the burn rate only decides promotion, never success).
pub fn check_competition_input(
    series: &SeriesInput,
    horizon: usize,
    competitors: &[Strategy],
) -> Result<(), WorkError> {
    check_competitors(competitors)?;
    compete(&parse_series(series)?, horizon)?;
    Ok(())
}

/// Runs a task. `variant` is used by FORECAST only. A task type given the other kind of input
/// is [`WorkError::BadInput`].
pub fn execute(
    task_type: TaskType,
    input: &TaskInput,
    variant: Strategy,
) -> Result<TaskOutput, WorkError> {
    match (task_type, input) {
        (
            TaskType::Forecast,
            TaskInput::Series {
                series,
                horizon,
                level_percent,
            },
        ) => forecast_task(series, *horizon, *level_percent, variant).map(TaskOutput::Forecast),
        (TaskType::Analysis, TaskInput::Series { series, .. }) => {
            analyse_series(series).map(TaskOutput::Analysis)
        }
        (TaskType::LogAnalysis, TaskInput::Log { redacted_text }) => {
            Ok(TaskOutput::LogAnalysis(analyse_log(redacted_text)))
        }
        (TaskType::Forecast | TaskType::Analysis, TaskInput::Log { .. }) => {
            Err(WorkError::BadInput(format!(
                "{} takes a time series, not a log",
                task_type.as_str()
            )))
        }
        (TaskType::LogAnalysis, TaskInput::Series { .. }) => Err(WorkError::BadInput(format!(
            "{} takes a log, not a time series",
            task_type.as_str()
        ))),
    }
}

/// Fits the variant's method on the whole series and forecasts `horizon` steps at
/// `level_percent`. The backtest fits the same method on all but the last
/// [`holdout_length`] points and scores its forecast of them; `None` when that fitting part is
/// too short for the method.
pub fn forecast_task(
    series: &SeriesInput,
    horizon: usize,
    level_percent: f64,
    variant: Strategy,
) -> Result<ForecastOutput, WorkError> {
    let series = parse_series(series)?;
    let horizon = Horizon::parse(horizon)?;
    let level = Level::parse(level_percent)?;
    let n = series.len();
    let method = variant.method(series.season_length(), n);
    let model = fit(&series, &method)?;
    let forecast = model.forecast(horizon, level)?;
    let holdout = holdout_length(&series);
    let needed = method.min_observations(series.season_length())?;
    let backtest = if n > holdout && n - holdout >= needed {
        Some(backtest(&series, &method, Horizon::parse(holdout)?)?)
    } else {
        None
    };
    Ok(ForecastOutput {
        variant,
        method: method.kind(),
        backtest,
        forecast,
    })
}

/// Descriptive statistics, the least-squares trend, the season (declared or detected), the
/// seasonal strength and the robust outliers of a series. See [`SeriesSummary`] for the
/// fields; the rules:
///
/// * standard deviation: the sample one (`n − 1`), 0 for one observation;
/// * trend: OLS of `y` on `t = 0..n−1`; slope 0 and R² 0 when `n = 1`, R² 0 for a constant
///   series (nothing to explain);
/// * season: the declared one, else [`detect_season`] on the detrended series;
/// * seasonal strength: `max(0, 1 − Var(remainder) / Var(detrended))`, the seasonal component
///   being the per-phase mean of the detrended series; `None` without a season or with fewer
///   than two full seasons, 0 when the detrended series is a perfect line;
/// * outliers: `|0.6745·(x − median)/MAD| > 3.5` (Iglewicz & Hoaglin 1993), none when the MAD
///   is 0; at most [`MAX_OUTLIERS`], strongest first, then by index.
pub fn analyse_series(series: &SeriesInput) -> Result<SeriesSummary, WorkError> {
    let series = parse_series(series)?;
    let y = series.values();
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let std_dev = if n > 1 {
        (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    let min = y.iter().copied().fold(f64::INFINITY, f64::min);
    let max = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let median = median(y.to_vec());
    let trend = LinearTrend::fit(y, mean);
    let detrended = trend.residuals(y);
    let magnitude = y.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let flat = is_negligible(&detrended, magnitude);
    let season_length = series
        .season_length()
        .or_else(|| (!flat).then(|| detect_season(&detrended)).flatten());
    let seasonal_strength = season_length.and_then(|m| seasonal_strength(&detrended, m, flat));
    let summary = SeriesSummary {
        observations: n,
        mean,
        std_dev,
        min,
        max,
        median,
        trend_slope: trend.slope,
        trend_r_squared: trend.r_squared,
        season_length,
        seasonal_strength,
        outliers: outliers(y, median),
    };
    let finite = [
        summary.mean,
        summary.std_dev,
        summary.trend_slope,
        summary.trend_r_squared,
        summary.seasonal_strength.unwrap_or(0.0),
    ]
    .iter()
    .chain(summary.outliers.iter().map(|o| &o.robust_z))
    .all(|v| v.is_finite());
    if !finite {
        return Err(ForecastError::NumericalOverflow.into());
    }
    Ok(summary)
}

/// The median; `values` is never empty.
fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "a series holds at least one value");
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

/// `y ≈ intercept + slope·t`, `t = 0..n−1`, by ordinary least squares.
struct LinearTrend {
    intercept: f64,
    slope: f64,
    r_squared: f64,
}

impl LinearTrend {
    fn fit(y: &[f64], mean: f64) -> Self {
        let t_mean = (y.len() - 1) as f64 / 2.0;
        let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
        for (i, v) in y.iter().enumerate() {
            let dt = i as f64 - t_mean;
            let dy = v - mean;
            sxx += dt * dt;
            sxy += dt * dy;
            syy += dy * dy;
        }
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let r_squared = if sxx > 0.0 && syy > 0.0 {
            (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        Self {
            intercept: mean - slope * t_mean,
            slope,
            r_squared,
        }
    }

    fn residuals(&self, y: &[f64]) -> Vec<f64> {
        y.iter()
            .enumerate()
            .map(|(i, v)| v - (self.intercept + self.slope * i as f64))
            .collect()
    }
}

/// Whether `detrended` is rounding noise around a perfect line ([`DETREND_NOISE_SHARE`]).
fn is_negligible(detrended: &[f64], magnitude: f64) -> bool {
    let rms = (detrended.iter().map(|d| d * d).sum::<f64>() / detrended.len() as f64).sqrt();
    rms <= DETREND_NOISE_SHARE * magnitude
}

/// Autocorrelations `r_1..=r_max_lag` of `x` (index 0 is `r_1`), the usual biased estimator
/// `Σ (x_t − x̄)(x_{t+k} − x̄) / Σ (x_t − x̄)²`; `None` when `x` is constant.
fn autocorrelations(x: &[f64], max_lag: usize) -> Option<Vec<f64>> {
    let n = x.len();
    let mean = x.iter().sum::<f64>() / n as f64;
    let centred: Vec<f64> = x.iter().map(|v| v - mean).collect();
    let denominator: f64 = centred.iter().map(|c| c * c).sum();
    if denominator <= 0.0 {
        return None;
    }
    let acf = (1..=max_lag.min(n.saturating_sub(1)))
        .map(|k| {
            let numerator: f64 = centred.iter().zip(&centred[k..]).map(|(a, b)| a * b).sum();
            numerator / denominator
        })
        .collect();
    Some(acf)
}

/// The season length of a detrended series: among lags `2..=min(n/2, 366)`, the one with the
/// highest autocorrelation that exceeds `2/√n` (the approximate 95 % bound of white noise)
/// and is a local peak (above the previous lag, not below the next); `None` if no lag
/// qualifies. Ties keep the shorter lag.
pub fn detect_season(detrended: &[f64]) -> Option<usize> {
    let n = detrended.len();
    let max_lag = (n / 2).min(MAX_DETECTED_SEASON);
    if max_lag < MIN_SEASON_LENGTH {
        return None;
    }
    let acf = autocorrelations(detrended, max_lag + 1)?;
    let r = |lag: usize| acf.get(lag - 1).copied();
    let bound = 2.0 / (n as f64).sqrt();
    let mut best: Option<(usize, f64)> = None;
    for lag in MIN_SEASON_LENGTH..=max_lag {
        let Some(here) = r(lag) else { break };
        let peak = r(lag - 1).is_some_and(|before| here > before)
            && r(lag + 1).is_none_or(|after| here >= after);
        if here > bound && peak && best.is_none_or(|(_, b)| here > b) {
            best = Some((lag, here));
        }
    }
    best.map(|(lag, _)| lag)
}

/// Population variance.
fn variance(x: &[f64]) -> f64 {
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64
}

/// `max(0, 1 − Var(remainder)/Var(detrended))` with the per-phase mean as the seasonal
/// component; `None` with fewer than two full seasons, 0 for a perfect line.
fn seasonal_strength(detrended: &[f64], season: usize, flat: bool) -> Option<f64> {
    if season < MIN_SEASON_LENGTH || detrended.len() < 2 * season {
        return None;
    }
    let total = variance(detrended);
    if flat || total <= 0.0 {
        return Some(0.0);
    }
    let mut sums = vec![0.0; season];
    let mut counts = vec![0usize; season];
    for (i, d) in detrended.iter().enumerate() {
        sums[i % season] += d;
        counts[i % season] += 1;
    }
    let remainder: Vec<f64> = detrended
        .iter()
        .enumerate()
        .map(|(i, d)| d - sums[i % season] / counts[i % season] as f64)
        .collect();
    Some((1.0 - variance(&remainder) / total).max(0.0))
}

/// Iglewicz–Hoaglin modified z-score outliers, strongest first, then by index, at most
/// [`MAX_OUTLIERS`].
fn outliers(y: &[f64], median_y: f64) -> Vec<Outlier> {
    let mad = median(y.iter().map(|v| (v - median_y).abs()).collect());
    if mad <= 0.0 {
        return vec![];
    }
    let mut found: Vec<Outlier> = y
        .iter()
        .enumerate()
        .map(|(index, &value)| Outlier {
            index,
            value,
            robust_z: MAD_SCALE * (value - median_y) / mad,
        })
        .filter(|o| o.robust_z.abs() > OUTLIER_Z_THRESHOLD)
        .collect();
    found.sort_by(|a, b| {
        b.robust_z
            .abs()
            .total_cmp(&a.robust_z.abs())
            .then(a.index.cmp(&b.index))
    });
    found.truncate(MAX_OUTLIERS);
    found
}

/// Runs the four log analysers ([`analyse_all`]) with their default thresholds on an already
/// redacted log. `lines` is the log's line count (a trailing newline adds none).
pub fn analyse_log(redacted_text: &str) -> LogFindings {
    let log = LogText::new(redacted_text);
    let findings = analyse_all(&log, &AnalyserConfig::default())
        .into_iter()
        .map(|insight| LogFinding {
            agent: insight.agent().id().to_owned(),
            kind: insight_kind_name(insight.kind).to_owned(),
            severity: insight.severity.as_str().to_owned(),
            title: insight.title,
            line: Some(insight.log_line),
        })
        .collect();
    LogFindings {
        lines: log.lines.len(),
        findings,
    }
}

/// The wire name of an insight kind (its serde name).
fn insight_kind_name(kind: InsightKind) -> &'static str {
    use InsightKind::*;
    match kind {
        CompileError => "compile_error",
        TestFailure => "test_failure",
        RuntimeException => "runtime_exception",
        Crash => "crash",
        OutOfMemory => "out_of_memory",
        DependencyConflict => "dependency_conflict",
        ConfigError => "config_error",
        SlowQuery => "slow_query",
        HighMemory => "high_memory",
        LargeImage => "large_image",
        SlowResponse => "slow_response",
        NPlusOneQuery => "n_plus_one_query",
        UnauthorizedAccess => "unauthorized_access",
        BruteForce => "brute_force",
        SqlInjection => "sql_injection",
        Xss => "xss",
        ExposedSecret => "exposed_secret",
        SuspiciousIp => "suspicious_ip",
        AuthFailure => "auth_failure",
        LowCoverage => "low_coverage",
        DeprecatedDependency => "deprecated_dependency",
        Warning => "warning",
        MissingErrorHandling => "missing_error_handling",
        CommandInjection => "command_injection",
        PathTraversal => "path_traversal",
    }
}

/// Runs all four strategies on the series ([`compete`]: backtest on the held-out tail,
/// forecast `horizon` steps at 95 %) and ranks the requested `competitors` among themselves.
/// The production variant is scored whether or not it competes. `competitors` must name
/// 1..=[`MAX_COMPETITORS`] distinct strategies.
pub fn run_competition(
    series: &SeriesInput,
    horizon: usize,
    competitors: &[Strategy],
    production: Strategy,
    burn_rate: Decimal,
) -> Result<CompetitionResult, WorkError> {
    check_competitors(competitors)?;
    let tournament = compete(&parse_series(series)?, horizon)?;
    let ranking: Vec<Strategy> = tournament
        .ranking
        .iter()
        .copied()
        .filter(|s| competitors.contains(s))
        .collect();
    let champion = *ranking
        .first()
        .expect("the tournament ranks every strategy, so every competitor");
    let win_rate_delta = if champion == production {
        Decimal::ZERO
    } else {
        win_rate_delta(
            tournament.entry(production).backtest.mase,
            tournament.entry(champion).backtest.mase,
        )
    };
    let promote = champion != production && should_promote(burn_rate, win_rate_delta);
    Ok(CompetitionResult {
        tournament,
        ranking,
        champion,
        production,
        win_rate_delta,
        burn_rate,
        promote,
    })
}

fn check_competitors(competitors: &[Strategy]) -> Result<(), WorkError> {
    if !(1..=MAX_COMPETITORS).contains(&competitors.len()) {
        return Err(WorkError::BadInput(format!(
            "a round needs 1..={MAX_COMPETITORS} competitors, got {}",
            competitors.len()
        )));
    }
    let distinct: BTreeSet<Strategy> = competitors.iter().copied().collect();
    if distinct.len() != competitors.len() {
        return Err(WorkError::BadInput(
            "a round names each competitor at most once".to_owned(),
        ));
    }
    Ok(())
}

/// `(p − c)/p`, rounded half-even to [`WIN_RATE_DELTA_DP`] places; 0 when `p ≤ 0`, when
/// either MASE is not finite, or when the ratio does not fit a `Decimal`.
pub fn win_rate_delta(production_mase: f64, champion_mase: f64) -> Decimal {
    if !production_mase.is_finite() || production_mase <= 0.0 || !champion_mase.is_finite() {
        return Decimal::ZERO;
    }
    let ratio = (production_mase - champion_mase) / production_mase;
    Decimal::from_f64(ratio)
        .map(|d| d.round_dp_with_strategy(WIN_RATE_DELTA_DP, RoundingStrategy::MidpointNearestEven))
        .unwrap_or(Decimal::ZERO)
}

/// Promote when the service is within its error budget (1-hour burn rate below 1) and the
/// champion beats production by more than [`PROMOTION_MIN_DELTA`].
pub fn should_promote(burn_rate: Decimal, delta: Decimal) -> bool {
    burn_rate < Decimal::ONE && delta > PROMOTION_MIN_DELTA
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn input(values: Vec<f64>, season_length: Option<usize>) -> SeriesInput {
        SeriesInput {
            values,
            season_length,
        }
    }

    fn linear() -> SeriesInput {
        input((0..60).map(|t| 3.0 + 2.0 * f64::from(t)).collect(), None)
    }

    /// Six seasons of period 12 around a level of 100.
    fn seasonal() -> SeriesInput {
        let pattern = [
            0.0, 4.0, 9.0, 12.0, 9.0, 4.0, 0.0, -4.0, -9.0, -12.0, -9.0, -4.0,
        ];
        let values = (0..72).map(|t| 100.0 + pattern[t % 12]).collect();
        input(values, Some(12))
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "{actual} is not {expected}"
        );
    }

    #[test]
    fn trend_strategies_beat_ses_on_a_line() {
        let result = run_competition(
            &linear(),
            DEFAULT_HORIZON,
            &Strategy::ALL,
            Strategy::Conservative,
            dec("0.5"),
        )
        .unwrap();
        let mase = |s| result.tournament.entry(s).backtest.mase;
        assert!(mase(Strategy::Aggressive) < mase(Strategy::Conservative));
        assert!(mase(Strategy::Balanced) < mase(Strategy::Conservative));
        assert!(matches!(
            result.champion,
            Strategy::Aggressive | Strategy::Balanced
        ));
        assert!(mase(result.champion) < 1e-9);
        assert_eq!(result.ranking.len(), 4);
        assert_eq!(result.ranking[0], result.champion);
        assert_eq!(result.win_rate_delta, Decimal::ONE);
        assert!(result.promote);
    }

    #[test]
    fn holt_winters_wins_on_a_seasonal_series() {
        let result = run_competition(
            &seasonal(),
            DEFAULT_HORIZON,
            &Strategy::ALL,
            Strategy::Balanced,
            dec("0.99"),
        )
        .unwrap();
        assert_eq!(result.champion, Strategy::Experimental);
        assert_eq!(
            result.tournament.entry(Strategy::Experimental).method,
            MethodKind::HoltWintersAdditive
        );
        assert!(result.win_rate_delta > PROMOTION_MIN_DELTA);
        assert!(result.promote);
        // Same round with the error budget burning: no promotion.
        let burning = run_competition(
            &seasonal(),
            DEFAULT_HORIZON,
            &Strategy::ALL,
            Strategy::Balanced,
            Decimal::ONE,
        )
        .unwrap();
        assert_eq!(burning.win_rate_delta, result.win_rate_delta);
        assert!(!burning.promote);
    }

    #[test]
    fn production_champion_gives_no_delta_and_no_promotion() {
        let result = run_competition(
            &linear(),
            DEFAULT_HORIZON,
            &[Strategy::Conservative, Strategy::Aggressive],
            Strategy::Aggressive,
            Decimal::ZERO,
        )
        .unwrap();
        assert_eq!(result.champion, Strategy::Aggressive);
        assert_eq!(result.production, Strategy::Aggressive);
        assert_eq!(result.win_rate_delta, Decimal::ZERO);
        assert!(!result.promote);
        assert_eq!(
            result.ranking,
            vec![Strategy::Aggressive, Strategy::Conservative]
        );
    }

    #[test]
    fn the_champion_is_the_best_competitor_even_when_production_is_better() {
        // Production (balanced) is not competing; the best competitor is worse than it.
        let result = run_competition(
            &linear(),
            DEFAULT_HORIZON,
            &[Strategy::Conservative],
            Strategy::Balanced,
            Decimal::ZERO,
        )
        .unwrap();
        assert_eq!(result.champion, Strategy::Conservative);
        assert_eq!(result.ranking, vec![Strategy::Conservative]);
        assert!(result.win_rate_delta < Decimal::ZERO);
        assert!(!result.promote);
    }

    #[test]
    fn competitors_are_checked() {
        let bad = |competitors: &[Strategy]| {
            matches!(
                run_competition(&linear(), 1, competitors, Strategy::Balanced, Decimal::ZERO),
                Err(WorkError::BadInput(_))
            )
        };
        assert!(bad(&[]));
        assert!(bad(&[Strategy::Aggressive, Strategy::Aggressive]));
        let five = [
            Strategy::Aggressive,
            Strategy::Conservative,
            Strategy::Balanced,
            Strategy::Experimental,
            Strategy::Aggressive,
        ];
        assert!(bad(&five));
        assert_eq!(
            run_competition(
                &input(vec![1.0, 2.0], None),
                1,
                &[Strategy::Aggressive],
                Strategy::Balanced,
                Decimal::ZERO
            ),
            Err(WorkError::Forecast(ForecastError::TooShortForTournament {
                needed: 4,
                actual: 2
            }))
        );
    }

    #[test]
    fn win_rate_delta_rounds_half_even_and_guards_zero() {
        assert_eq!(win_rate_delta(2.0, 1.0), dec("0.5"));
        assert_eq!(win_rate_delta(3.0, 2.0), dec("0.3333"));
        assert_eq!(win_rate_delta(1.0, 1.5), dec("-0.5"));
        // 1/32 = 0.03125 and 3/32 = 0.09375 are exact halves: to even.
        assert_eq!(win_rate_delta(32.0, 31.0), dec("0.0312"));
        assert_eq!(win_rate_delta(32.0, 29.0), dec("0.0938"));
        assert_eq!(win_rate_delta(0.0, 1.0), Decimal::ZERO);
        assert_eq!(win_rate_delta(-1.0, 1.0), Decimal::ZERO);
        assert_eq!(win_rate_delta(f64::NAN, 1.0), Decimal::ZERO);
        assert_eq!(win_rate_delta(f64::INFINITY, 1.0), Decimal::ZERO);
        assert_eq!(win_rate_delta(1.0, f64::INFINITY), Decimal::ZERO);
    }

    #[test]
    fn promotion_needs_budget_and_a_clear_win() {
        assert_eq!(PROMOTION_MIN_DELTA, dec("0.05"));
        assert!(should_promote(dec("0.99"), dec("0.0501")));
        assert!(!should_promote(Decimal::ONE, dec("0.5")));
        assert!(!should_promote(dec("2"), dec("0.5")));
        assert!(!should_promote(Decimal::ZERO, dec("0.05")));
        assert!(!should_promote(Decimal::ZERO, dec("-0.2")));
        assert!(should_promote(Decimal::ZERO, dec("0.0501")));
    }

    #[test]
    fn inputs_that_can_only_fail_are_refused_before_acceptance() {
        let one = input(vec![5.0], None);
        let err = check_competition_input(&one, 12, &Strategy::ALL).unwrap_err();
        assert!(matches!(
            err,
            WorkError::Forecast(ForecastError::TooShortForTournament { .. })
        ));
        assert!(matches!(
            run_competition(&one, 12, &Strategy::ALL, Strategy::Balanced, Decimal::ZERO),
            Err(WorkError::Forecast(_))
        ));
        let long = input(
            (0..60).map(|i| (i % 12) as f64 + i as f64).collect(),
            Some(12),
        );
        check_competition_input(&long, 12, &Strategy::ALL).unwrap();
        assert!(check_competition_input(&long, 0, &Strategy::ALL).is_err());
        let forecast = |values: Vec<f64>, horizon| TaskInput::Series {
            series: input(values, None),
            horizon,
            level_percent: DEFAULT_LEVEL_PERCENT,
        };
        let short = forecast(vec![1.0], 12);
        let refused = check_task_input(TaskType::Forecast, &short, Strategy::Aggressive);
        assert!(refused.is_err());
        assert!(execute(TaskType::Forecast, &short, Strategy::Aggressive).is_err());
        let fine = forecast((0..24).map(f64::from).collect(), 6);
        check_task_input(TaskType::Forecast, &fine, Strategy::Aggressive).unwrap();
        check_task_input(TaskType::Analysis, &fine, Strategy::Balanced).unwrap();
        let log = TaskInput::Log {
            redacted_text: "x".into(),
        };
        assert!(check_task_input(TaskType::Analysis, &log, Strategy::Balanced).is_err());
    }

    #[test]
    fn analyse_series_computes_the_textbook_statistics() {
        let summary =
            analyse_series(&input(vec![2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], None)).unwrap();
        assert_eq!(summary.observations, 8);
        close(summary.mean, 5.0);
        close(summary.std_dev, (32.0_f64 / 7.0).sqrt());
        close(summary.min, 2.0);
        close(summary.max, 9.0);
        close(summary.median, 4.5);
        // Σ(t − t̄)(y − ȳ) = 34, Σ(t − t̄)² = 42, Σ(y − ȳ)² = 32.
        close(summary.trend_slope, 34.0 / 42.0);
        close(summary.trend_r_squared, 34.0 * 34.0 / (42.0 * 32.0));
        assert_eq!(summary.season_length, None);
        assert_eq!(summary.seasonal_strength, None);
        // median 4.5, MAD 0.5: only 9 is beyond 3.5 (2 scores −3.37).
        assert_eq!(summary.outliers.len(), 1);
        assert_eq!(summary.outliers[0].index, 7);
        close(summary.outliers[0].robust_z, 0.6745 * 4.5 / 0.5);
    }

    #[test]
    fn analyse_series_finds_a_planted_outlier() {
        let mut values: Vec<f64> = (0..30).map(|t| 10.0 + f64::from(t % 5)).collect();
        values[17] = 60.0;
        let summary = analyse_series(&input(values, None)).unwrap();
        // median 12, MAD 1.
        close(summary.median, 12.0);
        assert_eq!(summary.outliers.len(), 1);
        let outlier = &summary.outliers[0];
        assert_eq!((outlier.index, outlier.value), (17, 60.0));
        close(outlier.robust_z, 0.6745 * 48.0);
    }

    #[test]
    fn outliers_are_capped_strongest_first() {
        // MAD 1 from the 201 ones and twos; 150 spikes of rising height.
        let mut values: Vec<f64> = (0..201).map(|t| f64::from(1 + t % 2)).collect();
        values.extend((0..150).map(|k| 100.0 + f64::from(k)));
        let summary = analyse_series(&input(values.clone(), None)).unwrap();
        assert_eq!(summary.outliers.len(), MAX_OUTLIERS);
        assert_eq!(summary.outliers[0].index, values.len() - 1);
        assert!(summary
            .outliers
            .windows(2)
            .all(|w| w[0].robust_z.abs() >= w[1].robust_z.abs()));
        // No spread around the median: no outliers at all.
        let flat = analyse_series(&input(vec![5.0, 5.0, 5.0, 5.0, 90.0], None)).unwrap();
        assert!(flat.outliers.is_empty());
    }

    #[test]
    fn analyse_series_detects_a_weekly_season() {
        let week = [5.0, 6.0, 6.0, 5.0, 7.0, 1.0, 1.5];
        let values: Vec<f64> = (0..70).map(|t| week[t % 7] + 0.1 * t as f64).collect();
        let summary = analyse_series(&input(values, None)).unwrap();
        assert_eq!(summary.season_length, Some(7));
        let strength = summary.seasonal_strength.unwrap();
        assert!(strength > 0.95, "strength {strength}");
        assert!((summary.trend_slope - 0.1).abs() < 0.02);
    }

    #[test]
    fn a_line_or_a_constant_has_no_season() {
        let line = analyse_series(&linear()).unwrap();
        assert_eq!(line.season_length, None);
        assert_eq!(line.seasonal_strength, None);
        close(line.trend_slope, 2.0);
        close(line.trend_r_squared, 1.0);
        let constant = analyse_series(&input(vec![0.1; 40], Some(4))).unwrap();
        assert_eq!(constant.season_length, Some(4));
        assert_eq!(constant.seasonal_strength, Some(0.0));
        close(constant.std_dev, 0.0);
        assert_eq!(constant.trend_r_squared, 0.0);
        let one = analyse_series(&input(vec![3.0], None)).unwrap();
        assert_eq!((one.std_dev, one.trend_slope, one.median), (0.0, 0.0, 3.0));
    }

    #[test]
    fn declared_season_is_used_and_short_series_have_no_strength() {
        let summary = analyse_series(&seasonal()).unwrap();
        assert_eq!(summary.season_length, Some(12));
        // Not 1: the OLS line through a whole number of seasons still picks up some of the
        // pattern, which the per-phase means cannot take back.
        let strength = summary.seasonal_strength.unwrap();
        assert!(strength > 0.98, "strength {strength}");
        let short = analyse_series(&input(vec![1.0, 2.0, 3.0, 1.0, 2.0], Some(3))).unwrap();
        assert_eq!(short.season_length, Some(3));
        assert_eq!(short.seasonal_strength, None);
        assert_eq!(
            analyse_series(&input(vec![], None)),
            Err(WorkError::Forecast(ForecastError::EmptySeries))
        );
        assert_eq!(
            analyse_series(&input(vec![f64::MAX, -f64::MAX], None)),
            Err(WorkError::Forecast(ForecastError::NumericalOverflow))
        );
    }

    #[test]
    fn forecast_task_gives_horizon_points_inside_their_interval() {
        for variant in Strategy::ALL {
            let output = forecast_task(&seasonal(), 18, 80.0, variant).unwrap();
            assert_eq!(output.variant, variant);
            let f = &output.forecast;
            assert_eq!((f.point.len(), f.lower.len(), f.upper.len()), (18, 18, 18));
            assert_eq!(f.level, 80.0);
            for h in 0..18 {
                assert!(f.lower[h] <= f.point[h] && f.point[h] <= f.upper[h]);
            }
            assert!(output.backtest.is_some());
        }
        let hw = forecast_task(&seasonal(), 12, 95.0, Strategy::Experimental).unwrap();
        assert_eq!(hw.method, MethodKind::HoltWintersAdditive);
        assert!(hw.backtest.unwrap().mase < 1e-6);
        for (h, point) in hw.forecast.point.iter().enumerate() {
            assert!((point - seasonal().values[h]).abs() < 1e-6);
        }
    }

    #[test]
    fn forecast_task_skips_the_backtest_when_too_short_and_checks_its_input() {
        // Two seasons exactly: Holt-Winters fits, but not on the part left after the holdout.
        let two_seasons = input(seasonal().values[..24].to_vec(), Some(12));
        let output = forecast_task(&two_seasons, 3, 95.0, Strategy::Experimental).unwrap();
        assert_eq!(output.method, MethodKind::HoltWintersAdditive);
        assert_eq!(output.backtest, None);
        assert_eq!(
            forecast_task(&linear(), 0, 95.0, Strategy::Balanced),
            Err(WorkError::Forecast(ForecastError::HorizonZero))
        );
        assert_eq!(
            forecast_task(&linear(), 3, 20.0, Strategy::Balanced),
            Err(WorkError::Forecast(ForecastError::LevelOutOfRange {
                percent: 20.0
            }))
        );
        assert_eq!(
            forecast_task(&input(vec![1.0], None), 3, 95.0, Strategy::Conservative),
            Err(WorkError::Forecast(ForecastError::TooShortForMethod {
                method: MethodKind::SimpleExponentialSmoothing,
                needed: 2,
                actual: 1
            }))
        );
    }

    #[test]
    fn validate_series_uses_the_series_rules() {
        assert_eq!(validate_series(&linear()), Ok(()));
        assert_eq!(
            validate_series(&input(vec![1.0, f64::NAN], None)),
            Err(WorkError::Forecast(ForecastError::NonFiniteObservation {
                index: 1
            }))
        );
        assert_eq!(
            validate_series(&input(vec![1.0], Some(1))),
            Err(WorkError::Forecast(ForecastError::SeasonLengthOutOfRange {
                season_length: 1
            }))
        );
        assert!(!WorkError::BadInput("x".into()).is_retryable());
        assert!(!WorkError::Forecast(ForecastError::EmptySeries).is_retryable());
    }

    const CARGO_OUTPUT: &str = "   Compiling demo v0.1.0 (/work/demo)
error[E0425]: cannot find value `x` in this scope
 --> src/main.rs:2:20
  |
2 |     println!(\"{}\", x);
  |                    ^ not found in this scope

For more information about this error, try `rustc --explain E0425`.
error: could not compile `demo` (bin \"demo\") due to 1 previous error
";

    #[test]
    fn analyse_log_finds_a_rust_compile_error() {
        let findings = analyse_log(CARGO_OUTPUT);
        assert_eq!(findings.lines, 9);
        let compile = findings
            .findings
            .iter()
            .find(|f| f.kind == "compile_error")
            .expect("a compile error");
        assert_eq!(compile.agent, "error-detective");
        assert_eq!(compile.line, Some(2));
        assert!(!compile.severity.is_empty());
        assert_eq!(
            analyse_log(""),
            LogFindings {
                lines: 0,
                findings: vec![]
            }
        );
    }

    #[test]
    fn insight_kind_names_match_serde() {
        use InsightKind::*;
        let all = [
            CompileError,
            TestFailure,
            RuntimeException,
            Crash,
            OutOfMemory,
            DependencyConflict,
            ConfigError,
            SlowQuery,
            HighMemory,
            LargeImage,
            SlowResponse,
            NPlusOneQuery,
            UnauthorizedAccess,
            BruteForce,
            SqlInjection,
            Xss,
            ExposedSecret,
            SuspiciousIp,
            AuthFailure,
            LowCoverage,
            DeprecatedDependency,
            Warning,
            MissingErrorHandling,
            CommandInjection,
            PathTraversal,
        ];
        for kind in all {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::from(insight_kind_name(kind))
            );
        }
    }

    #[test]
    fn execute_dispatches_by_type() {
        let series = TaskInput::Series {
            series: linear(),
            horizon: 4,
            level_percent: DEFAULT_LEVEL_PERCENT,
        };
        let log = TaskInput::Log {
            redacted_text: CARGO_OUTPUT.to_owned(),
        };
        match execute(TaskType::Forecast, &series, Strategy::Aggressive).unwrap() {
            TaskOutput::Forecast(f) => {
                assert_eq!(f.variant, Strategy::Aggressive);
                assert_eq!(f.forecast.point.len(), 4);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            execute(TaskType::Analysis, &series, Strategy::Aggressive),
            Ok(TaskOutput::Analysis(SeriesSummary {
                observations: 60,
                ..
            }))
        ));
        assert!(matches!(
            execute(TaskType::LogAnalysis, &log, Strategy::Aggressive),
            Ok(TaskOutput::LogAnalysis(_))
        ));
        for (task_type, input) in [
            (TaskType::Forecast, &log),
            (TaskType::Analysis, &log),
            (TaskType::LogAnalysis, &series),
        ] {
            assert!(matches!(
                execute(task_type, input, Strategy::Balanced),
                Err(WorkError::BadInput(_))
            ));
        }
    }

    /// `a` and `b` have the same shape and numbers equal to 1e-12 (relative): serde_json's
    /// default float parser may be one ulp off.
    fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value) {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} vs {y}");
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len());
                x.iter().zip(y).for_each(|(x, y)| assert_json_close(x, y));
            }
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
                x.iter()
                    .zip(y.values())
                    .for_each(|((_, x), y)| assert_json_close(x, y));
            }
            _ => assert_eq!(a, b),
        }
    }

    fn assert_round_trips<T>(value: &T)
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let json = serde_json::to_string(value).unwrap();
        let back: T = serde_json::from_str(&json).unwrap();
        assert_json_close(
            &serde_json::to_value(value).unwrap(),
            &serde_json::to_value(&back).unwrap(),
        );
    }

    #[test]
    fn outputs_round_trip_through_json() {
        let result = run_competition(
            &seasonal(),
            3,
            &[Strategy::Balanced, Strategy::Experimental],
            Strategy::Balanced,
            dec("0.25"),
        )
        .unwrap();
        assert_round_trips(&result);
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["winRateDelta"], "1");
        assert_eq!(
            json["ranking"],
            serde_json::json!(["experimental", "balanced"])
        );
        for task_type in TaskType::ALL {
            let input = match task_type {
                TaskType::LogAnalysis => TaskInput::Log {
                    redacted_text: CARGO_OUTPUT.to_owned(),
                },
                _ => TaskInput::Series {
                    series: seasonal(),
                    horizon: 2,
                    level_percent: DEFAULT_LEVEL_PERCENT,
                },
            };
            assert_round_trips(&input);
            assert_round_trips(&execute(task_type, &input, Strategy::Balanced).unwrap());
        }
    }
}
