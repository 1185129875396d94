//! Forecasting maths for the `FORECAST` task type and the self-compete tournament.
//!
//! A [`Series`] goes in; a [`Forecast`] (point forecasts with prediction intervals) comes out of
//! a fitted [`Model`]. [`compete`] runs the four [`Strategy`]s against each other on a held-out
//! tail, ranks them by MASE and names a champion.
//!
//! Pure and deterministic: no IO, no clock, no randomness. Grid searches scan in a fixed order
//! and keep the first strict minimum, so the same input gives the same output, bit for bit.
//! `f64` is deliberate: this is statistics, not money.
//!
//! # Notation
//! `y_1..y_T` the observations (a regular step is assumed, not checked: the series carries no
//! timestamps), `ℓ_t` level, `b_t` trend, `s_t` seasonal component, `m` season length, `h`
//! horizon, `ŷ_{T+h|T}` the `h`-step point forecast made at `T`, `e_t = y_t − ŷ_{t|t−1}` the
//! one-step in-sample residual. Smoothing parameters are in the component form of Hyndman &
//! Athanasopoulos, *Forecasting: Principles and Practice* (3rd ed., "FPP3"), chapter 8.
//!
//! # Fitting
//! A [`Param`] is either fixed or a grid `min, min + δ, …, max` with `points` values
//! (`δ = (max − min)/(points − 1)`). Every combination is run (first parameter outermost, each
//! ascending) and the one with the smallest in-sample one-step sum of squared errors
//! `SSE = Σ e_t²` wins; ties keep the earlier combination. For Holt-Winters the combinations
//! with `γ > 1 − α` are skipped (the usual admissibility restriction, FPP3 §8.3).
//!
//! The recursions are computed in their algebraically equivalent error-correction form
//! (`ℓ_t = ℓ_{t−1} + φ·b_{t−1} + α·e_t`, `b_t = φ·b_{t−1} + αβ·e_t`, `s_t = s_{t−m} + γ·e_t`),
//! which stays exact when a one-step error is exactly zero.
//!
//! # Prediction intervals
//! `ŷ_{T+h|T} ± z·σ̂·sqrt(v_h)`, with `z` the standard normal quantile of the [`Level`] and
//! `σ̂ = sqrt(SSE / N)` over the `N` one-step residuals (the maximum-likelihood estimate, no
//! degrees-of-freedom correction). The variance multiplier `v_h` comes from each method's own
//! variance formula:
//! - exponential smoothing, via the equivalent linear innovations state-space models
//!   ETS(A,N,N), ETS(A,A,N), ETS(A,Ad,N), ETS(A,A,A) (Hyndman, Koehler, Ord & Snyder 2008,
//!   ch. 6; FPP3 §8.7): `v_h = 1 + Σ_{j=1}^{h−1} c_j²` with
//!   `c_j = α + αβ·φ_j + γ·[j mod m = 0]`, `φ_j = φ + φ² + … + φ^j` (`φ_j = j` without
//!   damping; the `β` and `γ` terms are zero for methods without trend or season);
//! - seasonal naive: `v_h = ⌊(h−1)/m⌋ + 1`;
//! - drift: `v_h = h·(1 + h/T)`.
//!
//! Every method here has a closed form, so no `sqrt(h)` fallback is used. The formulas treat the
//! parameters as known; with grid-searched parameters the intervals ignore parameter
//! uncertainty and are somewhat narrow, as usual.
//!
//! # Backtest and scores
//! [`holdout_length`] points at the end are held out, the method is fitted on the rest and
//! forecasts the held-out points. [`Score`] reports MASE (mean absolute error scaled by the
//! in-sample MAE of the seasonal-naive, else naive, one-step forecast of the training part;
//! Hyndman & Koehler 2006) and sMAPE (`200/H · Σ |y − ŷ| / (|y| + |ŷ|)`, a `0/0` term counting
//! as 0, in percent 0..=200).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Most observations a [`Series`] may hold (bounds every fit at `grid points × this`).
pub const MAX_OBSERVATIONS: usize = 10_000;
/// Shortest season a [`Series`] may declare.
pub const MIN_SEASON_LENGTH: usize = 2;
/// Longest season a [`Series`] may declare (daily data, yearly season, leap year).
pub const MAX_SEASON_LENGTH: usize = 366;
/// Longest forecast [`Horizon`].
pub const MAX_HORIZON: usize = 1_000;
/// Lowest prediction-interval [`Level`], in percent.
pub const MIN_LEVEL_PERCENT: f64 = 50.0;
/// Highest prediction-interval [`Level`], in percent.
pub const MAX_LEVEL_PERCENT: f64 = 99.0;
/// Most values a [`Param::Grid`] may hold (at most 20³ = 8 000 combinations per fit).
pub const MAX_GRID_POINTS: usize = 20;
/// Fewest observations [`compete`] accepts: three to fit a trend on, one to hold out.
pub const MIN_TOURNAMENT_OBSERVATIONS: usize = 4;

/// Why a forecast could not be made. Every case is a property of the input: retrying the same
/// request cannot succeed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ForecastError {
    #[error("a series needs at least one observation")]
    EmptySeries,
    #[error("a series holds at most {max} observations, got {actual}")]
    TooManyObservations { actual: usize, max: usize },
    #[error("observation {index} is not a finite number")]
    NonFiniteObservation { index: usize },
    #[error("season length {season_length} is outside {MIN_SEASON_LENGTH}..={MAX_SEASON_LENGTH}")]
    SeasonLengthOutOfRange { season_length: usize },
    #[error("{method} needs a season length")]
    SeasonLengthRequired { method: MethodKind },
    #[error("{method} needs at least {needed} observations, got {actual}")]
    TooShortForMethod {
        method: MethodKind,
        needed: usize,
        actual: usize,
    },
    #[error("holding out {holdout} points needs at least {needed} observations, got {actual}")]
    TooShortForBacktest {
        holdout: usize,
        needed: usize,
        actual: usize,
    },
    #[error("a tournament needs at least {needed} observations, got {actual}")]
    TooShortForTournament { needed: usize, actual: usize },
    #[error("the horizon must be at least 1")]
    HorizonZero,
    #[error("the horizon {horizon} exceeds the maximum {MAX_HORIZON}")]
    HorizonTooLong { horizon: usize },
    #[error("prediction level {percent}% is outside {MIN_LEVEL_PERCENT}..={MAX_LEVEL_PERCENT}")]
    LevelOutOfRange { percent: f64 },
    #[error("{parameter} = {value} is outside {}", .parameter.range())]
    ParameterOutOfRange { parameter: Parameter, value: f64 },
    #[error("the grid for {parameter} needs 1..={MAX_GRID_POINTS} points, got {points}")]
    GridPointsOutOfRange { parameter: Parameter, points: usize },
    #[error("the grid for {parameter} runs backwards ({min} > {max})")]
    GridBoundsReversed {
        parameter: Parameter,
        min: f64,
        max: f64,
    },
    #[error("no parameter combination for {method} satisfies gamma <= 1 - alpha")]
    NoAdmissibleParameters { method: MethodKind },
    #[error("the computation overflowed: the series' values are too large")]
    NumericalOverflow,
}

impl ForecastError {
    /// Always `false`: the maths is deterministic, so the same input fails the same way.
    pub const fn is_retryable(&self) -> bool {
        false
    }
}

/// A validated time series: 1..=[`MAX_OBSERVATIONS`] finite observations at a regular step,
/// oldest first, and optionally the number of steps in a season.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Series {
    values: Vec<f64>,
    season_length: Option<usize>,
}

impl Series {
    pub fn parse(values: Vec<f64>, season_length: Option<usize>) -> Result<Self, ForecastError> {
        if values.is_empty() {
            return Err(ForecastError::EmptySeries);
        }
        if values.len() > MAX_OBSERVATIONS {
            return Err(ForecastError::TooManyObservations {
                actual: values.len(),
                max: MAX_OBSERVATIONS,
            });
        }
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(ForecastError::NonFiniteObservation { index });
        }
        if let Some(m) = season_length {
            if !(MIN_SEASON_LENGTH..=MAX_SEASON_LENGTH).contains(&m) {
                return Err(ForecastError::SeasonLengthOutOfRange { season_length: m });
            }
        }
        Ok(Self {
            values,
            season_length,
        })
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Always `false`: a series holds at least one observation.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn season_length(&self) -> Option<usize> {
        self.season_length
    }

    /// The first `len` observations, same season. Callers keep `1 <= len <= self.len()`.
    fn head(&self, len: usize) -> Self {
        assert!(
            (1..=self.len()).contains(&len),
            "a series prefix is never empty"
        );
        Self {
            values: self.values[..len].to_vec(),
            season_length: self.season_length,
        }
    }
}

