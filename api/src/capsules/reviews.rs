//! Ratings and reviews, shared by GraphQL ([`super::gql_reviews`]) and REST
//! ([`super::rest_reviews`]): the request's checks and the idempotent run.
//!
//! A review is the calling principal's (`tenant/principal`), of a capsule it installed; others
//! vote on it; platform reviewers hide or restore it with a note.

use agora_commands::capsules::capsule_name;
use agora_commands::capsules::reviews::ReviewReceipt;
use agora_commands::CommandMetadata;
use agora_domain::access::Role;
use agora_projections::capsule_reviews::ReviewRow;
use serde::Serialize;
use serde_json::json;

use super::{actor, actor_id, outcome, Outcome};
use crate::app::AppState;
use crate::graphql::auth::Principal;
use crate::graphql::error::ApiError;

/// Longest review author id accepted in a request.
pub const MAX_AUTHOR_LEN: usize = 200;

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReviewOp {
    /// Write the caller's review, or edit it.
    Write {
        stars: u8,
        text: String,
    },
    Vote {
        author: String,
        helpful: bool,
    },
    /// Platform reviewers only.
    Moderate {
        author: String,
        hide: bool,
        note: String,
    },
}

fn check_author(author: &str) -> Result<(), ApiError> {
    if author.is_empty() || author.len() > MAX_AUTHOR_LEN {
        return Err(ApiError::BadUserInput(format!(
            "author must be 1..={MAX_AUTHOR_LEN} characters"
        )));
    }
    Ok(())
}

/// Ok for platform reviewers, who moderate reviews.
pub fn require_moderator(p: &Principal) -> Result<(), ApiError> {
    if p.role == Role::Reviewer && p.is_platform() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only platform reviewers moderate reviews".into(),
        ))
    }
}

/// Runs `op` on `name`'s reviews once per `key` (the idempotency key as stored).
pub async fn run(
    s: &AppState,
    p: &Principal,
    key: &str,
    meta: CommandMetadata,
    name: &str,
    op: ReviewOp,
) -> Result<Outcome<ReviewReceipt>, ApiError> {
    let capsule = capsule_name(name).map_err(|e| ApiError::BadUserInput(e.to_string()))?;
    match &op {
        ReviewOp::Write { stars, .. } if !(1..=5).contains(stars) => {
            return Err(ApiError::BadUserInput(format!(
                "a rating has 1 to 5 stars, not {stars}"
            )))
        }
        ReviewOp::Vote { author, .. } => check_author(author)?,
        ReviewOp::Moderate { author, .. } => {
            require_moderator(p)?;
            check_author(author)?;
        }
        ReviewOp::Write { .. } => {}
    }
    let fingerprint = json!({"capsuleReview": {"name": name, "op": &op}});
    let me = actor_id(p);
    let service = &s.capsules.service;
    let meta = &meta;
    s.idempotency
        .once(p, key, &fingerprint, || async {
            outcome(async {
                match op {
                    ReviewOp::Write { stars, text } => {
                        service
                            .write_review(&capsule, &me, stars, &text, meta)
                            .await
                    }
                    ReviewOp::Vote { author, helpful } => {
                        service
                            .vote_review(&capsule, &author, &me, helpful, meta)
                            .await
                    }
                    ReviewOp::Moderate { author, hide, note } => {
                        service
                            .moderate_review(&capsule, &author, actor(p), hide, &note, meta)
                            .await
                    }
                }
            })
            .await
        })
        .await
}

/// A receipt's JSON.
pub fn receipt_json(r: &ReviewReceipt) -> serde_json::Value {
    json!({
        "reviewId": r.review_id,
        "name": r.name,
        "author": r.author,
        "rating": r.stars,
        "hidden": r.hidden,
        "helpful": r.helpful,
        "notHelpful": r.not_helpful,
    })
}

/// A listed review's JSON.
pub fn review_json(r: &ReviewRow) -> serde_json::Value {
    json!({
        "reviewId": r.review_id,
        "author": r.author,
        "rating": r.stars,
        "review": r.text,
        "hidden": r.hidden,
        "helpful": r.helpful,
        "notHelpful": r.not_helpful,
        "writtenAt": r.written_at.to_rfc3339(),
        "updatedAt": r.updated_at.to_rfc3339(),
    })
}

/// Whether `p` sees hidden reviews (platform reviewers, auditors, admins).
pub fn sees_hidden(p: &Principal) -> bool {
    p.is_platform() && matches!(p.role, Role::Reviewer | Role::Auditor | Role::Admin)
}
