//! GraphQL subscriptions are bounded per API key and end when their key stops being valid.

use std::time::Duration;

use agora_api::graphql::auth::{NewKey, MAX_SUBSCRIPTIONS_PER_KEY};
use agora_api::graphql::schema::SUBSCRIPTION_RECHECK_MS;
use agora_domain::access::Role;
use agora_tests::{both_backends, TestServer, TestStore};
use futures::StreamExt;

use crate::common::meta;

const EVENTS: &str = "subscription { events { aggregateId } }";
const ANALYSES: &str = "subscription { logAnalyses { id } }";

async fn issue(s: &TestServer, key_id: &str, role: Role) -> String {
    let key = NewKey {
        key_id,
        principal: key_id,
        role,
        tenant: "platform",
        expires_at: None,
    };
    s.state.keys.issue(&key, &meta()).await.unwrap()
}

async fn open(
    s: &TestServer,
    token: &str,
    query: &str,
) -> futures::stream::BoxStream<'static, async_graphql::Response> {
    let req = async_graphql::Request::new(query)
        .data(s.state.clone())
        .data(s.request_context(token).await);
    s.state.schema.execute_stream(req).boxed()
}

fn code(r: &async_graphql::Response) -> Option<String> {
    r.errors.first().and_then(|e| {
        e.extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .map(|v| v.to_string().trim_matches('"').to_string())
    })
}

/// Polls a stream long enough for its resolver to start; `None` while it is open and quiet.
async fn first_within(
    stream: &mut futures::stream::BoxStream<'static, async_graphql::Response>,
    ms: u64,
) -> Option<Option<async_graphql::Response>> {
    tokio::time::timeout(Duration::from_millis(ms), stream.next())
        .await
        .ok()
}

/// A stream polled by a task of its own (so its resolver runs however busy the test is); its
/// items arrive on the receiver. Aborting the task drops the stream.
fn keep_polling(
    mut stream: futures::stream::BoxStream<'static, async_graphql::Response>,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<async_graphql::Response>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    (task, rx)
}

/// Waits (generously) until key `key_id` holds `n` open subscriptions in the server.
async fn wait_open(s: &TestServer, key_id: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while s.state.keys.open_subscriptions(key_id) != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key_id} never held {n} subscriptions (holds {})",
            s.state.keys.open_subscriptions(key_id)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn per_key_limit(t: TestStore) {
    let s = TestServer::start(t).await;
    let token = issue(&s, "watcher", Role::Admin).await;
    let mut open_streams = Vec::new();
    for i in 0..MAX_SUBSCRIPTIONS_PER_KEY {
        let query = if i % 2 == 0 { EVENTS } else { ANALYSES };
        open_streams.push(keep_polling(open(&s, &token, query).await));
        wait_open(&s, "watcher", i + 1).await;
    }
    let mut over = open(&s, &token, EVENTS).await;
    let refused = tokio::time::timeout(Duration::from_secs(60), over.next())
        .await
        .expect("an answer")
        .expect("an answer");
    assert_eq!(code(&refused).as_deref(), Some("THROTTLED"), "{refused:?}");
    assert_eq!(
        s.state.keys.open_subscriptions("watcher"),
        MAX_SUBSCRIPTIONS_PER_KEY
    );
    // Another key is not affected, and a closed subscription frees its slot.
    let other = issue(&s, "other", Role::Auditor).await;
    let (_theirs, mut their_items) = keep_polling(open(&s, &other, EVENTS).await);
    wait_open(&s, "other", 1).await;
    if let Ok(item) = their_items.try_recv() {
        assert!(item.errors.is_empty(), "{item:?}");
    }
    let (task, _) = open_streams.pop().expect("an open stream");
    task.abort();
    wait_open(&s, "watcher", MAX_SUBSCRIPTIONS_PER_KEY - 1).await;
    let (_again, mut again_items) = keep_polling(open(&s, &token, ANALYSES).await);
    wait_open(&s, "watcher", MAX_SUBSCRIPTIONS_PER_KEY).await;
    if let Ok(item) = again_items.try_recv() {
        assert!(item.errors.is_empty(), "{item:?}");
    }
}
both_backends!(subscriptions_per_key_are_limited, per_key_limit);

async fn revoked_key_ends_streams(t: TestStore) {
    let s = TestServer::start(t).await;
    let token = issue(&s, "leaver", Role::Admin).await;
    let mut events = open(&s, &token, EVENTS).await;
    let mut analyses = open(&s, &token, ANALYSES).await;
    // Before the revocation the streams are open and error-free. The events stream may show
    // the key's own issue event: on PostgreSQL the readable log can trail an open transaction
    // of another test, so the subscription may start before that event and deliver it.
    for stream in [&mut events, &mut analyses] {
        match first_within(stream, 100).await {
            None => {}
            Some(Some(item)) => assert!(item.errors.is_empty(), "{item:?}"),
            Some(None) => panic!("a stream ended before the key was revoked"),
        }
    }
    s.state.keys.revoke("leaver", &meta()).await.unwrap();
    let within = 3 * SUBSCRIPTION_RECHECK_MS + 2_000;
    for stream in [&mut events, &mut analyses] {
        // The events stream may first show the revocation itself; then the key check ends it.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(within);
        let ended = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let item = first_within(stream, left.as_millis() as u64)
                .await
                .flatten()
                .expect("the stream answers after the key is revoked");
            if !item.errors.is_empty() {
                break item;
            }
        };
        assert_eq!(
            code(&ended).as_deref(),
            Some("UNAUTHENTICATED"),
            "{ended:?}"
        );
        assert!(first_within(stream, 1_000).await.expect("ends").is_none());
    }
}
both_backends!(
    subscriptions_end_when_their_key_is_revoked,
    revoked_key_ends_streams
);
