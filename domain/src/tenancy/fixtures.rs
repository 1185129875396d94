//! Test fixtures the tenancy aggregates' unit tests share: a fixed clock, the seed's FinOps
//! tags, money literals, and the lifecycle events every work item (task, competition) emits,
//! built through [`LifecycleEvent`] so one helper serves each aggregate's event type, and
//! [`refusal`], the error an aggregate answers a command with.

use chrono::{DateTime, Utc};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;

use super::cost::{FinOpsTags, RawFinOpsTags};
use super::lifecycle::LifecycleEvent;
use crate::money::Money;

/// Why a failed attempt (and a failed work item) failed in the tests.
pub(crate) const FAILURE_REASON: &str = "worker crashed";

/// The code and the reason a work item is refused with in the tests.
pub(crate) const REJECTION: (&str, &str) = ("MARGIN_GUARDRAIL_EXCEEDED", "over budget");

/// The error `command` is refused with after the events `given`; panics if it is accepted.
pub(crate) fn refusal<A: Aggregate<Services = ()>>(
    given: Vec<A::Event>,
    command: A::Command,
) -> A::Error {
    match TestFramework::<A>::with(())
        .given(given)
        .when(command)
        .inspect_result()
    {
        Ok(events) => panic!("accepted, emitting {events:?}"),
        Err(error) => error,
    }
}

/// `seconds` after 2026-01-15T12:00:00Z.
pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-15T12:00:00Z")
        .unwrap()
        .to_utc()
        + chrono::Duration::seconds(seconds)
}

/// A money literal.
pub(crate) fn money(s: &str) -> Money {
    Money::parse(s).unwrap()
}

/// The seed's FinOps tags, with `tenant` as the `tenantId` tag.
pub(crate) fn tags(tenant: &str) -> FinOpsTags {
    FinOpsTags::parse(RawFinOpsTags {
        application: "lapverse-monitoring",
        environment: "dev",
        tenant_id: tenant,
        cost_center: "campaign-9000",
        owner: "data-team",
        version: "2.0.0",
    })
    .unwrap()
}

/// Attempt `attempt` started at `at(seconds)`.
pub(crate) fn started<E: LifecycleEvent>(attempt: u32, seconds: i64) -> E {
    E::started(attempt, at(seconds))
}

/// Attempt `attempt` failed with [`FAILURE_REASON`] at `at(seconds)`, retried `retry_in`
/// seconds later (`None` after the last attempt).
pub(crate) fn attempt_failed<E: LifecycleEvent>(
    attempt: u32,
    seconds: i64,
    retry_in: Option<i64>,
) -> E {
    E::attempt_failed(
        attempt,
        FAILURE_REASON.to_owned(),
        retry_in.map(|r| at(seconds + r)),
        at(seconds),
    )
}

/// The work item failed for good after `attempts` attempts, at `at(seconds)`.
pub(crate) fn failed<E: LifecycleEvent>(attempts: u32, seconds: i64) -> E {
    E::failed(attempts, FAILURE_REASON.to_owned(), at(seconds))
}

/// The work item was refused with [`REJECTION`] at `at(seconds)`.
pub(crate) fn rejected<E: LifecycleEvent>(seconds: i64) -> E {
    let (code, reason) = REJECTION;
    E::rejected(code.to_owned(), reason.to_owned(), at(seconds))
}
