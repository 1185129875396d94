//! SLO error budgets and multi-window, multi-burn-rate alerts, after the
//! Google SRE workbook, chapter 5 "Alerting on SLOs".
//!
//! * An SLO is a target share of good events (e.g. 0.99) over a period
//!   (default [`DEFAULT_PERIOD_DAYS`] = 30 days). Its **error budget** is
//!   `1 − target` of the events.
//! * **Burn rate** of a window = error rate / (1 − target) =
//!   `bad / (total × (1 − target))`. Burn rate 1 spends exactly the budget
//!   over the period; a window with no events burns 0.
//! * **Alerts** fire when both a long and a short window burn at or above a
//!   threshold; the short window makes the alert reset soon after the
//!   problem stops. Defaults ([`DEFAULT_RULES`]): **page** when 1 h and 5 m
//!   both burn ≥ 14.4 (2 % of a 30-day budget in an hour), **ticket** when
//!   6 h and 30 m both burn ≥ 6 (5 % in six hours). The workbook's table
//!   pages on the 6 h rule too and adds a 3 d / 6 h ≥ 1 ticket; rules are
//!   data, so callers may use those.
//! * **Remaining budget** over the SLO period =
//!   `1 − bad / (total × (1 − target))`, clamped to `[0, 1]` (1 with no
//!   events); the budget is **exhausted** when that is ≤ 0.
//!
//! # Representation
//!
//! Targets have at most 6 decimals and are held as parts per million; burn
//! thresholds have at most 2 decimals and are held in hundredths. Rates are
//! therefore exact fractions of integers, and every decision (threshold
//! reached, budget exhausted) is an exact `u128` cross-multiplication that
//! cannot overflow for `u64` counts. Only the `Decimal` views
//! ([`BurnRate::to_decimal`], [`ErrorBudget::remaining`],
//! [`Slo::budget_consumed`]) round: half-even to [`DISPLAY_SCALE`] decimals,
//! once, from the exact fraction.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Parts per million: the scale of targets and error budgets.
const PPM: u128 = 1_000_000;

/// Hundredths: the scale of burn-rate thresholds.
const HUNDREDTHS: u128 = 100;

/// Minutes in a day.
const MINUTES_PER_DAY: u128 = 1_440;

/// Most decimal places of an [`SloTarget`] (`0.999999`).
pub const MAX_TARGET_SCALE: u32 = 6;

/// Most decimal places of a [`BurnThreshold`] (`14.4`).
pub const MAX_THRESHOLD_SCALE: u32 = 2;

/// Largest [`BurnThreshold`].
pub const MAX_BURN_THRESHOLD: u32 = 1_000;

/// The workbook's SLO period.
pub const DEFAULT_PERIOD_DAYS: u32 = 30;

/// Longest SLO period.
pub const MAX_PERIOD_DAYS: u32 = 366;

/// Decimal places of the rounded `Decimal` views of exact fractions.
pub const DISPLAY_SCALE: u32 = 6;

/// Why an SLO, a threshold or a count was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SloError {
    #[error("SLO target {value} is not strictly between 0 and 1")]
    TargetOutOfRange { value: Decimal },
    #[error("SLO target {value} has more than {MAX_TARGET_SCALE} decimal places")]
    TargetTooManyDecimals { value: Decimal },
    #[error("SLO period must be 1..={MAX_PERIOD_DAYS} days, got {days}")]
    PeriodOutOfRange { days: u32 },
    #[error("burn-rate threshold {value} is not in (0, {MAX_BURN_THRESHOLD}]")]
    ThresholdOutOfRange { value: Decimal },
    #[error("burn-rate threshold {value} has more than {MAX_THRESHOLD_SCALE} decimal places")]
    ThresholdTooManyDecimals { value: Decimal },
    #[error("{good} good events exceed {total} total events")]
    GoodExceedsTotal { good: u64, total: u64 },
}

