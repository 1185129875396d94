//! Exact, bounded, signed money amounts and ISO-4217-shaped currency codes.
//!
//! Money is never a float. A [`Money`] is a `rust_decimal::Decimal` that has
//! been checked on the way in: at most [`MAX_SCALE`] decimal places and a
//! magnitude of at most [`MAX_ABS`]. Every arithmetic operation is checked and
//! exact; rounding only ever happens when the caller asks for it, with an
//! explicit [`Rounding`] mode.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Maximum number of decimal places a [`Money`] may carry.
pub const MAX_SCALE: u32 = 8;

/// Number of decimal places of a cent; used by [`Money::mul_round`].
pub const CENTS_SCALE: u32 = 2;

/// 10^15 as an integer, the largest magnitude a [`Money`] may have.
const MAX_ABS_UNITS: u64 = 1_000_000_000_000_000;

/// Largest magnitude (inclusive) of a [`Money`]: 10^15.
///
/// Sums of up to ~79 billion such amounts still fit in a `Decimal`, so
/// intermediate arithmetic can always be computed exactly and checked.
pub const MAX_ABS: Decimal = Decimal::from_parts(
    MAX_ABS_UNITS as u32,
    (MAX_ABS_UNITS >> 32) as u32,
    0,
    false,
    0,
);

/// Significant integer digits of [`MAX_ABS`] (10^15 has 16 digits).
const MAX_INTEGER_DIGITS: usize = 16;

/// Decimal places shown at least by `Display` ("12.00", "0.10").
const MIN_DISPLAY_SCALE: u32 = 2;

/// Why a money amount or currency was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The input string was empty.
    #[error("money amount is empty")]
    Empty,
    /// The input is not a plain decimal string such as `-12.50`.
    #[error("money amount is not a plain decimal string like \"-12.50\"")]
    InvalidFormat,
    /// The amount has more decimal places than [`MAX_SCALE`].
    #[error("money amount has {scale} decimal places, at most {MAX_SCALE} are allowed")]
    ScaleTooLarge { scale: u32 },
    /// The amount's magnitude exceeds [`MAX_ABS`].
    #[error("money amount magnitude exceeds {MAX_ABS}")]
    OutOfRange,
    /// An arithmetic result exceeds [`MAX_ABS`] or cannot be computed exactly.
    #[error("money arithmetic overflowed or could not be computed exactly")]
    Overflow,
    /// A currency code is not exactly three ASCII uppercase letters.
    #[error("currency code must be exactly three ASCII uppercase letters")]
    InvalidCurrency,
}

impl MoneyError {
    /// Money errors are about the input itself: retrying cannot help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Empty
            | Self::InvalidFormat
            | Self::ScaleTooLarge { .. }
            | Self::OutOfRange
            | Self::Overflow
            | Self::InvalidCurrency => false,
        }
    }
}

/// Explicit rounding modes; there is no implicit rounding anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Round to nearest, ties to even (banker's rounding).
    HalfEven,
    /// Round to nearest, ties away from zero.
    HalfUp,
    /// Truncate toward zero.
    Down,
    /// Round away from zero.
    Up,
}

impl Rounding {
    fn strategy(self) -> RoundingStrategy {
        match self {
            Self::HalfEven => RoundingStrategy::MidpointNearestEven,
            Self::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Self::Down => RoundingStrategy::ToZero,
            Self::Up => RoundingStrategy::AwayFromZero,
        }
    }
}

