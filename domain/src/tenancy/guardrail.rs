//! The margin guardrail: refuse a request when the tenant's spend, projected
//! to the end of the billing month, would exceed a share of its MRR.
//!
//! # Method: linear run-rate
//!
//! ```text
//! spend     = month_to_date + request_cost
//! projected = spend × period_length / elapsed
//! limit     = threshold × MRR              (threshold in (0, 1], default 0.70)
//! reject  ⇔  projected > limit
//! ```
//!
//! `period_length / elapsed` is `days_in_month / elapsed_days`, measured in
//! whole seconds (sub-second parts of the instants are truncated), so a month
//! of 28, 29, 30 or 31 days and any hour of the day count exactly.
//!
//! * **Elapsed time is at least one day** ([`MIN_ELAPSED_SECONDS`]): in the
//!   first hours of a month a single request would otherwise be extrapolated
//!   by a factor of hundreds (a $2 request one hour in projects to $1 440 over
//!   30 days). With the floor, early spend projects as if it were one day's
//!   spend. `now` must lie inside the period, so `elapsed` never exceeds it.
//! * **Exact decision**: the comparison is `spend × period > limit × elapsed`
//!   on exact decimals, no division, no rounding.
//! * **Rounding, stated**: `limit` is `threshold × MRR` rounded toward zero to
//!   [`MAX_SCALE`] (8) decimals — exact for any MRR of at most 4 decimals,
//!   which includes every amount in cents, since the threshold has at most
//!   [`MAX_THRESHOLD_SCALE`] decimals. `projected` is reported rounded *up* to
//!   the cent, so a rejection always reports `projected > limit`.
//! * Projecting exactly onto the limit is allowed ("must not exceed").

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::money::{Money, Rounding, CENTS_SCALE, MAX_SCALE};

/// Elapsed time never counts as less than one day.
pub const MIN_ELAPSED_SECONDS: i64 = 86_400;

/// Shortest billing period: one day.
pub const MIN_PERIOD_SECONDS: i64 = MIN_ELAPSED_SECONDS;

/// Longest billing period: 31 days.
pub const MAX_PERIOD_SECONDS: i64 = 31 * 86_400;

/// Most decimal places of a [`MarginThreshold`] (`0.7125` is fine).
pub const MAX_THRESHOLD_SCALE: u32 = 4;

/// The seed's threshold: spend must not exceed 70 % of MRR.
pub const DEFAULT_MARGIN_THRESHOLD: Decimal = Decimal::from_parts(70, 0, 0, false, 2);

/// Why a margin threshold was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MarginThresholdError {
    #[error("margin threshold {value} is not in (0, 1]")]
    OutOfRange { value: Decimal },
    #[error("margin threshold {value} has more than {MAX_THRESHOLD_SCALE} decimal places")]
    TooManyDecimals { value: Decimal },
}

/// Share of MRR a tenant may spend in a month: in (0, 1], at most
/// [`MAX_THRESHOLD_SCALE`] decimals. Per tenant; defaults to 0.70.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct MarginThreshold(Decimal);

impl MarginThreshold {
    pub fn try_new(value: Decimal) -> Result<Self, MarginThresholdError> {
        let value = value.normalize();
        if value <= Decimal::ZERO || value > Decimal::ONE {
            return Err(MarginThresholdError::OutOfRange { value });
        }
        if value.scale() > MAX_THRESHOLD_SCALE {
            return Err(MarginThresholdError::TooManyDecimals { value });
        }
        Ok(Self(value))
    }

    pub fn as_decimal(self) -> Decimal {
        self.0
    }
}

impl Default for MarginThreshold {
    fn default() -> Self {
        Self(DEFAULT_MARGIN_THRESHOLD)
    }
}

impl TryFrom<Decimal> for MarginThreshold {
    type Error = MarginThresholdError;

    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Self::try_new(value)
    }
}

impl From<MarginThreshold> for Decimal {
    fn from(threshold: MarginThreshold) -> Decimal {
        threshold.0
    }
}