impl SloError {
    /// These are about the input itself: retrying cannot help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::TargetOutOfRange { .. }
            | Self::TargetTooManyDecimals { .. }
            | Self::PeriodOutOfRange { .. }
            | Self::ThresholdOutOfRange { .. }
            | Self::ThresholdTooManyDecimals { .. }
            | Self::GoodExceedsTotal { .. } => false,
        }
    }
}

/// `value × 10^scale` as an integer, if `value` has at most `scale` decimals.
fn scaled_integer(value: Decimal, scale: u32) -> Option<u128> {
    let value = value.normalize();
    if value.scale() > scale || value.is_sign_negative() {
        return None;
    }
    let mantissa = u128::try_from(value.mantissa()).ok()?;
    mantissa.checked_mul(10u128.checked_pow(scale - value.scale())?)
}

/// `numerator / denominator` (denominator > 0) rounded half-even to
/// [`DISPLAY_SCALE`] decimals, exactly. Callers keep the quotient below
/// 10^15 and `numerator × 10^6` within `u128`.
fn ratio_to_decimal(numerator: u128, denominator: u128) -> Decimal {
    let scaled = numerator * 10u128.pow(DISPLAY_SCALE);
    let (quotient, remainder) = (scaled / denominator, scaled % denominator);
    let twice = remainder * 2;
    let round_up = twice > denominator || (twice == denominator && quotient % 2 == 1);
    let rounded = quotient + u128::from(round_up);
    let rounded = i128::try_from(rounded).expect("quotients here stay far below i128::MAX");
    Decimal::from_i128_with_scale(rounded, DISPLAY_SCALE)
}

/// Target share of good events, strictly between 0 and 1, at most
/// [`MAX_TARGET_SCALE`] decimals (0.99, 0.999, 0.9995).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct SloTarget {
    ppm: u32,
}

impl SloTarget {
    pub fn try_new(value: Decimal) -> Result<Self, SloError> {
        let value = value.normalize();
        if value <= Decimal::ZERO || value >= Decimal::ONE {
            return Err(SloError::TargetOutOfRange { value });
        }
        let ppm = scaled_integer(value, MAX_TARGET_SCALE)
            .and_then(|ppm| u32::try_from(ppm).ok())
            .ok_or(SloError::TargetTooManyDecimals { value })?;
        Ok(Self { ppm })
    }

    pub fn as_decimal(self) -> Decimal {
        Decimal::new(i64::from(self.ppm), MAX_TARGET_SCALE).normalize()
    }

    /// `1 − target`, in parts per million (at least 1).
    fn budget_ppm(self) -> u128 {
        PPM - u128::from(self.ppm)
    }
}

impl TryFrom<Decimal> for SloTarget {
    type Error = SloError;

    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Self::try_new(value)
    }
}

impl From<SloTarget> for Decimal {
    fn from(target: SloTarget) -> Decimal {
        target.as_decimal()
    }
}

/// A burn-rate threshold in (0, [`MAX_BURN_THRESHOLD`]], at most
/// [`MAX_THRESHOLD_SCALE`] decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct BurnThreshold {
    hundredths: u32,
}

impl BurnThreshold {
    /// The workbook's paging threshold: 2 % of a 30-day budget in one hour.
    pub const PAGE: BurnThreshold = BurnThreshold { hundredths: 1_440 };
    /// The ticket threshold: 5 % of a 30-day budget in six hours.
    pub const TICKET: BurnThreshold = BurnThreshold { hundredths: 600 };
    /// Spending the budget exactly over the period.
    pub const ONE: BurnThreshold = BurnThreshold { hundredths: 100 };

