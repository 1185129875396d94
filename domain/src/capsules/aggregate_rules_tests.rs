//! Given/when/then tests, one or more per rule of the capsule aggregate.

use super::*;

/// The second event of a submission from `history`.
fn routed(history: Vec<CapsuleEvent>, command: CapsuleCommand) -> CapsuleEvent {
    let n = history.len();
    events_of(history, command).swap_remove(n + 1)
}

#[test]
fn a_low_risk_version_without_dangerous_permissions_is_auto_approved() {
    let c = submit(quiet("1.0.0"), dec(29));
    Given::with(())
        .given_no_previous_events()
        .when(cmd(c.clone()))
        .then_expect_events(vec![
            submitted(&c, None, vec![]),
            CapsuleEvent::AutoApproved {
                version: v("1.0.0"),
                risk_score: dec(29),
                occurred_at: at(),
            },
        ]);
}

#[test]
fn a_score_of_0_3_or_more_is_queued_with_the_score_as_reason() {
    let c = submit(quiet("1.0.0"), dec(30));
    Given::with(())
        .given_no_previous_events()
        .when(cmd(c.clone()))
        .then_expect_events(vec![
            submitted(&c, None, vec![]),
            CapsuleEvent::QueuedForReview {
                version: v("1.0.0"),
                risk_score: dec(30),
                reasons: vec![ReviewReason::RiskScore { score: dec(30) }],
                occurred_at: at(),
            },
        ]);
}

#[test]
fn a_dangerous_permission_is_queued_whatever_the_score() {
    let seed = parsed(SEED_MANIFEST);
    let event = routed(vec![], cmd(submit(seed.clone(), dec(0))));
    assert_eq!(
        event,
        CapsuleEvent::QueuedForReview {
            version: v("1.2.3"),
            risk_score: dec(0),
            reasons: vec![ReviewReason::DangerousPermissions {
                permissions: seed.dangerous_permissions()
            }],
            occurred_at: at(),
        }
    );
}

