//! Collections and the trending list over HTTP against the real server, on both backends: a
//! user collection made, retried under its key (the same collection), filled, renamed and
//! emptied by its owner only; a curated one by a platform admin, featured (never empty) and
//! listed on the home page; the typed refusals; a capsule installed and rated leading the
//! trending list with its score's terms; and the read model equal to its rebuild.

use agora_projections::capsule_collections::CapsuleCollectionProjection;
use agora_projections::rebuild::rebuild_and_compare;
use agora_tests::{both_backends, error_code, TestServer, TestStore};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use crate::capsule_search::{post, publish, CATALOGUE};
use crate::capsules::{get, http, make_key, register_key, server, settle};

async fn post_keyed(
    s: &TestServer,
    token: &str,
    path: &str,
    key: &str,
    body: Value,
) -> (u16, Value) {
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_owned()),
        ("idempotency-key", key.to_owned()),
    ];
    http(s, "POST", path, &headers, body.to_string().as_bytes()).await
}

fn ids(list: &Value) -> Vec<String> {
    list["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn collections_story(t: TestStore) {
    let (s, _blobs) = server(t).await;
    let alice = make_key(&s, "alice", "author", "acme").await;
    let rita = make_key(&s, "rita", "reviewer", "platform").await;
    let root = make_key(&s, "root", "admin", "platform").await;
    let boss = make_key(&s, "boss", "admin", "acme").await;
    let bob = make_key(&s, "bob", "client", "acme").await;
    let carol = make_key(&s, "carol", "client", "acme").await;
    let key = SigningKey::from_bytes(&[5; 32]);
    register_key(&s, &alice, &key).await;
    for e in &CATALOGUE[..3] {
        publish(&s, &alice, &rita, &key, e).await;
    }
    let (a, b) = (CATALOGUE[0].name, CATALOGUE[1].name);

    // 1. Bob's collection: made once under its key, filled, renamed; only bob edits it.
    let path = "/v1/marketplace/collections";
    let body = json!({"title": "My data tools", "description": "what I use weekly"});
    let (status, made) = post_keyed(&s, &bob, path, "c1", body.clone()).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["kind"], "user");
    assert_eq!(made["owner"], "acme/bob");
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("col-"), "{id}");
    let (status, again) = post_keyed(&s, &bob, path, "c1", body).await;
    assert_eq!((status, &again), (201, &made));
    let items = format!("{path}/{id}/capsules");
    for name in [a, b, a] {
        let (status, r) = post(&s, &bob, &items, json!({"name": name})).await;
        assert_eq!(status, 201, "{r}");
    }
    let (status, r) = post(&s, &bob, &items, json!({"name": "no-such-capsule"})).await;
    assert_eq!(status, 404, "{r}");
    let (status, r) = post(&s, &carol, &items, json!({"name": a})).await;
    assert_eq!(
        (status, r["error"]["reason"].as_str()),
        (403, Some("NotOwner")),
        "{r}"
    );
    let headers = [
        ("authorization", format!("Bearer {bob}")),
        ("content-type", "application/json".to_owned()),
    ];
    let (status, r) = http(
        &s,
        "PATCH",
        &format!("{path}/{id}"),
        &headers,
        json!({"title": "Data tools"}).to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["title"], "Data tools");
    assert_eq!(r["capsules"], json!([a, b]), "{r}");
    settle(&s).await;
    let (status, detail) = get(&s, &carol, &format!("{path}/{id}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["capsules"], json!([a, b]), "{detail}");
    assert_eq!(detail["capsuleCount"], 2);
    assert_eq!(detail["description"], "what I use weekly");

    // 2. Curated collections are platform admins'; featuring too, never an empty one.
    let (status, r) = post(
        &s,
        &boss,
        path,
        json!({"title": "Staff picks", "curated": true}),
    )
    .await;
    assert_eq!(
        (status, r["error"]["reason"].as_str()),
        (403, Some("AdminOnly")),
        "{r}"
    );
    let (status, picks) = post(
        &s,
        &root,
        path,
        json!({"title": "Staff picks", "curated": true}),
    )
    .await;
    assert_eq!(status, 201, "{picks}");
    let picks = picks["id"].as_str().unwrap().to_owned();
    let featured = format!("{path}/{picks}/featured");
    let (status, r) = post(&s, &root, &featured, json!({"featured": true})).await;
    assert_eq!(
        (status, r["error"]["reason"].as_str()),
        (409, Some("EmptyCollection")),
        "{r}"
    );
    let (status, r) = post(
        &s,
        &root,
        &format!("{path}/{picks}/capsules"),
        json!({"name": b}),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    let (status, r) = post(&s, &boss, &featured, json!({"featured": true})).await;
    assert_eq!(status, 403, "{r}");
    // The same request again would replay the stored refusal: a new key asks anew.
    let (status, r) =
        post_keyed(&s, &root, &featured, "feature-2", json!({"featured": true})).await;
    assert_eq!((status, r["featured"].as_bool()), (201, Some(true)), "{r}");
    settle(&s).await;
    let (_, home) = get(&s, &carol, &format!("{path}?featured=true")).await;
    assert_eq!(ids(&home), [picks.as_str()], "{home}");
    let (_, all) = get(&s, &carol, path).await;
    assert_eq!(ids(&all).len(), 2, "{all}");
    let (_, mine) = get(&s, &bob, &format!("{path}?mine=true")).await;
    assert_eq!(ids(&mine), [id.as_str()], "{mine}");
    let (_, curated) = get(&s, &bob, &format!("{path}?kind=curated")).await;
    assert_eq!(ids(&curated), [picks.as_str()], "{curated}");

    // 3. Typed refusals.
    for (token, p, body, code) in [
        (&bob, path.to_owned(), json!({"title": ""}), 400),
        (
            &bob,
            path.to_owned(),
            json!({"title": "x".repeat(101)}),
            400,
        ),
        (
            &bob,
            path.to_owned(),
            json!({"title": "t", "extra": 1}),
            400,
        ),
        (
            &bob,
            format!("{path}/not-an-id/capsules"),
            json!({"name": a}),
            400,
        ),
        (
            &bob,
            format!("{path}/col-00000000-0000-0000-0000-000000000000/capsules"),
            json!({"name": a}),
            404,
        ),
        (&bob, items.clone(), json!({"name": "Bad Name"}), 400),
    ] {
        let (status, r) = post(&s, token, &p, body).await;
        assert_eq!(status, code, "{p}: {r}");
        assert!(r["error"]["code"].is_string(), "{r}");
    }
    let (status, r) = get(&s, &bob, &format!("{path}?kind=mine")).await;
    assert_eq!(status, 400, "{r}");

    // 4. Removing empties bob's collection, which then leaves the public list.
    for name in [a, b] {
        let (status, r) = http(
            &s,
            "DELETE",
            &format!("{items}/{name}"),
            &[("authorization", format!("Bearer {bob}"))],
            b"",
        )
        .await;
        assert_eq!(status, 201, "{r}");
    }
    // The same request without a key would replay its first answer; a new key asks anew.
    let (status, r) = http(
        &s,
        "DELETE",
        &format!("{items}/{a}"),
        &[
            ("authorization", format!("Bearer {bob}")),
            ("idempotency-key", "remove-again".to_owned()),
        ],
        b"",
    )
    .await;
    assert_eq!(
        (status, r["error"]["reason"].as_str()),
        (409, Some("CapsuleNotInCollection")),
        "{r}"
    );
    settle(&s).await;
    let (_, all) = get(&s, &carol, path).await;
    assert_eq!(ids(&all), [picks.as_str()], "{all}");

    // 5. Trending: an install and a five-star rating put a capsule first.
    let c = CATALOGUE[2].name;
    let (status, r) = post(
        &s,
        &bob,
        &format!("/v1/marketplace/capsules/{c}/install"),
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    let (status, r) = post(
        &s,
        &bob,
        &format!("/v1/marketplace/capsules/{c}/reviews"),
        json!({"rating": 5}),
    )
    .await;
    assert_eq!(status, 201, "{r}");
    settle(&s).await;
    let (status, trending) = get(&s, &carol, "/v1/marketplace/trending").await;
    assert_eq!(status, 200, "{trending}");
    let top = &trending["trending"][0];
    assert_eq!(top["name"], c, "{trending}");
    assert_eq!(top["installsInWindow"], 1, "{trending}");
    assert_eq!(top["ratingsInWindow"], 1, "{trending}");
    assert_eq!(
        trending["trending"].as_array().map(Vec::len),
        Some(1),
        "{trending}"
    );

    // 6. GraphQL.
    let r = s
        .graphql(
            Some(&carol),
            "mutation { createCapsuleCollection(title: \"Carol's\", idempotencyKey: \"g1\") { id owner kind } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["createCapsuleCollection"]["owner"], "acme/carol",
        "{r}"
    );
    let r = s
        .graphql(
            Some(&carol),
            "{ capsuleCollections(featured: true) { id title capsuleCount } trendingCapsules { name score } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["capsuleCollections"][0]["id"],
        picks.as_str(),
        "{r}"
    );
    assert_eq!(r["data"]["trendingCapsules"][0]["name"], c, "{r}");
    let r = s
        .graphql(
            Some(&boss),
            "mutation($id: String!) { featureCapsuleCollection(id: $id, featured: false, idempotencyKey: \"f\") { featured } }",
            json!({"id": picks}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");

    // 7. The read model equals its rebuild.
    settle(&s).await;
    let cmp = rebuild_and_compare(
        &s.store.store,
        &CapsuleCollectionProjection::default(),
        false,
    )
    .await
    .unwrap();
    assert!(cmp.is_equal(), "{cmp:#?}");
}
both_backends!(
    capsule_collections_curated_featured_and_trending,
    collections_story
);
