//! The seed's REST paths: `POST /api/v2/tasks`, `GET /api/v2/tasks/{id}`,
//! `POST /api/v2/self-compete`, `GET /api/v2/self-compete/{id}`,
//! `GET /api/v2/self-compete/export`, `GET /api/status` and `GET /openapi.json`.
//!
//! Every request is checked against the OpenAPI document first ([`super::openapi::validate`]):
//! a failure is a 400 listing every problem. `Idempotency-Key` and `X-Tenant-ID` are required
//! on the two POSTs (as the seed says); the key names the work item, so a retry answers with the
//! same id.

#![allow(clippy::result_large_err)]

use agora_commands::lapverse::{CompetitionRequest, Receipt, TaskRequest, WorkRequest};
use agora_domain::forecast::Strategy;
use agora_domain::money::Money;
use agora_domain::tenancy::cost::Complexity;
use agora_domain::tenancy::work::{Priority, SeriesInput, TaskType};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::openapi::{self, Operation, Problem};
use super::{api_error, export, may_act_for, may_read, views};
use crate::app::AppState;
use crate::graphql::auth::Principal;
use crate::graphql::error::ApiError;
use crate::logmarket::rest::{error_response, mutation_with_status, Call, Reply};

/// Largest request body of these routes (a LOG_ANALYSIS task carries its log).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/tasks", post(submit_task))
        .route("/api/v2/tasks/{id}", get(get_task))
        .route("/api/v2/self-compete", post(launch_competition))
        .route("/api/v2/self-compete/export", get(export_competitions))
        .route("/api/v2/self-compete/{id}", get(get_competition))
        .route("/api/status", get(status))
        .route("/openapi.json", get(openapi_document))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Authenticates and counts the request against the key's general limit
/// (`AGORA_RATE_LIMIT_PER_MINUTE`, shared with GraphQL).
async fn caller(s: &AppState, headers: &HeaderMap) -> Result<Principal, Response> {
    let p = s
        .keys
        .authenticate(header_value(headers, header::AUTHORIZATION.as_str()))
        .await
        .map_err(error_response)?;
    s.rate_limiter
        .check(&p.key_id)
        .await
        .map_err(|e| error_response(e.into_api("too many requests for this key".into())))?;
    Ok(p)
}

