//! Every HTTP error is typed JSON, as docs/API.md promises: an unknown route (404), a wrong
//! method (405), a bad query string or body that an extractor refused (400), an oversized body
//! (413, naming the limit). Handlers already answer `{"error": {"code", "message"}}`; this layer
//! rewrites what axum's extractors and fallbacks answer in plain text.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Longest plain-text error kept as the message (axum's rejections are short).
const MAX_MESSAGE_BYTES: usize = 1_024;

/// The body limit of the route at `path`, for the 413 message.
fn body_limit(path: &str) -> usize {
    if path.starts_with("/npe/") {
        crate::logmarket::rest::MAX_REST_BODY_BYTES
    } else if path.starts_with("/graphql") {
        crate::app::MAX_BODY_BYTES
    } else {
        crate::lapverse::rest::MAX_BODY_BYTES
    }
}

fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "BAD_USER_INPUT",
        StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::TOO_MANY_REQUESTS => "THROTTLED",
        _ => "INTERNAL",
    }
}

/// `{"error": {"code", "message"}}` with `status`.
pub fn json_error(status: StatusCode, message: String) -> Response {
    let body = json!({"error": {"code": code_of(status), "message": message}});
    (status, axum::Json(body)).into_response()
}

/// The fallback of unknown routes.
pub async fn not_found(request: Request) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

/// Rewrites a non-JSON error response as typed JSON.
pub async fn typed_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is over the limit of {} bytes for this path",
            body_limit(&path)
        ),
        StatusCode::METHOD_NOT_ALLOWED => format!("{path} does not take this method"),
        s if s.is_server_error() => "internal error".to_owned(),
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_owned(),
        _ => text,
    };
    let mut out = json_error(status, message);
    // Keep what tells the client how to retry or which methods exist.
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}
