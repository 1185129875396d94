//! The state machine every piece of asynchronous work shares (a [`super::task::Task`], a
//! [`super::competition::Competition`]), so those aggregates stay thin: they validate their
//! spec and their result, and delegate everything else here.
//!
//! ```text
//! Accepted ──Start──▶ Running ──Complete──▶ Completed
//!    │                  │  ▲
//!  Reject          FailAttempt (attempt < MAX_ATTEMPTS) ──▶ Retrying ──Start──┘
//!    ▼                  │
//! Rejected         FailAttempt (attempt = MAX_ATTEMPTS) ──▶ Failed
//! ```
//!
//! * Start is allowed from Accepted or Retrying, also before `retry_at` (the worker decides
//!   when to run); it begins attempt `attempts + 1`.
//! * Complete and FailAttempt only while Running. A failed attempt below [`MAX_ATTEMPTS`]
//!   schedules a retry [`backoff_after`] it (1 s, 2 s, 4 s …); the last one emits the attempt's
//!   failure and the item's failure together.
//! * Reject only from Accepted, before any start.
//! * Rejected, Completed and Failed are terminal: every further command is refused with
//!   [`LifecycleError::AlreadyFinished`] (the aggregates answer a replayed Accept themselves).
//!
//! The aggregates' events implement [`LifecycleEvent`] (and `cqrs_es::DomainEvent`) through
//! the `work_events!` macro, so the decisions here build them and [`WorkItem::apply`] folds
//! them through one [`Transition`] type. [`WorkItem`] holds a spec, its [`Lifecycle`] and the
//! [`Rejection`]; [`WorkItem::acceptance`] tells a new item from an idempotent replay or a
//! conflicting reuse of the id. [`check_text`] and [`check_billing`] are the spec checks both
//! aggregates share.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::tenancy::cost::FinOpsTags;

/// Attempts a work item gets before it fails for good.
pub const MAX_ATTEMPTS: u32 = 3;

/// Delay before the first retry, in milliseconds; it doubles after each failed attempt.
pub const BACKOFF_BASE_MS: i64 = 1_000;

/// Largest doubling exponent of [`backoff_after`], so the delay never overflows (about 12 days).
pub const MAX_BACKOFF_EXPONENT: u32 = 20;

/// Longest free text of a spec (a task's description, a competition's content), in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// Delay before the retry that follows failed attempt `attempt` (1-based): 1 s, 2 s, 4 s …
/// (attempt 0 counts as 1; the doubling stops at [`MAX_BACKOFF_EXPONENT`]).
pub fn backoff_after(attempt: u32) -> chrono::Duration {
    let exponent = attempt.saturating_sub(1).min(MAX_BACKOFF_EXPONENT);
    chrono::Duration::milliseconds(BACKOFF_BASE_MS << exponent)
}

/// Where a work item is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Accepted,
    Rejected,
    Running,
    Retrying,
    Completed,
    Failed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Self::Accepted,
        Self::Rejected,
        Self::Running,
        Self::Retrying,
        Self::Completed,
        Self::Failed,
    ];

    /// The wire name (`"accepted"`, …), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Rejected, Completed and Failed: nothing happens to the item any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Rejected | Self::Completed | Self::Failed)
    }
}

/// Why a lifecycle command was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LifecycleError {
    #[error("no work item with this id")]
    NotFound,
    #[error("the work item is {}, not running", status.as_str())]
    NotRunning { status: Status },
    #[error("a work item that is {} cannot be started", status.as_str())]
    CannotStart { status: Status },
    #[error("the work item is already {}", status.as_str())]
    AlreadyFinished { status: Status },
    #[error("a work item that is {} cannot be rejected", status.as_str())]
    CannotReject { status: Status },
}

impl LifecycleError {
    /// The same command against the same state always fails the same way.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotFound
            | Self::NotRunning { .. }
            | Self::CannotStart { .. }
            | Self::AlreadyFinished { .. }
            | Self::CannotReject { .. } => false,
        }
    }
}