/// Why billing-period bounds were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BillingPeriodError {
    #[error("a billing period must last between one and 31 days")]
    LengthOutOfRange,
    #[error("the calendar month cannot be represented")]
    CalendarOutOfRange,
}

/// A billing period `[start, end)`, one to 31 days long (whole seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BillingPeriod {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl BillingPeriod {
    pub fn try_new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, BillingPeriodError> {
        let length = seconds_between(start, end);
        if !(MIN_PERIOD_SECONDS..=MAX_PERIOD_SECONDS).contains(&length) {
            return Err(BillingPeriodError::LengthOutOfRange);
        }
        Ok(Self { start, end })
    }

    /// The UTC calendar month containing `instant`: from the first at
    /// midnight to the first of the next month at midnight.
    pub fn calendar_month_of(instant: DateTime<Utc>) -> Result<Self, BillingPeriodError> {
        let (year, month) = (instant.year(), instant.month());
        let (next_year, next_month) = if month == 12 {
            (year.checked_add(1), 1)
        } else {
            (Some(year), month + 1)
        };
        let start = first_of_month(Some(year), month)?;
        let end = first_of_month(next_year, next_month)?;
        Self::try_new(start, end)
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// Length in whole seconds.
    pub fn length_seconds(&self) -> i64 {
        seconds_between(self.start, self.end)
    }

    pub fn contains(&self, instant: DateTime<Utc>) -> bool {
        self.start <= instant && instant < self.end
    }
}

fn first_of_month(year: Option<i32>, month: u32) -> Result<DateTime<Utc>, BillingPeriodError> {
    let date = year
        .and_then(|year| NaiveDate::from_ymd_opt(year, month, 1))
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .ok_or(BillingPeriodError::CalendarOutOfRange)?;
    Ok(Utc.from_utc_datetime(&date))
}

/// Whole seconds from `from` to `to` (sub-second parts truncated).
fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_seconds()
}

/// Which input amount was negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AmountField {
    Mrr,
    MonthToDateSpend,
    RequestCost,
}

/// Why the guardrail refused a request, or could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardrailError {
    /// The projected month-end spend exceeds `threshold × MRR` (HTTP 402).
    #[error("projected month-end spend {projected} exceeds the margin limit {limit}")]
    MarginGuardrailExceeded { projected: Money, limit: Money },
    #[error("{field:?} must not be negative")]
    NegativeAmount { field: AmountField },
    #[error("{now} is outside the billing period [{start}, {end})")]
    OutsideBillingPeriod {
        now: DateTime<Utc>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// The amounts are too large to project exactly.
    #[error("the projection overflowed")]
    Overflow,
}

impl GuardrailError {
    /// None of these clear by retrying the same request: the limit moves only
    /// with the MRR, the threshold or a new month.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::MarginGuardrailExceeded { .. }
            | Self::NegativeAmount { .. }
            | Self::OutsideBillingPeriod { .. }
            | Self::Overflow => false,
        }
    }
}

/// A request the guardrail let through, with the numbers it compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardrailCheck {
    /// Projected month-end spend, rounded up to the cent.
    pub projected: Money,
    /// `threshold × MRR`, rounded toward zero to 8 decimals.
    pub limit: Money,
}

/// A tenant's guardrail: its MRR and its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginGuardrail {
    pub mrr: Money,
    pub threshold: MarginThreshold,
}

impl MarginGuardrail {
    /// `threshold × MRR`, rounded toward zero to 8 decimals (exact for MRR
    /// of at most 4 decimals).
    pub fn limit(&self) -> Result<Money, GuardrailError> {
        if self.mrr.is_negative() {
            return Err(GuardrailError::NegativeAmount {
                field: AmountField::Mrr,
            });
        }
        self.mrr
            .mul_round_dp(self.threshold.as_decimal(), MAX_SCALE, Rounding::Down)
            .map_err(|_| GuardrailError::Overflow)
    }