/// A signed, exact amount of money: at most [`MAX_SCALE`] decimal places and
/// a magnitude of at most [`MAX_ABS`]. Always stored normalized, so equality,
/// ordering and hashing are by value (`1.10 == 1.1`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Money(Decimal);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Zero, as a function.
    pub const fn zero() -> Money {
        Self::ZERO
    }

    /// Parses a plain decimal string: optional `-`, digits, optionally `.`
    /// and digits (`"12"`, `"-0.10"`, `"19.995"`). No whitespace, no `+`, no
    /// exponent, no thousands separators.
    pub fn parse(input: &str) -> Result<Money, MoneyError> {
        let literal = PlainDecimal::lex(input)?;
        literal.check_bounds()?;
        let decimal = Decimal::from_str_exact(&literal.to_trimmed_string())
            .map_err(|_| MoneyError::InvalidFormat)?;
        Self::try_from_decimal(decimal)
    }

    /// Accepts a decimal whose normalized scale is at most [`MAX_SCALE`] and
    /// whose magnitude is at most [`MAX_ABS`].
    pub fn try_from_decimal(value: Decimal) -> Result<Money, MoneyError> {
        let value = value.normalize();
        if value.scale() > MAX_SCALE {
            return Err(MoneyError::ScaleTooLarge {
                scale: value.scale(),
            });
        }
        if value.abs() > MAX_ABS {
            return Err(MoneyError::OutOfRange);
        }
        Ok(Money(value))
    }

    /// `cents / 100`, e.g. `from_cents(-5)` is `-0.05`.
    pub fn from_cents(cents: i64) -> Result<Money, MoneyError> {
        Self::try_from_decimal(Decimal::new(cents, CENTS_SCALE))
    }

    /// The underlying (normalized) decimal.
    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    pub fn is_positive(&self) -> bool {
        self.0 > Decimal::ZERO
    }

    pub fn is_negative(&self) -> bool {
        self.0 < Decimal::ZERO
    }

    pub fn abs(&self) -> Money {
        Money(self.0.abs())
    }

    /// Number of decimal places after normalization (`1.10` has scale 1).
    pub fn scale(&self) -> u32 {
        self.0.scale()
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        let sum = self.0.checked_add(other.0).ok_or(MoneyError::Overflow)?;
        Self::from_arithmetic(sum)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        let difference = self.0.checked_sub(other.0).ok_or(MoneyError::Overflow)?;
        Self::from_arithmetic(difference)
    }

    /// Negation cannot fail (the range is symmetric); the `Result` keeps call
    /// sites uniform with the other checked operations.
    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        Ok(-self)
    }

    /// Sums amounts, failing if any partial sum leaves the allowed range.
    pub fn checked_sum<I: IntoIterator<Item = Money>>(amounts: I) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, |total, amount| total.checked_add(amount))
    }

    /// Exact product. Fails with `ScaleTooLarge` if the exact product needs
    /// more than [`MAX_SCALE`] decimals: use [`Money::mul_round`] then.
    pub fn checked_mul(self, factor: Decimal) -> Result<Money, MoneyError> {
        let product = self.exact_product(factor)?;
        let normalized = product.normalize();
        if normalized.scale() > MAX_SCALE {
            return Err(MoneyError::ScaleTooLarge {
                scale: normalized.scale(),
            });
        }
        Self::from_arithmetic(normalized)
    }

    /// Product rounded to cents ([`CENTS_SCALE`]) with the given mode, e.g. a
    /// fee: `price.mul_round(rate, Rounding::HalfEven)`.
    pub fn mul_round(self, factor: Decimal, rounding: Rounding) -> Result<Money, MoneyError> {
        self.mul_round_dp(factor, CENTS_SCALE, rounding)
    }

    /// Product rounded to `dp` decimal places (at most [`MAX_SCALE`]). The
    /// rounding is that of the exact product: if `Decimal`'s 96-bit precision
    /// could make the result differ from it, this fails with `Overflow`.
    pub fn mul_round_dp(
        self,
        factor: Decimal,
        dp: u32,
        rounding: Rounding,
    ) -> Result<Money, MoneyError> {
        if dp > MAX_SCALE {
            return Err(MoneyError::ScaleTooLarge { scale: dp });
        }
        let product = self.approximate_product(factor, dp)?;
        Self::from_arithmetic(product.round_dp_with_strategy(dp, rounding.strategy()))
    }

    /// Rounds to `dp` decimal places. Cannot leave the range: [`MAX_ABS`] is
    /// an integer, so rounding away from zero stops at it.
    pub fn round(self, dp: u32, rounding: Rounding) -> Money {
        Money(
            self.0
                .round_dp_with_strategy(dp, rounding.strategy())
                .normalize(),
        )
    }

    pub fn round_to_cents_half_even(self) -> Money {
        self.round(CENTS_SCALE, Rounding::HalfEven)
    }

    /// Range check for results of arithmetic (overflow, not bad input).
    fn from_arithmetic(value: Decimal) -> Result<Money, MoneyError> {
        Self::try_from_decimal(value).map_err(|_| MoneyError::Overflow)
    }

    /// The product, or `Overflow` if `Decimal` had to drop precision.
    fn exact_product(self, factor: Decimal) -> Result<Decimal, MoneyError> {
        let (product, exact) = self.product(factor)?;
        if exact {
            Ok(product)
        } else {
            Err(MoneyError::Overflow)
        }
    }

    /// The product, possibly rounded by `Decimal` to 28+ significant digits
    /// (at least 12 decimals, given the range check). Rounding it to `dp`
    /// then equals rounding the exact product, unless it sits on a grid point
    /// or midpoint of the `10^-dp` grid, where the lost digits decide.
    fn approximate_product(self, factor: Decimal, dp: u32) -> Result<Decimal, MoneyError> {
        let (product, exact) = self.product(factor)?;
        if product.abs() > MAX_ABS + Decimal::ONE {
            return Err(MoneyError::Overflow);
        }
        if !exact && product.normalize().scale() <= dp + 1 {
            return Err(MoneyError::Overflow);
        }
        Ok(product)
    }

    /// `(product, exact)`: `exact` is false when `Decimal` reduced the scale.
    fn product(self, factor: Decimal) -> Result<(Decimal, bool), MoneyError> {
        if self.is_zero() || factor.is_zero() {
            return Ok((Decimal::ZERO, true));
        }
        let factor = factor.normalize();
        let product = self.0.checked_mul(factor).ok_or(MoneyError::Overflow)?;
        let exact = product.scale() == self.0.scale() + factor.scale();
        Ok((product, exact))
    }
}

