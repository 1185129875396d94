//! Catalogue search over HTTP against the real server, on both backends: capsules found by
//! misspelled queries (REST and GraphQL), filters by category, permission and minimum rating,
//! sorts by popularity, rating and recency, pages that cover every hit once, a yanked capsule
//! and an unpublished one never listed, every bad parameter a typed 400, the documents read
//! model equal to its rebuild and a fresh index answering as the live one.

use agora_projections::capsule_search::{CapsuleSearch, CapsuleSearchProjection, SearchRequest};
use agora_projections::rebuild::rebuild_and_compare;
use agora_tests::{both_backends, error_code, TestServer, TestStore};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use crate::capsules::{
    envelope, get, http, make_key, register_key, server, settle, submit, tar_gz,
};

pub(crate) struct Entry {
    pub(crate) name: &'static str,
    category: &'static str,
    tags: &'static str,
    description: &'static str,
    permission: &'static str,
}

pub(crate) const CATALOGUE: &[Entry] = &[
    Entry {
        name: "data-pipeline-builder",
        category: "Data Engineering",
        tags: "etl, pandas, sql",
        description: "Build data pipelines with a drag-and-drop editor",
        permission: "database.read",
    },
    Entry {
        name: "log-line-parser",
        category: "DevOps",
        tags: "logs, parsing",
        description: "Turns raw service logs into structured JSON records",
        permission: "filesystem.read",
    },
    Entry {
        name: "secret-pattern-scanner",
        category: "Security",
        tags: "secrets, audit",
        description: "Finds leaked credentials and API tokens in repositories",
        permission: "filesystem.read",
    },
    Entry {
        name: "webhook-relay",
        category: "Integration",
        tags: "webhooks, http",
        description: "Forwards incoming webhooks to chat channels",
        permission: "network.egress",
    },
];

fn manifest(e: &Entry, version: &str) -> String {
    format!(
        "apiVersion: soma.dev/v1
kind: TaskCapsule
metadata:
  name: {name}
  version: {version}
  author: community-user-123
  category: {category}
  tags: [{tags}]
spec:
  description: {description}
  permissions: [{permission}]
  tokenEstimate:
    total: 500
",
        name = e.name,
        category = e.category,
        tags = e.tags,
        description = e.description,
        permission = e.permission,
    )
}

pub(crate) async fn publish(
    s: &TestServer,
    author: &str,
    reviewer: &str,
    key: &SigningKey,
    e: &Entry,
) {
    let m = manifest(e, "1.0.0");
    let b = tar_gz(&[(
        "capsule/main.py",
        format!("print('{}')\n", e.name).as_bytes(),
    )]);
    let sig = envelope(key, e.name, "1.0.0", &m, &b);
    let (status, body) = submit(s, author, &m, &b, Some(&sig)).await;
    assert_eq!(status, 201, "{}: {body}", e.name);
    if body["status"] == "queued" {
        let r = s
            .graphql(
                Some(reviewer),
                "mutation($n: String!, $s: String!, $k: String) { reviewCapsuleVersion(name: $n, version: \"1.0.0\", decision: \"approve\", notes: \"ok\", riskScore: $s, idempotencyKey: $k) { status } }",
                json!({"n": e.name, "s": body["riskScore"], "k": format!("review-{}", e.name)}),
            )
            .await;
        assert_eq!(
            r["data"]["reviewCapsuleVersion"]["status"], "published",
            "{r}"
        );
    }
}

pub(crate) async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_owned()),
    ];
    http(s, "POST", path, &headers, body.to_string().as_bytes()).await
}