    /// Lets the request through or refuses it with
    /// [`GuardrailError::MarginGuardrailExceeded`]; see the module docs.
    pub fn check(
        &self,
        month_to_date: Money,
        request_cost: Money,
        now: DateTime<Utc>,
        period: &BillingPeriod,
    ) -> Result<GuardrailCheck, GuardrailError> {
        let limit = self.limit()?;
        let spend = checked_spend(month_to_date, request_cost)?;
        if !period.contains(now) {
            return Err(GuardrailError::OutsideBillingPeriod {
                now,
                start: period.start(),
                end: period.end(),
            });
        }
        let length = period.length_seconds();
        let elapsed = seconds_between(period.start(), now).clamp(MIN_ELAPSED_SECONDS, length);

        let spend_x_length = exact_mul(spend.as_decimal(), length)?;
        let limit_x_elapsed = exact_mul(limit.as_decimal(), elapsed)?;
        let projected = projected_up_to_cent(spend_x_length, elapsed)?;
        if spend_x_length > limit_x_elapsed {
            return Err(GuardrailError::MarginGuardrailExceeded { projected, limit });
        }
        Ok(GuardrailCheck { projected, limit })
    }
}

fn checked_spend(month_to_date: Money, request_cost: Money) -> Result<Money, GuardrailError> {
    if month_to_date.is_negative() {
        return Err(GuardrailError::NegativeAmount {
            field: AmountField::MonthToDateSpend,
        });
    }
    if request_cost.is_negative() {
        return Err(GuardrailError::NegativeAmount {
            field: AmountField::RequestCost,
        });
    }
    month_to_date
        .checked_add(request_cost)
        .map_err(|_| GuardrailError::Overflow)
}

/// `value × seconds`, failing rather than letting `Decimal` drop digits.
fn exact_mul(value: Decimal, seconds: i64) -> Result<Decimal, GuardrailError> {
    let product = value
        .checked_mul(Decimal::from(seconds))
        .ok_or(GuardrailError::Overflow)?;
    if product.scale() != value.scale() {
        return Err(GuardrailError::Overflow);
    }
    Ok(product)
}