    pub fn try_new(value: Decimal) -> Result<Self, SloError> {
        let value = value.normalize();
        if value <= Decimal::ZERO || value > Decimal::from(MAX_BURN_THRESHOLD) {
            return Err(SloError::ThresholdOutOfRange { value });
        }
        let hundredths = scaled_integer(value, MAX_THRESHOLD_SCALE)
            .and_then(|h| u32::try_from(h).ok())
            .ok_or(SloError::ThresholdTooManyDecimals { value })?;
        Ok(Self { hundredths })
    }

    pub fn as_decimal(self) -> Decimal {
        Decimal::new(i64::from(self.hundredths), MAX_THRESHOLD_SCALE).normalize()
    }
}

impl TryFrom<Decimal> for BurnThreshold {
    type Error = SloError;

    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Self::try_new(value)
    }
}

impl From<BurnThreshold> for Decimal {
    fn from(threshold: BurnThreshold) -> Decimal {
        threshold.as_decimal()
    }
}

/// Good and total events of one window; `good ≤ total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventCounts {
    good: u64,
    total: u64,
}

impl EventCounts {
    pub fn try_new(good: u64, total: u64) -> Result<Self, SloError> {
        if good > total {
            return Err(SloError::GoodExceedsTotal { good, total });
        }
        Ok(Self { good, total })
    }

    pub fn good(self) -> u64 {
        self.good
    }

    pub fn total(self) -> u64 {
        self.total
    }

    pub fn bad(self) -> u64 {
        self.total - self.good
    }
}

/// An exact burn rate: `bad / (total × (1 − target))`, 0 without events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BurnRate {
    counts: EventCounts,
    target: SloTarget,
}

impl BurnRate {
    /// `bad × 10^6` over `total × budget_ppm`: the burn rate as a fraction.
    fn fraction(self) -> (u128, u128) {
        let bad = u128::from(self.counts.bad()) * PPM;
        let budget = u128::from(self.counts.total) * self.target.budget_ppm();
        (bad, budget)
    }

    /// Exactly: is this burn rate ≥ `threshold`? A window without events
    /// burns 0 and reaches no threshold.
    pub fn at_least(self, threshold: BurnThreshold) -> bool {
        let (bad, budget) = self.fraction();
        if budget == 0 {
            return false;
        }
        bad * HUNDREDTHS >= u128::from(threshold.hundredths) * budget
    }

    /// The burn rate rounded half-even to [`DISPLAY_SCALE`] decimals.
    pub fn to_decimal(self) -> Decimal {
        let (bad, budget) = self.fraction();
        if budget == 0 {
            return Decimal::ZERO;
        }
        ratio_to_decimal(bad, budget)
    }
}

/// What is left of the error budget over the SLO period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorBudget {
    burn: BurnRate,
}

impl ErrorBudget {
    /// `1 − bad / (total × (1 − target))`, clamped to `[0, 1]`, rounded
    /// half-even to [`DISPLAY_SCALE`] decimals; 1 without events.
    pub fn remaining(self) -> Decimal {
        let (bad, budget) = self.burn.fraction();
        if budget == 0 {
            return Decimal::ONE;
        }
        ratio_to_decimal(budget.saturating_sub(bad), budget)
    }

    /// Exactly: is the remaining budget ≤ 0 (all of it spent, or more)?
    pub fn budget_exhausted(self) -> bool {
        let (bad, budget) = self.burn.fraction();
        budget > 0 && bad >= budget
    }
}

/// The windows the alert rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertWindow {
    FiveMinutes,
    ThirtyMinutes,
    OneHour,
    SixHours,
}

impl AlertWindow {
    pub const fn minutes(self) -> u32 {
        match self {
            AlertWindow::FiveMinutes => 5,
            AlertWindow::ThirtyMinutes => 30,
            AlertWindow::OneHour => 60,
            AlertWindow::SixHours => 360,
        }
    }
}

/// Event counts of the trailing windows, as of one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub five_minutes: EventCounts,
    pub thirty_minutes: EventCounts,
    pub one_hour: EventCounts,
    pub six_hours: EventCounts,
}

