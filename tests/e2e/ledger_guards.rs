//! Guards on the journal over the real server: entry ids in the system namespaces are refused
//! from clients; an entry that would push a balance past ±10^15 is refused with a typed code and
//! the ledger projection keeps running; every process of a deployment holds the same ledger
//! signing key.

use std::time::{Duration, Instant};

use agora_domain::ledger::{AccountId, SYSTEM_ENTRY_PREFIXES};
use agora_domain::money::{Currency, Money};
use agora_projections::signing_key::fingerprint;
use agora_tests::{both_backends, error_code, read_all, TestServer, TestStore, TEST_ADMIN_TOKEN};
use ed25519_dalek::SigningKey;
use serde_json::{json, Value};

const CREATE_KEY: &str = "mutation($p: String!, $r: String!, $t: String!, $k: String!) {
  createApiKey(input: {principal: $p, role: $r, tenant: $t}, idempotencyKey: $k) { token } }";

const RECORD: &str = "mutation($id: String!, $k: String, $a: Money!, $b: Money!) {
  recordJournalEntry(idempotencyKey: $k, input: {entryId: $id, memo: \"guard\", postings: [
    {account: \"platform:funding\", amount: $a}, {account: \"seller:big:payable\", amount: $b}]}) { entryId status } }";

const HOLD: &str = "mutation($id: String!, $k: String, $a: Money!, $b: Money!) {
  placeHold(idempotencyKey: $k, input: {entryId: $id, memo: \"guard\", postings: [
    {account: \"platform:funding\", amount: $a}, {account: \"seller:big:payable\", amount: $b}]}) { entryId status } }";

async fn finance_key(s: &TestServer) -> String {
    let r = s
        .graphql(
            Some(&s.admin_token),
            CREATE_KEY,
            json!({"p": "fin", "r": "finance", "t": "platform", "k": "key-fin"}),
        )
        .await;
    r["data"]["createApiKey"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("createApiKey failed: {r}"))
        .to_string()
}

fn vars(id: &str, amount: &str) -> Value {
    json!({"id": id, "k": format!("k-{id}"), "a": amount, "b": format!("-{amount}")})
}

async fn journal_events_of(t: &TestStore, entry_id: &str) -> usize {
    read_all(&t.store)
        .await
        .iter()
        .filter(|e| e.aggregate_type == "journal_entry" && e.aggregate_id == entry_id)
        .count()
}

async fn system_namespaces(t: TestStore) {
    let s = TestServer::start(t).await;
    let token = finance_key(&s).await;
    for prefix in SYSTEM_ENTRY_PREFIXES {
        let id = format!("{prefix}x");
        for mutation in [RECORD, HOLD] {
            let r = s.graphql(Some(&token), mutation, vars(&id, "5.00")).await;
            assert_eq!(error_code(&r), Some("FORBIDDEN"), "{id}: {r}");
            let message = r["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.contains("reserved"), "{message}");
        }
    }
    let r = s
        .graphql(
            Some(&token),
            "mutation { postHold(entryId: \"lvcost-w1\", idempotencyKey: \"ph\") { status } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    // Nothing was stored under a system id, and an ordinary id still works.
    assert_eq!(journal_events_of(&s.store, "logpay-x").await, 0);
    let r = s
        .graphql(Some(&token), RECORD, vars("order-1", "5.00"))
        .await;
    assert_eq!(error_code(&r), None, "{r}");
    assert_eq!(journal_events_of(&s.store, "order-1").await, 1);
}

both_backends!(
    client_entries_in_system_namespaces_are_forbidden,
    system_namespaces
);

/// The posted balance of `account` once the projection shows `want`.
async fn wait_for_balance(s: &TestServer, account: &str, want: &str) {
    let want = Money::parse(want).unwrap();
    let account = AccountId::parse(account).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = s
            .state
            .ledger_queries
            .balance(&account, Currency::usd())
            .await
            .unwrap()
            .map(|b| b.posted);
        if got == Some(want) {
            return;
        }
        let statuses = s.state.projections.statuses().await;
        assert!(
            Instant::now() < deadline,
            "{account} never reached {want} (got {got:?}); projections: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn balance_bounds(t: TestStore) {
    let s = TestServer::start(t).await;
    let token = finance_key(&s).await;
    let near = "600000000000000";
    let r = s.graphql(Some(&token), RECORD, vars("big-1", near)).await;
    assert_eq!(error_code(&r), None, "{r}");
    wait_for_balance(&s, "platform:funding", near).await;

    // Valid on its own (|amount| ≤ 10^15), but funding would reach 1.2 * 10^15.
    for (mutation, id) in [(RECORD, "big-2"), (HOLD, "big-3")] {
        let r = s.graphql(Some(&token), mutation, vars(id, near)).await;
        assert_eq!(error_code(&r), Some("BALANCE_OUT_OF_BOUNDS"), "{r}");
        assert_eq!(journal_events_of(&s.store, id).await, 0);
    }

    // The ledger projection keeps running: a later entry is projected.
    let r = s
        .graphql(Some(&token), RECORD, vars("small-1", "1.00"))
        .await;
    assert_eq!(error_code(&r), None, "{r}");
    wait_for_balance(&s, "platform:funding", "600000000000001").await;
    for status in s.state.projections.statuses().await {
        let status = status.unwrap();
        assert_eq!(status.last_error, None, "{}", status.name);
    }
}

both_backends!(an_entry_past_the_balance_bound_is_refused, balance_bounds);

async fn one_signing_key(t: TestStore) {
    let s = TestServer::start(t).await;
    let first = SigningKey::from_bytes(&[1u8; 32]).verifying_key();
    let other = SigningKey::from_bytes(&[2u8; 32]);
    let error = agora_api::app::App::start_with(
        &s.store.location,
        other.clone(),
        Some(TEST_ADMIN_TOKEN),
        Default::default(),
    )
    .await
    .err()
    .expect("a process with another key must not start");
    let message = format!("{error:#}");
    assert!(message.contains(&fingerprint(&first)), "{message}");
    assert!(
        message.contains(&fingerprint(&other.verifying_key())),
        "{message}"
    );
    // The same key starts (a second replica, a restart).
    let again = agora_api::app::App::start_with(
        &s.store.location,
        SigningKey::from_bytes(&[1u8; 32]),
        Some(TEST_ADMIN_TOKEN),
        Default::default(),
    )
    .await
    .expect("the deployment's key starts");
    again.shutdown().await;
    let recorded = agora_projections::signing_key::recorded(&s.store.store)
        .await
        .unwrap()
        .map(|(k, _)| k);
    assert_eq!(recorded, Some(first));
}

both_backends!(
    every_process_holds_the_deployments_signing_key,
    one_signing_key
);
