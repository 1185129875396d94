//! Given/when/then tests of review, publication, deprecation and yanking.

use super::*;

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
