//! The `agent_execution` stream: one per execution, started by the batched ingest path
//! (DESIGN.md §8) with its single event, [`ExecutionEvent::ExecutionRecorded`]. No command
//! decides over an execution; a re-sent one is the ingest path's duplicate.
//!
//! What the event holds in the clear is what analytics count (agent, status, times, credits,
//! sizes, the error's category and its redacted message, token usage) and the subject's
//! reference (a digest, for unique-user counts); what is the subject's own (user and session
//! ids, IP prefix, client) is sealed with the subject's key ([`Sealed`]) and unreadable
//! once the subject is erased.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::report::ExecutionFacts;
use super::subject::Sealed;

/// An execution as recorded: its facts in the clear, the user's own fields sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedExecution {
    pub tenant: String,
    /// The subject's reference (a digest of tenant and user id), for unique-user counts.
    pub subject: String,
    #[serde(flatten)]
    pub facts: ExecutionFacts,
    /// The [`super::report::PersonalFields`], as JSON, sealed with the user's key.
    pub personal: Sealed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionEvent {
    ExecutionRecorded(Box<RecordedExecution>),
}

impl DomainEvent for ExecutionEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ExecutionRecorded(_) => "AgentExecutionRecorded".to_string(),
        }
    }

    fn event_version(&self) -> String {
        crate::versioning::FIRST_VERSION.to_string()
    }
}

/// No command decides over an execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionCommand {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecutionError {
    #[error("executions are recorded by ingest only")]
    IngestOnly,
}

/// One execution's stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentExecution {
    recorded: Option<Box<RecordedExecution>>,
}

impl AgentExecution {
    pub fn recorded(&self) -> Option<&RecordedExecution> {
        self.recorded.as_deref()
    }
}

impl Aggregate for AgentExecution {
    const TYPE: &'static str = "agent_execution";
    type Command = ExecutionCommand;
    type Event = ExecutionEvent;
    type Error = ExecutionError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _service: &Self::Services,
        _sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {}
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ExecutionEvent::ExecutionRecorded(r) => self.recorded = Some(r),
        }
    }
}
