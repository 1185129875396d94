//! Agent executions in (issue 14): reports validated and anonymised by the domain
//! ([`agora_domain::executions::report::validate`]), the subject's own fields sealed with its
//! key ([`crate::subjects`]), then appended in batches through the ingest path (DESIGN.md §8),
//! one stream per execution named `<tenant>:<executionId>`.
//!
//! A re-sent execution is a no-op (`DUPLICATE`): sealing is deterministic per execution, so the
//! same report gives the same bytes. A different body under the same id is `CONFLICT`; a report
//! that breaks a rule is `INVALID` with every problem named by its field; a report for an erased
//! subject is `INVALID` too. `startedAt` is required here: a default of "now" would make every
//! re-send a different record.

use std::collections::HashMap;

use agora_domain::executions::aggregate::{AgentExecution, ExecutionEvent, RecordedExecution};
use agora_domain::executions::report::{validate, ExecutionProblem, ExecutionReport};
use agora_domain::executions::subject::{
    DataSubject, SubjectCommand, SubjectError as DataSubjectError,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::append::{IngestError, IngestOutcome, IngestRecord, MAX_INGEST_BATCH};
use crate::bus::{CommandBus, CommitSignal};
use crate::metadata::CommandMetadata;
use crate::store::Store;
use crate::subjects::{subject_ref, SubjectError, SubjectKeys, SubjectSealer};

/// What happened to one report, in the order sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportOutcome {
    pub execution_id: String,
    /// `STORED`, `DUPLICATE`, `CONFLICT` or `INVALID`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub problems: Vec<ExecutionProblem>,
}

/// Why a whole batch failed (nothing of it was written).
#[derive(Debug, thiserror::Error)]
pub enum ExecutionIngestError {
    #[error("at most {MAX_INGEST_BATCH} executions per call, got {0}")]
    TooMany(usize),
    #[error("no executions in the call")]
    Empty,
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Subjects(SubjectError),
}

/// The stream id of `tenant`'s execution `execution_id`.
pub fn execution_stream(tenant: &str, execution_id: &str) -> String {
    format!("{tenant}:{execution_id}")
}

/// Ingests agents' execution reports.
pub struct ExecutionService {
    bus: CommandBus<AgentExecution>,
    subjects: CommandBus<DataSubject>,
    keys: SubjectKeys,
}

/// Why an erasure failed.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("{0}")]
    Refused(DataSubjectError),
    #[error("user id must be 1 to 128 characters")]
    BadUserId,
    #[error("erasure failed: {0}")]
    Storage(String),
}

fn problem(field: &str, message: impl Into<String>) -> Vec<ExecutionProblem> {
    vec![ExecutionProblem {
        field: field.to_owned(),
        message: message.into(),
    }]
}

impl ExecutionService {
    pub fn new(store: &Store, signal: CommitSignal) -> Self {
        Self {
            bus: CommandBus::new(store, signal.clone(), ()),
            subjects: CommandBus::new(store, signal, ()),
            keys: SubjectKeys::new(store),
        }
    }

    pub fn keys(&self) -> &SubjectKeys {
        &self.keys
    }

    /// Erases `tenant`'s user `user_id`: the erasure is recorded (by whom, why) on the subject's
    /// stream, then the key is deleted. Repeating it changes nothing and answers the first
    /// erasure's time. Returns the subject's reference and that time.
    pub async fn erase_subject(
        &self,
        tenant: &str,
        user_id: &str,
        by: &str,
        reason: &str,
        meta: &CommandMetadata,
    ) -> Result<(String, DateTime<Utc>), EraseError> {
        if user_id.is_empty() || user_id.len() > 128 {
            return Err(EraseError::BadUserId);
        }
        let subject = subject_ref(tenant, user_id);
        let command = SubjectCommand::Erase {
            by: by.to_owned(),
            reason: reason.to_owned(),
            occurred_at: meta.occurred_at,
        };
        self.subjects
            .execute(&subject, command, meta)
            .await
            .map_err(|e| match e {
                crate::bus::CommandError::Rejected(r) => EraseError::Refused(r),
                other => EraseError::Storage(other.to_string()),
            })?;
        let at = self
            .keys
            .erase(&subject)
            .await
            .map_err(|e| EraseError::Storage(e.to_string()))?;
        Ok((subject, at))
    }

    /// Validates, anonymises, seals and appends `reports` of `tenant`'s agent `agent_id`,
    /// received at `now`; outcomes in the order of `reports`.
    pub async fn ingest(
        &self,
        tenant: &str,
        agent_id: &str,
        reports: &[ExecutionReport],
        now: DateTime<Utc>,
        meta: &CommandMetadata,
    ) -> Result<Vec<ReportOutcome>, ExecutionIngestError> {
        if reports.is_empty() {
            return Err(ExecutionIngestError::Empty);
        }
        if reports.len() > MAX_INGEST_BATCH {
            return Err(ExecutionIngestError::TooMany(reports.len()));
        }
        let mut outcomes: Vec<Option<ReportOutcome>> = vec![None; reports.len()];
        let mut records = Vec::new();
        let mut positions = Vec::new();
        let mut sealers: HashMap<String, Option<SubjectSealer>> = HashMap::new();
        for (i, report) in reports.iter().enumerate() {
            let refused = |problems: Vec<ExecutionProblem>| ReportOutcome {
                execution_id: report.execution_id.clone(),
                outcome: "INVALID".into(),
                problems,
            };
            if report.started_at.is_none() {
                outcomes[i] = Some(refused(problem("startedAt", "is required")));
                continue;
            }
            let execution = match validate(agent_id, report, now) {
                Ok(e) => e,
                Err(problems) => {
                    outcomes[i] = Some(refused(problems));
                    continue;
                }
            };
            let subject = subject_ref(tenant, &execution.personal.user_id);
            let plain = serde_json::to_vec(&execution.personal).unwrap_or_default();
            let stream = execution_stream(tenant, &execution.facts.execution_id);
            // One key read per user and call, however many of their executions it holds.
            if !sealers.contains_key(&subject) {
                let sealer = match self.keys.sealer(&subject).await {
                    Ok(s) => Some(s),
                    Err(SubjectError::Erased { .. }) => None,
                    Err(e) => return Err(ExecutionIngestError::Subjects(e)),
                };
                sealers.insert(subject.clone(), sealer);
            }
            let Some(Some(sealer)) = sealers.get(&subject) else {
                outcomes[i] = Some(refused(problem(
                    "userId",
                    "the user's data was erased: nothing more is recorded for them",
                )));
                continue;
            };
            let personal = sealer
                .seal(&plain, Some(&stream))
                .map_err(ExecutionIngestError::Subjects)?;
            let recorded = RecordedExecution {
                tenant: tenant.to_owned(),
                subject,
                facts: execution.facts,
                personal,
            };
            records.push(IngestRecord {
                id: stream,
                event: ExecutionEvent::ExecutionRecorded(Box::new(recorded)),
            });
            positions.push(i);
        }
        if !records.is_empty() {
            let appended = self.bus.ingest(records, meta).await?;
            for (i, o) in positions.into_iter().zip(appended) {
                let problems = match &o {
                    IngestOutcome::Conflict(m) | IngestOutcome::Invalid(m) => {
                        problem("executionId", m.clone())
                    }
                    _ => Vec::new(),
                };
                outcomes[i] = Some(ReportOutcome {
                    execution_id: reports[i].execution_id.clone(),
                    outcome: o.code().to_owned(),
                    problems,
                });
            }
        }
        Ok(outcomes.into_iter().flatten().collect())
    }
}
