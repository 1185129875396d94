use chrono::TimeZone;
use cqrs_es::test::TestFramework;
use ed25519_dalek::SigningKey;

use super::*;
use crate::capsules::fixtures::{quiet_manifest, SEED_MANIFEST};
use crate::capsules::manifest;
use crate::capsules::signature::{key_id, sign};

type Given = TestFramework<Capsule>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn dec(hundredths: i64) -> Decimal {
    Decimal::new(hundredths, 2)
}

fn digest(c: char) -> String {
    c.to_string().repeat(64)
}

fn parsed(text: &str) -> Manifest {
    manifest::parse(text.as_bytes()).unwrap().manifest
}

fn quiet(version: &str) -> Manifest {
    parsed(&quiet_manifest("csv-summary", version))
}

fn risk(manifest: &Manifest, score: Decimal) -> RiskReport {
    RiskReport {
        score,
        factors: vec![],
        dangerous_permissions: manifest.dangerous_permissions(),
        auto_approve: false,
    }
}

/// A submission of `manifest` by "alice" with digests named by `tag`.
fn submit_as(manifest: Manifest, score: Decimal, tag: char, by: &str) -> SubmitVersion {
    SubmitVersion {
        risk: risk(&manifest, score),
        manifest,
        manifest_sha256: digest(tag),
        bundle_sha256: digest('b'),
        bundle_size_bytes: 2048,
        sbom_sha256: digest('c'),
        signer_keyid: None,
        submitted_by: by.into(),
        occurred_at: at(),
    }
}

fn submit(manifest: Manifest, score: Decimal) -> SubmitVersion {
    submit_as(manifest, score, 'a', "alice")
}

fn cmd(s: SubmitVersion) -> CapsuleCommand {
    CapsuleCommand::Submit(Box::new(s))
}

/// The events a submission produces, computed by the aggregate from no history (tests of later
/// rules use them as given events).
fn events_of(history: Vec<CapsuleEvent>, command: CapsuleCommand) -> Vec<CapsuleEvent> {
    let mut capsule = Capsule::default();
    for e in history.clone() {
        capsule.apply(e);
    }
    let events = capsule.decide(command).unwrap();
    history.into_iter().chain(events).collect()
}

fn reviewer() -> Actor {
    Actor {
        id: "rita".into(),
        role: Role::Reviewer,
    }
}

fn review(version: &str, decision: ReviewDecision, score: Decimal) -> CapsuleCommand {
    CapsuleCommand::Review(ReviewVersion {
        version: v(version),
        reviewer: reviewer(),
        decision,
        notes: "looked at the network calls".into(),
        risk_score_seen: score,
        occurred_at: at(),
    })
}

fn platform() -> SigningKey {
    SigningKey::from_bytes(&[9u8; 32])
}

fn publish(version: &str, manifest_tag: char) -> CapsuleCommand {
    let statement =
        CapsuleStatement::new("csv-summary", version, &digest(manifest_tag), &digest('b'));
    CapsuleCommand::Publish(PublishVersion {
        version: v(version),
        envelope: sign(&statement, &platform()),
        platform_keyid: key_id(&platform().verifying_key()),
        occurred_at: at(),
    })
}

fn retire(version: &str, by: Actor) -> RetireVersion {
    RetireVersion {
        version: v(version),
        message: "use 2.x".into(),
        by,
        occurred_at: at(),
    }
}

fn alice() -> Actor {
    Actor {
        id: "alice".into(),
        role: Role::Author,
    }
}

/// History: `version` of the quiet manifest submitted (auto-approved) and published.
fn published(version: &str) -> Vec<CapsuleEvent> {
    let history = events_of(vec![], cmd(submit(quiet(version), dec(10))));
    events_of(history, publish(version, 'a'))
}

/// The `VersionSubmitted` event of a submission.
fn submitted(
    c: &SubmitVersion,
    previous: Option<&str>,
    breaking: Vec<BreakingChange>,
) -> CapsuleEvent {
    CapsuleEvent::VersionSubmitted {
        version: c.manifest.version.clone(),
        manifest: Box::new(c.manifest.clone()),
        manifest_sha256: c.manifest_sha256.clone(),
        bundle_sha256: c.bundle_sha256.clone(),
        bundle_size_bytes: c.bundle_size_bytes,
        sbom_sha256: c.sbom_sha256.clone(),
        risk: c.risk.clone(),
        signer_keyid: c.signer_keyid.clone(),
        submitted_by: c.submitted_by.clone(),
        previous_version: previous.map(v),
        breaking_changes: breaking,
        dangerous_permissions_added: BTreeSet::new(),
        occurred_at: at(),
    }
}

#[path = "aggregate_rules_tests.rs"]
mod rules;

#[path = "aggregate_lifecycle_tests.rs"]
mod lifecycle;
