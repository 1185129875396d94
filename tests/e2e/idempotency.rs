//! One client intent acts once, on both backends: retryable outcomes are not stored, concurrent
//! requests with one key run once (counted), a running request keeps its key until it ends, a
//! dead one's key is taken over, REST keys are checked and scoped by tenant, and a request
//! retried after its first run's answer was lost gets that first outcome.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agora_api::graphql::auth::Principal;
use agora_api::graphql::error::ApiError;
use agora_api::graphql::idempotency::Idempotency;
use agora_api::lapverse::demo::ensure_demo_tenant;
use agora_commands::CommandMetadata;
use agora_domain::access::Role;
use agora_domain::logmarket::analysis::{SellerId, Stage};
use agora_tests::{both_backends, http_request_full, read_all, TestServer, TestStore};
use futures::future::join_all;
use serde_json::{json, Value};

fn principal() -> Principal {
    Principal {
        key_id: "k1".into(),
        name: "alice".into(),
        role: Role::Admin,
        tenant: "platform".into(),
    }
}

async fn retryable_outcomes(t: TestStore) {
    let s = TestServer::start(t).await;
    let idem = &s.state.idempotency;
    let p = principal();
    let runs = AtomicU32::new(0);
    let req = json!({"op": "x"});
    for error in [
        ApiError::Busy("moving".into()),
        ApiError::Throttled,
        ApiError::ErrorBudgetExhausted("spent".into()),
        ApiError::Internal("boom".into()),
    ] {
        let out: Result<u32, ApiError> = idem
            .once(&p, "retry-me", &req, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Err(error.clone())
            })
            .await;
        assert_eq!(out.unwrap_err().code(), error.code());
    }
    // None of those was stored: the next try runs, and its success is what retries get.
    let out: u32 = idem
        .once(&p, "retry-me", &req, || async {
            Ok(runs.fetch_add(1, Ordering::SeqCst) + 1)
        })
        .await
        .unwrap();
    assert_eq!((out, runs.load(Ordering::SeqCst)), (5, 5));
    let again: u32 = idem
        .once(&p, "retry-me", &req, || async { Ok(99) })
        .await
        .unwrap();
    assert_eq!(again, 5);
    // A refusal that retrying cannot change is stored like a success.
    let refused: Result<u32, ApiError> = idem
        .once(&p, "refused", &req, || async {
            Err(ApiError::Conflict("already paid".into()))
        })
        .await;
    let replayed: Result<u32, ApiError> = idem.once(&p, "refused", &req, || async { Ok(1) }).await;
    assert_eq!(refused.unwrap_err(), replayed.unwrap_err());
}
both_backends!(retryable_outcomes_are_never_stored, retryable_outcomes);

/// Eight concurrent requests under one key: the work runs once (counted, not inferred from an
/// idempotent aggregate), all eight get its outcome.
async fn concurrent_once(t: TestStore) {
    let s = TestServer::start(t).await;
    let idem = s.state.idempotency.clone();
    let runs = Arc::new(AtomicU32::new(0));
    let calls = (0..8).map(|_| {
        let (idem, runs) = (idem.clone(), runs.clone());
        async move {
            idem.once(&principal(), "one-key", &json!({"op": "slow"}), || async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok::<u32, ApiError>(runs.fetch_add(1, Ordering::SeqCst) + 1)
            })
            .await
        }
    });
    let outcomes: Vec<u32> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("every caller gets the outcome"))
        .collect();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(outcomes, vec![1; 8]);
}
both_backends!(
    eight_concurrent_requests_with_one_key_run_once,
    concurrent_once
);

