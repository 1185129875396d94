//! An operator's decision to skip a parked event (DESIGN.md §7): a projection or process
//! manager could not handle the event, it was parked, and an operator chose to let the runner
//! do without it. The skip is itself an event, so the log says who skipped what and why.
//!
//! One `ParkedEventSkip` aggregate per runner and event: id [`skip_id`].

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Longest skip reason (characters).
pub const MAX_REASON_CHARS: usize = 1_000;
/// Longest runner name (characters).
pub const MAX_RUNNER_CHARS: usize = 100;

/// The aggregate id of the skip of the event at `position` by `runner`.
pub fn skip_id(runner: &str, position: i64) -> String {
    format!("{runner}@{position}")
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkipError {
    #[error("a skip needs a reason")]
    ReasonRequired,
    #[error("the reason is longer than {MAX_REASON_CHARS} characters")]
    ReasonTooLong,
    #[error("the runner name must be 1..={MAX_RUNNER_CHARS} characters")]
    InvalidRunner,
    #[error("the event position must be positive")]
    InvalidPosition,
    #[error("an actor must be named")]
    ActorRequired,
    #[error("this parked event was already skipped")]
    AlreadySkipped,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkipCommand {
    Skip {
        runner: String,
        position: i64,
        event_id: Option<String>,
        reason: String,
        actor: String,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkipEvent {
    /// `runner` goes on without the event at `position` (`event_id`): `actor` said so for
    /// `reason`.
    ParkedEventSkipped {
        runner: String,
        position: i64,
        event_id: Option<String>,
        reason: String,
        actor: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for SkipEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ParkedEventSkipped { .. } => "ParkedEventSkipped",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

/// The skip of one parked event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEventSkip {
    skipped: bool,
}

impl ParkedEventSkip {
    pub fn is_skipped(&self) -> bool {
        self.skipped
    }

    pub fn decide(&self, command: SkipCommand) -> Result<Vec<SkipEvent>, SkipError> {
        let SkipCommand::Skip {
            runner,
            position,
            event_id,
            reason,
            actor,
            occurred_at,
        } = command;
        let reason = reason.trim().to_string();
        if reason.is_empty() {
            return Err(SkipError::ReasonRequired);
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(SkipError::ReasonTooLong);
        }
        if runner.is_empty() || runner.chars().count() > MAX_RUNNER_CHARS {
            return Err(SkipError::InvalidRunner);
        }
        if position <= 0 {
            return Err(SkipError::InvalidPosition);
        }
        if actor.trim().is_empty() {
            return Err(SkipError::ActorRequired);
        }
        if self.skipped {
            return Err(SkipError::AlreadySkipped);
        }
        Ok(vec![SkipEvent::ParkedEventSkipped {
            runner,
            position,
            event_id,
            reason,
            actor,
            occurred_at,
        }])
    }
}

impl Aggregate for ParkedEventSkip {
    const TYPE: &'static str = "parked_event_skip";
    type Command = SkipCommand;
    type Event = SkipEvent;
    type Error = SkipError;
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
            SkipEvent::ParkedEventSkipped { .. } => self.skipped = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn skip(reason: &str) -> SkipCommand {
        SkipCommand::Skip {
            runner: "ledger".into(),
            position: 42,
            event_id: Some("018f-event".into()),
            reason: reason.into(),
            actor: "ops@example.com".into(),
            occurred_at: at(),
        }
    }

    fn skipped() -> SkipEvent {
        SkipEvent::ParkedEventSkipped {
            runner: "ledger".into(),
            position: 42,
            event_id: Some("018f-event".into()),
            reason: "written by a bug, corrected by entry 7".into(),
            actor: "ops@example.com".into(),
            occurred_at: at(),
        }
    }

    #[test]
    fn a_skip_records_who_what_and_why() {
        TestFramework::<ParkedEventSkip>::with(())
            .given_no_previous_events()
            .when(skip("  written by a bug, corrected by entry 7 "))
            .then_expect_events(vec![skipped()]);
    }

    #[test]
    fn an_event_is_skipped_once() {
        TestFramework::<ParkedEventSkip>::with(())
            .given(vec![skipped()])
            .when(skip("again"))
            .then_expect_error(SkipError::AlreadySkipped);
    }

    #[test]
    fn rejections_are_typed() {
        TestFramework::<ParkedEventSkip>::with(())
            .given_no_previous_events()
            .when(skip("   "))
            .then_expect_error(SkipError::ReasonRequired);
        TestFramework::<ParkedEventSkip>::with(())
            .given_no_previous_events()
            .when(skip(&"x".repeat(MAX_REASON_CHARS + 1)))
            .then_expect_error(SkipError::ReasonTooLong);
        let SkipCommand::Skip {
            event_id,
            reason,
            actor,
            occurred_at,
            ..
        } = skip("why");
        let with = |runner: &str, position: i64, actor: &str| SkipCommand::Skip {
            runner: runner.into(),
            position,
            event_id: event_id.clone(),
            reason: reason.clone(),
            actor: actor.into(),
            occurred_at,
        };
        for (command, error) in [
            (with("", 1, &actor), SkipError::InvalidRunner),
            (with("ledger", 0, &actor), SkipError::InvalidPosition),
            (with("ledger", 1, " "), SkipError::ActorRequired),
        ] {
            TestFramework::<ParkedEventSkip>::with(())
                .given_no_previous_events()
                .when(command)
                .then_expect_error(error);
        }
        assert_eq!(skip_id("ledger", 42), "ledger@42");
    }
}