/// A forecast horizon: 1..=[`MAX_HORIZON`] steps ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Horizon(usize);

impl Horizon {
    pub fn parse(steps: usize) -> Result<Self, ForecastError> {
        match steps {
            0 => Err(ForecastError::HorizonZero),
            h if h > MAX_HORIZON => Err(ForecastError::HorizonTooLong { horizon: h }),
            h => Ok(Self(h)),
        }
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// The coverage of a prediction interval, in percent: [`MIN_LEVEL_PERCENT`]..=[`MAX_LEVEL_PERCENT`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Level(f64);

impl Level {
    /// 95 %, `z ≈ 1.959964`.
    pub const DEFAULT: Self = Self(95.0);

    pub fn parse(percent: f64) -> Result<Self, ForecastError> {
        if (MIN_LEVEL_PERCENT..=MAX_LEVEL_PERCENT).contains(&percent) {
            Ok(Self(percent))
        } else {
            Err(ForecastError::LevelOutOfRange { percent })
        }
    }

    pub fn percent(self) -> f64 {
        self.0
    }

    /// The two-sided standard normal quantile `z = Φ⁻¹(1/2 + level/200)`.
    pub fn z(self) -> f64 {
        normal_quantile(0.5 + self.0 / 200.0)
    }
}

/// Φ⁻¹(p) by Wichura's algorithm AS241 (PPND16, *Applied Statistics* 37(3), 1988; relative
/// error about 1e-16), for `p` in `[0.5, 1 − e⁻²⁵]`, which holds every [`Level`]'s `p` of
/// 0.75..=0.995. The polynomials are written highest power first (Horner).
fn normal_quantile(p: f64) -> f64 {
    const CENTRAL_NUM: [f64; 8] = [
        2509.0809287301227,
        33430.57558358813,
        67265.7709270087,
        45921.95393154987,
        13731.69376550946,
        1971.5909503065513,
        133.14166789178438,
        3.3871328727963665,
    ];
    const CENTRAL_DEN: [f64; 8] = [
        5226.495278852854,
        28729.085735721943,
        39307.89580009271,
        21213.794301586597,
        5394.196021424751,
        687.1870074920579,
        42.31333070160091,
        1.0,
    ];
    const TAIL_NUM: [f64; 8] = [
        0.0007745450142783414,
        0.022723844989269184,
        0.2417807251774506,
        1.2704582524523684,
        3.6478483247632045,
        5.769497221460691,
        4.630337846156546,
        1.4234371107496835,
    ];
    const TAIL_DEN: [f64; 8] = [
        1.0507500716444169e-9,
        0.0005475938084995345,
        0.015198666563616457,
        0.14810397642748008,
        0.6897673349851,
        1.6763848301838038,
        2.053191626637759,
        1.0,
    ];
    let horner =
        |coefficients: &[f64; 8], x: f64| coefficients.iter().fold(0.0, |acc, c| acc * x + c);
    let q = p - 0.5;
    debug_assert!((0.0..0.5).contains(&q), "p = {p} is outside [0.5, 1)");
    if q <= 0.425 {
        let r = 0.180625 - q * q;
        q * horner(&CENTRAL_NUM, r) / horner(&CENTRAL_DEN, r)
    } else {
        let r = (-(1.0 - p).ln()).sqrt() - 1.6;
        horner(&TAIL_NUM, r) / horner(&TAIL_DEN, r)
    }
}

/// A smoothing parameter, named for errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameter {
    /// Level smoothing, `0 ≤ α ≤ 1`.
    Alpha,
    /// Trend smoothing (component form `β*`), `0 ≤ β ≤ 1`.
    Beta,
    /// Seasonal smoothing, `0 ≤ γ ≤ 1`.
    Gamma,
    /// Trend damping, `0 < φ ≤ 1` (`φ = 1` is Holt's undamped trend).
    Phi,
}

impl Parameter {
    fn range(self) -> &'static str {
        match self {
            Self::Phi => "(0, 1]",
            _ => "[0, 1]",
        }
    }

    fn admits(self, value: f64) -> bool {
        match self {
            Self::Phi => value > 0.0 && value <= 1.0,
            _ => (0.0..=1.0).contains(&value),
        }
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Alpha => "alpha",
            Self::Beta => "beta",
            Self::Gamma => "gamma",
            Self::Phi => "phi",
        })
    }
}

/// A parameter value, fixed or fitted by grid search (see the module docs for the scan order).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Param {
    Fixed(f64),
    /// `points` evenly spaced values from `min` to `max`, both included (`points = 1`: `min`).
    Grid {
        min: f64,
        max: f64,
        points: usize,
    },
}

impl Param {
    fn candidates(self, parameter: Parameter) -> Result<Vec<f64>, ForecastError> {
        let out_of_range = |value| ForecastError::ParameterOutOfRange { parameter, value };
        match self {
            Self::Fixed(value) if parameter.admits(value) => Ok(vec![value]),
            Self::Fixed(value) => Err(out_of_range(value)),
            Self::Grid { points, .. } if !(1..=MAX_GRID_POINTS).contains(&points) => {
                Err(ForecastError::GridPointsOutOfRange { parameter, points })
            }
            Self::Grid { min, .. } if !parameter.admits(min) => Err(out_of_range(min)),
            Self::Grid { max, .. } if !parameter.admits(max) => Err(out_of_range(max)),
            Self::Grid { min, max, .. } if min > max => Err(ForecastError::GridBoundsReversed {
                parameter,
                min,
                max,
            }),
            Self::Grid { min, max, points } => Ok((0..points)
                .map(|i| match i {
                    0 => min,
                    i if i + 1 == points => max,
                    i => min + (max - min) * i as f64 / (points - 1) as f64,
                })
                .collect()),
        }
    }
}

/// Which method a model uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodKind {
    SimpleExponentialSmoothing,
    Holt,
    DampedTrend,
    HoltWintersAdditive,
    SeasonalNaive,
    Drift,
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SimpleExponentialSmoothing => "simple exponential smoothing",
            Self::Holt => "Holt's linear trend",
            Self::DampedTrend => "damped trend",
            Self::HoltWintersAdditive => "additive Holt-Winters",
            Self::SeasonalNaive => "seasonal naive",
            Self::Drift => "drift",
        })
    }
}

/// A forecasting method and how its parameters are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Simple exponential smoothing (Brown 1959; FPP3 §8.1). Needs 2 observations.
    ///
    /// `ℓ_t = α·y_t + (1 − α)·ℓ_{t−1}`, `ŷ_{T+h|T} = ℓ_T`; `ℓ_1 = y_1`, residuals from `t = 2`.
    SimpleExponentialSmoothing { alpha: Param },
    /// Holt's linear trend (Holt 1957; FPP3 §8.2). Needs 3 observations.
    ///
    /// `ℓ_t = α·y_t + (1 − α)·(ℓ_{t−1} + b_{t−1})`,
    /// `b_t = β·(ℓ_t − ℓ_{t−1}) + (1 − β)·b_{t−1}`, `ŷ_{T+h|T} = ℓ_T + h·b_T`;
    /// `ℓ_2 = y_2`, `b_2 = y_2 − y_1`, residuals from `t = 3`.
    Holt { alpha: Param, beta: Param },
    /// Damped trend (Gardner & McKenzie 1985; FPP3 §8.2). Needs 3 observations.
    ///
    /// `ℓ_t = α·y_t + (1 − α)·(ℓ_{t−1} + φ·b_{t−1})`,
    /// `b_t = β·(ℓ_t − ℓ_{t−1}) + (1 − β)·φ·b_{t−1}`,
    /// `ŷ_{T+h|T} = ℓ_T + (φ + φ² + … + φ^h)·b_T`; initialised as Holt's.
    DampedTrend {
        alpha: Param,
        beta: Param,
        phi: Param,
    },
    /// Additive Holt-Winters (Winters 1960, in the FPP3 §8.3 form). Needs two full seasons.
    ///
    /// `ℓ_t = α·(y_t − s_{t−m}) + (1 − α)·(ℓ_{t−1} + b_{t−1})`,
    /// `b_t = β·(ℓ_t − ℓ_{t−1}) + (1 − β)·b_{t−1}`,
    /// `s_t = γ·(y_t − ℓ_{t−1} − b_{t−1}) + (1 − γ)·s_{t−m}`,
    /// `ŷ_{T+h|T} = ℓ_T + h·b_T + s_{T+h−m(k+1)}`, `k = ⌊(h−1)/m⌋`.
    /// Initialised from the first two seasons' means `ȳ₁`, `ȳ₂`: `b_m = (ȳ₂ − ȳ₁)/m`,
    /// `s_i = y_i − (ȳ₁ + b_m·(i − (m+1)/2))` for `i = 1..m`, `ℓ_m = ȳ₁ + b_m·(m−1)/2`;
    /// residuals from `t = m + 1`. Exact on any `a + b·t + periodic` series.
    HoltWintersAdditive {
        alpha: Param,
        beta: Param,
        gamma: Param,
    },
    /// Seasonal naive: `ŷ_{T+h|T} = y_{T+h−m(k+1)}`, `k = ⌊(h−1)/m⌋`; residuals
    /// `e_t = y_t − y_{t−m}`. Needs `m + 1` observations.
    SeasonalNaive,
    /// Drift (the naive method plus the average change): `c = (y_T − y_1)/(T − 1)`,
    /// `ŷ_{T+h|T} = y_T + h·c`; residuals `e_t = y_t − y_{t−1} − c`. Needs 2 observations.
    Drift,
}