/// A lifecycle change as read from an aggregate's event; [`Lifecycle::apply`] folds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition<'a> {
    Started {
        attempt: u32,
        occurred_at: DateTime<Utc>,
    },
    Completed {
        attempt: u32,
        occurred_at: DateTime<Utc>,
    },
    AttemptFailed {
        attempt: u32,
        reason: &'a str,
        retry_at: Option<DateTime<Utc>>,
        occurred_at: DateTime<Utc>,
    },
    Failed {
        attempts: u32,
        reason: &'a str,
        occurred_at: DateTime<Utc>,
    },
    Rejected {
        code: &'a str,
        reason: &'a str,
        occurred_at: DateTime<Utc>,
    },
}

/// An aggregate's events as the shared rules build and read them.
pub trait LifecycleEvent: Sized {
    fn started(attempt: u32, occurred_at: DateTime<Utc>) -> Self;
    fn attempt_failed(
        attempt: u32,
        reason: String,
        retry_at: Option<DateTime<Utc>>,
        occurred_at: DateTime<Utc>,
    ) -> Self;
    fn failed(attempts: u32, reason: String, occurred_at: DateTime<Utc>) -> Self;
    fn rejected(code: String, reason: String, occurred_at: DateTime<Utc>) -> Self;
    /// The lifecycle change this event records; `None` for the acceptance.
    fn transition(&self) -> Option<Transition<'_>>;
}

/// Implements [`cqrs_es::DomainEvent`] (event type = variant name, version `"1.0"`) and
/// [`LifecycleEvent`] for a work item's event enum, whose lifecycle variants have the shared
/// fields: `code, reason` (rejected), `attempt` (started, completed), `attempt, reason,
/// retry_at` (attempt failed), `attempts, reason` (failed), each with `occurred_at`.
macro_rules! work_events {
    ($event:ident {
        accepted: $accepted:ident,
        rejected: $rejected:ident,
        started: $started:ident,
        completed: $completed:ident,
        attempt_failed: $attempt_failed:ident,
        failed: $failed:ident $(,)?
    }) => {
        impl ::cqrs_es::DomainEvent for $event {
            fn event_type(&self) -> String {
                match self {
                    Self::$accepted { .. } => stringify!($accepted),
                    Self::$rejected { .. } => stringify!($rejected),
                    Self::$started { .. } => stringify!($started),
                    Self::$completed { .. } => stringify!($completed),
                    Self::$attempt_failed { .. } => stringify!($attempt_failed),
                    Self::$failed { .. } => stringify!($failed),
                }
                .to_string()
            }

            fn event_version(&self) -> String {
                "1.0".to_string()
            }
        }

        impl $crate::tenancy::lifecycle::LifecycleEvent for $event {
            fn started(attempt: u32, occurred_at: ::chrono::DateTime<::chrono::Utc>) -> Self {
                Self::$started {
                    attempt,
                    occurred_at,
                }
            }

            fn attempt_failed(
                attempt: u32,
                reason: String,
                retry_at: Option<::chrono::DateTime<::chrono::Utc>>,
                occurred_at: ::chrono::DateTime<::chrono::Utc>,
            ) -> Self {
                Self::$attempt_failed {
                    attempt,
                    reason,
                    retry_at,
                    occurred_at,
                }
            }

            fn failed(
                attempts: u32,
                reason: String,
                occurred_at: ::chrono::DateTime<::chrono::Utc>,
            ) -> Self {
                Self::$failed {
                    attempts,
                    reason,
                    occurred_at,
                }
            }

            fn rejected(
                code: String,
                reason: String,
                occurred_at: ::chrono::DateTime<::chrono::Utc>,
            ) -> Self {
                Self::$rejected {
                    code,
                    reason,
                    occurred_at,
                }
            }

            fn transition(&self) -> Option<$crate::tenancy::lifecycle::Transition<'_>> {
                use $crate::tenancy::lifecycle::Transition;
                Some(match self {
                    Self::$accepted { .. } => return None,
                    Self::$rejected {
                        code,
                        reason,
                        occurred_at,
                    } => Transition::Rejected {
                        code,
                        reason,
                        occurred_at: *occurred_at,
                    },
                    Self::$started {
                        attempt,
                        occurred_at,
                    } => Transition::Started {
                        attempt: *attempt,
                        occurred_at: *occurred_at,
                    },
                    Self::$completed {
                        attempt,
                        occurred_at,
                        ..
                    } => Transition::Completed {
                        attempt: *attempt,
                        occurred_at: *occurred_at,
                    },
                    Self::$attempt_failed {
                        attempt,
                        reason,
                        retry_at,
                        occurred_at,
                    } => Transition::AttemptFailed {
                        attempt: *attempt,
                        reason,
                        retry_at: *retry_at,
                        occurred_at: *occurred_at,
                    },
                    Self::$failed {
                        attempts,
                        reason,
                        occurred_at,
                    } => Transition::Failed {
                        attempts: *attempts,
                        reason,
                        occurred_at: *occurred_at,
                    },
                })
            }
        }
    };
}
pub(crate) use work_events;

