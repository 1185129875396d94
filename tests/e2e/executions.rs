//! Agent executions in over HTTP against the real server, on both backends: a batch with valid
//! and invalid reports answered record by record; a re-send a no-op, another body under the same
//! id a conflict; nothing personal stored in the clear; an erased user's data unreadable and
//! new reports for them refused.

use agora_commands::subjects::{subject_ref, Opened};
use agora_domain::executions::aggregate::ExecutionEvent;
use agora_tests::{both_backends, read_all, TestServer, TestStore};
use serde_json::{json, Value};

use crate::capsules::{http, make_key};

async fn post(s: &TestServer, token: &str, agent: &str, body: Value) -> (u16, Value) {
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_owned()),
    ];
    let path = format!("/v1/agents/{agent}/executions");
    http(s, "POST", &path, &headers, body.to_string().as_bytes()).await
}

fn report(id: &str, user: &str, duration: i64) -> Value {
    json!({
        "executionId": id,
        "userId": user,
        "status": "failed",
        "durationMs": duration,
        "creditsConsumed": "1.25",
        "httpStatus": 502,
        "errorCode": "upstream_unreachable",
        "errorMessage": "connect 10.9.8.7:443 refused for zoe@example.com",
        "inputSize": 512,
        "inputType": "json",
        "sessionId": "sess-1",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "ipAddress": "198.51.100.23",
        "startedAt": "2026-12-04T10:00:00Z",
        "completedAt": "2026-12-04T10:00:01Z",
        "tokens": [{"provider": "openai", "model": "gpt-4o-mini", "inputTokens": 100, "outputTokens": 20}]
    })
}

