//! Stored event shapes are versioned: an event of each evolving type, stored in its version-1
//! shape (a raw row, as an older release wrote it), loads through its upcaster into the
//! aggregate (`agora_domain::versioning`), on both backends.

use std::str::FromStr;

use agora_commands::{CommandBus, CommitSignal};
use agora_domain::logmarket::aggregate::{LogAnalysis, LogAnalysisEvent};
use agora_domain::logmarket::analysis::{analyse, MarketConfig, SellerId, Stage};
use agora_domain::money::Money;
use agora_domain::tenancy::cost::TagValue;
use agora_domain::tenancy::guardrail::MarginThreshold;
use agora_domain::tenancy::slo::SloTarget;
use agora_domain::tenancy::tenant::{Tenant, TenantEvent, TenantName, TenantSlo};
use agora_domain::tenancy::work::SeriesInput;
use agora_domain::versioning::{current_version, EVOLUTIONS, FIRST_VERSION};
use agora_tests::{both_backends, TestStore};
use chrono::Utc;
use rust_decimal::Decimal;

use crate::parking::append_raw;

async fn log_analysis_v1_loads(t: &TestStore) {
    let analysis = analyse(
        "2026-01-01 ERROR db timeout after 30s\n2026-01-01 WARN retrying\n",
        Stage::Runtime,
        &MarketConfig::default(),
        &|_| false,
    )
    .expect("analysis");
    let event = LogAnalysisEvent::LogAnalysisRecorded {
        seller: SellerId::parse("seller-1").unwrap(),
        stage: Stage::Runtime,
        analysis: Box::new(analysis.clone()),
        claimed_templates: vec![],
        occurred_at: Utc::now(),
    };
    let mut v1 = serde_json::to_value(&event).unwrap();
    // Version 1.0 had no `templates` in the recorded analysis.
    let removed = v1["LogAnalysisRecorded"]["analysis"]
        .as_object_mut()
        .and_then(|a| a.remove("templates"));
    assert!(removed.is_some(), "the current shape carries templates");
    append_raw(
        &t.store,
        ("log_analysis", "v1-analysis", 1),
        "LogAnalysisRecorded",
        FIRST_VERSION,
        &v1,
    )
    .await;
    let bus = CommandBus::<LogAnalysis>::new(&t.store, CommitSignal::new(), ());
    let loaded = bus.load("v1-analysis").await.expect("load");
    assert!(loaded.is_recorded());
    assert_eq!(loaded.price(), Some(analysis.payment));
    assert_eq!(loaded.value_score(), Some(analysis.value_score));
}

async fn series_v1_loads(t: &TestStore) {
    let registered = TenantEvent::TenantRegistered {
        name: TenantName::parse("Acme").unwrap(),
        mrr: Money::parse("1000").unwrap(),
        cost_center: TagValue::parse("cc-1").unwrap(),
        slo: TenantSlo::try_new(
            SloTarget::try_new(Decimal::from_str("0.99").unwrap()).unwrap(),
            30,
        )
        .unwrap(),
        margin_threshold: MarginThreshold::default(),
        occurred_at: Utc::now(),
    };
    append_raw(
        &t.store,
        ("tenant", "v1-tenant", 1),
        "TenantRegistered",
        FIRST_VERSION,
        &serde_json::to_value(&registered).unwrap(),
    )
    .await;
    let series = SeriesInput {
        values: vec![1.0, 2.0, 3.0, 4.0],
        season_length: None,
    };
    let recorded = TenantEvent::SeriesRecorded {
        points: 4,
        series: series.clone(),
        occurred_at: Utc::now(),
    };
    let mut v1 = serde_json::to_value(&recorded).unwrap();
    if let Some(s) = v1["SeriesRecorded"]["series"].as_object_mut() {
        s.remove("seasonLength");
    }
    append_raw(
        &t.store,
        ("tenant", "v1-tenant", 2),
        "SeriesRecorded",
        FIRST_VERSION,
        &v1,
    )
    .await;
    let bus = CommandBus::<Tenant>::new(&t.store, CommitSignal::new(), ());
    let loaded = bus.load("v1-tenant").await.expect("load");
    let profile = loaded.profile().expect("registered");
    assert_eq!(profile.series.as_ref(), Some(&series));
}

async fn api_key_v1_loads(t: &TestStore) {
    // Version 1.0 had neither `expires_at` nor `token_secret_id`.
    let v1 = serde_json::json!({"ApiKeyIssued": {"principal": "old", "role": "auditor",
        "tenant": "platform", "secret_sha256": "0".repeat(64),
        "occurred_at": "2026-01-01T00:00:00Z"}});
    append_raw(
        &t.store,
        ("api_key", "v1-key", 1),
        "ApiKeyIssued",
        FIRST_VERSION,
        &v1,
    )
    .await;
    let bus = CommandBus::<agora_domain::access::ApiKey>::new(&t.store, CommitSignal::new(), ());
    let loaded = bus.load("v1-key").await.expect("load");
    let key = loaded.active().expect("issued and active");
    assert_eq!(
        (key.expires_at, key.token_secret_id.as_deref()),
        (None, None)
    );
    assert!(matches!(
        loaded.status(Utc::now()),
        agora_domain::access::KeyStatus::Active(_)
    ));
}

async fn version_1_events_load(t: TestStore) {
    // Every registered evolution is covered here.
    let covered = [
        ("log_analysis", "LogAnalysisRecorded"),
        ("tenant", "SeriesRecorded"),
        ("api_key", "ApiKeyIssued"),
    ];
    for e in EVOLUTIONS {
        assert!(
            covered.contains(&(e.aggregate_type, e.event_type)),
            "no load test for {}/{}",
            e.aggregate_type,
            e.event_type
        );
        assert_eq!(
            current_version(e.aggregate_type, e.event_type),
            e.to_version
        );
    }
    log_analysis_v1_loads(&t).await;
    series_v1_loads(&t).await;
    api_key_v1_loads(&t).await;
}
both_backends!(
    version_1_events_of_every_evolving_type_load_through_their_upcasters,
    version_1_events_load
);
