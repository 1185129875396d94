//! Ratings and reviews over GraphQL: `writeCapsuleReview`, `voteCapsuleReview`,
//! `moderateCapsuleReview` (idempotent under the client's key) and the `capsuleReviews`
//! query. The rules are [`super::reviews`]'.

use agora_commands::capsules::reviews::ReviewReceipt;
use agora_domain::access::Role;
use agora_projections::capsule_reviews::ReviewRow;
use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::gql::refusal_error;
use super::read_error;
use super::reviews::{self, ReviewOp};
use crate::graphql::error::ApiError;
use crate::graphql::schema::{caller, counted, metadata, resolve_key, state};

type Res<T> = Result<T, async_graphql::Error>;

const ANY_ROLE: &[Role] = &Role::ALL;
pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

/// A review after a command.
#[derive(SimpleObject)]
pub struct CapsuleReviewReceipt {
    pub review_id: String,
    pub name: String,
    pub author: String,
    pub stars: i32,
    pub hidden: bool,
    pub helpful: i32,
    pub not_helpful: i32,
}

impl From<ReviewReceipt> for CapsuleReviewReceipt {
    fn from(r: ReviewReceipt) -> Self {
        let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            review_id: r.review_id,
            name: r.name,
            author: r.author,
            stars: i32::from(r.stars),
            hidden: r.hidden,
            helpful: count(r.helpful),
            not_helpful: count(r.not_helpful),
        }
    }
}

/// A listed review.
#[derive(SimpleObject)]
pub struct CapsuleReviewItem {
    pub review_id: String,
    pub author: String,
    pub stars: i32,
    pub text: String,
    pub hidden: bool,
    pub helpful: i32,
    pub not_helpful: i32,
    pub written_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ReviewRow> for CapsuleReviewItem {
    fn from(r: ReviewRow) -> Self {
        let small = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            review_id: r.review_id,
            author: r.author,
            stars: small(r.stars),
            text: r.text,
            hidden: r.hidden,
            helpful: small(r.helpful),
            not_helpful: small(r.not_helpful),
            written_at: r.written_at,
            updated_at: r.updated_at,
        }
    }
}

/// A capsule's rating and a page of its reviews.
#[derive(SimpleObject)]
pub struct CapsuleReviews {
    /// The mean of the visible ratings, two places (a decimal string); "0.00" when unrated.
    pub average_rating: String,
    pub ratings: i32,
    pub reviews: Vec<CapsuleReviewItem>,
}

#[derive(Default)]
pub struct CapsuleReviewQuery;

#[Object]
impl CapsuleReviewQuery {
    /// A capsule's rating and reviews, most helpful first (any key; hidden ones for platform
    /// reviewers, auditors and admins).
    async fn capsule_reviews(
        &self,
        ctx: &Context<'_>,
        name: String,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> Res<CapsuleReviews> {
        let p = caller(ctx, ANY_ROLE)?;
        let first = first.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(ApiError::BadUserInput(format!("first must be 1..={MAX_PAGE}")).into());
        }
        let offset = offset.unwrap_or(0);
        if !(0..=100_000).contains(&offset) {
            return Err(ApiError::BadUserInput("offset must be 0..=100000".into()).into());
        }
        let q = &state(ctx).capsules.reviews;
        let rating = q.rating(&name).await.map_err(read_error)?;
        let rows = q
            .of_capsule(
                &name,
                reviews::sees_hidden(p),
                i64::from(offset),
                i64::from(first),
            )
            .await
            .map_err(read_error)?;
        Ok(CapsuleReviews {
            average_rating: rating.average.to_string(),
            ratings: i32::try_from(rating.ratings).unwrap_or(i32::MAX),
            reviews: rows.into_iter().map(Into::into).collect(),
        })
    }
}

#[derive(Default)]
pub struct CapsuleReviewMutation;

async fn once(
    ctx: &Context<'_>,
    name: String,
    op: ReviewOp,
    key: Option<String>,
) -> Res<CapsuleReviewReceipt> {
    let p = caller(ctx, ANY_ROLE)?;
    let key = resolve_key(ctx, key)?;
    let meta = metadata(ctx, p, &key)?;
    let s = state(ctx);
    let result = reviews::run(s, p, &key, meta, &name, op).await;
    counted(s, "capsule_review", result)?
        .map(Into::into)
        .map_err(refusal_error)
}

#[Object]
impl CapsuleReviewMutation {
    /// Writes the caller's rating (1–5) and optional text for a capsule it installed, or edits
    /// the caller's review.
    async fn write_capsule_review(
        &self,
        ctx: &Context<'_>,
        name: String,
        stars: i32,
        text: Option<String>,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleReviewReceipt> {
        let stars = u8::try_from(stars).map_err(|_| {
            ApiError::BadUserInput(format!("a rating has 1 to 5 stars, not {stars}"))
        })?;
        let op = ReviewOp::Write {
            stars,
            text: text.unwrap_or_default(),
        };
        once(ctx, name, op, idempotency_key).await
    }

    /// A helpful (or not) vote on `author`'s review; once per voter, never on one's own.
    async fn vote_capsule_review(
        &self,
        ctx: &Context<'_>,
        name: String,
        author: String,
        helpful: bool,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleReviewReceipt> {
        once(
            ctx,
            name,
            ReviewOp::Vote { author, helpful },
            idempotency_key,
        )
        .await
    }

    /// Hides (`hide`) or restores (`restore`) a review, with a note (platform reviewers).
    async fn moderate_capsule_review(
        &self,
        ctx: &Context<'_>,
        name: String,
        author: String,
        action: String,
        note: String,
        idempotency_key: Option<String>,
    ) -> Res<CapsuleReviewReceipt> {
        let hide = match action.as_str() {
            "hide" => true,
            "restore" => false,
            other => {
                return Err(ApiError::BadUserInput(format!(
                    "action must be hide or restore, not {other:?}"
                ))
                .into())
            }
        };
        let op = ReviewOp::Moderate { author, hide, note };
        once(ctx, name, op, idempotency_key).await
    }
}