/// The shared state of a work item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub status: Status,
    /// Attempts started so far.
    pub attempts: u32,
    /// When the next attempt is due, while Retrying.
    pub retry_at: Option<DateTime<Utc>>,
    /// The reason of the latest failed attempt.
    pub last_error: Option<String>,
    pub accepted_at: DateTime<Utc>,
    /// When the first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the item reached a terminal status.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Lifecycle {
    /// A freshly accepted item.
    pub fn accepted(at: DateTime<Utc>) -> Self {
        Self {
            status: Status::Accepted,
            attempts: 0,
            retry_at: None,
            last_error: None,
            accepted_at: at,
            started_at: None,
            finished_at: None,
        }
    }

    fn check_not_finished(&self) -> Result<(), LifecycleError> {
        if self.status.is_terminal() {
            return Err(LifecycleError::AlreadyFinished {
                status: self.status,
            });
        }
        Ok(())
    }

    /// The attempt a Start would begin.
    pub fn check_start(&self) -> Result<u32, LifecycleError> {
        self.check_not_finished()?;
        match self.status {
            Status::Accepted | Status::Retrying => Ok(self.attempts + 1),
            status => Err(LifecycleError::CannotStart { status }),
        }
    }

    /// The attempt that is running.
    pub fn check_running(&self) -> Result<u32, LifecycleError> {
        self.check_not_finished()?;
        match self.status {
            Status::Running => Ok(self.attempts),
            status => Err(LifecycleError::NotRunning { status }),
        }
    }

    /// Whether a Reject is allowed: only before any start.
    pub fn check_reject(&self) -> Result<(), LifecycleError> {
        self.check_not_finished()?;
        match self.status {
            Status::Accepted => Ok(()),
            status => Err(LifecycleError::CannotReject { status }),
        }
    }

    pub fn decide_start<E: LifecycleEvent>(
        &self,
        occurred_at: DateTime<Utc>,
    ) -> Result<Vec<E>, LifecycleError> {
        let attempt = self.check_start()?;
        Ok(vec![E::started(attempt, occurred_at)])
    }

    /// The running attempt failed: a retry after [`backoff_after`], or, at the last attempt,
    /// the attempt's failure followed by the item's.
    pub fn decide_fail<E: LifecycleEvent>(
        &self,
        reason: String,
        occurred_at: DateTime<Utc>,
    ) -> Result<Vec<E>, LifecycleError> {
        let attempt = self.check_running()?;
        if attempt < MAX_ATTEMPTS {
            let retry_at = Some(occurred_at + backoff_after(attempt));
            return Ok(vec![E::attempt_failed(
                attempt,
                reason,
                retry_at,
                occurred_at,
            )]);
        }
        Ok(vec![
            E::attempt_failed(attempt, reason.clone(), None, occurred_at),
            E::failed(attempt, reason, occurred_at),
        ])
    }

    pub fn decide_reject<E: LifecycleEvent>(
        &self,
        code: String,
        reason: String,
        occurred_at: DateTime<Utc>,
    ) -> Result<Vec<E>, LifecycleError> {
        self.check_reject()?;
        Ok(vec![E::rejected(code, reason, occurred_at)])
    }

    pub fn apply(&mut self, transition: Transition<'_>) {
        match transition {
            Transition::Started {
                attempt,
                occurred_at,
            } => {
                self.status = Status::Running;
                self.attempts = attempt;
                self.retry_at = None;
                self.started_at.get_or_insert(occurred_at);
            }
            Transition::Completed {
                attempt,
                occurred_at,
            } => {
                self.attempts = attempt;
                self.finish(Status::Completed, occurred_at);
            }
            Transition::AttemptFailed {
                attempt,
                reason,
                retry_at,
                ..
            } => {
                self.attempts = attempt;
                self.last_error = Some(reason.to_owned());
                self.retry_at = retry_at;
                // Without a retry the item's failure follows in the same commit.
                if retry_at.is_some() {
                    self.status = Status::Retrying;
                }
            }
            Transition::Failed {
                attempts,
                reason,
                occurred_at,
            } => {
                self.attempts = attempts;
                self.last_error = Some(reason.to_owned());
                self.finish(Status::Failed, occurred_at);
            }
            Transition::Rejected { occurred_at, .. } => {
                self.finish(Status::Rejected, occurred_at);
            }
        }
    }

    fn finish(&mut self, status: Status, at: DateTime<Utc>) {
        self.status = status;
        self.retry_at = None;
        self.finished_at = Some(at);
    }
}

