//! GraphQL over HTTP: `POST /graphql`, and an offline GraphiQL-style page at `/` and `/graphiql`.

pub mod auth;
pub mod error;
pub mod idempotency;
pub mod money;
pub mod schema;

use async_graphql::{EmptySubscription, Schema};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Html;
use uuid::Uuid;

use crate::app::AppState;
use auth::Principal;
use error::ApiError;
use schema::{MutationRoot, QueryRoot};

pub type AgoraSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most complex query accepted (async-graphql's field count with connection multipliers).
pub const MAX_COMPLEXITY: usize = 1_000;

/// Per-request facts resolvers read.
pub struct RequestContext {
    pub principal: Result<Principal, ApiError>,
    pub idempotency_key: Option<String>,
    pub correlation_id: Uuid,
}

/// The schema; the application state comes with each request.
pub fn build_schema() -> AgoraSchema {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn graphql_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let principal = state
        .keys
        .authenticate(header_str(&headers, header::AUTHORIZATION.as_str()))
        .await;
    let correlation_id = header_str(&headers, "x-correlation-id")
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7);
    let context = RequestContext {
        principal,
        idempotency_key: header_str(&headers, "idempotency-key").map(str::to_string),
        correlation_id,
    };
    let schema = state.schema.clone();
    let mut response = schema
        .execute(request.into_inner().data(state).data(context))
        .await;
    for error in &mut response.errors {
        // Parse and validation errors (a malformed query, a Money given as a number, a missing
        // argument) come from async-graphql without a code: they are the client's input.
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
    response.into()
}

/// A small query page served from the binary: works with no internet access.
pub async fn graphiql() -> Html<&'static str> {
    Html(include_str!("graphiql.html"))
}