/// A request that runs longer than the takeover period keeps its key (it renews it); a key
/// whose request died (no renewal) is taken over by a retry.
async fn pending_ownership(t: TestStore) {
    let s = TestServer::start(t).await;
    // Renewed every 200 ms, taken over after 3 s without renewal; the request runs 5 s.
    let idem = Idempotency::with_timing(s.store.store.durable().clone(), 3_000, 200)
        .with_gate(s.store.store.write_gate());
    let runs = Arc::new(AtomicU32::new(0));
    let slow = {
        let (idem, runs) = (idem.clone(), runs.clone());
        tokio::spawn(async move {
            idem.once(&principal(), "slow", &json!({}), || async {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5_000)).await;
                Ok::<u32, ApiError>(1)
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let second = idem
        .once(&principal(), "slow", &json!({}), || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<u32, ApiError>(2)
        })
        .await
        .unwrap();
    assert_eq!((second, slow.await.unwrap().unwrap()), (1, 1));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "a slow request was run twice"
    );

    // A dead request's record: pending, owned by nobody alive, never renewed.
    let scope = "platform/alice";
    sqlx::query(
        "INSERT INTO idempotency_records (principal, key, request_hash, state, created_at_us, \
         updated_at_us, owner) VALUES ($1, 'dead', $2, 'pending', 1, 1, 'gone')",
    )
    .bind(scope)
    .bind(agora_api::graphql::auth::sha256_hex(&json!({}).to_string()))
    .execute(s.store.store.durable())
    .await
    .unwrap();
    let taken = idem
        .once(&principal(), "dead", &json!({}), || async {
            Ok::<u32, ApiError>(3)
        })
        .await
        .unwrap();
    assert_eq!(taken, 3);
}
both_backends!(a_running_request_owns_its_key, pending_ownership);

async fn rest_call(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, Value) {
    let mut all = vec![
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {}", s.admin_token)),
    ];
    all.extend(headers.iter().map(|(k, v)| (*k, v.to_string())));
    let (status, _, text) = http_request_full(s.addr, method, path, &all, &body.to_string()).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// REST keys: a non-ASCII key is refused (not ignored), a 200-character key is accepted as the
/// OpenAPI document says, and a Lap-Verse key is scoped by `X-Tenant-ID`.
async fn rest_keys(t: TestStore) {
    let s = TestServer::start(t).await;
    ensure_demo_tenant(&s.state.lapverse.service).await.unwrap();
    let r = s
        .graphql(
            Some(&s.admin_token),
            "mutation { registerTenant(input: {id: \"globex\", name: \"Globex\", mrr: \"50000.00\", costCenter: \"ops\"}, idempotencyKey: \"g\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["registerTenant"]["id"], "globex", "{r}");
    let analyze = json!({"source": "build", "logContent": "ERROR boom\n", "subPKPId": "sub-pkp-1"});
    let (status, body) = rest_call(
        &s,
        "POST",
        "/npe/log-marketplace/analyze",
        &[("idempotency-key", "cl\u{e9}-1")],
        &analyze,
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("BAD_USER_INPUT")),
        "{body}"
    );
    // One 200-character key (the OpenAPI limit) sent for two tenants.
    let long = "k".repeat(200);
    let post_task = |tenant: &'static str| {
        let (s, long) = (&s, long.clone());
        async move {
            let body = json!({"type": "LOG_ANALYSIS", "description": "scoped", "tenant": tenant,
                              "log": "ERROR boom\n"});
            let headers = [("idempotency-key", long.as_str()), ("x-tenant-id", tenant)];
            rest_call(s, "POST", "/api/v2/tasks", &headers, &body).await
        }
    };
    let (status, acme) = post_task("acme").await;
    assert_eq!(status, 202, "{acme}");
    let (status, globex) = post_task("globex").await;
    assert_eq!(status, 202, "{globex}");
    assert_ne!(
        acme["taskId"], globex["taskId"],
        "another tenant's task returned"
    );
    let (status, again) = post_task("globex").await;
    assert_eq!((status, &again["taskId"]), (202, &globex["taskId"]));
}
both_backends!(rest_keys_are_checked_and_scoped, rest_keys);

/// A round whose series can only fail is refused before acceptance: 400, no charge, and the
/// tenant's error budget untouched.
async fn hopeless_round(t: TestStore) {
    let s = TestServer::start(t).await;
    ensure_demo_tenant(&s.state.lapverse.service).await.unwrap();
    let body = json!({"content": "one value", "tenant": "acme", "series": {"values": [5.0]}});
    let (status, r) = rest_call(
        &s,
        "POST",
        "/api/v2/self-compete",
        &[("idempotency-key", "one-value"), ("x-tenant-id", "acme")],
        &body,
    )
    .await;
    assert_eq!(
        (status, &r["error"]["code"]),
        (400, &json!("BAD_USER_INPUT")),
        "{r}"
    );
    let events = read_all(&s.store.store).await;
    assert!(
        events
            .iter()
            .all(|e| e.aggregate_type != "competition" && e.event_type != "CostCharged"),
        "nothing accepted or charged"
    );
}
both_backends!(
    a_round_that_can_only_fail_is_refused_up_front,
    hopeless_round
);

/// The first run recorded its result but its answer was lost (the process died before the
/// idempotency record was stored): the retry under the same key gets that result, not a second
/// analysis or a 409 for its own payment.
async fn lost_answers(t: TestStore) {
    let s = TestServer::start(t).await;
    let market = &s.state.market.market;
    let seller = SellerId::parse("sub-pkp-1").unwrap();
    let meta = CommandMetadata::new("alice", "platform", chrono::Utc::now())
        .unwrap()
        .with_idempotency_key("analyze-1")
        .unwrap();
    let log = "ERROR database connection refused\n";
    let (first, _) = market
        .analyse(&seller, Stage::Runtime, log, 0, &meta)
        .await
        .unwrap();
    let (retried, _) = market
        .analyse(&seller, Stage::Runtime, log, 0, &meta)
        .await
        .unwrap();
    assert_eq!(first, retried);
    let (other, _) = market
        .analyse(&seller, Stage::Runtime, log, 1, &meta)
        .await
        .unwrap();
    assert_ne!(
        first, other,
        "another log of the same request is another analysis"
    );
    let recorded = read_all(&s.store.store)
        .await
        .into_iter()
        .filter(|e| e.event_type == "LogAnalysisRecorded")
        .count();
    assert_eq!(recorded, 2);

    let pay_meta = meta.clone().with_idempotency_key("pay-1").unwrap();
    let operator = || agora_commands::logmarket::PayAuth::Operator("alice".into());
    let paid = market
        .pay(&first, &seller, operator(), &pay_meta)
        .await
        .unwrap();
    let again = market
        .pay(&first, &seller, operator(), &pay_meta)
        .await
        .unwrap();
    assert_eq!(paid.transaction_id, again.transaction_id);
    assert_eq!(paid.amount, again.amount);
    let other_key = meta.clone().with_idempotency_key("pay-2").unwrap();
    assert!(market
        .pay(&first, &seller, operator(), &other_key)
        .await
        .is_err());
    let payments = read_all(&s.store.store)
        .await
        .into_iter()
        .filter(|e| e.event_type == "AnalysisPaid")
        .count();
    assert_eq!(payments, 1);
}
both_backends!(
    a_retry_after_a_lost_answer_gets_the_first_outcome,
    lost_answers
);

/// Many tasks submitted at once for one tenant (all contending on its month budget): every one
/// is answered 202 (never a retryable 409 for accepted work), and every accepted task is charged
/// exactly once, each charge with its journal entry.
async fn concurrent_submissions(t: TestStore) {
    let s = TestServer::start(t).await;
    ensure_demo_tenant(&s.state.lapverse.service).await.unwrap();
    const N: usize = 64;
    let calls = (0..N).map(|i| {
        let s = &s;
        async move {
            let body = json!({"type": "LOG_ANALYSIS", "description": "burst", "tenant": "acme",
                              "log": "ERROR boom\n"});
            let key = format!("burst-{i}");
            let headers = [("idempotency-key", key.as_str()), ("x-tenant-id", "acme")];
            rest_call(s, "POST", "/api/v2/tasks", &headers, &body).await
        }
    });
    let answers = join_all(calls).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 202, "{body}");
            body["taskId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), N);
    // Deferred settlements are finished by the process manager: wait for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let events = read_all(&s.store.store).await;
        let charged: Vec<String> = events
            .iter()
            .filter(|e| e.event_type == "CostCharged")
            .map(|e| {
                e.payload["CostCharged"]["work_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let entries = events
            .iter()
            .filter(|e| {
                e.aggregate_type == "journal_entry" && e.aggregate_id.starts_with("lvcost-")
            })
            .count();
        let distinct: std::collections::BTreeSet<&String> = charged.iter().collect();
        assert_eq!(distinct.len(), charged.len(), "a task charged twice");
        if charged.len() == N && entries == N {
            assert!(charged.iter().all(|id| ids.contains(id)));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} charges and {entries} journal entries for {N} accepted tasks",
            charged.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
both_backends!(
    concurrent_submissions_are_accepted_and_charged_once,
    concurrent_submissions
);
