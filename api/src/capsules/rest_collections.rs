//! Collections and the trending list over REST:
//! - `POST /v1/marketplace/collections` `{"title", "description"?, "curated"?}`: 201;
//! - `GET /v1/marketplace/collections?featured=&mine=&kind=&first=&offset=`;
//! - `GET /v1/marketplace/collections/{id}`: the collection and its capsules in order;
//! - `PATCH /v1/marketplace/collections/{id}` `{"title"}`;
//! - `POST /v1/marketplace/collections/{id}/capsules` `{"name"}`;
//!   `DELETE /v1/marketplace/collections/{id}/capsules/{name}`;
//! - `POST /v1/marketplace/collections/{id}/featured` `{"featured": bool}` (platform admins);
//! - `GET /v1/marketplace/trending`: capsules installed and liked in the last 7 days, with every
//!   term of their score.
//!
//! Writes are idempotent under `Idempotency-Key` (or a key derived from the request).

#![allow(clippy::result_large_err)]

use agora_commands::capsules::collections::CollectionChange;
use agora_projections::capsule_collections::CollectionFilter;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::actor_id;
use super::collections::{self, CollectionOp};
use super::read_error;
use super::rest::{bad, caller, client_key, refusal_response, Reply};
use crate::app::AppState;
use crate::graphql::auth::{sha256_hex as text_sha256, Principal};
use crate::logmarket::rest::error_response;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/marketplace/collections", post(create).get(list))
        .route(
            "/v1/marketplace/collections/{id}",
            get(detail).patch(rename),
        )
        .route("/v1/marketplace/collections/{id}/capsules", post(add))
        .route(
            "/v1/marketplace/collections/{id}/capsules/{name}",
            delete(remove),
        )
        .route("/v1/marketplace/collections/{id}/featured", post(feature))
        .route("/v1/marketplace/trending", get(trending))
}

fn body_of<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, axum::response::Response> {
    serde_json::from_slice(body).map_err(|e| bad(format!("collection body: {e}")))
}

async fn run(s: AppState, headers: HeaderMap, p: Principal, op: CollectionOp) -> Reply {
    let key = client_key(&headers)?;
    let stored_key = match &key {
        Some(k) => format!("rest:capsule-collection:{k}"),
        None => format!(
            "rest-derived:capsule-collection:{}",
            text_sha256(&json!(&op).to_string())
        ),
    };
    let meta = agora_commands::CommandMetadata::new(&p.name, &p.tenant, chrono::Utc::now())
        .and_then(|m| m.with_idempotency_key(key.as_deref().unwrap_or(&stored_key)))
        .map_err(|e| bad(e.to_string()))?;
    let result = collections::run(&s, &p, &stored_key, meta, op).await;
    match crate::graphql::schema::counted(&s, "capsule_collection", result)
        .map_err(error_response)?
    {
        Ok(r) => Ok((StatusCode::CREATED, Json(collections::receipt_json(&r))).into_response()),
        Err(refusal) => Err(refusal_response(refusal)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    curated: bool,
}

async fn create(State(s): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Reply {
    let p = caller(&s, &headers).await?;
    let b: CreateBody = body_of(&body)?;
    let op = CollectionOp::Create {
        curated: b.curated,
        title: b.title,
        description: b.description,
    };
    run(s, headers, p, op).await
}

async fn change(s: AppState, headers: HeaderMap, id: String, change: CollectionChange) -> Reply {
    let p = caller(&s, &headers).await?;
    run(s, headers, p, CollectionOp::Change { id, change }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TitleBody {
    title: String,
}

async fn rename(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Reply {
    let b: TitleBody = body_of(&body)?;
    change(s, headers, id, CollectionChange::Rename { title: b.title }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

async fn add(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Reply {
    let b: NameBody = body_of(&body)?;
    change(s, headers, id, CollectionChange::Add { capsule: b.name }).await
}

async fn remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> Reply {
    change(s, headers, id, CollectionChange::Remove { capsule: name }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureBody {
    featured: bool,
}

async fn feature(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Reply {
    let b: FeatureBody = body_of(&body)?;
    let featured = b.featured;
    change(s, headers, id, CollectionChange::Feature { featured }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    featured: Option<bool>,
    mine: Option<bool>,
    kind: Option<String>,
    first: Option<i64>,
    offset: Option<i64>,
}

async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let p = caller(&s, &headers).await?;
    let Query(params) = params.map_err(|e| bad(e.body_text()))?;
    let (first, offset) = collections::page(params.first, params.offset).map_err(error_response)?;
    let filter = CollectionFilter {
        featured_only: params.featured.unwrap_or(false),
        owner: params.mine.unwrap_or(false).then(|| actor_id(&p)),
        kind: collections::kind_filter(params.kind).map_err(error_response)?,
    };
    let rows = s
        .capsules
        .collections
        .list(&filter, offset, first)
        .await
        .map_err(|e| error_response(read_error(e)))?;
    let items: Vec<Value> = rows.iter().map(collections::row_json).collect();
    Ok(Json(json!({"collections": items})).into_response())
}

async fn detail(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    caller(&s, &headers).await?;
    let found = s
        .capsules
        .collections
        .get(&id)
        .await
        .map_err(|e| error_response(read_error(e)))?;
    let Some((row, capsules)) = found else {
        return Err(error_response(crate::graphql::error::ApiError::NotFound(
            format!("collection {id}"),
        )));
    };
    let mut body = collections::row_json(&row);
    body["capsules"] = json!(capsules);
    Ok(Json(body).into_response())
}

async fn trending(State(s): State<AppState>, headers: HeaderMap) -> Reply {
    caller(&s, &headers).await?;
    let entries = s
        .capsules
        .trending
        .trending(chrono::Utc::now())
        .await
        .map_err(|e| error_response(read_error(e)))?;
    let items: Vec<Value> = entries.iter().map(collections::trending_json).collect();
    Ok(Json(json!({"windowDays": agora_domain::capsules::community::trending::TRENDING_WINDOW_DAYS, "trending": items})).into_response())
}
