//! Tenants, tasks and self-compete rounds over HTTP against the real server: the seed's smoke
//! test, idempotent replays, the 402 / 503 / 404 paths (never charged), retries with recorded
//! reasons, work surviving a restart, chargeback equal to the journal, webhooks to a real local
//! server, the export, and GraphQL administration.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agora_api::app::{App, AppOptions, FaultHook};
use agora_api::lapverse::demo::{demo_series, ensure_demo_tenant};
use agora_commands::lapverse::FaultInjector;
use agora_domain::money::Money;
use agora_domain::tenancy::budget::{BudgetEvent, WorkKind};
use agora_projections::lapverse::LapVerseProjection;
use agora_projections::rebuild::rebuild_and_compare;
use agora_tests::{both_backends, error_code, http_request_full, read_all, TestServer, TestStore};
use serde_json::{json, Value};

/// Fails the first `n` attempts of every item (or all, with `u32::MAX`).
struct FailFirst(u32);

impl FaultInjector for FailFirst {
    fn before_attempt(&self, _kind: WorkKind, _id: &str, attempt: u32) -> Option<String> {
        (attempt <= self.0).then(|| format!("injected failure on attempt {attempt}"))
    }
}

fn options(faults: Option<Arc<dyn FaultInjector>>, workers: bool) -> AppOptions {
    let mut o = AppOptions {
        rate_limit_per_minute: 1_000,
        workers,
        faults: faults.map(FaultHook),
        ..AppOptions::default()
    };
    o.market.rate_limit_per_minute = 1_000;
    o.lapverse.poll = Duration::from_millis(50);
    o
}

async fn server(t: TestStore) -> TestServer {
    TestServer::start_with(t, options(None, true)).await
}

/// A REST call with the Lap-Verse headers.
async fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    tenant: Option<&str>,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, String, Value) {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {}", s.admin_token)),
    ];
    if let Some(t) = tenant {
        headers.push(("x-tenant-id", t.to_string()));
    }
    if let Some(k) = key {
        headers.push(("idempotency-key", k.to_string()));
    }
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, head, body) = http_request_full(s.addr, method, path, &headers, &text).await;
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, head, json)
}

/// `POST /api/v2/tasks` as the admin for `tenant` under `key`.
async fn post_task(s: &TestServer, tenant: &str, key: &str, body: &Value) -> (u16, String, Value) {
    call(
        s,
        "POST",
        "/api/v2/tasks",
        Some(tenant),
        Some(key),
        Some(body),
    )
    .await
}

/// `POST /api/v2/self-compete` as the admin for `tenant` under `key`.
async fn post_round(s: &TestServer, tenant: &str, key: &str, body: &Value) -> (u16, String, Value) {
    call(
        s,
        "POST",
        "/api/v2/self-compete",
        Some(tenant),
        Some(key),
        Some(body),
    )
    .await
}

async fn gql(s: &TestServer, query: &str, vars: Value) -> Value {
    s.graphql(Some(&s.admin_token), query, vars).await
}

const REGISTER: &str = "mutation($i: RegisterTenantInput!, $k: String) {
    registerTenant(input: $i, idempotencyKey: $k) { id mrr productionVariant slo { exhausted } } }";

async fn register(s: &TestServer, id: &str, mrr: &str) {
    let r = gql(
        s,
        REGISTER,
        json!({"i": {"id": id, "name": format!("Tenant {id}"), "mrr": mrr, "costCenter": "general"},
               "k": format!("reg-{id}")}),
    )
    .await;
    assert_eq!(r["data"]["registerTenant"]["id"], id, "{r}");
    let r = gql(
        s,
        "mutation($t: String!, $s: SeriesInputGql!, $k: String) {
            setTenantSeries(tenant: $t, series: $s, idempotencyKey: $k) { seriesPoints } }",
        json!({"t": id, "s": {"values": demo_series().values, "seasonLength": 12}, "k": format!("series-{id}")}),
    )
    .await;
    assert_eq!(r["data"]["setTenantSeries"]["seriesPoints"], 48, "{r}");
}

/// Polls `GET path` until `status` is one of `want`.
async fn wait_for(s: &TestServer, path: &str, want: &[&str]) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (code, _, body) = call(s, "GET", path, None, None, None).await;
        if code == 200 && want.contains(&body["status"].as_str().unwrap_or_default()) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never reached {want:?}: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn seed_task() -> Value {
    json!({
        "type": "ANALYSIS",
        "priority": "high",
        "description": "Forecast Q3 revenue",
        "tenant": "acme",
        "platforms": ["twitter"],
        "costCenter": "campaign-9000"
    })
}

