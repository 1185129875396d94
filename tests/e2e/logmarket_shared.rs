//! The marketplace's limits and one-time judgements across processes (DESIGN.md §7): two
//! `App`s on one database are two processes. They share the rate limits and submission quotas
//! (in the database, or in Redis when configured), judge a new template first once, and pay one
//! seller's log content once.

use std::sync::Arc;

use agora_api::app::{App, AppOptions, LimitOptions};
use agora_api::graphql::auth::Principal;
use agora_api::logmarket::MarketSettings;
use agora_commands::logmarket::LogMarket;
use agora_commands::{CommandMetadata, CommitSignal};
use agora_domain::logmarket::analysis::{SellerId, Stage};
use agora_tests::{both_backends, TestStore, TEST_ADMIN_TOKEN};
use chrono::Utc;
use ed25519_dalek::SigningKey;

/// A log whose templates differ by `tag` (a word without digits).
fn fresh_log(tag: &str) -> String {
    format!(
        "[2025-11-06 10:45:00] CRITICAL ERROR: Uncaught exception in POST /api/{tag}\n\
         TypeError: Cannot read properties of undefined (reading '{tag}')\n\
         [2025-11-06 10:45:01] ERROR 12 failed {tag} transactions in the last 5 minutes\n"
    )
}

async fn process(t: &TestStore, options: &AppOptions) -> App {
    App::start_with(
        &t.location,
        SigningKey::from_bytes(&[1u8; 32]),
        Some(TEST_ADMIN_TOKEN),
        options.clone(),
    )
    .await
    .expect("start a process")
}

async fn admin(app: &App) -> Principal {
    app.state
        .keys
        .authenticate(Some(&format!("Bearer {TEST_ADMIN_TOKEN}")))
        .await
        .expect("admin key")
}

fn meta() -> CommandMetadata {
    CommandMetadata::new("admin", "platform", Utc::now()).expect("metadata")
}

fn limited_options(limits: LimitOptions) -> AppOptions {
    AppOptions {
        rate_limit_per_minute: 4,
        market: MarketSettings {
            rate_limit_per_minute: 4,
            submissions_per_hour: 3,
            ..MarketSettings::default()
        },
        limits,
        ..AppOptions::default()
    }
}

