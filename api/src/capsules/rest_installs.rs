//! The registry's install paths over REST:
//! - `POST /v1/marketplace/capsules/{name}/install`: JSON body [`InstallInput`] (may be empty:
//!   the highest published version for the caller, no dangerous permission approved); 201 with
//!   the installation (version, permissions, token budget, dependencies resolved, deprecation
//!   warning);
//! - `POST /v1/marketplace/capsules/{name}/upgrade`: the same body (no `tokenBudget`);
//! - `DELETE /v1/marketplace/capsules/{name}/install?for=&tenant=`: uninstall;
//! - `GET /v1/marketplace/installations?for=user|tenant&after=&first=`: the caller's (or its
//!   tenant's) live installations, with the breaking versions each was told of.
//!
//! Every write is idempotent under `Idempotency-Key` (without one, under a key derived from
//! the request, so an identical repeat is answered from the first).

#![allow(clippy::result_large_err)]

use agora_projections::capsule_installs::InstallRow;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::installs::{self, InstallInput, InstallOp};
use super::rest::{bad, caller, client_key, refusal_response, Reply};
use super::{actor_id, read_error};
use crate::app::AppState;
use crate::graphql::auth::sha256_hex as text_sha256;
use crate::logmarket::rest::error_response;

/// Default and largest page of the installations list.
pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/marketplace/capsules/{name}/install",
            post(install).delete(uninstall),
        )
        .route("/v1/marketplace/capsules/{name}/upgrade", post(upgrade))
        .route("/v1/marketplace/installations", get(list))
}

/// A JSON body, or the empty body read as `{}`.
fn input_of(body: &axum::body::Bytes) -> Result<InstallInput, axum::response::Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(InstallInput::default());
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("install body: {e}")))
}

async fn write(
    s: AppState,
    headers: HeaderMap,
    name: String,
    op: InstallOp,
    input: InstallInput,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let key = client_key(&headers)?;
    let stored_key = match &key {
        Some(k) => format!("rest:capsule-install:{k}"),
        None => format!(
            "rest-derived:capsule-install:{}",
            text_sha256(&json!([format!("{op:?}"), &name, &input]).to_string())
        ),
    };
    let meta = agora_commands::CommandMetadata::new(&p.name, &p.tenant, chrono::Utc::now())
        .and_then(|m| m.with_idempotency_key(key.as_deref().unwrap_or(&stored_key)))
        .map_err(|e| bad(e.to_string()))?;
    let result = installs::run(&s, &p, &stored_key, meta, op, &name, input).await;
    match crate::graphql::schema::counted(&s, "capsule_install", result).map_err(error_response)? {
        Ok(r) => {
            let status = if op == InstallOp::Uninstall {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((status, Json(installs::receipt_json(&r))).into_response())
        }
        Err(refusal) => Err(refusal_response(refusal)),
    }
}

async fn install(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Reply {
    let input = input_of(&body)?;
    write(s, headers, name, InstallOp::Install, input).await
}

async fn upgrade(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Reply {
    let input = input_of(&body)?;
    write(s, headers, name, InstallOp::Upgrade, input).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeParams {
    #[serde(rename = "for")]
    scope: Option<String>,
    tenant: Option<String>,
    first: Option<i64>,
    after: Option<String>,
}

async fn uninstall(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    params: Result<Query<ScopeParams>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let input = InstallInput {
        scope: params.scope,
        tenant: params.tenant,
        ..InstallInput::default()
    };
    write(s, headers, name, InstallOp::Uninstall, input).await
}

pub fn install_row_json(r: &InstallRow) -> Value {
    json!({
        "installationId": r.installation_id,
        "subject": format!("{}:{}", r.subject_kind, r.subject_id),
        "tenant": r.tenant,
        "name": r.capsule,
        "version": r.version,
        "permissions": r.permissions,
        "tokenBudget": r.token_budget_tokens,
        "dependencies": r.dependencies,
        "deprecationWarning": r.deprecation_warning,
        "breakingVersionNotices": r.notices,
        "installedBy": r.installed_by,
        "installedAt": r.installed_at.to_rfc3339(),
        "updatedAt": r.updated_at.to_rfc3339(),
    })
}

async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ScopeParams>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let first = params.first.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(bad(format!("first must be 1..={MAX_PAGE}")));
    }
    let scope = InstallInput {
        scope: params.scope,
        tenant: params.tenant,
        ..InstallInput::default()
    };
    let subject = installs::subject_for(&p, &scope).map_err(error_response)?;
    let (kind, id) = match &subject {
        agora_domain::capsules::install::Subject::Tenant(t) => ("tenant", t.clone()),
        agora_domain::capsules::install::Subject::User(_) => ("user", actor_id(&p)),
    };
    let rows = s
        .capsules
        .installs
        .of_subject(kind, &id, params.after.as_deref(), first)
        .await
        .map_err(|e| error_response(read_error(e)))?;
    let next = (rows.len() as i64 == first)
        .then(|| rows.last().map(|r| r.capsule.clone()))
        .flatten();
    let items: Vec<Value> = rows.iter().map(install_row_json).collect();
    Ok(Json(json!({"installations": items, "next": next})).into_response())
}