fn seed_competition() -> Value {
    json!({
        "content": "Q3 revenue forecast",
        "platforms": ["twitter"],
        "priority": "high",
        "costCenter": "campaign-9000"
    })
}

/// Sum of charges minus refunds recorded on the tenant's budget events.
async fn charged_in_events(s: &TestServer, tenant: &str) -> Money {
    let mut total = Money::ZERO;
    for e in read_all(&s.store.store).await {
        if e.aggregate_type != "tenant_budget" || !e.aggregate_id.starts_with(&format!("{tenant}:"))
        {
            continue;
        }
        match serde_json::from_value::<BudgetEvent>(e.payload).unwrap() {
            BudgetEvent::CostCharged { amount, .. } => total = total.checked_add(amount).unwrap(),
            BudgetEvent::CostRefunded { amount, .. } => total = total.checked_sub(amount).unwrap(),
        }
    }
    total
}

/// The seed's Quick Smoke Test (with an API key header added): a task, a round, then the
/// win-rate metric. The demo tenant is what `cargo run` registers on a fresh embedded store.
async fn seed_smoke_test(t: TestStore) {
    let s = server(t).await;
    ensure_demo_tenant(&s.state.lapverse.service).await.unwrap();

    let (code, _, task) = post_task(&s, "acme", "smoke-task-1", &seed_task()).await;
    assert_eq!(code, 202, "{task}");
    assert_eq!(task["status"], "accepted");
    let task_id = task["taskId"].as_str().unwrap().to_string();

    let (code, _, round) = post_round(&s, "acme", "smoke-round-1", &seed_competition()).await;
    assert_eq!(code, 202, "{round}");
    let round_id = round["competitionId"].as_str().unwrap().to_string();

    let done = wait_for(&s, &format!("/api/v2/tasks/{task_id}"), &["completed"]).await;
    assert_eq!(done["type"], "ANALYSIS");
    assert_eq!(done["result"]["observations"], 48, "{done}");
    assert_eq!(done["result"]["seasonLength"], 12, "{done}");
    assert_eq!(done["cost"], "0.01");
    assert_eq!(done["tags"]["costCenter"], "campaign-9000");

    let round = wait_for(
        &s,
        &format!("/api/v2/self-compete/{round_id}"),
        &["completed"],
    )
    .await;
    assert_eq!(round["cost"], "0.08");
    assert_eq!(round["tags"]["tenantId"], "acme");
    assert_eq!(round["tags"]["application"], "lapverse-monitoring");
    assert!(round["champion"].is_string(), "{round}");
    assert_eq!(round["entries"].as_array().unwrap().len(), 4);

    let (code, metrics) = s.get("/metrics").await;
    assert_eq!(code, 200);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("lapverse_win_rate "))
        .unwrap_or_else(|| panic!("no lapverse_win_rate in\n{metrics}"));
    let value: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let delta: f64 = round["winRateDelta"].as_str().unwrap().parse().unwrap();
    assert!((value - delta).abs() < 1e-9, "{line} vs {delta}");
    assert!(
        metrics.contains("lapverse_tasks_total{tenant=\"acme\",type=\"ANALYSIS\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("lapverse_competitions_total{tenant=\"acme\"} 1"));
    assert!(metrics.contains("lapverse_cost_per_competition{tenant=\"acme\"} 0.08"));
    assert!(metrics.contains("lapverse_task_duration_ms_bucket"));
    assert!(metrics.contains("lapverse_budget_burn_rate{tenant=\"acme\"}"));

    // Status shows the SLO and the month's spend per cost center, exactly the journal's.
    let (code, _, status) = call(&s, "GET", "/api/status", Some("acme"), None, None).await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["slo"], 0.0);
    assert_eq!(status["cost"]["campaign-9000"], "0.09", "{status}");
    assert_eq!(status["errorBudget"]["exhausted"], false);
    assert_eq!(status["monthToDate"], "0.09");
    // Every event of the work carries the FinOps tags in its metadata.
    for e in read_all(&s.store.store).await {
        if e.aggregate_type == "task" || e.aggregate_type == "competition" {
            assert_eq!(e.meta("tag.costCenter"), Some("campaign-9000"), "{e:?}");
            assert_eq!(e.meta("tag.tenantId"), Some("acme"));
            assert!(e.meta("tag.owner").is_some() && e.meta("tag.version").is_some());
        }
    }
}
both_backends!(smoke_test_runs_as_written, seed_smoke_test);