/// Alternating between two processes, a key gets its limit once, not once per process.
async fn limits_shared(t: TestStore, limits: LimitOptions) {
    let options = limited_options(limits);
    let (a, b) = (process(&t, &options).await, process(&t, &options).await);
    let (pa, pb) = (admin(&a).await, admin(&b).await);
    agora_tests::within_one_window().await;
    for i in 0..4 {
        let (app, p) = if i % 2 == 0 { (&a, &pa) } else { (&b, &pb) };
        app.state.market.admit(p).await.expect("within the limit");
        app.state
            .rate_limiter
            .check(&p.key_id)
            .await
            .expect("within the general limit");
    }
    assert!(
        a.state.market.admit(&pa).await.is_err(),
        "the fifth marketplace request of the minute is refused, whichever process gets it"
    );
    assert!(b.state.market.admit(&pb).await.is_err());
    assert!(b.state.rate_limiter.check(&pb.key_id).await.is_err());

    // The hourly submission quota (3) is shared too.
    let seller = "sub-pkp-quota";
    for (i, app) in [&a, &b, &a].into_iter().enumerate() {
        let p = admin(app).await;
        let log = fresh_log(&format!("quota-{i}"));
        let stage = "runtime";
        app.state
            .market
            .analyze(&p, &meta(), seller, stage, &log)
            .await
            .expect("within the quota");
    }
    // Over the general request limit now, so count submissions directly.
    let p = admin(&b).await;
    let refused = b
        .state
        .market
        .analyze(&p, &meta(), seller, "runtime", &fresh_log("quota-3"))
        .await;
    assert!(
        matches!(
            refused,
            Err(agora_api::graphql::error::ApiError::Limited { .. })
        ),
        "the fourth submission of the hour is refused by the other process: {refused:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

async fn limits_in_the_database(t: TestStore) {
    limits_shared(t, LimitOptions::default()).await
}
both_backends!(
    limits_hold_across_processes_in_the_database,
    limits_in_the_database
);

async fn limits_in_redis(t: TestStore) {
    let limits = LimitOptions {
        redis_url: Some("redis://127.0.0.1:6379".into()),
        redis_prefix: format!("agora-test:{}:", uuid::Uuid::now_v7().simple()),
    };
    limits_shared(t, limits).await
}
both_backends!(limits_hold_across_processes_in_redis, limits_in_redis);

/// Two processes judging one new template at once award one uniqueness bonus; a process whose
/// template cache is empty (a rebuilt read model) never awards it again.
async fn first_time_once(t: TestStore) {
    let options = AppOptions::default();
    let (a, b) = (process(&t, &options).await, process(&t, &options).await);
    let seller = SellerId::parse("sub-pkp-novel").unwrap();
    // New on this fresh database, with a critical error on a line of a new template.
    let log = crate::logmarket::CRASH_LOG;
    let (ma, mb) = (meta(), meta());
    let (ra, rb) = tokio::join!(
        a.state
            .market
            .market
            .analyse(&seller, Stage::Runtime, log, 0, &ma),
        b.state
            .market
            .market
            .analyse(&seller, Stage::Runtime, log, 0, &mb),
    );
    let (ra, rb) = (ra.expect("a"), rb.expect("b"));
    let bonuses = [&ra.1, &rb.1]
        .iter()
        .filter(|an| an.bonuses.uniqueness)
        .count();
    assert_eq!(bonuses, 1, "one uniqueness bonus for one new template");
    let new_in_both =
        ra.1.templates
            .iter()
            .filter(|t| t.new)
            .any(|t| rb.1.templates.iter().any(|u| u.new && u.hash == t.hash));
    assert!(!new_in_both, "no template is new in both analyses");

    // A third process starting from an empty cache (as after a read-model rebuild).
    let fresh = LogMarket::new(
        &a.state.store,
        CommitSignal::new(),
        a.state.market.market.config().clone(),
        Arc::new(a.state.ledger_queries.clone()),
    );
    assert_eq!(fresh.known_templates(), 0);
    let (_, again) = fresh
        .analyse(&seller, Stage::Runtime, log, 0, &meta())
        .await
        .expect("analyse again");
    assert!(
        !again.bonuses.uniqueness && again.templates.iter().all(|t| !t.new),
        "nothing is new the second time, whatever the cache holds"
    );
    a.shutdown().await;
    b.shutdown().await;
}
both_backends!(first_time_is_judged_once_across_processes, first_time_once);

/// One seller's log content is paid once, even when two processes pay two analyses of it at
/// once; another seller's identical content is its own.
async fn content_paid_once(t: TestStore) {
    let options = AppOptions::default();
    let (a, b) = (process(&t, &options).await, process(&t, &options).await);
    let (pa, pb) = (admin(&a).await, admin(&b).await);
    let log = fresh_log("dup");
    let first = a
        .state
        .market
        .analyze(&pa, &meta(), "sub-pkp-dup", "runtime", &log)
        .await
        .expect("first");
    let second = b
        .state
        .market
        .analyze(&pb, &meta(), "sub-pkp-dup", "runtime", &log)
        .await
        .expect("the same content again is recorded");
    assert_ne!(first.id, second.id);
    let (ma, mb) = (meta(), meta());
    let (x, y) = tokio::join!(
        a.state.market.pay(&pa, &ma, &first.id, "sub-pkp-dup", None),
        b.state
            .market
            .pay(&pb, &mb, &second.id, "sub-pkp-dup", None),
    );
    assert_eq!(
        [x.is_ok(), y.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "one of the two analyses of one content is paid: {x:?} {y:?}"
    );
    let refused = if x.is_ok() { y } else { x };
    assert!(matches!(
        refused,
        Err(agora_api::graphql::error::ApiError::Conflict(_))
    ));
    let other = a
        .state
        .market
        .analyze(&pa, &meta(), "sub-pkp-other", "runtime", &log)
        .await
        .expect("another seller");
    a.state
        .market
        .pay(&pa, &meta(), &other.id, "sub-pkp-other", None)
        .await
        .expect("another seller's copy is its own");
    a.shutdown().await;
    b.shutdown().await;
}
both_backends!(one_sellers_content_is_paid_once, content_paid_once);

/// A simulation longer than the corpus pays each log content once and still succeeds.
async fn simulation_wraps(t: TestStore) {
    let options = AppOptions::default();
    let a = process(&t, &options).await;
    let p = admin(&a).await;
    let corpus = agora_api::logmarket::corpus::CORPUS.len();
    let n = u32::try_from(corpus + 3).unwrap();
    let out = a
        .state
        .market
        .simulate(&p, &meta(), "sub-pkp-sim", n, true)
        .await
        .expect("a simulation past the corpus's end");
    let paid: Vec<&str> = out
        .results
        .iter()
        .filter_map(|(r, receipt)| receipt.as_ref().map(|_| r.analysis.log_sha256.as_str()))
        .collect();
    let mut distinct = paid.clone();
    distinct.sort();
    distinct.dedup();
    assert!(!paid.is_empty());
    assert_eq!(paid.len(), distinct.len(), "no content paid twice");
    a.shutdown().await;
}
both_backends!(a_long_simulation_pays_each_content_once, simulation_wraps);
