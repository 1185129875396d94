//! Pure rules for multi-tenant tasks and self-compete tournaments: what a
//! request costs, whether a tenant may afford it, whether the service is
//! within its SLO, which tenants see a feature, and whether to call a
//! failing destination. No IO, no clock, no randomness: instants, counts and
//! amounts come in as arguments, and the same inputs always give the same
//! answer.
//!
//! | module | rule | where the numbers come from |
//! |---|---|---|
//! | [`cost`] | task cost $0.01 × 1/2/4/8 by [`cost::Complexity`]; competition cost $0.02 × 1..=16 competitors; [`cost::FinOpsTags`] (six tags, 1..=64 chars of `[A-Za-z0-9._-]`) | the seed's cost model and FinOps tag list; the tag alphabet and length are ours (safe as metric labels and cloud tags) |
//! | [`guardrail`] | refuse a request when spend projected linearly to month end exceeds `threshold × MRR` (default 0.70, per tenant), elapsed time floored at one day | the seed's "forecast must not exceed 70 % of MRR"; the projection method and floor are ours, documented there |
//! | [`slo`] | burn rate, multi-window multi-burn-rate alerts (page 1 h & 5 m ≥ 14.4, ticket 6 h & 30 m ≥ 6), remaining error budget | Google SRE workbook, ch. 5 "Alerting on SLOs" |
//! | [`flags`] | sticky percentage rollout: bucket = murmur3("{group}:{key}") % 100 + 1, on when ≤ percent | Unleash's gradual rollout; MurmurHash3 x86_32 (Appleby) |
//! | [`breaker`] | circuit breaker Closed → Open → HalfOpen per destination, 5 failures, 30 s open, one probe | the classic pattern (Nygard, *Release It!*); the defaults are ours, the seed's per-circuit numbers are configuration |
//! | [`tenant`] | the `Tenant` aggregate: MRR, cost-center default, SLO, margin threshold, flags (≤ 200), webhooks (≤ 20); every change an event with old and new value, no-op changes emit nothing | the tenant admin and feature-flag requirements; the limits are ours |
//!
//! Money is [`crate::money::Money`] (exact decimals); rates are exact
//! fractions, rounded only in the `Decimal` views each module documents.

pub mod breaker;
pub mod budget;
pub mod competition;
pub mod cost;
pub mod delivery;
#[cfg(test)]
mod fixtures;
pub mod flags;
pub mod guardrail;
pub mod lifecycle;
pub mod slo;
pub mod task;
pub mod tenant;
pub mod work;