async fn idempotent_replays(t: TestStore) {
    let s = server(t).await;
    register(&s, "replay", "1000.00").await;
    let body = json!({"type": "FORECAST", "description": "next quarter", "horizon": 6});
    let (c1, _, a) = post_task(&s, "replay", "k-1", &body).await;
    let (c2, _, b) = post_task(&s, "replay", "k-1", &body).await;
    assert_eq!((c1, c2), (202, 202), "{a} {b}");
    assert_eq!(a["taskId"], b["taskId"]);
    // The same key with another body is refused; nothing new is recorded.
    let other = json!({"type": "FORECAST", "description": "something else"});
    let (c3, _, e) = post_task(&s, "replay", "k-1", &other).await;
    assert_eq!(c3, 409, "{e}");
    let id = a["taskId"].as_str().unwrap();
    let done = wait_for(&s, &format!("/api/v2/tasks/{id}"), &["completed"]).await;
    let points = done["result"]["forecast"]["point"].as_array().unwrap();
    assert_eq!(points.len(), 6, "{done}");
    assert_eq!(done["variant"], "balanced");
    let accepted = read_all(&s.store.store)
        .await
        .iter()
        .filter(|e| e.event_type == "TaskAccepted")
        .count();
    assert_eq!(accepted, 1);
    assert_eq!(
        charged_in_events(&s, "replay").await,
        Money::parse("0.01").unwrap()
    );
    // A replay after completion answers with the same id.
    let (c4, _, again) = post_task(&s, "replay", "k-1", &body).await;
    assert_eq!((c4, &again["taskId"]), (202, &a["taskId"]));
    // Another key of the same tenant: the same request under the key is the same task; a
    // different request under it is refused.
    let r = gql(
        &s,
        "mutation { createApiKey(input: {principal: \"replay-app\", role: \"client\", tenant: \"replay\"}, idempotencyKey: \"key-1\") { token } }",
        json!({}),
    )
    .await;
    let token = r["data"]["createApiKey"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let post = |tenant: &str, key: &str, b: &Value| {
        let headers = vec![
            ("content-type", "application/json".to_string()),
            ("authorization", format!("Bearer {token}")),
            ("x-tenant-id", tenant.to_string()),
            ("idempotency-key", key.to_string()),
        ];
        let text = b.to_string();
        let addr = s.addr;
        async move { http_request_full(addr, "POST", "/api/v2/tasks", &headers, &text).await }
    };
    let (c5, _, same) = post("replay", "k-1", &body).await;
    assert_eq!(c5, 202, "{same}");
    assert!(same.contains(a["taskId"].as_str().unwrap()), "{same}");
    let (c6, _, e) = post("replay", "k-1", &other).await;
    assert_eq!(c6, 409, "{e}");
    assert!(e.contains("IDEMPOTENCY_CONFLICT"), "{e}");
    // A tenant key cannot act for another tenant.
    let (c7, _, e) = post("acme", "k-9", &seed_task()).await;
    assert_eq!(c7, 403, "{e}");
}
both_backends!(idempotent_replays_return_the_same_work, idempotent_replays);

async fn refusals(t: TestStore) {
    let s = server(t).await;
    // MRR 0.10 → limit 0.07 a month; projected month-end spend of one 0.08 expert task exceeds it
    // (the elapsed time is floored at one day, so the projection is at least ×28).
    register(&s, "poor", "0.10").await;
    let body =
        json!({"type": "ANALYSIS", "description": "x", "requirements": {"complexity": "expert"}});
    let (code, _, e) = post_task(&s, "poor", "p-1", &body).await;
    assert_eq!(code, 402, "{e}");
    assert_eq!(e["error"]["code"], "MARGIN_GUARDRAIL_EXCEEDED");
    // Replaying the refused request refuses it again.
    let (code, _, _) = post_task(&s, "poor", "p-1", &body).await;
    assert_eq!(code, 402);
    let (code, _, e) = post_round(&s, "poor", "p-2", &seed_competition()).await;
    assert_eq!(code, 402, "{e}");
    assert_eq!(charged_in_events(&s, "poor").await, Money::ZERO);
    let events = read_all(&s.store.store).await;
    assert!(events
        .iter()
        .all(|e| e.aggregate_type != "journal_entry"
            || !e.payload.to_string().contains("tenant:poor")));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "TaskRejected")
            .count(),
        1
    );

    // A flag turned off for the type: 404, nothing recorded.
    register(&s, "flagged", "1000.00").await;
    let r = gql(
        &s,
        "mutation { setTenantFlag(tenant: \"flagged\", flag: \"task.forecast\", enabled: false, rolloutPercent: 100, idempotencyKey: \"f-1\") { flags { name enabled } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        r["data"]["setTenantFlag"]["flags"][0]["name"], "task.forecast",
        "{r}"
    );
    let forecast = json!({"type": "FORECAST", "description": "x"});
    let (code, _, e) = post_task(&s, "flagged", "f-2", &forecast).await;
    assert_eq!(code, 404, "{e}");
    assert_eq!(e["error"]["code"], "FEATURE_NOT_AVAILABLE");
    // Other types stay available.
    let (code, _, _) = post_task(&s, "flagged", "f-3", &seed_task_for("flagged")).await;
    assert_eq!(code, 202);

    // Unknown tenant, missing headers, bad bodies.
    let (code, _, e) = post_task(&s, "nobody", "n-1", &seed_task_for("nobody")).await;
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (404, Some("TENANT_NOT_FOUND")),
        "{e}"
    );
    let (code, _, e) = call(
        &s,
        "POST",
        "/api/v2/tasks",
        Some("flagged"),
        None,
        Some(&seed_task_for("flagged")),
    )
    .await;
    assert_eq!(code, 400, "{e}");
    assert!(
        e["error"]["problems"]
            .to_string()
            .contains("Idempotency-Key"),
        "{e}"
    );
    let (code, _, e) = post_task(&s, "flagged", "b-1", &json!({"type": "ANALYSIS"})).await;
    assert_eq!(code, 400, "{e}");
    assert!(
        e["error"]["problems"].to_string().contains("description"),
        "{e}"
    );
    let (code, _, e) = post_task(
        &s,
        "flagged",
        "b-2",
        &json!({"type": "TELEPORT", "description": "x"}),
    )
    .await;
    assert_eq!(code, 400, "{e}");
    let (code, _, e) = post_task(&s, "other", "b-3", &seed_task_for("flagged")).await;
    assert_eq!(code, 400, "{e}");
}
both_backends!(
    guardrail_flags_and_validation_refuse_without_charging,
    refusals
);

