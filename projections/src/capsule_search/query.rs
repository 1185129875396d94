//! A capsule search: validated request, candidates from the index, filters and order in SQL.

use agora_domain::capsules::permissions::Permission;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::{AnyPool, Row};

use super::{permission_text, SearchIndex, Tables};
use crate::capsule_reviews::average;
use crate::engine::{ProjectionError, LIVE_PREFIX};

/// Longest query text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Longest category filter, in characters.
pub const MAX_CATEGORY_CHARS: usize = 64;
/// Most capsules one page returns.
pub const MAX_PAGE: i64 = 100;
/// The default page size.
pub const DEFAULT_PAGE: i64 = 20;
/// Most full-text matches considered per query (the best by relevance); filters and sorts
/// apply to them.
pub const MAX_CANDIDATES: usize = 1_000;
/// The deepest a cursor may page.
pub const MAX_OFFSET: i64 = 10_000;

/// How results are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchSort {
    /// Best text match first (the default with a query; popularity without one).
    Relevance,
    /// Most live installs first.
    Popularity,
    /// Highest average rating first, then most ratings.
    Rating,
    /// Most recently published first.
    Recency,
    /// By name.
    Name,
}

impl SearchSort {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "relevance" => Self::Relevance,
            "popularity" | "popular" | "installs" => Self::Popularity,
            "rating" | "rated" => Self::Rating,
            "recency" | "recent" | "newest" => Self::Recency,
            "name" => Self::Name,
            _ => return None,
        })
    }

    fn order_by(self) -> &'static str {
        match self {
            Self::Relevance | Self::Popularity => "COALESCE(c.installs, 0) DESC, d.name",
            Self::Rating => {
                "CASE WHEN COALESCE(r.ratings, 0) > 0 THEN r.stars_total * 1.0 / r.ratings \
                 ELSE 0 END DESC, COALESCE(r.ratings, 0) DESC, d.name"
            }
            Self::Recency => "d.published_at_us DESC, d.name",
            Self::Name => "d.name",
        }
    }
}

/// A search as asked, unvalidated (strings straight from REST or GraphQL).
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub q: Option<String>,
    pub category: Option<String>,
    pub permission: Option<String>,
    pub min_rating: Option<Decimal>,
    pub sort: Option<String>,
    pub first: Option<i64>,
    pub after: Option<String>,
}

/// A bad search request: a message naming the parameter.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Store(#[from] ProjectionError),
}

impl From<sqlx::Error> for SearchError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A validated request.
#[derive(Clone, Debug)]
struct Valid {
    q: Option<String>,
    category: Option<String>,
    permission: Option<Permission>,
    /// The minimum average in hundredths of a star (0: no minimum).
    min_rating_hundredths: i64,
    sort: SearchSort,
    first: i64,
    offset: i64,
}

fn bad(message: impl Into<String>) -> SearchError {
    SearchError::BadInput(message.into())
}

impl SearchRequest {
    fn validate(&self) -> Result<Valid, SearchError> {
        let q = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_owned);
        if q.as_ref()
            .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
        {
            return Err(bad(format!(
                "q must have at most {MAX_QUERY_CHARS} characters"
            )));
        }
        let category = self
            .category
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        if category
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_CATEGORY_CHARS)
        {
            return Err(bad(format!(
                "category must have at most {MAX_CATEGORY_CHARS} characters"
            )));
        }
        let permission = match self.permission.as_deref().filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some(Permission::parse(p).ok_or_else(|| {
                let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                bad(format!(
                    "permission `{p}` is not one of: {}",
                    known.join(", ")
                ))
            })?),
        };
        let min_rating_hundredths = match self.min_rating {
            None => 0,
            Some(r) if r < Decimal::ZERO || r > Decimal::from(5) || r.scale() > 2 => {
                return Err(bad(
                    "minRating must be between 0 and 5 with at most two decimal places",
                ))
            }
            Some(r) => (r * Decimal::from(100))
                .trunc()
                .try_into()
                .map_err(|_| bad("minRating is out of range"))?,
        };
        let sort = match self.sort.as_deref().filter(|s| !s.is_empty()) {
            None if q.is_some() => SearchSort::Relevance,
            None => SearchSort::Popularity,
            Some(s) => SearchSort::parse(s).ok_or_else(|| {
                bad(format!(
                    "sort `{s}` is not one of: relevance, popularity, rating, recency, name"
                ))
            })?,
        };
        let first = self.first.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&first) {
            return Err(bad(format!("first must be 1..={MAX_PAGE}")));
        }
        let offset = match self.after.as_deref().filter(|a| !a.is_empty()) {
            None => 0,
            Some(a) => match a.parse::<i64>() {
                Ok(o) if (1..=MAX_OFFSET).contains(&o) => o,
                _ => {
                    return Err(bad(
                        "after must be the `next` cursor of an earlier page of this search",
                    ))
                }
            },
        };
        Ok(Valid {
            q,
            category,
            permission,
            min_rating_hundredths,
            sort,
            first,
            offset,
        })
    }
}

/// One capsule found.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    pub name: String,
    /// The highest published, unyanked version (the one the text and filters describe).
    pub version: String,
    pub description: String,
    pub tags: Vec<String>,
    pub category: Option<String>,
    pub permissions: Vec<String>,
    pub installs: i64,
    pub ratings: i64,
    pub rating_average: Decimal,
    pub published_at: DateTime<Utc>,
    /// The text match's score (with a query).
    pub score: Option<f32>,
}