/// `numerator / elapsed` rounded up to the cent. `Decimal` division keeps 28
/// significant digits; its rounding cannot move a value across a cent, since
/// cents are representable, so the ceiling is that of the exact quotient.
fn projected_up_to_cent(numerator: Decimal, elapsed: i64) -> Result<Money, GuardrailError> {
    let quotient = numerator
        .checked_div(Decimal::from(elapsed))
        .ok_or(GuardrailError::Overflow)?;
    let rounded = quotient.round_dp_with_strategy(CENTS_SCALE, RoundingStrategy::AwayFromZero);
    Money::try_from_decimal(rounded).map_err(|_| GuardrailError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> Money {
        Money::parse(s).expect("valid money literal")
    }

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid instant")
    }

    fn june() -> BillingPeriod {
        BillingPeriod::calendar_month_of(at(2025, 6, 10, 12)).expect("june")
    }

    /// Given a tenant with $100 MRR and the default 70 % threshold.
    fn tenant() -> MarginGuardrail {
        MarginGuardrail {
            mrr: money("100"),
            threshold: MarginThreshold::default(),
        }
    }

    #[test]
    fn the_default_threshold_is_seventy_percent() {
        assert_eq!(MarginThreshold::default().as_decimal(), Decimal::new(70, 2));
        assert_eq!(tenant().limit(), Ok(money("70")));
    }

    #[test]
    fn threshold_must_be_in_zero_exclusive_to_one_inclusive() {
        assert!(MarginThreshold::try_new(Decimal::ONE).is_ok());
        assert!(MarginThreshold::try_new(Decimal::new(1, 4)).is_ok());
        assert_eq!(
            MarginThreshold::try_new(Decimal::ZERO),
            Err(MarginThresholdError::OutOfRange {
                value: Decimal::ZERO
            })
        );
        assert_eq!(
            MarginThreshold::try_new(Decimal::new(101, 2)),
            Err(MarginThresholdError::OutOfRange {
                value: Decimal::new(101, 2)
            })
        );
        assert_eq!(
            MarginThreshold::try_new(Decimal::new(-5, 1)),
            Err(MarginThresholdError::OutOfRange {
                value: Decimal::new(-5, 1)
            })
        );
        assert_eq!(
            MarginThreshold::try_new(Decimal::new(70001, 5)),
            Err(MarginThresholdError::TooManyDecimals {
                value: Decimal::new(70001, 5)
            })
        );
    }

    #[test]
    fn threshold_deserializes_through_validation() {
        let ok: MarginThreshold = serde_json::from_str("\"0.5\"").expect("valid");
        assert_eq!(ok.as_decimal(), Decimal::new(5, 1));
        assert!(serde_json::from_str::<MarginThreshold>("\"1.5\"").is_err());
    }

    #[test]
    fn calendar_months_have_their_real_length() {
        assert_eq!(june().length_seconds(), 30 * 86_400);
        assert_eq!(june().start(), at(2025, 6, 1, 0));
        assert_eq!(june().end(), at(2025, 7, 1, 0));
        let leap_february =
            BillingPeriod::calendar_month_of(at(2024, 2, 29, 23)).expect("february");
        assert_eq!(leap_february.length_seconds(), 29 * 86_400);
        let december = BillingPeriod::calendar_month_of(at(2025, 12, 31, 23)).expect("december");
        assert_eq!(december.end(), at(2026, 1, 1, 0));
    }

    #[test]
    fn billing_periods_last_one_to_31_days() {
        assert_eq!(
            BillingPeriod::try_new(at(2025, 6, 2, 0), at(2025, 6, 1, 0)),
            Err(BillingPeriodError::LengthOutOfRange)
        );
        assert_eq!(
            BillingPeriod::try_new(at(2025, 6, 1, 0), at(2025, 6, 1, 23)),
            Err(BillingPeriodError::LengthOutOfRange)
        );
        assert_eq!(
            BillingPeriod::try_new(at(2025, 6, 1, 0), at(2025, 7, 2, 1)),
            Err(BillingPeriodError::LengthOutOfRange)
        );
        assert!(BillingPeriod::try_new(at(2025, 6, 1, 0), at(2025, 6, 2, 0)).is_ok());
    }

    #[test]
    fn spend_on_track_passes_with_the_projection_reported() {
        // Given $30 spent in the first 14 days of June, when a $2 request
        // comes: 32 × 30 / 14 = 68.571428… ≤ 70, reported as 68.58.
        let check = tenant().check(money("30"), money("2"), at(2025, 6, 15, 0), &june());
        assert_eq!(
            check,
            Ok(GuardrailCheck {
                projected: money("68.58"),
                limit: money("70"),
            })
        );
    }

    #[test]
    fn spend_projecting_over_the_limit_is_refused() {
        // Given $32.67 spent in 14 days: 32.67 × 30 / 14 = 70.0071… > 70.
        let check = tenant().check(money("32.67"), money("0"), at(2025, 6, 15, 0), &june());
        assert_eq!(
            check,
            Err(GuardrailError::MarginGuardrailExceeded {
                projected: money("70.01"),
                limit: money("70"),
            })
        );
    }

    #[test]
    fn projecting_exactly_onto_the_limit_is_allowed() {
        // 15 days in: 35 × 30 / 15 = 70 exactly.
        let now = at(2025, 6, 16, 0);
        assert_eq!(
            tenant().check(money("34"), money("1"), now, &june()),
            Ok(GuardrailCheck {
                projected: money("70"),
                limit: money("70"),
            })
        );
        // One hundred-millionth more is refused, reported rounded up.
        assert_eq!(
            tenant().check(money("34"), money("1.00000001"), now, &june()),
            Err(GuardrailError::MarginGuardrailExceeded {
                projected: money("70.01"),
                limit: money("70"),
            })
        );
    }

    #[test]
    fn elapsed_time_counts_as_at_least_one_day() {
        // One hour into June a $2 request would project to $1 440 linearly;
        // with the one-day floor it projects to 2 × 30 = $60.
        let early = at(2025, 6, 1, 1);
        assert_eq!(
            tenant().check(money("0"), money("2"), early, &june()),
            Ok(GuardrailCheck {
                projected: money("60"),
                limit: money("70"),
            })
        );
        assert_eq!(
            tenant().check(money("0.34"), money("2"), early, &june()),
            Err(GuardrailError::MarginGuardrailExceeded {
                projected: money("70.20"),
                limit: money("70"),
            })
        );
    }

    #[test]
    fn the_last_second_of_the_month_projects_almost_unchanged() {
        let last = Utc
            .with_ymd_and_hms(2025, 6, 30, 23, 59, 59)
            .single()
            .expect("valid");
        // 69.99 × 2 592 000 / 2 591 999 = 69.990027… ≤ 70, rounded up to 70.00.
        assert_eq!(
            tenant().check(money("69.99"), money("0"), last, &june()),
            Ok(GuardrailCheck {
                projected: money("70.00"),
                limit: money("70"),
            })
        );
    }

    #[test]
    fn the_threshold_is_per_tenant() {
        let strict = MarginGuardrail {
            mrr: money("100"),
            threshold: MarginThreshold::try_new(Decimal::new(5, 1)).expect("0.5"),
        };
        let now = at(2025, 6, 15, 0);
        assert!(matches!(
            strict.check(money("30"), money("2"), now, &june()),
            Err(GuardrailError::MarginGuardrailExceeded { .. })
        ));
        let generous = MarginGuardrail {
            threshold: MarginThreshold::try_new(Decimal::ONE).expect("1"),
            ..strict
        };
        assert!(generous
            .check(money("30"), money("2"), now, &june())
            .is_ok());
    }

    #[test]
    fn the_limit_is_exact_for_cents_and_rounded_down_beyond() {
        let cents = MarginGuardrail {
            mrr: money("99.99"),
            ..tenant()
        };
        assert_eq!(cents.limit(), Ok(money("69.993")));
        let fine = MarginGuardrail {
            mrr: money("0.00000001"),
            threshold: MarginThreshold::try_new(Decimal::new(7125, 4)).expect("0.7125"),
        };
        assert_eq!(fine.limit(), Ok(Money::ZERO));
    }

    #[test]
    fn a_tenant_without_mrr_may_spend_nothing() {
        let free = MarginGuardrail {
            mrr: Money::ZERO,
            ..tenant()
        };
        let now = at(2025, 6, 15, 0);
        assert!(free.check(Money::ZERO, Money::ZERO, now, &june()).is_ok());
        assert_eq!(
            free.check(Money::ZERO, money("0.01"), now, &june()),
            Err(GuardrailError::MarginGuardrailExceeded {
                projected: money("0.03"),
                limit: Money::ZERO,
            })
        );
    }

    #[test]
    fn negative_amounts_are_rejected() {
        let now = at(2025, 6, 15, 0);
        let negative = money("-1");
        assert_eq!(
            tenant().check(negative, Money::ZERO, now, &june()),
            Err(GuardrailError::NegativeAmount {
                field: AmountField::MonthToDateSpend
            })
        );
        assert_eq!(
            tenant().check(Money::ZERO, negative, now, &june()),
            Err(GuardrailError::NegativeAmount {
                field: AmountField::RequestCost
            })
        );
        let owing = MarginGuardrail {
            mrr: negative,
            ..tenant()
        };
        assert_eq!(
            owing.check(Money::ZERO, Money::ZERO, now, &june()),
            Err(GuardrailError::NegativeAmount {
                field: AmountField::Mrr
            })
        );
    }

    #[test]
    fn an_instant_outside_the_period_is_rejected() {
        let july = at(2025, 7, 1, 0);
        assert_eq!(
            tenant().check(Money::ZERO, Money::ZERO, july, &june()),
            Err(GuardrailError::OutsideBillingPeriod {
                now: july,
                start: june().start(),
                end: june().end(),
            })
        );
        assert!(!GuardrailError::Overflow.is_retryable());
    }

    #[test]
    fn huge_amounts_fail_with_overflow_rather_than_rounding() {
        let rich = MarginGuardrail {
            mrr: money("1000000000000000"),
            ..tenant()
        };
        let check = rich.check(
            money("999999999999999.99999999"),
            Money::ZERO,
            at(2025, 6, 15, 0),
            &june(),
        );
        assert_eq!(check, Err(GuardrailError::Overflow));
    }
}