/// Why a Reject ended a work item: a machine-readable code and a reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub code: String,
    pub reason: String,
}

/// What an Accept means for an item that may already exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// No item yet: validate the spec and accept it.
    New,
    /// Accepted before with the same spec: nothing to do.
    Replay,
    /// Accepted before with another spec under the same id.
    Conflict,
}

/// An accepted work item: its spec, its lifecycle and, once rejected, why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkItem<S> {
    spec: S,
    lifecycle: Lifecycle,
    rejection: Option<Rejection>,
}

impl<S: PartialEq> WorkItem<S> {
    pub fn accepted(spec: S, at: DateTime<Utc>) -> Self {
        Self {
            spec,
            lifecycle: Lifecycle::accepted(at),
            rejection: None,
        }
    }

    /// What an Accept of `spec` means given the item so far (`None`: never accepted).
    pub fn acceptance(item: Option<&Self>, spec: &S) -> Acceptance {
        match item {
            None => Acceptance::New,
            Some(item) if item.spec == *spec => Acceptance::Replay,
            Some(_) => Acceptance::Conflict,
        }
    }

    /// The item, or [`LifecycleError::NotFound`] when it was never accepted.
    pub fn existing(item: Option<&Self>) -> Result<&Self, LifecycleError> {
        item.ok_or(LifecycleError::NotFound)
    }

