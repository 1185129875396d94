//! The `data_subject` stream: a user's erasure, recorded as an event (DESIGN.md §9) before their
//! key is deleted, so an auditor sees who erased whom (by reference), when and why. Erasing an
//! erased subject changes nothing.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// A value sealed with its subject's key, as stored in events (the commands layer's
/// `subjects::SubjectKeys` seals and opens it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The subject's reference (a digest of tenant and id).
    pub subject: String,
    /// Hex of the 24-byte nonce.
    pub nonce: String,
    /// Hex of the ciphertext and its 16-byte tag.
    pub ciphertext: String,
}

/// Longest erasure reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubjectCommand {
    Erase {
        by: String,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubjectEvent {
    DataSubjectErased {
        by: String,
        reason: String,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for SubjectEvent {
    fn event_type(&self) -> String {
        "DataSubjectErased".to_string()
    }

    fn event_version(&self) -> String {
        crate::versioning::FIRST_VERSION.to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("a reason has 1 to {MAX_REASON_CHARS} characters")]
    InvalidReason,
}

/// A data subject: erased or not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataSubject {
    erased_at: Option<DateTime<Utc>>,
}

impl DataSubject {
    pub fn erased_at(&self) -> Option<DateTime<Utc>> {
        self.erased_at
    }

    pub fn decide(&self, command: SubjectCommand) -> Result<Vec<SubjectEvent>, SubjectError> {
        let SubjectCommand::Erase {
            by,
            reason,
            occurred_at,
        } = command;
        let reason = reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(SubjectError::InvalidReason);
        }
        if self.erased_at.is_some() {
            return Ok(vec![]);
        }
        Ok(vec![SubjectEvent::DataSubjectErased {
            by,
            reason,
            occurred_at,
        }])
    }
}

impl Aggregate for DataSubject {
    const TYPE: &'static str = "data_subject";
    type Command = SubjectCommand;
    type Event = SubjectEvent;
    type Error = SubjectError;
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
            SubjectEvent::DataSubjectErased { occurred_at, .. } => {
                self.erased_at = Some(occurred_at)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn erase(reason: &str) -> SubjectCommand {
        SubjectCommand::Erase {
            by: "acme/boss".into(),
            reason: reason.into(),
            occurred_at: Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap(),
        }
    }

    #[test]
    fn given_a_subject_when_erased_then_an_event_records_who_and_why() {
        let events = DataSubject::default()
            .decide(erase(" GDPR request "))
            .unwrap();
        assert!(matches!(
            &events[..],
            [SubjectEvent::DataSubjectErased { by, reason, .. }] if by == "acme/boss" && reason == "GDPR request"
        ));
    }

    #[test]
    fn given_an_erased_subject_when_erased_again_then_nothing_happens() {
        let mut s = DataSubject::default();
        for e in s.decide(erase("first")).unwrap() {
            s.apply(e);
        }
        assert!(s.erased_at().is_some());
        assert_eq!(s.decide(erase("again")).unwrap(), vec![]);
    }

    #[test]
    fn given_no_reason_when_erased_then_refused() {
        assert_eq!(
            DataSubject::default().decide(erase("  ")),
            Err(SubjectError::InvalidReason)
        );
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert_eq!(
            DataSubject::default().decide(erase(&long)),
            Err(SubjectError::InvalidReason)
        );
    }
}
