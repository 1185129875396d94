//! Audit sealing: the chain and signed checkpoints verify; a changed, deleted or re-sealed event
//! is caught and named; a rebuild equals the live seal.

use std::sync::Arc;

use agora_commands::Store;
use agora_projections::audit::{self, AuditSealProjection, VerifyFailure, CHECKPOINT_INTERVAL};
use agora_projections::rebuild::rebuild_and_compare;
use agora_projections::ProjectionRunner;
use agora_tests::{both_backends, read_all, TestStore};
use chrono::Utc;
use ed25519_dalek::SigningKey;
use sqlx::Row;

use crate::common::{bus, meta, transfer};

const EVENTS: usize = 600;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

async fn sealed_store(t: &TestStore) -> ProjectionRunner {
    let bus = bus(&t.store);
    for i in 0..EVENTS {
        bus.execute(
            &format!("s-{i}"),
            transfer("a:x", "b:y", "1.25", Utc::now()),
            &meta(),
        )
        .await
        .unwrap();
    }
    let runner = ProjectionRunner::new(
        t.store.clone(),
        Arc::new(AuditSealProjection::new(Arc::new(key()))),
    )
    .with_batch_size(97);
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    runner
}

/// Runs `sql` on `events` with the immutability triggers out of the way, as an attacker with
/// direct database access would.
async fn tamper(store: &Store, sql: &str) {
    let pool = store.read_models();
    if store.pg_pool().is_some() {
        sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
            .execute(pool)
            .await
            .unwrap();
    } else {
        sqlx::query("DROP TRIGGER events_immutable_update")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("DROP TRIGGER events_immutable_delete")
            .execute(pool)
            .await
            .unwrap();
    }
    let n = sqlx::query(sql)
        .execute(pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1, "tampering touched one row");
}

async fn verifies_and_rebuilds(t: TestStore) {
    sealed_store(&t).await;
    let report = audit::verify(&t.store, &key().verifying_key())
        .await
        .unwrap();
    assert_eq!(report.failure, None);
    assert_eq!(report.verified_events, EVENTS as i64);
    assert_eq!(
        report.verified_checkpoints,
        EVENTS as i64 / CHECKPOINT_INTERVAL
    );
    assert_eq!(report.unsealed_events, 0);
    // Another key did not sign these checkpoints.
    let other = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    let report = audit::verify(&t.store, &other).await.unwrap();
    assert!(
        matches!(report.failure, Some(VerifyFailure::BadCheckpoint { seq, .. }) if seq == CHECKPOINT_INTERVAL)
    );
    // Batch boundaries do not matter: a rebuild from zero is row-for-row the live seal.
    let cmp = rebuild_and_compare(&t.store, &AuditSealProjection::new(Arc::new(key())), false)
        .await
        .unwrap();
    assert!(cmp.is_equal(), "{cmp:#?}");
}
both_backends!(seal_verifies_and_rebuilds_equal, verifies_and_rebuilds);

async fn changed_payload_is_named(t: TestStore) {
    sealed_store(&t).await;
    let events = read_all(&t.store).await;
    let victim = &events[300];
    tamper(
        &t.store,
        &format!(
            "UPDATE events SET payload = REPLACE(CAST(payload AS TEXT), '1.25', '9.25'){} WHERE global_position = {}",
            if t.store.pg_pool().is_some() { "::jsonb" } else { "" },
            victim.position.global_position
        ),
    )
    .await;
    let report = audit::verify(&t.store, &key().verifying_key())
        .await
        .unwrap();
    match report.failure {
        Some(VerifyFailure::SealMismatch {
            seq,
            position,
            event_id,
            ..
        }) => {
            assert_eq!(seq, 301);
            assert_eq!(position, victim.position);
            assert_eq!(Some(event_id.as_str()), victim.meta("event_id"));
        }
        other => panic!("expected the changed event to be named, got {other:?}"),
    }
    assert_eq!(report.verified_events, 300);
}
both_backends!(changed_event_is_named, changed_payload_is_named);

async fn deleted_event_is_named(t: TestStore) {
    sealed_store(&t).await;
    let events = read_all(&t.store).await;
    let victim = &events[EVENTS - 1];
    tamper(
        &t.store,
        &format!(
            "DELETE FROM events WHERE global_position = {}",
            victim.position.global_position
        ),
    )
    .await;
    let report = audit::verify(&t.store, &key().verifying_key())
        .await
        .unwrap();
    assert_eq!(
        report.failure,
        Some(VerifyFailure::EventMissing {
            seq: EVENTS as i64,
            sealed_position: victim.position.global_position,
            event_id: victim.meta("event_id").unwrap().to_string(),
        })
    );
}
both_backends!(deleted_event_is_caught, deleted_event_is_named);

async fn resealed_chain_breaks_signatures(t: TestStore) {
    sealed_store(&t).await;
    let events = read_all(&t.store).await;
    let victim = events[10].position.global_position;
    tamper(
        &t.store,
        &format!("UPDATE events SET event_type = 'Forged' WHERE global_position = {victim}"),
    )
    .await;
    // The attacker also recomputes every seal after the change; only the key is out of reach.
    let tampered = read_all(&t.store).await;
    let mut seal = audit::genesis_seal();
    for (i, e) in tampered.iter().enumerate() {
        seal = audit::next_seal(&seal, e);
        sqlx::query("UPDATE rm_audit_seals SET seal = $1 WHERE seq = $2")
            .bind(hex::encode(seal))
            .bind(i as i64 + 1)
            .execute(t.store.read_models())
            .await
            .unwrap();
    }
    let report = audit::verify(&t.store, &key().verifying_key())
        .await
        .unwrap();
    assert!(
        matches!(report.failure, Some(VerifyFailure::BadCheckpoint { seq, .. }) if seq == CHECKPOINT_INTERVAL),
        "{report:?}"
    );
    let row = sqlx::query("SELECT COUNT(*) FROM rm_audit_checkpoints")
        .fetch_one(t.store.read_models())
        .await
        .unwrap();
    assert_eq!(
        row.try_get::<i64, _>(0).unwrap(),
        EVENTS as i64 / CHECKPOINT_INTERVAL
    );
}
both_backends!(
    resealing_the_chain_breaks_the_signatures,
    resealed_chain_breaks_signatures
);
