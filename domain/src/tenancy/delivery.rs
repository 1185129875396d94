//! One notification delivered to one tenant webhook, as an aggregate: every
//! HTTP attempt, the success, the give-up and the skip (a destination whose
//! circuit is open, a host that resolves to nothing) is an event, so an
//! auditor reads from the log alone what was sent where, when, and why a
//! delivery did not happen. The aggregate id is [`delivery_id`].
//!
//! ```text
//! (new) ──RecordAttempt Delivered──▶ DeliveryAttempted + DeliverySucceeded   (settled)
//! (new) ──RecordAttempt Failed, final──▶ DeliveryAttempted + DeliveryAbandoned (settled)
//! (new) ──RecordAttempt Failed──▶ DeliveryAttempted                          (pending)
//! (new | pending) ──RecordSkipped──▶ DeliverySkipped                          (settled)
//! (settled) ──anything──▶ AlreadySettled
//! ```
//!
//! Attempts are numbered 1, 2, … with no gap, at most
//! [`MAX_DELIVERY_ATTEMPTS`]. The HTTP call, the clock and the breaker live
//! in the caller (`agora-commands`' webhook dispatcher); the outcome comes in
//! with the command.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::tenant::{WebhookEvent, WebhookId, WebhookUrl};

/// Most HTTP attempts one delivery may record.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 10;

/// Longest notification id, in characters (visible ASCII only).
pub const MAX_NOTIFICATION_ID_LEN: usize = 200;

/// Longest failure, skip or give-up reason, in characters.
pub const MAX_REASON_LEN: usize = 500;

/// The aggregate id of the delivery of notification `notification_id` to
/// webhook `webhook_id`: `"<notification_id>:<webhook_id>"`.
pub fn delivery_id(notification_id: &str, webhook_id: &WebhookId) -> String {
    format!("{notification_id}:{webhook_id}")
}

/// The conventional notification id for `event` about `subject` (a
/// competition id, say): `"<event, kebab-case>:<subject>"`, e.g.
/// `"competition-completed:c-42"`. One id per fact, so delivering the same
/// fact twice is the same delivery.
pub fn notification_id(event: WebhookEvent, subject: &str) -> String {
    let event = match event {
        WebhookEvent::CompetitionCompleted => "competition-completed",
        WebhookEvent::ChampionPromoted => "champion-promoted",
        WebhookEvent::CapsuleBreakingVersion => "capsule-breaking-version",
    };
    format!("{event}:{subject}")
}

/// Something to tell a tenant's webhooks: which fact, for which tenant, and
/// the JSON they receive as `data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// 1..=[`MAX_NOTIFICATION_ID_LEN`] visible ASCII characters (it is sent
    /// in a header); see [`notification_id`].
    pub id: String,
    pub tenant: String,
    pub event: WebhookEvent,
    pub payload: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

impl Notification {
    /// Checks what the type cannot: the id's length and alphabet.
    pub fn check(&self) -> Result<(), DeliveryError> {
        let valid = !self.id.is_empty()
            && self.id.len() <= MAX_NOTIFICATION_ID_LEN
            && self.id.bytes().all(|b| b.is_ascii_graphic());
        valid
            .then_some(())
            .ok_or(DeliveryError::InvalidNotificationId)
    }
}

/// What one HTTP attempt came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    /// The webhook answered with a 2xx status.
    Delivered { status: u16 },
    /// Any other status (`status` is set), or no answer: timeout, refused
    /// connection, TLS failure (`status` is `None`).
    Failed { status: Option<u16>, reason: String },
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Attempts failed and more may follow.
    Pending,
    Succeeded,
    /// Not sent, on purpose; the reason is recorded.
    Skipped,
    /// Every allowed attempt failed.
    Abandoned,
}

impl DeliveryStatus {
    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// Why a delivery command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("the delivery already succeeded, was skipped or was abandoned")]
    AlreadySettled,
    #[error("attempt {got} is out of order: the next attempt is {expected}")]
    AttemptOutOfOrder { expected: u32, got: u32 },
    #[error("a delivery has at most {MAX_DELIVERY_ATTEMPTS} attempts")]
    TooManyAttempts,
    #[error("notification id must be 1..={MAX_NOTIFICATION_ID_LEN} visible ASCII characters")]
    InvalidNotificationId,
    #[error("the command names another notification or webhook than this delivery")]
    DeliveryMismatch,
    #[error("status {status} is not a 2xx success")]
    NotASuccessStatus { status: u16 },
    #[error("reason must be 1..={MAX_REASON_LEN} characters")]
    InvalidReason,
}