#[test]
fn an_update_adding_a_dangerous_permission_is_queued_and_flagged() {
    let text = quiet_manifest("csv-summary", "1.1.0")
        .replace("[filesystem.read]", "[filesystem.read, network.egress]");
    let history = published("1.0.0");
    let events = events_of(
        history.clone(),
        cmd(submit_as(parsed(&text), dec(0), 'd', "alice")),
    );
    let added = BTreeSet::from([Permission::NetworkEgress]);
    match &events[history.len()] {
        CapsuleEvent::VersionSubmitted {
            dangerous_permissions_added,
            previous_version,
            breaking_changes,
            ..
        } => {
            assert_eq!(dangerous_permissions_added, &added);
            assert_eq!(previous_version, &Some(v("1.0.0")));
            assert_eq!(
                breaking_changes,
                &vec![BreakingChange::PermissionAdded {
                    permission: Permission::NetworkEgress
                }]
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &events[history.len() + 1],
        CapsuleEvent::QueuedForReview { reasons, .. }
            if reasons.contains(&ReviewReason::DangerousPermissionsAdded { permissions: added.clone() })
    ));
}

#[test]
fn a_retry_with_the_same_digests_is_a_no_op() {
    Given::with(())
        .given(published("1.0.0"))
        .when(cmd(submit(quiet("1.0.0"), dec(10))))
        .then_expect_events(vec![]);
}

#[test]
fn a_published_version_is_immutable() {
    Given::with(())
        .given(published("1.0.0"))
        .when(cmd(submit_as(quiet("1.0.0"), dec(10), 'e', "alice")))
        .then_expect_error(CapsuleError::VersionImmutable {
            version: v("1.0.0"),
        });
}

#[test]
fn a_queued_version_keeps_its_content() {
    let history = events_of(vec![], cmd(submit(quiet("1.0.0"), dec(50))));
    Given::with(())
        .given(history)
        .when(cmd(submit_as(quiet("1.0.0"), dec(10), 'e', "alice")))
        .then_expect_error(CapsuleError::VersionAlreadySubmitted {
            version: v("1.0.0"),
            status: VersionStatus::Queued,
        });
}

#[test]
fn after_changes_are_requested_the_same_version_may_be_resubmitted() {
    let history = events_of(vec![], cmd(submit(quiet("1.0.0"), dec(50))));
    let history = events_of(
        history,
        review("1.0.0", ReviewDecision::RequestChanges, dec(50)),
    );
    let c = submit_as(quiet("1.0.0"), dec(10), 'e', "alice");
    Given::with(())
        .given(history)
        .when(cmd(c.clone()))
        .then_expect_events(vec![
            submitted(&c, None, vec![]),
            CapsuleEvent::AutoApproved {
                version: v("1.0.0"),
                risk_score: dec(10),
                occurred_at: at(),
            },
        ]);
}

#[test]
fn only_the_owner_submits_versions() {
    Given::with(())
        .given(published("1.0.0"))
        .when(cmd(submit_as(quiet("1.1.0"), dec(10), 'a', "mallory")))
        .then_expect_error(CapsuleError::NotOwner {
            owner: "alice".into(),
        });
}

#[test]
fn the_manifest_must_name_this_capsule() {
    let other = parsed(&quiet_manifest("csv-other", "1.1.0"));
    Given::with(())
        .given(published("1.0.0"))
        .when(cmd(submit(other, dec(10))))
        .then_expect_error(CapsuleError::NameMismatch {
            expected: CapsuleName::parse("csv-summary").unwrap(),
            found: CapsuleName::parse("csv-other").unwrap(),
        });
}

#[test]
fn digests_must_be_sha256_hex() {
    let mut c = submit(quiet("1.0.0"), dec(10));
    c.bundle_sha256 = "not-a-digest".into();
    Given::with(())
        .given_no_previous_events()
        .when(cmd(c))
        .then_expect_error(CapsuleError::InvalidDigest {
            field: "bundle_sha256",
        });
}

#[test]
fn a_backport_compares_with_the_greatest_published_version_below_it() {
    let history = published("1.0.0");
    let two = parsed(&quiet_manifest("csv-summary", "2.0.0"));
    let history = events_of(history, cmd(submit_as(two, dec(10), 'f', "alice")));
    let history = events_of(history, publish("2.0.0", 'f'));
    let c = submit_as(quiet("1.4.1"), dec(10), '4', "alice");
    let events = events_of(history.clone(), cmd(c.clone()));
    assert_eq!(events[history.len()], submitted(&c, Some("1.0.0"), vec![]));
}

#[test]
fn a_major_bump_and_a_removed_output_are_breaking() {
    let text = quiet_manifest("csv-summary", "2.0.0")
        .replace("  outputs:\n    - { name: summary, type: json }\n", "");
    let c = submit_as(parsed(&text), dec(10), '3', "alice");
    let breaking = vec![
        BreakingChange::MajorVersion {
            from: v("1.0.0"),
            to: v("2.0.0"),
        },
        BreakingChange::OutputRemoved {
            name: "summary".into(),
        },
    ];
    let history = published("1.0.0");
    let events = events_of(history.clone(), cmd(c.clone()));
    assert_eq!(
        events[history.len()],
        submitted(&c, Some("1.0.0"), breaking.clone())
    );
    let events = events_of(events, publish("2.0.0", '3'));
    assert!(
        matches!(events.last(), Some(CapsuleEvent::VersionPublished { breaking_changes, .. }) if *breaking_changes == breaking)
    );
}

#[test]
fn breaking_changes_cover_inputs_types_permissions_and_zero_versions() {
    let a = parsed(&quiet_manifest("csv-summary", "0.1.0"));
    let text = quiet_manifest("csv-summary", "0.2.0")
        .replace(
            "{ name: summary, type: json }",
            "{ name: summary, type: string }",
        )
        .replace("[filesystem.read]", "[]")
        .replace(
            "type: file, required: true }",
            "type: file, required: true }\n    - { name: sep, type: string, required: true }",
        );
    let b = parsed(&text);
    assert_eq!(
        breaking_changes(&a, &b),
        vec![
            BreakingChange::MajorVersion {
                from: v("0.1.0"),
                to: v("0.2.0")
            },
            BreakingChange::InputRequired { name: "sep".into() },
            BreakingChange::PortTypeChanged {
                name: "summary".into(),
                from: PortType::Json,
                to: PortType::String
            },
            BreakingChange::PermissionRemoved {
                permission: Permission::FilesystemRead
            },
        ]
    );
    assert_eq!(breaking_changes(&a, &quiet("0.1.1")), vec![]);
}
