//! A tenant as an aggregate: its MRR, cost-center default, SLO, margin
//! threshold, feature flags and webhooks. Every change is an event that
//! carries the old and the new value, so an auditor reads who changed what
//! when from the event log alone (the "who" is the command metadata's actor,
//! which cqrs-es copies onto each event). The aggregate id is the tenant id.
//!
//! Setting a value to what it already is emits nothing. Flags and webhooks
//! are bounded ([`MAX_FLAGS`], [`MAX_WEBHOOKS`]).
//!
//! A tenant also holds its registered time series (what tasks and
//! self-compete rounds read when a request carries none) and its forecasting
//! variants: the production variant, and the stable one it replaced. A
//! promotion makes a round's champion the production variant and sets the
//! [`CHAMPION_ROLLOUT_FLAG`] to [`CHAMPION_ROLLOUT_PERCENT`] %, so only that
//! share of targeting keys gets the champion ([`Tenant::variant_for`]) until
//! an operator raises the flag (full rollout) or disables it (rollback).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::cost::TagValue;
use super::flags::{FlagState, RolloutPercent};
use super::guardrail::{MarginGuardrail, MarginThreshold};
use super::slo::{Slo, SloError, SloTarget};
use super::work::{validate_series, SeriesInput};
use crate::forecast::Strategy;
use crate::money::Money;

/// Most feature flags per tenant.
pub const MAX_FLAGS: usize = 200;

/// Most webhooks per tenant.
pub const MAX_WEBHOOKS: usize = 20;

/// Longest tenant display name, in characters.
pub const MAX_TENANT_NAME_LEN: usize = 100;

/// Longest flag name or webhook id, in characters.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// Longest webhook URL, in bytes (a valid one is ASCII, so also characters).
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;

/// The flag that rolls a newly promoted champion out to a share of keys.
pub const CHAMPION_ROLLOUT_FLAG: &str = "champion-rollout";

/// The share of targeting keys a promotion gives the new production variant.
pub const CHAMPION_ROLLOUT_PERCENT: u32 = 10;

const _: () = assert!(CHAMPION_ROLLOUT_PERCENT <= super::flags::BUCKETS);

/// How many promoted competition ids a tenant remembers to make a repeated
/// promotion a no-op (the oldest is forgotten first).
pub const MAX_REMEMBERED_PROMOTIONS: usize = 64;

/// The production variant before any promotion.
pub const DEFAULT_PRODUCTION_VARIANT: Strategy = Strategy::Balanced;

/// What is wrong with a webhook URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookUrlProblem {
    /// Longer than [`MAX_WEBHOOK_URL_LEN`] bytes.
    TooLong {
        len: usize,
    },
    /// A space, a control character or a non-ASCII character (IRIs must be
    /// percent- or punycode-encoded).
    InvalidCharacter,
    /// Not `http://` or `https://`.
    UnsupportedScheme,
    /// `user:password@` before the host.
    CredentialsInUrl,
    MissingHost,
    /// A host character outside `[A-Za-z0-9.-]`, or a malformed `[IPv6]`.
    InvalidHost,
    /// A port that is empty, not a number, or outside 1..=65535.
    InvalidPort,
}

impl fmt::Display for WebhookUrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len } => {
                write!(f, "{len} bytes long, at most {MAX_WEBHOOK_URL_LEN}")
            }
            Self::InvalidCharacter => {
                f.write_str("contains a space, control or non-ASCII character")
            }
            Self::UnsupportedScheme => f.write_str("scheme must be http or https"),
            Self::CredentialsInUrl => f.write_str("must not contain credentials"),
            Self::MissingHost => f.write_str("has no host"),
            Self::InvalidHost => f.write_str("has an invalid host"),
            Self::InvalidPort => f.write_str("has an invalid port"),
        }
    }
}

/// Why a tenant command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("a tenant with this id is already registered")]
    TenantAlreadyRegistered,
    #[error("no tenant with this id")]
    TenantNotFound,
    #[error("tenant name must be 1..={MAX_TENANT_NAME_LEN} characters, no control characters, no surrounding spaces")]
    InvalidTenantName,
    #[error("MRR must not be negative")]
    NegativeMrr,
    #[error("flag name must be 1..={MAX_IDENTIFIER_LEN} characters of [a-z0-9_.-]")]
    InvalidFlagName,
    #[error("no flag named {flag}")]
    FlagNotFound { flag: FlagName },
    #[error("a tenant has at most {MAX_FLAGS} flags")]
    TooManyFlags,
    #[error("webhook id must be 1..={MAX_IDENTIFIER_LEN} characters of [a-z0-9_.-]")]
    InvalidWebhookId,
    #[error("webhook URL {reason}")]
    InvalidWebhookUrl { reason: WebhookUrlProblem },
    #[error("a webhook must subscribe to at least one event")]
    NoWebhookEvents,
    #[error("webhook {webhook_id} is already registered with another URL or events")]
    WebhookIdInUse { webhook_id: WebhookId },
    #[error("no webhook with id {webhook_id}")]
    WebhookNotFound { webhook_id: WebhookId },
    #[error("a tenant has at most {MAX_WEBHOOKS} webhooks")]
    TooManyWebhooks,
    #[error("invalid time series: {0}")]
    InvalidSeries(String),
    #[error("the champion is already the production variant")]
    AlreadyProduction,
}

impl TenantError {
    /// The same command against the same state always fails the same way:
    /// the input or the tenant's state has to change first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::TenantAlreadyRegistered
            | Self::TenantNotFound
            | Self::InvalidTenantName
            | Self::NegativeMrr
            | Self::InvalidFlagName
            | Self::FlagNotFound { .. }
            | Self::TooManyFlags
            | Self::InvalidWebhookId
            | Self::InvalidWebhookUrl { .. }
            | Self::NoWebhookEvents
            | Self::WebhookIdInUse { .. }
            | Self::WebhookNotFound { .. }
            | Self::TooManyWebhooks
            | Self::InvalidSeries(_)
            | Self::AlreadyProduction => false,
        }
    }
}

fn is_identifier(input: &str) -> bool {
    !input.is_empty()
        && input.len() <= MAX_IDENTIFIER_LEN
        && input.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// Defines a string newtype with a `parse` constructor and string serde.
macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $check:expr, $error:expr) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, TenantError> {
                let check: fn(&str) -> bool = $check;
                check(input).then(|| Self(input.to_owned())).ok_or($error)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = TenantError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

string_newtype!(
    /// A tenant's display name: 1..=[`MAX_TENANT_NAME_LEN`] characters, no
    /// control characters, no leading or trailing whitespace.
    TenantName,
    |s| {
        let len = s.chars().count();
        (1..=MAX_TENANT_NAME_LEN).contains(&len)
            && s.trim() == s
            && !s.chars().any(char::is_control)
    },
    TenantError::InvalidTenantName
);

string_newtype!(
    /// A feature flag's name: 1..=[`MAX_IDENTIFIER_LEN`] characters of
    /// `[a-z0-9_.-]`.
    FlagName,
    is_identifier,
    TenantError::InvalidFlagName
);

string_newtype!(
    /// A webhook's id, chosen by the caller (a UUID fits):
    /// 1..=[`MAX_IDENTIFIER_LEN`] characters of `[a-z0-9_.-]`.
    WebhookId,
    is_identifier,
    TenantError::InvalidWebhookId
);

/// An `http` or `https` URL of at most [`MAX_WEBHOOK_URL_LEN`] bytes, with a
/// host, an optional port and no `user:password@`. Kept as given.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(input: &str) -> Result<Self, TenantError> {
        check_url(input).map_err(|reason| TenantError::InvalidWebhookUrl { reason })?;
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn strip_prefix_ignore_case<'a>(input: &'a str, prefix: &str) -> Option<&'a str> {
    let head = input.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &input[prefix.len()..])
}