impl WindowCounts {
    pub fn get(&self, window: AlertWindow) -> EventCounts {
        match window {
            AlertWindow::FiveMinutes => self.five_minutes,
            AlertWindow::ThirtyMinutes => self.thirty_minutes,
            AlertWindow::OneHour => self.one_hour,
            AlertWindow::SixHours => self.six_hours,
        }
    }
}

/// How loudly to alert; `Page > Ticket`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    Ticket,
    Page,
}

/// Fires when both windows burn at or above `threshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultiWindowRule {
    pub severity: AlertSeverity,
    pub long_window: AlertWindow,
    pub short_window: AlertWindow,
    pub threshold: BurnThreshold,
}

/// Page on 1 h and 5 m ≥ 14.4; ticket on 6 h and 30 m ≥ 6.
pub const DEFAULT_RULES: [MultiWindowRule; 2] = [
    MultiWindowRule {
        severity: AlertSeverity::Page,
        long_window: AlertWindow::OneHour,
        short_window: AlertWindow::FiveMinutes,
        threshold: BurnThreshold::PAGE,
    },
    MultiWindowRule {
        severity: AlertSeverity::Ticket,
        long_window: AlertWindow::SixHours,
        short_window: AlertWindow::ThirtyMinutes,
        threshold: BurnThreshold::TICKET,
    },
];

/// A service level objective: a target over a period of days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slo {
    target: SloTarget,
    period_days: u32,
}

impl Slo {
    pub fn try_new(target: SloTarget, period_days: u32) -> Result<Self, SloError> {
        if !(1..=MAX_PERIOD_DAYS).contains(&period_days) {
            return Err(SloError::PeriodOutOfRange { days: period_days });
        }
        Ok(Self {
            target,
            period_days,
        })
    }

    /// `target` over [`DEFAULT_PERIOD_DAYS`].
    pub fn over_default_period(target: SloTarget) -> Self {
        Self {
            target,
            period_days: DEFAULT_PERIOD_DAYS,
        }
    }

    pub fn target(&self) -> SloTarget {
        self.target
    }

    pub fn period_days(&self) -> u32 {
        self.period_days
    }

    pub fn burn_rate(&self, counts: EventCounts) -> BurnRate {
        BurnRate {
            counts,
            target: self.target,
        }
    }

    /// Both of the rule's windows burn at or above its threshold.
    pub fn rule_fires(&self, rule: &MultiWindowRule, counts: &WindowCounts) -> bool {
        let long = self.burn_rate(counts.get(rule.long_window));
        let short = self.burn_rate(counts.get(rule.short_window));
        long.at_least(rule.threshold) && short.at_least(rule.threshold)
    }

    /// The most severe of the firing `rules`, if any.
    pub fn alert(&self, rules: &[MultiWindowRule], counts: &WindowCounts) -> Option<AlertSeverity> {
        rules
            .iter()
            .filter(|rule| self.rule_fires(rule, counts))
            .map(|rule| rule.severity)
            .max()
    }

    /// [`Slo::alert`] with [`DEFAULT_RULES`].
    pub fn default_alert(&self, counts: &WindowCounts) -> Option<AlertSeverity> {
        self.alert(&DEFAULT_RULES, counts)
    }

    /// Error budget left, given the counts of the whole SLO period.
    pub fn error_budget(&self, period_counts: EventCounts) -> ErrorBudget {
        ErrorBudget {
            burn: self.burn_rate(period_counts),
        }
    }

