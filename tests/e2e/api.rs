//! The GraphQL API over HTTP against the real server, on both backends: authentication and the
//! role × tenant matrix, idempotency (retry, conflict, concurrency, per principal), error codes.

use agora_tests::{both_backends, error_code, read_all, TestServer, TestStore};
use futures::future::join_all;
use serde_json::{json, Value};

const CREATE_KEY: &str = "mutation($p: String!, $r: String!, $t: String!, $k: String!) {
  createApiKey(input: {principal: $p, role: $r, tenant: $t}, idempotencyKey: $k) { id token role tenant } }";

const RECORD: &str = "mutation($id: String!, $k: String, $a: Money!, $b: Money!) {
  recordJournalEntry(idempotencyKey: $k, input: {entryId: $id, memo: \"test\", postings: [
    {account: \"platform:funding\", amount: $a}, {account: \"seller:s1:payable\", amount: $b}]}) { entryId status } }";

async fn key(s: &TestServer, principal: &str, role: &str, tenant: &str) -> String {
    let r = s
        .graphql(
            Some(&s.admin_token),
            CREATE_KEY,
            json!({"p": principal, "r": role, "t": tenant, "k": format!("key-{principal}-{role}-{tenant}")}),
        )
        .await;
    r["data"]["createApiKey"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("createApiKey failed: {r}"))
        .to_string()
}

fn record_vars(id: &str, key: &str, amount: &str) -> Value {
    json!({"id": id, "k": key, "a": amount, "b": format!("-{amount}")})
}

async fn auth_matrix(t: TestStore) {
    let s = TestServer::start(t).await;
    // No key, a wrong key: UNAUTHENTICATED.
    let r = s.graphql(None, "{ me { role } }", json!({})).await;
    assert_eq!(error_code(&r), Some("UNAUTHENTICATED"));
    let r = s
        .graphql(Some("agora_nope_0000"), "{ me { role } }", json!({}))
        .await;
    assert_eq!(error_code(&r), Some("UNAUTHENTICATED"));

    // Each role, one representative read of each kind and one write.
    let roles = [
        "client", "seller", "author", "reviewer", "finance", "auditor", "admin",
    ];
    for role in roles {
        let token = key(&s, &format!("p-{role}"), role, "platform").await;
        let me = s
            .graphql(Some(&token), "{ me { role tenant } }", json!({}))
            .await;
        assert_eq!(me["data"]["me"]["role"], role, "{me}");

        let events = s
            .graphql(
                Some(&token),
                "{ events(first: 1) { edges { cursor } } }",
                json!({}),
            )
            .await;
        let want = matches!(role, "auditor" | "admin");
        assert_eq!(
            error_code(&events).is_none(),
            want,
            "{role} events: {events}"
        );
        if !want {
            assert_eq!(error_code(&events), Some("FORBIDDEN"));
        }

        let balance = s
            .graphql(
                Some(&token),
                "{ ledgerBalance(account: \"platform:funding\") { posted } }",
                json!({}),
            )
            .await;
        let want = matches!(role, "finance" | "auditor" | "admin");
        assert_eq!(
            error_code(&balance).is_none(),
            want,
            "{role} balance: {balance}"
        );

        let write = s
            .graphql(
                Some(&token),
                RECORD,
                record_vars(&format!("m-{role}"), &format!("w-{role}"), "1.00"),
            )
            .await;
        let want = matches!(role, "finance" | "admin");
        assert_eq!(error_code(&write).is_none(), want, "{role} write: {write}");
        if !want {
            assert_eq!(error_code(&write), Some("FORBIDDEN"));
        }

        let create = s
            .graphql(
                Some(&token),
                CREATE_KEY,
                json!({"p": "x", "r": "client", "t": "platform", "k": format!("c-{role}")}),
            )
            .await;
        assert_eq!(
            error_code(&create).is_none(),
            role == "admin",
            "{role} createApiKey: {create}"
        );
    }

    // Tenants: a tenant's finance key gets no ledger; a tenant's auditor sees its tenant only.
    let acme_finance = key(&s, "acme-fin", "finance", "acme").await;
    let r = s
        .graphql(
            Some(&acme_finance),
            "{ ledgerBalance(account: \"platform:funding\") { posted } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let acme_auditor = key(&s, "acme-aud", "auditor", "acme").await;
    let r = s
        .graphql(
            Some(&acme_auditor),
            "{ events(first: 100) { edges { node { tenant } } } }",
            json!({}),
        )
        .await;
    let tenants: Vec<&str> = r["data"]["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["tenant"].as_str().unwrap())
        .collect();
    assert!(
        tenants.is_empty(),
        "acme has written nothing, so sees nothing: {tenants:?}"
    );
    let platform_auditor = key(&s, "plat-aud", "auditor", "platform").await;
    let written = read_all(&s.store.store).await.len();
    let r = s
        .graphql(
            Some(&platform_auditor),
            "{ events(first: 100) { edges { node { tenant } } } }",
            json!({}),
        )
        .await;
    assert!(
        r["data"]["events"]["edges"].as_array().unwrap().len() >= written,
        "{r}"
    );

    // A revoked key stops working at once.
    let revoke_me = key(&s, "gone", "finance", "platform").await;
    let id = revoke_me
        .trim_start_matches("agora_")
        .rsplit_once('_')
        .unwrap()
        .0
        .to_string();
    let r = s
        .graphql(
            Some(&s.admin_token),
            "mutation($id: String!) { revokeApiKey(id: $id, idempotencyKey: \"rv\") }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(r["data"]["revokeApiKey"], true, "{r}");
    let r = s
        .graphql(Some(&revoke_me), "{ me { role } }", json!({}))
        .await;
    assert_eq!(error_code(&r), Some("UNAUTHENTICATED"));
}
both_backends!(auth_matrix_roles_and_tenants, auth_matrix);

async fn idempotency(t: TestStore) {
    let s = TestServer::start(t).await;
    let fin = key(&s, "fin", "finance", "platform").await;
    let body = json!({"query": RECORD, "variables": record_vars("i-1", "", "5.00")});
    let body_without_key = {
        let mut b = body.clone();
        b["variables"]["k"] = Value::Null;
        b
    };
    // Header key: the retry's body is byte-for-byte the first.
    let (_, first) = s
        .graphql_raw(Some(&fin), Some("idem-1"), &body_without_key)
        .await;
    let (_, retry) = s
        .graphql_raw(Some(&fin), Some("idem-1"), &body_without_key)
        .await;
    assert!(first.contains("\"posted\""), "{first}");
    assert_eq!(first, retry);
    // Same key, different request.
    let other = json!({"query": RECORD, "variables": {"id": "i-2", "a": "5.00", "b": "-5.00"}});
    let (_, conflict) = s.graphql_raw(Some(&fin), Some("idem-1"), &other).await;
    assert_eq!(
        error_code(&serde_json::from_str(&conflict).unwrap()),
        Some("IDEMPOTENCY_CONFLICT")
    );
    // The same key under another principal is that principal's own.
    let fin2 = key(&s, "fin2", "finance", "platform").await;
    let (_, theirs) = s.graphql_raw(Some(&fin2), Some("idem-1"), &other).await;
    assert!(theirs.contains("\"posted\""), "{theirs}");

    // Concurrent: 8 requests with one key run once.
    let concurrent =
        json!({"query": RECORD, "variables": {"id": "i-3", "a": "7.00", "b": "-7.00"}});
    let bodies =
        join_all((0..8).map(|_| s.graphql_raw(Some(&fin), Some("idem-c"), &concurrent))).await;
    assert!(bodies.iter().all(|(_, b)| b == &bodies[0].1), "{bodies:?}");
    let events = read_all(&s.store.store).await;
    let for_i3 = events.iter().filter(|e| e.aggregate_id == "i-3").count();
    assert_eq!(for_i3, 1, "executed once");

    // A rejection is a first outcome too: replayed, not re-run.
    let unbalanced =
        json!({"query": RECORD, "variables": {"id": "i-4", "a": "1.00", "b": "-2.00"}});
    let (_, a) = s
        .graphql_raw(Some(&fin), Some("idem-bad"), &unbalanced)
        .await;
    let (_, b) = s
        .graphql_raw(Some(&fin), Some("idem-bad"), &unbalanced)
        .await;
    assert_eq!(
        error_code(&serde_json::from_str(&a).unwrap()),
        Some("BAD_USER_INPUT")
    );
    assert_eq!(a, b);

    // createApiKey retried returns the same working token.
    let again = s
        .graphql(
            Some(&s.admin_token),
            CREATE_KEY,
            json!({"p": "fin", "r": "finance", "t": "platform", "k": "key-fin-finance-platform"}),
        )
        .await;
    assert_eq!(again["data"]["createApiKey"]["token"], fin.as_str());
}
both_backends!(idempotent_mutations, idempotency);

async fn error_codes(t: TestStore) {
    let s = TestServer::start(t).await;
    let fin = key(&s, "fin", "finance", "platform").await;
    let cases: Vec<(&str, Value, &str)> = vec![
        // Money as a JSON number is refused.
        (
            RECORD,
            json!({"id": "e-1", "k": "e1", "a": 1.5, "b": "-1.50"}),
            "BAD_USER_INPUT",
        ),
        // Unbalanced entry.
        (
            RECORD,
            record_vars("e-2", "e2", "1.00")
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .chain([("b".to_string(), json!("-0.99"))])
                .collect(),
            "BAD_USER_INPUT",
        ),
        // No idempotency key at all.
        (
            RECORD,
            json!({"id": "e-3", "a": "1.00", "b": "-1.00"}),
            "BAD_USER_INPUT",
        ),
        // Page too large, and a malformed query.
        (
            "{ ledgerHistory(account: \"platform:funding\", first: 101) { edges { cursor } } }",
            json!({}),
            "BAD_USER_INPUT",
        ),
        ("{ me { nope } }", json!({}), "BAD_USER_INPUT"),
        // Posting a hold that does not exist.
        (
            "mutation { postHold(entryId: \"missing\", idempotencyKey: \"ph\") { status } }",
            json!({}),
            "NOT_FOUND",
        ),
    ];
    for (query, vars, code) in cases {
        let r = s.graphql(Some(&fin), query, vars.clone()).await;
        assert_eq!(error_code(&r), Some(code), "{query} {vars}: {r}");
    }
    // The same entry id with other content under a new key: CONFLICT, nothing written twice.
    let ok = s
        .graphql(Some(&fin), RECORD, record_vars("dup", "d1", "3.00"))
        .await;
    assert!(error_code(&ok).is_none(), "{ok}");
    let dup = s
        .graphql(Some(&fin), RECORD, record_vars("dup", "d2", "4.00"))
        .await;
    assert_eq!(error_code(&dup), Some("CONFLICT"));
    let internal_detail = dup["errors"][0]["message"].as_str().unwrap();
    assert!(
        !internal_detail.to_lowercase().contains("sql"),
        "no internals leak: {internal_detail}"
    );
    // Health endpoints and the offline query page.
    assert_eq!(s.get("/healthz").await.0, 200);
    assert_eq!(s.get("/readyz").await.0, 200);
    let (code, page) = s.get("/graphiql").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("/graphql") && !page.contains("cdn"),
        "served from the binary, no CDN"
    );
}
both_backends!(error_codes_over_http, error_codes);

/// Every sample line of Prometheus text format: `name{labels} value`.
fn assert_prometheus_text(text: &str) {
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value_ok = value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value);
        assert!(value_ok, "bad value in {line}");
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
    }
}

async fn metrics(t: TestStore) {
    let s = TestServer::start(t).await;
    let fin = key(&s, "fin", "finance", "platform").await;
    let r = s
        .graphql(Some(&fin), RECORD, record_vars("m-1", "mk", "2.00"))
        .await;
    assert!(error_code(&r).is_none(), "{r}");
    let head = s.get_head("/healthz").await;
    assert!(head.contains("x-trace-id: "), "{head}");
    let (code, text) = s.get("/metrics").await;
    assert_eq!(code, 200);
    assert_prometheus_text(&text);
    for needle in [
        "# TYPE agora_http_request_duration_seconds histogram",
        "agora_http_request_duration_seconds_bucket{method=\"POST\",route=\"/graphql\",le=\"0.005\"}",
        "agora_http_requests_total{method=\"POST\",route=\"/graphql\",status=\"200\"}",
        "agora_commands_total{aggregate=\"journal_entry\",outcome=\"ok\"} 1",
        "agora_projection_lag_events{projection=\"ledger\"}",
        "agora_projection_lag_seconds{projection=\"audit_seal\"}",
        "agora_events_appended_total",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}
both_backends!(metrics_are_prometheus_text, metrics);

async fn subscription(t: TestStore) {
    use futures::StreamExt;

    let s = TestServer::start(t).await;
    let fin = key(&s, "fin", "finance", "platform").await;
    let query = "subscription { events(filter: {aggregateType: \"journal_entry\"}) { aggregateId eventType } }";
    // Not for finance keys.
    let req = async_graphql::Request::new(query)
        .data(s.state.clone())
        .data(s.request_context(&fin).await);
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
        .data(s.request_context(&s.admin_token).await);
    let mut stream = s.state.schema.execute_stream(req);
    let writer = async {
        // Give the subscription time to start at the current end of the log.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        for i in 0..2 {
            let r = s
                .graphql(
                    Some(&fin),
                    RECORD,
                    record_vars(&format!("sub-{i}"), &format!("sk{i}"), "1.00"),
                )
                .await;
            assert!(error_code(&r).is_none(), "{r}");
        }
    };
    let reader = async {
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let item = tokio::time::timeout(std::time::Duration::from_secs(20), stream.next())
                .await
                .expect("an event within 20 s")
                .expect("stream open");
            assert!(item.errors.is_empty(), "{:?}", item.errors);
            let v = item.data.into_json().unwrap();
            seen.push(v["events"]["aggregateId"].as_str().unwrap().to_string());
        }
        seen
    };
    let (_, seen) = tokio::join!(writer, reader);
    assert_eq!(seen, ["sub-0", "sub-1"]);
}
both_backends!(subscription_streams_new_events, subscription);

async fn throttling(t: TestStore) {
    let s = TestServer::start(t).await;
    let client = key(&s, "c", "client", "platform").await;
    let me = json!({"query": "{ me { role } }"});
    // The limit counts per clock minute: keep the counted requests in one window.
    agora_tests::within_one_window().await;
    for i in 0..agora_tests::TEST_RATE_LIMIT {
        let (status, body) = s.graphql_raw(Some(&client), None, &me).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let (status, body) = s.graphql_raw(Some(&client), None, &me).await;
    assert_eq!(status, 429);
    assert_eq!(
        error_code(&serde_json::from_str(&body).unwrap()),
        Some("THROTTLED")
    );
    // Another key is not affected.
    let (status, _) = s.graphql_raw(Some(&s.admin_token), None, &me).await;
    assert_eq!(status, 200);
}
both_backends!(requests_over_the_limit_are_throttled, throttling);

/// Walks a connection to its end in one direction, returning every node's `field`.
async fn walk(
    s: &TestServer,
    token: &str,
    field: &str,
    args: &str,
    forward: bool,
    select: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (size, cur) = if forward {
            ("first: 3", "after")
        } else {
            ("last: 3", "before")
        };
        let cursor_arg = cursor
            .as_ref()
            .map(|c| format!(", {cur}: \"{c}\""))
            .unwrap_or_default();
        let q = format!(
            "{{ {field}({args}{size}{cursor_arg}) {{ edges {{ cursor node {{ {select} }} }} pageInfo {{ hasNextPage hasPreviousPage }} }} }}"
        );
        let r = s.graphql(Some(token), &q, json!({})).await;
        assert!(error_code(&r).is_none(), "{q}: {r}");
        let conn = &r["data"][field];
        let edges = conn["edges"].as_array().unwrap();
        let mut page: Vec<String> = edges
            .iter()
            .map(|e| e["node"][select].to_string())
            .collect();
        let more = if forward {
            conn["pageInfo"]["hasNextPage"] == true
        } else {
            conn["pageInfo"]["hasPreviousPage"] == true
        };
        let next_cursor = if forward { edges.last() } else { edges.first() }
            .map(|e| e["cursor"].as_str().unwrap().to_string());
        if forward {
            out.append(&mut page);
        } else {
            page.append(&mut out);
            out = page;
        }
        if !more {
            return out;
        }
        cursor = next_cursor;
    }
}

async fn paging(t: TestStore) {
    let s = TestServer::start(t).await;
    let fin = key(&s, "fin", "finance", "platform").await;
    for i in 0..7 {
        let r = s
            .graphql(
                Some(&fin),
                RECORD,
                record_vars(
                    &format!("pg-{i}"),
                    &format!("pk{i}"),
                    &format!("{}.00", i + 1),
                ),
            )
            .await;
        assert!(error_code(&r).is_none(), "{r}");
    }
    read_all(&s.store.store).await; // every write readable below the horizon
    let forward = walk(&s, &s.admin_token, "events", "", true, "globalPosition").await;
    let backward = walk(&s, &s.admin_token, "events", "", false, "globalPosition").await;
    assert_eq!(forward, backward);
    assert_eq!(forward.len(), read_all(&s.store.store).await.len());

    // The ledger projection catches up asynchronously.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = s
            .graphql(
                Some(&fin),
                "{ ledgerBalance(account: \"platform:funding\") { postings } }",
                json!({}),
            )
            .await;
        if r["data"]["ledgerBalance"]["postings"] == 7 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ledger never caught up: {r}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let args = "account: \"platform:funding\", ";
    let forward = walk(&s, &fin, "ledgerHistory", args, true, "seq").await;
    let backward = walk(&s, &fin, "ledgerHistory", args, false, "seq").await;
    assert_eq!(forward, (1..=7).map(|n| n.to_string()).collect::<Vec<_>>());
    assert_eq!(forward, backward);
    let accounts = walk(&s, &fin, "ledgerAccounts", "", true, "account").await;
    assert_eq!(accounts, ["\"platform:funding\"", "\"seller:s1:payable\""]);
    assert_eq!(
        walk(&s, &fin, "ledgerAccounts", "", false, "account").await,
        accounts
    );

    for bad in [
        "events(first: 1, last: 1)",
        "events",
        "events(last: 2, after: \"0:1\")",
        "events(first: 0)",
    ] {
        let r = s
            .graphql(
                Some(&s.admin_token),
                &format!("{{ {bad} {{ edges {{ cursor }} }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{bad}: {r}");
    }
}
both_backends!(relay_paging_both_directions, paging);

async fn history_filters(t: TestStore) {
    let s = TestServer::start(t).await;
    let fin = key(&s, "fin", "finance", "platform").await;
    let fin2 = key(&s, "fin2", "finance", "platform").await;
    let correlation = "0190e0b8-1c2d-7a3b-9c4d-5e6f708192a3";
    let body = json!({"query": RECORD, "variables": record_vars("f-1", "fk1", "1.00")});
    let headers = vec![
        ("content-type", "application/json".to_string()),
        ("authorization", format!("Bearer {fin}")),
        ("x-correlation-id", correlation.to_string()),
    ];
    let (status, text) =
        agora_tests::http_request(s.addr, "POST", "/graphql", &headers, &body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let r = s
        .graphql(Some(&fin2), RECORD, record_vars("f-2", "fk2", "2.00"))
        .await;
    assert!(error_code(&r).is_none(), "{r}");
    let all = read_all(&s.store.store).await;
    let f2 = all.iter().find(|e| e.aggregate_id == "f-2").unwrap();

    let ids = |r: &Value| -> Vec<String> {
        r["data"]["events"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["aggregateId"].as_str().unwrap().to_string())
            .collect()
    };
    let q = |filter: String| {
        format!("{{ events(first: 100, filter: {{{filter}}}) {{ edges {{ node {{ aggregateId correlationId actor }} }} }} }}")
    };
    let by_corr = s
        .graphql(
            Some(&s.admin_token),
            &q(format!("correlationId: \"{correlation}\"")),
            json!({}),
        )
        .await;
    assert_eq!(ids(&by_corr), ["f-1"], "{by_corr}");
    let by_actor = s
        .graphql(
            Some(&s.admin_token),
            &q("actor: \"fin2\"".into()),
            json!({}),
        )
        .await;
    assert_eq!(ids(&by_actor), ["f-2"]);
    let by_aggregate = s
        .graphql(
            Some(&s.admin_token),
            &q("aggregateType: \"journal_entry\", aggregateId: \"f-1\"".into()),
            json!({}),
        )
        .await;
    assert_eq!(ids(&by_aggregate), ["f-1"]);
    let p = f2.position.global_position;
    let by_position = s
        .graphql(
            Some(&s.admin_token),
            &q(format!("fromPosition: {p}, toPosition: {p}")),
            json!({}),
        )
        .await;
    assert_eq!(ids(&by_position), ["f-2"]);
    let at = f2.recorded_at.to_rfc3339();
    let by_time = s
        .graphql(
            Some(&s.admin_token),
            &q(format!("fromTime: \"{at}\", toTime: \"{at}\"")),
            json!({}),
        )
        .await;
    assert!(ids(&by_time).contains(&"f-2".to_string()), "{by_time}");
    let before = (f2.recorded_at - chrono::Duration::days(1)).to_rfc3339();
    let none = s
        .graphql(
            Some(&s.admin_token),
            &q(format!("toTime: \"{before}\"")),
            json!({}),
        )
        .await;
    assert!(ids(&none).is_empty(), "{none}");

    // A body over the limit is refused before it is parsed.
    let big = json!({"query": format!("{{ me {{ role }} }} #{}", "x".repeat(agora_api::app::MAX_BODY_BYTES + 1))});
    let (status, _) = s.graphql_raw(Some(&s.admin_token), None, &big).await;
    assert_eq!(status, 413);
}
both_backends!(event_history_filters_and_limits, history_filters);

/// A graphql-transport-ws client: connects, sends `connection_init` with `payload`, and returns
/// the socket after the server's first answer (which it also returns).
async fn ws_connect(
    s: &TestServer,
    payload: Value,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Value,
) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut request = format!("ws://{}/graphql/ws", s.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("ws connect");
    let init = json!({"type": "connection_init", "payload": payload});
    ws.send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let answer = ws_next(&mut ws).await;
    let _ = ws.flush().await;
    (ws, answer)
}

async fn ws_next<S>(ws: &mut S) -> Value
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures::StreamExt;
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .expect("a message within 20 s")
            .expect("socket open")
            .expect("valid frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["type"] != "ping" && v["type"] != "pong" {
                return v;
            }
        }
    }
}

async fn websocket(t: TestStore) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let s = TestServer::start(t).await;
    let fin = key(&s, "fin", "finance", "platform").await;
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription { events(filter: {aggregateType: \"journal_entry\"}) { aggregateId eventType } }"}});

    // No key in connection_init: the subscription is refused with UNAUTHENTICATED.
    let (mut anon, ack) = ws_connect(&s, json!({})).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    anon.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    let refused = ws_next(&mut anon).await;
    let code = refused["payload"][0]["extensions"]["code"].clone();
    let code = if code.is_null() {
        refused["payload"]["errors"][0]["extensions"]["code"].clone()
    } else {
        code
    };
    assert_eq!(code, "UNAUTHENTICATED", "{refused}");

    // With the admin key: events committed after subscribing arrive in order.
    let (mut ws, ack) = ws_connect(
        &s,
        json!({"Authorization": format!("Bearer {}", s.admin_token)}),
    )
    .await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws.send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for i in 0..2 {
        let r = s
            .graphql(
                Some(&fin),
                RECORD,
                record_vars(&format!("ws-{i}"), &format!("wk{i}"), "1.00"),
            )
            .await;
        assert!(error_code(&r).is_none(), "{r}");
    }
    for i in 0..2 {
        let next = ws_next(&mut ws).await;
        assert_eq!(next["type"], "next", "{next}");
        assert_eq!(
            next["payload"]["data"]["events"]["aggregateId"],
            format!("ws-{i}")
        );
    }
}
both_backends!(subscription_over_websocket, websocket);

/// Expired idempotency records are purged: the key then works as a new request.
async fn idempotency_purge(t: TestStore) {
    let s = TestServer::start(t).await;
    let fin = key(&s, "fin-p", "finance", "platform").await;
    let first = s
        .graphql(Some(&fin), RECORD, record_vars("purge-1", "pk-1", "1.00"))
        .await;
    assert!(error_code(&first).is_none(), "{first}");
    let reused = s
        .graphql(Some(&fin), RECORD, record_vars("purge-2", "pk-1", "2.00"))
        .await;
    assert_eq!(error_code(&reused), Some("IDEMPOTENCY_CONFLICT"));
    // Nothing is old enough yet.
    let past = chrono::Utc::now().timestamp_micros() - 60_000_000;
    assert_eq!(s.state.idempotency.purge(past).await.unwrap(), 0);
    let future = chrono::Utc::now().timestamp_micros() + 1_000_000;
    assert!(s.state.idempotency.purge(future).await.unwrap() >= 2);
    let fresh = s
        .graphql(Some(&fin), RECORD, record_vars("purge-2", "pk-1", "2.00"))
        .await;
    assert!(error_code(&fresh).is_none(), "{fresh}");
}
both_backends!(expired_idempotency_records_are_purged, idempotency_purge);