fn seed_task_for(tenant: &str) -> Value {
    let mut b = seed_task();
    b["tenant"] = json!(tenant);
    b
}

/// Failing work is retried three times with backoff, the reasons are recorded, the charge is
/// refunded; with the error budget spent, new work gets 503 and is not charged.
async fn failures_spend_the_error_budget(t: TestStore) {
    let s = TestServer::start_with(t, options(Some(Arc::new(FailFirst(u32::MAX))), true)).await;
    register(&s, "flaky", "1000.00").await;
    let (code, _, a) = post_task(&s, "flaky", "x-1", &seed_task_for("flaky")).await;
    assert_eq!(code, 202, "{a}");
    let id = a["taskId"].as_str().unwrap();
    let failed = wait_for(&s, &format!("/api/v2/tasks/{id}"), &["failed"]).await;
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["lastError"], "injected failure on attempt 3");
    let events = read_all(&s.store.store).await;
    let retries: Vec<Value> = events
        .iter()
        .filter(|e| e.aggregate_id == id && e.event_type == "TaskAttemptFailed")
        .map(|e| e.payload["TaskAttemptFailed"].clone())
        .collect();
    assert_eq!(retries.len(), 3);
    // Backoff: the retry is scheduled 1 s, then 2 s after the failure.
    for (r, secs) in retries.iter().zip([1i64, 2]) {
        let at: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(r["occurred_at"].clone()).unwrap();
        let retry: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(r["retry_at"].clone()).unwrap();
        assert_eq!((retry - at).num_seconds(), secs, "{r}");
    }
    // Refunded: the journal nets to zero for the tenant.
    wait_until(|| async { charged_in_events(&s, "flaky").await == Money::ZERO }).await;

    // One failure of one finished item: 100 % errors against a 1 % budget.
    let (code, head, e) = post_task(&s, "flaky", "x-2", &seed_task_for("flaky")).await;
    assert_eq!(code, 503, "{e}");
    assert_eq!(e["error"]["code"], "ERROR_BUDGET_EXHAUSTED");
    assert!(head.contains("retry-after"), "{head}");
    let (code, _, status) = call(&s, "GET", "/api/status", Some("flaky"), None, None).await;
    assert_eq!(code, 200);
    assert_eq!(status["errorBudget"]["exhausted"], true, "{status}");
    // The refunded charge is not month-to-date spend.
    assert_eq!(status["cost"], json!({}), "{status}");
    assert_eq!(status["monthToDate"], "0.00", "{status}");
    let remaining: rust_decimal::Decimal = status["errorBudget"]["remaining"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining.is_zero(), "{status}");
    assert_eq!(charged_in_events(&s, "flaky").await, Money::ZERO);
}
both_backends!(
    failures_retry_refund_and_exhaust_the_budget,
    failures_spend_the_error_budget
);