impl Method {
    pub fn kind(&self) -> MethodKind {
        match self {
            Self::SimpleExponentialSmoothing { .. } => MethodKind::SimpleExponentialSmoothing,
            Self::Holt { .. } => MethodKind::Holt,
            Self::DampedTrend { .. } => MethodKind::DampedTrend,
            Self::HoltWintersAdditive { .. } => MethodKind::HoltWintersAdditive,
            Self::SeasonalNaive => MethodKind::SeasonalNaive,
            Self::Drift => MethodKind::Drift,
        }
    }

    /// The fewest observations the method fits on, given the series' season.
    pub fn min_observations(&self, season_length: Option<usize>) -> Result<usize, ForecastError> {
        let season = || {
            season_length.ok_or(ForecastError::SeasonLengthRequired {
                method: self.kind(),
            })
        };
        Ok(match self {
            Self::SimpleExponentialSmoothing { .. } | Self::Drift => 2,
            Self::Holt { .. } | Self::DampedTrend { .. } => 3,
            Self::HoltWintersAdditive { .. } => 2 * season()?,
            Self::SeasonalNaive => season()? + 1,
        })
    }
}

/// The parameters a fit settled on (`None`: the method has no such parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub alpha: Option<f64>,
    pub beta: Option<f64>,
    pub gamma: Option<f64>,
    pub phi: Option<f64>,
}

/// Point forecasts with a prediction interval at `level` percent, one entry per step ahead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    pub point: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub level: f64,
}

/// The end state of a fit, enough to forecast from.
#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Every exponential smoothing method: SES has `trend = 0`, `beta = 0`, `phi = 1`;
    /// `seasonals` (empty unless Holt-Winters) holds `s_{T−m+1..T}`, oldest first.
    Smoothing {
        level: f64,
        trend: f64,
        seasonals: Vec<f64>,
        alpha: f64,
        beta: f64,
        gamma: f64,
        phi: f64,
    },
    SeasonalNaive {
        last_season: Vec<f64>,
    },
    Drift {
        last: f64,
        slope: f64,
        observations: usize,
    },
}

/// One run of a method's recursion.
struct Run {
    sse: f64,
    residuals: usize,
    state: State,
}

/// A fitted method, ready to forecast.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    kind: MethodKind,
    params: Params,
    state: State,
    residual_sd: f64,
    sse: f64,
}

impl Model {
    pub fn kind(&self) -> MethodKind {
        self.kind
    }

    pub fn params(&self) -> Params {
        self.params
    }

    /// `σ̂ = sqrt(SSE / N)` over the in-sample one-step residuals.
    pub fn residual_sd(&self) -> f64 {
        self.residual_sd
    }

    /// The in-sample one-step sum of squared errors the fit minimised.
    pub fn sse(&self) -> f64 {
        self.sse
    }

    pub fn forecast(&self, horizon: Horizon, level: Level) -> Result<Forecast, ForecastError> {
        let point = self.points(horizon.get());
        let half_widths: Vec<f64> = self
            .variance_multipliers(horizon.get())
            .into_iter()
            .map(|v| level.z() * self.residual_sd * v.sqrt())
            .collect();
        let lower: Vec<f64> = point.iter().zip(&half_widths).map(|(p, w)| p - w).collect();
        let upper: Vec<f64> = point.iter().zip(&half_widths).map(|(p, w)| p + w).collect();
        if !point
            .iter()
            .chain(&lower)
            .chain(&upper)
            .all(|v| v.is_finite())
        {
            return Err(ForecastError::NumericalOverflow);
        }
        Ok(Forecast {
            point,
            lower,
            upper,
            level: level.percent(),
        })
    }

    /// `ŷ_{T+h|T}` for `h = 1..=horizon`.
    fn points(&self, horizon: usize) -> Vec<f64> {
        match &self.state {
            State::Smoothing {
                level,
                trend,
                seasonals,
                phi,
                ..
            } => {
                let (mut phi_power, mut phi_sum) = (1.0, 0.0);
                (1..=horizon)
                    .map(|h| {
                        phi_power *= phi;
                        phi_sum += phi_power;
                        let seasonal = match seasonals.len() {
                            0 => 0.0,
                            m => seasonals[(h - 1) % m],
                        };
                        level + phi_sum * trend + seasonal
                    })
                    .collect()
            }
            State::SeasonalNaive { last_season } => (1..=horizon)
                .map(|h| last_season[(h - 1) % last_season.len()])
                .collect(),
            State::Drift { last, slope, .. } => {
                (1..=horizon).map(|h| last + h as f64 * slope).collect()
            }
        }
    }

    /// `v_h` for `h = 1..=horizon` (see the module docs); non-decreasing in `h`.
    fn variance_multipliers(&self, horizon: usize) -> Vec<f64> {
        match &self.state {
            State::Smoothing {
                seasonals,
                alpha,
                beta,
                gamma,
                phi,
                ..
            } => {
                let (mut sum_sq, mut phi_power, mut phi_sum) = (0.0, 1.0, 0.0);
                (1..=horizon)
                    .map(|h| {
                        let v = 1.0 + sum_sq;
                        // c_h, used from v_{h+1} on.
                        phi_power *= phi;
                        phi_sum += phi_power;
                        let seasonal = match seasonals.len() {
                            m if m > 0 && h % m == 0 => *gamma,
                            _ => 0.0,
                        };
                        let c = alpha + alpha * beta * phi_sum + seasonal;
                        sum_sq += c * c;
                        v
                    })
                    .collect()
            }
            State::SeasonalNaive { last_season } => (1..=horizon)
                .map(|h| ((h - 1) / last_season.len() + 1) as f64)
                .collect(),
            State::Drift { observations, .. } => (1..=horizon)
                .map(|h| h as f64 * (1.0 + h as f64 / *observations as f64))
                .collect(),
        }
    }
}

/// Fits `method` to `series`, choosing grid parameters by least in-sample one-step SSE.
pub fn fit(series: &Series, method: &Method) -> Result<Model, ForecastError> {
    let kind = method.kind();
    let needed = method.min_observations(series.season_length())?;
    if series.len() < needed {
        return Err(ForecastError::TooShortForMethod {
            method: kind,
            needed,
            actual: series.len(),
        });
    }
    let y = series.values();
    let (chosen, run) = match *method {
        Method::SimpleExponentialSmoothing { alpha } => {
            let grids = [alpha.candidates(Parameter::Alpha)?];
            grid_search(kind, &grids, |p| Some(run_ses(y, p[0])))?
        }
        Method::Holt { alpha, beta } => {
            let grids = [
                alpha.candidates(Parameter::Alpha)?,
                beta.candidates(Parameter::Beta)?,
            ];
            grid_search(kind, &grids, |p| Some(run_trend(y, p[0], p[1], 1.0)))?
        }
        Method::DampedTrend { alpha, beta, phi } => {
            let grids = [
                alpha.candidates(Parameter::Alpha)?,
                beta.candidates(Parameter::Beta)?,
                phi.candidates(Parameter::Phi)?,
            ];
            grid_search(kind, &grids, |p| Some(run_trend(y, p[0], p[1], p[2])))?
        }
        Method::HoltWintersAdditive { alpha, beta, gamma } => {
            let m = needed / 2;
            let grids = [
                alpha.candidates(Parameter::Alpha)?,
                beta.candidates(Parameter::Beta)?,
                gamma.candidates(Parameter::Gamma)?,
            ];
            grid_search(kind, &grids, |p| {
                (p[2] <= 1.0 - p[0]).then(|| run_holt_winters(y, m, p[0], p[1], p[2]))
            })?
        }
        Method::SeasonalNaive => (vec![], run_seasonal_naive(y, needed - 1)),
        Method::Drift => (vec![], run_drift(y)),
    };
    if !run.sse.is_finite() {
        return Err(ForecastError::NumericalOverflow);
    }
    let at = |i: usize| chosen.get(i).copied();
    let params = match kind {
        MethodKind::SimpleExponentialSmoothing => Params {
            alpha: at(0),
            ..Params::default()
        },
        MethodKind::Holt => Params {
            alpha: at(0),
            beta: at(1),
            ..Params::default()
        },
        MethodKind::DampedTrend => Params {
            alpha: at(0),
            beta: at(1),
            phi: at(2),
            ..Params::default()
        },
        MethodKind::HoltWintersAdditive => Params {
            alpha: at(0),
            beta: at(1),
            gamma: at(2),
            ..Params::default()
        },
        MethodKind::SeasonalNaive | MethodKind::Drift => Params::default(),
    };
    Ok(Model {
        kind,
        params,
        residual_sd: (run.sse / run.residuals as f64).sqrt(),
        sse: run.sse,
        state: run.state,
    })
}