fn check_url(input: &str) -> Result<(), WebhookUrlProblem> {
    if input.len() > MAX_WEBHOOK_URL_LEN {
        return Err(WebhookUrlProblem::TooLong { len: input.len() });
    }
    if !input.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WebhookUrlProblem::InvalidCharacter);
    }
    let rest = strip_prefix_ignore_case(input, "https://")
        .or_else(|| strip_prefix_ignore_case(input, "http://"))
        .ok_or(WebhookUrlProblem::UnsupportedScheme)?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err(WebhookUrlProblem::CredentialsInUrl);
    }
    let (host, port) = split_host_port(authority)?;
    check_host(host)?;
    match port {
        None => Ok(()),
        Some(port) => check_port(port),
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), WebhookUrlProblem> {
    if authority.starts_with('[') {
        let close = authority.find(']').ok_or(WebhookUrlProblem::InvalidHost)?;
        let (host, after) = authority.split_at(close + 1);
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|port| (host, Some(port)))
                .ok_or(WebhookUrlProblem::InvalidHost),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn check_host(host: &str) -> Result<(), WebhookUrlProblem> {
    if host.is_empty() {
        return Err(WebhookUrlProblem::MissingHost);
    }
    let valid = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => {
            ipv6.contains(':')
                && ipv6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        }
        None => host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')),
    };
    valid.then_some(()).ok_or(WebhookUrlProblem::InvalidHost)
}

fn check_port(port: &str) -> Result<(), WebhookUrlProblem> {
    let valid = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    valid.then_some(()).ok_or(WebhookUrlProblem::InvalidPort)
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for WebhookUrl {
    type Error = TenantError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<WebhookUrl> for String {
    fn from(value: WebhookUrl) -> String {
        value.0
    }
}

/// What a webhook can subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    CompetitionCompleted,
    ChampionPromoted,
    /// A breaking version of a capsule the tenant (or one of its users) has installed was
    /// published.
    CapsuleBreakingVersion,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 3] = [
        WebhookEvent::CompetitionCompleted,
        WebhookEvent::ChampionPromoted,
        WebhookEvent::CapsuleBreakingVersion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CompetitionCompleted => "competition_completed",
            Self::ChampionPromoted => "champion_promoted",
            Self::CapsuleBreakingVersion => "capsule_breaking_version",
        }
    }
}

/// A registered webhook: where to deliver, and which events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: WebhookUrl,
    /// Never empty.
    pub events: BTreeSet<WebhookEvent>,
}

/// A tenant's SLO in storable form: an [`Slo`] (target and period in days).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "SloRecord", into = "SloRecord")]
pub struct TenantSlo(Slo);

#[derive(Serialize, Deserialize)]
struct SloRecord {
    target: SloTarget,
    period_days: u32,
}

impl TenantSlo {
    pub fn try_new(target: SloTarget, period_days: u32) -> Result<Self, SloError> {
        Slo::try_new(target, period_days).map(Self)
    }

    pub fn slo(self) -> Slo {
        self.0
    }
}

impl From<Slo> for TenantSlo {
    fn from(slo: Slo) -> Self {
        Self(slo)
    }
}

impl TryFrom<SloRecord> for TenantSlo {
    type Error = SloError;

    fn try_from(record: SloRecord) -> Result<Self, Self::Error> {
        Self::try_new(record.target, record.period_days)
    }
}

impl From<TenantSlo> for SloRecord {
    fn from(slo: TenantSlo) -> Self {
        Self {
            target: slo.0.target(),
            period_days: slo.0.period_days(),
        }
    }
}

/// Commands on a tenant. Not `Eq`: a series holds floats.
#[derive(Clone, Debug, PartialEq)]
pub enum TenantCommand {
    Register {
        name: TenantName,
        mrr: Money,
        cost_center: TagValue,
        slo: TenantSlo,
        margin_threshold: MarginThreshold,
        occurred_at: DateTime<Utc>,
    },
    ChangeMrr {
        mrr: Money,
        occurred_at: DateTime<Utc>,
    },
    ChangeCostCenter {
        cost_center: TagValue,
        occurred_at: DateTime<Utc>,
    },
    ChangeSlo {
        slo: TenantSlo,
        occurred_at: DateTime<Utc>,
    },
    ChangeMarginThreshold {
        margin_threshold: MarginThreshold,
        occurred_at: DateTime<Utc>,
    },
    /// Creates the flag or changes it. Its stickiness group is its name.
    SetFlag {
        flag: FlagName,
        enabled: bool,
        rollout_percent: RolloutPercent,
        occurred_at: DateTime<Utc>,
    },
    RemoveFlag {
        flag: FlagName,
        occurred_at: DateTime<Utc>,
    },
    RegisterWebhook {
        webhook_id: WebhookId,
        url: WebhookUrl,
        events: BTreeSet<WebhookEvent>,
        occurred_at: DateTime<Utc>,
    },
    RemoveWebhook {
        webhook_id: WebhookId,
        occurred_at: DateTime<Utc>,
    },
    /// Registers the series tasks and rounds use when a request carries none.
    SetSeries {
        series: SeriesInput,
        occurred_at: DateTime<Utc>,
    },
    /// Makes a round's champion the production variant and rolls it out to
    /// [`CHAMPION_ROLLOUT_PERCENT`] % of keys. `win_rate_delta` is the
    /// round's, recorded as decided.
    PromoteVariant {
        competition_id: String,
        champion: Strategy,
        win_rate_delta: Decimal,
        occurred_at: DateTime<Utc>,
    },
}

/// Events of a tenant. Not `Eq`: a series holds floats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TenantEvent {
    TenantRegistered {
        name: TenantName,
        mrr: Money,
        cost_center: TagValue,
        slo: TenantSlo,
        margin_threshold: MarginThreshold,
        occurred_at: DateTime<Utc>,
    },
    MrrChanged {
        from: Money,
        to: Money,
        occurred_at: DateTime<Utc>,
    },
    CostCenterChanged {
        from: TagValue,
        to: TagValue,
        occurred_at: DateTime<Utc>,
    },
    SloChanged {
        from: TenantSlo,
        to: TenantSlo,
        occurred_at: DateTime<Utc>,
    },
    MarginThresholdChanged {
        from: MarginThreshold,
        to: MarginThreshold,
        occurred_at: DateTime<Utc>,
    },
    /// `from` is `None` when the flag is new.
    FlagChanged {
        flag: FlagName,
        from: Option<FlagState>,
        to: FlagState,
        occurred_at: DateTime<Utc>,
    },
    FlagRemoved {
        flag: FlagName,
        from: FlagState,
        occurred_at: DateTime<Utc>,
    },
    WebhookRegistered {
        webhook_id: WebhookId,
        webhook: Webhook,
        occurred_at: DateTime<Utc>,
    },
    WebhookRemoved {
        webhook_id: WebhookId,
        from: Webhook,
        occurred_at: DateTime<Utc>,
    },
    /// The tenant's registered series, replaced whole; `points` is its length.
    SeriesRecorded {
        points: usize,
        series: SeriesInput,
        occurred_at: DateTime<Utc>,
    },
    /// `to` (a round's champion) became the production variant, `from` the
    /// stable one. Followed in the same commit by the
    /// [`CHAMPION_ROLLOUT_FLAG`]'s `FlagChanged` (unless the flag already had
    /// that state).
    VariantPromoted {
        competition_id: String,
        from: Strategy,
        to: Strategy,
        win_rate_delta: Decimal,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TenantRegistered { .. } => "TenantRegistered",
            Self::MrrChanged { .. } => "MrrChanged",
            Self::CostCenterChanged { .. } => "CostCenterChanged",
            Self::SloChanged { .. } => "SloChanged",
            Self::MarginThresholdChanged { .. } => "MarginThresholdChanged",
            Self::FlagChanged { .. } => "FlagChanged",
            Self::FlagRemoved { .. } => "FlagRemoved",
            Self::WebhookRegistered { .. } => "WebhookRegistered",
            Self::WebhookRemoved { .. } => "WebhookRemoved",
            Self::SeriesRecorded { .. } => "SeriesRecorded",
            Self::VariantPromoted { .. } => "VariantPromoted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::versioning::current_version(Tenant::TYPE, &self.event_type()).to_string()
    }
}

