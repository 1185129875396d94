//! The seed's REST paths for the capsule registry:
//! - `POST /v1/marketplace/capsules/submit`: multipart, fields `manifest` (YAML), `bundle`
//!   (`.tar.gz`) and optional `signature` (a DSSE envelope; `envelope` is accepted too), as the
//!   seed's `curl -F manifest=@… -F bundle=@…` sends them; answers 201 with the name, version,
//!   status and risk score. Idempotent under `Idempotency-Key` (or, without it, a key derived
//!   from the digests of what was sent).
//! - `GET /v1/marketplace/capsules?q=&category=&first=&after=`: published capsules, `q` a plain
//!   case-insensitive substring (typo-tolerant search is a later slice);
//! - `GET /v1/marketplace/capsules/{name}`: the capsule with its versions;
//! - `GET /v1/marketplace/capsules/{name}/{version}/sbom`: the version's CycloneDX 1.6 JSON;
//! - `GET /schemas/capsule-manifest/v1.json`: the manifest's JSON Schema (public).
//!
//! Errors are `{"error": {"code", "message", "reason"?, "problems"?}}` with the matching status.

#![allow(clippy::result_large_err)]

use agora_commands::capsules::{Submission, SubmitReceipt};
use agora_domain::capsules::manifest::SCHEMA_JSON;
use agora_domain::capsules::sha256_hex;
use agora_projections::capsule_search::SearchRequest;
use agora_projections::capsules::{CapsuleRow, VersionRow};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{actor_id, gql::AUTHORS, outcome, read_error, Outcome, Refusal};
use crate::app::AppState;
use crate::graphql::auth::{sha256_hex as text_sha256, Principal};
use crate::graphql::error::ApiError;
use crate::graphql::idempotency::check_client_key;
use crate::logmarket::rest::{error_response, status_of};

/// Longest signature envelope field, bytes.
pub const MAX_ENVELOPE_BYTES: usize = agora_domain::capsules::signature::MAX_ENVELOPE_BYTES;

pub fn routes(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/marketplace/capsules/submit",
            post(submit).layer(DefaultBodyLimit::max(max_body_bytes)),
        )
        .route("/v1/marketplace/capsules", get(list))
        .route("/v1/marketplace/capsules/{name}", get(detail))
        .route("/v1/marketplace/capsules/{name}/{version}/sbom", get(sbom))
        .route("/schemas/capsule-manifest/v1.json", get(schema))
}

pub(crate) type Reply = Result<Response, Response>;

/// A refusal as the REST error body, with its status.
pub fn refusal_response(r: Refusal) -> Response {
    let status = status_of(&ApiError::from_stored(&r.code, String::new()));
    let mut error = json!({"code": r.code, "message": r.message, "reason": r.reason});
    if let Some(p) = &r.problems {
        error["problems"] = json!(p);
    }
    (status, Json(json!({ "error": error }))).into_response()
}

pub(crate) fn bad(message: impl Into<String>) -> Response {
    error_response(ApiError::BadUserInput(message.into()))
}

/// Authenticates and counts the request against the key's general limit.
pub(crate) async fn caller(s: &AppState, headers: &HeaderMap) -> Result<Principal, Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let p = s.keys.authenticate(auth).await.map_err(error_response)?;
    s.rate_limiter
        .check(&p.key_id)
        .await
        .map_err(|e| error_response(e.into_api("too many requests for this key".into())))?;
    Ok(p)
}

pub(super) fn client_key(headers: &HeaderMap) -> Result<Option<String>, Response> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| bad("Idempotency-Key must be printable ASCII"))?;
    check_client_key(key).map_err(error_response)?;
    Ok(Some(key.to_owned()))
}

