//! Pre-request cost estimation and FinOps chargeback tags.
//!
//! * A task costs [`TASK_BASE_COST_CENTS`] ($0.01) times its [`Complexity`]
//!   multiplier: 1 (simple), 2 (intermediate), 4 (advanced), 8 (expert).
//! * A self-compete competition costs [`COST_PER_COMPETITOR_CENTS`] ($0.02)
//!   per competitor, between [`MIN_COMPETITORS`] and [`MAX_COMPETITORS`]
//!   (the seed's default of 4 competitors costs $0.08).
//! * Every costed operation carries [`FinOpsTags`] for chargeback; each tag
//!   value is a [`TagValue`]: 1..=[`MAX_TAG_LEN`] characters of
//!   `[A-Za-z0-9._-]`.
//!
//! All amounts are whole cents, so no rounding ever happens here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::money::Money;

/// Cost of a [`Complexity::Simple`] task, in cents ($0.01).
pub const TASK_BASE_COST_CENTS: i64 = 1;

/// Cost of one competitor (variant) in a competition, in cents ($0.02).
pub const COST_PER_COMPETITOR_CENTS: i64 = 2;

/// Fewest competitors a competition may have.
pub const MIN_COMPETITORS: usize = 1;

/// Most competitors a competition may have.
pub const MAX_COMPETITORS: usize = 16;

/// The seed's default competition: aggressive, conservative, balanced,
/// experimental.
pub const DEFAULT_COMPETITORS: usize = 4;

/// Longest FinOps tag value, in characters (all ASCII, so also bytes).
pub const MAX_TAG_LEN: usize = 64;

/// How demanding a task is; decides its price multiplier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    Simple,
    Intermediate,
    Advanced,
    Expert,
}

impl Complexity {
    pub const ALL: [Complexity; 4] = [
        Complexity::Simple,
        Complexity::Intermediate,
        Complexity::Advanced,
        Complexity::Expert,
    ];

    /// The price multiplier: 1, 2, 4, 8.
    pub const fn multiplier(self) -> i64 {
        match self {
            Complexity::Simple => 1,
            Complexity::Intermediate => 2,
            Complexity::Advanced => 4,
            Complexity::Expert => 8,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Complexity::Simple => "simple",
            Complexity::Intermediate => "intermediate",
            Complexity::Advanced => "advanced",
            Complexity::Expert => "expert",
        }
    }

    /// Cost of one task of this complexity: $0.01 × multiplier.
    pub fn task_cost(self) -> Money {
        cents(TASK_BASE_COST_CENTS * self.multiplier())
    }
}

impl fmt::Display for Complexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Complexity {
    type Err = CostError;

    /// Accepts the lowercase names used on the wire (`"intermediate"`).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Complexity::ALL
            .into_iter()
            .find(|complexity| complexity.as_str() == input)
            .ok_or(CostError::UnknownComplexity)
    }
}

/// Cost of one task: $0.01 × the complexity multiplier.
pub fn task_cost(complexity: Complexity) -> Money {
    complexity.task_cost()
}

/// Why a cost could not be estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CostError {
    /// The complexity is not one of simple, intermediate, advanced, expert.
    #[error("complexity must be one of simple, intermediate, advanced, expert")]
    UnknownComplexity,
    /// A competition needs between [`MIN_COMPETITORS`] and [`MAX_COMPETITORS`]
    /// competitors.
    #[error("a competition needs {MIN_COMPETITORS}..={MAX_COMPETITORS} competitors, got {count}")]
    CompetitorCountOutOfRange { count: usize },
}

impl CostError {
    /// Cost errors are about the request itself: retrying cannot help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::UnknownComplexity | Self::CompetitorCountOutOfRange { .. } => false,
        }
    }
}

/// A number of competitors in [`MIN_COMPETITORS`]..=[`MAX_COMPETITORS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "usize", into = "usize")]
pub struct CompetitorCount(usize);

impl CompetitorCount {
    pub fn try_new(count: usize) -> Result<Self, CostError> {
        if (MIN_COMPETITORS..=MAX_COMPETITORS).contains(&count) {
            Ok(Self(count))
        } else {
            Err(CostError::CompetitorCountOutOfRange { count })
        }
    }

    pub fn get(self) -> usize {
        self.0
    }

    /// Cost of a competition with this many competitors: $0.02 each.
    pub fn competition_cost(self) -> Money {
        // At most 16, so the conversion and the product are exact.
        let count = i64::try_from(self.0).expect("at most MAX_COMPETITORS");
        cents(COST_PER_COMPETITOR_CENTS * count)
    }
}

impl Default for CompetitorCount {
    fn default() -> Self {
        Self(DEFAULT_COMPETITORS)
    }
}