    pub fn spec(&self) -> &S {
        &self.spec
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// `(code, reason)` once rejected.
    pub fn rejection(&self) -> Option<(&str, &str)> {
        self.rejection
            .as_ref()
            .map(|r| (r.code.as_str(), r.reason.as_str()))
    }

    pub fn apply(&mut self, transition: Transition<'_>) {
        if let Transition::Rejected { code, reason, .. } = transition {
            self.rejection = Some(Rejection {
                code: code.to_owned(),
                reason: reason.to_owned(),
            });
        }
        self.lifecycle.apply(transition);
    }

    /// Folds `event` into `item`: a lifecycle event into the existing item; the acceptance
    /// (whose spec the caller moves out) is the caller's.
    pub fn apply_event<E: LifecycleEvent>(item: &mut Option<Self>, event: &E) {
        if let (Some(item), Some(transition)) = (item.as_mut(), event.transition()) {
            item.apply(transition);
        }
    }
}

/// `text` is 1..=[`MAX_TEXT_CHARS`] characters, and without control characters unless
/// `allow_control`; the message names `field`.
pub fn check_text(field: &str, text: &str, allow_control: bool) -> Result<(), String> {
    let len = text.chars().count();
    if !(1..=MAX_TEXT_CHARS).contains(&len) {
        return Err(format!(
            "{field} must be 1..={MAX_TEXT_CHARS} characters, got {len}"
        ));
    }
    if !allow_control && text.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

/// The billing facts every spec carries: a non-negative cost, and tags for the spec's tenant.
pub fn check_billing(tenant: &str, cost: Money, tags: &FinOpsTags) -> Result<(), String> {
    if cost.is_negative() {
        return Err(format!("cost must not be negative, got {cost}"));
    }
    if tags.tenant_id.as_str() != tenant {
        return Err(format!(
            "the tenantId tag {} is not the tenant {tenant}",
            tags.tenant_id
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::fixtures::at;

    /// A minimal work item's events, made by the macro the aggregates use.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Ev {
        Accepted {
            occurred_at: DateTime<Utc>,
        },
        Rejected {
            code: String,
            reason: String,
            occurred_at: DateTime<Utc>,
        },
        Started {
            attempt: u32,
            occurred_at: DateTime<Utc>,
        },
        Completed {
            attempt: u32,
            occurred_at: DateTime<Utc>,
        },
        AttemptFailed {
            attempt: u32,
            reason: String,
            retry_at: Option<DateTime<Utc>>,
            occurred_at: DateTime<Utc>,
        },
        Failed {
            attempts: u32,
            reason: String,
            occurred_at: DateTime<Utc>,
        },
    }

    work_events!(Ev {
        accepted: Accepted,
        rejected: Rejected,
        started: Started,
        completed: Completed,
        attempt_failed: AttemptFailed,
        failed: Failed,
    });

    fn started(attempt: u32, seconds: i64) -> Ev {
        Ev::Started {
            attempt,
            occurred_at: at(seconds),
        }
    }

    fn attempt_failed(attempt: u32, seconds: i64, retry_at: Option<DateTime<Utc>>) -> Ev {
        Ev::AttemptFailed {
            attempt,
            reason: "boom".into(),
            retry_at,
            occurred_at: at(seconds),
        }
    }

    #[test]
    fn backoff_doubles_from_one_second() {
        assert_eq!(backoff_after(1), chrono::Duration::seconds(1));
        assert_eq!(backoff_after(2), chrono::Duration::seconds(2));
        assert_eq!(backoff_after(3), chrono::Duration::seconds(4));
        assert_eq!(backoff_after(0), chrono::Duration::seconds(1));
        assert_eq!(
            backoff_after(u32::MAX),
            backoff_after(MAX_BACKOFF_EXPONENT + 1)
        );
    }

    #[test]
    fn status_names_and_terminality() {
        for status in Status::ALL {
            let json = serde_json::to_string(&status).expect("serializes");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        let terminal: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            vec![Status::Rejected, Status::Completed, Status::Failed]
        );
    }

    #[test]
    fn the_machine_walks_through_retries_to_failure() {
        let mut life = Lifecycle::accepted(at(0));
        assert_eq!(life.decide_start::<Ev>(at(1)), Ok(vec![started(1, 1)]));
        life.apply(Transition::Started {
            attempt: 1,
            occurred_at: at(1),
        });
        assert_eq!(life.check_running(), Ok(1));
        assert_eq!(
            life.decide_fail::<Ev>("boom".into(), at(2)),
            Ok(vec![attempt_failed(1, 2, Some(at(3)))])
        );
        life.apply(Transition::AttemptFailed {
            attempt: 1,
            reason: "boom",
            retry_at: Some(at(3)),
            occurred_at: at(2),
        });
        assert_eq!(life.status, Status::Retrying);
        assert_eq!(life.last_error.as_deref(), Some("boom"));
        assert_eq!(
            life.check_reject(),
            Err(LifecycleError::CannotReject {
                status: Status::Retrying
            })
        );
        assert_eq!(life.check_start(), Ok(2));
        life.apply(Transition::Started {
            attempt: 2,
            occurred_at: at(5),
        });
        assert_eq!(life.started_at, Some(at(1)));
        assert_eq!(life.retry_at, None);
        life.attempts = MAX_ATTEMPTS;
        assert_eq!(
            life.decide_fail::<Ev>("boom".into(), at(9)),
            Ok(vec![
                attempt_failed(MAX_ATTEMPTS, 9, None),
                Ev::Failed {
                    attempts: MAX_ATTEMPTS,
                    reason: "boom".into(),
                    occurred_at: at(9),
                },
            ])
        );
        life.apply(Transition::Failed {
            attempts: MAX_ATTEMPTS,
            reason: "boom",
            occurred_at: at(9),
        });
        assert_eq!(life.status, Status::Failed);
        assert_eq!(life.finished_at, Some(at(9)));
        for result in [
            life.check_start(),
            life.check_running(),
            life.check_reject().map(|()| 0),
        ] {
            assert_eq!(
                result,
                Err(LifecycleError::AlreadyFinished {
                    status: Status::Failed
                })
            );
        }
    }

    #[test]
    fn only_a_running_item_completes_or_fails() {
        let life = Lifecycle::accepted(at(0));
        assert_eq!(
            life.check_running(),
            Err(LifecycleError::NotRunning {
                status: Status::Accepted
            })
        );
        assert_eq!(
            life.decide_reject::<Ev>("c".into(), "r".into(), at(1)),
            Ok(vec![Ev::Rejected {
                code: "c".into(),
                reason: "r".into(),
                occurred_at: at(1),
            }])
        );
        let running = Lifecycle {
            status: Status::Running,
            attempts: 1,
            ..life
        };
        assert_eq!(
            running.check_start(),
            Err(LifecycleError::CannotStart {
                status: Status::Running
            })
        );
        assert!(!LifecycleError::NotFound.is_retryable());
    }

    #[test]
    fn work_items_know_replays_from_conflicts() {
        let item = WorkItem::accepted("spec-a", at(0));
        assert_eq!(WorkItem::acceptance(None, &"spec-a"), Acceptance::New);
        assert_eq!(
            WorkItem::acceptance(Some(&item), &"spec-a"),
            Acceptance::Replay
        );
        assert_eq!(
            WorkItem::acceptance(Some(&item), &"spec-b"),
            Acceptance::Conflict
        );
        assert_eq!(
            WorkItem::<&str>::existing(None),
            Err(LifecycleError::NotFound)
        );
        let mut item = item;
        item.apply(Transition::Rejected {
            code: "TOO_LATE",
            reason: "closed",
            occurred_at: at(1),
        });
        assert_eq!(item.rejection(), Some(("TOO_LATE", "closed")));
        assert_eq!(item.lifecycle().status, Status::Rejected);
    }

    #[test]
    fn the_macro_names_events_and_reads_their_transitions() {
        use cqrs_es::DomainEvent;
        let accepted = Ev::Accepted { occurred_at: at(0) };
        assert_eq!(accepted.transition(), None);
        assert_eq!(accepted.event_type(), "Accepted");
        assert_eq!(accepted.event_version(), "1.0");
        let failed = attempt_failed(2, 4, Some(at(6)));
        assert_eq!(failed.event_type(), "AttemptFailed");
        assert_eq!(
            failed.transition(),
            Some(Transition::AttemptFailed {
                attempt: 2,
                reason: "boom",
                retry_at: Some(at(6)),
                occurred_at: at(4),
            })
        );
        let mut item = Some(WorkItem::accepted((), at(0)));
        for event in [
            started(1, 1),
            Ev::Completed {
                attempt: 1,
                occurred_at: at(3),
            },
        ] {
            WorkItem::apply_event(&mut item, &event);
        }
        let life = item.map(|i| i.lifecycle().clone());
        assert_eq!(life.as_ref().map(|l| l.status), Some(Status::Completed));
        assert_eq!(life.and_then(|l| l.finished_at), Some(at(3)));
    }

    #[test]
    fn free_text_is_bounded() {
        assert_eq!(check_text("description", "ok", false), Ok(()));
        assert!(check_text("description", "", false).is_err());
        assert!(check_text("description", &"é".repeat(MAX_TEXT_CHARS), false).is_ok());
        assert!(check_text("description", &"a".repeat(MAX_TEXT_CHARS + 1), false).is_err());
        assert!(check_text("description", "a\nb", false).is_err());
        assert!(check_text("content", "a\nb", true).is_ok());
    }
}
