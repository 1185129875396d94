use chrono::TimeZone;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
}

fn report() -> ExecutionReport {
    ExecutionReport {
        execution_id: "exec-0001".into(),
        user_id: "user-42".into(),
        status: "failed".into(),
        duration_ms: 1_250,
        credits_consumed: Decimal::new(150, 2),
        http_status: Some(502),
        error_code: Some("upstream_unreachable".into()),
        error_message: Some("connect 10.2.3.4:443 failed for ann@example.com".into()),
        input_size: Some(2_048),
        output_size: Some(0),
        input_type: Some("json".into()),
        output_type: Some("text".into()),
        response_time_ms: Some(900),
        processing_time_ms: Some(300),
        queue_time_ms: Some(50),
        session_id: Some("sess-9".into()),
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0".into(),
        ),
        ip_address: Some("198.51.100.23".into()),
        started_at: Some(now() - Duration::seconds(2)),
        completed_at: Some(now() - Duration::seconds(1)),
        tokens: vec![TokenUsage {
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            input_tokens: 1_200,
            output_tokens: 340,
        }],
    }
}

#[test]
fn given_a_full_report_when_validated_then_it_is_stored_anonymised() {
    let e = validate("agent-a", &report(), now()).unwrap();
    assert_eq!(e.facts.status, ExecutionStatus::Failed);
    assert_eq!(e.facts.error_code.as_deref(), Some("UPSTREAM_UNREACHABLE"));
    assert_eq!(e.personal.ip_prefix.as_deref(), Some("198.51.100.0/24"));
    let client = e.personal.client.clone().unwrap();
    assert_eq!(
        (client.family.as_str(), client.major.as_deref()),
        ("Firefox", Some("121"))
    );
    let message = e.facts.error_message.clone().unwrap();
    assert!(
        !message.contains("10.2.3.4") && !message.contains("ann@"),
        "{message}"
    );
    // No raw personal datum anywhere in what would be stored.
    let stored = serde_json::to_string(&e).unwrap();
    for raw in [
        "198.51.100.23",
        "10.2.3.4",
        "ann@example.com",
        "Gecko/20100101",
        "rv:121.0",
    ] {
        assert!(!stored.contains(raw), "{raw} in {stored}");
    }
}

#[test]
fn given_a_minimal_report_when_validated_then_defaults_apply() {
    let minimal: ExecutionReport = serde_json::from_str(
        r#"{"executionId": "e1", "userId": "u1", "status": "success", "durationMs": 10}"#,
    )
    .unwrap();
    let e = validate("agent-a", &minimal, now()).unwrap();
    assert_eq!(e.facts.started_at, now());
    assert_eq!(e.facts.credits_consumed, Decimal::ZERO);
    assert!(e.personal.client.is_none() && e.personal.ip_prefix.is_none());
}

#[test]
fn given_unknown_fields_when_parsed_then_refused() {
    let r: Result<ExecutionReport, _> = serde_json::from_str(
        r#"{"executionId": "e1", "userId": "u1", "status": "success", "durationMs": 1, "input": "the prompt"}"#,
    );
    assert!(r.is_err(), "content fields are refused, never stored");
}

#[test]
fn given_every_field_wrong_when_validated_then_every_problem_is_named() {
    let mut r = report();
    r.execution_id = "has space".into();
    r.user_id = String::new();
    r.status = "crashed".into();
    r.duration_ms = -1;
    r.credits_consumed = Decimal::new(-1, 0);
    r.http_status = Some(700);
    r.input_type = Some("a type with spaces".into());
    r.ip_address = Some("not-an-ip".into());
    r.user_agent = Some("u".repeat(2_000));
    r.started_at = Some(now() + Duration::hours(1));
    r.completed_at = Some(now() - Duration::hours(1));
    r.tokens[0].input_tokens = -5;
    r.tokens[0].model = "has space".into();
    let problems = validate("agent a", &r, now()).unwrap_err();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    for f in [
        "agentId",
        "executionId",
        "userId",
        "status",
        "durationMs",
        "creditsConsumed",
        "httpStatus",
        "inputType",
        "ipAddress",
        "userAgent",
        "startedAt",
        "completedAt",
        "tokens/0/inputTokens",
        "tokens/0/model",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}

#[test]
fn given_a_success_with_an_error_when_validated_then_refused() {
    let mut r = report();
    r.status = "success".into();
    let problems = validate("agent-a", &r, now()).unwrap_err();
    assert_eq!(problems[0].field, "errorCode");
}

#[test]
fn given_limits_when_exceeded_then_refused() {
    let mut r = report();
    r.duration_ms = MAX_DURATION_MS + 1;
    r.credits_consumed = Decimal::new(1, 7);
    r.tokens = vec![r.tokens[0].clone(); MAX_TOKEN_LINES + 1];
    r.started_at = Some(now() - Duration::days(MAX_AGE_DAYS + 1));
    r.completed_at = None;
    let problems = validate("agent-a", &r, now()).unwrap_err();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    for f in ["durationMs", "creditsConsumed", "tokens", "startedAt"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
}