    /// Share of the period's budget that burning at `threshold` for
    /// `window_minutes` spends: `threshold × window / period`, rounded
    /// half-even to [`DISPLAY_SCALE`] decimals (14.4 for 1 h of 30 d: 0.02).
    pub fn budget_consumed(&self, threshold: BurnThreshold, window_minutes: u32) -> Decimal {
        let numerator = u128::from(threshold.hundredths) * u128::from(window_minutes);
        let denominator = HUNDREDTHS * u128::from(self.period_days) * MINUTES_PER_DAY;
        ratio_to_decimal(numerator, denominator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().expect("valid decimal literal")
    }

    fn target(s: &str) -> SloTarget {
        SloTarget::try_new(dec(s)).expect("valid target")
    }

    fn counts(good: u64, total: u64) -> EventCounts {
        EventCounts::try_new(good, total).expect("good ≤ total")
    }

    fn bad_of(bad: u64, total: u64) -> EventCounts {
        counts(total - bad, total)
    }

    fn three_nines() -> Slo {
        Slo::over_default_period(target("0.999"))
    }

    fn two_nines() -> Slo {
        Slo::over_default_period(target("0.99"))
    }

    #[test]
    fn targets_are_strictly_between_zero_and_one_with_six_decimals_at_most() {
        assert_eq!(target("0.999").as_decimal(), dec("0.999"));
        assert_eq!(target("0.999999").as_decimal(), dec("0.999999"));
        for value in ["0", "1", "1.5", "-0.5"] {
            assert_eq!(
                SloTarget::try_new(dec(value)),
                Err(SloError::TargetOutOfRange {
                    value: dec(value).normalize()
                })
            );
        }
        assert_eq!(
            SloTarget::try_new(dec("0.9999999")),
            Err(SloError::TargetTooManyDecimals {
                value: dec("0.9999999")
            })
        );
    }

    #[test]
    fn thresholds_are_positive_with_two_decimals_at_most() {
        assert_eq!(BurnThreshold::try_new(dec("14.4")), Ok(BurnThreshold::PAGE));
        assert_eq!(BurnThreshold::try_new(dec("6")), Ok(BurnThreshold::TICKET));
        assert_eq!(BurnThreshold::PAGE.as_decimal(), dec("14.4"));
        assert_eq!(
            BurnThreshold::try_new(Decimal::ZERO),
            Err(SloError::ThresholdOutOfRange {
                value: Decimal::ZERO
            })
        );
        assert_eq!(
            BurnThreshold::try_new(dec("1000.01")),
            Err(SloError::ThresholdOutOfRange {
                value: dec("1000.01")
            })
        );
        assert_eq!(
            BurnThreshold::try_new(dec("14.401")),
            Err(SloError::ThresholdTooManyDecimals {
                value: dec("14.401")
            })
        );
    }

    #[test]
    fn periods_and_counts_are_validated() {
        assert_eq!(
            Slo::try_new(target("0.99"), 0),
            Err(SloError::PeriodOutOfRange { days: 0 })
        );
        assert_eq!(
            Slo::try_new(target("0.99"), 28).map(|slo| slo.period_days()),
            Ok(28)
        );
        assert_eq!(
            EventCounts::try_new(11, 10),
            Err(SloError::GoodExceedsTotal {
                good: 11,
                total: 10
            })
        );
        assert!(!SloError::GoodExceedsTotal {
            good: 11,
            total: 10
        }
        .is_retryable());
    }

    #[test]
    fn burn_rate_is_error_rate_over_the_error_budget() {
        // Workbook: for a 99.9 % SLO an error rate of 0.1 % burns at 1, and
        // an error rate of 1.44 % burns at 14.4.
        assert_eq!(
            three_nines().burn_rate(bad_of(1, 1_000)).to_decimal(),
            dec("1")
        );
        assert_eq!(
            three_nines().burn_rate(bad_of(144, 10_000)).to_decimal(),
            dec("14.4")
        );
        // For 99 % the budget is 1 %: 14.4 % errors burn at 14.4.
        assert_eq!(
            two_nines().burn_rate(bad_of(144, 1_000)).to_decimal(),
            dec("14.4")
        );
        // All bad at 99.9 %: 1 / 0.001 = 1000.
        assert_eq!(
            three_nines().burn_rate(bad_of(7, 7)).to_decimal(),
            dec("1000")
        );
    }

    #[test]
    fn burn_rate_display_rounds_half_even_once() {
        // 1 bad of 3 at 99 %: (1/3) / 0.01 = 33.333333…
        assert_eq!(
            two_nines().burn_rate(bad_of(1, 3)).to_decimal(),
            dec("33.333333")
        );
        // 2 bad of 3 at 99 %: 66.666666… rounds up.
        assert_eq!(
            two_nines().burn_rate(bad_of(2, 3)).to_decimal(),
            dec("66.666667")
        );
    }

    #[test]
    fn a_window_without_events_burns_nothing() {
        let idle = three_nines().burn_rate(EventCounts::default());
        assert_eq!(idle.to_decimal(), Decimal::ZERO);
        assert!(!idle.at_least(BurnThreshold::try_new(dec("0.01")).expect("valid")));
    }

    #[test]
    fn thresholds_compare_exactly_at_the_boundary() {
        let slo = three_nines();
        assert!(slo
            .burn_rate(bad_of(144, 10_000))
            .at_least(BurnThreshold::PAGE));
        assert!(!slo
            .burn_rate(bad_of(143, 10_000))
            .at_least(BurnThreshold::PAGE));
        // 14.39999… would display as 14.4 but does not reach it.
        let just_below = slo.burn_rate(bad_of(14_399_999, 1_000_000_000));
        assert_eq!(just_below.to_decimal(), dec("14.399999"));
        assert!(!just_below.at_least(BurnThreshold::PAGE));
    }

    #[test]
    fn workbook_budget_consumption_per_alert() {
        let slo = three_nines();
        // 14.4 for 1 h spends 2 % of a 30-day budget; 6 for 6 h spends 5 %;
        // 1 for 3 days spends 10 %.
        assert_eq!(slo.budget_consumed(BurnThreshold::PAGE, 60), dec("0.02"));
        assert_eq!(slo.budget_consumed(BurnThreshold::TICKET, 360), dec("0.05"));
        assert_eq!(
            slo.budget_consumed(BurnThreshold::ONE, 3 * 1_440),
            dec("0.1")
        );
    }

    fn quiet() -> WindowCounts {
        WindowCounts {
            five_minutes: bad_of(0, 1_000),
            thirty_minutes: bad_of(0, 6_000),
            one_hour: bad_of(0, 12_000),
            six_hours: bad_of(0, 72_000),
        }
    }

    #[test]
    fn given_a_fast_burn_in_both_short_windows_when_evaluated_then_it_pages() {
        // 1.5 % errors at 99.9 %: burn 15 in every window.
        let counts = WindowCounts {
            five_minutes: bad_of(15, 1_000),
            one_hour: bad_of(180, 12_000),
            ..quiet()
        };
        assert_eq!(
            three_nines().default_alert(&counts),
            Some(AlertSeverity::Page)
        );
    }

    #[test]
    fn given_a_fast_burn_that_stopped_when_evaluated_then_the_page_resets() {
        // The hour still burns at 15, but the last five minutes are clean.
        let counts = WindowCounts {
            one_hour: bad_of(180, 12_000),
            ..quiet()
        };
        assert_eq!(three_nines().default_alert(&counts), None);
    }

    #[test]
    fn given_a_short_spike_only_when_evaluated_then_nothing_fires() {
        // Five minutes at burn 100, but the hour averages below 14.4.
        let counts = WindowCounts {
            five_minutes: bad_of(100, 1_000),
            one_hour: bad_of(100, 12_000),
            ..quiet()
        };
        assert_eq!(three_nines().default_alert(&counts), None);
    }

    #[test]
    fn given_a_slow_burn_in_both_long_windows_when_evaluated_then_it_tickets() {
        // 0.7 % errors at 99.9 %: burn 7 ≥ 6, below 14.4.
        let counts = WindowCounts {
            thirty_minutes: bad_of(42, 6_000),
            six_hours: bad_of(504, 72_000),
            five_minutes: bad_of(7, 1_000),
            one_hour: bad_of(84, 12_000),
        };
        assert_eq!(
            three_nines().default_alert(&counts),
            Some(AlertSeverity::Ticket)
        );
    }

    #[test]
    fn given_both_rules_fire_when_evaluated_then_the_page_wins() {
        let counts = WindowCounts {
            five_minutes: bad_of(20, 1_000),
            thirty_minutes: bad_of(120, 6_000),
            one_hour: bad_of(240, 12_000),
            six_hours: bad_of(1_440, 72_000),
        };
        let slo = three_nines();
        assert!(DEFAULT_RULES
            .iter()
            .all(|rule| slo.rule_fires(rule, &counts)));
        assert_eq!(slo.default_alert(&counts), Some(AlertSeverity::Page));
    }

    #[test]
    fn custom_rules_are_data() {
        let workbook_page_on_six_hours = MultiWindowRule {
            severity: AlertSeverity::Page,
            ..DEFAULT_RULES[1]
        };
        let counts = WindowCounts {
            thirty_minutes: bad_of(42, 6_000),
            six_hours: bad_of(504, 72_000),
            ..quiet()
        };
        assert_eq!(
            three_nines().alert(&[workbook_page_on_six_hours], &counts),
            Some(AlertSeverity::Page)
        );
        assert_eq!(three_nines().alert(&[], &counts), None);
    }

    #[test]
    fn remaining_budget_is_the_unspent_share() {
        let slo = three_nines();
        // 1 000 000 events at 99.9 % allow 1 000 bad ones.
        let budget = slo.error_budget(bad_of(250, 1_000_000));
        assert_eq!(budget.remaining(), dec("0.75"));
        assert!(!budget.budget_exhausted());
        let untouched = slo.error_budget(bad_of(0, 1_000_000));
        assert_eq!(untouched.remaining(), Decimal::ONE);
    }

    #[test]
    fn spending_the_whole_budget_exhausts_it() {
        let slo = three_nines();
        let spent = slo.error_budget(bad_of(1_000, 1_000_000));
        assert_eq!(spent.remaining(), Decimal::ZERO);
        assert!(spent.budget_exhausted());
        let overspent = slo.error_budget(bad_of(1_500, 1_000_000));
        assert_eq!(overspent.remaining(), Decimal::ZERO);
        assert!(overspent.budget_exhausted());
        let one_short = slo.error_budget(bad_of(999, 1_000_000));
        assert_eq!(one_short.remaining(), dec("0.001"));
        assert!(!one_short.budget_exhausted());
    }

    #[test]
    fn a_period_without_events_keeps_the_whole_budget() {
        let budget = two_nines().error_budget(EventCounts::default());
        assert_eq!(budget.remaining(), Decimal::ONE);
        assert!(!budget.budget_exhausted());
    }

    #[test]
    fn the_largest_counts_do_not_overflow() {
        let slo = Slo::over_default_period(target("0.000001"));
        let all_bad = slo.burn_rate(bad_of(u64::MAX, u64::MAX));
        assert!(all_bad.at_least(BurnThreshold::ONE));
        assert_eq!(all_bad.to_decimal(), dec("1.000001"));
        let strict = Slo::over_default_period(target("0.999999"));
        let worst = strict.burn_rate(bad_of(u64::MAX, u64::MAX));
        assert_eq!(worst.to_decimal(), dec("1000000"));
        assert!(strict
            .error_budget(bad_of(u64::MAX, u64::MAX))
            .budget_exhausted());
    }

    #[test]
    fn targets_round_trip_through_serde_as_decimals() {
        let json = serde_json::to_string(&target("0.995")).expect("serializes");
        let back: SloTarget = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, target("0.995"));
        assert!(serde_json::from_str::<SloTarget>("\"1\"").is_err());
    }
}
