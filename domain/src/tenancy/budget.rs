//! A tenant's spend in one UTC calendar month as an aggregate (`"tenant_budget"`, id
//! [`budget_id`] = `"<tenant>:<YYYY-MM>"`): the gate of the margin guardrail. Every costed
//! piece of work is charged here before it is accepted, and the event store's optimistic
//! concurrency serialises the charges, so two racing requests cannot both squeeze under the
//! limit on the same month-to-date figure.
//!
//! * Charge: the month is fixed by the first charge; a charge dated in another month is
//!   [`BudgetError::WrongMonth`]. The same work charged again with the same amount emits
//!   nothing (no guardrail re-check); with another amount it is a
//!   [`BudgetError::ChargeConflict`]. Otherwise [`MarginGuardrail::check`] decides on the
//!   month-to-date spend plus the amount: refused, no event; let through, a
//!   [`BudgetEvent::CostCharged`] with the month-to-date after it and the guardrail's
//!   projection and limit. A zero-cost charge is fine.
//! * Refund (work that was rejected or failed): the charged amount comes off the
//!   month-to-date; unknown work is [`BudgetError::NotCharged`], a second refund emits
//!   nothing. Refunds are not gated and may be dated any time (the caller addresses the
//!   budget of the charge's month).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::cost::{FinOpsTags, TagValue};
use super::guardrail::{BillingPeriod, GuardrailError, MarginGuardrail};
use crate::money::Money;

/// `"<tenant>:<YYYY-MM>"` of the UTC month containing `at`.
pub fn budget_id(tenant: &str, at: DateTime<Utc>) -> String {
    format!("{tenant}:{:04}-{:02}", at.year(), at.month())
}

/// Which kind of work a charge pays for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkKind {
    Task,
    Competition,
}

impl WorkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Competition => "competition",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BudgetCommand {
    Charge {
        work_id: String,
        kind: WorkKind,
        amount: Money,
        cost_center: TagValue,
        tags: FinOpsTags,
        guardrail: MarginGuardrail,
        occurred_at: DateTime<Utc>,
    },
    Refund {
        work_id: String,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetEvent {
    /// `month_to_date` includes this charge; `projected` and `limit` are what the guardrail
    /// compared.
    CostCharged {
        work_id: String,
        kind: WorkKind,
        amount: Money,
        cost_center: TagValue,
        tags: FinOpsTags,
        month_to_date: Money,
        projected: Money,
        limit: Money,
        occurred_at: DateTime<Utc>,
    },
    /// `amount` is the charged amount; `month_to_date` is after the refund.
    CostRefunded {
        work_id: String,
        kind: WorkKind,
        amount: Money,
        cost_center: TagValue,
        reason: String,
        month_to_date: Money,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for BudgetEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CostCharged { .. } => "CostCharged",
            Self::CostRefunded { .. } => "CostRefunded",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

/// Why a budget command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The projected month-end spend would exceed `threshold × MRR` (HTTP 402).
    #[error("projected month-end spend {projected} exceeds the margin limit {limit}")]
    MarginGuardrailExceeded { projected: Money, limit: Money },
    #[error("work {work_id} was already charged another amount")]
    ChargeConflict { work_id: String },
    #[error("work {work_id} was never charged to this budget")]
    NotCharged { work_id: String },
    #[error("the charge is dated outside this budget's month")]
    WrongMonth,
    /// Any other guardrail failure (a negative amount, an overflow).
    #[error("the guardrail could not decide: {0}")]
    Guardrail(String),
}

impl BudgetError {
    /// The same command against the same state always fails the same way (a refused charge
    /// passes only once the MRR, the threshold or the month changes).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::MarginGuardrailExceeded { .. }
            | Self::ChargeConflict { .. }
            | Self::NotCharged { .. }
            | Self::WrongMonth
            | Self::Guardrail(_) => false,
        }
    }
}

impl From<GuardrailError> for BudgetError {
    fn from(error: GuardrailError) -> Self {
        match error {
            GuardrailError::MarginGuardrailExceeded { projected, limit } => {
                Self::MarginGuardrailExceeded { projected, limit }
            }
            other => Self::Guardrail(other.to_string()),
        }
    }
}

/// One charged piece of work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub kind: WorkKind,
    pub amount: Money,
    pub cost_center: TagValue,
    pub refunded: bool,
}

/// A tenant's budget for one month. The aggregate id is [`budget_id`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantBudget {
    /// Fixed by the first charge.
    period: Option<BillingPeriod>,
    month_to_date: Money,
    charges: BTreeMap<String, Charge>,
}

