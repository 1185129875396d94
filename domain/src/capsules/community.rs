//! The [`CapsuleReview`] aggregate: one per (capsule, user), aggregate id [`review_id`]. A rating
//! of 1–5 stars with an optional written review, edited by its author, hidden or restored by a
//! reviewer, voted helpful or not by others. Spam prevention is split the usual way: the facts
//! (has the author installed the capsule, how many reviews they wrote in the last hour, does the
//! text nearly duplicate another review) are looked up by the commands layer, using
//! [`spam::fingerprint`] and [`spam::find_near_duplicate`], and carried by the command.
//!
//! Rules (each has a given/when/then test in `community_tests.rs`):
//! - one review per user per capsule: writing again is [`ReviewError::AlreadyReviewed`] (edit
//!   instead); only a user who installed the capsule writes one;
//! - stars are 1–5 ([`Stars`]); the text has at most [`MAX_REVIEW_CHARS`] characters and may be
//!   empty (a rating alone);
//! - at most [`MAX_REVIEWS_PER_HOUR`] reviews or edits by one author in an hour (retryable);
//! - a text that nearly duplicates another user's review is refused, naming it;
//! - only the author edits; only a `reviewer` hides or restores, with a note;
//! - a vote is once per voter, never on one's own review, never on a hidden review.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::aggregate::{Actor, MAX_NOTES_CHARS};
use super::CapsuleName;
use crate::access::Role;

/// Longest written review, in characters.
pub const MAX_REVIEW_CHARS: usize = 5_000;
/// Most reviews and edits one author may write in an hour.
pub const MAX_REVIEWS_PER_HOUR: u32 = 10;

/// The aggregate id of `user`'s review of `capsule`: `csv-summary/ann`.
pub fn review_id(capsule: &CapsuleName, user: &str) -> String {
    format!("{capsule}/{user}")
}

/// A rating: 1 to 5 stars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Stars(u8);

