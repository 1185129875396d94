//! The seed's price: `Payment = (Base + Quality × Multiplier + Bonuses) × ValueScore / 100`,
//! clamped to a configurable minimum and maximum and rounded half-even to the cent.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::{Money, MoneyError};

/// Which bonuses an analysis earned (the seed's bonus table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bonuses {
    /// The log reveals a first-time issue or pattern.
    pub uniqueness: bool,
    /// A critical bug that crashes the system or blocks users.
    pub critical_error: bool,
    /// A security vulnerability or breach attempt.
    pub security: bool,
    /// A performance bottleneck or optimisation opportunity.
    pub performance: bool,
}

/// Prices and bounds. Defaults are the seed's numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingConfig {
    pub base_price: Money,
    /// Paid per quality point (0–100).
    pub quality_multiplier: Money,
    pub uniqueness_bonus: Money,
    pub critical_error_bonus: Money,
    pub security_bonus: Money,
    pub performance_bonus: Money,
    /// `LOG_MARKETPLACE_MIN_PAYMENT`.
    pub min_payment: Money,
    /// `LOG_MARKETPLACE_MAX_PAYMENT`.
    pub max_payment: Money,
}

impl Default for PricingConfig {
    fn default() -> Self {
        let m = |cents: i64| Money::from_cents(cents).expect("constant in range");
        Self {
            base_price: m(10),
            quality_multiplier: m(1),
            uniqueness_bonus: m(50),
            critical_error_bonus: m(500),
            security_bonus: m(1000),
            performance_bonus: m(200),
            min_payment: m(10),
            max_payment: m(2000),
        }
    }
}

