//! The log data marketplace over HTTP against the real server, on both backends: the seed's
//! analyse → pay → dashboard flow over REST and GraphQL, pay-once under concurrency, signed
//! payments, limits, privacy, uniqueness across restarts, feedback accuracy, and read models
//! equal to sums over the events and to their own rebuild.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use agora_api::app::AppOptions;
use agora_api::logmarket::MarketSettings;
use agora_commands::{LogPosition, Store};
use agora_domain::logmarket::aggregate::LogAnalysisEvent;
use agora_domain::logmarket::analysis::SellerId;
use agora_domain::logmarket::seller::{pay_message, SellerEvent};
use agora_domain::money::Money;
use agora_projections::logmarket::LogMarketProjection;
use agora_projections::rebuild::rebuild_and_compare;
use agora_tests::{both_backends, error_code, read_all, TestServer, TestStore};
use ed25519_dalek::{Signer, SigningKey};
use futures::future::join_all;
use serde_json::{json, Value};
use sqlx::Row;

pub const CRASH_LOG: &str = "[2025-11-06 10:44:59] INFO orders-api listening on :3000
[2025-11-06 10:45:00] CRITICAL ERROR: Uncaught exception in POST /api/orders
TypeError: Cannot read properties of undefined (reading 'id')
    at OrdersService.create (/app/src/orders.service.ts:42:31)
    at OrdersController.post (/app/src/orders.controller.ts:18:25)
    at processTicksAndRejections (node:internal/process/task_queues:95:5)
[2025-11-06 10:45:01] ERROR 12 failed transactions in the last 5 minutes
";

pub const ATTACK_LOG: &str = r#"198.51.100.7 - - [06/Nov/2025:10:45:00 +0000] "GET /products?id=1%27%20OR%20%271%27=%271 HTTP/1.1" 200 512 "-" "sqlmap/1.7"
198.51.100.7 - - [06/Nov/2025:10:45:01 +0000] "GET /search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E HTTP/1.1" 200 230 "-" "Mozilla/5.0"
198.51.100.7 - - [06/Nov/2025:10:45:02 +0000] "POST /login HTTP/1.1" 401 64 "-" "python-requests/2.31"
198.51.100.7 - - [06/Nov/2025:10:45:03 +0000] "POST /login HTTP/1.1" 401 64 "-" "python-requests/2.31"
198.51.100.7 - - [06/Nov/2025:10:45:04 +0000] "POST /login HTTP/1.1" 401 64 "-" "python-requests/2.31"
198.51.100.7 - - [06/Nov/2025:10:45:05 +0000] "POST /login HTTP/1.1" 401 64 "-" "python-requests/2.31"
198.51.100.7 - - [06/Nov/2025:10:45:06 +0000] "POST /login HTTP/1.1" 401 64 "-" "python-requests/2.31"
198.51.100.7 - - [06/Nov/2025:10:45:07 +0000] "POST /login HTTP/1.1" 401 64 "-" "python-requests/2.31"
"#;

pub const CLEAN_LOG: &str = "[2025-11-06 10:30:15] INFO BUILD STARTED
[2025-11-06 10:30:16] INFO Compiling 42 crates
[2025-11-06 10:31:02] INFO Finished release profile in 46.2s
[2025-11-06 10:31:02] INFO BUILD SUCCEEDED
";

const SELLER: &str = "sub-pkp-12345";