/// A tenant's forecasting variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variants {
    /// The latest promoted champion ([`DEFAULT_PRODUCTION_VARIANT`] before
    /// any promotion).
    pub production: Strategy,
    /// The production variant before the last promotion (equal to
    /// `production` before any promotion).
    pub stable: Strategy,
    /// The last [`MAX_REMEMBERED_PROMOTIONS`] promoted competition ids,
    /// oldest first.
    pub promoted_competitions: Vec<String>,
}

impl Variants {
    /// Whether `competition_id` is among the remembered promotions.
    pub fn was_promoted(&self, competition_id: &str) -> bool {
        self.promoted_competitions
            .iter()
            .any(|id| id == competition_id)
    }
}

impl Default for Variants {
    fn default() -> Self {
        Self {
            production: DEFAULT_PRODUCTION_VARIANT,
            stable: DEFAULT_PRODUCTION_VARIANT,
            promoted_competitions: Vec::new(),
        }
    }
}

/// A registered tenant's settings. Fields added after the first release are
/// `#[serde(default)]`, so older snapshots still load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantProfile {
    pub name: TenantName,
    pub mrr: Money,
    pub cost_center: TagValue,
    pub slo: TenantSlo,
    pub margin_threshold: MarginThreshold,
    pub flags: BTreeMap<FlagName, FlagState>,
    pub webhooks: BTreeMap<WebhookId, Webhook>,
    #[serde(default)]
    pub series: Option<SeriesInput>,
    #[serde(default)]
    pub variants: Variants,
}

/// One tenant. The aggregate id is the tenant id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    profile: Option<TenantProfile>,
}

impl Tenant {
    pub fn is_registered(&self) -> bool {
        self.profile.is_some()
    }

    pub fn profile(&self) -> Option<&TenantProfile> {
        self.profile.as_ref()
    }

    pub fn name(&self) -> Option<&TenantName> {
        self.profile.as_ref().map(|p| &p.name)
    }

    pub fn mrr(&self) -> Option<Money> {
        self.profile.as_ref().map(|p| p.mrr)
    }

    pub fn cost_center(&self) -> Option<&TagValue> {
        self.profile.as_ref().map(|p| &p.cost_center)
    }

    pub fn slo(&self) -> Option<Slo> {
        self.profile.as_ref().map(|p| p.slo.slo())
    }

    pub fn margin_threshold(&self) -> Option<MarginThreshold> {
        self.profile.as_ref().map(|p| p.margin_threshold)
    }

    /// MRR and threshold together, ready for [`MarginGuardrail::check`].
    pub fn margin_guardrail(&self) -> Option<MarginGuardrail> {
        self.profile.as_ref().map(|p| MarginGuardrail {
            mrr: p.mrr,
            threshold: p.margin_threshold,
        })
    }

    pub fn flag(&self, name: &str) -> Option<&FlagState> {
        self.profile.as_ref()?.flags.get(name)
    }

    /// Is flag `name` on for targeting key `key`? Unknown flags are off.
    pub fn is_flag_on(&self, name: &str, key: &str) -> bool {
        self.flag(name).is_some_and(|f| f.is_enabled_for(key))
    }

    /// Webhooks by id; empty when unregistered.
    pub fn webhooks(&self) -> impl Iterator<Item = (&WebhookId, &Webhook)> {
        self.profile.iter().flat_map(|p| p.webhooks.iter())
    }

    /// The registered time series, if any.
    pub fn series(&self) -> Option<&SeriesInput> {
        self.profile.as_ref()?.series.as_ref()
    }

    /// The latest promoted champion; [`DEFAULT_PRODUCTION_VARIANT`] before
    /// any promotion.
    pub fn production_variant(&self) -> Strategy {
        self.profile
            .as_ref()
            .map_or(DEFAULT_PRODUCTION_VARIANT, |p| p.variants.production)
    }

    /// The production variant before the last promotion; the production
    /// variant itself before any promotion.
    pub fn stable_variant(&self) -> Strategy {
        self.profile
            .as_ref()
            .map_or(DEFAULT_PRODUCTION_VARIANT, |p| p.variants.stable)
    }

    /// Whether a round's champion was already promoted (among the last
    /// [`MAX_REMEMBERED_PROMOTIONS`]).
    pub fn was_promoted(&self, competition_id: &str) -> bool {
        self.profile
            .as_ref()
            .is_some_and(|p| p.variants.was_promoted(competition_id))
    }

    /// The variant that serves `targeting_key`: the production variant when
    /// the [`CHAMPION_ROLLOUT_FLAG`] is on for the key, else the stable one.
    /// Sticky: the same key gets the same answer until the flag or the
    /// variants change.
    pub fn variant_for(&self, targeting_key: &str) -> Strategy {
        if self.is_flag_on(CHAMPION_ROLLOUT_FLAG, targeting_key) {
            self.production_variant()
        } else {
            self.stable_variant()
        }
    }

    pub fn decide(&self, command: TenantCommand) -> Result<Vec<TenantEvent>, TenantError> {
        match (&self.profile, command) {
            (
                None,
                TenantCommand::Register {
                    name,
                    mrr,
                    cost_center,
                    slo,
                    margin_threshold,
                    occurred_at,
                },
            ) => {
                check_mrr(mrr)?;
                Ok(vec![TenantEvent::TenantRegistered {
                    name,
                    mrr,
                    cost_center,
                    slo,
                    margin_threshold,
                    occurred_at,
                }])
            }
            (None, _) => Err(TenantError::TenantNotFound),
            (Some(profile), command) => decide_registered(profile, command),
        }
    }
}

fn check_mrr(mrr: Money) -> Result<(), TenantError> {
    if mrr.is_negative() {
        return Err(TenantError::NegativeMrr);
    }
    Ok(())
}

/// `event` unless `from == to`.
fn if_changed<T: PartialEq>(
    from: &T,
    to: &T,
    event: impl FnOnce() -> TenantEvent,
) -> Vec<TenantEvent> {
    if from == to {
        vec![]
    } else {
        vec![event()]
    }
}