/// Fits and forecasts in one step.
pub fn forecast(
    series: &Series,
    method: &Method,
    horizon: Horizon,
    level: Level,
) -> Result<Forecast, ForecastError> {
    fit(series, method)?.forecast(horizon, level)
}

/// Runs every combination of `grids` (first outermost, each ascending) and keeps the first run
/// with the least SSE; a non-finite SSE ranks last. `run` returns `None` for an inadmissible
/// combination.
fn grid_search(
    method: MethodKind,
    grids: &[Vec<f64>],
    mut run: impl FnMut(&[f64]) -> Option<Run>,
) -> Result<(Vec<f64>, Run), ForecastError> {
    let rank = |sse: f64| if sse.is_finite() { sse } else { f64::INFINITY };
    let mut best: Option<(Vec<f64>, Run)> = None;
    let mut index = vec![0usize; grids.len()];
    loop {
        let params: Vec<f64> = index.iter().zip(grids).map(|(&i, g)| g[i]).collect();
        if let Some(candidate) = run(&params) {
            let better = best
                .as_ref()
                .is_none_or(|(_, b)| rank(candidate.sse) < rank(b.sse));
            if better {
                best = Some((params, candidate));
            }
        }
        // Advance the odometer, last parameter fastest.
        let mut k = grids.len();
        loop {
            if k == 0 {
                return best.ok_or(ForecastError::NoAdmissibleParameters { method });
            }
            k -= 1;
            index[k] += 1;
            if index[k] < grids[k].len() {
                break;
            }
            index[k] = 0;
        }
    }
}

fn run_ses(y: &[f64], alpha: f64) -> Run {
    let mut level = y[0];
    let mut sse = 0.0;
    for &yt in &y[1..] {
        let e = yt - level;
        sse += e * e;
        level += alpha * e;
    }
    Run {
        sse,
        residuals: y.len() - 1,
        state: State::Smoothing {
            level,
            trend: 0.0,
            seasonals: vec![],
            alpha,
            beta: 0.0,
            gamma: 0.0,
            phi: 1.0,
        },
    }
}

/// Holt's method when `phi = 1`, the damped trend otherwise.
fn run_trend(y: &[f64], alpha: f64, beta: f64, phi: f64) -> Run {
    let mut level = y[1];
    let mut trend = y[1] - y[0];
    let mut sse = 0.0;
    for &yt in &y[2..] {
        let e = yt - (level + phi * trend);
        sse += e * e;
        level += phi * trend + alpha * e;
        trend = phi * trend + alpha * beta * e;
    }
    Run {
        sse,
        residuals: y.len() - 2,
        state: State::Smoothing {
            level,
            trend,
            seasonals: vec![],
            alpha,
            beta,
            gamma: 0.0,
            phi,
        },
    }
}

fn run_holt_winters(y: &[f64], m: usize, alpha: f64, beta: f64, gamma: f64) -> Run {
    let mean = |s: &[f64]| s.iter().sum::<f64>() / m as f64;
    let (first, second) = (mean(&y[..m]), mean(&y[m..2 * m]));
    let mut trend = (second - first) / m as f64;
    let centre = (m as f64 + 1.0) / 2.0;
    // seasonal[t % m] holds s_{t−m} when observation t (0-based) is processed.
    let mut seasonal: Vec<f64> = y[..m]
        .iter()
        .enumerate()
        .map(|(i, yi)| yi - (first + trend * (i as f64 + 1.0 - centre)))
        .collect();
    let mut level = first + trend * (m as f64 - 1.0) / 2.0;
    let mut sse = 0.0;
    for (t, &yt) in y.iter().enumerate().skip(m) {
        let s_prev = seasonal[t % m];
        let e = yt - (level + trend + s_prev);
        sse += e * e;
        level += trend + alpha * e;
        trend += alpha * beta * e;
        seasonal[t % m] = s_prev + gamma * e;
    }
    let n = y.len();
    Run {
        sse,
        residuals: n - m,
        state: State::Smoothing {
            level,
            trend,
            seasonals: (0..m).map(|j| seasonal[(n + j) % m]).collect(),
            alpha,
            beta,
            gamma,
            phi: 1.0,
        },
    }
}

fn run_seasonal_naive(y: &[f64], m: usize) -> Run {
    let sse = y.iter().zip(&y[m..]).map(|(a, b)| (b - a) * (b - a)).sum();
    Run {
        sse,
        residuals: y.len() - m,
        state: State::SeasonalNaive {
            last_season: y[y.len() - m..].to_vec(),
        },
    }
}

fn run_drift(y: &[f64]) -> Run {
    let n = y.len();
    let last = y[n - 1];
    let slope = (last - y[0]) / (n - 1) as f64;
    let sse = y
        .windows(2)
        .map(|w| {
            let e = w[1] - w[0] - slope;
            e * e
        })
        .sum();
    Run {
        sse,
        residuals: n - 1,
        state: State::Drift {
            last,
            slope,
            observations: n,
        },
    }
}

/// What scaled the MASE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleKind {
    /// In-sample MAE of `y_t − y_{t−m}` on the training part.
    SeasonalNaive,
    /// In-sample MAE of `y_t − y_{t−1}`: no season, a training part of at most `m` points, or
    /// a zero seasonal-naive MAE (a perfectly periodic history).
    Naive,
    /// 1: the training part is constant, both MAEs are zero, and MASE is the plain MAE.
    Unit,
}

/// A backtest's errors on the held-out tail.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// `MAE / scale`.
    pub mase: f64,
    /// Symmetric MAPE in percent, 0..=200.
    pub smape: f64,
    pub mae: f64,
    pub scale: f64,
    pub scale_kind: ScaleKind,
}

impl Score {
    /// Callers pass `actual` and `predicted` of equal length, `training` non-empty.
    fn compute(
        training: &[f64],
        season_length: Option<usize>,
        actual: &[f64],
        predicted: &[f64],
    ) -> Result<Self, ForecastError> {
        let mae = mean_absolute_error(actual, predicted);
        let (scale, scale_kind) = mase_scale(training, season_length);
        let score = Self {
            mase: mae / scale,
            smape: smape(actual, predicted),
            mae,
            scale,
            scale_kind,
        };
        if [score.mase, score.smape, score.mae, score.scale]
            .iter()
            .all(|v| v.is_finite())
        {
            Ok(score)
        } else {
            Err(ForecastError::NumericalOverflow)
        }
    }
}

fn mean_absolute_error(actual: &[f64], predicted: &[f64]) -> f64 {
    assert_eq!(actual.len(), predicted.len(), "one forecast per actual");
    let total: f64 = actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| (a - p).abs())
        .sum();
    total / actual.len() as f64
}

/// Mean of `|y_t − y_{t−lag}|`; `None` when the series is not longer than `lag`.
fn mean_abs_difference(y: &[f64], lag: usize) -> Option<f64> {
    (y.len() > lag).then(|| {
        let total: f64 = y.iter().zip(&y[lag..]).map(|(a, b)| (b - a).abs()).sum();
        total / (y.len() - lag) as f64
    })
}

fn mase_scale(training: &[f64], season_length: Option<usize>) -> (f64, ScaleKind) {
    let seasonal = season_length
        .and_then(|m| mean_abs_difference(training, m))
        .filter(|s| *s > 0.0)
        .map(|s| (s, ScaleKind::SeasonalNaive));
    let naive = || {
        mean_abs_difference(training, 1)
            .filter(|s| *s > 0.0)
            .map(|s| (s, ScaleKind::Naive))
    };
    seasonal.or_else(naive).unwrap_or((1.0, ScaleKind::Unit))
}

