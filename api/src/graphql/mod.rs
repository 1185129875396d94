//! GraphQL over HTTP: `POST /graphql`, and an offline GraphiQL-style page at `/` and `/graphiql`.

pub mod auth;
pub mod error;
pub mod idempotency;
pub mod money;
pub mod parked;
pub mod schema;

use async_graphql::{Data, MergedObject, MergedSubscription, Schema};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Html;
use axum::response::Response;
use uuid::Uuid;

use crate::app::AppState;
use crate::lapverse::gql::{LapVerseMutation, LapVerseQuery};
use crate::logmarket::gql::{LogMarketMutation, LogMarketQuery, LogMarketSubscription};
use auth::Principal;
use error::ApiError;
use parked::{ParkedMutation, ParkedQuery};
use schema::{MutationRoot, QueryRoot, SubscriptionRoot};

/// Every query: the core (identity, events, ledger) and the log marketplace.
#[derive(MergedObject, Default)]
pub struct Query(QueryRoot, LogMarketQuery, LapVerseQuery, ParkedQuery);

/// Every mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(
    MutationRoot,
    LogMarketMutation,
    LapVerseMutation,
    ParkedMutation,
);

/// Every subscription.
#[derive(MergedSubscription, Default)]
pub struct Subscription(SubscriptionRoot, LogMarketSubscription);

pub type AgoraSchema = Schema<Query, Mutation, Subscription>;

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
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
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

pub async fn graphql_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let principal = state
        .keys
        .authenticate(header_str(&headers, header::AUTHORIZATION.as_str()))
        .await;
    if let Ok(p) = &principal {
        if let Err(retry_after) = state
            .rate_limiter
            .check(&p.key_id, std::time::Instant::now())
        {
            return throttled(retry_after);
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