async fn wait_until<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two injected failures, then success on the third attempt.
async fn retried_to_success(t: TestStore) {
    let s = TestServer::start_with(t, options(Some(Arc::new(FailFirst(2))), true)).await;
    register(&s, "retry", "1000.00").await;
    let (_, _, a) = post_round(
        &s,
        "retry",
        "r-1",
        &json!({"content": "x", "competitors": ["balanced", "experimental"]}),
    )
    .await;
    let id = a["competitionId"].as_str().unwrap();
    let done = wait_for(&s, &format!("/api/v2/self-compete/{id}"), &["completed"]).await;
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(done["cost"], "0.04");
    assert_eq!(
        done["champion"], "experimental",
        "a seasonal series: {done}"
    );
    assert_eq!(
        charged_in_events(&s, "retry").await,
        Money::parse("0.04").unwrap()
    );
}
both_backends!(an_attempt_retried_to_success, retried_to_success);

/// Work accepted while no worker runs is done after a restart; an attempt left running by a
/// dead worker is recorded as interrupted and retried.
async fn restart_during_processing(t: TestStore) {
    let key = || ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
    let admin = Some(agora_tests::TEST_ADMIN_TOKEN);
    // First process: accepts, never runs the work, then stops.
    let app = App::start_with(&t.location, key(), admin, options(None, false))
        .await
        .unwrap();
    ensure_demo_tenant(&app.state.lapverse.service)
        .await
        .unwrap();
    let meta = agora_commands::CommandMetadata::new("test", "acme", chrono::Utc::now()).unwrap();
    let receipt = app
        .state
        .lapverse
        .service
        .submit_task(
            agora_commands::lapverse::TaskRequest {
                work: agora_commands::lapverse::WorkRequest {
                    tenant: "acme".into(),
                    idempotency_key: "before-crash".into(),
                    ..Default::default()
                },
                task_type: agora_domain::tenancy::work::TaskType::Forecast,
                description: "accepted before the crash".into(),
                complexity: agora_domain::tenancy::cost::Complexity::Advanced,
                targeting_key: None,
                level_percent: None,
                log: None,
            },
            &meta,
        )
        .await
        .unwrap();
    // A second item is caught mid-attempt: started, then the process dies.
    let meta2 = meta.clone().with_idempotency_key("mid-attempt").unwrap();
    let mid = app
        .state
        .lapverse
        .service
        .submit_task(
            agora_commands::lapverse::TaskRequest {
                work: agora_commands::lapverse::WorkRequest {
                    tenant: "acme".into(),
                    idempotency_key: "mid-attempt".into(),
                    ..Default::default()
                },
                task_type: agora_domain::tenancy::work::TaskType::Analysis,
                description: "started before the crash".into(),
                complexity: agora_domain::tenancy::cost::Complexity::Simple,
                targeting_key: None,
                level_percent: None,
                log: None,
            },
            &meta2,
        )
        .await
        .unwrap();
    let tasks: agora_commands::CommandBus<agora_domain::tenancy::task::Task> =
        agora_commands::CommandBus::new(&app.state.store, app.state.signal.clone(), ());
    tasks
        .execute(
            &mid.id,
            agora_domain::tenancy::task::TaskCommand::Start {
                occurred_at: chrono::Utc::now(),
            },
            &meta2,
        )
        .await
        .unwrap();
    sqlx::query("UPDATE lapverse_jobs SET state = 'running', lease_owner = 'dead', lease_until_us = 0 WHERE aggregate_id = $1")
        .bind(&mid.id)
        .execute(app.state.store.read_models())
        .await
        .unwrap();
    app.shutdown().await;

    // Second process, with workers.
    let s = server(t).await;
    let done = wait_for(&s, &format!("/api/v2/tasks/{}", receipt.id), &["completed"]).await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["cost"], "0.04");
    let recovered = wait_for(&s, &format!("/api/v2/tasks/{}", mid.id), &["completed"]).await;
    assert_eq!(recovered["attempts"], 2, "{recovered}");
    let events = read_all(&s.store.store).await;
    let interrupted = events
        .iter()
        .find(|e| e.aggregate_id == mid.id && e.event_type == "TaskAttemptFailed")
        .expect("the interrupted attempt is recorded");
    assert!(
        interrupted.payload.to_string().contains("interrupted"),
        "{:?}",
        interrupted.payload
    );
}
both_backends!(work_survives_a_restart, restart_during_processing);