impl std::ops::Neg for Money {
    type Output = Money;

    fn neg(self) -> Money {
        Money((-self.0).normalize())
    }
}

impl fmt::Display for Money {
    /// Canonical form: normalized, but at least two decimals
    /// ("12.00", "0.10", "19.995", "-3.50").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0;
        if shown.scale() < MIN_DISPLAY_SCALE {
            shown.rescale(MIN_DISPLAY_SCALE);
        }
        write!(f, "{shown}")
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(input: &str) -> Result<Money, MoneyError> {
        Money::parse(input)
    }
}

impl TryFrom<String> for Money {
    type Error = MoneyError;

    fn try_from(input: String) -> Result<Money, MoneyError> {
        Money::parse(&input)
    }
}

impl From<Money> for String {
    fn from(money: Money) -> String {
        money.to_string()
    }
}

/// The lexical pieces of a plain decimal string.
struct PlainDecimal<'a> {
    negative: bool,
    integer: &'a str,
    fraction: &'a str,
}

impl<'a> PlainDecimal<'a> {
    /// `-?[0-9]+(\.[0-9]+)?`, ASCII digits only.
    fn lex(input: &'a str) -> Result<Self, MoneyError> {
        if input.is_empty() {
            return Err(MoneyError::Empty);
        }
        let (negative, unsigned) = match input.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let (integer, fraction) = match unsigned.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (unsigned, None),
        };
        let fraction_ok = fraction.is_none_or(is_ascii_digits);
        if !is_ascii_digits(integer) || !fraction_ok {
            return Err(MoneyError::InvalidFormat);
        }
        Ok(Self {
            negative,
            integer,
            fraction: fraction.unwrap_or(""),
        })
    }

    fn significant_integer(&self) -> &'a str {
        self.integer.trim_start_matches('0')
    }

    fn significant_fraction(&self) -> &'a str {
        self.fraction.trim_end_matches('0')
    }

    /// Rejects before `Decimal` parsing so huge inputs cannot overflow it.
    fn check_bounds(&self) -> Result<(), MoneyError> {
        let scale = self.significant_fraction().len();
        if scale > MAX_SCALE as usize {
            let scale = u32::try_from(scale).unwrap_or(u32::MAX);
            return Err(MoneyError::ScaleTooLarge { scale });
        }
        if self.significant_integer().len() > MAX_INTEGER_DIGITS {
            return Err(MoneyError::OutOfRange);
        }
        Ok(())
    }

    fn to_trimmed_string(&self) -> String {
        let sign = if self.negative { "-" } else { "" };
        let integer = match self.significant_integer() {
            "" => "0",
            digits => digits,
        };
        match self.significant_fraction() {
            "" => format!("{sign}{integer}"),
            fraction => format!("{sign}{integer}.{fraction}"),
        }
    }
}

