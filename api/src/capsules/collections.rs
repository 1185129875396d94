//! Collections and the trending list, shared by GraphQL ([`super::gql_collections`]) and REST
//! ([`super::rest_collections`]): the request's checks and the idempotent run.
//!
//! Any key creates a user collection it owns and edits it; platform admins create, edit and
//! feature curated ones, and feature any. Every key reads every collection.

use agora_commands::capsules::collections::{CollectionChange, CollectionReceipt};
use agora_commands::CommandMetadata;
use agora_domain::access::Role;
use agora_domain::capsules::community::trending::TrendingEntry;
use agora_projections::capsule_collections::CollectionRow;
use serde::Serialize;
use serde_json::json;

use super::{actor, outcome, Outcome};
use crate::app::AppState;
use crate::graphql::auth::Principal;
use crate::graphql::error::ApiError;

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CollectionOp {
    Create {
        curated: bool,
        title: String,
        description: String,
    },
    Change {
        id: String,
        change: CollectionChange,
    },
}

/// Ok for platform admins, who feature collections.
pub fn require_platform_admin(p: &Principal) -> Result<(), ApiError> {
    if p.role == Role::Admin && p.is_platform() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only platform admins feature collections".into(),
        ))
    }
}

/// Runs `op` once per `key` (the idempotency key as stored).
pub async fn run(
    s: &AppState,
    p: &Principal,
    key: &str,
    meta: CommandMetadata,
    op: CollectionOp,
) -> Result<Outcome<CollectionReceipt>, ApiError> {
    if let CollectionOp::Change {
        change: CollectionChange::Feature { .. },
        ..
    } = &op
    {
        require_platform_admin(p)?;
    }
    let fingerprint = json!({"capsuleCollection": &op});
    let service = &s.capsules.service;
    let meta = &meta;
    s.idempotency
        .once(p, key, &fingerprint, || async {
            outcome(async {
                match op {
                    CollectionOp::Create {
                        curated,
                        title,
                        description,
                    } => {
                        service
                            .create_collection(actor(p), curated, &title, &description, meta)
                            .await
                    }
                    CollectionOp::Change { id, change } => {
                        service.change_collection(&id, actor(p), change, meta).await
                    }
                }
            })
            .await
        })
        .await
}

pub fn receipt_json(r: &CollectionReceipt) -> serde_json::Value {
    json!({
        "id": r.id,
        "kind": r.kind,
        "title": r.title,
        "owner": r.owner,
        "capsules": r.capsules,
        "featured": r.featured,
    })
}

pub fn row_json(r: &CollectionRow) -> serde_json::Value {
    json!({
        "id": r.id,
        "kind": r.kind,
        "title": r.title,
        "description": r.description,
        "owner": r.owner,
        "featured": r.featured,
        "capsuleCount": r.capsule_count,
        "createdAt": r.created_at.to_rfc3339(),
        "updatedAt": r.updated_at.to_rfc3339(),
    })
}

pub fn trending_json(e: &TrendingEntry) -> serde_json::Value {
    json!({
        "name": e.capsule.as_str(),
        "score": e.score.to_string(),
        "installsInWindow": e.installs_in_window,
        "weightedInstalls": e.weighted_installs.to_string(),
        "ratingsInWindow": e.ratings_in_window,
        "bayesianRating": e.bayesian_rating.to_string(),
    })
}

/// Checks a page request: `first` 1..=100, `offset` 0..=100,000.
pub fn page(first: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    let first = first.unwrap_or(20);
    if !(1..=100).contains(&first) {
        return Err(ApiError::BadUserInput("first must be 1..=100".into()));
    }
    let offset = offset.unwrap_or(0);
    if !(0..=100_000).contains(&offset) {
        return Err(ApiError::BadUserInput("offset must be 0..=100000".into()));
    }
    Ok((first, offset))
}

/// A `kind` filter: `curated` or `user`.
pub fn kind_filter(kind: Option<String>) -> Result<Option<String>, ApiError> {
    match kind.as_deref().filter(|k| !k.is_empty()) {
        None => Ok(None),
        Some(k @ ("curated" | "user")) => Ok(Some(k.to_owned())),
        Some(other) => Err(ApiError::BadUserInput(format!(
            "kind must be curated or user, not {other:?}"
        ))),
    }
}
