//! Sellers are scoped by tenant (issue 11 item 3): two tenants' `sub-pkp-1` are two sellers with
//! their own accounts and aggregates, a tenant's keys act and read only within their tenant,
//! and only platform staff see across tenants. The surface keeps showing the seed's `subPKPId`.

use agora_domain::logmarket::analysis::SellerId;
use agora_tests::{both_backends, TestServer, TestStore};
use serde_json::{json, Value};

use crate::logmarket::CRASH_LOG;

const SUB: &str = "sub-pkp-1";

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
}

async fn key(s: &TestServer, principal: &str, role: &str, tenant: &str) -> String {
    let r = s
        .graphql(
            Some(&s.admin_token),
            "mutation($p: String!, $r: String!, $t: String!, $k: String!) { createApiKey(input: {principal: $p, role: $r, tenant: $t}, idempotencyKey: $k) { token } }",
            json!({"p": principal, "r": role, "t": tenant, "k": format!("k-{principal}-{role}-{tenant}")}),
        )
        .await;
    r["data"]["createApiKey"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("createApiKey: {r}"))
        .to_owned()
}

async fn call(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, _, v) = s.rest(method, path, Some(token), None, body.as_ref()).await;
    (status, v)
}

async fn tenant_sellers(t: TestStore) {
    let s = TestServer::start(t).await;
    register(&s, "acme").await;
    register(&s, "globex").await;
    let acme = key(&s, SUB, "seller", "acme").await;
    let globex = key(&s, SUB, "seller", "globex").await;
    let acme_fin = key(&s, "fin@acme", "finance", "acme").await;
    let analyze = json!({"source": "runtime", "logContent": CRASH_LOG, "subPKPId": SUB});
    let (status, a) = call(
        &s,
        &acme,
        "POST",
        "/npe/log-marketplace/analyze",
        Some(analyze.clone()),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["subPKPId"], SUB, "the surface shows the seed's subPKPId");
    let (status, g) = call(
        &s,
        &globex,
        "POST",
        "/npe/log-marketplace/analyze",
        Some(analyze),
    )
    .await;
    assert_eq!(status, 200, "{g}");

    // Two sellers, two aggregates.
    let acme_id = SellerId::for_tenant("acme", SUB).unwrap();
    let globex_id = SellerId::for_tenant("globex", SUB).unwrap();
    assert_ne!(acme_id, globex_id);
    let events = agora_tests::read_all(&s.store.store).await;
    let recorded_for = |id: &SellerId| {
        events.iter().any(|e| {
            e.event_type == "LogAnalysisRecorded" && e.payload.to_string().contains(id.as_str())
        })
    };
    assert!(
        recorded_for(&acme_id) && recorded_for(&globex_id),
        "each tenant's seller"
    );

    // acme's finance pays acme's analysis to acme's seller account only.
    let id = a["id"].as_str().unwrap();
    let (status, r) = call(
        &s,
        &acme_fin,
        "POST",
        &format!("/npe/log-marketplace/pay/{id}"),
        Some(json!({"subPKPId": SUB})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let gid = g["id"].as_str().unwrap();
    let (status, r) = call(
        &s,
        &acme_fin,
        "POST",
        &format!("/npe/log-marketplace/pay/{gid}"),
        Some(json!({"subPKPId": SUB})),
    )
    .await;
    assert_eq!(
        status, 403,
        "acme's finance cannot pay globex's seller: {r}"
    );
    let balances = s.state.ledger_queries.all_balances().await.unwrap();
    let accounts: Vec<String> = balances.iter().map(|b| b.account.clone()).collect();
    assert!(
        accounts.contains(&format!("seller:{}:payable", acme_id.as_str())),
        "{accounts:?}"
    );
    assert!(!accounts
        .iter()
        .any(|a| a == &format!("seller:{SUB}:payable")));

    // Reads are tenant-scoped: globex sees only its own seller, unpaid.
    let (status, board) = call(
        &s,
        &globex,
        "GET",
        "/npe/log-marketplace/top-earners?limit=10",
        None,
    )
    .await;
    assert_eq!(status, 200, "{board}");
    let text = board.to_string();
    assert!(
        !text.contains("\"11.") && !text.contains(acme_id.as_str()),
        "{text}"
    );
    let (status, dash) = call(&s, &globex, "GET", "/npe/log-marketplace/dashboard", None).await;
    assert_eq!(status, 200);
    assert_eq!(dash["totalAnalyses"], 1, "only globex's analysis: {dash}");
    let (status, _) = call(
        &s,
        &globex,
        "GET",
        &format!("/npe/log-marketplace/analyses/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "globex's seller cannot read acme's analysis");
    let (status, profile) = call(
        &s,
        &globex,
        "GET",
        &format!("/npe/log-marketplace/sellers/{SUB}/payments"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(
        profile["items"].as_array().map(Vec::len),
        Some(0),
        "globex's seller was paid nothing: {profile}"
    );
    let (status, profile) = call(
        &s,
        &acme,
        "GET",
        &format!("/npe/log-marketplace/sellers/{SUB}/payments"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(
        profile["items"].as_array().map(Vec::len),
        Some(1),
        "{profile}"
    );

    // Platform staff see both tenants' sellers.
    let (status, board) = call(
        &s,
        &s.admin_token.clone(),
        "GET",
        "/npe/log-marketplace/leaderboard?limit=10",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let text = board.to_string();
    assert_eq!(text.matches(SUB).count(), 2, "{text}");
}
both_backends!(sellers_are_scoped_by_tenant, tenant_sellers);

/// A tenant's reviewer following analyses sees its tenant's only.
async fn tenant_subscription(t: TestStore) {
    use futures::StreamExt;

    let s = TestServer::start(t).await;
    register(&s, "acme").await;
    register(&s, "globex").await;
    let acme = key(&s, SUB, "seller", "acme").await;
    let globex = key(&s, SUB, "seller", "globex").await;
    let reviewer = key(&s, "rev@acme", "reviewer", "acme").await;
    let query = "subscription { logAnalyses { id subPKPId } }";
    let req = async_graphql::Request::new(query)
        .data(s.state.clone())
        .data(s.request_context(&reviewer).await);
    let mut stream = s.state.schema.execute_stream(req);
    let writer = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let body = json!({"source": "runtime", "logContent": CRASH_LOG, "subPKPId": SUB});
        let (status, _) = call(
            &s,
            &globex,
            "POST",
            "/npe/log-marketplace/analyze",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 200);
        let (status, a) = call(
            &s,
            &acme,
            "POST",
            "/npe/log-marketplace/analyze",
            Some(body),
        )
        .await;
        assert_eq!(status, 200);
        a["id"].as_str().unwrap().to_owned()
    };
    let reader = async {
        let item = tokio::time::timeout(std::time::Duration::from_secs(20), stream.next())
            .await
            .expect("an analysis within 20 s")
            .expect("stream open");
        assert!(item.errors.is_empty(), "{:?}", item.errors);
        item.data.into_json().unwrap()
    };
    let (acme_id, first) = tokio::join!(writer, reader);
    assert_eq!(
        first["logAnalyses"]["id"], acme_id,
        "globex's analysis, recorded first, is not delivered: {first}"
    );
    assert_eq!(first["logAnalyses"]["subPKPId"], SUB);
}
both_backends!(a_tenants_staff_follow_its_sellers_only, tenant_subscription);