fn is_ascii_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// A currency code: exactly three ASCII uppercase letters ("USD", "EUR").
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(input: &str) -> Result<Currency, MoneyError> {
        let code: [u8; 3] = input
            .as_bytes()
            .try_into()
            .map_err(|_| MoneyError::InvalidCurrency)?;
        if !code.iter().all(u8::is_ascii_uppercase) {
            return Err(MoneyError::InvalidCurrency);
        }
        Ok(Currency(code))
    }

    pub const fn usd() -> Currency {
        Currency(*b"USD")
    }

    pub fn as_str(&self) -> &str {
        match std::str::from_utf8(&self.0) {
            Ok(code) => code,
            Err(_) => unreachable!("currency codes are ASCII by construction"),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({self})")
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(input: &str) -> Result<Currency, MoneyError> {
        Currency::parse(input)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;

    fn try_from(input: String) -> Result<Currency, MoneyError> {
        Currency::parse(&input)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(input: &str) -> Money {
        Money::parse(input).unwrap()
    }

    fn dec(input: &str) -> Decimal {
        Decimal::from_str_exact(input).unwrap()
    }

    #[test]
    fn max_abs_is_ten_to_the_fifteenth() {
        assert_eq!(MAX_ABS, Decimal::from(10_i64.pow(15)));
    }

    #[test]
    fn parse_accepts_plain_decimals_and_displays_canonically() {
        let cases = [
            ("12", "12.00"),
            ("-0.10", "-0.10"),
            ("19.995", "19.995"),
            ("0", "0.00"),
            ("-0", "0.00"),
            ("-0.000", "0.00"),
            ("007.5", "7.50"),
            ("-3.5", "-3.50"),
            ("1.10000000000000000000000000000000", "1.10"),
            ("0.12345678", "0.12345678"),
            ("1000000000000000", "1000000000000000.00"),
            ("-1000000000000000.00000000", "-1000000000000000.00"),
        ];
        for (input, shown) in cases {
            assert_eq!(money(input).to_string(), shown, "input {input:?}");
        }
    }

    #[test]
    fn parse_rejects_empty_input() {
        assert_eq!(Money::parse(""), Err(MoneyError::Empty));
    }

    #[test]
    fn parse_rejects_anything_but_plain_decimals() {
        let junk = [
            " ", " 12", "12 ", "1 2", "+1", "1e5", "1E5", "1e-2", "NaN", "inf", "-inf", "abc",
            "1.", ".5", "-", "-.5", ".", "1..2", "1.2.3", "--1", "-+1", "1,00", "0x10", "1_000",
            "١٢", "１２", "12\n",
        ];
        for input in junk {
            assert_eq!(
                Money::parse(input),
                Err(MoneyError::InvalidFormat),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn parse_rejects_more_than_eight_significant_decimals() {
        assert_eq!(
            Money::parse("1.123456789"),
            Err(MoneyError::ScaleTooLarge { scale: 9 })
        );
        assert_eq!(
            Money::parse("-0.0000000001"),
            Err(MoneyError::ScaleTooLarge { scale: 10 })
        );
        let very_precise = format!("0.{}1", "0".repeat(40));
        assert_eq!(
            Money::parse(&very_precise),
            Err(MoneyError::ScaleTooLarge { scale: 41 })
        );
    }

    #[test]
    fn parse_rejects_magnitudes_above_max_abs() {
        for input in [
            "1000000000000000.00000001",
            "-1000000000000000.01",
            "1000000000000001",
            "99999999999999999999999999999999999999999",
        ] {
            assert_eq!(
                Money::parse(input),
                Err(MoneyError::OutOfRange),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn parse_ignores_leading_zeros_when_checking_range() {
        let padded = format!("{}1.5", "0".repeat(60));
        assert_eq!(money(&padded), money("1.5"));
    }

    #[test]
    fn from_str_is_parse() {
        assert_eq!("4.20".parse::<Money>(), Ok(money("4.2")));
        assert_eq!("4,20".parse::<Money>(), Err(MoneyError::InvalidFormat));
    }

    #[test]
    fn try_from_decimal_normalizes_then_checks_scale_and_range() {
        assert_eq!(
            Money::try_from_decimal(dec("2.50000000000")),
            Ok(money("2.5"))
        );
        assert_eq!(
            Money::try_from_decimal(dec("0.000000001")),
            Err(MoneyError::ScaleTooLarge { scale: 9 })
        );
        assert_eq!(
            Money::try_from_decimal(dec("-1000000000000000.5")),
            Err(MoneyError::OutOfRange)
        );
        assert_eq!(money("1.5").as_decimal(), dec("1.5"));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(money("1.10"), money("1.1"));
        assert!(money("-0.01") < Money::ZERO);
        assert_eq!(Money::zero(), money("-0.00"));
    }

    #[test]
    fn from_cents_divides_by_one_hundred() {
        assert_eq!(Money::from_cents(1234), Ok(money("12.34")));
        assert_eq!(Money::from_cents(-5), Ok(money("-0.05")));
        assert_eq!(Money::from_cents(i64::MAX), Err(MoneyError::OutOfRange));
    }

    #[test]
    fn sign_helpers() {
        let negative = money("-3.5");
        assert!(negative.is_negative() && !negative.is_positive() && !negative.is_zero());
        assert!(money("0.00000001").is_positive());
        assert!(Money::ZERO.is_zero() && !Money::ZERO.is_positive() && !Money::ZERO.is_negative());
        assert_eq!(negative.abs(), money("3.5"));
        assert_eq!(-negative, money("3.5"));
        assert_eq!(negative.checked_neg(), Ok(money("3.5")));
        assert_eq!((-Money::ZERO).to_string(), "0.00");
    }

    #[test]
    fn checked_add_and_sub_are_exact() {
        assert_eq!(money("0.1").checked_add(money("0.2")), Ok(money("0.3")));
        assert_eq!(money("0.1").checked_sub(money("0.3")), Ok(money("-0.2")));
    }

    #[test]
    fn checked_add_and_sub_detect_overflow() {
        let max = money("1000000000000000");
        assert_eq!(max.checked_add(money("0")), Ok(max));
        assert_eq!(
            max.checked_add(money("0.00000001")),
            Err(MoneyError::Overflow)
        );
        assert_eq!((-max).checked_sub(money("0.01")), Err(MoneyError::Overflow));
        assert_eq!(max.checked_sub(-max), Err(MoneyError::Overflow));
    }

    #[test]
    fn checked_sum_adds_or_reports_overflow() {
        let amounts = [money("1.25"), money("-0.25"), money("10")];
        assert_eq!(Money::checked_sum(amounts), Ok(money("11")));
        assert_eq!(Money::checked_sum(Vec::new()), Ok(Money::ZERO));
        let max = money("1000000000000000");
        assert_eq!(
            Money::checked_sum([max, max, -max]),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn checked_mul_is_exact_or_fails() {
        assert_eq!(money("10.00").checked_mul(dec("0.029")), Ok(money("0.29")));
        assert_eq!(
            money("10.01").checked_mul(dec("0.029")),
            Ok(money("0.29029"))
        );
        assert_eq!(money("-3").checked_mul(dec("1.5")), Ok(money("-4.5")));
        assert_eq!(money("3").checked_mul(Decimal::ZERO), Ok(Money::ZERO));
        assert_eq!(
            money("0.00000001").checked_mul(dec("0.5")),
            Err(MoneyError::ScaleTooLarge { scale: 9 })
        );
        let max = money("1000000000000000");
        assert_eq!(
            max.checked_mul(dec("1.00000001")),
            Err(MoneyError::Overflow)
        );
        assert_eq!(max.checked_mul(Decimal::MAX), Err(MoneyError::Overflow));
    }

    #[test]
    fn mul_round_rounds_the_product_to_cents() {
        let fee_rate = dec("0.029");
        assert_eq!(
            money("10.01").mul_round(fee_rate, Rounding::HalfEven),
            Ok(money("0.29"))
        );
        assert_eq!(
            money("10.35").mul_round(fee_rate, Rounding::Up),
            Ok(money("0.31"))
        );
        assert_eq!(
            money("0.5").mul_round(dec("0.25"), Rounding::HalfEven),
            Ok(money("0.12"))
        );
        assert_eq!(
            money("0.5").mul_round(dec("0.25"), Rounding::HalfUp),
            Ok(money("0.13"))
        );
    }

    #[test]
    fn mul_round_handles_factors_beyond_decimal_precision() {
        let one_third = Decimal::ONE / Decimal::from(3);
        assert_eq!(one_third.scale(), 28);
        assert_eq!(
            money("100").mul_round(one_third, Rounding::HalfEven),
            Ok(money("33.33"))
        );
        assert_eq!(
            money("100").mul_round(one_third, Rounding::Up),
            Ok(money("33.34"))
        );
    }

    #[test]
    fn mul_round_refuses_when_lost_digits_would_decide_the_rounding() {
        // Exact product 0.00050000000000000000000000001 needs 29 decimals;
        // Decimal keeps 0.0005, which sits exactly on a midpoint at 3 dp.
        let factor = dec("0.0050000000000000000000000001");
        assert_eq!(
            money("0.1").mul_round_dp(factor, 3, Rounding::HalfEven),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn mul_round_dp_rejects_scales_beyond_max() {
        assert_eq!(
            money("1").mul_round_dp(dec("0.5"), 9, Rounding::HalfEven),
            Err(MoneyError::ScaleTooLarge { scale: 9 })
        );
        assert_eq!(
            money("1000000000000000").mul_round(dec("2"), Rounding::Down),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn round_half_even_goes_to_the_even_neighbour() {
        assert_eq!(money("0.125").round_to_cents_half_even(), money("0.12"));
        assert_eq!(money("0.135").round_to_cents_half_even(), money("0.14"));
        assert_eq!(money("-0.125").round_to_cents_half_even(), money("-0.12"));
        assert_eq!(money("0.1251").round_to_cents_half_even(), money("0.13"));
    }

    #[test]
    fn round_supports_every_mode() {
        let cases = [
            ("0.125", Rounding::HalfUp, "0.13"),
            ("-0.125", Rounding::HalfUp, "-0.13"),
            ("0.129", Rounding::Down, "0.12"),
            ("-0.129", Rounding::Down, "-0.12"),
            ("0.121", Rounding::Up, "0.13"),
            ("-0.121", Rounding::Up, "-0.13"),
            ("2.5", Rounding::HalfEven, "2"),
        ];
        for (input, mode, expected) in cases {
            let dp = if expected.contains('.') { 2 } else { 0 };
            assert_eq!(
                money(input).round(dp, mode),
                money(expected),
                "{input} {mode:?}"
            );
        }
    }

    #[test]
    fn rounding_never_leaves_the_range_or_yields_negative_zero() {
        let almost_max = money("999999999999999.99999999");
        assert_eq!(almost_max.round(0, Rounding::Up), money("1000000000000000"));
        assert_eq!(
            money("-0.001").round(2, Rounding::HalfEven).to_string(),
            "0.00"
        );
        assert_eq!(money("1.5").round(4, Rounding::Up), money("1.5"));
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        let json = serde_json::to_string(&money("12.5")).unwrap();
        assert_eq!(json, r#""12.50""#);
        let back: Money = serde_json::from_str(r#""-0.10""#).unwrap();
        assert_eq!(back, money("-0.1"));
    }

    #[test]
    fn serde_rejects_json_numbers_and_invalid_strings() {
        assert!(serde_json::from_str::<Money>("12.5").is_err());
        assert!(serde_json::from_str::<Money>("12").is_err());
        assert!(serde_json::from_str::<Money>(r#""1e3""#).is_err());
        assert!(serde_json::from_str::<Money>(r#""0.000000001""#).is_err());
    }

    #[test]
    fn currency_accepts_three_uppercase_ascii_letters() {
        assert_eq!(Currency::parse("USD"), Ok(Currency::usd()));
        assert_eq!(Currency::parse("EUR").unwrap().to_string(), "EUR");
        assert_eq!(Currency::usd().as_str(), "USD");
        assert_eq!(
            "JPY".parse::<Currency>().map(|c| c.to_string()),
            Ok("JPY".into())
        );
    }

    #[test]
    fn currency_rejects_anything_else() {
        for input in ["", "usd", "Usd", "US", "USDD", " USD", "US1", "ÜSD", "U$D"] {
            assert_eq!(
                Currency::parse(input),
                Err(MoneyError::InvalidCurrency),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn currency_serde_round_trips_and_validates() {
        assert_eq!(serde_json::to_string(&Currency::usd()).unwrap(), r#""USD""#);
        let eur: Currency = serde_json::from_str(r#""EUR""#).unwrap();
        assert_eq!(eur, Currency::parse("EUR").unwrap());
        assert!(serde_json::from_str::<Currency>(r#""eur""#).is_err());
    }

    #[test]
    fn money_errors_are_not_retryable() {
        let errors = [
            MoneyError::Empty,
            MoneyError::InvalidFormat,
            MoneyError::ScaleTooLarge { scale: 9 },
            MoneyError::OutOfRange,
            MoneyError::Overflow,
            MoneyError::InvalidCurrency,
        ];
        assert!(errors.iter().all(|error| !error.is_retryable()));
    }
}