fn outcomes(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

async fn executions_story(t: TestStore) {
    let s = crate::capsules::server(t).await.0;
    let bot = make_key(&s, "bot", "client", "acme").await;
    let mut bad = report("e3", "user-3", 5);
    bad["status"] = json!("crashed");
    let mut unknown = report("e4", "user-4", 5);
    unknown["prompt"] = json!("the user's whole prompt");
    let batch = json!({"executions": [report("e1", "user-1", 900), report("e2", "user-2", 1200), bad, unknown]});
    let (status, body) = post(&s, &bot, "summariser", batch.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        outcomes(&body),
        ["STORED", "STORED", "INVALID", "INVALID"],
        "{body}"
    );
    assert_eq!(
        body["results"][2]["problems"][0]["field"], "status",
        "{body}"
    );
    assert_eq!(body["stored"], 2);

    // The same batch again: nothing new; another body under a used id: a conflict.
    let before = read_all(&s.store.store).await.len();
    let (_, again) = post(&s, &bot, "summariser", batch).await;
    assert_eq!(
        outcomes(&again),
        ["DUPLICATE", "DUPLICATE", "INVALID", "INVALID"],
        "{again}"
    );
    assert_eq!(read_all(&s.store.store).await.len(), before);
    let (_, changed) = post(&s, &bot, "summariser", report("e1", "user-1", 901)).await;
    assert_eq!(outcomes(&changed), ["CONFLICT"], "{changed}");

    // Nothing personal in the clear.
    let events = read_all(&s.store.store).await;
    let recorded: Vec<_> = events
        .iter()
        .filter(|e| e.aggregate_type == "agent_execution")
        .collect();
    assert_eq!(recorded.len(), 2);
    for e in &recorded {
        let text = e.payload.to_string();
        for raw in [
            "198.51.100",
            "10.9.8.7",
            "zoe@example.com",
            "Gecko",
            "user-1",
            "user-2",
            "sess-1",
        ] {
            assert!(!text.contains(raw), "{raw} stored in the clear: {text}");
        }
        assert_eq!(e.aggregate_id.split(':').next(), Some("acme"));
    }

    // Erasure: user-2's record no longer opens; new reports for user-2 are refused.
    let keys = s.state.executions.keys();
    let of_user_2 = recorded
        .iter()
        .find(|e| e.aggregate_id == "acme:e2")
        .unwrap();
    let ExecutionEvent::ExecutionRecorded(r) =
        serde_json::from_value(of_user_2.payload.clone()).unwrap();
    let sealed = r.personal.clone();
    let Opened::Plain(plain) = keys.open(&sealed).await.unwrap() else {
        panic!("opens before the erasure");
    };
    let personal: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(personal["userId"], "user-2");
    assert_eq!(personal["ipPrefix"], "198.51.100.0/24");
    assert_eq!(personal["client"]["family"], "Firefox");
    keys.erase(&subject_ref("acme", "user-2")).await.unwrap();
    assert_eq!(keys.open(&sealed).await.unwrap(), Opened::Erased);
    let (_, refused) = post(&s, &bot, "summariser", report("e5", "user-2", 10)).await;
    assert_eq!(outcomes(&refused), ["INVALID"], "{refused}");
    assert_eq!(refused["results"][0]["problems"][0]["field"], "userId");

    // GraphQL: the same ingest; erasure by a tenant admin, recorded as an event.
    let r = s
        .graphql(
            Some(&bot),
            "mutation($e: JSON!) { reportExecutions(agentId: \"summariser\", executions: $e, idempotencyKey: \"g-1\") { duplicates invalid results { outcome problems { field } } } }",
            json!({"e": [report("e1", "user-1", 900), {"executionId": "x"}]}),
        )
        .await;
    assert_eq!(r["data"]["reportExecutions"]["duplicates"], 1, "{r}");
    assert_eq!(r["data"]["reportExecutions"]["invalid"], 1, "{r}");
    let erase = "mutation($t: String) { eraseDataSubject(userId: \"user-1\", reason: \"asked to be forgotten\", tenant: $t, idempotencyKey: \"erase-1\") { subject erasedAt } }";
    let r = s.graphql(Some(&bot), erase, json!({})).await;
    assert_eq!(agora_tests::error_code(&r), Some("FORBIDDEN"), "{r}");
    let boss = make_key(&s, "boss", "admin", "acme").await;
    let r = s.graphql(Some(&boss), erase, json!({"t": "other"})).await;
    assert_eq!(agora_tests::error_code(&r), Some("FORBIDDEN"), "{r}");
    let r = s.graphql(Some(&boss), erase, json!({})).await;
    assert_eq!(
        r["data"]["eraseDataSubject"]["subject"],
        subject_ref("acme", "user-1"),
        "{r}"
    );
    let again = s.graphql(Some(&boss), erase, json!({})).await;
    assert_eq!(
        again["data"]["eraseDataSubject"]["erasedAt"], r["data"]["eraseDataSubject"]["erasedAt"],
        "{again}"
    );
    let erasures: Vec<_> = read_all(&s.store.store)
        .await
        .into_iter()
        .filter(|e| e.event_type == "DataSubjectErased")
        .collect();
    assert_eq!(erasures.len(), 1, "erased once, recorded once");
    assert_eq!(erasures[0].payload["DataSubjectErased"]["by"], "acme/boss");
    let (_, refused) = post(&s, &bot, "summariser", report("e6", "user-1", 10)).await;
    assert_eq!(outcomes(&refused), ["INVALID"], "{refused}");

    // Whole-call refusals.
    let (status, body) = post(&s, &bot, "summariser", json!({"executions": []})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BAD_USER_INPUT")),
        "{body}"
    );
    let many: Vec<Value> = (0..1_001)
        .map(|i| report(&format!("m{i}"), "u", 1))
        .collect();
    let (status, _) = post(&s, &bot, "summariser", json!({"executions": many})).await;
    assert_eq!(status, 400);
    let (status, _) = post(&s, &bot, "summariser", json!([1, 2])).await;
    assert_eq!(status, 400);
    let (status, _) = post(&s, "", "summariser", report("e9", "u", 1)).await;
    assert_eq!(status, 401);
}
both_backends!(
    executions_are_ingested_anonymised_and_erasable,
    executions_story
);
