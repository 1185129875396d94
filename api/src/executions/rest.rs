//! `POST /v1/agents/{agentId}/executions`: one execution report (the seed's `AgentExecution`
//! fields, camelCase) or `{"executions": [...]}` of up to 1,000, recorded under the caller's
//! tenant. Answers 200 with one result per report, in order: `STORED`, `DUPLICATE` (sent
//! before, same body: nothing written), `CONFLICT` (the id holds another body) or `INVALID`
//! (with `problems`, each naming its field). A whole call is refused only when it is not JSON,
//! empty or too large. Idempotent by each report's `executionId`.

#![allow(clippy::result_large_err)]

use agora_commands::executions::{ExecutionIngestError, ReportOutcome};
use agora_domain::executions::report::{ExecutionProblem, ExecutionReport};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::capsules::rest::{bad, caller, Reply};
use crate::graphql::error::ApiError;
use crate::logmarket::rest::error_response;

/// Largest request body, bytes (1,000 reports of a few KiB).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agents/{agent_id}/executions", post(report))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn report(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(agent_id): Path<String>,
    body: axum::body::Bytes,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| bad(format!("body is not JSON: {e}")))?;
    let items: Vec<Value> = match value {
        Value::Object(mut o) if o.contains_key("executions") => match o.remove("executions") {
            Some(Value::Array(items)) if o.is_empty() => items,
            _ => return Err(bad("`executions` must be the body's only field, an array")),
        },
        v @ Value::Object(_) => vec![v],
        _ => return Err(bad("the body is one execution or {\"executions\": [...]}")),
    };
    let most = agora_commands::append::MAX_INGEST_BATCH;
    if items.len() > most {
        return Err(bad(format!(
            "at most {most} executions per call, got {}",
            items.len()
        )));
    }
    if items.is_empty() {
        return Err(bad("no executions in the call"));
    }
    // Reports that do not even parse are INVALID on their own; the rest go in together.
    let mut parsed: Vec<(usize, ExecutionReport)> = Vec::with_capacity(items.len());
    let mut results: Vec<Option<ReportOutcome>> = vec![None; items.len()];
    for (i, item) in items.into_iter().enumerate() {
        let id = item
            .get("executionId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect::<String>();
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
            .map_err(|e| bad(e.to_string()))?;
        let reports: Vec<ExecutionReport> = parsed.iter().map(|(_, r)| r.clone()).collect();
        let outcomes = s
            .executions
            .ingest(&p.tenant, &agent_id, &reports, now, &meta)
            .await
            .map_err(|e| match e {
                ExecutionIngestError::TooMany(_) | ExecutionIngestError::Empty => {
                    bad(e.to_string())
                }
                other => error_response(ApiError::internal("execution ingest", other)),
            })?;
        for ((i, _), o) in parsed.into_iter().zip(outcomes) {
            results[i] = Some(o);
        }
    }
    let results: Vec<ReportOutcome> = results.into_iter().flatten().collect();
    let count = |code: &str| results.iter().filter(|r| r.outcome == code).count();
    Ok(Json(json!({
        "agentId": agent_id,
        "stored": count("STORED"),
        "duplicates": count("DUPLICATE"),
        "conflicts": count("CONFLICT"),
        "invalid": count("INVALID"),
        "results": results,
    }))
    .into_response())
}