impl Default for TenantBudget {
    fn default() -> Self {
        Self {
            period: None,
            month_to_date: Money::ZERO,
            charges: BTreeMap::new(),
        }
    }
}

impl TenantBudget {
    /// Charged minus refunded this month.
    pub fn month_to_date(&self) -> Money {
        self.month_to_date
    }

    /// The month, once charged.
    pub fn period(&self) -> Option<&BillingPeriod> {
        self.period.as_ref()
    }

    /// The amount charged for `work_id`, refunded or not.
    pub fn charged(&self, work_id: &str) -> Option<Money> {
        self.charges.get(work_id).map(|c| c.amount)
    }

    pub fn is_refunded(&self, work_id: &str) -> bool {
        self.charges.get(work_id).is_some_and(|c| c.refunded)
    }

    /// Charges by work id.
    pub fn charges(&self) -> impl Iterator<Item = (&str, &Charge)> {
        self.charges.iter().map(|(id, c)| (id.as_str(), c))
    }

    pub fn decide(&self, command: BudgetCommand) -> Result<Vec<BudgetEvent>, BudgetError> {
        match command {
            BudgetCommand::Charge {
                work_id,
                kind,
                amount,
                cost_center,
                tags,
                guardrail,
                occurred_at,
            } => {
                let period = self.period_for(occurred_at)?;
                if let Some(charge) = self.charges.get(&work_id) {
                    if charge.amount == amount {
                        return Ok(vec![]);
                    }
                    return Err(BudgetError::ChargeConflict { work_id });
                }
                let check = guardrail.check(self.month_to_date, amount, occurred_at, &period)?;
                let month_to_date = self.month_to_date.checked_add(amount).map_err(overflow)?;
                Ok(vec![BudgetEvent::CostCharged {
                    work_id,
                    kind,
                    amount,
                    cost_center,
                    tags,
                    month_to_date,
                    projected: check.projected,
                    limit: check.limit,
                    occurred_at,
                }])
            }
            BudgetCommand::Refund {
                work_id,
                reason,
                occurred_at,
            } => {
                let Some(charge) = self.charges.get(&work_id) else {
                    return Err(BudgetError::NotCharged { work_id });
                };
                if charge.refunded {
                    return Ok(vec![]);
                }
                let month_to_date = self
                    .month_to_date
                    .checked_sub(charge.amount)
                    .map_err(overflow)?;
                Ok(vec![BudgetEvent::CostRefunded {
                    work_id,
                    kind: charge.kind,
                    amount: charge.amount,
                    cost_center: charge.cost_center.clone(),
                    reason,
                    month_to_date,
                    occurred_at,
                }])
            }
        }
    }

    /// This budget's month, which must contain `at`; the month of `at` before any charge.
    fn period_for(&self, at: DateTime<Utc>) -> Result<BillingPeriod, BudgetError> {
        let period = match self.period {
            Some(period) => period,
            None => BillingPeriod::calendar_month_of(at)
                .map_err(|error| BudgetError::Guardrail(error.to_string()))?,
        };
        if !period.contains(at) {
            return Err(BudgetError::WrongMonth);
        }
        Ok(period)
    }
}

fn overflow<E: std::fmt::Display>(error: E) -> BudgetError {
    BudgetError::Guardrail(error.to_string())
}