/// A page of results.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// The `after` cursor of the next page, when there is one.
    pub next: Option<String>,
    pub sort: SearchSort,
}

/// Searches the catalogue: one per process (it owns the index).
#[derive(Clone)]
pub struct CapsuleSearch {
    pool: AnyPool,
    index: SearchIndex,
    docs: String,
    counts: String,
    ratings: String,
}

impl CapsuleSearch {
    /// A search over the live read models, with an index built on first use.
    pub fn new(pool: AnyPool) -> Result<Self, ProjectionError> {
        let index = SearchIndex::new(pool.clone())?;
        Ok(Self {
            docs: Tables::new(LIVE_PREFIX).docs,
            counts: format!("{LIVE_PREFIX}capsule_install_counts"),
            ratings: format!("{LIVE_PREFIX}capsule_ratings"),
            pool,
            index,
        })
    }

    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    /// Runs a search: a bad request is [`SearchError::BadInput`] naming the parameter.
    pub async fn search(&self, request: &SearchRequest) -> Result<SearchPage, SearchError> {
        let v = request.validate()?;
        self.index.catch_up().await?;
        let candidates = match &v.q {
            Some(q) => Some(self.index.candidates(q, MAX_CANDIDATES).await?),
            None => None,
        };
        if candidates.as_ref().is_some_and(Vec::is_empty) {
            return Ok(SearchPage {
                hits: Vec::new(),
                next: None,
                sort: v.sort,
            });
        }
        let relevance = v.sort == SearchSort::Relevance && candidates.is_some();
        let mut sql = format!(
            "SELECT d.name, d.version, d.description, d.tags, d.category, d.permissions, \
             d.published_at_us, COALESCE(c.installs, 0), COALESCE(r.ratings, 0), \
             COALESCE(r.stars_total, 0) FROM {docs} d \
             LEFT JOIN {counts} c ON c.capsule = d.name \
             LEFT JOIN {ratings} r ON r.capsule = d.name \
             WHERE d.listed = 1 AND ($1 = '' OR LOWER(d.category) = LOWER($1)) \
             AND ($2 = '' OR d.permissions LIKE $2) \
             AND ($3 = 0 OR (COALESCE(r.ratings, 0) > 0 \
                  AND r.stars_total * 100 >= $3 * r.ratings))",
            docs = self.docs,
            counts = self.counts,
            ratings = self.ratings,
        );
        let names: Vec<&str> = candidates
            .iter()
            .flatten()
            .map(|(n, _)| n.as_str())
            .collect();
        if !names.is_empty() {
            let placeholders: Vec<String> =
                (0..names.len()).map(|i| format!("${}", i + 4)).collect();
            sql.push_str(&format!(" AND d.name IN ({})", placeholders.join(", ")));
        }
        // One row past the page tells whether there is a next one.
        let fetch = v.first + 1;
        if !relevance {
            sql.push_str(&format!(
                " ORDER BY {} LIMIT {fetch} OFFSET {}",
                v.sort.order_by(),
                v.offset
            ));
        }
        let permission = v
            .permission
            .map(|p| format!("%{}%", permission_text([p.as_str()])))
            .unwrap_or_default();
        let mut query = sqlx::query(&sql)
            .bind(v.category.clone().unwrap_or_default())
            .bind(permission)
            .bind(v.min_rating_hundredths);
        for n in &names {
            query = query.bind(*n);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut hits = rows.iter().map(hit).collect::<Result<Vec<_>, _>>()?;
        if let Some(candidates) = &candidates {
            let rank: std::collections::HashMap<&str, (usize, f32)> = candidates
                .iter()
                .enumerate()
                .map(|(i, (n, s))| (n.as_str(), (i, *s)))
                .collect();
            for h in &mut hits {
                h.score = rank.get(h.name.as_str()).map(|(_, s)| *s);
            }
            if relevance {
                hits.sort_by_key(|h| rank.get(h.name.as_str()).map_or(usize::MAX, |(i, _)| *i));
                hits = hits
                    .into_iter()
                    .skip(v.offset as usize)
                    .take(fetch as usize)
                    .collect();
            }
        }
        let more = hits.len() as i64 > v.first;
        hits.truncate(v.first as usize);
        let next =
            (more && v.offset + v.first <= MAX_OFFSET).then(|| (v.offset + v.first).to_string());
        Ok(SearchPage {
            hits,
            next,
            sort: v.sort,
        })
    }
}

fn hit(r: &sqlx::any::AnyRow) -> Result<SearchHit, ProjectionError> {
    let tags: String = r.try_get(3)?;
    let category: String = r.try_get(4)?;
    let permissions: String = r.try_get(5)?;
    let ratings: i64 = r.try_get(8)?;
    let stars: i64 = r.try_get(9)?;
    Ok(SearchHit {
        name: r.try_get(0)?,
        version: r.try_get(1)?,
        description: r.try_get(2)?,
        tags: tags.split_whitespace().map(str::to_owned).collect(),
        category: (!category.is_empty()).then_some(category),
        permissions: permissions.split_whitespace().map(str::to_owned).collect(),
        installs: r.try_get(7)?,
        ratings,
        rating_average: average(ratings, stars),
        published_at: Utc
            .timestamp_micros(r.try_get(6)?)
            .single()
            .unwrap_or_default(),
        score: None,
    })
}
