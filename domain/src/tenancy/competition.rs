//! A self-compete round as an aggregate (`"competition"`): launched with its
//! [`CompetitionSpec`] (the competing strategies, the series, the tenant's production
//! variant), then run by a worker through the shared [`lifecycle`](super::lifecycle) exactly
//! like a task. The aggregate id is the caller's competition id, so Launch is idempotent: the
//! same spec again emits nothing, another spec is a [`CompetitionError::IdempotencyConflict`].
//!
//! A spec is valid when its content is 1..=500 characters, it names 1..=4 distinct
//! competitors, its horizon is at least 1, its cost is not negative and its `tenantId` tag is
//! its tenant. A result is accepted only if its champion is one of the competitors.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::cost::FinOpsTags;
use super::lifecycle::{
    check_billing, check_text, work_events, Acceptance, Lifecycle, LifecycleError, Status, WorkItem,
};
use super::work::{CompetitionResult, Priority, SeriesInput};
use crate::forecast::Strategy;
use crate::money::Money;

/// Most competitors in one round: each strategy at most once.
pub const MAX_ROUND_COMPETITORS: usize = Strategy::ALL.len();

/// What a round is asked to compare, fixed at launch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompetitionSpec {
    pub tenant: String,
    pub content: String,
    pub priority: Priority,
    /// 1..=4 distinct strategies.
    pub competitors: Vec<Strategy>,
    pub series: SeriesInput,
    pub horizon: usize,
    /// The tenant's production variant at launch, which the champion is measured against.
    pub production: Strategy,
    pub cost: Money,
    pub tags: FinOpsTags,
    pub platforms: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CompetitionCommand {
    Launch {
        spec: CompetitionSpec,
        occurred_at: DateTime<Utc>,
    },
    Reject {
        code: String,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
    Start {
        occurred_at: DateTime<Utc>,
    },
    Complete {
        result: CompetitionResult,
        duration_ms: u64,
        occurred_at: DateTime<Utc>,
    },
    FailAttempt {
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CompetitionEvent {
    CompetitionAccepted {
        spec: CompetitionSpec,
        occurred_at: DateTime<Utc>,
    },
    CompetitionRejected {
        code: String,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
    CompetitionStarted {
        attempt: u32,
        occurred_at: DateTime<Utc>,
    },
    CompetitionCompleted {
        attempt: u32,
        result: CompetitionResult,
        duration_ms: u64,
        occurred_at: DateTime<Utc>,
    },
    /// `retry_at` is `None` after the last attempt; `CompetitionFailed` follows.
    CompetitionAttemptFailed {
        attempt: u32,
        reason: String,
        retry_at: Option<DateTime<Utc>>,
        occurred_at: DateTime<Utc>,
    },
    CompetitionFailed {
        attempts: u32,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

work_events!(CompetitionEvent {
    accepted: CompetitionAccepted,
    rejected: CompetitionRejected,
    started: CompetitionStarted,
    completed: CompetitionCompleted,
    attempt_failed: CompetitionAttemptFailed,
    failed: CompetitionFailed,
});

/// Why a competition command was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CompetitionError {
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("a competition with this id was launched with another spec")]
    IdempotencyConflict,
    #[error("invalid competition: {0}")]
    InvalidSpec(String),
}

impl CompetitionError {
    /// The same command against the same state always fails the same way.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Lifecycle(error) => error.is_retryable(),
            Self::IdempotencyConflict | Self::InvalidSpec(_) => false,
        }
    }
}

/// One self-compete round. The aggregate id is the competition id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Competition {
    work: Option<WorkItem<CompetitionSpec>>,
    result: Option<CompetitionResult>,
}

impl Competition {
    pub fn spec(&self) -> Option<&CompetitionSpec> {
        self.work.as_ref().map(WorkItem::spec)
    }

    pub fn lifecycle(&self) -> Option<&Lifecycle> {
        self.work.as_ref().map(WorkItem::lifecycle)
    }

    pub fn status(&self) -> Option<Status> {
        self.lifecycle().map(|l| l.status)
    }

    /// The round's result, once completed.
    pub fn result(&self) -> Option<&CompetitionResult> {
        self.result.as_ref()
    }

    /// `(code, reason)`, once rejected.
    pub fn rejection(&self) -> Option<(&str, &str)> {
        self.work.as_ref()?.rejection()
    }

    pub fn decide(
        &self,
        command: CompetitionCommand,
    ) -> Result<Vec<CompetitionEvent>, CompetitionError> {
        let work = || WorkItem::existing(self.work.as_ref());
        match command {
            CompetitionCommand::Launch { spec, occurred_at } => {
                match WorkItem::acceptance(self.work.as_ref(), &spec) {
                    Acceptance::Replay => Ok(vec![]),
                    Acceptance::Conflict => Err(CompetitionError::IdempotencyConflict),
                    Acceptance::New => {
                        check_spec(&spec).map_err(CompetitionError::InvalidSpec)?;
                        Ok(vec![CompetitionEvent::CompetitionAccepted {
                            spec,
                            occurred_at,
                        }])
                    }
                }
            }
            CompetitionCommand::Reject {
                code,
                reason,
                occurred_at,
            } => Ok(work()?
                .lifecycle()
                .decide_reject(code, reason, occurred_at)?),
            CompetitionCommand::Start { occurred_at } => {
                Ok(work()?.lifecycle().decide_start(occurred_at)?)
            }
            CompetitionCommand::Complete {
                result,
                duration_ms,
                occurred_at,
            } => {
                let work = work()?;
                let attempt = work.lifecycle().check_running()?;
                if !work.spec().competitors.contains(&result.champion) {
                    return Err(CompetitionError::InvalidSpec(format!(
                        "the champion {} did not compete",
                        result.champion.name()
                    )));
                }
                Ok(vec![CompetitionEvent::CompetitionCompleted {
                    attempt,
                    result,
                    duration_ms,
                    occurred_at,
                }])
            }
            CompetitionCommand::FailAttempt {
                reason,
                occurred_at,
            } => Ok(work()?.lifecycle().decide_fail(reason, occurred_at)?),
        }
    }
}

fn check_spec(spec: &CompetitionSpec) -> Result<(), String> {
    check_text("content", &spec.content, true)?;
    check_billing(&spec.tenant, spec.cost, &spec.tags)?;
    let count = spec.competitors.len();
    if !(1..=MAX_ROUND_COMPETITORS).contains(&count) {
        return Err(format!(
            "a competition needs 1..={MAX_ROUND_COMPETITORS} competitors, got {count}"
        ));
    }
    let mut seen = Vec::with_capacity(count);
    for competitor in &spec.competitors {
        if seen.contains(competitor) {
            return Err(format!("{} competes twice", competitor.name()));
        }
        seen.push(*competitor);
    }
    if spec.horizon == 0 {
        return Err("the horizon must be at least 1".to_owned());
    }
    Ok(())
}

impl Aggregate for Competition {
    const TYPE: &'static str = "competition";
    type Command = CompetitionCommand;
    type Event = CompetitionEvent;
    type Error = CompetitionError;
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
        WorkItem::apply_event(&mut self.work, &event);
        match event {
            CompetitionEvent::CompetitionAccepted { spec, occurred_at } => {
                self.work = Some(WorkItem::accepted(spec, occurred_at));
            }
            CompetitionEvent::CompetitionCompleted { result, .. } => self.result = Some(result),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::{compete, Series};
    use crate::tenancy::fixtures::{
        at, attempt_failed, failed, money, refusal, rejected, started, tags, FAILURE_REASON,
        REJECTION,
    };
    use cqrs_es::test::TestFramework;
    use cqrs_es::DomainEvent;
    use rust_decimal::Decimal;

    type Tf = TestFramework<Competition>;

    fn values() -> Vec<f64> {
        (0..24).map(|i| 10.0 + f64::from(i) * 0.5).collect()
    }

    fn spec() -> CompetitionSpec {
        CompetitionSpec {
            tenant: "acme".to_owned(),
            content: "Spring campaign".to_owned(),
            priority: Priority::Normal,
            competitors: vec![Strategy::Aggressive, Strategy::Conservative],
            series: SeriesInput {
                values: values(),
                season_length: None,
            },
            horizon: 3,
            production: Strategy::Balanced,
            cost: money("0.04"),
            tags: tags("acme"),
            platforms: vec!["web".to_owned()],
        }
    }

    fn result(champion: Strategy) -> CompetitionResult {
        let tournament = compete(&Series::parse(values(), None).unwrap(), 3).unwrap();
        CompetitionResult {
            tournament,
            ranking: vec![champion],
            champion,
            production: Strategy::Balanced,
            win_rate_delta: Decimal::new(12, 2),
            burn_rate: Decimal::new(5, 1),
            promote: true,
        }
    }

    fn accepted() -> CompetitionEvent {
        CompetitionEvent::CompetitionAccepted {
            spec: spec(),
            occurred_at: at(0),
        }
    }

    fn launch(spec: CompetitionSpec) -> CompetitionCommand {
        CompetitionCommand::Launch {
            spec,
            occurred_at: at(0),
        }
    }

    fn complete(champion: Strategy) -> CompetitionCommand {
        CompetitionCommand::Complete {
            result: result(champion),
            duration_ms: 800,
            occurred_at: at(30),
        }
    }

    fn fail(seconds: i64) -> CompetitionCommand {
        CompetitionCommand::FailAttempt {
            reason: FAILURE_REASON.to_owned(),
            occurred_at: at(seconds),
        }
    }

    fn reject() -> CompetitionCommand {
        let (code, reason) = REJECTION;
        CompetitionCommand::Reject {
            code: code.to_owned(),
            reason: reason.to_owned(),
            occurred_at: at(1),
        }
    }

    fn lifecycle_error(error: LifecycleError) -> CompetitionError {
        CompetitionError::Lifecycle(error)
    }

    fn invalid(spec: CompetitionSpec) {
        let error = refusal::<Competition>(vec![], launch(spec));
        assert!(
            matches!(error, CompetitionError::InvalidSpec(_)),
            "{error:?}"
        );
    }

    #[test]
    fn happy_path() {
        Tf::with(())
            .given_no_previous_events()
            .when(launch(spec()))
            .then_expect_events(vec![accepted()]);
        Tf::with(())
            .given(vec![accepted()])
            .when(CompetitionCommand::Start { occurred_at: at(1) })
            .then_expect_events(vec![started(1, 1)]);
        Tf::with(())
            .given(vec![accepted(), started(1, 1)])
            .when(complete(Strategy::Conservative))
            .then_expect_events(vec![CompetitionEvent::CompetitionCompleted {
                attempt: 1,
                result: result(Strategy::Conservative),
                duration_ms: 800,
                occurred_at: at(30),
            }]);
    }

    #[test]
    fn retries_back_off_then_fail_on_the_third_attempt() {
        Tf::with(())
            .given(vec![accepted(), started(1, 1)])
            .when(fail(5))
            .then_expect_events(vec![attempt_failed(1, 5, Some(1))]);
        Tf::with(())
            .given(vec![
                accepted(),
                started(1, 1),
                attempt_failed(1, 5, Some(1)),
            ])
            .and(vec![started(2, 6)])
            .when(fail(10))
            .then_expect_events(vec![attempt_failed(2, 10, Some(2))]);
        Tf::with(())
            .given(vec![
                accepted(),
                started(1, 1),
                attempt_failed(1, 5, Some(1)),
                started(2, 6),
                attempt_failed(2, 10, Some(2)),
                started(3, 12),
            ])
            .when(fail(15))
            .then_expect_events(vec![attempt_failed(3, 15, None), failed(3, 15)]);
    }

    #[test]
    fn reject_only_before_any_start() {
        Tf::with(())
            .given(vec![accepted()])
            .when(reject())
            .then_expect_events(vec![rejected(1)]);
        Tf::with(())
            .given(vec![accepted(), started(1, 1)])
            .when(reject())
            .then_expect_error(lifecycle_error(LifecycleError::CannotReject {
                status: Status::Running,
            }));
        Tf::with(())
            .given(vec![accepted(), rejected(1)])
            .when(CompetitionCommand::Start { occurred_at: at(2) })
            .then_expect_error(lifecycle_error(LifecycleError::AlreadyFinished {
                status: Status::Rejected,
            }));
        Tf::with(())
            .given_no_previous_events()
            .when(reject())
            .then_expect_error(lifecycle_error(LifecycleError::NotFound));
    }

    #[test]
    fn the_champion_must_have_competed() {
        let error = refusal::<Competition>(
            vec![accepted(), started(1, 1)],
            complete(Strategy::Experimental),
        );
        assert!(
            matches!(error, CompetitionError::InvalidSpec(_)),
            "{error:?}"
        );
        Tf::with(())
            .given(vec![accepted()])
            .when(complete(Strategy::Aggressive))
            .then_expect_error(lifecycle_error(LifecycleError::NotRunning {
                status: Status::Accepted,
            }));
    }

    #[test]
    fn launch_is_idempotent_per_spec() {
        Tf::with(())
            .given(vec![accepted(), started(1, 1)])
            .when(launch(spec()))
            .then_expect_events(vec![]);
        Tf::with(())
            .given(vec![accepted()])
            .when(launch(CompetitionSpec {
                horizon: 4,
                ..spec()
            }))
            .then_expect_error(CompetitionError::IdempotencyConflict);
    }

    #[test]
    fn specs_are_validated() {
        let all = CompetitionSpec {
            competitors: Strategy::ALL.to_vec(),
            ..spec()
        };
        assert_eq!(check_spec(&all), Ok(()));
        invalid(CompetitionSpec {
            content: String::new(),
            ..spec()
        });
        invalid(CompetitionSpec {
            content: "c".repeat(501),
            ..spec()
        });
        invalid(CompetitionSpec {
            competitors: vec![],
            ..spec()
        });
        invalid(CompetitionSpec {
            competitors: vec![Strategy::Balanced, Strategy::Balanced],
            ..spec()
        });
        invalid(CompetitionSpec {
            horizon: 0,
            ..spec()
        });
        invalid(CompetitionSpec {
            cost: money("-1"),
            ..spec()
        });
        invalid(CompetitionSpec {
            tags: tags("globex"),
            ..spec()
        });
    }

    #[test]
    fn state_follows_the_events() {
        let mut competition = Competition::default();
        assert_eq!(competition.status(), None);
        competition.apply(accepted());
        competition.apply(started(1, 1));
        assert_eq!(competition.status(), Some(Status::Running));
        competition.apply(CompetitionEvent::CompetitionCompleted {
            attempt: 1,
            result: result(Strategy::Aggressive),
            duration_ms: 800,
            occurred_at: at(30),
        });
        assert_eq!(competition.status(), Some(Status::Completed));
        assert_eq!(
            competition.result().map(|r| r.champion),
            Some(Strategy::Aggressive)
        );
        assert_eq!(competition.spec(), Some(&spec()));
        assert_eq!(competition.lifecycle().unwrap().finished_at, Some(at(30)));
        assert_eq!(competition.rejection(), None);
    }

    #[test]
    fn events_round_trip_through_json() {
        let mut competition = Competition::default();
        for event in [accepted(), started(1, 1)] {
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(
                serde_json::from_str::<CompetitionEvent>(&json).unwrap(),
                event
            );
            competition.apply(event);
        }
        let state = serde_json::to_string(&competition).unwrap();
        assert_eq!(
            serde_json::from_str::<Competition>(&state).unwrap(),
            competition
        );
        // serde_json (without `float_roundtrip`) may move a computed f64 by one ulp, so the
        // result's backtests are compared on their decided facts.
        let completed = CompetitionEvent::CompetitionCompleted {
            attempt: 1,
            result: result(Strategy::Aggressive),
            duration_ms: 800,
            occurred_at: at(30),
        };
        let json = serde_json::to_string(&completed).unwrap();
        let CompetitionEvent::CompetitionCompleted { result: back, .. } =
            serde_json::from_str::<CompetitionEvent>(&json).unwrap()
        else {
            panic!("not a completion: {json}");
        };
        let expected = result(Strategy::Aggressive);
        assert_eq!(
            (back.champion, back.ranking, back.production, back.promote),
            (
                expected.champion,
                expected.ranking,
                expected.production,
                expected.promote
            )
        );
        assert_eq!(
            (back.win_rate_delta, back.burn_rate),
            (expected.win_rate_delta, expected.burn_rate)
        );
        assert_eq!(accepted().event_type(), "CompetitionAccepted");
        assert_eq!(accepted().event_version(), "1.0");
        assert_eq!(Competition::TYPE, "competition");
        assert!(!CompetitionError::IdempotencyConflict.is_retryable());
    }
}