/// The chargeback report per tenant × cost center × month equals the journal's postings and the
/// budget events, to the cent.
async fn chargeback_equals_journal(t: TestStore) {
    let s = server(t).await;
    register(&s, "fin", "5000.00").await;
    let mut ids = Vec::new();
    for (i, (cc, complexity)) in [
        ("alpha", "simple"),
        ("alpha", "expert"),
        ("beta", "advanced"),
        ("beta", "intermediate"),
    ]
    .iter()
    .enumerate()
    {
        let body = json!({"type": "ANALYSIS", "description": "x", "costCenter": cc, "requirements": {"complexity": complexity}});
        let (code, _, a) = post_task(&s, "fin", &format!("c-{i}"), &body).await;
        assert_eq!(code, 202, "{a}");
        ids.push(format!("/api/v2/tasks/{}", a["taskId"].as_str().unwrap()));
    }
    let (_, _, a) = post_round(&s, "fin", "c-r", &json!({"content": "x", "costCenter": "beta", "competitors": ["aggressive", "balanced", "conservative"]})).await;
    ids.push(format!(
        "/api/v2/self-compete/{}",
        a["competitionId"].as_str().unwrap()
    ));
    for path in &ids {
        wait_for(&s, path, &["completed"]).await;
    }
    s.state.market.settle_reads().await;
    let r = gql(
        &s,
        "{ chargeback(tenant: \"fin\") { costCenter month amount charges refunds } }",
        json!({}),
    )
    .await;
    let lines = r["data"]["chargeback"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"));
    let by_cc: BTreeMap<&str, &str> = lines
        .iter()
        .map(|l| {
            (
                l["costCenter"].as_str().unwrap(),
                l["amount"].as_str().unwrap(),
            )
        })
        .collect();
    // alpha: 0.01 + 0.08; beta: 0.04 + 0.02 + 3 × 0.02.
    assert_eq!(
        by_cc,
        BTreeMap::from([("alpha", "0.09"), ("beta", "0.12")]),
        "{r}"
    );
    let report: Money = lines
        .iter()
        .map(|l| Money::parse(l["amount"].as_str().unwrap()).unwrap())
        .fold(Money::ZERO, |a, b| a.checked_add(b).unwrap());
    assert_eq!(report, charged_in_events(&s, "fin").await);
    // The journal: the tenant's accounts are the mirror of platform revenue for these entries.
    let mut journal = Money::ZERO;
    for e in read_all(&s.store.store).await {
        if e.aggregate_type == "journal_entry" && e.aggregate_id.starts_with("lvcost-") {
            for p in e.payload.to_string().split("tenant:fin:cc:").skip(1) {
                let amount = p
                    .split("\"amount\":\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                journal = journal.checked_add(Money::parse(amount).unwrap()).unwrap();
            }
        }
    }
    assert_eq!(journal, report);
    // The read model equals its own rebuild from the log.
    s.state.market.settle_reads().await;
    let cmp = rebuild_and_compare(&s.store.store, &LapVerseProjection::default(), false)
        .await
        .unwrap();
    assert!(cmp.is_equal(), "{cmp:#?}");
}
both_backends!(
    chargeback_reconciles_with_the_journal,
    chargeback_equals_journal
);

/// Webhooks: a competition-completed notification reaches a real local server; the delivery is
/// recorded.
async fn webhook_delivery(t: TestStore) {
    let hits = Arc::new(AtomicU32::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let counter = counter.clone();
            async move {
                assert!(body.contains("competitionId"), "{body}");
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let s = server(t).await;
    register(&s, "hooked", "1000.00").await;
    let r = gql(
        &s,
        "mutation($u: String!) { registerWebhook(tenant: \"hooked\", id: \"w1\", url: $u, events: [\"competition_completed\"], idempotencyKey: \"w-1\") { webhooks { id } } }",
        json!({"u": format!("http://{addr}/hook")}),
    )
    .await;
    assert_eq!(
        r["data"]["registerWebhook"]["webhooks"][0]["id"], "w1",
        "{r}"
    );
    let (_, _, a) = post_round(&s, "hooked", "h-1", &json!({"content": "x"})).await;
    let id = a["competitionId"].as_str().unwrap();
    wait_for(&s, &format!("/api/v2/self-compete/{id}"), &["completed"]).await;
    wait_until(|| async { hits.load(Ordering::SeqCst) == 1 }).await;
    wait_until(|| async {
        let r = gql(
            &s,
            "{ webhookDeliveries(tenant: \"hooked\") { status attempts event } }",
            json!({}),
        )
        .await;
        r["data"]["webhookDeliveries"][0]["status"] == "succeeded"
    })
    .await;
}
both_backends!(webhooks_are_delivered_and_recorded, webhook_delivery);

/// The export: CSV rows per round × strategy and JSON metadata describing them.
async fn export(t: TestStore) {
    let s = server(t).await;
    ensure_demo_tenant(&s.state.lapverse.service).await.unwrap();
    let (_, _, a) = post_round(&s, "acme", "e-1", &seed_competition()).await;
    wait_for(
        &s,
        &format!(
            "/api/v2/self-compete/{}",
            a["competitionId"].as_str().unwrap()
        ),
        &["completed"],
    )
    .await;
    let (code, head, csv) = call(
        &s,
        "GET",
        "/api/v2/self-compete/export?format=csv",
        Some("acme"),
        None,
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert!(head.contains("text/csv"), "{head}");
    let text = csv.as_str().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("competition_id,tenant,cost_center"));
    let (code, _, meta) = call(
        &s,
        "GET",
        "/api/v2/self-compete/export?format=json",
        Some("acme"),
        None,
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(meta["rows"], 4);
    assert_eq!(meta["columns"].as_array().unwrap().len(), 16);
    let (code, _, e) = call(
        &s,
        "GET",
        "/api/v2/self-compete/export?format=xml",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(code, 400, "{e}");
    // The document is served and names the seed's paths.
    let (code, _, doc) = call(&s, "GET", "/openapi.json", None, None, None).await;
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v2/self-compete/{id}"].is_object());
}
both_backends!(competition_results_export_as_a_dataset, export);

/// Tenant administration over GraphQL, every change an event; tasks submitted over GraphQL.
async fn graphql_admin(t: TestStore) {
    let s = server(t).await;
    register(&s, "gq", "300.00").await;
    let r = gql(
        &s,
        "mutation { updateTenant(id: \"gq\", input: {mrr: \"450.00\", marginThreshold: \"0.5\", sloTarget: \"0.995\"}, idempotencyKey: \"u-1\") { mrr marginThreshold sloTarget spendLimit } }",
        json!({}),
    )
    .await;
    assert_eq!(r["data"]["updateTenant"]["mrr"], "450.00", "{r}");
    assert_eq!(r["data"]["updateTenant"]["spendLimit"], "225.00", "{r}");
    let r = gql(
        &s,
        "mutation { submitTask(tenant: \"gq\", input: {taskType: \"FORECAST\", description: \"d\", horizon: 3}, idempotencyKey: \"t-1\") { id status } }",
        json!({}),
    )
    .await;
    let id = r["data"]["submitTask"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    wait_for(&s, &format!("/api/v2/tasks/{id}"), &["completed"]).await;
    let r = gql(
        &s,
        "query($id: String!) { task(id: $id) { status cost variant result } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(r["data"]["task"]["status"], "completed", "{r}");
    assert_eq!(
        r["data"]["task"]["result"]["forecast"]["point"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Unknown tenant over GraphQL: a typed code.
    let r = gql(
        &s,
        "mutation { submitTask(tenant: \"ghost\", input: {taskType: \"ANALYSIS\", description: \"d\"}, idempotencyKey: \"t-2\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&r), Some("TENANT_NOT_FOUND"), "{r}");
    let changes = read_all(&s.store.store)
        .await
        .iter()
        .filter(|e| e.aggregate_type == "tenant" && e.aggregate_id == "gq")
        .map(|e| e.event_type.clone())
        .collect::<Vec<_>>();
    assert_eq!(
        changes,
        [
            "TenantRegistered",
            "SeriesRecorded",
            "MrrChanged",
            "SloChanged",
            "MarginThresholdChanged"
        ],
    );
}
both_backends!(tenants_are_administered_over_graphql, graphql_admin);

/// A LOG_ANALYSIS task runs the log analysers; the stored input is redacted.
async fn log_analysis_task(t: TestStore) {
    let s = server(t).await;
    register(&s, "logs", "1000.00").await;
    let log = "   Compiling app v0.1.0 (/work/app)\n\
error[E0425]: cannot find value `x` in this scope\n --> src/main.rs:2:5\n\
deploy: using AWS key AKIA2E0A8F3B244C9986 for ops@example.com\n";
    let body =
        json!({"type": "LOG_ANALYSIS", "description": "CI build for ops@example.com", "log": log});
    let (code, _, a) = post_task(&s, "logs", "l-1", &body).await;
    assert_eq!(code, 202, "{a}");
    let id = a["taskId"].as_str().unwrap();
    let done = wait_for(&s, &format!("/api/v2/tasks/{id}"), &["completed"]).await;
    let findings = done["result"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{done}"));
    assert!(
        findings.iter().any(|f| f["agent"] == "error-detective"),
        "{done}"
    );
    for e in read_all(&s.store.store).await {
        let text = e.payload.to_string();
        assert!(
            !text.contains("AKIA2E0A8F3B244C9986"),
            "secret stored in {}",
            e.event_type
        );
        assert!(
            !text.contains("ops@example.com"),
            "e-mail stored in {}",
            e.event_type
        );
    }
    // A LOG_ANALYSIS task without a log is refused before anything is recorded.
    let (code, _, e) = post_task(
        &s,
        "logs",
        "l-2",
        &json!({"type": "LOG_ANALYSIS", "description": "x"}),
    )
    .await;
    assert_eq!(code, 400, "{e}");
}
both_backends!(
    log_analysis_tasks_run_the_analysers_on_redacted_text,
    log_analysis_task
);

/// Counts attempts running at once. Each holds its slot until another attempt runs beside it
/// (or every attempt has started, or a generous deadline passes), then a little longer, so a
/// queue that allowed more would show it; on a loaded machine the overlap is waited for, not
/// hoped for within a fixed window.
struct Gauge {
    now: AtomicU32,
    max: AtomicU32,
    started: AtomicU32,
    expected: u32,
}

impl FaultInjector for Gauge {
    fn before_attempt(&self, _kind: WorkKind, _id: &str, _attempt: u32) -> Option<String> {
        let started = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        // The wait blocks this thread: hand the runtime's other tasks (the next job's among
        // them) to another thread meanwhile.
        tokio::task::block_in_place(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while self.now.load(Ordering::SeqCst) < 2
                && started < self.expected
                && self.started.load(Ordering::SeqCst) < self.expected
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(100));
        });
        self.now.fetch_sub(1, Ordering::SeqCst);
        None
    }
}

/// A queue runs at most `concurrency` jobs at once.
async fn queue_concurrency(t: TestStore) {
    let gauge = Arc::new(Gauge {
        now: AtomicU32::new(0),
        max: AtomicU32::new(0),
        started: AtomicU32::new(0),
        expected: 6,
    });
    let mut o = options(Some(gauge.clone()), true);
    o.lapverse.concurrency = 2;
    let s = TestServer::start_with(t, o).await;
    register(&s, "busy", "1000.00").await;
    let mut paths = Vec::new();
    for i in 0..6 {
        let (code, _, a) = post_task(&s, "busy", &format!("q-{i}"), &seed_task_for("busy")).await;
        assert_eq!(code, 202, "{a}");
        paths.push(format!("/api/v2/tasks/{}", a["taskId"].as_str().unwrap()));
    }
    for p in &paths {
        wait_for(&s, p, &["completed"]).await;
    }
    assert_eq!(
        gauge.max.load(Ordering::SeqCst),
        2,
        "at most 2 at once, and the 6 did overlap"
    );
}
both_backends!(a_queue_runs_at_most_its_concurrency, queue_concurrency);

/// The REST adapters count against the key's general request limit: 429 with `Retry-After`.
async fn rest_is_rate_limited(t: TestStore) {
    let mut o = options(None, true);
    o.rate_limit_per_minute = 3;
    let s = TestServer::start_with(t, o).await;
    ensure_demo_tenant(&s.state.lapverse.service).await.unwrap();
    // The limit counts per clock minute: a run that crosses a minute boundary starts over in
    // the next minute (at most once more), so the test never depends on when it runs.
    let minute = || chrono::Utc::now().timestamp() / 60;
    let (code, head, e) = loop {
        let (started, round) = (minute(), minute());
        let mut accepted = 0;
        for i in 0..3 {
            let (code, _, _) = post_task(&s, "acme", &format!("t-{round}-{i}"), &seed_task()).await;
            if code == 202 {
                accepted += 1;
            }
        }
        let (code, head, e) = post_task(&s, "acme", &format!("t-{round}-3"), &seed_task()).await;
        if minute() == started {
            assert_eq!(accepted, 3, "the first three of a minute are accepted");
            break (code, head, e);
        }
    };
    assert_eq!(code, 429, "{e}");
    assert_eq!(e["error"]["code"], "THROTTLED");
    assert!(head.contains("retry-after"), "{head}");
}
both_backends!(rest_adapters_are_rate_limited, rest_is_rate_limited);
