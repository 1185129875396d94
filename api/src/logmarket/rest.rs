//! REST adapters for the seed's paths under `/npe/log-marketplace/…`: thin wrappers over
//! [`MarketApi`](super::MarketApi), with the same auth (`Authorization: Bearer <api key>`),
//! idempotency (`Idempotency-Key` header, optional here so the seed's calls work as written),
//! and limits (429 with `Retry-After`). Errors are `{"error": {"code", "message"}}` with the
//! matching HTTP status.

// Handlers return `Result<Response, Response>`: the error side is the finished HTTP answer.
#![allow(clippy::result_large_err)]

use std::future::Future;

use agora_commands::CommandMetadata;
use agora_domain::logmarket::aggregate::Verdict;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::views;
use super::{BatchItem, MarketApi};
use crate::app::AppState;
use crate::graphql::auth::{sha256_hex, Principal};
use crate::graphql::error::ApiError;
use crate::graphql::idempotency::check_client_key;

/// Largest REST body: a full batch of maximum-size logs would be 100 MiB, so batches are
/// bounded by this instead (a clear 413).
pub const MAX_REST_BODY_BYTES: usize = 16 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/npe/log-marketplace/analyze", post(analyze))
        .route("/npe/log-marketplace/batch-analyze", post(batch_analyze))
        .route("/npe/log-marketplace/simulate", post(simulate))
        .route("/npe/log-marketplace/pay/{analysis_id}", post(pay))
        .route("/npe/log-marketplace/dashboard", get(dashboard))
        .route("/npe/log-marketplace/pricing", get(pricing))
        .route("/npe/log-marketplace/agents", get(agents))
        .route("/npe/log-marketplace/top-earners", get(top_earners))
        .route("/npe/log-marketplace/quality-trends", get(quality_trends))
        .route("/npe/log-marketplace/leaderboard", get(leaderboard))
        .route("/npe/log-marketplace/analyses/{analysis_id}", get(analysis))
        .route(
            "/npe/log-marketplace/analyses/{analysis_id}/feedback",
            post(feedback),
        )
        .route("/npe/log-marketplace/sellers/{seller}", get(seller))
        .route(
            "/npe/log-marketplace/sellers/{seller}/analyses",
            get(seller_analyses),
        )
        .route(
            "/npe/log-marketplace/sellers/{seller}/payments",
            get(seller_payments),
        )
        .route(
            "/npe/log-marketplace/sellers/{seller}/key",
            post(register_key),
        )
        .route(
            "/npe/log-marketplace/sellers/{seller}/key/approve",
            post(approve_key),
        )
        .layer(DefaultBodyLimit::max(MAX_REST_BODY_BYTES))
}