impl DeliveryError {
    /// The same command against the same state always fails the same way.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::AlreadySettled
            | Self::AttemptOutOfOrder { .. }
            | Self::TooManyAttempts
            | Self::InvalidNotificationId
            | Self::DeliveryMismatch
            | Self::NotASuccessStatus { .. }
            | Self::InvalidReason => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryCommand {
    /// One HTTP attempt and its outcome. `final_attempt`: the caller will
    /// not try again, so a failure abandons the delivery.
    RecordAttempt {
        notification: Notification,
        webhook_id: WebhookId,
        url: WebhookUrl,
        attempt: u32,
        outcome: AttemptOutcome,
        final_attempt: bool,
        occurred_at: DateTime<Utc>,
    },
    /// The caller decided not to send (open circuit, unresolvable host).
    RecordSkipped {
        notification: Notification,
        webhook_id: WebhookId,
        url: WebhookUrl,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryEvent {
    DeliveryAttempted {
        notification_id: String,
        tenant: String,
        event: WebhookEvent,
        webhook_id: WebhookId,
        url: WebhookUrl,
        attempt: u32,
        outcome: AttemptOutcome,
        occurred_at: DateTime<Utc>,
    },
    DeliverySucceeded {
        attempts: u32,
        status: u16,
        occurred_at: DateTime<Utc>,
    },
    DeliverySkipped {
        notification_id: String,
        tenant: String,
        event: WebhookEvent,
        webhook_id: WebhookId,
        url: WebhookUrl,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
    /// `reason` is the last attempt's failure.
    DeliveryAbandoned {
        attempts: u32,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for DeliveryEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DeliveryAttempted { .. } => "DeliveryAttempted",
            Self::DeliverySucceeded { .. } => "DeliverySucceeded",
            Self::DeliverySkipped { .. } => "DeliverySkipped",
            Self::DeliveryAbandoned { .. } => "DeliveryAbandoned",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

/// Which notification goes to which webhook; set by the first event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Target {
    notification_id: String,
    webhook_id: WebhookId,
}

/// One notification's delivery to one webhook. The aggregate id is
/// [`delivery_id`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    target: Option<Target>,
    status: Option<DeliveryStatus>,
    attempts: u32,
    /// The last failure, the skip or the give-up reason.
    reason: Option<String>,
}

impl Delivery {
    /// `None` before anything was recorded.
    pub fn status(&self) -> Option<DeliveryStatus> {
        self.status
    }

    /// HTTP attempts recorded so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn is_settled(&self) -> bool {
        self.status.is_some_and(DeliveryStatus::is_settled)
    }

    /// Why the last attempt failed (pending), why the delivery was skipped
    /// or abandoned; `None` once it succeeded or before any attempt.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub fn decide(&self, command: DeliveryCommand) -> Result<Vec<DeliveryEvent>, DeliveryError> {
        if self.is_settled() {
            return Err(DeliveryError::AlreadySettled);
        }
        match command {
            DeliveryCommand::RecordAttempt {
                notification,
                webhook_id,
                url,
                attempt,
                outcome,
                final_attempt,
                occurred_at,
            } => {
                self.check_target(&notification, &webhook_id)?;
                self.check_attempt(attempt)?;
                check_outcome(&outcome)?;
                let settle = match &outcome {
                    AttemptOutcome::Delivered { status } => {
                        Some(DeliveryEvent::DeliverySucceeded {
                            attempts: attempt,
                            status: *status,
                            occurred_at,
                        })
                    }
                    AttemptOutcome::Failed { reason, .. } if final_attempt => {
                        Some(DeliveryEvent::DeliveryAbandoned {
                            attempts: attempt,
                            reason: reason.clone(),
                            occurred_at,
                        })
                    }
                    AttemptOutcome::Failed { .. } => None,
                };
                let attempted = DeliveryEvent::DeliveryAttempted {
                    notification_id: notification.id,
                    tenant: notification.tenant,
                    event: notification.event,
                    webhook_id,
                    url,
                    attempt,
                    outcome,
                    occurred_at,
                };
                Ok(std::iter::once(attempted).chain(settle).collect())
            }
            DeliveryCommand::RecordSkipped {
                notification,
                webhook_id,
                url,
                reason,
                occurred_at,
            } => {
                self.check_target(&notification, &webhook_id)?;
                check_reason(&reason)?;
                Ok(vec![DeliveryEvent::DeliverySkipped {
                    notification_id: notification.id,
                    tenant: notification.tenant,
                    event: notification.event,
                    webhook_id,
                    url,
                    reason,
                    occurred_at,
                }])
            }
        }
    }

    fn check_target(
        &self,
        notification: &Notification,
        webhook_id: &WebhookId,
    ) -> Result<(), DeliveryError> {
        notification.check()?;
        match &self.target {
            Some(target)
                if target.notification_id != notification.id
                    || target.webhook_id != *webhook_id =>
            {
                Err(DeliveryError::DeliveryMismatch)
            }
            _ => Ok(()),
        }
    }

    fn check_attempt(&self, attempt: u32) -> Result<(), DeliveryError> {
        let expected = self.attempts.saturating_add(1);
        if attempt != expected {
            return Err(DeliveryError::AttemptOutOfOrder {
                expected,
                got: attempt,
            });
        }
        if attempt > MAX_DELIVERY_ATTEMPTS {
            return Err(DeliveryError::TooManyAttempts);
        }
        Ok(())
    }
}

fn check_outcome(outcome: &AttemptOutcome) -> Result<(), DeliveryError> {
    match outcome {
        AttemptOutcome::Delivered { status } if !(200..=299).contains(status) => {
            Err(DeliveryError::NotASuccessStatus { status: *status })
        }
        AttemptOutcome::Delivered { .. } => Ok(()),
        AttemptOutcome::Failed { reason, .. } => check_reason(reason),
    }
}

fn check_reason(reason: &str) -> Result<(), DeliveryError> {
    let len = reason.chars().count();
    (1..=MAX_REASON_LEN)
        .contains(&len)
        .then_some(())
        .ok_or(DeliveryError::InvalidReason)
}

impl Aggregate for Delivery {
    const TYPE: &'static str = "webhook_delivery";
    type Command = DeliveryCommand;
    type Event = DeliveryEvent;
    type Error = DeliveryError;
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
            DeliveryEvent::DeliveryAttempted {
                notification_id,
                webhook_id,
                attempt,
                outcome,
                ..
            } => {
                self.target.get_or_insert(Target {
                    notification_id,
                    webhook_id,
                });
                self.status = Some(DeliveryStatus::Pending);
                self.attempts = attempt;
                self.reason = match outcome {
                    AttemptOutcome::Delivered { .. } => None,
                    AttemptOutcome::Failed { reason, .. } => Some(reason),
                };
            }
            DeliveryEvent::DeliverySucceeded { .. } => {
                self.status = Some(DeliveryStatus::Succeeded);
                self.reason = None;
            }
            DeliveryEvent::DeliverySkipped {
                notification_id,
                webhook_id,
                reason,
                ..
            } => {
                self.target.get_or_insert(Target {
                    notification_id,
                    webhook_id,
                });
                self.status = Some(DeliveryStatus::Skipped);
                self.reason = Some(reason);
            }
            DeliveryEvent::DeliveryAbandoned { reason, .. } => {
                self.status = Some(DeliveryStatus::Abandoned);
                self.reason = Some(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Tf = TestFramework<Delivery>;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn hook() -> WebhookId {
        WebhookId::parse("h1").unwrap()
    }

    fn url() -> WebhookUrl {
        WebhookUrl::parse("https://hooks.example.com/agora").unwrap()
    }

    fn notification() -> Notification {
        Notification {
            id: notification_id(WebhookEvent::CompetitionCompleted, "c-42"),
            tenant: "acme".into(),
            event: WebhookEvent::CompetitionCompleted,
            payload: serde_json::json!({"competition": "c-42", "champion": "m-7"}),
            occurred_at: at(),
        }
    }

    fn failed(reason: &str) -> AttemptOutcome {
        AttemptOutcome::Failed {
            status: Some(500),
            reason: reason.into(),
        }
    }

    fn attempt(n: u32, outcome: AttemptOutcome, final_attempt: bool) -> DeliveryCommand {
        DeliveryCommand::RecordAttempt {
            notification: notification(),
            webhook_id: hook(),
            url: url(),
            attempt: n,
            outcome,
            final_attempt,
            occurred_at: at(),
        }
    }

    fn skip(reason: &str) -> DeliveryCommand {
        DeliveryCommand::RecordSkipped {
            notification: notification(),
            webhook_id: hook(),
            url: url(),
            reason: reason.into(),
            occurred_at: at(),
        }
    }

    fn attempted(n: u32, outcome: AttemptOutcome) -> DeliveryEvent {
        DeliveryEvent::DeliveryAttempted {
            notification_id: "competition-completed:c-42".into(),
            tenant: "acme".into(),
            event: WebhookEvent::CompetitionCompleted,
            webhook_id: hook(),
            url: url(),
            attempt: n,
            outcome,
            occurred_at: at(),
        }
    }

    fn succeeded(attempts: u32) -> DeliveryEvent {
        DeliveryEvent::DeliverySucceeded {
            attempts,
            status: 204,
            occurred_at: at(),
        }
    }

    fn skipped(reason: &str) -> DeliveryEvent {
        DeliveryEvent::DeliverySkipped {
            notification_id: "competition-completed:c-42".into(),
            tenant: "acme".into(),
            event: WebhookEvent::CompetitionCompleted,
            webhook_id: hook(),
            url: url(),
            reason: reason.into(),
            occurred_at: at(),
        }
    }

    fn abandoned(attempts: u32, reason: &str) -> DeliveryEvent {
        DeliveryEvent::DeliveryAbandoned {
            attempts,
            reason: reason.into(),
            occurred_at: at(),
        }
    }

    fn fold(events: Vec<DeliveryEvent>) -> Delivery {
        let mut delivery = Delivery::default();
        for event in events {
            delivery.apply(event);
        }
        delivery
    }

    #[test]
    fn ids_join_notification_and_webhook() {
        assert_eq!(
            notification_id(WebhookEvent::ChampionPromoted, "c-1"),
            "champion-promoted:c-1"
        );
        assert_eq!(
            delivery_id("competition-completed:c-42", &hook()),
            "competition-completed:c-42:h1"
        );
    }

    #[test]
    fn given_nothing_when_delivered_then_attempted_and_succeeded() {
        Tf::with(())
            .given_no_previous_events()
            .when(attempt(1, AttemptOutcome::Delivered { status: 204 }, false))
            .then_expect_events(vec![
                attempted(1, AttemptOutcome::Delivered { status: 204 }),
                succeeded(1),
            ]);
    }

    #[test]
    fn given_nothing_when_a_failure_then_only_attempted() {
        Tf::with(())
            .given_no_previous_events()
            .when(attempt(1, failed("HTTP 500"), false))
            .then_expect_events(vec![attempted(1, failed("HTTP 500"))]);
    }

    #[test]
    fn given_failures_when_the_final_attempt_fails_then_abandoned() {
        Tf::with(())
            .given(vec![
                attempted(1, failed("HTTP 500")),
                attempted(2, failed("HTTP 502")),
            ])
            .when(attempt(3, failed("timed out"), true))
            .then_expect_events(vec![
                attempted(3, failed("timed out")),
                abandoned(3, "timed out"),
            ]);
    }

    #[test]
    fn given_failures_when_the_final_attempt_succeeds_then_succeeded() {
        Tf::with(())
            .given(vec![attempted(1, failed("HTTP 500"))])
            .when(attempt(2, AttemptOutcome::Delivered { status: 204 }, true))
            .then_expect_events(vec![
                attempted(2, AttemptOutcome::Delivered { status: 204 }),
                succeeded(2),
            ]);
    }

    #[test]
    fn attempts_are_consecutive_from_one() {
        Tf::with(())
            .given_no_previous_events()
            .when(attempt(2, failed("HTTP 500"), false))
            .then_expect_error(DeliveryError::AttemptOutOfOrder {
                expected: 1,
                got: 2,
            });
        Tf::with(())
            .given_no_previous_events()
            .when(attempt(0, failed("HTTP 500"), false))
            .then_expect_error(DeliveryError::AttemptOutOfOrder {
                expected: 1,
                got: 0,
            });
        Tf::with(())
            .given(vec![attempted(1, failed("HTTP 500"))])
            .when(attempt(1, failed("HTTP 500"), false))
            .then_expect_error(DeliveryError::AttemptOutOfOrder {
                expected: 2,
                got: 1,
            });
    }

    #[test]
    fn attempts_are_bounded() {
        let history: Vec<_> = (1..=MAX_DELIVERY_ATTEMPTS)
            .map(|n| attempted(n, failed("HTTP 500")))
            .collect();
        Tf::with(())
            .given(history)
            .when(attempt(MAX_DELIVERY_ATTEMPTS + 1, failed("HTTP 500"), true))
            .then_expect_error(DeliveryError::TooManyAttempts);
    }

    #[test]
    fn given_a_settled_delivery_when_anything_then_already_settled() {
        let settled = [
            vec![
                attempted(1, AttemptOutcome::Delivered { status: 204 }),
                succeeded(1),
            ],
            vec![skipped("circuit open")],
            vec![attempted(1, failed("HTTP 500")), abandoned(1, "HTTP 500")],
        ];
        for history in settled {
            for command in [attempt(2, failed("HTTP 500"), false), skip("circuit open")] {
                Tf::with(())
                    .given(history.clone())
                    .when(command)
                    .then_expect_error(DeliveryError::AlreadySettled);
            }
        }
    }

    #[test]
    fn skip_before_or_between_attempts() {
        Tf::with(())
            .given_no_previous_events()
            .when(skip("circuit open for https://hooks.example.com:443"))
            .then_expect_events(vec![skipped(
                "circuit open for https://hooks.example.com:443",
            )]);
        Tf::with(())
            .given(vec![attempted(1, failed("HTTP 500"))])
            .when(skip("circuit open"))
            .then_expect_events(vec![skipped("circuit open")]);
    }

    #[test]
    fn commands_for_another_target_are_refused() {
        let mut other = notification();
        other.id = "competition-completed:c-43".into();
        Tf::with(())
            .given(vec![attempted(1, failed("HTTP 500"))])
            .when(DeliveryCommand::RecordSkipped {
                notification: other,
                webhook_id: hook(),
                url: url(),
                reason: "circuit open".into(),
                occurred_at: at(),
            })
            .then_expect_error(DeliveryError::DeliveryMismatch);
        Tf::with(())
            .given(vec![attempted(1, failed("HTTP 500"))])
            .when(DeliveryCommand::RecordAttempt {
                notification: notification(),
                webhook_id: WebhookId::parse("h2").unwrap(),
                url: url(),
                attempt: 2,
                outcome: failed("HTTP 500"),
                final_attempt: false,
                occurred_at: at(),
            })
            .then_expect_error(DeliveryError::DeliveryMismatch);
    }

    #[test]
    fn inputs_are_checked() {
        let mut bad = notification();
        bad.id = "has space".into();
        Tf::with(())
            .given_no_previous_events()
            .when(DeliveryCommand::RecordSkipped {
                notification: bad,
                webhook_id: hook(),
                url: url(),
                reason: "x".into(),
                occurred_at: at(),
            })
            .then_expect_error(DeliveryError::InvalidNotificationId);
        Tf::with(())
            .given_no_previous_events()
            .when(attempt(1, AttemptOutcome::Delivered { status: 500 }, false))
            .then_expect_error(DeliveryError::NotASuccessStatus { status: 500 });
        Tf::with(())
            .given_no_previous_events()
            .when(attempt(1, failed(""), false))
            .then_expect_error(DeliveryError::InvalidReason);
        Tf::with(())
            .given_no_previous_events()
            .when(skip(&"r".repeat(MAX_REASON_LEN + 1)))
            .then_expect_error(DeliveryError::InvalidReason);
    }

    #[test]
    fn state_follows_the_events() {
        let empty = Delivery::default();
        assert_eq!(empty.status(), None);
        assert!(!empty.is_settled());

        let pending = fold(vec![
            attempted(1, failed("HTTP 500")),
            attempted(2, failed("HTTP 502")),
        ]);
        assert_eq!(pending.status(), Some(DeliveryStatus::Pending));
        assert_eq!(pending.attempts(), 2);
        assert_eq!(pending.reason(), Some("HTTP 502"));
        assert!(!pending.is_settled());

        let done = fold(vec![
            attempted(1, failed("HTTP 500")),
            attempted(2, AttemptOutcome::Delivered { status: 204 }),
            succeeded(2),
        ]);
        assert_eq!(done.status(), Some(DeliveryStatus::Succeeded));
        assert_eq!(done.attempts(), 2);
        assert_eq!(done.reason(), None);
        assert!(done.is_settled());

        let given_up = fold(vec![
            attempted(1, failed("HTTP 500")),
            abandoned(1, "HTTP 500"),
        ]);
        assert_eq!(given_up.status(), Some(DeliveryStatus::Abandoned));
        assert_eq!(given_up.reason(), Some("HTTP 500"));

        let not_sent = fold(vec![skipped("circuit open")]);
        assert_eq!(not_sent.status(), Some(DeliveryStatus::Skipped));
        assert_eq!(not_sent.attempts(), 0);
        assert_eq!(not_sent.reason(), Some("circuit open"));
    }

    #[test]
    fn events_round_trip_through_json() {
        let events = vec![
            attempted(1, failed("HTTP 500")),
            attempted(
                2,
                AttemptOutcome::Failed {
                    status: None,
                    reason: "timed out".into(),
                },
            ),
            succeeded(3),
            skipped("circuit open"),
            abandoned(3, "HTTP 500"),
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            let back: DeliveryEvent = serde_json::from_value(json).unwrap();
            assert_eq!(back, event);
        }
        let json = serde_json::to_value(notification()).unwrap();
        assert_eq!(json["occurredAt"], "2026-01-01T00:00:00Z");
        assert_eq!(json["event"], "competition_completed");
    }
}