/// `200/H · Σ |y − ŷ| / (|y| + |ŷ|)`, a `0/0` term (both zero: a perfect forecast) counting 0.
fn smape(actual: &[f64], predicted: &[f64]) -> f64 {
    assert_eq!(actual.len(), predicted.len(), "one forecast per actual");
    let total: f64 = actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| {
            let denominator = a.abs() + p.abs();
            if denominator == 0.0 {
                0.0
            } else {
                (a - p).abs() / denominator
            }
        })
        .sum();
    200.0 * total / actual.len() as f64
}

/// How many trailing points a backtest holds out: `⌊n/5⌋`, at most the season length and
/// [`MAX_HORIZON`], at least 1.
pub fn holdout_length(series: &Series) -> usize {
    let fifth = series.len() / 5;
    let capped = series.season_length().map_or(fifth, |m| fifth.min(m));
    capped.clamp(1, MAX_HORIZON)
}

/// Fits `method` on all but the last `holdout` points and scores its forecast of them.
pub fn backtest(
    series: &Series,
    method: &Method,
    holdout: Horizon,
) -> Result<Score, ForecastError> {
    let n = series.len();
    let holdout = holdout.get();
    if n <= holdout {
        return Err(ForecastError::TooShortForBacktest {
            holdout,
            needed: holdout + 1,
            actual: n,
        });
    }
    let training = series.head(n - holdout);
    let predicted = fit(&training, method)?.points(holdout);
    Score::compute(
        training.values(),
        series.season_length(),
        &series.values()[n - holdout..],
        &predicted,
    )
}

/// The four self-compete strategies, in tie-break order.
///
/// | strategy | method | grid |
/// |---|---|---|
/// | aggressive | Holt, undamped: follows level and trend changes fast | α 0.5..=1.0 (6), β 0.3..=1.0 (8) |
/// | conservative | simple exponential smoothing, low α: a slowly moving flat line | α 0.05..=0.30 (6) |
/// | balanced | damped trend (Gardner & McKenzie): a trend that flattens out | α 0.1..=1.0 (10), β 0.1..=1.0 (10), φ 0.80..=0.98 (10) |
/// | experimental | additive Holt-Winters when the series has a season and the fitting part holds two full seasons; drift otherwise | α 0.1..=0.9 (9), β 0.0..=0.5 (6), γ 0.0..=0.5 (6), γ ≤ 1 − α |
///
/// The φ grid stops at 0.98, the customary upper bound, so that "balanced" always damps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Aggressive,
    Conservative,
    Balanced,
    Experimental,
}

impl Strategy {
    pub const ALL: [Self; 4] = [
        Self::Aggressive,
        Self::Conservative,
        Self::Balanced,
        Self::Experimental,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Aggressive => "aggressive",
            Self::Conservative => "conservative",
            Self::Balanced => "balanced",
            Self::Experimental => "experimental",
        }
    }

    /// The method this strategy uses on a fitting part of `observations` points.
    pub fn method(self, season_length: Option<usize>, observations: usize) -> Method {
        let grid = |min, max, points| Param::Grid { min, max, points };
        match self {
            Self::Aggressive => Method::Holt {
                alpha: grid(0.5, 1.0, 6),
                beta: grid(0.3, 1.0, 8),
            },
            Self::Conservative => Method::SimpleExponentialSmoothing {
                alpha: grid(0.05, 0.30, 6),
            },
            Self::Balanced => Method::DampedTrend {
                alpha: grid(0.1, 1.0, 10),
                beta: grid(0.1, 1.0, 10),
                phi: grid(0.80, 0.98, 10),
            },
            Self::Experimental => match season_length {
                Some(m) if observations >= 2 * m => Method::HoltWintersAdditive {
                    alpha: grid(0.1, 0.9, 9),
                    beta: grid(0.0, 0.5, 6),
                    gamma: grid(0.0, 0.5, 6),
                },
                _ => Method::Drift,
            },
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One strategy's result in a tournament.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub strategy: Strategy,
    pub method: MethodKind,
    /// The backtest on the held-out tail (parameters fitted on the rest).
    pub backtest: Score,
    /// Parameters refitted on the whole series, used for `forecast`.
    pub params: Params,
    /// The forecast beyond the end of the series.
    pub forecast: Forecast,
}

/// The outcome of [`compete`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tournament {
    /// Points held out for the backtest ([`holdout_length`]).
    pub holdout: usize,
    pub horizon: usize,
    /// One entry per strategy, in [`Strategy::ALL`] order.
    pub entries: Vec<Entry>,
    /// Best first: by backtest MASE, then sMAPE, then [`Strategy::ALL`] order.
    pub ranking: Vec<Strategy>,
    pub champion: Strategy,
}

impl Tournament {
    pub fn entry(&self, strategy: Strategy) -> &Entry {
        self.entries
            .iter()
            .find(|e| e.strategy == strategy)
            .expect("a tournament has an entry per strategy")
    }
}

/// Runs the four strategies: each is backtested on the last [`holdout_length`] points and, refitted
/// on the whole series, forecasts `horizon` steps at the [`Level::DEFAULT`] level.
pub fn compete(series: &Series, horizon: usize) -> Result<Tournament, ForecastError> {
    compete_at_level(series, Horizon::parse(horizon)?, Level::DEFAULT)
}

/// [`compete`] with a chosen horizon and interval level.
pub fn compete_at_level(
    series: &Series,
    horizon: Horizon,
    level: Level,
) -> Result<Tournament, ForecastError> {
    let n = series.len();
    if n < MIN_TOURNAMENT_OBSERVATIONS {
        return Err(ForecastError::TooShortForTournament {
            needed: MIN_TOURNAMENT_OBSERVATIONS,
            actual: n,
        });
    }
    let holdout = holdout_length(series);
    let fitting_points = n - holdout;
    let entries = Strategy::ALL
        .into_iter()
        .map(|strategy| {
            let method = strategy.method(series.season_length(), fitting_points);
            let backtest = backtest(series, &method, Horizon::parse(holdout)?)?;
            let model = fit(series, &method)?;
            Ok(Entry {
                strategy,
                method: method.kind(),
                backtest,
                params: model.params(),
                forecast: model.forecast(horizon, level)?,
            })
        })
        .collect::<Result<Vec<_>, ForecastError>>()?;
    let ranking = rank(&entries);
    Ok(Tournament {
        holdout,
        horizon: horizon.get(),
        champion: ranking[0],
        ranking,
        entries,
    })
}