fn invalid(problems: Vec<Problem>) -> Response {
    let message = problems
        .iter()
        .map(|p| format!("{}: {}", p.location, p.message))
        .collect::<Vec<_>>()
        .join("; ");
    let body =
        json!({"error": {"code": "BAD_USER_INPUT", "message": message, "problems": problems}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parses the body and checks headers and body against the document.
fn checked_body(op: Operation, headers: &HeaderMap, body: &Bytes) -> Result<Value, Response> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| error_response(ApiError::BadUserInput(format!("invalid JSON body: {e}"))))?;
    openapi::validate(op, headers, &[], Some(&value)).map_err(invalid)?;
    Ok(value)
}

#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Requirements {
    complexity: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeriesBody {
    values: Vec<f64>,
    season_length: Option<usize>,
}

/// Fields tasks and rounds share.
#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct CommonBody {
    priority: Option<String>,
    tenant: Option<String>,
    #[serde(default)]
    platforms: Vec<String>,
    cost_center: Option<String>,
    owner: Option<String>,
    series: Option<SeriesBody>,
    horizon: Option<usize>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskBody {
    #[serde(rename = "type")]
    task_type: String,
    description: String,
    #[serde(flatten)]
    common: CommonBody,
    targeting_key: Option<String>,
    #[serde(default)]
    requirements: Requirements,
    level: Option<f64>,
    log: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct CompetitionBody {
    content: String,
    #[serde(flatten)]
    common: CommonBody,
    #[serde(default)]
    competitors: Vec<String>,
}

fn bad(message: String) -> Response {
    error_response(ApiError::BadUserInput(message))
}

fn priority(p: Option<&str>) -> Result<Priority, Response> {
    match p {
        None => Ok(Priority::default()),
        Some(p) => Priority::parse(p).ok_or_else(|| bad(format!("unknown priority {p:?}"))),
    }
}

fn complexity(c: Option<&str>) -> Result<Complexity, Response> {
    match c {
        None => Ok(Complexity::Simple),
        Some(c) => Complexity::ALL
            .into_iter()
            .find(|x| x.as_str() == c)
            .ok_or_else(|| bad(format!("unknown complexity {c:?}"))),
    }
}

/// The tenant of the request: `X-Tenant-ID`, which the body's `tenant` (when present) must match.
fn tenant_of(headers: &HeaderMap, body_tenant: Option<&str>) -> Result<String, Response> {
    let header = header_value(headers, "x-tenant-id")
        .ok_or_else(|| bad("X-Tenant-ID header is required".into()))?;
    if let Some(t) = body_tenant {
        if t != header {
            return Err(bad(format!(
                "body tenant {t:?} does not match X-Tenant-ID {header:?}"
            )));
        }
    }
    Ok(header.to_owned())
}

fn work_request(
    headers: &HeaderMap,
    tenant: String,
    c: CommonBody,
) -> Result<WorkRequest, Response> {
    let key = header_value(headers, "idempotency-key")
        .ok_or_else(|| bad("Idempotency-Key header is required".into()))?;
    Ok(WorkRequest {
        tenant,
        idempotency_key: key.to_owned(),
        priority: priority(c.priority.as_deref())?,
        cost_center: c.cost_center,
        owner: c.owner,
        platforms: c.platforms,
        series: c.series.map(|s| SeriesInput {
            values: s.values,
            season_length: s.season_length,
        }),
        horizon: c.horizon,
    })
}

async fn submit_task(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Reply {
    let p = caller(&s, &headers).await?;
    let value = checked_body(Operation::SubmitTask, &headers, &body)?;
    let b: TaskBody = serde_json::from_value(value.clone())
        .map_err(|e| bad(format!("invalid task body: {e}")))?;
    let tenant = tenant_of(&headers, b.common.tenant.as_deref())?;
    may_act_for(&p, &tenant).map_err(error_response)?;
    let task_type = TaskType::parse(&b.task_type)
        .ok_or_else(|| bad(format!("unknown task type {:?}", b.task_type)))?;
    let request = TaskRequest {
        work: work_request(&headers, tenant, b.common)?,
        task_type,
        description: b.description,
        complexity: complexity(b.requirements.complexity.as_deref())?,
        targeting_key: b.targeting_key,
        level_percent: b.level,
        log: b.log,
    };
    let lv = s.lapverse.clone();
    let market = s.market.clone();
    let call = Call {
        op: "submitTask",
        status: StatusCode::ACCEPTED,
        scope: &format!("tenant/{}", request.work.tenant),
    };
    mutation_with_status(
        call,
        &s,
        &p,
        &headers,
        json!({"rest.task": value}),
        |meta| async move {
            let receipt = lv
                .service
                .submit_task(request, &meta)
                .await
                .map_err(api_error)?;
            market.settle_reads().await;
            Ok(ReceiptDto::from(&receipt))
        },
        |r: &ReceiptDto| json!({"taskId": r.id, "status": "accepted"}),
    )
    .await
}

async fn launch_competition(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Reply {
    let p = caller(&s, &headers).await?;
    let value = checked_body(Operation::LaunchCompetition, &headers, &body)?;
    let b: CompetitionBody = serde_json::from_value(value.clone())
        .map_err(|e| bad(format!("invalid self-compete body: {e}")))?;
    let tenant = tenant_of(&headers, b.common.tenant.as_deref())?;
    may_act_for(&p, &tenant).map_err(error_response)?;
    let competitors = b
        .competitors
        .iter()
        .map(|c| {
            Strategy::ALL
                .into_iter()
                .find(|s| s.name() == c)
                .ok_or_else(|| bad(format!("unknown competitor {c:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let request = CompetitionRequest {
        work: work_request(&headers, tenant, b.common)?,
        content: b.content,
        competitors,
    };
    let lv = s.lapverse.clone();
    let market = s.market.clone();
    let call = Call {
        op: "launchCompetition",
        status: StatusCode::ACCEPTED,
        scope: &format!("tenant/{}", request.work.tenant),
    };
    mutation_with_status(
        call,
        &s,
        &p,
        &headers,
        json!({"rest.selfCompete": value}),
        |meta| async move {
            let receipt = lv
                .service
                .launch_competition(request, &meta)
                .await
                .map_err(api_error)?;
            market.settle_reads().await;
            Ok(ReceiptDto::from(&receipt))
        },
        |r: &ReceiptDto| json!({"competitionId": r.id, "status": "accepted"}),
    )
    .await
}

/// A receipt as stored in the idempotency record.
#[derive(Serialize, Deserialize)]
struct ReceiptDto {
    id: String,
}

impl From<&Receipt> for ReceiptDto {
    fn from(r: &Receipt) -> Self {
        Self { id: r.id.clone() }
    }
}

async fn work_row(
    s: &AppState,
    headers: &HeaderMap,
    id: &str,
    kind: &str,
) -> Result<agora_projections::lapverse::WorkRow, Response> {
    let p = caller(s, headers).await?;
    let row = s
        .lapverse
        .queries
        .work(id)
        .await
        .map_err(|e| error_response(ApiError::internal("lap-verse read", e)))?
        .filter(|r| r.kind == kind)
        .ok_or_else(|| error_response(ApiError::NotFound(format!("{kind} {id} not found"))))?;
    may_read(&p, &row.tenant).map_err(|_| {
        // Another tenant's work is reported as absent, not as forbidden.
        error_response(ApiError::NotFound(format!("{kind} {id} not found")))
    })?;
    Ok(row)
}

async fn get_task(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let row = work_row(&s, &headers, &id, "task").await?;
    Ok(Json(views::task_view(&row)).into_response())
}

async fn get_competition(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let row = work_row(&s, &headers, &id, "competition").await?;
    Ok(Json(views::competition_view(&row)).into_response())
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
    tenant: Option<String>,
}

async fn export_competitions(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ExportQuery>,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let mut pairs = Vec::new();
    if let Some(f) = &q.format {
        pairs.push(("format".to_owned(), f.clone()));
    }
    if let Some(t) = &q.tenant {
        pairs.push(("tenant".to_owned(), t.clone()));
    }
    openapi::validate(Operation::ExportCompetitions, &headers, &pairs, None).map_err(invalid)?;
    let tenant = q
        .tenant
        .clone()
        .or_else(|| header_value(&headers, "x-tenant-id").map(str::to_owned))
        .or_else(|| (!p.sees_all_tenants(&super::READ_ANY_TENANT)).then(|| p.tenant.clone()));
    if let Some(t) = &tenant {
        may_read(&p, t).map_err(error_response)?;
    }
    let rows = s
        .lapverse
        .queries
        .completed_competitions(tenant.as_deref())
        .await
        .map_err(|e| error_response(ApiError::internal("lap-verse export", e)))?;
    match q.format.as_deref() {
        Some("csv") => {
            let text = export::csv(&rows)
                .map_err(|e| error_response(ApiError::internal("csv export", e)))?;
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"lapverse-self-compete.csv\"",
                    ),
                ],
                text,
            )
                .into_response())
        }
        _ => Ok(Json(export::metadata(&rows, tenant.as_deref())).into_response()),
    }
}

/// The seed's `{"slo": …, "cost": {…}}`, plus the detail behind it. Without `X-Tenant-ID` it is
/// a public health check (queues only); with it, the caller must be allowed to read the tenant.
async fn status(State(s): State<AppState>, headers: HeaderMap) -> Reply {
    openapi::validate(Operation::Status, &headers, &[], None).map_err(invalid)?;
    let workers = agora_commands::lapverse::jobs::queue_depths(&s.store)
        .await
        .map_err(|e| error_response(api_error(e)))?;
    let workers: serde_json::Map<String, Value> = workers
        .into_iter()
        .map(|(q, d)| (q, json!({"running": d.running, "queued": d.queued})))
        .collect();
    let Some(tenant) = header_value(&headers, "x-tenant-id").map(str::to_owned) else {
        return Ok(Json(json!({
            "slo": 0,
            "cost": {},
            "tenant": null,
            "errorBudget": null,
            "monthToDate": null,
            "limit": null,
            "workers": workers,
        }))
        .into_response());
    };
    let p = caller(&s, &headers).await?;
    may_read(&p, &tenant).map_err(error_response)?;
    let service = &s.lapverse.service;
    let state = service
        .tenant(&tenant)
        .await
        .map_err(|e| error_response(api_error(e)))?;
    let now = Utc::now();
    let slo = service
        .slo_status(&state, &tenant, now)
        .await
        .map_err(|e| error_response(api_error(e)))?;
    let budget = service
        .budget(&tenant, now)
        .await
        .map_err(|e| error_response(api_error(e)))?;
    // Month-to-date per cost center from the month's budget: the same charges and refunds the
    // journal holds, without scanning its history on every call.
    let mut cost: std::collections::BTreeMap<String, Money> = std::collections::BTreeMap::new();
    for (_, charge) in budget.charges().filter(|(_, c)| !c.refunded) {
        let sum = cost
            .entry(charge.cost_center.as_str().to_owned())
            .or_insert(Money::ZERO);
        *sum = sum
            .checked_add(charge.amount)
            .map_err(|e| error_response(ApiError::internal("status cost", e)))?;
    }
    let cost: serde_json::Map<String, Value> = cost
        .into_iter()
        .map(|(cc, m)| (cc, Value::String(m.to_string())))
        .collect();
    let limit = state
        .margin_guardrail()
        .and_then(|g| g.limit().ok())
        .map(|l| l.to_string());
    let slo_number: f64 = slo.burn_1h.to_string().parse().unwrap_or(0.0);
    Ok(Json(json!({
        "slo": slo_number,
        "cost": cost,
        "tenant": tenant,
        "errorBudget": views::slo_view(&slo),
        "monthToDate": budget.month_to_date().to_string(),
        "limit": limit,
        "productionVariant": state.production_variant().name(),
        "workers": workers,
    }))
    .into_response())
}

async fn openapi_document() -> Response {
    Json(openapi::document().clone()).into_response()
}
