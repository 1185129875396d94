//! `searchCapsules`: the catalogue search over GraphQL (see [`super::search`]).

use agora_domain::access::Role;
use agora_projections::capsule_search::{SearchHit, SearchRequest, SearchSort};
use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::search;
use crate::graphql::error::ApiError;
use crate::graphql::schema::{caller, state};

type Res<T> = Result<T, async_graphql::Error>;

const ANY_ROLE: &[Role] = &Role::ALL;

/// How search results are ordered.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum CapsuleSearchSort {
    /// Best text match first (the default with a query).
    Relevance,
    /// Most live installs first (the default without a query).
    Popularity,
    /// Highest average rating first, then most ratings.
    Rating,
    /// Most recently published first.
    Recency,
    Name,
}

impl CapsuleSearchSort {
    fn as_str(self) -> &'static str {
        match self {
            Self::Relevance => "relevance",
            Self::Popularity => "popularity",
            Self::Rating => "rating",
            Self::Recency => "recency",
            Self::Name => "name",
        }
    }
}

impl From<SearchSort> for CapsuleSearchSort {
    fn from(s: SearchSort) -> Self {
        match s {
            SearchSort::Relevance => Self::Relevance,
            SearchSort::Popularity => Self::Popularity,
            SearchSort::Rating => Self::Rating,
            SearchSort::Recency => Self::Recency,
            SearchSort::Name => Self::Name,
        }
    }
}

/// A capsule found.
#[derive(SimpleObject)]
pub struct CapsuleSearchHit {
    pub name: String,
    /// The highest published, unyanked version.
    pub version: String,
    pub description: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub permissions: Vec<String>,
    pub installs: i64,
    pub ratings: i64,
    /// The mean rating to two places, as a string (`"4.50"`); `"0.00"` when unrated.
    pub average_rating: String,
    pub published_at: DateTime<Utc>,
    /// The text match's score (with a query).
    pub score: Option<f64>,
}

impl From<SearchHit> for CapsuleSearchHit {
    fn from(h: SearchHit) -> Self {
        Self {
            name: h.name,
            version: h.version,
            description: h.description,
            category: h.category,
            tags: h.tags,
            permissions: h.permissions,
            installs: h.installs,
            ratings: h.ratings,
            average_rating: h.rating_average.to_string(),
            published_at: h.published_at,
            score: h.score.map(f64::from),
        }
    }
}

/// A page of results; `next` is the `after` of the next page.
#[derive(SimpleObject)]
pub struct CapsuleSearchPage {
    pub hits: Vec<CapsuleSearchHit>,
    pub next: Option<String>,
    pub sort: CapsuleSearchSort,
}

#[derive(Default)]
pub struct CapsuleSearchQuery;

#[Object]
impl CapsuleSearchQuery {
    /// Published capsules (any key). `q`: typo-tolerant full text over name, tags, category and
    /// description; `category` exact (case-insensitive); `permission` one the capsule declares;
    /// `minRating` a decimal string `0`–`5`.
    #[allow(clippy::too_many_arguments)]
    async fn search_capsules(
        &self,
        ctx: &Context<'_>,
        q: Option<String>,
        category: Option<String>,
        permission: Option<String>,
        min_rating: Option<String>,
        sort: Option<CapsuleSearchSort>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Res<CapsuleSearchPage> {
        caller(ctx, ANY_ROLE)?;
        let min_rating = match min_rating {
            None => None,
            Some(r) => Some(r.trim().parse::<Decimal>().map_err(|_| {
                ApiError::BadUserInput(format!("minRating `{r}` is not a decimal number"))
            })?),
        };
        let request = SearchRequest {
            q,
            category,
            permission,
            min_rating,
            sort: sort.map(|s| s.as_str().to_owned()),
            first: first.map(i64::from),
            after,
        };
        let page = search::run(state(ctx), &request).await?;
        Ok(CapsuleSearchPage {
            hits: page.hits.into_iter().map(Into::into).collect(),
            next: page.next,
            sort: page.sort.into(),
        })
    }
}