/// The names a search answers, in order (asserting it succeeded).
async fn names(s: &TestServer, token: &str, query: &str) -> Vec<String> {
    let (status, body) = get(s, token, &format!("/v1/marketplace/capsules{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    body["capsules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn search_story(t: TestStore) {
    let (s, _blobs) = server(t).await;
    let alice = make_key(&s, "alice", "author", "acme").await;
    let rita = make_key(&s, "rita", "reviewer", "platform").await;
    let bob = make_key(&s, "bob", "client", "acme").await;
    let key = SigningKey::from_bytes(&[9; 32]);
    register_key(&s, &alice, &key).await;
    for e in CATALOGUE {
        publish(&s, &alice, &rita, &key, e).await;
    }
    // Submitted and queued, never approved: not listed.
    let queued = Entry {
        name: "pipeline-exfiltrator",
        category: "Data Engineering",
        tags: "pipeline",
        description: "Copies data pipelines somewhere else",
        permission: "network.egress",
    };
    let m = manifest(&queued, "1.0.0");
    let b = tar_gz(&[("capsule/main.py", b"print('x')\n")]);
    let (status, body) = submit(&s, &alice, &m, &b, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("queued")),
        "{body}"
    );
    settle(&s).await;

    // 1. Misspelled queries find the capsule first.
    for (q, want) in [
        ("pipline", "data-pipeline-builder"),
        ("data%20pipelnes", "data-pipeline-builder"),
        ("scaner%20secrets", "secret-pattern-scanner"),
        ("webhok", "webhook-relay"),
        ("loggs%20parsr", "log-line-parser"),
        ("credentals", "secret-pattern-scanner"),
        ("devops", "log-line-parser"),
    ] {
        let found = names(&s, &bob, &format!("?q={q}")).await;
        assert_eq!(
            found.first().map(String::as_str),
            Some(want),
            "q={q}: {found:?}"
        );
        assert!(
            !found.contains(&"pipeline-exfiltrator".to_owned()),
            "{found:?}"
        );
    }
    assert!(names(&s, &bob, "?q=zzzzqqqq").await.is_empty());
    let r = s
        .graphql(
            Some(&bob),
            "{ searchCapsules(q: \"pipelnie buidler\") { hits { name version category tags permissions score } sort } }",
            json!({}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let hit = &r["data"]["searchCapsules"]["hits"][0];
    assert_eq!(hit["name"], "data-pipeline-builder", "{r}");
    assert_eq!(hit["tags"], json!(["etl", "pandas", "sql"]), "{r}");
    assert_eq!(r["data"]["searchCapsules"]["sort"], "RELEVANCE", "{r}");

    // 2. Filters.
    assert_eq!(
        names(&s, &bob, "?category=devops").await,
        ["log-line-parser"]
    );
    assert_eq!(
        names(&s, &bob, "?permission=network.egress").await,
        ["webhook-relay"]
    );
    assert_eq!(
        names(&s, &bob, "?q=pipeline&category=Security").await,
        Vec::<String>::new()
    );
    let mut all = names(&s, &bob, "?sort=name").await;
    assert_eq!(
        all,
        [
            "data-pipeline-builder",
            "log-line-parser",
            "secret-pattern-scanner",
            "webhook-relay"
        ]
    );

    // 3. Popularity and rating come from installs and reviews.
    let (status, body) = post(
        &s,
        &bob,
        "/v1/marketplace/capsules/secret-pattern-scanner/install",
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(
        &s,
        &bob,
        "/v1/marketplace/capsules/secret-pattern-scanner/reviews",
        json!({"rating": 5, "review": "Caught a token in our history"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    settle(&s).await;
    assert_eq!(
        names(&s, &bob, "?sort=popularity")
            .await
            .first()
            .map(String::as_str),
        Some("secret-pattern-scanner")
    );
    assert_eq!(
        names(&s, &bob, "?minRating=4.5").await,
        ["secret-pattern-scanner"]
    );
    let (status, body) = get(&s, &bob, "/v1/marketplace/capsules?sort=rating&first=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["capsules"][0]["averageRating"], "5.00", "{body}");
    assert_eq!(body["capsules"][0]["installs"], 1, "{body}");
    assert_eq!(body["sort"], "rating", "{body}");
    let recent = names(&s, &bob, "?sort=recency").await;
    assert_eq!(
        recent.first().map(String::as_str),
        Some("webhook-relay"),
        "{recent:?}"
    );

    // 4. Pages cover every hit once.
    let (status, page1) = get(&s, &bob, "/v1/marketplace/capsules?sort=name&first=3").await;
    assert_eq!(status, 200, "{page1}");
    let next = page1["next"].as_str().expect("a next page").to_owned();
    let (_, page2) = get(
        &s,
        &bob,
        &format!("/v1/marketplace/capsules?sort=name&first=3&after={next}"),
    )
    .await;
    assert!(page2["next"].is_null(), "{page2}");
    let paged: Vec<&str> = page1["capsules"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["capsules"].as_array().unwrap())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(paged, all);

    // 5. Bad parameters are typed errors.
    let long = "a".repeat(201);
    for query in [
        "?permission=root.all".to_owned(),
        "?sort=loudest".to_owned(),
        "?minRating=7".to_owned(),
        "?minRating=abc".to_owned(),
        "?first=0".to_owned(),
        "?after=-3".to_owned(),
        format!("?q={long}"),
    ] {
        let (status, body) = get(&s, &bob, &format!("/v1/marketplace/capsules{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], "BAD_USER_INPUT", "{query}: {body}");
    }
    let r = s
        .graphql(
            Some(&bob),
            "{ searchCapsules(minRating: \"9\") { next } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let (status, _) = get(&s, "", "/v1/marketplace/capsules?q=pipeline").await;
    assert_eq!(status, 401);

    // 6. A yanked capsule leaves the catalogue.
    let r = s
        .graphql(
            Some(&alice),
            "mutation { yankCapsuleVersion(name: \"webhook-relay\", version: \"1.0.0\", reason: \"broken\", idempotencyKey: \"y1\") { status } }",
            json!({}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    settle(&s).await;
    assert!(names(&s, &bob, "?q=webhook").await.is_empty());
    all.retain(|n| n != "webhook-relay");
    assert_eq!(names(&s, &bob, "?sort=name").await, all);

    // 7. The documents equal their rebuild, and a fresh index answers as the live one.
    let cmp = rebuild_and_compare(&s.store.store, &CapsuleSearchProjection::default(), false)
        .await
        .unwrap();
    assert!(cmp.is_equal(), "{cmp:#?}");
    let fresh = CapsuleSearch::new(s.store.store.read_models().clone()).unwrap();
    for q in ["pipline", "scaner secrets", "credentals", "logs"] {
        let request = SearchRequest {
            q: Some(q.to_owned()),
            ..SearchRequest::default()
        };
        let page = fresh.search(&request).await.unwrap();
        let fresh_names: Vec<String> = page.hits.iter().map(|h| h.name.clone()).collect();
        let live = names(&s, &bob, &format!("?q={}", q.replace(' ', "%20"))).await;
        assert_eq!(fresh_names, live, "q={q}");
    }
    let (status, text) = s.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("marketplace_search_queries_total{outcome=\"ok\"}"),
        "{text}"
    );
}
both_backends!(capsules_found_by_misspelled_search, search_story);

async fn demo_catalogue_story(t: TestStore) {
    use agora_api::capsules::demo::ensure_demo_catalogue;
    let (s, _blobs) = server(t).await;
    let service = s.state.capsules.service.clone();
    let settle = || s.state.market.settle_reads();
    let first = ensure_demo_catalogue(&service, settle).await.unwrap();
    assert!(first.submitted >= 20, "{first:?}");
    assert!(first.published >= 15, "{first:?}");
    assert_eq!(first.submitted, first.published + first.queued, "{first:?}");
    // A second start finds them all and submits nothing.
    let before = agora_tests::read_all(&s.store.store).await.len();
    let again = ensure_demo_catalogue(&service, settle).await.unwrap();
    assert_eq!(again.already_there, first.submitted, "{again:?}");
    assert_eq!(again.submitted, 0);
    assert_eq!(agora_tests::read_all(&s.store.store).await.len(), before);
    settle().await;
    let bob = make_key(&s, "bob", "client", "acme").await;
    let all = names(&s, &bob, "?first=100").await;
    assert_eq!(all.len(), first.published, "{all:?}");
    let found = names(&s, &bob, "?q=secrt%20scannr").await;
    assert_eq!(
        found.first().map(String::as_str),
        Some("secret-pattern-scanner"),
        "{found:?}"
    );
    let rita = make_key(&s, "rita", "reviewer", "platform").await;
    let queue = s
        .graphql(
            Some(&rita),
            "{ reviewQueue(first: 100) { version } }",
            json!({}),
        )
        .await;
    assert_eq!(
        queue["data"]["reviewQueue"].as_array().map(Vec::len),
        Some(first.queued),
        "{queue}"
    );
}
both_backends!(demo_catalogue_loads_once, demo_catalogue_story);
