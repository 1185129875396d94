//! Access over HTTP against the real server, on both backends: a key bound to a tenant reads and
//! writes that tenant only, whatever its role (only platform keys reach across tenants); webhook
//! URLs are for admins; keys expire, are listed, and a refused key says why.

use std::time::Duration;

use agora_api::app::AppOptions;
use agora_api::graphql::auth::TokenSecret;
use agora_api::lapverse::demo::demo_series;
use agora_tests::{both_backends, error_code, http_request_full, TestServer, TestStore};
use serde_json::{json, Value};

const CREATE_KEY: &str = "mutation($p: String!, $r: String!, $t: String!, $k: String!, $e: DateTime) {
  createApiKey(input: {principal: $p, role: $r, tenant: $t, expiresAt: $e}, idempotencyKey: $k) { id token } }";

/// A key made by `token`'s holder; `(id, token)`, or the GraphQL error code.
async fn try_key(
    s: &TestServer,
    token: &str,
    principal: &str,
    role: &str,
    tenant: &str,
) -> Result<(String, String), String> {
    let vars = json!({"p": principal, "r": role, "t": tenant, "k": format!("k-{principal}-{role}-{tenant}")});
    let r = s.graphql(Some(token), CREATE_KEY, vars).await;
    match r["data"]["createApiKey"]["token"].as_str() {
        Some(t) => Ok((
            r["data"]["createApiKey"]["id"].as_str().unwrap().to_owned(),
            t.to_owned(),
        )),
        None => Err(error_code(&r).unwrap_or("none").to_owned()),
    }
}

async fn key(s: &TestServer, principal: &str, role: &str, tenant: &str) -> String {
    let admin = s.admin_token.clone();
    try_key(s, &admin, principal, role, tenant)
        .await
        .unwrap_or_else(|e| panic!("createApiKey {principal}: {e}"))
        .1
}

async fn register(s: &TestServer, id: &str) {
    let r = s
        .graphql(
            Some(&s.admin_token),
            "mutation($i: RegisterTenantInput!, $k: String) {
               registerTenant(input: $i, idempotencyKey: $k) { id } }",
            json!({"i": {"id": id, "name": format!("Tenant {id}"), "mrr": "100000.00",
                         "costCenter": "ops"}, "k": format!("reg-{id}")}),
        )
        .await;
    assert_eq!(r["data"]["registerTenant"]["id"], id, "{r}");
    let r = s
        .graphql(
            Some(&s.admin_token),
            "mutation($t: String!, $s: SeriesInputGql!, $k: String) {
               setTenantSeries(tenant: $t, series: $s, idempotencyKey: $k) { seriesPoints } }",
            json!({"t": id, "s": {"values": demo_series().values, "seasonLength": 12},
                   "k": format!("series-{id}")}),
        )
        .await;
    assert_eq!(r["data"]["setTenantSeries"]["seriesPoints"], 48, "{r}");
}

/// A REST call with `token`, the tenant header and an optional body.
async fn rest(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    tenant: Option<&str>,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {token}")),
    ];
    if let Some(t) = tenant {
        headers.push(("x-tenant-id", t.to_string()));
    }
    if let Some(k) = key {
        headers.push(("idempotency-key", k.to_string()));
    }
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, _, body) = http_request_full(s.addr, method, path, &headers, &text).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn task_for(tenant: &str) -> Value {
    json!({"type": "ANALYSIS", "priority": "high", "description": "isolation", "tenant": tenant,
           "platforms": ["twitter"], "costCenter": "ops"})
}

