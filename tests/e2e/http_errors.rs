//! Typed errors everywhere, on the real server: unknown routes, wrong methods, bad query
//! strings, oversized bodies and invalid JSON on `/graphql` answer `{"error": {"code",
//! "message"}}` (GraphQL errors with `extensions.code` on `/graphql`), and a document whose
//! fragments expand exponentially is refused before authentication.

use agora_tests::{both_backends, error_code, http_request_full, TestServer, TestStore};
use serde_json::Value;

async fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, Value) {
    let mut headers = vec![("content-type", "application/json".to_string())];
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    let (status, head, text) = http_request_full(s.addr, method, path, &headers, body).await;
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, head, json)
}

async fn typed_errors(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = s.admin_token.clone();
    let (status, _, body) = call(&s, "GET", "/no/such/route", None, "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let (status, head, body) = call(&s, "DELETE", "/api/v2/tasks", Some(&admin), "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("METHOD_NOT_ALLOWED")),
        "{body}"
    );
    assert!(head.contains("allow: post"), "{head}");
    let (status, _, body) = call(
        &s,
        "GET",
        "/npe/log-marketplace/top-earners?limit=abc",
        Some(&admin),
        "",
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    let big = format!("{{\"log\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let (status, _, body) = call(&s, "POST", "/api/v2/tasks", Some(&admin), &big).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&agora_api::lapverse::rest::MAX_BODY_BYTES.to_string()),
        "{message}"
    );
    // Invalid JSON on /graphql: a GraphQL error with a code, no Rust debug text.
    let (status, _, body) = call(&s, "POST", "/graphql", Some(&admin), "{not json").await;
    assert_eq!(
        (status, error_code(&body)),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the body must be a JSON GraphQL request"),
        "{message}"
    );
    assert!(
        !message.contains("Error(") && !message.contains("{ "),
        "{message}"
    );
}
both_backends!(every_http_error_is_typed_json, typed_errors);

/// ~1 KB of fragments, each spreading the previous one twice (2⁴⁰ fields expanded), sent
/// without a key: refused at once with BAD_USER_INPUT, and the server keeps answering.
async fn fragment_bomb(t: TestStore) {
    let s = TestServer::start(t).await;
    let mut q = String::from("query { ...F0 }\n");
    for i in 0..40 {
        q.push_str(&format!(
            "fragment F{i} on Query {{ ...F{n} ...F{n} }}\n",
            n = i + 1
        ));
    }
    q.push_str("fragment F40 on Query { me { role } }\n");
    let body = serde_json::json!({ "query": q });
    let (status, _, r) = call(&s, "POST", "/graphql", None, &body.to_string()).await;
    assert_eq!(
        (status, error_code(&r)),
        (400, Some("BAD_USER_INPUT")),
        "{r}"
    );
    let r = s
        .graphql(
            Some(&s.admin_token),
            "{ me { role } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r["data"]["me"]["role"], "admin");
}
both_backends!(
    exponential_fragments_are_refused_before_authentication,
    fragment_bomb
);
