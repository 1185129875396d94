//! The capsule reviews read model: every review with its stars, text, fingerprint, visibility
//! and votes (`rm_capsule_reviews`), each capsule's rating over its visible reviews
//! (`rm_capsule_ratings`), and each author's writes and edits in time (`rm_capsule_review_log`,
//! the hourly limit). A dumb fold of the `capsule_review` events; also the commands layer's
//! [`ReviewFacts`].

use agora_commands::capsules::reviews::ReviewFacts;
use agora_commands::store::StoredEvent;
use agora_domain::capsules::community::ReviewEvent;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::{AnyPool, Row};

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub const NAME: &str = "capsule_reviews";
const VERSION: i64 = 1;
/// Most reviews one list returns.
pub const MAX_PAGE: i64 = 100;

const REVIEWS_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    review_id TEXT PRIMARY KEY,
    capsule TEXT NOT NULL,
    author TEXT NOT NULL,
    stars BIGINT NOT NULL,
    body TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    hidden BIGINT NOT NULL,
    helpful BIGINT NOT NULL,
    not_helpful BIGINT NOT NULL,
    written_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {t}_capsule ON {t} (capsule, updated_at_us)",
    // The trending list reads the ratings of its window.
    "CREATE INDEX IF NOT EXISTS {t}_updated_at ON {t} (updated_at_us)",
];

const RATINGS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    capsule TEXT PRIMARY KEY,
    ratings BIGINT NOT NULL,
    stars_total BIGINT NOT NULL)"];

const LOG_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    global_position BIGINT PRIMARY KEY,
    author TEXT NOT NULL,
    at_us BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {t}_author ON {t} (author, at_us)",
];

#[derive(Clone, Debug)]
struct Tables {
    reviews: String,
    ratings: String,
    log: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        Self {
            reviews: format!("{prefix}capsule_reviews"),
            ratings: format!("{prefix}capsule_ratings"),
            log: format!("{prefix}capsule_review_log"),
        }
    }
}

/// The reviews projection.
#[derive(Clone, Debug)]
pub struct CapsuleReviewProjection {
    t: Tables,
}

impl Default for CapsuleReviewProjection {
    fn default() -> Self {
        Self::new(LIVE_PREFIX)
    }
}

impl CapsuleReviewProjection {
    pub fn new(prefix: &str) -> Self {
        Self {
            t: Tables::new(prefix),
        }
    }

    /// Adds `ratings` ratings totalling `stars` to the capsule's rating.
    async fn rate(
        &self,
        tx: &mut ReadTx,
        capsule: &str,
        ratings: i64,
        stars: i64,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "INSERT INTO {t} (capsule, ratings, stars_total) VALUES ($1, $2, $3) \
             ON CONFLICT (capsule) DO UPDATE SET ratings = {t}.ratings + $2, \
             stars_total = {t}.stars_total + $3",
            t = self.t.ratings
        ))
        .bind(capsule)
        .bind(ratings)
        .bind(stars)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn logged(
        &self,
        tx: &mut ReadTx,
        event: &StoredEvent,
        author: &str,
        at: DateTime<Utc>,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "INSERT INTO {} (global_position, author, at_us) VALUES ($1, $2, $3)",
            self.t.log
        ))
        .bind(event.position.global_position)
        .bind(author)
        .bind(at.timestamp_micros())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// The review's capsule, author and whether it is hidden.
    async fn review(
        &self,
        tx: &mut ReadTx,
        id: &str,
    ) -> Result<(String, String, bool), ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT capsule, author, hidden FROM {} WHERE review_id = $1",
            self.t.reviews
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ProjectionError::Corrupt(format!("review {id} was never written")))?;
        Ok((
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get::<i64, _>(2)? != 0,
        ))
    }
}

