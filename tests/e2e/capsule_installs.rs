//! Installs over HTTP against the real server, on both backends: a capsule found by a
//! misspelled search, installed with its capsule dependencies resolved (a runtime package like
//! `pandas` left to the runtime), the install repeated without a key answered the same, a
//! dangerous permission refused until approved, a breaking version told to every installation
//! of an older one (the one installed before the publication and the one after), an upgrade, a
//! yanked version refused, a dependency cycle named, ratings and reviews (installers only, near
//! duplicates refused, votes, a moderator hiding one out of the rating), an uninstall, tenant
//! installs for admins only, and the installations read model equal to its rebuild.

use std::time::{Duration, Instant};

use agora_projections::capsule_installs::CapsuleInstallProjection;
use agora_projections::capsule_reviews::CapsuleReviewProjection;
use agora_projections::rebuild::rebuild_and_compare;
use agora_tests::{both_backends, error_code, read_all, TestServer, TestStore};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

use crate::capsules::{
    envelope, get, http, make_key, register_key, server, settle, submit, tar_gz,
};

fn manifest(name: &str, version: &str, permissions: &str, dependencies: &[&str]) -> String {
    let deps = if dependencies.is_empty() {
        String::new()
    } else {
        format!(
            "  dependencies:\n{}",
            dependencies
                .iter()
                .map(|d| format!("    - \"{d}\"\n"))
                .collect::<String>()
        )
    };
    format!(
        "apiVersion: soma.dev/v1
kind: TaskCapsule
metadata:
  name: {name}
  version: {version}
  author: community-user-123
  category: Data Engineering
  tags: [csv]
spec:
  description: Reads CSV files for the {name} pipeline
  permissions: [{permissions}]
{deps}  tokenEstimate:
    planning: 100
    execution: 400
    total: 500
  inputs:
    - name: path
      type: file
      required: true
  outputs:
    - name: report
      type: json
"
    )
}

/// Who publishes in the story: the author (with the signing key) and the reviewer.
struct Publisher<'a> {
    s: &'a TestServer,
    author: &'a str,
    reviewer: &'a str,
    key: &'a SigningKey,
}

impl Publisher<'_> {
    /// Submits a signed version and, when it is queued, has the reviewer approve it.
    async fn publish(&self, name: &str, version: &str, permissions: &str, dependencies: &[&str]) {
        let (s, author, reviewer, key) = (self.s, self.author, self.reviewer, self.key);
        let m = manifest(name, version, permissions, dependencies);
        let b = tar_gz(&[(
            "capsule/main.py",
            format!("print('{name} {version}')\n").as_bytes(),
        )]);
        let sig = envelope(key, name, version, &m, &b);
        let (status, body) = submit(s, author, &m, &b, Some(&sig)).await;
        assert_eq!(status, 201, "{name}@{version}: {body}");
        if body["status"] == "queued" {
            let r = s
                .graphql(
                    Some(reviewer),
                    "mutation($n: String!, $v: String!, $s: String!, $k: String) { reviewCapsuleVersion(name: $n, version: $v, decision: \"approve\", notes: \"checked\", riskScore: $s, idempotencyKey: $k) { status } }",
                    json!({"n": name, "v": version, "s": body["riskScore"], "k": format!("review-{name}-{version}")}),
                )
                .await;
            assert_eq!(
                r["data"]["reviewCapsuleVersion"]["status"], "published",
                "{r}"
            );
        } else {
            assert_eq!(body["status"], "published", "{body}");
        }
    }
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_owned()),
    ];
    http(s, "POST", path, &headers, body.to_string().as_bytes()).await
}