/// The three parts of a submission, each under its limit.
async fn read_parts(mut form: Multipart, max_bundle: usize) -> Result<Submission, Response> {
    let (mut manifest, mut bundle, mut envelope) = (None, None, None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let limit = match name.as_str() {
            "manifest" => super::MAX_MANIFEST_BYTES,
            "bundle" => max_bundle,
            "signature" | "envelope" => MAX_ENVELOPE_BYTES,
            other => {
                return Err(bad(format!(
                "unknown multipart field {other:?}: send manifest, bundle and optionally signature"
            )))
            }
        };
        let bytes = field.bytes().await.map_err(multipart_error)?;
        if bytes.len() > limit {
            return Err(error_response(ApiError::PayloadTooLarge(format!(
                "the {name} field is {} bytes; the limit is {limit}",
                bytes.len()
            ))));
        }
        let slot = match name.as_str() {
            "manifest" => &mut manifest,
            "bundle" => &mut bundle,
            _ => &mut envelope,
        };
        if slot.replace(bytes.to_vec()).is_some() {
            return Err(bad(format!("the {name} field appears twice")));
        }
    }
    match (manifest, bundle) {
        (Some(manifest), Some(bundle)) => Ok(Submission {
            manifest,
            bundle,
            envelope,
        }),
        _ => Err(bad(
            "a submission is multipart/form-data with the fields manifest and bundle",
        )),
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return error_response(ApiError::PayloadTooLarge(
            "the submission is over the configured bundle limit".into(),
        ));
    }
    bad(format!("invalid multipart body: {}", e.body_text()))
}

fn receipt_json(r: &SubmitReceipt) -> Value {
    json!({
        "name": r.name,
        "version": r.version,
        "status": r.status,
        "reviewStatus": r.status,
        "riskScore": r.risk_score.to_string(),
        "autoApproved": r.auto_approved,
        "manifestSha256": r.manifest_sha256,
        "bundleSha256": r.bundle_sha256,
        "sbomSha256": r.sbom_sha256,
        "signerKeyid": r.signer_keyid,
    })
}

async fn submit(State(s): State<AppState>, request: Request) -> Reply {
    let headers = request.headers().clone();
    let p = caller(&s, &headers).await?;
    p.require(AUTHORS).map_err(error_response)?;
    let key = client_key(&headers)?;
    let form = Multipart::from_request(request, &s).await.map_err(|e| {
        bad(format!(
            "a submission is multipart/form-data: {}",
            e.body_text()
        ))
    })?;
    let max_bundle = usize::try_from(
        s.capsules
            .service
            .settings()
            .bundle_limits
            .max_compressed_bytes,
    )
    .unwrap_or(usize::MAX);
    let submission = read_parts(form, max_bundle).await?;
    let request = json!({"rest.submitCapsule": {
        "manifest_sha256": sha256_hex(&submission.manifest),
        "bundle_sha256": sha256_hex(&submission.bundle),
        "envelope_sha256": submission.envelope.as_deref().map(sha256_hex),
    }});
    let stored_key = match &key {
        Some(k) => format!("rest:capsules:{k}"),
        None => format!(
            "rest-derived:capsules:{}",
            text_sha256(&request.to_string())
        ),
    };
    let meta = agora_commands::CommandMetadata::new(&p.name, &p.tenant, chrono::Utc::now())
        .and_then(|m| m.with_idempotency_key(key.as_deref().unwrap_or(&stored_key)))
        .map_err(|e| bad(e.to_string()))?;
    let author = actor_id(&p);
    let service = &s.capsules.service;
    let result: Result<Outcome<SubmitReceipt>, ApiError> = s
        .idempotency
        .once(&p, &stored_key, &request, || async {
            outcome(service.submit(&author, submission, &meta)).await
        })
        .await;
    match crate::graphql::schema::counted(&s, "capsule", result).map_err(error_response)? {
        Ok(r) => Ok((StatusCode::CREATED, Json(receipt_json(&r))).into_response()),
        Err(refusal) => Err(refusal_response(refusal)),
    }
}