/// Best first: MASE, then sMAPE, then strategy order.
fn rank(entries: &[Entry]) -> Vec<Strategy> {
    let mut ranked: Vec<&Entry> = entries.iter().collect();
    ranked.sort_by(|a, b| {
        a.backtest
            .mase
            .total_cmp(&b.backtest.mase)
            .then(a.backtest.smape.total_cmp(&b.backtest.smape))
            .then(a.strategy.cmp(&b.strategy))
    });
    ranked.into_iter().map(|e| e.strategy).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-6;

    fn series(values: Vec<f64>, season: Option<usize>) -> Series {
        Series::parse(values, season).expect("a valid series")
    }

    fn constant(n: usize) -> Series {
        series(vec![7.5; n], None)
    }

    fn line(n: usize) -> Series {
        series((1..=n).map(|t| 3.0 + 2.0 * t as f64).collect(), None)
    }

    /// A period-12 pattern summing to zero over a season.
    const PATTERN: [f64; 12] = [
        5.0, 8.0, 3.0, -2.0, -6.0, -9.0, -4.0, 1.0, 6.0, 2.0, -1.0, -3.0,
    ];

    fn seasonal(n: usize, slope: f64) -> Series {
        series(
            (1..=n)
                .map(|t| 40.0 + slope * t as f64 + PATTERN[(t - 1) % 12])
                .collect(),
            Some(12),
        )
    }

    /// Knuth's MMIX LCG, top 53 bits as a uniform in [0, 1).
    fn lcg_noise(n: usize) -> Vec<f64> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 11) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }

    fn noisy(n: usize) -> Series {
        let values = lcg_noise(n)
            .into_iter()
            .enumerate()
            .map(|(i, u)| {
                let t = i as f64;
                50.0 + 0.3 * t
                    + 4.0 * (2.0 * std::f64::consts::PI * t / 12.0).sin()
                    + 6.0 * (u - 0.5)
            })
            .collect();
        series(values, Some(12))
    }

    fn fixed_methods() -> Vec<Method> {
        vec![
            Method::SimpleExponentialSmoothing {
                alpha: Param::Fixed(0.4),
            },
            Method::Holt {
                alpha: Param::Fixed(0.6),
                beta: Param::Fixed(0.2),
            },
            Method::DampedTrend {
                alpha: Param::Fixed(0.6),
                beta: Param::Fixed(0.2),
                phi: Param::Fixed(0.9),
            },
            Method::HoltWintersAdditive {
                alpha: Param::Fixed(0.3),
                beta: Param::Fixed(0.1),
                gamma: Param::Fixed(0.2),
            },
            Method::SeasonalNaive,
            Method::Drift,
        ]
    }

    fn all_methods() -> Vec<Method> {
        let mut methods = fixed_methods();
        methods.extend(Strategy::ALL.map(|s| s.method(Some(12), 1_000)));
        methods
    }

    fn h(steps: usize) -> Horizon {
        Horizon::parse(steps).expect("a valid horizon")
    }

    fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!((a - e).abs() <= tol, "step {}: {a} vs {e}", i + 1);
        }
    }

    // --- validation -------------------------------------------------------------------------

    #[test]
    fn series_rejects_bad_input() {
        assert_eq!(Series::parse(vec![], None), Err(ForecastError::EmptySeries));
        assert_eq!(
            Series::parse(vec![1.0; MAX_OBSERVATIONS + 1], None),
            Err(ForecastError::TooManyObservations {
                actual: MAX_OBSERVATIONS + 1,
                max: MAX_OBSERVATIONS
            })
        );
        assert_eq!(
            Series::parse(vec![1.0, f64::NAN], None),
            Err(ForecastError::NonFiniteObservation { index: 1 })
        );
        assert_eq!(
            Series::parse(vec![f64::NEG_INFINITY], None),
            Err(ForecastError::NonFiniteObservation { index: 0 })
        );
        for bad in [0, 1, 367] {
            assert_eq!(
                Series::parse(vec![1.0], Some(bad)),
                Err(ForecastError::SeasonLengthOutOfRange { season_length: bad })
            );
        }
    }

    #[test]
    fn series_accepts_the_bounds() {
        assert_eq!(Series::parse(vec![1.0], None).map(|s| s.len()), Ok(1));
        assert!(Series::parse(vec![0.0; MAX_OBSERVATIONS], Some(2)).is_ok());
        let s = series(vec![1.0, 2.0], Some(366));
        assert_eq!(s.season_length(), Some(366));
        assert_eq!(s.values(), &[1.0, 2.0]);
        assert!(!s.is_empty());
    }

    #[test]
    fn horizon_and_level_bounds() {
        assert_eq!(Horizon::parse(0), Err(ForecastError::HorizonZero));
        assert_eq!(
            Horizon::parse(MAX_HORIZON + 1),
            Err(ForecastError::HorizonTooLong { horizon: 1_001 })
        );
        assert_eq!(Horizon::parse(MAX_HORIZON).map(Horizon::get), Ok(1_000));
        for bad in [49.9, 99.5, 0.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Level::parse(bad),
                Err(ForecastError::LevelOutOfRange { .. })
            ));
        }
        assert!(Level::parse(50.0).is_ok() && Level::parse(99.0).is_ok());
    }

    #[test]
    fn z_matches_the_normal_table() {
        for (percent, z) in [
            (95.0, 1.959_964),
            (50.0, 0.674_490),
            (80.0, 1.281_552),
            (90.0, 1.644_854),
            (99.0, 2.575_829),
            (97.5, 2.241_403),
        ] {
            let got = Level::parse(percent).unwrap().z();
            assert!((got - z).abs() < 1e-6, "{percent}%: {got}");
            assert!(got > 0.0);
        }
        assert_eq!(Level::DEFAULT.percent(), 95.0);
    }

    #[test]
    fn parameters_are_checked() {
        let s = line(10);
        let ses = |alpha| Method::SimpleExponentialSmoothing { alpha };
        assert_eq!(
            fit(&s, &ses(Param::Fixed(1.5))),
            Err(ForecastError::ParameterOutOfRange {
                parameter: Parameter::Alpha,
                value: 1.5
            })
        );
        assert!(matches!(
            fit(&s, &ses(Param::Fixed(f64::NAN))),
            Err(ForecastError::ParameterOutOfRange { .. })
        ));
        let damped = |phi| Method::DampedTrend {
            alpha: Param::Fixed(0.5),
            beta: Param::Fixed(0.5),
            phi,
        };
        assert_eq!(
            fit(&s, &damped(Param::Fixed(0.0))),
            Err(ForecastError::ParameterOutOfRange {
                parameter: Parameter::Phi,
                value: 0.0
            })
        );
        for points in [0, MAX_GRID_POINTS + 1] {
            assert_eq!(
                fit(
                    &s,
                    &ses(Param::Grid {
                        min: 0.1,
                        max: 0.9,
                        points
                    })
                ),
                Err(ForecastError::GridPointsOutOfRange {
                    parameter: Parameter::Alpha,
                    points
                })
            );
        }
        assert!(matches!(
            fit(
                &s,
                &ses(Param::Grid {
                    min: 0.9,
                    max: 0.1,
                    points: 3
                })
            ),
            Err(ForecastError::GridBoundsReversed { .. })
        ));
        let hw = Method::HoltWintersAdditive {
            alpha: Param::Fixed(0.8),
            beta: Param::Fixed(0.1),
            gamma: Param::Fixed(0.5),
        };
        assert_eq!(
            fit(&seasonal(48, 0.0), &hw),
            Err(ForecastError::NoAdmissibleParameters {
                method: MethodKind::HoltWintersAdditive
            })
        );
    }

    #[test]
    fn methods_need_enough_data_and_a_season() {
        let holt = Method::Holt {
            alpha: Param::Fixed(0.5),
            beta: Param::Fixed(0.5),
        };
        assert_eq!(
            fit(&line(2), &holt),
            Err(ForecastError::TooShortForMethod {
                method: MethodKind::Holt,
                needed: 3,
                actual: 2
            })
        );
        assert_eq!(
            fit(&line(20), &Method::SeasonalNaive),
            Err(ForecastError::SeasonLengthRequired {
                method: MethodKind::SeasonalNaive
            })
        );
        let hw = fixed_methods()[3];
        assert_eq!(
            fit(&seasonal(23, 0.0), &hw),
            Err(ForecastError::TooShortForMethod {
                method: MethodKind::HoltWintersAdditive,
                needed: 24,
                actual: 23
            })
        );
        assert_eq!(
            fit(&series(vec![1.0], None), &Method::Drift),
            Err(ForecastError::TooShortForMethod {
                method: MethodKind::Drift,
                needed: 2,
                actual: 1
            })
        );
        assert_eq!(
            backtest(&line(3), &Method::Drift, h(3)),
            Err(ForecastError::TooShortForBacktest {
                holdout: 3,
                needed: 4,
                actual: 3
            })
        );
        assert_eq!(
            compete(&line(3), 5),
            Err(ForecastError::TooShortForTournament {
                needed: 4,
                actual: 3
            })
        );
        assert_eq!(compete(&line(30), 0), Err(ForecastError::HorizonZero));
        assert!(!ForecastError::HorizonZero.is_retryable());
    }

    #[test]
    fn overflow_is_an_error_not_a_nan() {
        let wild = series(vec![1e308, -1e308, 1e308, -1e308], None);
        assert_eq!(
            fit(&wild, &Strategy::Aggressive.method(None, 4)),
            Err(ForecastError::NumericalOverflow)
        );
        assert_eq!(
            forecast(&wild, &Method::Drift, h(1), Level::DEFAULT),
            Err(ForecastError::NumericalOverflow)
        );
    }

    // --- methods on known answers -----------------------------------------------------------

    #[test]
    fn constant_series_gives_a_flat_forecast_with_zero_width() {
        let s = series(vec![7.5; 36], Some(12));
        for method in all_methods() {
            let f = forecast(&s, &method, h(15), Level::DEFAULT).unwrap();
            assert_close(&f.point, &[7.5; 15], 1e-9);
            for (lo, hi) in f.lower.iter().zip(&f.upper) {
                assert!(hi - lo <= 1e-9, "{:?}: width {}", method.kind(), hi - lo);
            }
        }
    }

    #[test]
    fn ses_by_hand() {
        // ℓ1 = 1; e2 = 1, ℓ2 = 1.5; e3 = 1.5, ℓ3 = 2.25. SSE = 3.25 over 2 residuals.
        let s = series(vec![1.0, 2.0, 3.0], None);
        let model = fit(
            &s,
            &Method::SimpleExponentialSmoothing {
                alpha: Param::Fixed(0.5),
            },
        )
        .unwrap();
        assert_eq!(model.sse(), 3.25);
        let sigma = 1.625f64.sqrt();
        assert!((model.residual_sd() - sigma).abs() < 1e-12);
        let f = model.forecast(h(2), Level::DEFAULT).unwrap();
        assert_close(&f.point, &[2.25, 2.25], 1e-12);
        // v_1 = 1, v_2 = 1 + α² = 1.25.
        let z = Level::DEFAULT.z();
        assert_close(
            &f.upper,
            &[2.25 + z * sigma, 2.25 + z * sigma * 1.25f64.sqrt()],
            1e-12,
        );
        assert_eq!(f.level, 95.0);
    }

    #[test]
    fn holt_forecasts_a_line_exactly() {
        let s = line(40);
        let future: Vec<f64> = (41..=52).map(|t| 3.0 + 2.0 * t as f64).collect();
        for method in [
            Method::Holt {
                alpha: Param::Fixed(0.3),
                beta: Param::Fixed(0.1),
            },
            Strategy::Aggressive.method(None, 40),
            Method::DampedTrend {
                alpha: Param::Fixed(0.5),
                beta: Param::Fixed(0.5),
                phi: Param::Fixed(1.0),
            },
            Method::Drift,
        ] {
            let f = forecast(&s, &method, h(12), Level::DEFAULT).unwrap();
            assert_close(&f.point, &future, TOL);
        }
    }

    #[test]
    fn grid_ties_keep_the_first_combination() {
        // Every (α, β) fits a line exactly: the first grid point of each wins.
        let model = fit(&line(20), &Strategy::Aggressive.method(None, 20)).unwrap();
        assert_eq!(model.sse(), 0.0);
        assert_eq!(
            model.params(),
            Params {
                alpha: Some(0.5),
                beta: Some(0.3),
                gamma: None,
                phi: None
            }
        );
    }

    #[test]
    fn grid_search_finds_the_least_sse() {
        let s = noisy(60);
        let grid = Param::Grid {
            min: 0.0,
            max: 1.0,
            points: 11,
        };
        let best = fit(&s, &Method::SimpleExponentialSmoothing { alpha: grid }).unwrap();
        for i in 0..=10 {
            let alpha = i as f64 / 10.0;
            let fixed = fit(
                &s,
                &Method::SimpleExponentialSmoothing {
                    alpha: Param::Fixed(alpha),
                },
            )
            .unwrap();
            assert!(best.sse() <= fixed.sse());
        }
        assert_eq!(best.kind(), MethodKind::SimpleExponentialSmoothing);
    }

    #[test]
    fn damped_trend_by_hand() {
        // ℓ2 = 2, b2 = 2 − 1 = 1; y3 = 3: ŷ = 2 + 0.5·1 = 2.5, e = 0.5;
        // α = 1 → ℓ3 = 3; β = 1 → b3 = ℓ3 − ℓ2 = 1.
        let s = series(vec![1.0, 2.0, 3.0], None);
        let model = fit(
            &s,
            &Method::DampedTrend {
                alpha: Param::Fixed(1.0),
                beta: Param::Fixed(1.0),
                phi: Param::Fixed(0.5),
            },
        )
        .unwrap();
        assert_eq!(model.sse(), 0.25);
        // ŷ_h = 3 + 1·(0.5 + 0.25 + …).
        let f = model.forecast(h(3), Level::DEFAULT).unwrap();
        assert_close(&f.point, &[3.5, 3.75, 3.875], 1e-12);
        // c_j = α + αβ·φ_j: c_1 = 1.5, c_2 = 1.75 → v = 1, 3.25, 6.3125; σ̂ = 0.5.
        let z = Level::DEFAULT.z();
        let widths: Vec<f64> = [1.0f64, 3.25, 6.3125]
            .iter()
            .map(|v| 2.0 * z * 0.5 * v.sqrt())
            .collect();
        let got: Vec<f64> = f.upper.iter().zip(&f.lower).map(|(u, l)| u - l).collect();
        assert_close(&got, &widths, 1e-9);
    }

    #[test]
    fn holt_winters_and_seasonal_naive_reproduce_a_pure_season() {
        let s = seasonal(96, 0.0);
        let future: Vec<f64> = (97..=120).map(|t| 40.0 + PATTERN[(t - 1) % 12]).collect();
        for method in [
            fixed_methods()[3],
            Strategy::Experimental.method(Some(12), 96),
            Method::SeasonalNaive,
        ] {
            let f = forecast(&s, &method, h(24), Level::DEFAULT).unwrap();
            assert_close(&f.point, &future, 1e-9);
        }
    }

    #[test]
    fn holt_winters_reproduces_trend_plus_season() {
        let s = seasonal(60, 0.7);
        let future: Vec<f64> = (61..=84)
            .map(|t| 40.0 + 0.7 * t as f64 + PATTERN[(t - 1) % 12])
            .collect();
        let model = fit(&s, &fixed_methods()[3]).unwrap();
        assert!(model.sse() < 1e-12, "sse {}", model.sse());
        let f = model.forecast(h(24), Level::DEFAULT).unwrap();
        assert_close(&f.point, &future, TOL);
    }

    #[test]
    fn seasonal_naive_and_drift_intervals_by_hand() {
        // Seasonal naive m = 2 on 1, 2, 2, 4: residuals 1, 2, σ̂² = 2.5; v_h = ⌊(h−1)/2⌋ + 1.
        let s = series(vec![1.0, 2.0, 2.0, 4.0], Some(2));
        let f = forecast(&s, &Method::SeasonalNaive, h(3), Level::DEFAULT).unwrap();
        assert_close(&f.point, &[2.0, 4.0, 2.0], 0.0);
        let z = Level::DEFAULT.z();
        let sigma = 2.5f64.sqrt();
        assert_close(
            &f.upper,
            &[
                2.0 + z * sigma,
                4.0 + z * sigma,
                2.0 + z * sigma * 2f64.sqrt(),
            ],
            1e-12,
        );
        // Drift on 1, 2, 2, 4: c = 1, residuals 0, −1, 1, σ̂² = 2/3; v_h = h(1 + h/4).
        let f = forecast(&s, &Method::Drift, h(2), Level::DEFAULT).unwrap();
        assert_close(&f.point, &[5.0, 6.0], 1e-12);
        let sigma = (2.0f64 / 3.0).sqrt();
        assert_close(
            &f.lower,
            &[
                5.0 - z * sigma * 1.25f64.sqrt(),
                6.0 - z * sigma * 3f64.sqrt(),
            ],
            1e-12,
        );
    }

    #[test]
    fn intervals_are_sane_on_pseudo_noise() {
        let s = noisy(240);
        for level in [50.0, 80.0, 95.0, 99.0] {
            let level = Level::parse(level).unwrap();
            for method in all_methods() {
                let f = forecast(&s, &method, h(36), level).unwrap();
                let widths: Vec<f64> = f.upper.iter().zip(&f.lower).map(|(u, l)| u - l).collect();
                for ((lo, p), (hi, w)) in f
                    .lower
                    .iter()
                    .zip(&f.point)
                    .zip(f.upper.iter().zip(&widths))
                {
                    assert!(lo <= p && p <= hi);
                    assert!(*w > 0.0, "{:?}", method.kind());
                }
                // Non-decreasing up to the rounding of point ± half-width.
                assert!(
                    widths.windows(2).all(|w| w[1] >= w[0] * (1.0 - 1e-12)),
                    "{:?}: {widths:?}",
                    method.kind()
                );
            }
        }
        // A wider level gives a wider interval.
        let narrow = forecast(&s, &Method::Drift, h(5), Level::parse(50.0).unwrap()).unwrap();
        let wide = forecast(&s, &Method::Drift, h(5), Level::parse(99.0).unwrap()).unwrap();
        assert!(wide.upper[4] - wide.lower[4] > narrow.upper[4] - narrow.lower[4]);
    }

    // --- scores -----------------------------------------------------------------------------

    #[test]
    fn mase_and_smape_by_hand() {
        // Errors 1, 0, 1 → MAE 2/3; naive in-sample MAE of 1, 3, 2, 4 = (2 + 1 + 2)/3 = 5/3.
        // sMAPE = 200/3 · (1/3 + 0 + 1/5) = 1600/45.
        let score = Score::compute(
            &[1.0, 3.0, 2.0, 4.0],
            None,
            &[1.0, 2.0, 3.0],
            &[2.0, 2.0, 2.0],
        )
        .unwrap();
        assert!((score.mae - 2.0 / 3.0).abs() < 1e-12);
        assert!((score.scale - 5.0 / 3.0).abs() < 1e-12);
        assert_eq!(score.scale_kind, ScaleKind::Naive);
        assert!((score.mase - 0.4).abs() < 1e-12);
        assert!((score.smape - 1600.0 / 45.0).abs() < 1e-12);
    }

    #[test]
    fn smape_guards_zero_over_zero() {
        assert_eq!(smape(&[0.0, 1.0], &[0.0, 1.0]), 0.0);
        assert_eq!(smape(&[0.0], &[1.0]), 200.0);
        assert_eq!(smape(&[-2.0], &[2.0]), 200.0);
        assert_eq!(smape(&[0.0, 0.0], &[0.0, 4.0]), 100.0);
    }

    #[test]
    fn mase_scale_falls_back() {
        // Seasonal: lag-2 differences of 1, 5, 2, 7 are 1, 2 → 1.5.
        assert_eq!(
            mase_scale(&[1.0, 5.0, 2.0, 7.0], Some(2)),
            (1.5, ScaleKind::SeasonalNaive)
        );
        // Too short for the season: naive.
        assert_eq!(mase_scale(&[1.0, 5.0], Some(2)), (4.0, ScaleKind::Naive));
        // Perfectly periodic: the seasonal MAE is zero, naive it is.
        assert_eq!(
            mase_scale(&[1.0, 3.0, 1.0, 3.0], Some(2)),
            (2.0, ScaleKind::Naive)
        );
        // Constant, or a single point: unit scale, MASE = MAE.
        assert_eq!(
            mase_scale(&[4.0, 4.0, 4.0], Some(2)),
            (1.0, ScaleKind::Unit)
        );
        assert_eq!(mase_scale(&[4.0], None), (1.0, ScaleKind::Unit));
        let score = Score::compute(&[4.0, 4.0], None, &[5.0], &[4.0]).unwrap();
        assert_eq!((score.mase, score.mae), (1.0, 1.0));
    }

    #[test]
    fn holdout_length_rule() {
        assert_eq!(holdout_length(&seasonal(96, 0.0)), 12);
        assert_eq!(holdout_length(&line(100)), 20);
        assert_eq!(holdout_length(&line(4)), 1);
        assert_eq!(holdout_length(&series(vec![1.0; 30], Some(2))), 2);
        assert_eq!(holdout_length(&constant(MAX_OBSERVATIONS)), MAX_HORIZON);
    }

    #[test]
    fn backtest_scores_the_tail() {
        // Drift on a line is exact: MASE 0, sMAPE 0.
        let score = backtest(&line(30), &Method::Drift, h(6)).unwrap();
        assert!(score.mase.abs() < 1e-12 && score.smape.abs() < 1e-12);
        // SES with α = 1 forecasts the last training value: 3 + 2·24 = 51 for 53, 55, …, 63.
        let score = backtest(
            &line(30),
            &Method::SimpleExponentialSmoothing {
                alpha: Param::Fixed(1.0),
            },
            h(6),
        )
        .unwrap();
        assert!((score.mae - 7.0).abs() < 1e-9);
        assert!((score.mase - 3.5).abs() < 1e-9);
        assert_eq!(score.scale_kind, ScaleKind::Naive);
    }

    // --- tournament -------------------------------------------------------------------------

    #[test]
    fn trend_favours_aggressive_and_balanced_over_conservative() {
        let t = compete(&line(50), 10).unwrap();
        let mase = |s| t.entry(s).backtest.mase;
        assert!(mase(Strategy::Aggressive) < TOL);
        assert!(mase(Strategy::Aggressive) < mase(Strategy::Conservative));
        assert!(mase(Strategy::Balanced) < mase(Strategy::Conservative));
        assert_eq!(t.entry(Strategy::Experimental).method, MethodKind::Drift);
        assert_ne!(t.champion, Strategy::Conservative);
        let future: Vec<f64> = (51..=60).map(|t| 3.0 + 2.0 * t as f64).collect();
        assert_close(&t.entry(Strategy::Aggressive).forecast.point, &future, TOL);
        assert_eq!((t.holdout, t.horizon), (10, 10));
    }

    #[test]
    fn pure_season_crowns_experimental() {
        let t = compete(&seasonal(96, 0.0), 24).unwrap();
        assert_eq!(t.champion, Strategy::Experimental);
        assert_eq!(t.ranking[0], Strategy::Experimental);
        let entry = t.entry(Strategy::Experimental);
        assert_eq!(entry.method, MethodKind::HoltWintersAdditive);
        assert!(entry.backtest.mase < 1e-9, "{}", entry.backtest.mase);
        assert!(entry.params.gamma.is_some() && entry.params.phi.is_none());
        assert_eq!(entry.forecast.point.len(), 24);
        for s in [
            Strategy::Aggressive,
            Strategy::Conservative,
            Strategy::Balanced,
        ] {
            assert!(t.entry(s).backtest.mase > 0.1);
        }
    }

    #[test]
    fn experimental_falls_back_to_drift_on_short_seasonal_history() {
        // 30 points, season 12: the 24-point fitting part holds two seasons → Holt-Winters;
        // with 28 points the 23-point fitting part does not → drift.
        let t = compete(&seasonal(30, 0.0), 3).unwrap();
        assert_eq!(
            t.entry(Strategy::Experimental).method,
            MethodKind::HoltWintersAdditive
        );
        let t = compete(&seasonal(28, 0.0), 3).unwrap();
        assert_eq!(t.holdout, 5);
        assert_eq!(t.entry(Strategy::Experimental).method, MethodKind::Drift);
    }

    #[test]
    fn ties_fall_back_to_strategy_order() {
        // A constant series: every strategy is exact, MASE and sMAPE are all 0.
        let t = compete(&constant(20), 4).unwrap();
        assert_eq!(t.ranking, Strategy::ALL.to_vec());
        assert_eq!(t.champion, Strategy::Aggressive);
        // sMAPE breaks a MASE tie before strategy order does.
        let entry = |strategy, mase, smape| Entry {
            strategy,
            method: MethodKind::Drift,
            backtest: Score {
                mase,
                smape,
                mae: 0.0,
                scale: 1.0,
                scale_kind: ScaleKind::Unit,
            },
            params: Params::default(),
            forecast: Forecast {
                point: vec![],
                lower: vec![],
                upper: vec![],
                level: 95.0,
            },
        };
        let entries = [
            entry(Strategy::Aggressive, 1.0, 9.0),
            entry(Strategy::Conservative, 0.5, 3.0),
            entry(Strategy::Balanced, 1.0, 2.0),
            entry(Strategy::Experimental, 0.5, 3.0),
        ];
        assert_eq!(
            rank(&entries),
            vec![
                Strategy::Conservative,
                Strategy::Experimental,
                Strategy::Balanced,
                Strategy::Aggressive
            ]
        );
    }

    #[test]
    fn tournament_on_pseudo_noise_is_sane_and_deterministic() {
        let s = noisy(180);
        let first = compete(&s, 18).unwrap();
        let second = compete(&s.clone(), 18).unwrap();
        assert_eq!(first, second);
        let bits = |t: &Tournament| -> Vec<u64> {
            t.entries
                .iter()
                .flat_map(|e| e.forecast.point.iter().chain(&e.forecast.upper))
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&first), bits(&second));
        assert_eq!(first.entries.len(), 4);
        for (entry, strategy) in first.entries.iter().zip(Strategy::ALL) {
            assert_eq!(entry.strategy, strategy);
            assert!(entry.backtest.mase.is_finite() && entry.backtest.smape >= 0.0);
            let f = &entry.forecast;
            assert_eq!(f.point.len(), 18);
            assert!((0..18).all(|i| f.lower[i] <= f.point[i] && f.point[i] <= f.upper[i]));
        }
    }

    #[test]
    fn tournament_handles_the_largest_series() {
        let values: Vec<f64> = lcg_noise(MAX_OBSERVATIONS)
            .into_iter()
            .enumerate()
            .map(|(i, u)| 100.0 + PATTERN[i % 12] + 10.0 * u)
            .collect();
        let t = compete(&series(values, Some(12)), MAX_HORIZON).unwrap();
        assert_eq!(t.holdout, 12);
        assert!(t
            .entries
            .iter()
            .all(|e| e.forecast.point.len() == MAX_HORIZON));
    }

    #[test]
    fn strategies_serialise_by_name() {
        let json = serde_json::to_string(&Strategy::ALL).unwrap();
        assert_eq!(
            json,
            r#"["aggressive","conservative","balanced","experimental"]"#
        );
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names.join(","),
            "aggressive,conservative,balanced,experimental"
        );
        let t = compete(&line(20), 2).unwrap();
        let back: Tournament = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.champion, t.champion);
    }
}