async fn analyze(s: &TestServer, token: &str, source: &str, log: &str) -> Value {
    let (status, _, body) = s
        .rest(
            "POST",
            "/npe/log-marketplace/analyze",
            Some(token),
            None,
            Some(&json!({"source": source, "logContent": log, "subPKPId": SELLER})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `analyze` under an explicit `Idempotency-Key` (a new client intent for the same content).
async fn analyze_keyed(s: &TestServer, token: &str, source: &str, log: &str, key: &str) -> Value {
    let (status, _, body) = s
        .rest(
            "POST",
            "/npe/log-marketplace/analyze",
            Some(token),
            Some(key),
            Some(&json!({"source": source, "logContent": log, "subPKPId": SELLER})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn pay(s: &TestServer, token: &str, id: &str, body: Value) -> (u16, String, Value) {
    pay_keyed(s, token, id, body, None).await
}

async fn pay_keyed(
    s: &TestServer,
    token: &str,
    id: &str,
    body: Value,
    key: Option<&str>,
) -> (u16, String, Value) {
    s.rest(
        "POST",
        &format!("/npe/log-marketplace/pay/{id}"),
        Some(token),
        key,
        Some(&body),
    )
    .await
}

async fn get(s: &TestServer, token: &str, path: &str) -> Value {
    let (status, _, body) = s.rest("GET", path, Some(token), None, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn money(v: &Value) -> Money {
    Money::parse(
        v.as_str()
            .unwrap_or_else(|| panic!("money string expected: {v}")),
    )
    .unwrap()
}

async fn key(s: &TestServer, principal: &str, role: &str) -> String {
    let r = s
        .graphql(
            Some(&s.admin_token),
            "mutation($p: String!, $r: String!, $k: String!) { createApiKey(input: {principal: $p, role: $r, tenant: \"platform\"}, idempotencyKey: $k) { token } }",
            json!({"p": principal, "r": role, "k": format!("k-{principal}-{role}")}),
        )
        .await;
    r["data"]["createApiKey"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string()
}

/// Waits until the process manager and the marketplace projection have handled the whole log,
/// and nothing new was appended meanwhile.
async fn quiesce(s: &TestServer) {
    let store = &s.store.store;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let head = store.head().await.unwrap().unwrap_or(LogPosition::START);
        let pm = checkpoint(store, "pm_logmarket").await;
        let rm = checkpoint(store, "logmarket").await;
        if pm >= head
            && rm >= head
            && store.head().await.unwrap().unwrap_or(LogPosition::START) == head
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never quiesced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn checkpoint(store: &Store, name: &str) -> LogPosition {
    let row = sqlx::query(
        "SELECT transaction_id, global_position FROM projection_checkpoints WHERE name = $1",
    )
    .bind(name)
    .fetch_one(store.read_models())
    .await
    .unwrap();
    LogPosition {
        transaction_id: row.get(0),
        global_position: row.get(1),
    }
}

async fn seed_flow_rest(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = s.admin_token.clone();
    // Analyse → pay if value > 70 → dashboard, as the seed's integration example does.
    let a = analyze(&s, &admin, "runtime", CRASH_LOG).await;
    assert_eq!(a["source"], "runtime");
    assert_eq!(a["subPKPId"], SELLER);
    assert_eq!(a["paid"], false);
    let errors = a["aiInsights"]["errorPatterns"].as_array().unwrap();
    assert!(!errors.is_empty(), "{a}");
    assert!(
        errors.iter().any(|e| e["location"]
            .as_str()
            .is_some_and(|l| l.contains("orders.service.ts:42"))),
        "{a}"
    );
    assert!(a["valueScore"].as_u64().unwrap() > 70, "{a}");
    assert!(a["bonuses"]["criticalError"].as_bool().unwrap(), "{a}");
    let price = money(&a["paymentAmount"]);
    let id = a["id"].as_str().unwrap();

    let (status, _, receipt) = pay(&s, &admin, id, json!({"subPKPId": SELLER})).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["type"], "log-data");
    assert_eq!(money(&receipt["amount"]), price);
    assert_eq!(receipt["analysisId"], id);
    assert_eq!(receipt["metadata"]["authorisation"], "operator");

    // The same call again (no Idempotency-Key: the key is derived from the request) gets the
    // same receipt; a pay under a new key is a conflict. Never a second payment.
    let (status, _, again) = pay(&s, &admin, id, json!({"subPKPId": SELLER})).await;
    assert_eq!((status, &again["id"]), (200, &receipt["id"]), "{again}");
    let (status, _, again) =
        pay_keyed(&s, &admin, id, json!({"subPKPId": SELLER}), Some("pay-2")).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "CONFLICT");

    let d = get(&s, &admin, "/npe/log-marketplace/dashboard").await;
    assert_eq!(money(&d["totalPaid"]), price);
    assert_eq!(d["topDataSellers"][0]["subPKPId"], SELLER);
    assert_eq!(money(&d["topDataSellers"][0]["earnings"]), price);
    assert_eq!(d["monitoringAgents"].as_array().unwrap().len(), 4);

    // The journal holds the payment: funding debited, seller payable credited.
    let balances = s.state.ledger_queries.all_balances().await.unwrap();
    let payable = balances
        .iter()
        .find(|b| b.account == format!("seller:{SELLER}:payable"))
        .expect("seller payable");
    assert_eq!(payable.posted, price.checked_neg().unwrap());
    let sum = Money::checked_sum(balances.iter().map(|b| b.posted)).unwrap();
    assert!(sum.is_zero(), "postings sum to zero");

    let p = get(&s, &admin, "/npe/log-marketplace/pricing").await;
    let examples: Vec<&str> = p["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["payment"].as_str().unwrap())
        .collect();
    assert_eq!(examples, ["0.35", "2.21", "11.55"]);
    assert_eq!(p["basePrice"], "0.10");

    let agents = get(&s, &admin, "/npe/log-marketplace/agents").await;
    assert_eq!(agents["totalAgents"], 4);
    assert_eq!(
        agents["agents"][0]["stats"]["accuracy"],
        Value::Null,
        "no feedback yet"
    );
    let top = get(&s, &admin, "/npe/log-marketplace/top-earners?limit=1").await;
    assert_eq!(top["topEarners"].as_array().unwrap().len(), 1);
    assert_eq!(top["topEarners"][0]["rank"], 1);
    let trends = get(&s, &admin, "/npe/log-marketplace/quality-trends").await;
    assert!(!trends["recommendations"].as_array().unwrap().is_empty());

    // No key: 401 with the error shape.
    let (status, _, body) = s
        .rest("GET", "/npe/log-marketplace/dashboard", None, None, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    // Bad input is named.
    let (status, _, body) = s
        .rest(
            "POST",
            "/npe/log-marketplace/analyze",
            Some(&admin),
            None,
            Some(&json!({"source": "prod", "logContent": "x", "subPKPId": SELLER})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BAD_USER_INPUT"))
    );
    let (status, _, body) = pay(&s, &admin, "analysis-nope", json!({"subPKPId": SELLER})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
}
both_backends!(seed_flow_over_rest, seed_flow_rest);

const ANALYZE: &str = "mutation($log: String!, $k: String!) {
  analyzeLog(input: {source: \"runtime\", logContent: $log, subPKPId: \"sub-pkp-12345\"}, idempotencyKey: $k) {
    id valueScore paymentAmount paid quality { overall uniqueness } insights { agent kind severity location }
    bonuses { criticalError uniqueness } improvementPotential { estimatedROI } } }";

const PAY: &str = "mutation($id: String!, $k: String!, $sig: String) {
  payLogAnalysis(analysisId: $id, subPKPId: \"sub-pkp-12345\", signature: $sig, idempotencyKey: $k) {
    transactionId amount journalEntryId authorisation } }";

async fn seed_flow_graphql(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = Some(s.admin_token.as_str());
    let r = s
        .graphql(admin, ANALYZE, json!({"log": CRASH_LOG, "k": "a-1"}))
        .await;
    let a = &r["data"]["analyzeLog"];
    assert!(a["valueScore"].as_i64().unwrap() > 70, "{r}");
    // A retry under the same key returns the same analysis.
    let again = s
        .graphql(admin, ANALYZE, json!({"log": CRASH_LOG, "k": "a-1"}))
        .await;
    assert_eq!(again["data"]["analyzeLog"]["id"], a["id"]);
    // The same key with another log is refused.
    let other = s
        .graphql(admin, ANALYZE, json!({"log": CLEAN_LOG, "k": "a-1"}))
        .await;
    assert_eq!(error_code(&other), Some("IDEMPOTENCY_CONFLICT"));

    let id = a["id"].as_str().unwrap();
    let paid = s.graphql(admin, PAY, json!({"id": id, "k": "p-1"})).await;
    assert_eq!(
        paid["data"]["payLogAnalysis"]["amount"], a["paymentAmount"],
        "{paid}"
    );
    let twice = s.graphql(admin, PAY, json!({"id": id, "k": "p-2"})).await;
    assert_eq!(error_code(&twice), Some("CONFLICT"));

    let d = s
        .graphql(
            admin,
            "{ logMarketDashboard { totalPaid totalInsights topDataSellers { subPKPId earnings }
               monitoringAgents { id logsAnalyzed moneyPaid accuracy } qualityTrends { averageQuality } } }",
            json!({}),
        )
        .await;
    let dash = &d["data"]["logMarketDashboard"];
    assert_eq!(dash["totalPaid"], a["paymentAmount"], "{d}");
    let agent_money = Money::checked_sum(
        dash["monitoringAgents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| money(&g["moneyPaid"])),
    )
    .unwrap();
    assert_eq!(
        Some(agent_money.to_string().as_str()),
        a["paymentAmount"].as_str(),
        "agent shares add up"
    );

    let profile = s
        .graphql(
            admin,
            "{ sellerProfile(subPKPId: \"sub-pkp-12345\") { points xp earnings logsSubmitted } }",
            json!({}),
        )
        .await;
    assert!(
        profile["data"]["sellerProfile"]["points"].as_i64().unwrap() > 0,
        "{profile}"
    );
    let pricing = s
        .graphql(
            admin,
            "{ logMarketPricing { examples { payment } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        pricing["data"]["logMarketPricing"]["examples"][2]["payment"],
        "11.55"
    );
    // Limits are validated.
    let bad = s
        .graphql(
            admin,
            "{ logMarketTopEarners(limit: 0) { rank } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"));
}
both_backends!(seed_flow_over_graphql, seed_flow_graphql);

async fn pay_once(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = s.admin_token.clone();
    let a = analyze(&s, &admin, "runtime", CRASH_LOG).await;
    let id = a["id"].as_str().unwrap().to_string();
    // 16 different client intents (keys): one payment, 15 conflicts.
    let keys: Vec<String> = (0..16).map(|i| format!("pay-{i}")).collect();
    let calls = keys
        .iter()
        .map(|k| pay_keyed(&s, &admin, &id, json!({"subPKPId": SELLER}), Some(k)));
    let results = join_all(calls).await;
    let count = |code: u16| {
        results
            .iter()
            .filter(|(status, _, _)| *status == code)
            .count()
    };
    assert_eq!((count(200), count(409)), (1, 15), "{results:?}");
    // 16 copies of one call without a key (one intent, retried): one payment, one receipt.
    let calls = (0..16).map(|_| pay(&s, &admin, &id, json!({"subPKPId": SELLER})));
    let retried = join_all(calls).await;
    let receipts: std::collections::BTreeSet<String> = retried
        .iter()
        .map(|(status, _, r)| format!("{status} {} {}", r["id"], r["error"]["code"]))
        .collect();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    quiesce(&s).await;
    let events = read_all(&s.store.store).await;
    let paid = events
        .iter()
        .filter(|e| e.aggregate_type == "log_analysis" && e.event_type == "AnalysisPaid")
        .count();
    let entries: Vec<_> = events
        .iter()
        .filter(|e| e.aggregate_type == "journal_entry")
        .collect();
    assert_eq!(paid, 1);
    assert_eq!(entries.len(), 1, "one journal entry");
    assert_eq!(entries[0].aggregate_id, format!("logpay-{id}"));
    let balances = s.state.ledger_queries.all_balances().await.unwrap();
    assert!(Money::checked_sum(balances.iter().map(|b| b.posted))
        .unwrap()
        .is_zero());
}
both_backends!(pay_once_under_concurrency, pay_once);

async fn signed_payments(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = s.admin_token.clone();
    let seller_token = key(&s, SELLER, "seller").await;
    let signing = SigningKey::from_bytes(&[9u8; 32]);
    let public = hex::encode(signing.verifying_key().to_bytes());
    let (status, _, body) = s
        .rest(
            "POST",
            &format!("/npe/log-marketplace/sellers/{SELLER}/key"),
            Some(&seller_token),
            Some("key-1"),
            Some(&json!({"publicKey": public})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["registered"], &body["pending"]),
        (&json!(false), &json!(true)),
        "a seller's own key waits for an operator: {body}"
    );
    // A seller key may not act for another seller.
    let (status, _, _) = s
        .rest(
            "POST",
            "/npe/log-marketplace/analyze",
            Some(&seller_token),
            None,
            Some(
                &json!({"source": "runtime", "logContent": CRASH_LOG, "subPKPId": "someone-else"}),
            ),
        )
        .await;
    assert_eq!(status, 403);

    let a = analyze(&s, &seller_token, "runtime", CRASH_LOG).await;
    let id = a["id"].as_str().unwrap();
    let amount = money(&a["paymentAmount"]);
    let seller = SellerId::parse(SELLER).unwrap();
    let good = hex::encode(
        signing
            .sign(pay_message(id, &seller, amount).as_bytes())
            .to_bytes(),
    );
    let wrong_amount = hex::encode(
        signing
            .sign(pay_message(id, &seller, Money::parse("20.00").unwrap()).as_bytes())
            .to_bytes(),
    );
    let other_key = SigningKey::from_bytes(&[10u8; 32]);
    let forged = hex::encode(
        other_key
            .sign(pay_message(id, &seller, amount).as_bytes())
            .to_bytes(),
    );

    // Until an operator approves it, the seller's key cannot authorise a payment.
    let (status, _, r) = pay_keyed(
        &s,
        &seller_token,
        id,
        json!({"subPKPId": SELLER, "signature": good}),
        Some("pay-before-approval"),
    )
    .await;
    assert_eq!(status, 403, "a pending key signs nothing: {r}");
    let approve = |token: String, public: String| {
        let s = &s;
        async move {
            s.rest(
                "POST",
                &format!("/npe/log-marketplace/sellers/{SELLER}/key/approve"),
                Some(&token),
                None,
                Some(&json!({"publicKey": public})),
            )
            .await
        }
    };
    let (status, _, r) = approve(seller_token.clone(), public.clone()).await;
    assert_eq!(status, 403, "a seller cannot approve its own key: {r}");
    let other = hex::encode(
        SigningKey::from_bytes(&[11u8; 32])
            .verifying_key()
            .to_bytes(),
    );
    let (status, _, r) = approve(admin.clone(), other).await;
    assert_eq!(status, 409, "only the pending key can be approved: {r}");
    let (status, _, r) = approve(admin.clone(), public.clone()).await;
    assert_eq!(status, 200, "{r}");

    for (token, body, why) in [
        (&seller_token, json!({"subPKPId": SELLER}), "no signature"),
        (
            &seller_token,
            json!({"subPKPId": SELLER, "signature": forged}),
            "another key",
        ),
        (
            &seller_token,
            json!({"subPKPId": SELLER, "signature": wrong_amount}),
            "another amount",
        ),
        (
            &admin,
            json!({"subPKPId": SELLER}),
            "operator, but the seller has a key",
        ),
    ] {
        let (status, _, r) = pay(&s, token, id, body).await;
        assert_eq!(
            (status, r["error"]["code"].as_str()),
            (403, Some("FORBIDDEN")),
            "{why}: {r}"
        );
    }
    quiesce(&s).await;
    let events = read_all(&s.store.store).await;
    assert!(
        !events
            .iter()
            .any(|e| e.event_type == "AnalysisPaid" || e.aggregate_type == "journal_entry"),
        "nothing was paid"
    );
    let (status, _, r) = pay(
        &s,
        &seller_token,
        id,
        json!({"subPKPId": SELLER, "signature": good}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["metadata"]["authorisation"], "seller_signature");
}
both_backends!(payments_need_the_sellers_signature, signed_payments);

async fn limits(t: TestStore) {
    let options = AppOptions {
        rate_limit_per_minute: 1000,
        market: MarketSettings {
            submissions_per_hour: 3,
            rate_limit_per_minute: 5,
            config: agora_domain::logmarket::analysis::MarketConfig {
                max_log_bytes: 4096,
                ..Default::default()
            },
            ..MarketSettings::default()
        },
        ..AppOptions::default()
    };
    let s = TestServer::start_with(t, options).await;
    let admin = s.admin_token.clone();
    // The limits count per clock minute and hour: the six counted calls below must fall in one
    // window (CI once saw them straddle a minute).
    agora_tests::within_one_window().await;
    // Over the log size: 413 with a clear message; nothing counted against the seller.
    let big = "x".repeat(4097);
    let (status, _, r) = s
        .rest(
            "POST",
            "/npe/log-marketplace/analyze",
            Some(&admin),
            None,
            Some(&json!({"source": "build", "logContent": big, "subPKPId": SELLER})),
        )
        .await;
    assert_eq!(
        (status, r["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{r}"
    );
    assert!(
        r["error"]["message"].as_str().unwrap().contains("4096"),
        "{r}"
    );
    // A batch over 100 logs is refused whole.
    let logs: Vec<Value> = (0..101)
        .map(|_| json!({"source": "build", "content": "ok"}))
        .collect();
    let (status, _, r) = s
        .rest(
            "POST",
            "/npe/log-marketplace/batch-analyze",
            Some(&admin),
            None,
            Some(&json!({"subPKPId": SELLER, "logs": logs})),
        )
        .await;
    assert_eq!(status, 400, "{r}");
    // Three submissions per hour: a batch of two, one more, then the fourth is throttled.
    let (status, _, r) = s
        .rest(
            "POST",
            "/npe/log-marketplace/batch-analyze",
            Some(&admin),
            None,
            Some(&json!({"subPKPId": SELLER, "logs": [
                {"source": "build", "content": CLEAN_LOG},
                {"source": "runtime", "content": CRASH_LOG}]})),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["totalLogs"], 2);
    analyze(&s, &admin, "build", CLEAN_LOG).await;
    let (status, head, r) = s
        .rest(
            "POST",
            "/npe/log-marketplace/analyze",
            Some(&admin),
            Some("a-fourth-submission"),
            Some(&json!({"source": "build", "logContent": CLEAN_LOG, "subPKPId": SELLER})),
        )
        .await;
    assert_eq!(
        (status, r["error"]["code"].as_str()),
        (429, Some("THROTTLED")),
        "{r}"
    );
    assert!(head.contains("retry-after:"), "{head}");
    // Five marketplace requests per minute per key: that was the fifth call; the sixth is
    // throttled with Retry-After, on GraphQL too.
    let (status, head, r) = s
        .rest(
            "GET",
            "/npe/log-marketplace/pricing",
            Some(&admin),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, r["error"]["code"].as_str()),
        (429, Some("THROTTLED")),
        "{r}"
    );
    assert!(head.contains("retry-after:"), "{head}");
    let g = s
        .graphql(
            Some(&admin),
            "{ logMarketPricing { basePrice } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&g), Some("THROTTLED"));
}
both_backends!(marketplace_limits, limits);

async fn privacy(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = s.admin_token.clone();
    let secret = "AKIAZ3MXQ7RT2PLK9W4B";
    let email = "jane.doe@example.com";
    let log = format!(
        "[2025-11-06 10:00:00] INFO deploy user={email} starting\n\
         [2025-11-06 10:00:01] DEBUG using aws_access_key_id={secret}\n\
         [2025-11-06 10:00:02] ERROR deploy failed: connection refused\n"
    );
    let a = analyze(&s, &admin, "deploy", &log).await;
    let text = a.to_string();
    assert!(!text.contains(secret) && !text.contains(email), "{text}");
    quiesce(&s).await;
    for e in read_all(&s.store.store).await {
        let stored = format!("{} {}", e.payload, e.metadata);
        assert!(
            !stored.contains(secret),
            "secret stored in {}",
            e.event_type
        );
        assert!(!stored.contains(email), "e-mail stored in {}", e.event_type);
        assert!(!stored.contains("connection refused\n"), "raw log stored");
    }
    let sha = a["log"]["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
}
both_backends!(raw_logs_and_secrets_are_not_stored, privacy);

async fn uniqueness(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = s.admin_token.clone();
    let first = analyze(&s, &admin, "test", ATTACK_LOG).await;
    let again = analyze_keyed(&s, &admin, "test", ATTACK_LOG, "second-submission").await;
    let u1 = first["quality"]["uniqueness"].as_u64().unwrap();
    let u2 = again["quality"]["uniqueness"].as_u64().unwrap();
    assert!(u1 >= 70 && u2 <= 10, "first {u1}, repeat {u2}");
    assert_eq!(first["bonuses"]["uniqueness"], true);
    assert_eq!(again["bonuses"]["uniqueness"], false);
    assert!(money(&first["paymentAmount"]) > money(&again["paymentAmount"]));
    // A second process on the same database knows the templates too (loaded from the events'
    // read model at start).
    quiesce(&s).await;
    let location = s.store.location.clone();
    let other = agora_api::app::App::start(
        &location,
        SigningKey::from_bytes(&[1u8; 32]),
        Some(agora_tests::TEST_ADMIN_TOKEN),
        1000,
    )
    .await
    .unwrap();
    let seller = SellerId::parse(SELLER).unwrap();
    let meta =
        agora_commands::CommandMetadata::new("admin", "platform", chrono::Utc::now()).unwrap();
    let (_, third) = other
        .state
        .market
        .market
        .analyse(
            &seller,
            agora_domain::logmarket::analysis::Stage::Test,
            ATTACK_LOG,
            0,
            &meta,
        )
        .await
        .unwrap();
    assert!(
        third.quality.uniqueness <= 10,
        "{}",
        third.quality.uniqueness
    );
    other.shutdown().await;
}
both_backends!(uniqueness_is_judged_against_all_templates_seen, uniqueness);

async fn feedback(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = s.admin_token.clone();
    let reviewer = key(&s, "rev-1", "reviewer").await;
    let client = key(&s, "cli-1", "client").await;
    let a = analyze(&s, &admin, "runtime", ATTACK_LOG).await;
    let id = a["id"].as_str().unwrap();
    let concerns = a["aiInsights"]["securityConcerns"].as_array().unwrap();
    assert!(concerns.len() >= 2, "{a}");
    let (i0, i1) = (concerns[0]["index"].clone(), concerns[1]["index"].clone());
    let path = format!("/npe/log-marketplace/analyses/{id}/feedback");
    let (status, _, _) = s
        .rest(
            "POST",
            &path,
            Some(&client),
            None,
            Some(&json!({"insightIndex": i0, "verdict": "confirmed"})),
        )
        .await;
    assert_eq!(status, 403, "clients give no feedback");
    for (index, verdict) in [(&i0, "confirmed"), (&i1, "false_positive")] {
        let (status, _, r) = s
            .rest(
                "POST",
                &path,
                Some(&reviewer),
                None,
                Some(&json!({"insightIndex": index, "verdict": verdict})),
            )
            .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["agent"], "security-guardian");
    }
    let (status, _, r) = s
        .rest(
            "POST",
            &path,
            Some(&reviewer),
            Some("second-verdict"),
            Some(&json!({"insightIndex": i0, "verdict": "confirmed"})),
        )
        .await;
    assert_eq!(
        (status, r["error"]["code"].as_str()),
        (409, Some("CONFLICT")),
        "once per reviewer"
    );
    let (status, _, _) = s
        .rest(
            "POST",
            &path,
            Some(&reviewer),
            None,
            Some(&json!({"insightIndex": 999, "verdict": "confirmed"})),
        )
        .await;
    assert_eq!(status, 400);
    let agents = get(&s, &admin, "/npe/log-marketplace/agents").await;
    let sec = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "security-guardian")
        .unwrap();
    assert_eq!(sec["stats"]["accuracy"], 50.0, "{sec}");
    let err = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "error-detective")
        .unwrap();
    assert_eq!(err["stats"]["accuracy"], Value::Null);
}
both_backends!(insight_feedback_gives_accuracy, feedback);

async fn read_models(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = s.admin_token.clone();
    let second = key(&s, "sub-pkp-777", "seller").await;
    let (status, _, sim) = s
        .rest(
            "POST",
            "/npe/log-marketplace/simulate",
            Some(&admin),
            Some("sim-1"),
            Some(&json!({"subPKPId": SELLER, "iterations": 12, "autoPay": true})),
        )
        .await;
    assert_eq!(status, 200, "{sim}");
    assert_eq!(sim["simulationComplete"], true);
    assert_eq!(sim["results"].as_array().unwrap().len(), 12);
    // A retry under the same key replays the result: nothing is analysed or paid twice.
    let (_, _, replay) = s
        .rest(
            "POST",
            "/npe/log-marketplace/simulate",
            Some(&admin),
            Some("sim-1"),
            Some(&json!({"subPKPId": SELLER, "iterations": 12, "autoPay": true})),
        )
        .await;
    assert_eq!(replay, sim);
    let (status, _, _) = s
        .rest(
            "POST",
            "/npe/log-marketplace/simulate",
            Some(&second),
            None,
            Some(&json!({"subPKPId": "sub-pkp-777", "iterations": 3})),
        )
        .await;
    assert_eq!(status, 200);
    quiesce(&s).await;

    // Sums over the events.
    let events = read_all(&s.store.store).await;
    let mut paid: BTreeMap<String, Money> = BTreeMap::new();
    let mut logs: HashMap<String, i64> = HashMap::new();
    let mut points: HashMap<String, i64> = HashMap::new();
    let mut insights = 0i64;
    for e in &events {
        if e.aggregate_type == "log_analysis" {
            match serde_json::from_value::<LogAnalysisEvent>(e.payload.clone()).unwrap() {
                LogAnalysisEvent::LogAnalysisRecorded {
                    seller, analysis, ..
                } => {
                    *logs.entry(seller.to_string()).or_default() += 1;
                    insights += analysis.insights.len() as i64;
                }
                LogAnalysisEvent::AnalysisPaid { seller, amount, .. } => {
                    let total = paid.entry(seller.to_string()).or_insert(Money::ZERO);
                    *total = total.checked_add(amount).unwrap();
                }
                _ => {}
            }
        } else if e.aggregate_type == "log_seller" {
            match serde_json::from_value::<SellerEvent>(e.payload.clone()).unwrap() {
                SellerEvent::PointsAwarded { points: p, .. } => {
                    *points.entry(e.aggregate_id.clone()).or_default() += p as i64
                }
                SellerEvent::AchievementUnlocked { xp, .. } => {
                    *points.entry(e.aggregate_id.clone()).or_default() += xp as i64
                }
                _ => {}
            }
        }
    }
    let total_paid = Money::checked_sum(paid.values().copied()).unwrap();
    assert!(total_paid.is_positive(), "the simulation paid something");
    let d = get(&s, &admin, "/npe/log-marketplace/dashboard").await;
    assert_eq!(money(&d["totalPaid"]), total_paid);
    assert_eq!(d["totalInsights"].as_i64().unwrap(), insights);
    assert_eq!(d["totalAnalyses"].as_i64().unwrap(), 15);
    let top = get(&s, &admin, "/npe/log-marketplace/top-earners?limit=10").await;
    for row in top["topEarners"].as_array().unwrap() {
        let seller = row["subPKPId"].as_str().unwrap();
        assert_eq!(
            money(&row["totalEarnings"]),
            paid.get(seller).copied().unwrap_or(Money::ZERO)
        );
        assert_eq!(row["logsSubmitted"].as_i64().unwrap(), logs[seller]);
    }
    let board = get(&s, &admin, "/npe/log-marketplace/leaderboard?limit=10").await;
    for row in board["leaderboard"].as_array().unwrap() {
        let seller = row["subPKPId"].as_str().unwrap();
        assert_eq!(
            row["xp"].as_i64().unwrap(),
            points.get(seller).copied().unwrap_or(0),
            "{row}"
        );
    }
    // The journal agrees with the payments to the cent.
    let balances = s.state.ledger_queries.all_balances().await.unwrap();
    for (seller, amount) in &paid {
        let b = balances
            .iter()
            .find(|b| b.account == format!("seller:{seller}:payable"))
            .unwrap();
        assert_eq!(b.posted, amount.checked_neg().unwrap());
    }
    // Every projection rebuilt from zero equals the live one.
    for projection in
        agora_projections::all_projections(std::sync::Arc::new(SigningKey::from_bytes(&[1u8; 32])))
    {
        let cmp = rebuild_and_compare(&s.store.store, projection.as_ref(), false)
            .await
            .unwrap();
        assert!(cmp.is_equal(), "{cmp:#?}");
    }
    let cmp = rebuild_and_compare(&s.store.store, &LogMarketProjection::default(), false)
        .await
        .unwrap();
    assert!(cmp.is_equal());
}
both_backends!(read_models_equal_event_sums_and_rebuilds, read_models);

/// A crash between the `AnalysisPaid` commit and its settlement: the process manager records
/// the journal entry and the seller's points when the server starts, exactly once.
async fn settlement_after_crash(t: TestStore) {
    use agora_commands::{CommandBus, CommandMetadata, CommitSignal};
    use agora_domain::logmarket::aggregate::{
        split_payment, LogAnalysis, LogAnalysisCommand, PayAuthorisation,
    };
    use agora_domain::logmarket::analysis::{analyse, MarketConfig, Stage};
    use agora_domain::logmarket::insight::Agent;

    let bus: CommandBus<LogAnalysis> = CommandBus::new(&t.store, CommitSignal::new(), ());
    let meta = CommandMetadata::new("admin", "platform", chrono::Utc::now()).unwrap();
    let seller = SellerId::parse(SELLER).unwrap();
    let analysis = analyse(CRASH_LOG, Stage::Runtime, &MarketConfig::default(), &|_| {
        false
    })
    .unwrap();
    let price = analysis.payment;
    let record = LogAnalysisCommand::Record {
        seller: seller.clone(),
        stage: Stage::Runtime,
        analysis: Box::new(analysis),
        claimed_templates: vec![],
        occurred_at: meta.occurred_at,
    };
    bus.execute("analysis-crash", record, &meta).await.unwrap();
    let pay = LogAnalysisCommand::Pay {
        transaction_id: "txn-crash".into(),
        seller,
        amount: price,
        journal_entry_id: "logpay-analysis-crash".into(),
        agent_shares: split_payment(price, &Agent::ALL),
        authorisation: PayAuthorisation::Operator {
            principal: "admin".into(),
        },
        occurred_at: meta.occurred_at,
    };
    bus.execute("analysis-crash", pay, &meta).await.unwrap();
    // The process died here: no journal entry, no points.
    assert!(!read_all(&t.store)
        .await
        .iter()
        .any(|e| e.aggregate_type == "journal_entry"));

    let s = TestServer::start(t).await;
    quiesce(&s).await;
    let events = read_all(&s.store.store).await;
    let entries: Vec<_> = events
        .iter()
        .filter(|e| e.aggregate_type == "journal_entry")
        .collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].aggregate_id, "logpay-analysis-crash");
    let awarded = events
        .iter()
        .filter(|e| e.event_type == "PointsAwarded")
        .count();
    assert_eq!(awarded, 1);
    let profile = get(
        &s,
        &s.admin_token,
        &format!("/npe/log-marketplace/sellers/{SELLER}"),
    )
    .await;
    assert_eq!(money(&profile["earnings"]), price);
    // A second start (the process manager's checkpoint already moved) changes nothing.
    let other = agora_api::app::App::start(
        &s.store.location,
        SigningKey::from_bytes(&[1u8; 32]),
        Some(agora_tests::TEST_ADMIN_TOKEN),
        1000,
    )
    .await
    .unwrap();
    other.shutdown().await;
    let again = read_all(&s.store.store).await;
    assert_eq!(
        again
            .iter()
            .filter(|e| e.aggregate_type == "journal_entry")
            .count(),
        1
    );
}
both_backends!(
    process_manager_settles_after_a_crash,
    settlement_after_crash
);

/// `logAnalyses` streams new analyses: a seller sees its own only; a client is refused.
async fn subscription(t: TestStore) {
    use futures::StreamExt;

    let s = TestServer::start(t).await;
    let seller = key(&s, SELLER, "seller").await;
    let other = key(&s, "sub-pkp-999", "seller").await;
    let client = key(&s, "cli-9", "client").await;
    let query = "subscription { logAnalyses { id subPKPId source valueScore paymentAmount } }";
    let req = async_graphql::Request::new(query)
        .data(s.state.clone())
        .data(s.request_context(&client).await);
    let mut denied = s.state.schema.execute_stream(req);
    let first = denied.next().await.unwrap();
    assert_eq!(
        first.errors[0]
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|v| v.to_string()),
        Some("\"FORBIDDEN\"".into())
    );

    let req = async_graphql::Request::new(query)
        .data(s.state.clone())
        .data(s.request_context(&seller).await);
    let mut stream = s.state.schema.execute_stream(req);
    let writer = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Another seller's analysis first: not delivered to this subscriber.
        let (status, _, _) = s
            .rest(
                "POST",
                "/npe/log-marketplace/analyze",
                Some(&other),
                None,
                Some(
                    &json!({"source": "build", "logContent": CLEAN_LOG, "subPKPId": "sub-pkp-999"}),
                ),
            )
            .await;
        assert_eq!(status, 200);
        analyze(&s, &seller, "runtime", CRASH_LOG).await
    };
    let reader = async {
        let item = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an analysis within 20 s")
            .expect("stream open");
        assert!(item.errors.is_empty(), "{:?}", item.errors);
        item.data.into_json().unwrap()
    };
    let (mine, seen) = tokio::join!(writer, reader);
    assert_eq!(seen["logAnalyses"]["id"], mine["id"]);
    assert_eq!(seen["logAnalyses"]["subPKPId"], SELLER);
    assert_eq!(seen["logAnalyses"]["paymentAmount"], mine["paymentAmount"]);
}
both_backends!(subscription_streams_new_analyses, subscription);

/// The rest of the GraphQL surface: batch, simulate, seller lists, feedback, keys, trends.
async fn graphql_surface(t: TestStore) {
    let s = TestServer::start(t).await;
    let admin = Some(s.admin_token.as_str());
    let r = s
        .graphql(
            admin,
            "mutation($logs: [BatchLogInput!]!) { batchAnalyzeLogs(subPKPId: \"sub-pkp-12345\", logs: $logs, idempotencyKey: \"b-1\") {
               totalLogs totalPayable averageValue results { id source } } }",
            json!({"logs": [{"source": "build", "content": CLEAN_LOG}, {"source": "test", "content": ATTACK_LOG}]}),
        )
        .await;
    assert_eq!(r["data"]["batchAnalyzeLogs"]["totalLogs"], 2, "{r}");
    let bad = s
        .graphql(
            admin,
            "mutation { batchAnalyzeLogs(subPKPId: \"sub-pkp-12345\", logs: [{source: \"prod\", content: \"x\"}], idempotencyKey: \"b-2\") { totalLogs } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&bad), Some("BAD_USER_INPUT"));
    let sim = s
        .graphql(
            admin,
            "mutation { simulateLogs(subPKPId: \"sub-pkp-12345\", iterations: 5, autoPay: true, idempotencyKey: \"s-1\") {
               iterations totalPayable totalPaid results { id } payments { transactionId amount } } }",
            json!({}),
        )
        .await;
    let v = &sim["data"]["simulateLogs"];
    assert_eq!(v["results"].as_array().unwrap().len(), 5, "{sim}");
    let paid = Money::checked_sum(
        v["payments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| money(&p["amount"])),
    )
    .unwrap();
    assert_eq!(money(&v["totalPaid"]), paid);
    let list = s
        .graphql(
            admin,
            "{ sellerAnalyses(subPKPId: \"sub-pkp-12345\", paidOnly: true, limit: 50) { id paid transactionId } }",
            json!({}),
        )
        .await;
    let rows = list["data"]["sellerAnalyses"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        v["payments"].as_array().unwrap().len(),
        "{list}"
    );
    assert!(rows.iter().all(|r| r["paid"] == true));

    let reviewer = key(&s, "rev-2", "reviewer").await;
    let attack_id = r["data"]["batchAnalyzeLogs"]["results"][1]["id"]
        .as_str()
        .unwrap();
    let fb = s
        .graphql(
            Some(&reviewer),
            "mutation($id: String!) { recordInsightFeedback(analysisId: $id, insightIndex: 0, verdict: \"confirmed\", idempotencyKey: \"f-1\") }",
            json!({"id": attack_id}),
        )
        .await;
    assert!(fb["data"]["recordInsightFeedback"].is_string(), "{fb}");
    let badv = s
        .graphql(
            Some(&reviewer),
            "mutation($id: String!) { recordInsightFeedback(analysisId: $id, insightIndex: 0, verdict: \"maybe\", idempotencyKey: \"f-2\") }",
            json!({"id": attack_id}),
        )
        .await;
    assert_eq!(error_code(&badv), Some("BAD_USER_INPUT"));
    let agents = s
        .graphql(
            admin,
            "{ logMarketAgents { id accuracy confirmed } }",
            json!({}),
        )
        .await;
    let with_feedback: Vec<&Value> = agents["data"]["logMarketAgents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["confirmed"] == 1)
        .collect();
    assert_eq!(with_feedback.len(), 1, "{agents}");
    assert_eq!(with_feedback[0]["accuracy"], 100.0);

    let badkey = s
        .graphql(
            admin,
            "mutation { registerSellerKey(subPKPId: \"sub-pkp-12345\", publicKey: \"abcd\", idempotencyKey: \"k-1\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&badkey), Some("BAD_USER_INPUT"));
    let trends = s
        .graphql(
            admin,
            "{ logMarketQualityTrends { currentTrends { averageQuality averageROI } insights { metric status } recommendations daily { day analyses } }
               logMarketLeaderboard(limit: 5) { rank subPKPId xp } }",
            json!({}),
        )
        .await;
    assert_eq!(
        trends["data"]["logMarketQualityTrends"]["insights"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{trends}"
    );
    assert_eq!(
        trends["data"]["logMarketQualityTrends"]["daily"][0]["analyses"],
        7
    );
    assert_eq!(
        trends["data"]["logMarketLeaderboard"][0]["subPKPId"],
        SELLER
    );
}
both_backends!(graphql_marketplace_surface, graphql_surface);