impl TryFrom<usize> for CompetitorCount {
    type Error = CostError;

    fn try_from(count: usize) -> Result<Self, Self::Error> {
        Self::try_new(count)
    }
}

impl From<CompetitorCount> for usize {
    fn from(count: CompetitorCount) -> usize {
        count.0
    }
}

/// Cost of a competition: $0.02 × `competitors`, which must be in
/// [`MIN_COMPETITORS`]..=[`MAX_COMPETITORS`].
pub fn competition_cost(competitors: usize) -> Result<Money, CostError> {
    Ok(CompetitorCount::try_new(competitors)?.competition_cost())
}

/// A small, whole number of cents (at most $1.28 here), always in range.
fn cents(amount: i64) -> Money {
    Money::from_cents(amount).expect("a few cents are always in range")
}

/// Which FinOps tag a value was meant for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagField {
    Application,
    Environment,
    TenantId,
    CostCenter,
    Owner,
    Version,
}

/// What is wrong with a FinOps tag value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TagValueError {
    #[error("tag value is empty")]
    Empty,
    #[error("tag value is {len} characters long, at most {MAX_TAG_LEN} are allowed")]
    TooLong { len: usize },
    /// `position` is the character index of the first offending character.
    #[error("tag value has a character outside [A-Za-z0-9._-] at position {position}")]
    InvalidCharacter { character: char, position: usize },
}

/// A FinOps tag value that broke the rules, with the tag it was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("FinOps tag {field:?} is invalid: {error}")]
pub struct FinOpsTagError {
    pub field: TagField,
    pub error: TagValueError,
}