/// The caller's installations once `check` holds of them (the read model and the notices
/// process manager catch up), or the last list seen.
async fn installations_when(
    s: &TestServer,
    token: &str,
    query: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        settle(s).await;
        let (status, list) = get(s, token, &format!("/v1/marketplace/installations{query}")).await;
        assert_eq!(status, 200, "{list}");
        if check(&list) || Instant::now() > deadline {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn find<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["installations"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == name)
}

async fn install_story(t: TestStore) {
    let (s, _blobs) = server(t).await;
    let alice = make_key(&s, "alice", "author", "acme").await;
    let rita = make_key(&s, "rita", "reviewer", "platform").await;
    let bob = make_key(&s, "bob", "client", "acme").await;
    let carol = make_key(&s, "carol", "client", "acme").await;
    let boss = make_key(&s, "boss", "admin", "acme").await;
    let key = SigningKey::from_bytes(&[7; 32]);
    register_key(&s, &alice, &key).await;
    let publisher = Publisher {
        s: &s,
        author: &alice,
        reviewer: &rita,
        key: &key,
    };
    publisher
        .publish("csv-core", "1.0.0", "filesystem.read", &[])
        .await;
    publisher
        .publish(
            "csv-report",
            "1.0.0",
            "filesystem.read",
            &["csv-core ^1.0", "pandas>=2.0.0"],
        )
        .await;
    publisher
        .publish("web-push", "1.0.0", "network.egress", &[])
        .await;

    // 0. Found by a misspelled search (the seed's story: published, then found, then installed).
    settle(&s).await;
    let (status, found) = get(&s, &bob, "/v1/marketplace/capsules?q=csv%20reprot").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["capsules"][0]["name"], "csv-report", "{found}");

    // 1. Installed with its capsule dependency resolved; pandas is the runtime's.
    let (status, body) = post(
        &s,
        &bob,
        "/v1/marketplace/capsules/csv-report/install",
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "1.0.0", "{body}");
    assert_eq!(body["subject"], "user:acme/bob");
    assert_eq!(body["dependencies"], json!(["csv-core@1.0.0"]), "{body}");
    assert_eq!(body["permissions"], json!(["filesystem.read"]));
    assert_eq!(
        body["tokenBudget"], 50_000,
        "100 runs of the estimate: {body}"
    );
    // The same request again without a key: the same answer, no new event.
    let before = read_all(&s.store.store).await.len();
    let (again, same) = post(
        &s,
        &bob,
        "/v1/marketplace/capsules/csv-report/install",
        json!({}),
    )
    .await;
    assert_eq!((again, &same), (201, &body));
    assert_eq!(read_all(&s.store.store).await.len(), before);

    // 2. A dangerous permission must be approved.
    let (status, body) = post(
        &s,
        &bob,
        "/v1/marketplace/capsules/web-push/install",
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["reason"], "PermissionsNotApproved", "{body}");
    let (status, body) = post(
        &s,
        &bob,
        "/v1/marketplace/capsules/web-push/install",
        json!({"approvedPermissions": ["network.egress"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Bad input: an unknown permission, a bad requirement, an unknown field.
    for bad in [
        json!({"approvedPermissions": ["root.everything"]}),
        json!({"version": "^^1"}),
        json!({"colour": "blue"}),
    ] {
        let (status, body) = post(&s, &bob, "/v1/marketplace/capsules/csv-core/install", bad).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "BAD_USER_INPUT", "{body}");
    }
    let (status, body) = post(
        &s,
        &bob,
        "/v1/marketplace/capsules/no-such-capsule/install",
        json!({}),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // 3. A breaking version (a new major) is told to bob, installed before it...
    publisher
        .publish("csv-report", "2.0.0", "filesystem.read", &["csv-core ^1.0"])
        .await;
    let list = installations_when(&s, &bob, "", |l| {
        find(l, "csv-report").is_some_and(|i| i["breakingVersionNotices"] == json!(["2.0.0"]))
    })
    .await;
    let report = find(&list, "csv-report").unwrap_or_else(|| panic!("{list}"));
    assert_eq!(report["breakingVersionNotices"], json!(["2.0.0"]), "{list}");
    assert_eq!(report["dependencies"], json!(["csv-core@1.0.0"]), "{list}");
    // ...and to carol, who installs 1.0.0 after it was published.
    let (status, body) = post(
        &s,
        &carol,
        "/v1/marketplace/capsules/csv-report/install",
        json!({"version": "=1.0.0"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "1.0.0");
    let list = installations_when(&s, &carol, "", |l| {
        find(l, "csv-report").is_some_and(|i| i["breakingVersionNotices"] == json!(["2.0.0"]))
    })
    .await;
    assert!(find(&list, "csv-report").is_some(), "{list}");
    assert_eq!(
        find(&list, "csv-report").unwrap()["breakingVersionNotices"],
        json!(["2.0.0"]),
        "{list}"
    );
    // Each told once, as events on the installations.
    let notices = read_all(&s.store.store)
        .await
        .into_iter()
        .filter(|e| e.event_type == "CapsuleBreakingVersionNotified")
        .count();
    assert_eq!(notices, 2);

    // 4. bob upgrades.
    let (status, body) = post(
        &s,
        &bob,
        "/v1/marketplace/capsules/csv-report/upgrade",
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], "2.0.0", "{body}");
    let (status, body) = post(
        &s,
        &bob,
        "/v1/marketplace/capsules/csv-report/upgrade",
        json!({"version": "^1"}),
    )
    .await;
    assert_eq!(status, 409, "no way down: {body}");
    assert_eq!(body["error"]["reason"], "NotAnUpgrade", "{body}");

    // 4b. Installers rate and review; others vote; a platform reviewer hides.
    let reviews = "/v1/marketplace/capsules/csv-report/reviews";
    let text = "Solid CSV reports: the summary is accurate and it runs fast.";
    let (status, body) = post(&s, &bob, reviews, json!({"rating": 5, "review": text})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["author"], "acme/bob", "{body}");
    let erin = make_key(&s, "erin", "client", "acme").await;
    let (status, body) = post(&s, &erin, reviews, json!({"rating": 1})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["reason"], "NotInstalled", "{body}");
    let (status, body) = post(&s, &carol, reviews, json!({"rating": 9})).await;
    assert_eq!(status, 400, "{body}");
    // The read model must hold bob's review before carol's near copy is compared with it.
    settle(&s).await;
    let copy = "Solid CSV reports; the summary is accurate and it runs fast!";
    let (status, body) = post(&s, &carol, reviews, json!({"rating": 3, "review": copy})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["reason"], "DuplicateText", "{body}");
    let (status, body) = post(&s, &carol, reviews, json!({"rating": 3, "review": "fine"})).await;
    assert_eq!(status, 201, "{body}");
    let votes = "/v1/marketplace/capsules/csv-report/reviews/acme%2Fbob/votes";
    let (status, body) = post(&s, &carol, votes, json!({"helpful": true})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["helpful"], 1, "{body}");
    let (status, body) = post(&s, &carol, votes, json!({"helpful": false})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["reason"], "AlreadyVoted", "{body}");
    let (status, body) = post(&s, &bob, votes, json!({"helpful": true})).await;
    assert_eq!(status, 403, "{body}");
    settle(&s).await;
    let (status, list) = get(&s, &bob, reviews).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["rating"],
        json!({"average": "4.00", "count": 2}),
        "{list}"
    );
    assert_eq!(
        list["reviews"][0]["author"], "acme/bob",
        "most helpful first: {list}"
    );
    let moderation = "/v1/marketplace/capsules/csv-report/reviews/acme%2Fbob/moderation";
    let (status, body) = post(&s, &bob, moderation, json!({"action": "hide", "note": "x"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(
        &s,
        &rita,
        moderation,
        json!({"action": "hide", "note": "undisclosed affiliation"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["hidden"], true, "{body}");
    settle(&s).await;
    let (_, list) = get(&s, &bob, reviews).await;
    assert_eq!(
        list["rating"],
        json!({"average": "3.00", "count": 1}),
        "{list}"
    );
    assert_eq!(list["reviews"].as_array().map(Vec::len), Some(1), "{list}");
    let (_, list) = get(&s, &rita, reviews).await;
    assert_eq!(list["reviews"].as_array().map(Vec::len), Some(2), "{list}");

    // 5. A yanked version is refused by name.
    let r = s
        .graphql(
            Some(&alice),
            "mutation { yankCapsuleVersion(name: \"csv-report\", version: \"1.0.0\", reason: \"leaks paths\", idempotencyKey: \"y1\") { status } }",
            json!({}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let dave = make_key(&s, "dave", "client", "acme").await;
    let (status, body) = post(
        &s,
        &dave,
        "/v1/marketplace/capsules/csv-report/install",
        json!({"version": "=1.0.0"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["reason"], "VersionYanked", "{body}");

    // 6. A dependency cycle is named.
    publisher
        .publish("cyc-alpha", "1.0.0", "filesystem.read", &["cyc-beta ^1"])
        .await;
    publisher
        .publish("cyc-beta", "1.0.0", "filesystem.read", &["cyc-alpha ^1"])
        .await;
    let (status, body) = post(
        &s,
        &dave,
        "/v1/marketplace/capsules/cyc-alpha/install",
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["reason"], "Cycle", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cyc-alpha -> cyc-beta -> cyc-alpha"),
        "{message}"
    );

    // 7. Tenant installs: admins only, over GraphQL.
    let install_q = "mutation($k: String) { installCapsule(name: \"csv-core\", input: {for: \"tenant\"}, idempotencyKey: $k) { subject version } }";
    let r = s.graphql(Some(&bob), install_q, json!({"k": "t1"})).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    let r = s.graphql(Some(&boss), install_q, json!({"k": "t1"})).await;
    assert_eq!(r["data"]["installCapsule"]["subject"], "tenant:acme", "{r}");
    let r = s
        .graphql(
            Some(&boss),
            "{ capsuleInstallations(for: \"tenant\") { name version } }",
            json!({}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");

    // 8. Uninstall.
    let (status, body) = http(
        &s,
        "DELETE",
        "/v1/marketplace/capsules/web-push/install",
        &[("authorization", format!("Bearer {bob}"))],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["installed"], false, "{body}");
    let list = installations_when(&s, &bob, "", |l| find(l, "web-push").is_none()).await;
    assert!(find(&list, "web-push").is_none(), "{list}");
    assert!(find(&list, "csv-report").is_some(), "{list}");

    // 9. The read model equals its rebuild.
    settle(&s).await;
    let cmp = rebuild_and_compare(&s.store.store, &CapsuleInstallProjection::default(), false)
        .await
        .unwrap();
    assert!(cmp.is_equal(), "{cmp:#?}");
    let cmp = rebuild_and_compare(&s.store.store, &CapsuleReviewProjection::default(), false)
        .await
        .unwrap();
    assert!(cmp.is_equal(), "{cmp:#?}");
}
both_backends!(
    capsules_install_with_dependencies_and_hear_of_breaking_versions,
    install_story
);
