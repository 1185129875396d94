//! Given/when/then tests, one or more per rule of the capsule aggregate.

use super::*;

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

fn queued() -> Vec<CapsuleEvent> {
    events_of(vec![], cmd(submit(quiet("1.0.0"), dec(50))))
}

#[test]
fn a_reviewer_approves_a_queued_version_on_the_score_they_saw() {
    Given::with(())
        .given(queued())
        .when(review("1.0.0", ReviewDecision::Approve, dec(50)))
        .then_expect_events(vec![CapsuleEvent::Reviewed {
            version: v("1.0.0"),
            decision: ReviewDecision::Approve,
            reviewer_id: "rita".into(),
            notes: "looked at the network calls".into(),
            risk_score_seen: dec(50),
            occurred_at: at(),
        }]);
}

#[test]
fn only_reviewers_review() {
    for role in [Role::Author, Role::Admin, Role::Auditor] {
        let mut c = review("1.0.0", ReviewDecision::Approve, dec(50));
        if let CapsuleCommand::Review(r) = &mut c {
            r.reviewer.role = role;
        }
        Given::with(())
            .given(queued())
            .when(c)
            .then_expect_error(CapsuleError::NotAReviewer);
    }
}

#[test]
fn a_reviewer_may_not_review_their_own_submission() {
    let history = events_of(vec![], cmd(submit_as(quiet("1.0.0"), dec(50), 'a', "rita")));
    Given::with(())
        .given(history)
        .when(review("1.0.0", ReviewDecision::Approve, dec(50)))
        .then_expect_error(CapsuleError::SelfReview);
}

#[test]
fn only_a_queued_version_is_reviewed() {
    Given::with(())
        .given(published("1.0.0"))
        .when(review("1.0.0", ReviewDecision::Reject, dec(10)))
        .then_expect_error(CapsuleError::NotQueued {
            version: v("1.0.0"),
            status: VersionStatus::Published,
        });
    Given::with(())
        .given(queued())
        .when(review("9.9.9", ReviewDecision::Approve, dec(50)))
        .then_expect_error(CapsuleError::UnknownVersion {
            version: v("9.9.9"),
        });
}

#[test]
fn rejecting_needs_notes_and_a_current_score() {
    let mut c = review("1.0.0", ReviewDecision::Reject, dec(50));
    if let CapsuleCommand::Review(r) = &mut c {
        r.notes = "  ".into();
    }
    Given::with(())
        .given(queued())
        .when(c)
        .then_expect_error(CapsuleError::NotesRequired);
    Given::with(())
        .given(queued())
        .when(review("1.0.0", ReviewDecision::Reject, dec(20)))
        .then_expect_error(CapsuleError::RiskScoreChanged {
            seen: dec(20),
            current: dec(50),
        });
    let mut long = review("1.0.0", ReviewDecision::Reject, dec(50));
    if let CapsuleCommand::Review(r) = &mut long {
        r.notes = "x".repeat(MAX_NOTES_CHARS + 1);
    }
    Given::with(())
        .given(queued())
        .when(long)
        .then_expect_error(CapsuleError::TextTooLong {
            max_chars: MAX_NOTES_CHARS,
        });
}

#[test]
fn a_rejected_version_is_not_published_nor_resubmitted() {
    let history = events_of(queued(), review("1.0.0", ReviewDecision::Reject, dec(50)));
    Given::with(())
        .given(history.clone())
        .when(publish("1.0.0", 'a'))
        .then_expect_error(CapsuleError::NotApproved {
            version: v("1.0.0"),
            status: VersionStatus::Rejected,
        });
    Given::with(())
        .given(history)
        .when(cmd(submit_as(quiet("1.0.0"), dec(10), '6', "alice")))
        .then_expect_error(CapsuleError::VersionAlreadySubmitted {
            version: v("1.0.0"),
            status: VersionStatus::Rejected,
        });
}

#[test]
fn an_approved_version_is_published_once_with_the_platform_signature() {
    let approved = events_of(queued(), review("1.0.0", ReviewDecision::Approve, dec(50)));
    let events = events_of(approved.clone(), publish("1.0.0", 'a'));
    assert!(
        matches!(events.last(), Some(CapsuleEvent::VersionPublished { platform_keyid, .. }) if *platform_keyid == key_id(&platform().verifying_key()))
    );
    Given::with(())
        .given(events)
        .when(publish("1.0.0", 'a'))
        .then_expect_events(vec![]);
    Given::with(())
        .given(queued())
        .when(publish("1.0.0", 'a'))
        .then_expect_error(CapsuleError::NotApproved {
            version: v("1.0.0"),
            status: VersionStatus::Queued,
        });
}