#[async_trait]
impl Projection for CapsuleReviewProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            TableSpec::new(self.t.reviews.clone(), REVIEWS_DDL),
            TableSpec::new(self.t.ratings.clone(), RATINGS_DDL),
            TableSpec::new(self.t.log.clone(), LOG_DDL),
        ]
    }

    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "capsule_review" {
            return Ok(());
        }
        let decoded: ReviewEvent = serde_json::from_value(event.payload.clone())
            .map_err(|e| ProjectionError::decode(event, e))?;
        let id = event.aggregate_id.as_str();
        match decoded {
            ReviewEvent::ReviewWritten {
                capsule,
                author,
                stars,
                text,
                fingerprint,
                occurred_at,
            } => {
                let at = occurred_at.timestamp_micros();
                sqlx::query(&format!(
                    "INSERT INTO {} (review_id, capsule, author, stars, body, fingerprint, hidden, \
                     helpful, not_helpful, written_at_us, updated_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, 0, 0, $7, $7)",
                    self.t.reviews
                ))
                .bind(id)
                .bind(capsule.as_str())
                .bind(&author)
                .bind(i64::from(stars.get()))
                .bind(text)
                .bind(fingerprint)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                self.rate(tx, capsule.as_str(), 1, i64::from(stars.get()))
                    .await?;
                self.logged(tx, event, &author, occurred_at).await
            }
            ReviewEvent::ReviewEdited {
                previous_stars,
                stars,
                text,
                fingerprint,
                occurred_at,
            } => {
                let (capsule, author, hidden) = self.review(tx, id).await?;
                sqlx::query(&format!(
                    "UPDATE {} SET stars = $1, body = $2, fingerprint = $3, updated_at_us = $4 \
                     WHERE review_id = $5",
                    self.t.reviews
                ))
                .bind(i64::from(stars.get()))
                .bind(text)
                .bind(fingerprint)
                .bind(occurred_at.timestamp_micros())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if !hidden {
                    let delta = i64::from(stars.get()) - i64::from(previous_stars.get());
                    self.rate(tx, &capsule, 0, delta).await?;
                }
                self.logged(tx, event, &author, occurred_at).await
            }
            ReviewEvent::ReviewHidden {
                stars, occurred_at, ..
            }
            | ReviewEvent::ReviewRestored {
                stars, occurred_at, ..
            } => {
                let hide = event.event_type == "CapsuleReviewHidden";
                let (capsule, _, _) = self.review(tx, id).await?;
                sqlx::query(&format!(
                    "UPDATE {} SET hidden = $1, updated_at_us = $2 WHERE review_id = $3",
                    self.t.reviews
                ))
                .bind(i64::from(hide))
                .bind(occurred_at.timestamp_micros())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let sign = if hide { -1 } else { 1 };
                self.rate(tx, &capsule, sign, sign * i64::from(stars.get()))
                    .await
            }
            ReviewEvent::ReviewVoted { helpful, .. } => {
                let column = if helpful { "helpful" } else { "not_helpful" };
                sqlx::query(&format!(
                    "UPDATE {t} SET {column} = {column} + 1 WHERE review_id = $1",
                    t = self.t.reviews
                ))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Ok(())
            }
        }
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::new(prefix))
    }
}

/// One review as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewRow {
    pub review_id: String,
    pub capsule: String,
    pub author: String,
    pub stars: i64,
    pub text: String,
    pub hidden: bool,
    pub helpful: i64,
    pub not_helpful: i64,
    pub written_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A capsule's rating over its visible reviews.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rating {
    pub ratings: i64,
    /// The mean, to two places (half-even); zero when unrated.
    pub average: Decimal,
}

const REVIEW_COLUMNS: &str = "review_id, capsule, author, stars, body, hidden, helpful, \
    not_helpful, written_at_us, updated_at_us";

fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

fn review_row(r: &sqlx::any::AnyRow) -> Result<ReviewRow, ProjectionError> {
    Ok(ReviewRow {
        review_id: r.try_get(0)?,
        capsule: r.try_get(1)?,
        author: r.try_get(2)?,
        stars: r.try_get(3)?,
        text: r.try_get(4)?,
        hidden: r.try_get::<i64, _>(5)? != 0,
        helpful: r.try_get(6)?,
        not_helpful: r.try_get(7)?,
        written_at: time(r.try_get(8)?),
        updated_at: time(r.try_get(9)?),
    })
}

/// Reads of the reviews.
#[derive(Clone)]
pub struct CapsuleReviewQueries {
    pool: AnyPool,
    t: Tables,
}

impl CapsuleReviewQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            t: Tables::new(LIVE_PREFIX),
        }
    }

    /// A capsule's reviews, most helpful first, then newest; hidden ones only when asked
    /// (moderators). `offset` pages.
    pub async fn of_capsule(
        &self,
        capsule: &str,
        include_hidden: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<ReviewRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT {REVIEW_COLUMNS} FROM {} WHERE capsule = $1 AND ($2 = 1 OR hidden = 0) \
             ORDER BY helpful - not_helpful DESC, updated_at_us DESC, review_id \
             LIMIT $3 OFFSET $4",
            self.t.reviews
        ))
        .bind(capsule)
        .bind(i64::from(include_hidden))
        .bind(limit.clamp(1, MAX_PAGE))
        .bind(offset.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(review_row).collect()
    }

    /// The capsule's rating.
    pub async fn rating(&self, capsule: &str) -> Result<Rating, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT ratings, stars_total FROM {} WHERE capsule = $1",
            self.t.ratings
        ))
        .bind(capsule)
        .fetch_optional(&self.pool)
        .await?;
        let (ratings, total): (i64, i64) = match row {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (0, 0),
        };
        Ok(Rating {
            ratings,
            average: average(ratings, total),
        })
    }
}

/// The mean of `ratings` stars summing to `total`, to two places (half-even); zero when unrated.
pub fn average(ratings: i64, total: i64) -> Decimal {
    let mut average = if ratings > 0 {
        (Decimal::from(total) / Decimal::from(ratings))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven)
    } else {
        Decimal::ZERO
    };
    average.rescale(2);
    average
}

#[async_trait]
impl ReviewFacts for CapsuleReviewQueries {
    async fn author_activity_since(
        &self,
        author: &str,
        since: DateTime<Utc>,
    ) -> Result<u32, String> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE author = $1 AND at_us >= $2",
            self.t.log
        ))
        .bind(author)
        .bind(since.timestamp_micros())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn fingerprints(
        &self,
        capsule: &str,
        other_than: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>, String> {
        let rows = sqlx::query(&format!(
            "SELECT review_id, fingerprint FROM {} WHERE capsule = $1 AND author <> $2 \
             AND hidden = 0 ORDER BY updated_at_us DESC LIMIT $3",
            self.t.reviews
        ))
        .bind(capsule)
        .bind(other_than)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| e.to_string())?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| e.to_string())
    }
}