/// Polls a chargeback query until it has `n` lines.
async fn chargeback(s: &TestServer, token: &str, tenant: Option<&str>, n: usize) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = s
            .graphql(
                Some(token),
                "query($t: String) { chargeback(tenant: $t) { tenant costCenter amount } }",
                json!({"t": tenant}),
            )
            .await;
        let lines = r["data"]["chargeback"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tenant_isolation(t: TestStore) {
    let s = TestServer::start(t).await;
    // `a_c` and `abc`: under `LIKE 'tenant:a_c:cc:%'` the second would match the first.
    register(&s, "a_c").await;
    register(&s, "abc").await;
    let admin = s.admin_token.clone();
    let (code, a_task) = rest(
        &s,
        &admin,
        "POST",
        "/api/v2/tasks",
        Some("a_c"),
        Some("t1"),
        Some(task_for("a_c")),
    )
    .await;
    assert_eq!(code, 202, "{a_task}");
    let (code, b_task) = rest(
        &s,
        &admin,
        "POST",
        "/api/v2/tasks",
        Some("abc"),
        Some("t1"),
        Some(task_for("abc")),
    )
    .await;
    assert_eq!(code, 202, "{b_task}");
    let a_id = a_task["taskId"].as_str().unwrap().to_owned();

    // The platform sees both tenants' chargeback, and exactly one tenant's when asked.
    let all = chargeback(&s, &admin, None, 2).await;
    assert_eq!(
        all["data"]["chargeback"].as_array().map(Vec::len),
        Some(2),
        "{all}"
    );
    let only = chargeback(&s, &admin, Some("a_c"), 1).await;
    let lines = only["data"]["chargeback"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{only}");
    assert_eq!(lines[0]["tenant"], "a_c");

    for role in ["finance", "auditor", "admin"] {
        let token = key(&s, &format!("b-{role}"), role, "abc").await;
        let q = |query: &'static str| {
            let token = token.clone();
            let s = &s;
            async move { s.graphql(Some(&token), query, json!({})).await }
        };
        // Lists are the caller's tenant only.
        let r = q("{ lapverseTenants }").await;
        assert_eq!(r["data"]["lapverseTenants"], json!(["abc"]), "{role}: {r}");
        let r = q("{ tasks { id tenant } }").await;
        let tenants: Vec<&str> = r["data"]["tasks"]
            .as_array()
            .unwrap_or_else(|| panic!("{role}: {r}"))
            .iter()
            .filter_map(|t| t["tenant"].as_str())
            .collect();
        assert!(tenants.iter().all(|t| *t == "abc"), "{role}: {r}");
        let r = chargeback(&s, &token, None, 1).await;
        let lines = r["data"]["chargeback"]
            .as_array()
            .unwrap_or_else(|| panic!("{role}: {r}"));
        assert!(lines.iter().all(|l| l["tenant"] == "abc"), "{role}: {r}");
        // Another tenant's data is refused.
        for query in [
            "{ lapverseTenant(id: \"a_c\") { id } }",
            "{ tasks(tenant: \"a_c\") { id } }",
            "{ chargeback(tenant: \"a_c\") { amount } }",
            "{ webhookDeliveries(tenant: \"a_c\") { id } }",
        ] {
            let r = q(query).await;
            assert_eq!(error_code(&r), Some("FORBIDDEN"), "{role} {query}: {r}");
        }
        let r = s
            .graphql(
                Some(&token),
                "query($id: String!) { task(id: $id) { id } }",
                json!({"id": a_id}),
            )
            .await;
        assert_eq!(r["data"]["task"], Value::Null, "{role}: {r}");
        let (code, body) = rest(
            &s,
            &token,
            "GET",
            &format!("/api/v2/tasks/{a_id}"),
            None,
            None,
            None,
        )
        .await;
        assert_eq!(code, 404, "{role}: {body}");
        let (code, body) = rest(&s, &token, "GET", "/api/status", Some("a_c"), None, None).await;
        assert_eq!(code, 403, "{role}: {body}");
        let (code, body) = rest(&s, &token, "GET", "/api/status", Some("abc"), None, None).await;
        assert_eq!(code, 200, "{role}: {body}");
        // The ledger is platform staff's only (accounts are not tenant-scoped).
        let r = q("{ ledgerAccounts(first: 5) { edges { node { account } } } }").await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "{role}: {r}");
    }

    // A tenant's admin administers its own tenant only and cannot mint platform keys.
    let tenant_admin = key(&s, "b-admin-2", "admin", "abc").await;
    let r = s
        .graphql(
            Some(&tenant_admin),
            "mutation { setTenantFlag(tenant: \"a_c\", flag: \"task.analysis\", enabled: false, rolloutPercent: 0, idempotencyKey: \"f1\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    let r = s
        .graphql(
            Some(&tenant_admin),
            "mutation { registerTenant(input: {id: \"zzz\", name: \"Z\", mrr: \"1.00\", costCenter: \"ops\"}, idempotencyKey: \"r1\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    for tenant in ["platform", "a_c"] {
        let made = try_key(&s, &tenant_admin, "escalate", "admin", tenant).await;
        assert_eq!(made, Err("FORBIDDEN".to_owned()), "{tenant}");
    }
    assert!(try_key(&s, &tenant_admin, "own-client", "client", "abc")
        .await
        .is_ok());
    let (code, body) = rest(
        &s,
        &tenant_admin,
        "POST",
        "/api/v2/tasks",
        Some("a_c"),
        Some("x"),
        Some(task_for("a_c")),
    )
    .await;
    assert_eq!(code, 403, "{body}");
}
both_backends!(a_tenant_key_reaches_its_tenant_only, tenant_isolation);

/// Webhook URLs (they may carry a secret) are shown to admins only.
async fn webhook_urls(t: TestStore) {
    let s = TestServer::start(t).await;
    register(&s, "hooked").await;
    let url = "https://hooks.example.com/notify?token=s3cr3t";
    let r = s
        .graphql(
            Some(&s.admin_token),
            "mutation($u: String!) { registerWebhook(tenant: \"hooked\", id: \"w1\", url: $u, events: [\"competition_completed\"], idempotencyKey: \"w-1\") { webhooks { url } } }",
            json!({"u": url}),
        )
        .await;
    assert_eq!(
        r["data"]["registerWebhook"]["webhooks"][0]["url"], url,
        "{r}"
    );
    let query = "{ lapverseTenant(id: \"hooked\") { webhooks { id url } } }";
    for role in ["finance", "auditor", "client"] {
        let token = key(&s, &format!("h-{role}"), role, "hooked").await;
        let r = s.graphql(Some(&token), query, json!({})).await;
        let hook = &r["data"]["lapverseTenant"]["webhooks"][0];
        assert_eq!(
            (&hook["id"], &hook["url"]),
            (&json!("w1"), &Value::Null),
            "{role}: {r}"
        );
    }
    let token = key(&s, "h-admin", "admin", "hooked").await;
    let r = s.graphql(Some(&token), query, json!({})).await;
    assert_eq!(
        r["data"]["lapverseTenant"]["webhooks"][0]["url"], url,
        "{r}"
    );
}
both_backends!(webhook_urls_are_for_admins, webhook_urls);

async fn me(s: &TestServer, authorization: &str) -> Value {
    let headers = vec![
        ("content-type", "application/json".to_string()),
        ("authorization", authorization.to_string()),
    ];
    let body = json!({"query": "{ me { role } }"}).to_string();
    let (_, _, text) = http_request_full(s.addr, "POST", "/graphql", &headers, &body).await;
    serde_json::from_str(&text).unwrap()
}

fn refusal(r: &Value) -> (&str, &str) {
    (
        error_code(r).unwrap_or("none"),
        r["errors"][0]["message"].as_str().unwrap_or(""),
    )
}

/// Keys say why they are refused, expire, are listed, and `Bearer` is any case.
async fn key_lifecycle(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = s.admin_token.clone();
    let token = key(&s, "life", "client", "acme").await;
    assert_eq!(
        me(&s, &format!("bearer {token}")).await["data"]["me"]["role"],
        "client"
    );
    assert_eq!(
        me(&s, &format!("BEARER {token}")).await["data"]["me"]["role"],
        "client"
    );

    let r = s.graphql(None, "{ me { role } }", json!({})).await;
    let (code, message) = refusal(&r);
    assert_eq!(code, "UNAUTHENTICATED");
    assert!(message.starts_with("missing API key"), "{message}");
    let r = me(&s, &format!("Basic {token}")).await;
    assert!(refusal(&r).1.starts_with("malformed"), "{r}");
    let r = me(&s, "Bearer agora_nope_0000").await;
    assert_eq!(refusal(&r), ("UNAUTHENTICATED", "unknown API key"));

    // Revoked.
    let (id, revoked) = try_key(&s, &admin, "gone", "client", "acme").await.unwrap();
    let r = s
        .graphql(
            Some(&admin),
            "mutation($id: String!) { revokeApiKey(id: $id, idempotencyKey: \"rv-1\") }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(r["data"]["revokeApiKey"], true, "{r}");
    let r = me(&s, &format!("Bearer {revoked}")).await;
    assert_eq!(refusal(&r), ("UNAUTHENTICATED", "this API key was revoked"));

    // Expiring: works until its expiry, then says so.
    let expiry = chrono::Utc::now() + chrono::Duration::seconds(2);
    let vars =
        json!({"p": "short", "r": "client", "t": "acme", "k": "k-short", "e": expiry.to_rfc3339()});
    let r = s.graphql(Some(&admin), CREATE_KEY, vars).await;
    let short = r["data"]["createApiKey"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_owned();
    let past = json!({"p": "past", "r": "client", "t": "acme", "k": "k-past",
                      "e": (chrono::Utc::now() - chrono::Duration::seconds(1)).to_rfc3339()});
    let r = s.graphql(Some(&admin), CREATE_KEY, past).await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = me(&s, &format!("Bearer {short}")).await;
        if r["data"]["me"]["role"] == "client" {
            assert!(std::time::Instant::now() < deadline, "never expired");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(refusal(&r), ("UNAUTHENTICATED", "this API key has expired"));
        break;
    }

    // Listed for admins, with their standing; a tenant's admin sees its tenant's keys only.
    let list = "{ apiKeys(first: 100) { id principal tenant status } }";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let keys = loop {
        let r = s.graphql(Some(&admin), list, json!({})).await;
        let keys = r["data"]["apiKeys"].as_array().cloned().unwrap_or_default();
        let status = |p: &str| {
            keys.iter()
                .find(|k| k["principal"] == p)
                .map(|k| k["status"].clone())
        };
        if status("gone") == Some(json!("revoked")) && status("short").is_some() {
            break keys;
        }
        assert!(std::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = |p: &str| keys.iter().find(|k| k["principal"] == p).unwrap()["status"].clone();
    assert_eq!(status("short"), "expired");
    assert_eq!(status("life"), "active");
    assert!(
        !format!("{keys:?}").contains(&token),
        "no token in the list"
    );
    let tenant_admin = key(&s, "acme-admin", "admin", "acme").await;
    let other = key(&s, "globex-client", "client", "globex").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = s.graphql(Some(&tenant_admin), list, json!({})).await;
        let keys = r["data"]["apiKeys"].as_array().cloned().unwrap_or_default();
        assert!(keys.iter().all(|k| k["tenant"] == "acme"), "{r}");
        if keys.iter().any(|k| k["principal"] == "acme-admin") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = s
        .graphql(
            Some(&tenant_admin),
            "{ apiKeys(first: 5, tenant: \"globex\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    assert_eq!(
        me(&s, &format!("Bearer {other}")).await["data"]["me"]["role"],
        "client"
    );
}
both_backends!(keys_expire_are_listed_and_say_why, key_lifecycle);

/// The API-token secret is not the ledger key: rotating it leaves issued keys working and the
/// audit seal alone; a retried `createApiKey` after the rotation says it cannot show the token.
async fn token_secret_rotation(t: TestStore) {
    let options = |secret: [u8; 32]| AppOptions {
        token_secret: TokenSecret::from_bytes(secret),
        ..AppOptions::default()
    };
    let s = TestServer::start_with(t, options([7; 32])).await;
    let admin = s.admin_token.clone();
    let vars = json!({"p": "rot", "r": "client", "t": "acme", "k": "k-rot"});
    let r = s.graphql(Some(&admin), CREATE_KEY, vars.clone()).await;
    let token = r["data"]["createApiKey"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same signing key with another token secret derives other tokens.
    let location = s.store.location.clone();
    let ledger_key = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
    let other = agora_api::app::App::start_with(
        &location,
        ledger_key,
        Some(agora_tests::TEST_ADMIN_TOKEN),
        options([8; 32]),
    )
    .await
    .unwrap();
    assert_ne!(other.state.keys.token_for("x"), s.state.keys.token_for("x"));
    // The key made under the old secret still authenticates in the rotated process.
    let p = other
        .state
        .keys
        .authenticate(Some(&format!("Bearer {token}")))
        .await
        .expect("old key still works");
    assert_eq!(p.name, "rot");
    // A retry of the same createApiKey in the rotated process cannot show the token again.
    let ctx = agora_api::graphql::RequestContext {
        principal: other
            .state
            .keys
            .authenticate(Some(&format!("Bearer {admin}")))
            .await,
        idempotency_key: None,
        correlation_id: uuid::Uuid::now_v7(),
    };
    let request = async_graphql::Request::new(CREATE_KEY)
        .variables(async_graphql::Variables::from_json(vars))
        .data(ctx)
        .data(other.state.clone());
    let r = other.state.schema.execute(request).await.into_result();
    let errors = r.expect_err("the token cannot be shown again");
    let code = errors[0]
        .extensions
        .as_ref()
        .and_then(|e| e.get("code"))
        .map(|v| v.to_string());
    assert_eq!(code.as_deref(), Some("\"CONFLICT\""), "{errors:?}");
}
both_backends!(
    the_token_secret_rotates_independently,
    token_secret_rotation
);