fn capsule_json(r: &CapsuleRow) -> Value {
    json!({
        "name": r.name,
        "owner": r.owner,
        "description": r.description,
        "category": r.category,
        "latestVersion": r.latest_version,
        "publishedVersion": r.published_version,
        "createdAt": r.created_at,
        "updatedAt": r.updated_at,
    })
}

fn version_json(v: &VersionRow) -> Value {
    json!({
        "version": v.version,
        "status": v.status,
        "riskScore": v.risk_score,
        "riskFactors": v.risk_factors,
        "reviewReasons": v.review_reasons,
        "permissions": v.permissions,
        "breakingChanges": v.breaking_changes,
        "manifestSha256": v.manifest_sha256,
        "bundleSha256": v.bundle_sha256,
        "bundleSizeBytes": v.bundle_size_bytes,
        "sbomSha256": v.sbom_sha256,
        "signerKeyid": v.signer_keyid,
        "submittedBy": v.submitted_by,
        "submittedAt": v.submitted_at,
        "dependencyDepth": v.dependency_depth,
        "reviewedBy": v.reviewed_by,
        "reviewDecision": v.review_decision,
        "reviewNotes": v.review_notes,
        "reviewedAt": v.reviewed_at,
        "publishedAt": v.published_at,
        "platformKeyid": v.platform_keyid,
        "deprecated": v.deprecated,
        "yanked": v.yanked,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchParams {
    q: Option<String>,
    category: Option<String>,
    permission: Option<String>,
    min_rating: Option<String>,
    sort: Option<String>,
    first: Option<i64>,
    after: Option<String>,
}

/// The catalogue search (see [`super::search`]): `{"capsules": [...], "next", "sort"}`.
async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    caller(&s, &headers).await?;
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let min_rating = match params.min_rating.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(
            r.trim()
                .parse::<rust_decimal::Decimal>()
                .map_err(|_| bad(format!("minRating `{r}` is not a decimal number")))?,
        ),
    };
    let request = SearchRequest {
        q: params.q,
        category: params.category,
        permission: params.permission,
        min_rating,
        sort: params.sort,
        first: params.first,
        after: params.after,
    };
    let page = super::search::run(&s, &request)
        .await
        .map_err(error_response)?;
    let capsules: Vec<Value> = page.hits.iter().map(super::search::hit_json).collect();
    let sort = format!("{:?}", page.sort).to_lowercase();
    Ok(Json(json!({"capsules": capsules, "next": page.next, "sort": sort})).into_response())
}

async fn detail(State(s): State<AppState>, headers: HeaderMap, Path(name): Path<String>) -> Reply {
    caller(&s, &headers).await?;
    let q = &s.capsules.queries;
    let row = q
        .capsule(&name)
        .await
        .map_err(|e| error_response(read_error(e)))?
        .ok_or_else(|| error_response(ApiError::NotFound(format!("capsule {name} not found"))))?;
    let versions = q
        .versions(&name)
        .await
        .map_err(|e| error_response(read_error(e)))?;
    let mut body = capsule_json(&row);
    body["versions"] = versions.iter().map(version_json).collect();
    Ok(Json(body).into_response())
}

async fn sbom(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
) -> Reply {
    caller(&s, &headers).await?;
    let row = s
        .capsules
        .queries
        .version(&name, &version)
        .await
        .map_err(|e| error_response(read_error(e)))?
        .ok_or_else(|| {
            error_response(ApiError::NotFound(format!(
                "capsule version {name}@{version} not found"
            )))
        })?;
    let bytes = s
        .capsules
        .service
        .blobs()
        .get(&row.sbom_sha256)
        .await
        .map_err(|e| error_response(ApiError::internal("capsule sbom blob", e)))?;
    Ok((
        [(header::CONTENT_TYPE, "application/vnd.cyclonedx+json")],
        bytes,
    )
        .into_response())
}

async fn schema() -> Response {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        SCHEMA_JSON,
    )
        .into_response()
}