#[test]
fn the_platform_envelope_must_name_this_version_and_carry_the_platform_key() {
    let approved = events_of(queued(), review("1.0.0", ReviewDecision::Approve, dec(50)));
    Given::with(())
        .given(approved.clone())
        .when(publish("1.0.0", 'x'))
        .then_expect_error(CapsuleError::PlatformSignatureMismatch(
            SignatureError::DigestMismatch {
                field: "manifest_sha256",
            },
        ));
    let mut other_key = publish("1.0.0", 'a');
    if let CapsuleCommand::Publish(p) = &mut other_key {
        p.platform_keyid = digest('9');
    }
    Given::with(())
        .given(approved)
        .when(other_key)
        .then_expect_error(CapsuleError::MissingPlatformSignature { keyid: digest('9') });
}

#[test]
fn the_owner_deprecates_a_published_version_once_per_message() {
    let expected = CapsuleEvent::VersionDeprecated {
        version: v("1.0.0"),
        message: "use 2.x".into(),
        by: "alice".into(),
        occurred_at: at(),
    };
    Given::with(())
        .given(published("1.0.0"))
        .when(CapsuleCommand::Deprecate(retire("1.0.0", alice())))
        .then_expect_events(vec![expected.clone()]);
    let mut history = published("1.0.0");
    history.push(expected);
    Given::with(())
        .given(history)
        .when(CapsuleCommand::Deprecate(retire("1.0.0", alice())))
        .then_expect_events(vec![]);
}

#[test]
fn only_the_owner_or_an_admin_retires_and_only_published_versions() {
    let mallory = Actor {
        id: "mallory".into(),
        role: Role::Author,
    };
    Given::with(())
        .given(published("1.0.0"))
        .when(CapsuleCommand::Yank(retire("1.0.0", mallory)))
        .then_expect_error(CapsuleError::NotOwner {
            owner: "alice".into(),
        });
    let admin = Actor {
        id: "root".into(),
        role: Role::Admin,
    };
    Given::with(())
        .given(published("1.0.0"))
        .when(CapsuleCommand::Yank(retire("1.0.0", admin)))
        .then_expect_events(vec![CapsuleEvent::VersionYanked {
            version: v("1.0.0"),
            reason: "use 2.x".into(),
            by: "root".into(),
            occurred_at: at(),
        }]);
    Given::with(())
        .given(queued())
        .when(CapsuleCommand::Deprecate(retire("1.0.0", alice())))
        .then_expect_error(CapsuleError::NotPublished {
            version: v("1.0.0"),
            status: VersionStatus::Queued,
        });
    let mut empty = retire("1.0.0", alice());
    empty.message = String::new();
    Given::with(())
        .given(published("1.0.0"))
        .when(CapsuleCommand::Deprecate(empty))
        .then_expect_error(CapsuleError::MessageRequired);
}

#[test]
fn yanking_twice_is_a_no_op_and_a_yanked_version_is_not_a_predecessor() {
    let history = events_of(
        published("1.0.0"),
        CapsuleCommand::Yank(retire("1.0.0", alice())),
    );
    Given::with(())
        .given(history.clone())
        .when(CapsuleCommand::Yank(retire("1.0.0", alice())))
        .then_expect_events(vec![]);
    let c = submit_as(quiet("1.1.0"), dec(10), '5', "alice");
    let events = events_of(history.clone(), cmd(c.clone()));
    assert_eq!(events[history.len()], submitted(&c, None, vec![]));
}

#[test]
fn events_round_trip_through_json_with_their_types() {
    for e in published("1.0.0") {
        let json = serde_json::to_string(&e).unwrap();
        let back: CapsuleEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        assert!(e.event_type().starts_with("CapsuleVersion"));
    }
    let mut capsule = Capsule::default();
    for e in published("1.0.0") {
        capsule.apply(e);
    }
    let json = serde_json::to_string(&capsule).unwrap();
    assert_eq!(serde_json::from_str::<Capsule>(&json).unwrap(), capsule);
    assert_eq!(capsule.owner(), Some("alice"));
}