impl Stars {
    pub fn parse(stars: u8) -> Result<Stars, ReviewError> {
        if (1..=5).contains(&stars) {
            Ok(Stars(stars))
        } else {
            Err(ReviewError::StarsOutOfRange { stars })
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Stars {
    type Error = ReviewError;

    fn try_from(stars: u8) -> Result<Stars, ReviewError> {
        Stars::parse(stars)
    }
}

impl From<Stars> for u8 {
    fn from(stars: Stars) -> u8 {
        stars.0
    }
}

/// Facts about the text, computed by the commands layer before the command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFacts {
    /// Reviews and edits by the author in the hour before `occurred_at`.
    pub author_reviews_last_hour: u32,
    /// Another user's review (its id) that this text nearly duplicates.
    pub near_duplicate_of: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReview {
    pub capsule: CapsuleName,
    pub author: String,
    pub stars: Stars,
    pub text: String,
    /// Whether the author has (or had) the capsule installed.
    pub has_installed: bool,
    pub facts: TextFacts,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditReview {
    pub by: String,
    pub stars: Stars,
    pub text: String,
    pub facts: TextFacts,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moderation {
    Hide,
    Restore,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerateReview {
    pub moderator: Actor,
    pub action: Moderation,
    pub note: String,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteReview {
    pub voter: String,
    pub helpful: bool,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewCommand {
    Write(WriteReview),
    Edit(EditReview),
    Moderate(ModerateReview),
    Vote(VoteReview),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewEvent {
    ReviewWritten {
        capsule: CapsuleName,
        author: String,
        stars: Stars,
        text: String,
        /// [`spam::fingerprint`] of the text, for the duplicate index.
        fingerprint: String,
        occurred_at: DateTime<Utc>,
    },
    ReviewEdited {
        previous_stars: Stars,
        stars: Stars,
        text: String,
        fingerprint: String,
        occurred_at: DateTime<Utc>,
    },
    /// Hidden reviews leave the capsule's rating: `stars` is what to take out.
    ReviewHidden {
        moderator_id: String,
        note: String,
        stars: Stars,
        occurred_at: DateTime<Utc>,
    },
    ReviewRestored {
        moderator_id: String,
        note: String,
        stars: Stars,
        occurred_at: DateTime<Utc>,
    },
    ReviewVoted {
        voter: String,
        helpful: bool,
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for ReviewEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ReviewWritten { .. } => "CapsuleReviewWritten",
            Self::ReviewEdited { .. } => "CapsuleReviewEdited",
            Self::ReviewHidden { .. } => "CapsuleReviewHidden",
            Self::ReviewRestored { .. } => "CapsuleReviewRestored",
            Self::ReviewVoted { .. } => "CapsuleReviewVoted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        crate::versioning::FIRST_VERSION.to_string()
    }
}

/// Why a review command was refused. Only [`ReviewError::RateLimited`] is retryable (later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("a rating has 1 to 5 stars, not {stars}")]
    StarsOutOfRange { stars: u8 },
    #[error("a review has at most {max_chars} characters")]
    TextTooLong { max_chars: usize },
    #[error("only a user who installed the capsule may review it")]
    NotInstalled,
    #[error("this user already reviewed this capsule; edit the review instead")]
    AlreadyReviewed,
    #[error("there is no review yet")]
    NoReview,
    #[error("only the review's author may edit it")]
    NotAuthor,
    #[error("only a reviewer may moderate")]
    NotAReviewer,
    #[error("moderation needs a note of at most {max_chars} characters")]
    NoteRequired { max_chars: usize },
    #[error("at most {max_per_hour} reviews or edits an hour")]
    RateLimited { max_per_hour: u32 },
    #[error("the text nearly duplicates review {of}")]
    DuplicateText { of: String },
    #[error("a user may not vote on their own review")]
    OwnReview,
    #[error("this user already voted on this review")]
    AlreadyVoted,
    #[error("the review is hidden")]
    ReviewHidden,
}

impl ReviewError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ReviewError::RateLimited { .. })
    }
}

/// One user's review of one capsule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapsuleReview {
    author: Option<String>,
    stars: Option<Stars>,
    text: String,
    hidden: bool,
    /// Voter -> helpful.
    votes: BTreeMap<String, bool>,
}

impl CapsuleReview {
    pub fn stars(&self) -> Option<Stars> {
        self.stars
    }

    pub fn is_hidden(&self) -> bool {
        self.hidden
    }

    /// (helpful, not helpful) votes.
    pub fn votes(&self) -> (usize, usize) {
        let helpful = self.votes.values().filter(|h| **h).count();
        (helpful, self.votes.len() - helpful)
    }

    pub fn decide(&self, command: ReviewCommand) -> Result<Vec<ReviewEvent>, ReviewError> {
        match command {
            ReviewCommand::Write(c) => self.write(c),
            ReviewCommand::Edit(c) => self.edit(c),
            ReviewCommand::Moderate(c) => self.moderate(c),
            ReviewCommand::Vote(c) => self.vote(c),
        }
    }

    fn write(&self, c: WriteReview) -> Result<Vec<ReviewEvent>, ReviewError> {
        if self.author.is_some() {
            return Err(ReviewError::AlreadyReviewed);
        }
        if !c.has_installed {
            return Err(ReviewError::NotInstalled);
        }
        check_text(&c.text, &c.facts)?;
        Ok(vec![ReviewEvent::ReviewWritten {
            capsule: c.capsule,
            author: c.author,
            stars: c.stars,
            fingerprint: spam::fingerprint(&c.text),
            text: c.text,
            occurred_at: c.occurred_at,
        }])
    }

    fn edit(&self, c: EditReview) -> Result<Vec<ReviewEvent>, ReviewError> {
        let (Some(author), Some(previous_stars)) = (&self.author, self.stars) else {
            return Err(ReviewError::NoReview);
        };
        if author != &c.by {
            return Err(ReviewError::NotAuthor);
        }
        if c.stars == previous_stars && c.text == self.text {
            return Ok(vec![]);
        }
        check_text(&c.text, &c.facts)?;
        Ok(vec![ReviewEvent::ReviewEdited {
            previous_stars,
            stars: c.stars,
            fingerprint: spam::fingerprint(&c.text),
            text: c.text,
            occurred_at: c.occurred_at,
        }])
    }

    fn moderate(&self, c: ModerateReview) -> Result<Vec<ReviewEvent>, ReviewError> {
        if c.moderator.role != Role::Reviewer {
            return Err(ReviewError::NotAReviewer);
        }
        let Some(stars) = self.stars else {
            return Err(ReviewError::NoReview);
        };
        if c.note.trim().is_empty() || c.note.chars().count() > MAX_NOTES_CHARS {
            return Err(ReviewError::NoteRequired {
                max_chars: MAX_NOTES_CHARS,
            });
        }
        let (moderator_id, note, occurred_at) = (c.moderator.id, c.note, c.occurred_at);
        Ok(match (c.action, self.hidden) {
            (Moderation::Hide, false) => vec![ReviewEvent::ReviewHidden {
                moderator_id,
                note,
                stars,
                occurred_at,
            }],
            (Moderation::Restore, true) => vec![ReviewEvent::ReviewRestored {
                moderator_id,
                note,
                stars,
                occurred_at,
            }],
            _ => vec![],
        })
    }

    fn vote(&self, c: VoteReview) -> Result<Vec<ReviewEvent>, ReviewError> {
        let Some(author) = &self.author else {
            return Err(ReviewError::NoReview);
        };
        if author == &c.voter {
            return Err(ReviewError::OwnReview);
        }
        if self.hidden {
            return Err(ReviewError::ReviewHidden);
        }
        if self.votes.contains_key(&c.voter) {
            return Err(ReviewError::AlreadyVoted);
        }
        Ok(vec![ReviewEvent::ReviewVoted {
            voter: c.voter,
            helpful: c.helpful,
            occurred_at: c.occurred_at,
        }])
    }
}

fn check_text(text: &str, facts: &TextFacts) -> Result<(), ReviewError> {
    if text.chars().count() > MAX_REVIEW_CHARS {
        return Err(ReviewError::TextTooLong {
            max_chars: MAX_REVIEW_CHARS,
        });
    }
    if facts.author_reviews_last_hour >= MAX_REVIEWS_PER_HOUR {
        return Err(ReviewError::RateLimited {
            max_per_hour: MAX_REVIEWS_PER_HOUR,
        });
    }
    if let Some(of) = &facts.near_duplicate_of {
        return Err(ReviewError::DuplicateText { of: of.clone() });
    }
    Ok(())
}

impl Aggregate for CapsuleReview {
    const TYPE: &'static str = "capsule_review";
    type Command = ReviewCommand;
    type Event = ReviewEvent;
    type Error = ReviewError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _service: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ReviewEvent::ReviewWritten {
                author,
                stars,
                text,
                ..
            } => {
                self.author = Some(author);
                self.stars = Some(stars);
                self.text = text;
            }
            ReviewEvent::ReviewEdited { stars, text, .. } => {
                self.stars = Some(stars);
                self.text = text;
            }
            ReviewEvent::ReviewHidden { .. } => self.hidden = true,
            ReviewEvent::ReviewRestored { .. } => self.hidden = false,
            ReviewEvent::ReviewVoted { voter, helpful, .. } => {
                self.votes.insert(voter, helpful);
            }
        }
    }
}

#[path = "community_spam.rs"]
pub mod spam;

#[path = "community_trending.rs"]
pub mod trending;

#[cfg(test)]
#[path = "community_tests.rs"]
mod tests;
