//! The `agent_execution` stream: one per execution, started by the batched ingest path
//! (DESIGN.md §8) with its single event, [`ExecutionEvent::ExecutionRecorded`]. No command
//! decides over an execution; a re-sent one is the ingest path's duplicate.
//!
//! What the event holds in the clear is what analytics count (agent, status, times, credits,
//! sizes, the error's category and its redacted message, token usage) and the subject's
//! reference (a digest, for unique-user counts); what is the subject's own (user and session
//! ids, IP prefix, client) is sealed with the subject's key ([`SealedPersonal`]) and unreadable
//! once the subject is erased.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::anonymise::ClientAgent;
use super::report::{ExecutionStatus, TokenUsage};

/// A value sealed with its subject's key (the commands layer's `subjects::Sealed`, as stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPersonal {
    pub subject: String,
    pub nonce: String,
    pub ciphertext: String,
}

/// The subject's own fields of an execution, sealed together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonalFields {
    pub user_id: String,
    pub session_id: Option<String>,
    pub ip_prefix: Option<String>,
    pub client: Option<ClientAgent>,
}

/// An execution as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedExecution {
    pub tenant: String,
    pub agent_id: String,
    pub execution_id: String,
    /// The subject's reference (a digest of tenant and user id).
    pub subject: String,
    pub status: ExecutionStatus,
    pub duration_ms: i64,
    pub credits_consumed: Decimal,
    pub http_status: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub input_size: Option<i64>,
    pub output_size: Option<i64>,
    pub input_type: Option<String>,
    pub output_type: Option<String>,
    pub response_time_ms: Option<i64>,
    pub processing_time_ms: Option<i64>,
    pub queue_time_ms: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub tokens: Vec<TokenUsage>,
    pub personal: SealedPersonal,
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
