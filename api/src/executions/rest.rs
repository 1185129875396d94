//! `POST /v1/agents/{agentId}/executions`: one execution report (the seed's `AgentExecution`
//! fields, camelCase) or `{"executions": [...]}` of up to 1,000, recorded under the caller's
//! tenant. Answers 200 with one result per report, in order: `STORED`, `DUPLICATE` (sent
//! before, same body: nothing written), `CONFLICT` (the id holds another body) or `INVALID`
//! (with `problems`, each naming its field). A whole call is refused only when it is not JSON,
//! empty or too large. Idempotent by each report's `executionId`.

#![allow(clippy::result_large_err)]

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::capsules::rest::{bad, caller, Reply};
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
    let results = super::ingest(&s, &p, &agent_id, items)
        .await
        .map_err(error_response)?;
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
