//! Agent executions over the API (issue 14, seed 002): the seed's
//! `POST /v1/agents/{agentId}/executions` ([`rest`]) and GraphQL `reportExecutions`,
//! `eraseDataSubject` ([`gql`]). The rules are the commands layer's
//! [`agora_commands::executions`].

pub mod gql;
pub mod rest;

use agora_commands::append::MAX_INGEST_BATCH;
use agora_commands::executions::{ExecutionIngestError, ReportOutcome};
use agora_domain::executions::report::{ExecutionProblem, ExecutionReport};
use serde_json::Value;

use crate::app::AppState;
use crate::graphql::auth::Principal;
use crate::graphql::error::ApiError;

/// Ingests raw reports (JSON values) of `agent_id` for the caller's tenant: one outcome per
/// report, in order. A report that does not parse (a missing field, an unknown one such as a
/// prompt) is `INVALID` alone; the call fails as a whole only when empty or over the limit.
pub async fn ingest(
    s: &AppState,
    p: &Principal,
    agent_id: &str,
    items: Vec<Value>,
) -> Result<Vec<ReportOutcome>, ApiError> {
    if items.len() > MAX_INGEST_BATCH {
        return Err(ApiError::BadUserInput(format!(
            "at most {MAX_INGEST_BATCH} executions per call, got {}",
            items.len()
        )));
    }
    if items.is_empty() {
        return Err(ApiError::BadUserInput("no executions in the call".into()));
    }
    let mut parsed: Vec<(usize, ExecutionReport)> = Vec::with_capacity(items.len());
    let mut results: Vec<Option<ReportOutcome>> = vec![None; items.len()];
    for (i, item) in items.into_iter().enumerate() {
        let id: String = item
            .get("executionId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        match serde_json::from_value::<ExecutionReport>(item) {
            Ok(r) => parsed.push((i, r)),
            Err(e) => {
                results[i] = Some(ReportOutcome {
                    execution_id: id,
                    outcome: "INVALID".into(),
                    problems: vec![ExecutionProblem {
                        field: String::new(),
                        message: e.to_string(),
                    }],
                })
            }
        }
    }
    if !parsed.is_empty() {
        let now = chrono::Utc::now();
        let meta = agora_commands::CommandMetadata::new(&p.name, &p.tenant, now)
            .map_err(|e| ApiError::BadUserInput(e.to_string()))?;
        let reports: Vec<ExecutionReport> = parsed.iter().map(|(_, r)| r.clone()).collect();
        let outcomes = s
            .executions
            .ingest(&p.tenant, agent_id, &reports, now, &meta)
            .await
            .map_err(|e| match e {
                ExecutionIngestError::TooMany(_) | ExecutionIngestError::Empty => {
                    ApiError::BadUserInput(e.to_string())
                }
                other => ApiError::internal("execution ingest", other),
            })?;
        for ((i, _), o) in parsed.into_iter().zip(outcomes) {
            results[i] = Some(o);
        }
    }
    Ok(results.into_iter().flatten().collect())
}
