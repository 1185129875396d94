//! `agora serve --role`: an `api` process runs no background work and reads projections that a
//! `projector` process (another `App` on the same PostgreSQL database) applies.

use std::time::Duration;

use agora_api::app::{App, AppOptions};
use agora_api::roles::Role;
use agora_domain::ledger::AccountId;
use agora_domain::money::{Currency, Money};
use agora_tests::{TestServer, TestStore};
use chrono::Utc;

use crate::common::{meta, transfer};

async fn start(t: &TestStore, role: Role) -> App {
    let options = AppOptions {
        role,
        pool_sizes: TestServer::POOL_SIZES,
        ..AppOptions::default()
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]);
    App::start_with(
        &t.location,
        key,
        Some(agora_tests::TEST_ADMIN_TOKEN),
        options,
    )
    .await
    .expect("start app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_process_reads_what_a_projector_process_applies() {
    let t = TestStore::postgres().await;
    let projector = start(&t, Role::Projector).await;
    let api = start(&t, Role::Api).await;
    // The api process holds no lease: it runs no projection, process manager or purge.
    assert!(
        api.state.leases.held().is_empty(),
        "{:?}",
        api.state.leases.held()
    );
    api.state
        .ledger
        .execute(
            "roles-1",
            transfer("platform:funding", "seller:r1:payable", "7.25", Utc::now()),
            &meta(),
        )
        .await
        .expect("recorded through the api process");
    let account = AccountId::parse("seller:r1:payable").expect("account");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let balance = api
            .state
            .ledger_queries
            .balance(&account, Currency::usd())
            .await
            .expect("query");
        if let Some(b) = balance {
            assert_eq!(b.posted, Money::parse("7.25").expect("money"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projector never applied the entry"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        projector.state.leases.holds("agora.projection:ledger"),
        "{:?}",
        projector.state.leases.held()
    );
    api.shutdown().await;
    projector.shutdown().await;
}
