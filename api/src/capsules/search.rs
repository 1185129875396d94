//! Catalogue search, shared by REST (`GET /v1/marketplace/capsules`) and GraphQL
//! (`searchCapsules`): the request goes to [`agora_projections::capsule_search`] (a fuzzy
//! full-text index over the published capsules, filters and sorts in SQL); every search counts
//! in `marketplace_search_queries_total`.

use agora_projections::capsule_search::{SearchError, SearchHit, SearchPage, SearchRequest};
use serde_json::{json, Value};

use super::read_error;
use crate::app::AppState;
use crate::graphql::error::ApiError;

/// Runs a search for an authenticated caller; a bad parameter is `BAD_USER_INPUT`.
pub async fn run(s: &AppState, request: &SearchRequest) -> Result<SearchPage, ApiError> {
    let page = s
        .capsules
        .search
        .search(request)
        .await
        .map_err(|e| match e {
            SearchError::BadInput(m) => ApiError::BadUserInput(m),
            SearchError::Store(e) => read_error(e),
        });
    s.capsules.metrics.searched(page.is_ok());
    page
}

pub fn hit_json(h: &SearchHit) -> Value {
    json!({
        "name": h.name,
        "version": h.version,
        "description": h.description,
        "category": h.category,
        "tags": h.tags,
        "permissions": h.permissions,
        "installs": h.installs,
        "ratings": h.ratings,
        "averageRating": h.rating_average.to_string(),
        "publishedAt": h.published_at,
        "score": h.score,
    })
}