/// The HTTP status of an error code.
pub fn status_of(e: &ApiError) -> StatusCode {
    match e {
        ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApiError::BadUserInput(_) => StatusCode::BAD_REQUEST,
        ApiError::NotFound(_) | ApiError::TenantNotFound(_) | ApiError::FeatureNotAvailable(_) => {
            StatusCode::NOT_FOUND
        }
        ApiError::MarginGuardrailExceeded(_) => StatusCode::PAYMENT_REQUIRED,
        ApiError::ErrorBudgetExhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::Conflict(_)
        | ApiError::Busy(_)
        | ApiError::IdempotencyConflict
        | ApiError::BalanceOutOfBounds(_) => StatusCode::CONFLICT,
        ApiError::Throttled | ApiError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"error": {"code", "message"}}` with the status (and `Retry-After` when throttled).
pub fn error_response(e: ApiError) -> Response {
    let body = if e.is_retryable() {
        json!({"error": {"code": e.code(), "message": e.message(), "retryable": true}})
    } else {
        json!({"error": {"code": e.code(), "message": e.message()}})
    };
    let body = Json(body);
    match e.retry_after_secs() {
        Some(secs) => (
            status_of(&e),
            [(header::RETRY_AFTER, secs.to_string())],
            body,
        )
            .into_response(),
        None => (status_of(&e), body).into_response(),
    }
}

pub(crate) type Reply = Result<Response, Response>;

fn ok(v: Value) -> Reply {
    Ok((StatusCode::OK, Json(v)).into_response())
}

/// Authenticates and counts the request against the marketplace limit.
async fn caller(s: &AppState, headers: &HeaderMap) -> Result<Principal, Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let p = s.keys.authenticate(auth).await.map_err(error_response)?;
    s.market.admit(&p).await.map_err(error_response)?;
    Ok(p)
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| error_response(ApiError::BadUserInput(format!("invalid JSON body: {e}"))))
}

/// The client's `Idempotency-Key`: absent, or 1..=200 printable ASCII characters (anything
/// else is refused, never ignored: an ignored key would let a retry run twice).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Response> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        error_response(ApiError::BadUserInput(
            "Idempotency-Key must be printable ASCII".into(),
        ))
    })?;
    check_client_key(key).map_err(error_response)?;
    Ok(Some(key.to_owned()))
}

fn metadata(p: &Principal, key: Option<&str>) -> Result<CommandMetadata, ApiError> {
    let meta = CommandMetadata::new(&p.name, &p.tenant, Utc::now())
        .map_err(|e| ApiError::BadUserInput(e.to_string()))?;
    match key {
        Some(k) => meta
            .with_idempotency_key(k)
            .map_err(|e| ApiError::BadUserInput(e.to_string())),
        None => Ok(meta),
    }
}

/// How a REST mutation answers and where its idempotency keys live.
pub(crate) struct Call<'a> {
    /// The operation (metrics label, and part of a derived key).
    pub op: &'a str,
    /// The status of a success.
    pub status: StatusCode,
    /// Keys are unique within this scope for the caller (e.g. the target tenant), besides the
    /// caller's own principal.
    pub scope: &'a str,
}

/// Runs a mutation once per `Idempotency-Key` and renders its outcome. A request without the
/// header gets a key derived from the operation and its whole body, so an identical retry
/// (a pipeline re-running its `curl`) returns the first outcome instead of acting twice.
async fn mutation<T, F, Fut>(
    op: &str,
    s: &AppState,
    p: &Principal,
    headers: &HeaderMap,
    request: Value,
    run: F,
    render: impl FnOnce(&T) -> Value,
) -> Reply
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(CommandMetadata) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let call = Call {
        op,
        status: StatusCode::OK,
        scope: "market",
    };
    mutation_with_status(call, s, p, headers, request, run, render).await
}

/// [`mutation`] answering as `call` says.
pub(crate) async fn mutation_with_status<T, F, Fut>(
    call: Call<'_>,
    s: &AppState,
    p: &Principal,
    headers: &HeaderMap,
    request: Value,
    run: F,
    render: impl FnOnce(&T) -> Value,
) -> Reply
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(CommandMetadata) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let client_key = idempotency_key(headers)?;
    let stored_key = match &client_key {
        Some(k) => format!("rest:{}:{k}", call.scope),
        None => format!(
            "rest-derived:{}:{}",
            call.scope,
            sha256_hex(&format!("{}\n{request}", call.op))
        ),
    };
    let meta =
        metadata(p, Some(client_key.as_deref().unwrap_or(&stored_key))).map_err(error_response)?;
    let out = s
        .idempotency
        .once(p, &stored_key, &request, || run(meta))
        .await;
    let out = crate::graphql::schema::counted(s, call.op, out).map_err(error_response)?;
    Ok((call.status, Json(render(&out))).into_response())
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AnalyzeBody {
    source: String,
    log_content: String,
    #[serde(rename = "subPKPId")]
    sub_pkp_id: String,
}

async fn analyze(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Reply {
    let p = caller(&s, &headers).await?;
    let pp = &p;
    let b: AnalyzeBody = parse(&body)?;
    let request = json!({"rest.analyze": &b});
    let m = &s.market;
    mutation(
        "logmarket.analyze",
        &s,
        &p,
        &headers,
        request,
        |meta| async move {
            m.analyze(pp, &meta, &b.sub_pkp_id, &b.source, &b.log_content)
                .await
        },
        views::analysis_json,
    )
    .await
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BatchBody {
    #[serde(rename = "subPKPId")]
    sub_pkp_id: String,
    logs: Vec<BatchItem>,
}

async fn batch_analyze(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Reply {
    let p = caller(&s, &headers).await?;
    let pp = &p;
    let b: BatchBody = parse(&body)?;
    let request = json!({"rest.batch": &b});
    let m = &s.market;
    mutation(
        "logmarket.batch",
        &s,
        &p,
        &headers,
        request,
        |meta| async move { m.batch(pp, &meta, &b.sub_pkp_id, &b.logs).await },
        |out| {
            let records: Vec<_> = out.results.iter().collect();
            let mut v = views::summary(&records, agora_domain::money::Money::ZERO);
            if let Some(o) = v.as_object_mut() {
                o.insert("totalLogs".into(), json!(records.len()));
                o.insert(
                    "results".into(),
                    json!(records
                        .iter()
                        .map(|r| views::analysis_json(r))
                        .collect::<Vec<_>>()),
                );
            }
            v
        },
    )
    .await
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SimulateBody {
    #[serde(rename = "subPKPId")]
    sub_pkp_id: String,
    iterations: u32,
    #[serde(default)]
    auto_pay: bool,
}

async fn simulate(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Reply {
    let p = caller(&s, &headers).await?;
    let pp = &p;
    let b: SimulateBody = parse(&body)?;
    let request = json!({"rest.simulate": &b});
    let m = &s.market;
    let iterations = b.iterations;
    mutation(
        "logmarket.simulate",
        &s,
        &p,
        &headers,
        request,
        |meta| async move {
            m.simulate(pp, &meta, &b.sub_pkp_id, b.iterations, b.auto_pay)
                .await
        },
        |out| {
            let records: Vec<_> = out.results.iter().map(|(r, _)| r).collect();
            let paid = agora_domain::money::Money::checked_sum(
                out.results
                    .iter()
                    .filter_map(|(_, p)| p.as_ref().map(|p| p.amount)),
            )
            .unwrap_or(agora_domain::money::Money::ZERO);
            json!({
                "simulationComplete": true,
                "iterations": iterations,
                "results": out.results.iter().map(|(r, receipt)| {
                    let mut v = views::short_result(r);
                    if let (Some(o), Some(rc)) = (v.as_object_mut(), receipt) {
                        o.insert("paid".into(), json!(true));
                        o.insert("transactionId".into(), json!(rc.transaction_id));
                    }
                    v
                }).collect::<Vec<_>>(),
                "summary": views::summary(&records, paid),
            })
        },
    )
    .await
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PayBody {
    #[serde(rename = "subPKPId")]
    sub_pkp_id: String,
    /// Hex ed25519 signature over the canonical pay message.
    #[serde(default)]
    signature: Option<String>,
}

async fn pay(
    State(s): State<AppState>,
    Path(analysis_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let pp = &p;
    let b: PayBody = parse(&body)?;
    let request = json!({"rest.pay": {"analysisId": &analysis_id, "body": &b}});
    let m = &s.market;
    mutation(
        "logmarket.pay",
        &s,
        &p,
        &headers,
        request,
        |meta| async move {
            m.pay(
                pp,
                &meta,
                &analysis_id,
                &b.sub_pkp_id,
                b.signature.as_deref(),
            )
            .await
        },
        views::receipt_json,
    )
    .await
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyBody {
    public_key: String,
}

async fn register_key(
    State(s): State<AppState>,
    Path(seller): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let pp = &p;
    let b: KeyBody = parse(&body)?;
    let request = json!({"rest.key": {"seller": &seller, "body": &b}});
    let m = &s.market;
    mutation(
        "logmarket.key",
        &s,
        &p,
        &headers,
        request,
        |meta| async move { m.register_key(pp, &meta, &seller, &b.public_key).await },
        |active| json!({"registered": *active, "pending": !*active}),
    )
    .await
}

async fn approve_key(
    State(s): State<AppState>,
    Path(seller): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let pp = &p;
    let b: KeyBody = parse(&body)?;
    let request = json!({"rest.key_approval": {"seller": &seller, "body": &b}});
    let m = &s.market;
    mutation(
        "logmarket.key_approval",
        &s,
        &p,
        &headers,
        request,
        |meta| async move { m.approve_key(pp, &meta, &seller, &b.public_key).await },
        |_| json!({"registered": true, "pending": false}),
    )
    .await
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FeedbackBody {
    insight_index: u32,
    /// `confirmed` or `false_positive`.
    verdict: Verdict,
}

async fn feedback(
    State(s): State<AppState>,
    Path(analysis_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let pp = &p;
    let b: FeedbackBody = parse(&body)?;
    let request = json!({"rest.feedback": {"analysisId": &analysis_id, "body": &b}});
    let m = &s.market;
    mutation(
        "logmarket.feedback",
        &s,
        &p,
        &headers,
        request,
        |meta| async move {
            m.feedback(pp, &meta, &analysis_id, b.insight_index, b.verdict)
                .await
        },
        |agent| json!({"recorded": true, "agent": agent}),
    )
    .await
}

fn internal(e: impl std::fmt::Display) -> Response {
    error_response(ApiError::internal("log marketplace read model", e))
}

async fn dashboard(State(s): State<AppState>, headers: HeaderMap) -> Reply {
    let p = caller(&s, &headers).await?;
    let scope = s.market.scope(&p);
    let q = &s.market.queries;
    let totals = q.totals(&scope).await.map_err(internal)?;
    let top = q.top_earners(&scope, 5).await.map_err(internal)?;
    let agents = q.agents().await.map_err(internal)?;
    ok(views::dashboard_json(&totals, &top, &agents))
}

async fn pricing(State(s): State<AppState>, headers: HeaderMap) -> Reply {
    caller(&s, &headers).await?;
    ok(views::pricing_json(&s.market.settings.config.pricing))
}

async fn agents(State(s): State<AppState>, headers: HeaderMap) -> Reply {
    caller(&s, &headers).await?;
    let rows = s.market.queries.agents().await.map_err(internal)?;
    ok(agents_value(&s.market, &rows))
}

/// The seed's `/agents` response.
pub fn agents_value(m: &MarketApi, rows: &[agora_projections::logmarket::AgentRow]) -> Value {
    let disabled = &m.settings.config.disabled_agents;
    let list: Vec<Value> = rows
        .iter()
        .map(|a| views::agent_json(a, !disabled.contains(&a.agent)))
        .collect();
    json!({
        "agents": list,
        "totalAgents": rows.len(),
        "activeAgents": rows.len() - disabled.len(),
    })
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<i64>,
}

fn limit(q: &LimitQuery, default: i64) -> Result<i64, Response> {
    let n = q.limit.unwrap_or(default);
    if (1..=agora_projections::logmarket::MAX_LIST).contains(&n) {
        Ok(n)
    } else {
        Err(error_response(ApiError::BadUserInput(format!(
            "limit must be 1..={}",
            agora_projections::logmarket::MAX_LIST
        ))))
    }
}

async fn top_earners(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LimitQuery>,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let scope = s.market.scope(&p);
    let n = limit(&q, 10)?;
    let rows = s
        .market
        .queries
        .top_earners(&scope, n)
        .await
        .map_err(internal)?;
    let totals = s.market.queries.totals(&scope).await.map_err(internal)?;
    ok(views::top_earners_json(&rows, &totals))
}

async fn leaderboard(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LimitQuery>,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let scope = s.market.scope(&p);
    let n = limit(&q, 10)?;
    let rows = s
        .market
        .queries
        .points_leaderboard(&scope, n)
        .await
        .map_err(internal)?;
    ok(views::leaderboard_json(&rows))
}

async fn quality_trends(State(s): State<AppState>, headers: HeaderMap) -> Reply {
    let p = caller(&s, &headers).await?;
    let scope = s.market.scope(&p);
    let totals = s.market.queries.totals(&scope).await.map_err(internal)?;
    let days = s
        .market
        .queries
        .daily_trends(&scope, 30)
        .await
        .map_err(internal)?;
    ok(views::quality_trends_json(&totals, &days))
}

async fn analysis(
    State(s): State<AppState>,
    Path(analysis_id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let row = s
        .market
        .queries
        .analysis(&analysis_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| error_response(ApiError::NotFound("analysis not found".into())))?;
    s.market
        .may_read_stored(&p, &row.seller)
        .map_err(error_response)?;
    let record = views::record_from_row(&row)
        .ok_or_else(|| internal("stored analysis document does not decode"))?;
    ok(views::analysis_json(&record))
}

async fn seller(
    State(s): State<AppState>,
    Path(seller): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let id = s
        .market
        .may_read_seller(&p, &seller)
        .map_err(error_response)?;
    let q = &s.market.queries;
    let row = q
        .seller(id.as_str())
        .await
        .map_err(internal)?
        .ok_or_else(|| error_response(ApiError::NotFound("seller not found".into())))?;
    let achievements = q.achievements(id.as_str()).await.map_err(internal)?;
    ok(views::seller_json(&row, &achievements))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    /// A `globalPosition` from the previous page: list older analyses.
    before: Option<i64>,
}

async fn seller_list(
    s: &AppState,
    headers: &HeaderMap,
    seller: &str,
    q: &ListQuery,
    paid: bool,
) -> Reply {
    let p = caller(s, headers).await?;
    let id = s
        .market
        .may_read_seller(&p, seller)
        .map_err(error_response)?;
    let n = limit(&LimitQuery { limit: q.limit }, 20)?;
    let rows = s
        .market
        .queries
        .analyses_for_seller(id.as_str(), paid, q.before, n)
        .await
        .map_err(internal)?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.analysis_id,
                "source": r.stage,
                "timestamp": r.created_at,
                "quality": views::num(r.quality),
                "valueScore": r.value_score,
                "paymentAmount": r.payment.to_string(),
                "paid": r.paid,
                "transactionId": r.transaction_id,
                "paidAt": r.paid_at,
                "authorisation": r.authorisation,
                "insights": r.insights,
                "globalPosition": r.global_position,
            })
        })
        .collect();
    let next = rows.last().map(|r| r.global_position);
    ok(json!({"items": items, "nextBefore": next}))
}

async fn seller_analyses(
    State(s): State<AppState>,
    Path(seller): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Reply {
    seller_list(&s, &headers, &seller, &q, false).await
}

async fn seller_payments(
    State(s): State<AppState>,
    Path(seller): Path<String>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Reply {
    seller_list(&s, &headers, &seller, &q, true).await
}
