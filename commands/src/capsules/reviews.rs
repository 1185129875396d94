//! Ratings and written reviews (issue 13, item 9) over the [`CapsuleReview`] aggregate: one per
//! user and capsule, written only by a user who installed the capsule (read from the
//! installation aggregate, never a read model), edited by its author, voted on by others,
//! hidden or restored by a platform reviewer.
//!
//! The spam facts a command carries come from the reviews read model ([`ReviewFacts`]): how
//! many reviews or edits the author wrote in the last hour, and whether the text nearly
//! duplicates another user's review of the capsule. The read model may trail the log by a
//! moment, so both are soft limits: a burst faster than the projection can slip one or two
//! past, never a flood.

use agora_domain::capsules::aggregate::Actor;
use agora_domain::capsules::community::spam::{find_near_duplicate, MAX_DUPLICATE_CANDIDATES};
use agora_domain::capsules::community::{
    review_id, CapsuleReview, EditReview, ModerateReview, Moderation, ReviewCommand, ReviewError,
    Stars, TextFacts, VoteReview, WriteReview,
};
use agora_domain::capsules::install::Subject;
use agora_domain::capsules::CapsuleName;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{command_error, CapsuleService, CapsuleServiceError};
use crate::metadata::CommandMetadata;

/// Facts about other reviews, read from the reviews read model.
#[async_trait]
pub trait ReviewFacts: Send + Sync {
    /// Reviews and edits `author` wrote at or after `since`.
    async fn author_activity_since(
        &self,
        author: &str,
        since: DateTime<Utc>,
    ) -> Result<u32, String>;
    /// Other users' visible reviews of `capsule`: (review id, fingerprint), at most `limit`.
    async fn fingerprints(
        &self,
        capsule: &str,
        other_than: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>, String>;
}

/// What a review command answers (stored as the idempotent outcome).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewReceipt {
    pub review_id: String,
    pub name: String,
    pub author: String,
    pub stars: u8,
    pub hidden: bool,
    pub helpful: usize,
    pub not_helpful: usize,
}

fn review_error(e: ReviewError) -> CapsuleServiceError {
    CapsuleServiceError::Review(e)
}

fn stars(n: u8) -> Result<Stars, CapsuleServiceError> {
    Stars::parse(n).map_err(review_error)
}

impl CapsuleService {
    async fn review_state(&self, id: &str) -> Result<CapsuleReview, CapsuleServiceError> {
        self.reviews
            .load(id)
            .await
            .map_err(|e| command_error(e, review_error))
    }

    async fn text_facts(
        &self,
        capsule: &CapsuleName,
        author: &str,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<TextFacts, CapsuleServiceError> {
        let Some(facts) = &self.review_facts else {
            return Ok(TextFacts {
                author_reviews_last_hour: 0,
                near_duplicate_of: None,
            });
        };
        let storage = |e: String| CapsuleServiceError::Storage(format!("reviews: {e}"));
        let recent = facts
            .author_activity_since(author, at - Duration::hours(1))
            .await
            .map_err(storage)?;
        let candidates = facts
            .fingerprints(capsule.as_str(), author, MAX_DUPLICATE_CANDIDATES)
            .await
            .map_err(storage)?;
        let duplicate = find_near_duplicate(
            text,
            candidates.iter().map(|(id, f)| (id.as_str(), f.as_str())),
        )
        .map(str::to_owned);
        Ok(TextFacts {
            author_reviews_last_hour: recent,
            near_duplicate_of: duplicate,
        })
    }

    /// Writes `author`'s review of `name`, or edits it when one exists.
    pub async fn write_review(
        &self,
        name: &CapsuleName,
        author: &str,
        star_count: u8,
        text: &str,
        meta: &CommandMetadata,
    ) -> Result<ReviewReceipt, CapsuleServiceError> {
        let stars = stars(star_count)?;
        if self.capsule(name).await?.owner().is_none() {
            return Err(CapsuleServiceError::NotFound(format!("capsule {name}")));
        }
        let id = review_id(name, author);
        let current = self.review_state(&id).await?;
        let facts = self
            .text_facts(name, author, text, meta.occurred_at)
            .await?;
        let command = if current.stars().is_some() {
            ReviewCommand::Edit(EditReview {
                by: author.to_owned(),
                stars,
                text: text.to_owned(),
                facts,
                occurred_at: meta.occurred_at,
            })
        } else {
            let installation = self
                .installation(&Subject::User(author.to_owned()), name)
                .await?;
            ReviewCommand::Write(WriteReview {
                capsule: name.clone(),
                author: author.to_owned(),
                stars,
                text: text.to_owned(),
                has_installed: installation.ever_installed(),
                facts,
                occurred_at: meta.occurred_at,
            })
        };
        self.reviews
            .execute(&id, command, meta)
            .await
            .map_err(|e| command_error(e, review_error))?;
        self.review_receipt(name, &id).await
    }

    /// A helpful (or not) vote by `voter` on `author`'s review of `name`.
    pub async fn vote_review(
        &self,
        name: &CapsuleName,
        author: &str,
        voter: &str,
        helpful: bool,
        meta: &CommandMetadata,
    ) -> Result<ReviewReceipt, CapsuleServiceError> {
        let id = review_id(name, author);
        let command = ReviewCommand::Vote(VoteReview {
            voter: voter.to_owned(),
            helpful,
            occurred_at: meta.occurred_at,
        });
        self.reviews
            .execute(&id, command, meta)
            .await
            .map_err(|e| command_error(e, review_error))?;
        self.review_receipt(name, &id).await
    }

    /// A platform reviewer hides or restores `author`'s review of `name`, with a note.
    pub async fn moderate_review(
        &self,
        name: &CapsuleName,
        author: &str,
        moderator: Actor,
        hide: bool,
        note: &str,
        meta: &CommandMetadata,
    ) -> Result<ReviewReceipt, CapsuleServiceError> {
        let id = review_id(name, author);
        let command = ReviewCommand::Moderate(ModerateReview {
            moderator,
            action: if hide {
                Moderation::Hide
            } else {
                Moderation::Restore
            },
            note: note.to_owned(),
            occurred_at: meta.occurred_at,
        });
        self.reviews
            .execute(&id, command, meta)
            .await
            .map_err(|e| command_error(e, review_error))?;
        self.review_receipt(name, &id).await
    }

    async fn review_receipt(
        &self,
        name: &CapsuleName,
        id: &str,
    ) -> Result<ReviewReceipt, CapsuleServiceError> {
        let review = self.review_state(id).await?;
        let stars = review
            .stars()
            .ok_or_else(|| review_error(ReviewError::NoReview))?;
        let (helpful, not_helpful) = review.votes();
        Ok(ReviewReceipt {
            review_id: id.to_owned(),
            name: name.to_string(),
            author: id
                .strip_prefix(&format!("{name}/"))
                .unwrap_or(id)
                .to_owned(),
            stars: stars.get(),
            hidden: review.is_hidden(),
            helpful,
            not_helpful,
        })
    }
}