impl FinOpsTagError {
    /// Tag errors are about the request itself: retrying cannot help.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// One validated FinOps tag value: 1..=[`MAX_TAG_LEN`] characters of
/// `[A-Za-z0-9._-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TagValue(String);

impl TagValue {
    pub fn parse(input: &str) -> Result<Self, TagValueError> {
        if input.is_empty() {
            return Err(TagValueError::Empty);
        }
        let len = input.chars().count();
        if len > MAX_TAG_LEN {
            return Err(TagValueError::TooLong { len });
        }
        if let Some((position, character)) = input.chars().enumerate().find(|(_, c)| !allowed(*c)) {
            return Err(TagValueError::InvalidCharacter {
                character,
                position,
            });
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn allowed(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-')
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TagValue {
    type Error = TagValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TagValue> for String {
    fn from(value: TagValue) -> String {
        value.0
    }
}

/// Unvalidated FinOps tags as they arrive, before [`FinOpsTags::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawFinOpsTags<'a> {
    pub application: &'a str,
    pub environment: &'a str,
    pub tenant_id: &'a str,
    pub cost_center: &'a str,
    pub owner: &'a str,
    pub version: &'a str,
}

/// The chargeback tags every costed operation carries (the seed's six tags,
/// `camelCase` on the wire: `tenantId`, `costCenter`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinOpsTags {
    pub application: TagValue,
    pub environment: TagValue,
    pub tenant_id: TagValue,
    pub cost_center: TagValue,
    pub owner: TagValue,
    pub version: TagValue,
}

impl FinOpsTags {
    /// Validates every tag, reporting the first invalid one in field order.
    pub fn parse(raw: RawFinOpsTags<'_>) -> Result<Self, FinOpsTagError> {
        let tag = |field: TagField, value: &str| {
            TagValue::parse(value).map_err(|error| FinOpsTagError { field, error })
        };
        Ok(Self {
            application: tag(TagField::Application, raw.application)?,
            environment: tag(TagField::Environment, raw.environment)?,
            tenant_id: tag(TagField::TenantId, raw.tenant_id)?,
            cost_center: tag(TagField::CostCenter, raw.cost_center)?,
            owner: tag(TagField::Owner, raw.owner)?,
            version: tag(TagField::Version, raw.version)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> Money {
        Money::parse(s).expect("valid money literal")
    }

    fn seed_tags() -> RawFinOpsTags<'static> {
        RawFinOpsTags {
            application: "lapverse-monitoring",
            environment: "dev",
            tenant_id: "acme",
            cost_center: "campaign-9000",
            owner: "data-team",
            version: "2.0.0",
        }
    }

    #[test]
    fn task_cost_is_one_cent_times_the_multiplier() {
        assert_eq!(task_cost(Complexity::Simple), money("0.01"));
        assert_eq!(task_cost(Complexity::Intermediate), money("0.02"));
        assert_eq!(task_cost(Complexity::Advanced), money("0.04"));
        assert_eq!(task_cost(Complexity::Expert), money("0.08"));
    }

    #[test]
    fn complexity_parses_its_wire_names_only() {
        for complexity in Complexity::ALL {
            assert_eq!(complexity.as_str().parse(), Ok(complexity));
        }
        assert_eq!(
            "Expert".parse::<Complexity>(),
            Err(CostError::UnknownComplexity)
        );
        assert_eq!("".parse::<Complexity>(), Err(CostError::UnknownComplexity));
    }

    #[test]
    fn complexity_serializes_in_snake_case() {
        let json = serde_json::to_string(&Complexity::Intermediate).expect("serializes");
        assert_eq!(json, "\"intermediate\"");
    }

    #[test]
    fn competition_cost_is_two_cents_per_competitor() {
        assert_eq!(competition_cost(1), Ok(money("0.02")));
        assert_eq!(competition_cost(DEFAULT_COMPETITORS), Ok(money("0.08")));
        assert_eq!(competition_cost(16), Ok(money("0.32")));
        assert_eq!(CompetitorCount::default().competition_cost(), money("0.08"));
    }

    #[test]
    fn competition_needs_one_to_sixteen_competitors() {
        assert_eq!(
            competition_cost(0),
            Err(CostError::CompetitorCountOutOfRange { count: 0 })
        );
        assert_eq!(
            competition_cost(17),
            Err(CostError::CompetitorCountOutOfRange { count: 17 })
        );
        assert!(!CostError::CompetitorCountOutOfRange { count: 0 }.is_retryable());
    }

    #[test]
    fn competitor_count_deserializes_through_validation() {
        let ok: CompetitorCount = serde_json::from_str("4").expect("in range");
        assert_eq!(ok.get(), 4);
        assert!(serde_json::from_str::<CompetitorCount>("17").is_err());
    }

    #[test]
    fn the_seed_tags_are_valid() {
        let tags = FinOpsTags::parse(seed_tags()).expect("seed tags are valid");
        assert_eq!(tags.tenant_id.as_str(), "acme");
        assert_eq!(tags.version.as_str(), "2.0.0");
    }

    #[test]
    fn tags_serialize_in_camel_case_and_round_trip() {
        let tags = FinOpsTags::parse(seed_tags()).expect("seed tags are valid");
        let json = serde_json::to_value(&tags).expect("serializes");
        assert_eq!(json["tenantId"], "acme");
        assert_eq!(json["costCenter"], "campaign-9000");
        let back: FinOpsTags = serde_json::from_value(json).expect("round trips");
        assert_eq!(back, tags);
    }

    #[test]
    fn deserializing_an_invalid_tag_fails() {
        let mut json = serde_json::to_value(FinOpsTags::parse(seed_tags()).expect("valid"))
            .expect("serializes");
        json["owner"] = serde_json::Value::String("data team".to_owned());
        assert!(serde_json::from_value::<FinOpsTags>(json).is_err());
    }

    #[test]
    fn an_empty_tag_is_rejected_naming_the_field() {
        let raw = RawFinOpsTags {
            cost_center: "",
            ..seed_tags()
        };
        assert_eq!(
            FinOpsTags::parse(raw),
            Err(FinOpsTagError {
                field: TagField::CostCenter,
                error: TagValueError::Empty,
            })
        );
    }

    #[test]
    fn a_tag_of_64_characters_is_accepted_and_65_rejected() {
        let max = "a".repeat(MAX_TAG_LEN);
        assert!(TagValue::parse(&max).is_ok());
        let too_long = "a".repeat(MAX_TAG_LEN + 1);
        assert_eq!(
            TagValue::parse(&too_long),
            Err(TagValueError::TooLong { len: 65 })
        );
    }

    #[test]
    fn tags_allow_only_letters_digits_dot_underscore_and_dash() {
        assert!(TagValue::parse("A-z_0.9").is_ok());
        assert_eq!(
            TagValue::parse("data team"),
            Err(TagValueError::InvalidCharacter {
                character: ' ',
                position: 4,
            })
        );
        assert_eq!(
            TagValue::parse("café"),
            Err(TagValueError::InvalidCharacter {
                character: 'é',
                position: 3,
            })
        );
        let raw = RawFinOpsTags {
            environment: "prod/eu",
            ..seed_tags()
        };
        assert_eq!(
            FinOpsTags::parse(raw),
            Err(FinOpsTagError {
                field: TagField::Environment,
                error: TagValueError::InvalidCharacter {
                    character: '/',
                    position: 4,
                },
            })
        );
    }

    #[test]
    fn the_first_invalid_tag_in_field_order_is_reported() {
        let raw = RawFinOpsTags {
            application: "",
            version: "",
            ..seed_tags()
        };
        assert_eq!(
            FinOpsTags::parse(raw).map_err(|e| e.field),
            Err(TagField::Application)
        );
    }
}