fn decide_registered(
    profile: &TenantProfile,
    command: TenantCommand,
) -> Result<Vec<TenantEvent>, TenantError> {
    match command {
        TenantCommand::Register { .. } => Err(TenantError::TenantAlreadyRegistered),
        TenantCommand::ChangeMrr { mrr, occurred_at } => {
            check_mrr(mrr)?;
            Ok(if_changed(&profile.mrr, &mrr, || TenantEvent::MrrChanged {
                from: profile.mrr,
                to: mrr,
                occurred_at,
            }))
        }
        TenantCommand::ChangeCostCenter {
            cost_center,
            occurred_at,
        } => Ok(if_changed(&profile.cost_center, &cost_center, || {
            TenantEvent::CostCenterChanged {
                from: profile.cost_center.clone(),
                to: cost_center.clone(),
                occurred_at,
            }
        })),
        TenantCommand::ChangeSlo { slo, occurred_at } => {
            Ok(if_changed(&profile.slo, &slo, || TenantEvent::SloChanged {
                from: profile.slo,
                to: slo,
                occurred_at,
            }))
        }
        TenantCommand::ChangeMarginThreshold {
            margin_threshold,
            occurred_at,
        } => Ok(if_changed(
            &profile.margin_threshold,
            &margin_threshold,
            || TenantEvent::MarginThresholdChanged {
                from: profile.margin_threshold,
                to: margin_threshold,
                occurred_at,
            },
        )),
        TenantCommand::SetFlag {
            flag,
            enabled,
            rollout_percent,
            occurred_at,
        } => decide_set_flag(profile, flag, enabled, rollout_percent, occurred_at),
        TenantCommand::RemoveFlag { flag, occurred_at } => match profile.flags.get(&flag) {
            None => Err(TenantError::FlagNotFound { flag }),
            Some(from) => Ok(vec![TenantEvent::FlagRemoved {
                from: from.clone(),
                flag,
                occurred_at,
            }]),
        },
        TenantCommand::RegisterWebhook {
            webhook_id,
            url,
            events,
            occurred_at,
        } => decide_register_webhook(profile, webhook_id, Webhook { url, events }, occurred_at),
        TenantCommand::RemoveWebhook {
            webhook_id,
            occurred_at,
        } => match profile.webhooks.get(&webhook_id) {
            None => Err(TenantError::WebhookNotFound { webhook_id }),
            Some(from) => Ok(vec![TenantEvent::WebhookRemoved {
                from: from.clone(),
                webhook_id,
                occurred_at,
            }]),
        },
        TenantCommand::SetSeries {
            series,
            occurred_at,
        } => decide_set_series(profile, series, occurred_at),
        TenantCommand::PromoteVariant {
            competition_id,
            champion,
            win_rate_delta,
            occurred_at,
        } => decide_promote_variant(
            profile,
            competition_id,
            champion,
            win_rate_delta,
            occurred_at,
        ),
    }
}

fn decide_set_series(
    profile: &TenantProfile,
    series: SeriesInput,
    occurred_at: DateTime<Utc>,
) -> Result<Vec<TenantEvent>, TenantError> {
    validate_series(&series).map_err(|e| TenantError::InvalidSeries(e.to_string()))?;
    if profile.series.as_ref() == Some(&series) {
        return Ok(vec![]);
    }
    Ok(vec![TenantEvent::SeriesRecorded {
        points: series.values.len(),
        series,
        occurred_at,
    }])
}

/// The [`CHAMPION_ROLLOUT_FLAG`] as a name (it is a valid one: tested).
fn champion_rollout_flag() -> FlagName {
    FlagName(CHAMPION_ROLLOUT_FLAG.to_owned())
}

/// The rollout a promotion sets: [`CHAMPION_ROLLOUT_PERCENT`] %.
fn champion_rollout_percent() -> RolloutPercent {
    RolloutPercent::try_new(CHAMPION_ROLLOUT_PERCENT)
        .expect("CHAMPION_ROLLOUT_PERCENT <= 100, asserted at compile time")
}

/// `VariantPromoted`, then the rollout flag's `FlagChanged` (omitted when the
/// flag already has that state). A competition already promoted gives no
/// events, so a retried promotion is harmless; that check comes first, as
/// after a promotion its champion is the production variant.
fn decide_promote_variant(
    profile: &TenantProfile,
    competition_id: String,
    champion: Strategy,
    win_rate_delta: Decimal,
    occurred_at: DateTime<Utc>,
) -> Result<Vec<TenantEvent>, TenantError> {
    let variants = &profile.variants;
    if variants.was_promoted(&competition_id) {
        return Ok(vec![]);
    }
    if champion == variants.production {
        return Err(TenantError::AlreadyProduction);
    }
    let flag_events = decide_set_flag(
        profile,
        champion_rollout_flag(),
        true,
        champion_rollout_percent(),
        occurred_at,
    )?;
    let mut events = vec![TenantEvent::VariantPromoted {
        competition_id,
        from: variants.production,
        to: champion,
        win_rate_delta,
        occurred_at,
    }];
    events.extend(flag_events);
    Ok(events)
}

fn decide_set_flag(
    profile: &TenantProfile,
    flag: FlagName,
    enabled: bool,
    rollout_percent: RolloutPercent,
    occurred_at: DateTime<Utc>,
) -> Result<Vec<TenantEvent>, TenantError> {
    let from = profile.flags.get(&flag).cloned();
    if from.is_none() && profile.flags.len() >= MAX_FLAGS {
        return Err(TenantError::TooManyFlags);
    }
    let to = FlagState {
        enabled,
        rollout_percent,
        group_id: from
            .as_ref()
            .map_or_else(|| flag.as_str().to_owned(), |f| f.group_id.clone()),
    };
    if from.as_ref() == Some(&to) {
        return Ok(vec![]);
    }
    Ok(vec![TenantEvent::FlagChanged {
        flag,
        from,
        to,
        occurred_at,
    }])
}

fn decide_register_webhook(
    profile: &TenantProfile,
    webhook_id: WebhookId,
    webhook: Webhook,
    occurred_at: DateTime<Utc>,
) -> Result<Vec<TenantEvent>, TenantError> {
    if webhook.events.is_empty() {
        return Err(TenantError::NoWebhookEvents);
    }
    match profile.webhooks.get(&webhook_id) {
        Some(existing) if *existing == webhook => Ok(vec![]),
        Some(_) => Err(TenantError::WebhookIdInUse { webhook_id }),
        None if profile.webhooks.len() >= MAX_WEBHOOKS => Err(TenantError::TooManyWebhooks),
        None => Ok(vec![TenantEvent::WebhookRegistered {
            webhook_id,
            webhook,
            occurred_at,
        }]),
    }
}

