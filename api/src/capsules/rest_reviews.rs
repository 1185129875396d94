//! The registry's review paths over REST:
//! - `POST /v1/marketplace/capsules/{name}/reviews` `{"rating": 1-5, "review": "…"}`: the
//!   caller's review (written, or edited when it exists); 201;
//! - `GET /v1/marketplace/capsules/{name}/reviews?first=&offset=`: the rating (average of the
//!   visible reviews, count) and the reviews, most helpful first;
//! - `POST /v1/marketplace/capsules/{name}/reviews/{author}/votes` `{"helpful": bool}`;
//! - `POST /v1/marketplace/capsules/{name}/reviews/{author}/moderation`
//!   `{"action": "hide"|"restore", "note": "…"}` (platform reviewers).
//!
//! `{author}` is the review author's id, `tenant/principal`, percent-encoded (`acme%2Fbob`).
//! Writes are idempotent under `Idempotency-Key` (or a key derived from the request).

#![allow(clippy::result_large_err)]

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::read_error;
use super::rest::{bad, caller, client_key, refusal_response, Reply};
use super::reviews::{self, ReviewOp};
use crate::app::AppState;
use crate::graphql::auth::{sha256_hex as text_sha256, Principal};
use crate::logmarket::rest::error_response;

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/marketplace/capsules/{name}/reviews",
            post(write).get(list),
        )
        .route(
            "/v1/marketplace/capsules/{name}/reviews/{author}/votes",
            post(vote),
        )
        .route(
            "/v1/marketplace/capsules/{name}/reviews/{author}/moderation",
            post(moderate),
        )
}

fn body_of<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, axum::response::Response> {
    serde_json::from_slice(body).map_err(|e| bad(format!("review body: {e}")))
}

async fn run(s: AppState, headers: HeaderMap, p: Principal, name: String, op: ReviewOp) -> Reply {
    let key = client_key(&headers)?;
    let stored_key = match &key {
        Some(k) => format!("rest:capsule-review:{k}"),
        None => format!(
            "rest-derived:capsule-review:{}",
            text_sha256(&json!([&name, &op]).to_string())
        ),
    };
    let meta = agora_commands::CommandMetadata::new(&p.name, &p.tenant, chrono::Utc::now())
        .and_then(|m| m.with_idempotency_key(key.as_deref().unwrap_or(&stored_key)))
        .map_err(|e| bad(e.to_string()))?;
    let result = reviews::run(&s, &p, &stored_key, meta, &name, op).await;
    match crate::graphql::schema::counted(&s, "capsule_review", result).map_err(error_response)? {
        Ok(r) => Ok((StatusCode::CREATED, Json(reviews::receipt_json(&r))).into_response()),
        Err(refusal) => Err(refusal_response(refusal)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    rating: u8,
    #[serde(default)]
    review: String,
}

async fn write(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let b: WriteBody = body_of(&body)?;
    let op = ReviewOp::Write {
        stars: b.rating,
        text: b.review,
    };
    run(s, headers, p, name, op).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteBody {
    helpful: bool,
}

async fn vote(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, author)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let b: VoteBody = body_of(&body)?;
    let op = ReviewOp::Vote {
        author,
        helpful: b.helpful,
    };
    run(s, headers, p, name, op).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModerationBody {
    action: String,
    note: String,
}

async fn moderate(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((name, author)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Reply {
    let p = caller(&s, &headers).await?;
    reviews::require_moderator(&p).map_err(error_response)?;
    let b: ModerationBody = body_of(&body)?;
    let hide = match b.action.as_str() {
        "hide" => true,
        "restore" => false,
        other => {
            return Err(bad(format!(
                "action must be hide or restore, not {other:?}"
            )))
        }
    };
    let op = ReviewOp::Moderate {
        author,
        hide,
        note: b.note,
    };
    run(s, headers, p, name, op).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    first: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let first = params.first.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&first) {
        return Err(bad(format!("first must be 1..={MAX_PAGE}")));
    }
    let offset = params.offset.unwrap_or(0);
    if !(0..=100_000).contains(&offset) {
        return Err(bad("offset must be 0..=100000"));
    }
    let q = &s.capsules.reviews;
    let rating = q
        .rating(&name)
        .await
        .map_err(|e| error_response(read_error(e)))?;
    let rows = q
        .of_capsule(&name, reviews::sees_hidden(&p), offset, first)
        .await
        .map_err(|e| error_response(read_error(e)))?;
    let items: Vec<Value> = rows.iter().map(reviews::review_json).collect();
    Ok(Json(json!({
        "name": name,
        "rating": {"average": rating.average.to_string(), "count": rating.ratings},
        "reviews": items,
    }))
    .into_response())
}
