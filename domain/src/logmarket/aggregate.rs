//! The `LogAnalysis` aggregate: one analysed log, paid at most once, with feedback on its
//! insights. The analysis and its price are decided before the command (they depend on the
//! templates the marketplace has seen); the aggregate records them and guards payment.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::analysis::{Analysis, SellerId, Stage};
use super::insight::Agent;
use crate::money::Money;

/// Who authorised a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PayAuthorisation {
    /// The seller signed the canonical pay message with their registered ed25519 key.
    SellerSignature {
        public_key_hex: String,
        signature_hex: String,
    },
    /// An admin or finance operator paid a seller that has no registered key.
    Operator { principal: String },
}

/// One agent's share of a payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentShare {
    pub agent: Agent,
    pub amount: Money,
}

/// A reviewer's or the seller's verdict on one insight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Confirmed,
    FalsePositive,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogAnalysisCommand {
    Record {
        seller: SellerId,
        stage: Stage,
        analysis: Box<Analysis>,
        /// The template hashes this analysis claimed first (see `claims::TemplateClaim`): the
        /// templates it counts as new.
        #[serde(default)]
        claimed_templates: Vec<String>,
        occurred_at: DateTime<Utc>,
    },
    Pay {
        transaction_id: String,
        seller: SellerId,
        amount: Money,
        journal_entry_id: String,
        agent_shares: Vec<AgentShare>,
        authorisation: PayAuthorisation,
        occurred_at: DateTime<Utc>,
    },
    RecordFeedback {
        insight_index: u32,
        verdict: Verdict,
        reviewer: String,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogAnalysisEvent {
    LogAnalysisRecorded {
        seller: SellerId,
        stage: Stage,
        analysis: Box<Analysis>,
        /// The template hashes this analysis claimed first (see `claims::TemplateClaim`): the
        /// templates it counts as new.
        #[serde(default)]
        claimed_templates: Vec<String>,
        occurred_at: DateTime<Utc>,
    },
    AnalysisPaid {
        transaction_id: String,
        seller: SellerId,
        amount: Money,
        journal_entry_id: String,
        agent_shares: Vec<AgentShare>,
        authorisation: PayAuthorisation,
        occurred_at: DateTime<Utc>,
    },
    InsightFeedbackRecorded {
        insight_index: u32,
        agent: Agent,
        verdict: Verdict,
        reviewer: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for LogAnalysisEvent {
    fn event_type(&self) -> String {
        match self {
            Self::LogAnalysisRecorded { .. } => "LogAnalysisRecorded",
            Self::AnalysisPaid { .. } => "AnalysisPaid",
            Self::InsightFeedbackRecorded { .. } => "InsightFeedbackRecorded",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::versioning::current_version(LogAnalysis::TYPE, &self.event_type()).to_string()
    }
}

/// Why a log analysis command was rejected. None is retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogAnalysisError {
    #[error("analysis already recorded")]
    AlreadyRecorded,
    #[error("analysis not found")]
    NotFound,
    #[error("analysis already paid in transaction {transaction_id}")]
    AlreadyPaid { transaction_id: String },
    #[error("analysis belongs to another seller")]
    SellerMismatch,
    #[error("amount {requested} differs from the analysis price {price}")]
    AmountMismatch { requested: Money, price: Money },
    #[error("agent shares sum to {sum}, not the amount {amount}")]
    SharesDoNotSum { sum: Money, amount: Money },
    #[error("insight {index} does not exist")]
    InsightNotFound { index: u32 },
    #[error("{reviewer} already gave feedback on insight {index}")]
    FeedbackAlreadyGiven { index: u32, reviewer: String },
}

impl LogAnalysisError {
    pub fn is_retryable(&self) -> bool {
        false
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Recorded {
    seller: SellerId,
    stage: Stage,
    price: Money,
    quality: rust_decimal::Decimal,
    value_score: u8,
    insight_agents: Vec<Agent>,
}

/// One analysed log. The aggregate id is the analysis id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogAnalysis {
    recorded: Option<Recorded>,
    /// The analysis as recorded (so a retried request can be answered with it).
    #[serde(default)]
    analysis: Option<Box<Analysis>>,
    paid_in: Option<String>,
    #[serde(default)]
    paid_at: Option<DateTime<Utc>>,
    feedback: Vec<(u32, String)>,
}

impl LogAnalysis {
    pub fn is_recorded(&self) -> bool {
        self.recorded.is_some()
    }

    pub fn seller(&self) -> Option<&SellerId> {
        self.recorded.as_ref().map(|r| &r.seller)
    }

    /// The whole analysis as recorded.
    pub fn analysis(&self) -> Option<&Analysis> {
        self.analysis.as_deref()
    }

    pub fn price(&self) -> Option<Money> {
        self.recorded.as_ref().map(|r| r.price)
    }

    pub fn stage(&self) -> Option<Stage> {
        self.recorded.as_ref().map(|r| r.stage)
    }

    pub fn value_score(&self) -> Option<u8> {
        self.recorded.as_ref().map(|r| r.value_score)
    }

    pub fn overall_quality(&self) -> Option<rust_decimal::Decimal> {
        self.recorded.as_ref().map(|r| r.quality)
    }

    /// The agent behind insight `index`.
    pub fn insight_agent(&self, index: u32) -> Option<Agent> {
        self.recorded
            .as_ref()
            .and_then(|r| r.insight_agents.get(index as usize).copied())
    }

    pub fn paid_in(&self) -> Option<&str> {
        self.paid_in.as_deref()
    }

    /// When the payment was made.
    pub fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.paid_at
    }

    /// The agents whose insights share a payment: those with at least one insight, or all
    /// four when none found anything.
    pub fn paying_agents(&self) -> Vec<Agent> {
        let mut agents: Vec<Agent> = self
            .recorded
            .as_ref()
            .map(|r| r.insight_agents.clone())
            .unwrap_or_default();
        agents.sort();
        agents.dedup();
        if agents.is_empty() {
            Agent::ALL.to_vec()
        } else {
            agents
        }
    }

    pub fn decide(
        &self,
        command: LogAnalysisCommand,
    ) -> Result<Vec<LogAnalysisEvent>, LogAnalysisError> {
        match command {
            LogAnalysisCommand::Record {
                seller,
                stage,
                analysis,
                claimed_templates,
                occurred_at,
            } => {
                if self.recorded.is_some() {
                    return Err(LogAnalysisError::AlreadyRecorded);
                }
                Ok(vec![LogAnalysisEvent::LogAnalysisRecorded {
                    seller,
                    stage,
                    analysis,
                    claimed_templates,
                    occurred_at,
                }])
            }
            LogAnalysisCommand::Pay {
                transaction_id,
                seller,
                amount,
                journal_entry_id,
                agent_shares,
                authorisation,
                occurred_at,
            } => {
                let recorded = self.recorded.as_ref().ok_or(LogAnalysisError::NotFound)?;
                if let Some(paid) = &self.paid_in {
                    return Err(LogAnalysisError::AlreadyPaid {
                        transaction_id: paid.clone(),
                    });
                }
                if recorded.seller != seller {
                    return Err(LogAnalysisError::SellerMismatch);
                }
                if amount != recorded.price {
                    return Err(LogAnalysisError::AmountMismatch {
                        requested: amount,
                        price: recorded.price,
                    });
                }
                let sum = Money::checked_sum(agent_shares.iter().map(|s| s.amount))
                    .unwrap_or(Money::ZERO);
                if sum != amount {
                    return Err(LogAnalysisError::SharesDoNotSum { sum, amount });
                }
                Ok(vec![LogAnalysisEvent::AnalysisPaid {
                    transaction_id,
                    seller,
                    amount,
                    journal_entry_id,
                    agent_shares,
                    authorisation,
                    occurred_at,
                }])
            }
            LogAnalysisCommand::RecordFeedback {
                insight_index,
                verdict,
                reviewer,
                occurred_at,
            } => {
                let recorded = self.recorded.as_ref().ok_or(LogAnalysisError::NotFound)?;
                let agent = *recorded.insight_agents.get(insight_index as usize).ok_or(
                    LogAnalysisError::InsightNotFound {
                        index: insight_index,
                    },
                )?;
                if self
                    .feedback
                    .iter()
                    .any(|(i, r)| *i == insight_index && *r == reviewer)
                {
                    return Err(LogAnalysisError::FeedbackAlreadyGiven {
                        index: insight_index,
                        reviewer,
                    });
                }
                Ok(vec![LogAnalysisEvent::InsightFeedbackRecorded {
                    insight_index,
                    agent,
                    verdict,
                    reviewer,
                    occurred_at,
                }])
            }
        }
    }
}

/// Splits a payment among agents in equal shares to the cent; the cents left over go one each
/// to the first agents in [`Agent`] order, so the shares always sum to the amount.
pub fn split_payment(amount: Money, agents: &[Agent]) -> Vec<AgentShare> {
    if agents.is_empty() {
        return Vec::new();
    }
    let cents = (amount.as_decimal() * rust_decimal::Decimal::ONE_HUNDRED)
        .trunc()
        .mantissa();
    let n = agents.len() as i128;
    let (each, rest) = (cents / n, cents % n);
    agents
        .iter()
        .enumerate()
        .map(|(i, agent)| {
            let c = each + i128::from((i as i128) < rest);
            AgentShare {
                agent: *agent,
                amount: Money::from_cents(c as i64).expect("share within the amount"),
            }
        })
        .collect()
}

impl Aggregate for LogAnalysis {
    const TYPE: &'static str = "log_analysis";
    type Command = LogAnalysisCommand;
    type Event = LogAnalysisEvent;
    type Error = LogAnalysisError;
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
            LogAnalysisEvent::LogAnalysisRecorded {
                seller,
                stage,
                analysis,
                ..
            } => {
                self.recorded = Some(Recorded {
                    seller,
                    stage,
                    price: analysis.payment,
                    quality: analysis.overall_quality,
                    value_score: analysis.value_score,
                    insight_agents: analysis.insights.iter().map(|i| i.agent()).collect(),
                });
                self.analysis = Some(analysis);
            }
            LogAnalysisEvent::AnalysisPaid {
                transaction_id,
                occurred_at,
                ..
            } => {
                self.paid_in = Some(transaction_id);
                self.paid_at = Some(occurred_at);
            }
            LogAnalysisEvent::InsightFeedbackRecorded {
                insight_index,
                reviewer,
                ..
            } => self.feedback.push((insight_index, reviewer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::logmarket::analysis::{analyse, MarketConfig};

    type Framework = TestFramework<LogAnalysis>;

    fn at(minute: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-01-01T00:{minute:02}:00Z"))
            .unwrap()
            .to_utc()
    }

    fn seller() -> SellerId {
        SellerId::parse("sub-pkp-12345").unwrap()
    }

    fn analysis() -> Box<Analysis> {
        let log = "[2025-11-06 10:45:00] INFO started\n[2025-11-06 10:45:01] INFO done in 12ms\n";
        Box::new(analyse(log, Stage::Runtime, &MarketConfig::default(), &|_| false).unwrap())
    }

    fn recorded() -> LogAnalysisEvent {
        LogAnalysisEvent::LogAnalysisRecorded {
            seller: seller(),
            stage: Stage::Runtime,
            analysis: analysis(),
            claimed_templates: vec![],
            occurred_at: at(0),
        }
    }

    fn pay(amount: Money) -> LogAnalysisCommand {
        LogAnalysisCommand::Pay {
            transaction_id: "txn-1".into(),
            seller: seller(),
            amount,
            journal_entry_id: "logpay-a".into(),
            agent_shares: split_payment(amount, &Agent::ALL),
            authorisation: PayAuthorisation::Operator {
                principal: "admin".into(),
            },
            occurred_at: at(1),
        }
    }

    #[test]
    fn an_event_stored_before_claims_loads_with_none_claimed() {
        let mut stored = serde_json::to_value(recorded()).unwrap();
        let body = stored["LogAnalysisRecorded"].as_object_mut().unwrap();
        body.remove("claimed_templates");
        let event: LogAnalysisEvent = serde_json::from_value(stored).unwrap();
        assert_eq!(event, recorded());
    }

    #[test]
    fn records_once() {
        let command = LogAnalysisCommand::Record {
            seller: seller(),
            stage: Stage::Runtime,
            analysis: analysis(),
            claimed_templates: vec![],
            occurred_at: at(0),
        };
        Framework::with(())
            .given_no_previous_events()
            .when(command.clone())
            .then_expect_events(vec![recorded()]);
        Framework::with(())
            .given(vec![recorded()])
            .when(command)
            .then_expect_error(LogAnalysisError::AlreadyRecorded);
    }

    #[test]
    fn pays_once_at_the_recorded_price() {
        let price = analysis().payment;
        let LogAnalysisCommand::Pay {
            transaction_id,
            seller,
            amount,
            journal_entry_id,
            agent_shares,
            authorisation,
            occurred_at,
        } = pay(price)
        else {
            unreachable!()
        };
        let paid = LogAnalysisEvent::AnalysisPaid {
            transaction_id,
            seller,
            amount,
            journal_entry_id,
            agent_shares,
            authorisation,
            occurred_at,
        };
        Framework::with(())
            .given(vec![recorded()])
            .when(pay(price))
            .then_expect_events(vec![paid.clone()]);
        Framework::with(())
            .given(vec![recorded(), paid])
            .when(pay(price))
            .then_expect_error(LogAnalysisError::AlreadyPaid {
                transaction_id: "txn-1".into(),
            });
    }

    #[test]
    fn pay_checks_seller_amount_and_existence() {
        let price = analysis().payment;
        Framework::with(())
            .given_no_previous_events()
            .when(pay(price))
            .then_expect_error(LogAnalysisError::NotFound);
        let wrong = Money::parse("99.99").unwrap();
        Framework::with(())
            .given(vec![recorded()])
            .when(pay(wrong))
            .then_expect_error(LogAnalysisError::AmountMismatch {
                requested: wrong,
                price,
            });
        let mut other = pay(price);
        if let LogAnalysisCommand::Pay { seller, .. } = &mut other {
            *seller = SellerId::parse("someone-else").unwrap();
        }
        Framework::with(())
            .given(vec![recorded()])
            .when(other)
            .then_expect_error(LogAnalysisError::SellerMismatch);
    }

    #[test]
    fn feedback_needs_an_insight_and_is_given_once_per_reviewer() {
        // The clean log has no insights.
        Framework::with(())
            .given(vec![recorded()])
            .when(LogAnalysisCommand::RecordFeedback {
                insight_index: 0,
                verdict: Verdict::Confirmed,
                reviewer: "rev".into(),
                occurred_at: at(2),
            })
            .then_expect_error(LogAnalysisError::InsightNotFound { index: 0 });
    }

    #[test]
    fn split_sums_to_the_amount() {
        let amount = Money::parse("11.55").unwrap();
        let shares = split_payment(amount, &Agent::ALL);
        let cents: Vec<String> = shares.iter().map(|s| s.amount.to_string()).collect();
        assert_eq!(cents, ["2.89", "2.89", "2.89", "2.88"]);
        assert_eq!(
            Money::checked_sum(shares.iter().map(|s| s.amount)).unwrap(),
            amount
        );
        let one = split_payment(Money::parse("0.10").unwrap(), &[Agent::SecurityGuardian]);
        assert_eq!(one[0].amount, Money::parse("0.10").unwrap());
    }
}