/// Why a pricing configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingConfigError {
    #[error("{field} must not be negative")]
    Negative { field: &'static str },
    #[error("min payment {min} exceeds max payment {max}")]
    MinAboveMax { min: Money, max: Money },
    #[error("{field} must be a whole number of cents")]
    NotCents { field: &'static str },
}

impl PricingConfig {
    /// Checks the bounds: nothing negative, min ≤ max, bounds in whole cents.
    pub fn validate(&self) -> Result<(), PricingConfigError> {
        let fields = [
            ("base_price", self.base_price),
            ("quality_multiplier", self.quality_multiplier),
            ("uniqueness_bonus", self.uniqueness_bonus),
            ("critical_error_bonus", self.critical_error_bonus),
            ("security_bonus", self.security_bonus),
            ("performance_bonus", self.performance_bonus),
            ("min_payment", self.min_payment),
            ("max_payment", self.max_payment),
        ];
        for (field, value) in fields {
            if value.is_negative() {
                return Err(PricingConfigError::Negative { field });
            }
        }
        for (field, value) in [
            ("min_payment", self.min_payment),
            ("max_payment", self.max_payment),
        ] {
            if value.scale() > 2 {
                return Err(PricingConfigError::NotCents { field });
            }
        }
        if self.min_payment.as_decimal() > self.max_payment.as_decimal() {
            return Err(PricingConfigError::MinAboveMax {
                min: self.min_payment,
                max: self.max_payment,
            });
        }
        Ok(())
    }

    /// The sum of the bonuses earned.
    pub fn bonus_total(&self, bonuses: Bonuses) -> Result<Money, MoneyError> {
        let earned = [
            (bonuses.uniqueness, self.uniqueness_bonus),
            (bonuses.critical_error, self.critical_error_bonus),
            (bonuses.security, self.security_bonus),
            (bonuses.performance, self.performance_bonus),
        ];
        Money::checked_sum(earned.into_iter().filter(|(on, _)| *on).map(|(_, m)| m))
    }

    /// The payment before the bounds and rounding: `(base + quality × multiplier + bonuses) ×
    /// value / 100`.
    pub fn raw_payment(
        &self,
        quality: Decimal,
        value_score: u8,
        bonuses: Bonuses,
    ) -> Result<Money, MoneyError> {
        let quality_part = self.quality_multiplier.checked_mul(quality)?;
        let gross = self
            .base_price
            .checked_add(quality_part)?
            .checked_add(self.bonus_total(bonuses)?)?;
        gross.checked_mul(Decimal::from(value_score) / Decimal::ONE_HUNDRED)
    }

    /// The price of an analysis: the raw payment rounded half-even to the cent, then clamped to
    /// `[min_payment, max_payment]`.
    pub fn payment(
        &self,
        quality: Decimal,
        value_score: u8,
        bonuses: Bonuses,
    ) -> Result<Money, MoneyError> {
        let rounded = self
            .raw_payment(quality, value_score, bonuses)?
            .round_to_cents_half_even();
        let d = rounded.as_decimal();
        Ok(if d < self.min_payment.as_decimal() {
            self.min_payment
        } else if d > self.max_payment.as_decimal() {
            self.max_payment
        } else {
            rounded
        })
    }
}

/// The seed's points multiplier by overall quality: 90–100 ×2, 80–89 ×1.5, 70–79 ×1.25, 60–69 ×1,
/// below 60 ×0.5.
pub fn points_multiplier(quality: Decimal) -> Decimal {
    let q = quality;
    if q >= Decimal::from(90) {
        Decimal::from(2)
    } else if q >= Decimal::from(80) {
        Decimal::new(15, 1)
    } else if q >= Decimal::from(70) {
        Decimal::new(125, 2)
    } else if q >= Decimal::from(60) {
        Decimal::ONE
    } else {
        Decimal::new(5, 1)
    }
}

/// Game points for a payment: `floor(payment × 10)` (the seed's formula) times the quality
/// multiplier, floored again so points stay whole.
pub fn points_for_payment(payment: Money, quality: Decimal) -> u64 {
    let base = (payment.as_decimal() * Decimal::TEN).floor();
    let points = (base * points_multiplier(quality)).floor();
    u64::try_from(points.mantissa() / 10i128.pow(points.scale())).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn seed_example_1_basic_log_entry() {
        // Quality 60, value 50, no bonus: (0.10 + 0.60) × 0.5 = 0.35
        let p = PricingConfig::default().payment(d("60"), 50, Bonuses::default());
        assert_eq!(p.unwrap(), money("0.35"));
    }

    #[test]
    fn seed_example_2_performance_issue() {
        // (0.10 + 0.85 + 2.00) × 0.75 = 2.2125 → 2.21
        let bonuses = Bonuses {
            performance: true,
            ..Bonuses::default()
        };
        let p = PricingConfig::default().payment(d("85"), 75, bonuses);
        assert_eq!(p.unwrap(), money("2.21"));
    }

    #[test]
    fn seed_example_3_critical_security_vulnerability() {
        // (0.10 + 0.95 + 10.00 + 0.50) × 1.0 = 11.55
        let bonuses = Bonuses {
            security: true,
            uniqueness: true,
            ..Bonuses::default()
        };
        let p = PricingConfig::default().payment(d("95"), 100, bonuses);
        assert_eq!(p.unwrap(), money("11.55"));
    }

    #[test]
    fn payments_are_clamped_to_the_bounds() {
        let config = PricingConfig::default();
        // Value 0 would pay nothing: the seed's base price is the minimum for any analysed log.
        assert_eq!(
            config.payment(d("40"), 0, Bonuses::default()).unwrap(),
            money("0.10")
        );
        let all = Bonuses {
            uniqueness: true,
            critical_error: true,
            security: true,
            performance: true,
        };
        // (0.10 + 1.00 + 17.50) × 1 = 18.60: under the cap.
        assert_eq!(config.payment(d("100"), 100, all).unwrap(), money("18.60"));
        let tight = PricingConfig {
            max_payment: money("5.00"),
            ..PricingConfig::default()
        };
        assert_eq!(tight.payment(d("100"), 100, all).unwrap(), money("5.00"));
    }

    #[test]
    fn half_even_rounding_to_the_cent() {
        // (0.10 + 0.25 × 0.01 ... ) chosen so the raw amount ends in exactly half a cent:
        // quality 62.5, value 50: (0.10 + 0.625) × 0.5 = 0.3625 → 0.36 (half-even).
        let p = PricingConfig::default().payment(d("62.5"), 50, Bonuses::default());
        assert_eq!(p.unwrap(), money("0.36"));
        // quality 67.5, value 50: (0.10 + 0.675) × 0.5 = 0.3875 → 0.39.
        let p = PricingConfig::default().payment(d("67.5"), 50, Bonuses::default());
        assert_eq!(p.unwrap(), money("0.39"));
    }

    #[test]
    fn config_is_validated() {
        assert!(PricingConfig::default().validate().is_ok());
        let bad = PricingConfig {
            min_payment: money("30"),
            ..PricingConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(PricingConfigError::MinAboveMax { .. })
        ));
        let bad = PricingConfig {
            security_bonus: money("-1"),
            ..PricingConfig::default()
        };
        assert_eq!(
            bad.validate(),
            Err(PricingConfigError::Negative {
                field: "security_bonus"
            })
        );
        let bad = PricingConfig {
            max_payment: money("20.001"),
            ..PricingConfig::default()
        };
        assert_eq!(
            bad.validate(),
            Err(PricingConfigError::NotCents {
                field: "max_payment"
            })
        );
    }

    #[test]
    fn points_follow_the_seed() {
        // $11.55 → 115 points before the multiplier (the seed's example).
        assert_eq!(points_for_payment(money("11.55"), d("60")), 115);
        assert_eq!(points_for_payment(money("11.55"), d("92.5")), 230);
        assert_eq!(points_for_payment(money("11.55"), d("85")), 172); // 172.5 floored
        assert_eq!(points_for_payment(money("11.55"), d("75")), 143); // 143.75 floored
        assert_eq!(points_for_payment(money("11.55"), d("59.75")), 57); // 57.5 floored
        assert_eq!(points_for_payment(money("0.09"), d("100")), 0);
    }
}
