//! GraphQL over HTTP: `POST /graphql`, and an offline GraphiQL-style page at `/` and `/graphiql`.

pub mod auth;
pub mod error;
pub mod guard;
pub mod idempotency;
pub mod money;
pub mod parked;
pub mod schema;

use async_graphql::{Data, MergedObject, MergedSubscription, Schema};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Html;
use axum::response::Response;
use uuid::Uuid;

use crate::app::AppState;
use crate::capsules::gql::{CapsuleMutation, CapsuleQuery};
use crate::capsules::gql_collections::{CapsuleCollectionMutation, CapsuleCollectionQuery};
use crate::capsules::gql_installs::{CapsuleInstallMutation, CapsuleInstallQuery};
use crate::capsules::gql_reviews::{CapsuleReviewMutation, CapsuleReviewQuery};
use crate::capsules::gql_search::CapsuleSearchQuery;
use crate::executions::gql::ExecutionMutation;
use crate::lapverse::gql::{LapVerseMutation, LapVerseQuery};
use crate::logmarket::gql::{LogMarketMutation, LogMarketQuery, LogMarketSubscription};
use auth::Principal;
use error::ApiError;
use parked::{ParkedMutation, ParkedQuery};
use schema::{MutationRoot, QueryRoot, SubscriptionRoot};

/// Every query: the core (identity, events, ledger) and the log marketplace.
#[derive(MergedObject, Default)]
pub struct Query(
    QueryRoot,
    LogMarketQuery,
    LapVerseQuery,
    ParkedQuery,
    CapsuleQuery,
    CapsuleInstallQuery,
    CapsuleReviewQuery,
    CapsuleSearchQuery,
    CapsuleCollectionQuery,
);

/// Every mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(
    MutationRoot,
    LogMarketMutation,
    LapVerseMutation,
    ParkedMutation,
    CapsuleMutation,
    CapsuleInstallMutation,
    CapsuleReviewMutation,
    CapsuleCollectionMutation,
    ExecutionMutation,
);

/// Every subscription.
#[derive(MergedSubscription, Default)]
pub struct Subscription(SubscriptionRoot, LogMarketSubscription);

pub type AgoraSchema = Schema<Query, Mutation, Subscription>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most complex query accepted (async-graphql's field count with connection multipliers).
pub const MAX_COMPLEXITY: usize = 1_000;

/// Most directives on one field.
pub const MAX_DIRECTIVES: usize = 4;

/// Per-request facts resolvers read.
pub struct RequestContext {
    pub principal: Result<Principal, ApiError>,
    pub idempotency_key: Option<String>,
    pub correlation_id: Uuid,
}

/// The schema; the application state comes with each request.
pub fn build_schema() -> AgoraSchema {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .limit_recursive_depth(MAX_DEPTH * 4)
    .limit_directives(MAX_DIRECTIVES)
    .finish()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `429 Too Many Requests` with `Retry-After` and a GraphQL error coded `THROTTLED`.
fn throttled(retry_after: std::time::Duration) -> Response {
    use async_graphql::ErrorExtensions;
    use axum::response::IntoResponse;
    let error = ApiError::Throttled
        .extend()
        .into_server_error(Default::default());
    let body = async_graphql::Response::from_errors(vec![error]);
    let seconds = retry_after.as_secs().max(1).to_string();
    (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, seconds)],
        axum::Json(body),
    )
        .into_response()
}

/// A GraphQL error response with `code`, without running anything.
fn refused(status: axum::http::StatusCode, error: ApiError) -> Response {
    use async_graphql::ErrorExtensions;
    use axum::response::IntoResponse;
    let body = async_graphql::Response::from_errors(vec![error
        .extend()
        .into_server_error(Default::default())]);
    (status, axum::Json(body)).into_response()
}

/// The request body as one GraphQL request, with its document checked for size and expansion
/// (before authentication: a costly document is refused before anything else costs anything).
fn parse_request(
    body: &[u8],
) -> Result<async_graphql::Request, (axum::http::StatusCode, ApiError)> {
    use axum::http::StatusCode;
    let mut request: async_graphql::Request = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            ApiError::BadUserInput(format!(
                "the body must be a JSON GraphQL request {{\"query\", \"variables\"?, \
                 \"operationName\"?}}: {}",
                e.classify_message()
            )),
        )
    })?;
    guard::check_request(&mut request).map_err(|e| {
        let status = match e {
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, e)
    })?;
    Ok(request)
}

/// What went wrong in a JSON body, without echoing it.
trait ClassifyMessage {
    fn classify_message(&self) -> String;
}

impl ClassifyMessage for serde_json::Error {
    fn classify_message(&self) -> String {
        use serde_json::error::Category;
        let what = match self.classify() {
            Category::Syntax => "invalid JSON",
            Category::Eof => "the JSON ends early",
            Category::Data => "a field has the wrong shape",
            Category::Io => "the body could not be read",
        };
        format!("{what} at line {} column {}", self.line(), self.column())
    }
}

pub async fn graphql_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match parse_request(&body) {
        Ok(r) => r,
        Err((status, error)) => return refused(status, error),
    };
    let principal = state
        .keys
        .authenticate(header_str(&headers, header::AUTHORIZATION.as_str()))
        .await;
    if let Ok(p) = &principal {
        match state.rate_limiter.check(&p.key_id).await {
            Ok(()) => {}
            Err(crate::ratelimit::LimitError::Exceeded { retry_after }) => {
                return throttled(retry_after)
            }
            Err(e) => {
                return refused(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    ApiError::internal("rate limit counter", e),
                )
            }
        }
    }
    let correlation_id = header_str(&headers, "x-correlation-id")
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7);
    let context = RequestContext {
        principal,
        idempotency_key: header_str(&headers, "idempotency-key").map(str::to_string),
        correlation_id,
    };
    let schema = state.schema.clone();
    let mut response = schema.execute(request.data(state).data(context)).await;
    for error in &mut response.errors {
        // Parse and validation errors (a malformed query, a Money given as a number, a missing
        // argument) come from async-graphql without a code: they are the client's input.
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
    axum::response::IntoResponse::into_response(GraphQLResponse::from(response))
}

/// `GET /graphql/ws`: subscriptions over graphql-transport-ws (and the older graphql-ws). The
/// API key comes in the `connection_init` payload: `{"Authorization": "Bearer <key>"}`.
pub async fn ws_handler(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let schema = state.schema.clone();
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let mut data = Data::default();
            data.insert(state.clone());
            GraphQLWebSocket::new(socket, schema, protocol)
                .with_data(data)
                .on_connection_init(move |payload| async move {
                    let header = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
                        .map(str::to_string);
                    let principal = state.keys.authenticate(header.as_deref()).await;
                    let mut data = Data::default();
                    data.insert(RequestContext {
                        principal,
                        idempotency_key: None,
                        correlation_id: Uuid::now_v7(),
                    });
                    Ok(data)
                })
                .serve()
        })
}

/// A small query page served from the binary: works with no internet access.
pub async fn graphiql() -> Html<&'static str> {
    Html(include_str!("graphiql.html"))
}