impl Aggregate for TenantBudget {
    const TYPE: &'static str = "tenant_budget";
    type Command = BudgetCommand;
    type Event = BudgetEvent;
    type Error = BudgetError;
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
        match event {
            BudgetEvent::CostCharged {
                work_id,
                kind,
                amount,
                cost_center,
                month_to_date,
                occurred_at,
                ..
            } => {
                if self.period.is_none() {
                    // `decide` computed this month before emitting the charge.
                    self.period = BillingPeriod::calendar_month_of(occurred_at).ok();
                }
                self.month_to_date = month_to_date;
                self.charges.insert(
                    work_id,
                    Charge {
                        kind,
                        amount,
                        cost_center,
                        refunded: false,
                    },
                );
            }
            BudgetEvent::CostRefunded {
                work_id,
                month_to_date,
                ..
            } => {
                self.month_to_date = month_to_date;
                if let Some(charge) = self.charges.get_mut(&work_id) {
                    charge.refunded = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::fixtures::{money, tags};
    use crate::tenancy::guardrail::MarginThreshold;
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;

    type Tf = TestFramework<TenantBudget>;

    /// June 2025, `day` at midnight UTC.
    fn june(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, day, 0, 0, 0).unwrap()
    }

    fn cost_center() -> TagValue {
        TagValue::parse("campaign-9000").unwrap()
    }

    /// $100 MRR at the default 70 %: a $70 limit.
    fn guardrail() -> MarginGuardrail {
        MarginGuardrail {
            mrr: money("100"),
            threshold: MarginThreshold::default(),
        }
    }

    fn charge(work_id: &str, amount: &str, at: DateTime<Utc>) -> BudgetCommand {
        BudgetCommand::Charge {
            work_id: work_id.to_owned(),
            kind: WorkKind::Task,
            amount: money(amount),
            cost_center: cost_center(),
            tags: tags("acme"),
            guardrail: guardrail(),
            occurred_at: at,
        }
    }

    fn charged(
        work_id: &str,
        amount: &str,
        month_to_date: &str,
        projected: &str,
        at: DateTime<Utc>,
    ) -> BudgetEvent {
        BudgetEvent::CostCharged {
            work_id: work_id.to_owned(),
            kind: WorkKind::Task,
            amount: money(amount),
            cost_center: cost_center(),
            tags: tags("acme"),
            month_to_date: money(month_to_date),
            projected: money(projected),
            limit: money("70"),
            occurred_at: at,
        }
    }

    fn refund(work_id: &str, at: DateTime<Utc>) -> BudgetCommand {
        BudgetCommand::Refund {
            work_id: work_id.to_owned(),
            reason: "rejected".to_owned(),
            occurred_at: at,
        }
    }

    fn refunded(work_id: &str, amount: &str, month_to_date: &str) -> BudgetEvent {
        refunded_at(work_id, amount, month_to_date, june(16))
    }

    fn refunded_at(
        work_id: &str,
        amount: &str,
        month_to_date: &str,
        at: DateTime<Utc>,
    ) -> BudgetEvent {
        BudgetEvent::CostRefunded {
            work_id: work_id.to_owned(),
            kind: WorkKind::Task,
            amount: money(amount),
            cost_center: cost_center(),
            reason: "rejected".to_owned(),
            month_to_date: money(month_to_date),
            occurred_at: at,
        }
    }

    #[test]
    fn a_charge_within_the_guardrail_is_recorded_with_the_projection() {
        // 15 days into June, $2 projects to 2 × 30 / 15 = $4.
        Tf::with(())
            .given_no_previous_events()
            .when(charge("t1", "2", june(16)))
            .then_expect_events(vec![charged("t1", "2", "2", "4", june(16))]);
        Tf::with(())
            .given(vec![charged("t1", "2", "2", "4", june(16))])
            .when(charge("t2", "0.02", june(16)))
            .then_expect_events(vec![charged("t2", "0.02", "2.02", "4.04", june(16))]);
    }

    #[test]
    fn a_charge_over_the_guardrail_is_refused_without_an_event() {
        // $36 half way through June projects to $72 > $70.
        Tf::with(())
            .given_no_previous_events()
            .when(charge("t1", "36", june(16)))
            .then_expect_error(BudgetError::MarginGuardrailExceeded {
                projected: money("72"),
                limit: money("70"),
            });
    }

    #[test]
    fn two_charges_summing_over_the_limit_the_second_is_refused() {
        // Each $20 alone projects to $40; together $40 projects to $80.
        let first = charged("t1", "20", "20", "40", june(16));
        Tf::with(())
            .given_no_previous_events()
            .when(charge("t1", "20", june(16)))
            .then_expect_events(vec![first.clone()]);
        Tf::with(())
            .given(vec![first])
            .when(charge("t2", "20", june(16)))
            .then_expect_error(BudgetError::MarginGuardrailExceeded {
                projected: money("80"),
                limit: money("70"),
            });
    }

    #[test]
    fn a_zero_cost_charge_is_fine() {
        Tf::with(())
            .given_no_previous_events()
            .when(charge("t0", "0", june(16)))
            .then_expect_events(vec![charged("t0", "0", "0", "0", june(16))]);
    }

    #[test]
    fn charging_the_same_work_again_is_idempotent_or_a_conflict() {
        // Even when the guardrail would now refuse it, the replay succeeds.
        let history = vec![
            charged("t1", "20", "20", "40", june(16)),
            charged("t2", "14", "34", "68", june(16)),
        ];
        Tf::with(())
            .given(history.clone())
            .when(charge("t1", "20", june(16)))
            .then_expect_events(vec![]);
        Tf::with(())
            .given(history)
            .when(charge("t1", "21", june(16)))
            .then_expect_error(BudgetError::ChargeConflict {
                work_id: "t1".to_owned(),
            });
    }

    #[test]
    fn a_charge_in_another_month_is_refused() {
        let july = Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap();
        Tf::with(())
            .given(vec![charged("t1", "2", "2", "4", june(16))])
            .when(charge("t2", "2", july))
            .then_expect_error(BudgetError::WrongMonth);
        let may = Utc.with_ymd_and_hms(2025, 5, 31, 23, 59, 59).unwrap();
        Tf::with(())
            .given(vec![charged("t1", "2", "2", "4", june(16))])
            .when(charge("t1", "2", may))
            .then_expect_error(BudgetError::WrongMonth);
    }

    #[test]
    fn a_refund_takes_the_charge_off_the_month() {
        let history = vec![
            charged("t1", "20", "20", "40", june(16)),
            charged("t2", "14", "34", "68", june(16)),
        ];
        Tf::with(())
            .given(history.clone())
            .when(refund("t2", june(16)))
            .then_expect_events(vec![refunded("t2", "14", "20")]);
        Tf::with(())
            .given(history.clone())
            .and(vec![refunded("t2", "14", "20")])
            .when(refund("t2", june(16)))
            .then_expect_events(vec![]);
        // Room freed by the refund is usable again.
        Tf::with(())
            .given(history)
            .and(vec![refunded("t2", "14", "20")])
            .when(charge("t3", "14", june(16)))
            .then_expect_events(vec![charged("t3", "14", "34", "68", june(16))]);
        Tf::with(())
            .given_no_previous_events()
            .when(refund("t9", june(16)))
            .then_expect_error(BudgetError::NotCharged {
                work_id: "t9".to_owned(),
            });
    }

    #[test]
    fn refunds_are_not_tied_to_the_month() {
        let august = Utc.with_ymd_and_hms(2025, 8, 2, 0, 0, 0).unwrap();
        Tf::with(())
            .given(vec![charged("t1", "2", "2", "4", june(16))])
            .when(refund("t1", august))
            .then_expect_events(vec![refunded_at("t1", "2", "0", august)]);
    }

    #[test]
    fn other_guardrail_failures_are_reported() {
        Tf::with(())
            .given_no_previous_events()
            .when(charge("t1", "-1", june(16)))
            .then_expect_error(BudgetError::Guardrail(
                GuardrailError::NegativeAmount {
                    field: crate::tenancy::guardrail::AmountField::RequestCost,
                }
                .to_string(),
            ));
        assert!(!BudgetError::WrongMonth.is_retryable());
    }

    #[test]
    fn state_follows_the_events() {
        let mut budget = TenantBudget::default();
        assert_eq!(budget.month_to_date(), Money::ZERO);
        assert_eq!(budget.period(), None);
        for event in [
            charged("t1", "20", "20", "40", june(16)),
            charged("t2", "14", "34", "68", june(16)),
            refunded("t2", "14", "20"),
        ] {
            budget.apply(event);
        }
        assert_eq!(budget.month_to_date(), money("20"));
        assert_eq!(budget.charged("t2"), Some(money("14")));
        assert!(budget.is_refunded("t2"));
        assert!(!budget.is_refunded("t1"));
        assert_eq!(budget.charged("t9"), None);
        assert_eq!(budget.period().map(BillingPeriod::start), Some(june(1)));
        let ids: Vec<_> = budget.charges().map(|(id, _)| id).collect();
        assert_eq!(ids, vec!["t1", "t2"]);
        let json = serde_json::to_string(&budget).unwrap();
        assert_eq!(serde_json::from_str::<TenantBudget>(&json).unwrap(), budget);
    }

    #[test]
    fn ids_events_and_names() {
        let late = Utc.with_ymd_and_hms(2025, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(budget_id("acme", late), "acme:2025-12");
        assert_eq!(budget_id("acme", june(1)), "acme:2025-06");
        for event in [
            charged("t1", "2", "2", "4", june(16)),
            refunded("t1", "2", "0"),
        ] {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<BudgetEvent>(&json).unwrap(), event);
            assert_eq!(event.event_version(), "1.0");
        }
        assert_eq!(refunded("t1", "2", "0").event_type(), "CostRefunded");
        let json = serde_json::to_value(charged("t1", "2", "2", "4", june(16))).unwrap();
        assert_eq!(json["CostCharged"]["kind"], "task");
        assert_eq!(WorkKind::Competition.as_str(), "competition");
        assert_eq!(TenantBudget::TYPE, "tenant_budget");
    }
}