impl Aggregate for Tenant {
    const TYPE: &'static str = "tenant";
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = TenantError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _service: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if let TenantEvent::TenantRegistered {
            name,
            mrr,
            cost_center,
            slo,
            margin_threshold,
            ..
        } = event
        {
            self.profile = Some(TenantProfile {
                name,
                mrr,
                cost_center,
                slo,
                margin_threshold,
                flags: BTreeMap::new(),
                webhooks: BTreeMap::new(),
                series: None,
                variants: Variants::default(),
            });
            return;
        }
        // Every other event follows registration in a valid stream.
        let Some(profile) = self.profile.as_mut() else {
            return;
        };
        match event {
            TenantEvent::TenantRegistered { .. } => {}
            TenantEvent::MrrChanged { to, .. } => profile.mrr = to,
            TenantEvent::CostCenterChanged { to, .. } => profile.cost_center = to,
            TenantEvent::SloChanged { to, .. } => profile.slo = to,
            TenantEvent::MarginThresholdChanged { to, .. } => profile.margin_threshold = to,
            TenantEvent::FlagChanged { flag, to, .. } => {
                profile.flags.insert(flag, to);
            }
            TenantEvent::FlagRemoved { flag, .. } => {
                profile.flags.remove(&flag);
            }
            TenantEvent::WebhookRegistered {
                webhook_id,
                webhook,
                ..
            } => {
                profile.webhooks.insert(webhook_id, webhook);
            }
            TenantEvent::WebhookRemoved { webhook_id, .. } => {
                profile.webhooks.remove(&webhook_id);
            }
            TenantEvent::SeriesRecorded { series, .. } => profile.series = Some(series),
            TenantEvent::VariantPromoted {
                competition_id,
                from,
                to,
                ..
            } => {
                let variants = &mut profile.variants;
                variants.stable = from;
                variants.production = to;
                if variants.promoted_competitions.len() >= MAX_REMEMBERED_PROMOTIONS {
                    variants.promoted_competitions.remove(0);
                }
                variants.promoted_competitions.push(competition_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use std::str::FromStr;

    type Tf = TestFramework<Tenant>;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn money(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    fn tag(s: &str) -> TagValue {
        TagValue::parse(s).unwrap()
    }

    fn slo(target: &str, days: u32) -> TenantSlo {
        TenantSlo::try_new(
            SloTarget::try_new(Decimal::from_str(target).unwrap()).unwrap(),
            days,
        )
        .unwrap()
    }

    fn threshold(s: &str) -> MarginThreshold {
        MarginThreshold::try_new(Decimal::from_str(s).unwrap()).unwrap()
    }

    fn flag(s: &str) -> FlagName {
        FlagName::parse(s).unwrap()
    }

    fn pct(p: u32) -> RolloutPercent {
        RolloutPercent::try_new(p).unwrap()
    }

    fn hook_id(s: &str) -> WebhookId {
        WebhookId::parse(s).unwrap()
    }

    fn url(s: &str) -> WebhookUrl {
        WebhookUrl::parse(s).unwrap()
    }

    fn all_events() -> BTreeSet<WebhookEvent> {
        WebhookEvent::ALL.into_iter().collect()
    }

    fn register_with(mrr: Money) -> TenantCommand {
        TenantCommand::Register {
            name: TenantName::parse("Acme Corp").unwrap(),
            mrr,
            cost_center: tag("cc-100"),
            slo: slo("0.99", 30),
            margin_threshold: MarginThreshold::default(),
            occurred_at: at(),
        }
    }

    fn registered() -> TenantEvent {
        TenantEvent::TenantRegistered {
            name: TenantName::parse("Acme Corp").unwrap(),
            mrr: money("1000"),
            cost_center: tag("cc-100"),
            slo: slo("0.99", 30),
            margin_threshold: MarginThreshold::default(),
            occurred_at: at(),
        }
    }

    fn flag_state(name: &str, enabled: bool, percent: u32) -> FlagState {
        FlagState {
            enabled,
            rollout_percent: pct(percent),
            group_id: name.to_owned(),
        }
    }

    fn set_flag(name: &str, enabled: bool, percent: u32) -> TenantCommand {
        TenantCommand::SetFlag {
            flag: flag(name),
            enabled,
            rollout_percent: pct(percent),
            occurred_at: at(),
        }
    }

    fn flag_added(name: &str, enabled: bool, percent: u32) -> TenantEvent {
        TenantEvent::FlagChanged {
            flag: flag(name),
            from: None,
            to: flag_state(name, enabled, percent),
            occurred_at: at(),
        }
    }

    fn webhook() -> Webhook {
        Webhook {
            url: url("https://hooks.example.com/agora"),
            events: all_events(),
        }
    }

    fn register_webhook(id: &str, webhook: Webhook) -> TenantCommand {
        TenantCommand::RegisterWebhook {
            webhook_id: hook_id(id),
            url: webhook.url,
            events: webhook.events,
            occurred_at: at(),
        }
    }

    fn webhook_registered(id: &str) -> TenantEvent {
        TenantEvent::WebhookRegistered {
            webhook_id: hook_id(id),
            webhook: webhook(),
            occurred_at: at(),
        }
    }

    /// Every command but `Register`, for the not-registered path.
    fn commands_on_a_tenant() -> Vec<TenantCommand> {
        vec![
            TenantCommand::ChangeMrr {
                mrr: money("1"),
                occurred_at: at(),
            },
            TenantCommand::ChangeCostCenter {
                cost_center: tag("cc-1"),
                occurred_at: at(),
            },
            TenantCommand::ChangeSlo {
                slo: slo("0.999", 30),
                occurred_at: at(),
            },
            TenantCommand::ChangeMarginThreshold {
                margin_threshold: threshold("0.5"),
                occurred_at: at(),
            },
            set_flag("new-scoring", true, 10),
            TenantCommand::RemoveFlag {
                flag: flag("new-scoring"),
                occurred_at: at(),
            },
            register_webhook("h1", webhook()),
            TenantCommand::RemoveWebhook {
                webhook_id: hook_id("h1"),
                occurred_at: at(),
            },
            set_series(weekly()),
            promote("c1", Strategy::Experimental),
        ]
    }

    fn weekly() -> SeriesInput {
        SeriesInput {
            values: (0..28).map(|t| f64::from(t % 7)).collect(),
            season_length: Some(7),
        }
    }

    fn set_series(series: SeriesInput) -> TenantCommand {
        TenantCommand::SetSeries {
            series,
            occurred_at: at(),
        }
    }

    fn series_recorded(series: SeriesInput) -> TenantEvent {
        TenantEvent::SeriesRecorded {
            points: series.values.len(),
            series,
            occurred_at: at(),
        }
    }

    fn delta() -> Decimal {
        Decimal::from_str("0.4211").unwrap()
    }

    fn promote(competition_id: &str, champion: Strategy) -> TenantCommand {
        TenantCommand::PromoteVariant {
            competition_id: competition_id.to_owned(),
            champion,
            win_rate_delta: delta(),
            occurred_at: at(),
        }
    }

    fn promoted(competition_id: &str, from: Strategy, to: Strategy) -> TenantEvent {
        TenantEvent::VariantPromoted {
            competition_id: competition_id.to_owned(),
            from,
            to,
            win_rate_delta: delta(),
            occurred_at: at(),
        }
    }

    fn rollout(from: Option<FlagState>) -> TenantEvent {
        TenantEvent::FlagChanged {
            flag: flag(CHAMPION_ROLLOUT_FLAG),
            from,
            to: flag_state(CHAMPION_ROLLOUT_FLAG, true, CHAMPION_ROLLOUT_PERCENT),
            occurred_at: at(),
        }
    }

    /// A tenant after `events`.
    fn tenant_after(events: impl IntoIterator<Item = TenantEvent>) -> Tenant {
        let mut tenant = Tenant::default();
        for event in events {
            tenant.apply(event);
        }
        tenant
    }

    #[test]
    fn register_once() {
        Tf::with(())
            .given_no_previous_events()
            .when(register_with(money("1000")))
            .then_expect_events(vec![registered()]);
        Tf::with(())
            .given(vec![registered()])
            .when(register_with(money("1000")))
            .then_expect_error(TenantError::TenantAlreadyRegistered);
        Tf::with(())
            .given_no_previous_events()
            .when(register_with(money("-0.01")))
            .then_expect_error(TenantError::NegativeMrr);
    }

    #[test]
    fn every_command_needs_a_registered_tenant() {
        for command in commands_on_a_tenant() {
            Tf::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(TenantError::TenantNotFound);
        }
    }

    #[test]
    fn change_mrr_records_old_and_new() {
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeMrr {
                mrr: money("2500.50"),
                occurred_at: at(),
            })
            .then_expect_events(vec![TenantEvent::MrrChanged {
                from: money("1000"),
                to: money("2500.5"),
                occurred_at: at(),
            }]);
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeMrr {
                mrr: money("1000.00"),
                occurred_at: at(),
            })
            .then_expect_events(vec![]);
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeMrr {
                mrr: money("-5"),
                occurred_at: at(),
            })
            .then_expect_error(TenantError::NegativeMrr);
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeMrr {
                mrr: Money::ZERO,
                occurred_at: at(),
            })
            .then_expect_events(vec![TenantEvent::MrrChanged {
                from: money("1000"),
                to: Money::ZERO,
                occurred_at: at(),
            }]);
    }

    #[test]
    fn change_cost_center() {
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeCostCenter {
                cost_center: tag("cc-200"),
                occurred_at: at(),
            })
            .then_expect_events(vec![TenantEvent::CostCenterChanged {
                from: tag("cc-100"),
                to: tag("cc-200"),
                occurred_at: at(),
            }]);
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeCostCenter {
                cost_center: tag("cc-100"),
                occurred_at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn change_slo() {
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeSlo {
                slo: slo("0.99", 7),
                occurred_at: at(),
            })
            .then_expect_events(vec![TenantEvent::SloChanged {
                from: slo("0.99", 30),
                to: slo("0.99", 7),
                occurred_at: at(),
            }]);
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeSlo {
                slo: slo("0.990", 30),
                occurred_at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn change_margin_threshold() {
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeMarginThreshold {
                margin_threshold: threshold("0.55"),
                occurred_at: at(),
            })
            .then_expect_events(vec![TenantEvent::MarginThresholdChanged {
                from: threshold("0.70"),
                to: threshold("0.55"),
                occurred_at: at(),
            }]);
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::ChangeMarginThreshold {
                margin_threshold: threshold("0.7"),
                occurred_at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn set_flag_creates_then_changes_with_from_and_to() {
        Tf::with(())
            .given(vec![registered()])
            .when(set_flag("new-scoring", true, 10))
            .then_expect_events(vec![flag_added("new-scoring", true, 10)]);
        Tf::with(())
            .given(vec![registered(), flag_added("new-scoring", true, 10)])
            .when(set_flag("new-scoring", true, 50))
            .then_expect_events(vec![TenantEvent::FlagChanged {
                flag: flag("new-scoring"),
                from: Some(flag_state("new-scoring", true, 10)),
                to: flag_state("new-scoring", true, 50),
                occurred_at: at(),
            }]);
        Tf::with(())
            .given(vec![registered(), flag_added("new-scoring", true, 10)])
            .when(set_flag("new-scoring", false, 10))
            .then_expect_events(vec![TenantEvent::FlagChanged {
                flag: flag("new-scoring"),
                from: Some(flag_state("new-scoring", true, 10)),
                to: flag_state("new-scoring", false, 10),
                occurred_at: at(),
            }]);
        Tf::with(())
            .given(vec![registered(), flag_added("new-scoring", true, 10)])
            .when(set_flag("new-scoring", true, 10))
            .then_expect_events(vec![]);
    }

    #[test]
    fn flags_are_bounded() {
        let mut given = vec![registered()];
        given.extend((0..MAX_FLAGS).map(|i| flag_added(&format!("f{i}"), true, 100)));
        Tf::with(())
            .given(given.clone())
            .when(set_flag("one-more", true, 1))
            .then_expect_error(TenantError::TooManyFlags);
        // Changing an existing flag at the limit is fine.
        Tf::with(())
            .given(given)
            .when(set_flag("f7", false, 100))
            .then_expect_events(vec![TenantEvent::FlagChanged {
                flag: flag("f7"),
                from: Some(flag_state("f7", true, 100)),
                to: flag_state("f7", false, 100),
                occurred_at: at(),
            }]);
    }

    #[test]
    fn remove_flag() {
        Tf::with(())
            .given(vec![registered(), flag_added("new-scoring", true, 10)])
            .when(TenantCommand::RemoveFlag {
                flag: flag("new-scoring"),
                occurred_at: at(),
            })
            .then_expect_events(vec![TenantEvent::FlagRemoved {
                flag: flag("new-scoring"),
                from: flag_state("new-scoring", true, 10),
                occurred_at: at(),
            }]);
        Tf::with(())
            .given(vec![
                registered(),
                flag_added("new-scoring", true, 10),
                TenantEvent::FlagRemoved {
                    flag: flag("new-scoring"),
                    from: flag_state("new-scoring", true, 10),
                    occurred_at: at(),
                },
            ])
            .when(TenantCommand::RemoveFlag {
                flag: flag("new-scoring"),
                occurred_at: at(),
            })
            .then_expect_error(TenantError::FlagNotFound {
                flag: flag("new-scoring"),
            });
    }

    #[test]
    fn register_webhook_once_per_id() {
        Tf::with(())
            .given(vec![registered()])
            .when(register_webhook("h1", webhook()))
            .then_expect_events(vec![webhook_registered("h1")]);
        Tf::with(())
            .given(vec![registered(), webhook_registered("h1")])
            .when(register_webhook("h1", webhook()))
            .then_expect_events(vec![]);
        let other = Webhook {
            events: [WebhookEvent::ChampionPromoted].into(),
            ..webhook()
        };
        Tf::with(())
            .given(vec![registered(), webhook_registered("h1")])
            .when(register_webhook("h1", other))
            .then_expect_error(TenantError::WebhookIdInUse {
                webhook_id: hook_id("h1"),
            });
        let none = Webhook {
            events: BTreeSet::new(),
            ..webhook()
        };
        Tf::with(())
            .given(vec![registered()])
            .when(register_webhook("h1", none))
            .then_expect_error(TenantError::NoWebhookEvents);
    }

    #[test]
    fn webhooks_are_bounded() {
        let mut given = vec![registered()];
        given.extend((0..MAX_WEBHOOKS).map(|i| webhook_registered(&format!("h{i}"))));
        Tf::with(())
            .given(given.clone())
            .when(register_webhook("one-more", webhook()))
            .then_expect_error(TenantError::TooManyWebhooks);
        Tf::with(())
            .given(given)
            .when(register_webhook("h3", webhook()))
            .then_expect_events(vec![]);
    }

    #[test]
    fn remove_webhook() {
        Tf::with(())
            .given(vec![registered(), webhook_registered("h1")])
            .when(TenantCommand::RemoveWebhook {
                webhook_id: hook_id("h1"),
                occurred_at: at(),
            })
            .then_expect_events(vec![TenantEvent::WebhookRemoved {
                webhook_id: hook_id("h1"),
                from: webhook(),
                occurred_at: at(),
            }]);
        Tf::with(())
            .given(vec![registered()])
            .when(TenantCommand::RemoveWebhook {
                webhook_id: hook_id("h1"),
                occurred_at: at(),
            })
            .then_expect_error(TenantError::WebhookNotFound {
                webhook_id: hook_id("h1"),
            });
    }

    #[test]
    fn webhook_urls_are_validated() {
        let accepted = [
            "https://hooks.example.com/agora",
            "http://example.com",
            "HTTPS://Example.COM:8443/path?x=1#frag",
            "https://[2001:db8::1]:443/hook",
            "https://10.0.0.1/hook",
            "https://example.com?token=abc",
        ];
        for input in accepted {
            assert_eq!(
                WebhookUrl::parse(input).map(|u| u.to_string()),
                Ok(input.to_owned())
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL_LEN));
        let exact = format!("https://e.com/{}", "a".repeat(MAX_WEBHOOK_URL_LEN - 14));
        assert!(WebhookUrl::parse(&exact).is_ok());
        let rejected: [(&str, WebhookUrlProblem); 19] = [
            (&long, WebhookUrlProblem::TooLong { len: long.len() }),
            ("", WebhookUrlProblem::UnsupportedScheme),
            ("ftp://example.com", WebhookUrlProblem::UnsupportedScheme),
            ("javascript:alert(1)", WebhookUrlProblem::UnsupportedScheme),
            ("example.com/hook", WebhookUrlProblem::UnsupportedScheme),
            ("https:/example.com", WebhookUrlProblem::UnsupportedScheme),
            (
                "https://user:pw@example.com/",
                WebhookUrlProblem::CredentialsInUrl,
            ),
            (
                "https://token@example.com",
                WebhookUrlProblem::CredentialsInUrl,
            ),
            ("https://a.com\\@b.com", WebhookUrlProblem::CredentialsInUrl),
            ("https://exa mple.com", WebhookUrlProblem::InvalidCharacter),
            (
                "https://example.com/\n",
                WebhookUrlProblem::InvalidCharacter,
            ),
            ("https://exämple.com", WebhookUrlProblem::InvalidCharacter),
            ("https://", WebhookUrlProblem::MissingHost),
            ("https:///path", WebhookUrlProblem::MissingHost),
            ("https://ex_ample.com", WebhookUrlProblem::InvalidHost),
            ("https://user%40x.com", WebhookUrlProblem::InvalidHost),
            ("https://[zz::1]/", WebhookUrlProblem::InvalidHost),
            ("https://example.com:0/", WebhookUrlProblem::InvalidPort),
            ("https://example.com:99999", WebhookUrlProblem::InvalidPort),
        ];
        for (input, reason) in rejected {
            assert_eq!(
                WebhookUrl::parse(input),
                Err(TenantError::InvalidWebhookUrl { reason }),
                "input {input:?}"
            );
        }
        assert_eq!(
            WebhookUrl::parse("https://example.com:/"),
            Err(TenantError::InvalidWebhookUrl {
                reason: WebhookUrlProblem::InvalidPort
            })
        );
        assert!(serde_json::from_str::<WebhookUrl>("\"ftp://x\"").is_err());
    }

    #[test]
    fn names_are_parsed() {
        assert!(FlagName::parse("new-scoring.v2_beta").is_ok());
        assert!(FlagName::parse(&"a".repeat(MAX_IDENTIFIER_LEN)).is_ok());
        for bad in ["", "New", "a b", "a/b", "é"] {
            assert_eq!(
                FlagName::parse(bad),
                Err(TenantError::InvalidFlagName),
                "{bad:?}"
            );
        }
        let too_long = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        assert_eq!(
            FlagName::parse(&too_long),
            Err(TenantError::InvalidFlagName)
        );
        assert_eq!(WebhookId::parse("A"), Err(TenantError::InvalidWebhookId));
        assert!(TenantName::parse("Acme Ünïcode Ltd.").is_ok());
        for bad in ["", " Acme", "Acme\n", "a\u{0}b"] {
            assert_eq!(TenantName::parse(bad), Err(TenantError::InvalidTenantName));
        }
        assert!(serde_json::from_str::<FlagName>("\"UPPER\"").is_err());
        assert!(!TenantError::TooManyFlags.is_retryable());
    }

    #[test]
    fn accessors_follow_the_events() {
        let mut tenant = Tenant::default();
        assert!(!tenant.is_registered());
        assert_eq!(tenant.mrr(), None);
        assert_eq!(tenant.webhooks().count(), 0);
        assert!(!tenant.is_flag_on("new-scoring", "anyone"));
        for event in [
            registered(),
            flag_added("new-scoring", true, 100),
            flag_added("dark", false, 100),
            webhook_registered("h1"),
            TenantEvent::MrrChanged {
                from: money("1000"),
                to: money("2000"),
                occurred_at: at(),
            },
        ] {
            tenant.apply(event);
        }
        assert!(tenant.is_registered());
        assert_eq!(tenant.mrr(), Some(money("2000")));
        assert_eq!(tenant.margin_threshold(), Some(MarginThreshold::default()));
        assert_eq!(
            tenant.margin_guardrail(),
            Some(MarginGuardrail {
                mrr: money("2000"),
                threshold: MarginThreshold::default()
            })
        );
        assert_eq!(tenant.slo().map(|s| s.period_days()), Some(30));
        assert_eq!(tenant.cost_center(), Some(&tag("cc-100")));
        assert_eq!(
            tenant.flag("new-scoring"),
            Some(&flag_state("new-scoring", true, 100))
        );
        assert!(tenant.is_flag_on("new-scoring", "user-1"));
        assert!(!tenant.is_flag_on("dark", "user-1"));
        assert_eq!(tenant.flag("missing"), None);
        let hooks: Vec<_> = tenant.webhooks().collect();
        assert_eq!(hooks, vec![(&hook_id("h1"), &webhook())]);
    }

    #[test]
    fn events_and_state_round_trip_through_json() {
        let events = vec![
            registered(),
            flag_added("new-scoring", true, 25),
            webhook_registered("h1"),
            TenantEvent::SloChanged {
                from: slo("0.99", 30),
                to: slo("0.999", 7),
                occurred_at: at(),
            },
        ];
        let mut tenant = Tenant::default();
        for event in &events {
            let json = serde_json::to_string(event).unwrap();
            assert_eq!(serde_json::from_str::<TenantEvent>(&json).unwrap(), *event);
            tenant.apply(event.clone());
        }
        let json = serde_json::to_string(&tenant).unwrap();
        assert_eq!(serde_json::from_str::<Tenant>(&json).unwrap(), tenant);
        let bad_slo = r#"{"target":"0.99","period_days":0}"#;
        assert!(serde_json::from_str::<TenantSlo>(bad_slo).is_err());
        assert_eq!(registered().event_type(), "TenantRegistered");
        assert_eq!(registered().event_version(), "1.0");
        assert_eq!(Tenant::TYPE, "tenant");
    }

    #[test]
    fn set_series_records_a_valid_series_once() {
        Tf::with(())
            .given(vec![registered()])
            .when(set_series(weekly()))
            .then_expect_events(vec![series_recorded(weekly())]);
        Tf::with(())
            .given(vec![registered(), series_recorded(weekly())])
            .when(set_series(weekly()))
            .then_expect_events(vec![]);
        let undeclared = SeriesInput {
            season_length: None,
            ..weekly()
        };
        Tf::with(())
            .given(vec![registered(), series_recorded(weekly())])
            .when(set_series(undeclared.clone()))
            .then_expect_events(vec![series_recorded(undeclared)]);
    }

    #[test]
    fn set_series_rejects_an_invalid_series() {
        let invalid = [
            SeriesInput {
                values: vec![],
                season_length: None,
            },
            SeriesInput {
                values: vec![1.0, f64::INFINITY],
                season_length: None,
            },
            SeriesInput {
                values: vec![1.0, 2.0],
                season_length: Some(1),
            },
            SeriesInput {
                values: vec![0.0; crate::forecast::MAX_OBSERVATIONS + 1],
                season_length: None,
            },
        ];
        for series in invalid {
            let reason = validate_series(&series).unwrap_err().to_string();
            Tf::with(())
                .given(vec![registered()])
                .when(set_series(series))
                .then_expect_error(TenantError::InvalidSeries(reason));
        }
    }

    #[test]
    fn promote_variant_records_the_promotion_then_the_rollout() {
        Tf::with(())
            .given(vec![registered()])
            .when(promote("c1", Strategy::Experimental))
            .then_expect_events(vec![
                promoted("c1", Strategy::Balanced, Strategy::Experimental),
                rollout(None),
            ]);
        // An existing rollout flag keeps its group and records its old state.
        let paused = flag_state(CHAMPION_ROLLOUT_FLAG, false, 100);
        Tf::with(())
            .given(vec![
                registered(),
                flag_added(CHAMPION_ROLLOUT_FLAG, false, 100),
            ])
            .when(promote("c1", Strategy::Aggressive))
            .then_expect_events(vec![
                promoted("c1", Strategy::Balanced, Strategy::Aggressive),
                rollout(Some(paused)),
            ]);
    }

    #[test]
    fn a_second_promotion_moves_production_to_stable() {
        let first = vec![
            registered(),
            promoted("c1", Strategy::Balanced, Strategy::Experimental),
            rollout(None),
        ];
        // The rollout flag is already at 10 %: no flag change to record.
        Tf::with(())
            .given(first.clone())
            .when(promote("c2", Strategy::Aggressive))
            .then_expect_events(vec![promoted(
                "c2",
                Strategy::Experimental,
                Strategy::Aggressive,
            )]);
        // After a full rollout, a promotion restarts at 10 %.
        let mut full = first;
        full.push(TenantEvent::FlagChanged {
            flag: flag(CHAMPION_ROLLOUT_FLAG),
            from: Some(flag_state(CHAMPION_ROLLOUT_FLAG, true, 10)),
            to: flag_state(CHAMPION_ROLLOUT_FLAG, true, 100),
            occurred_at: at(),
        });
        Tf::with(())
            .given(full)
            .when(promote("c2", Strategy::Balanced))
            .then_expect_events(vec![
                promoted("c2", Strategy::Experimental, Strategy::Balanced),
                rollout(Some(flag_state(CHAMPION_ROLLOUT_FLAG, true, 100))),
            ]);
    }

    #[test]
    fn promote_variant_is_idempotent_per_competition() {
        let given = vec![
            registered(),
            promoted("c1", Strategy::Balanced, Strategy::Experimental),
            rollout(None),
        ];
        Tf::with(())
            .given(given.clone())
            .when(promote("c1", Strategy::Experimental))
            .then_expect_events(vec![]);
        // Even if the retry names another champion, the round was promoted.
        Tf::with(())
            .given(given)
            .when(promote("c1", Strategy::Aggressive))
            .then_expect_events(vec![]);
    }

    #[test]
    fn promote_variant_refuses_the_production_variant() {
        Tf::with(())
            .given(vec![registered()])
            .when(promote("c1", DEFAULT_PRODUCTION_VARIANT))
            .then_expect_error(TenantError::AlreadyProduction);
        Tf::with(())
            .given(vec![
                registered(),
                promoted("c1", Strategy::Balanced, Strategy::Experimental),
                rollout(None),
            ])
            .when(promote("c2", Strategy::Experimental))
            .then_expect_error(TenantError::AlreadyProduction);
        assert!(!TenantError::AlreadyProduction.is_retryable());
        assert!(!TenantError::InvalidSeries("x".into()).is_retryable());
    }

    #[test]
    fn promote_variant_respects_the_flag_limit() {
        let mut given = vec![registered()];
        given.extend((0..MAX_FLAGS).map(|i| flag_added(&format!("f{i}"), true, 100)));
        Tf::with(())
            .given(given)
            .when(promote("c1", Strategy::Experimental))
            .then_expect_error(TenantError::TooManyFlags);
    }

    #[test]
    fn promoted_competitions_are_remembered_up_to_the_limit() {
        let strategies = [Strategy::Experimental, Strategy::Balanced];
        let mut events = vec![registered()];
        for i in 0..=MAX_REMEMBERED_PROMOTIONS {
            events.push(promoted(
                &format!("c{i}"),
                strategies[(i + 1) % 2],
                strategies[i % 2],
            ));
        }
        let tenant = tenant_after(events);
        let remembered = &tenant.profile().unwrap().variants.promoted_competitions;
        assert_eq!(remembered.len(), MAX_REMEMBERED_PROMOTIONS);
        assert!(!tenant.was_promoted("c0"));
        assert!(tenant.was_promoted("c1"));
        assert!(tenant.was_promoted(&format!("c{MAX_REMEMBERED_PROMOTIONS}")));
    }

    #[test]
    fn variants_follow_the_promotions() {
        let unregistered = Tenant::default();
        assert_eq!(unregistered.production_variant(), Strategy::Balanced);
        assert_eq!(unregistered.variant_for("k"), Strategy::Balanced);
        assert_eq!(unregistered.series(), None);
        let fresh = tenant_after([registered(), series_recorded(weekly())]);
        assert_eq!(fresh.production_variant(), Strategy::Balanced);
        assert_eq!(fresh.stable_variant(), Strategy::Balanced);
        assert_eq!(fresh.variant_for("tenant-1"), Strategy::Balanced);
        assert_eq!(fresh.series(), Some(&weekly()));
        let once = tenant_after([
            registered(),
            promoted("c1", Strategy::Balanced, Strategy::Experimental),
            rollout(None),
        ]);
        assert_eq!(once.production_variant(), Strategy::Experimental);
        assert_eq!(once.stable_variant(), Strategy::Balanced);
        let twice = tenant_after([
            registered(),
            promoted("c1", Strategy::Balanced, Strategy::Experimental),
            rollout(None),
            promoted("c2", Strategy::Experimental, Strategy::Aggressive),
        ]);
        assert_eq!(twice.production_variant(), Strategy::Aggressive);
        assert_eq!(twice.stable_variant(), Strategy::Experimental);
    }

    #[test]
    fn about_ten_percent_of_keys_get_the_champion_stickily() {
        let tenant = tenant_after([
            registered(),
            promoted("c1", Strategy::Balanced, Strategy::Experimental),
            rollout(None),
        ]);
        let keys: Vec<String> = (0..1_000).map(|i| format!("key-{i}")).collect();
        let champions = keys
            .iter()
            .filter(|k| tenant.variant_for(k) == Strategy::Experimental)
            .count();
        assert!((70..=130).contains(&champions), "{champions} of 1000");
        assert!(keys.iter().all(|k| matches!(
            tenant.variant_for(k),
            Strategy::Experimental | Strategy::Balanced
        )));
        // Sticky: the same key, the same answer, on a tenant rebuilt from the same events.
        let again = tenant_after([
            registered(),
            promoted("c1", Strategy::Balanced, Strategy::Experimental),
            rollout(None),
        ]);
        for key in &keys {
            assert_eq!(tenant.variant_for(key), tenant.variant_for(key));
            assert_eq!(tenant.variant_for(key), again.variant_for(key));
        }
        // A disabled flag is a rollback: everyone gets the stable variant.
        let mut rolled_back = tenant.clone();
        rolled_back.apply(TenantEvent::FlagChanged {
            flag: flag(CHAMPION_ROLLOUT_FLAG),
            from: Some(flag_state(CHAMPION_ROLLOUT_FLAG, true, 10)),
            to: flag_state(CHAMPION_ROLLOUT_FLAG, false, 10),
            occurred_at: at(),
        });
        assert!(keys
            .iter()
            .all(|k| rolled_back.variant_for(k) == Strategy::Balanced));
    }

    #[test]
    fn champion_rollout_constants_are_valid() {
        assert_eq!(
            FlagName::parse(CHAMPION_ROLLOUT_FLAG),
            Ok(champion_rollout_flag())
        );
        assert_eq!(champion_rollout_percent().get(), CHAMPION_ROLLOUT_PERCENT);
    }

    #[test]
    fn new_events_round_trip_and_old_snapshots_load() {
        let events = vec![
            registered(),
            series_recorded(weekly()),
            promoted("c1", Strategy::Balanced, Strategy::Experimental),
            rollout(None),
        ];
        let mut tenant = Tenant::default();
        for event in &events {
            let json = serde_json::to_string(event).unwrap();
            assert_eq!(serde_json::from_str::<TenantEvent>(&json).unwrap(), *event);
            tenant.apply(event.clone());
        }
        let json = serde_json::to_string(&tenant).unwrap();
        assert_eq!(serde_json::from_str::<Tenant>(&json).unwrap(), tenant);
        assert_eq!(series_recorded(weekly()).event_type(), "SeriesRecorded");
        assert_eq!(
            promoted("c1", Strategy::Balanced, Strategy::Experimental).event_type(),
            "VariantPromoted"
        );
        // A snapshot written before series and variants existed.
        let mut old = serde_json::to_value(tenant_after([registered()])).unwrap();
        let profile = old["profile"].as_object_mut().unwrap();
        profile.remove("series");
        profile.remove("variants");
        let loaded: Tenant = serde_json::from_value(old).unwrap();
        assert_eq!(loaded, tenant_after([registered()]));
        assert_eq!(loaded.production_variant(), DEFAULT_PRODUCTION_VARIANT);
        assert_eq!(loaded.series(), None);
    }
}
