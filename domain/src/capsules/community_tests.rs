//! Given/when/then tests of the review aggregate, and tests of duplicate detection and trending.

use chrono::{Duration, TimeZone};
use cqrs_es::test::TestFramework;
use rust_decimal::Decimal;

use super::spam::{find_near_duplicate, fingerprint, near_duplicate};
use super::trending::{score, trending, CapsuleActivity, MAX_TRENDING};
use super::*;

type Given = TestFramework<CapsuleReview>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
}

fn capsule() -> CapsuleName {
    CapsuleName::parse("csv-summary").unwrap()
}

fn stars(n: u8) -> Stars {
    Stars::parse(n).unwrap()
}

fn clean() -> TextFacts {
    TextFacts {
        author_reviews_last_hour: 0,
        near_duplicate_of: None,
    }
}

const TEXT: &str = "Summarised a 2 GB export in seconds.";

fn write(text: &str) -> WriteReview {
    WriteReview {
        capsule: capsule(),
        author: "ann".into(),
        stars: stars(4),
        text: text.into(),
        has_installed: true,
        facts: clean(),
        occurred_at: at(),
    }
}

fn written() -> ReviewEvent {
    ReviewEvent::ReviewWritten {
        capsule: capsule(),
        author: "ann".into(),
        stars: stars(4),
        text: TEXT.into(),
        fingerprint: fingerprint(TEXT),
        occurred_at: at(),
    }
}

fn edit(by: &str, n: u8, text: &str) -> ReviewCommand {
    ReviewCommand::Edit(EditReview {
        by: by.into(),
        stars: stars(n),
        text: text.into(),
        facts: clean(),
        occurred_at: at(),
    })
}

fn moderate(role: Role, action: Moderation, note: &str) -> ReviewCommand {
    ReviewCommand::Moderate(ModerateReview {
        moderator: Actor {
            id: "rita".into(),
            role,
        },
        action,
        note: note.into(),
        occurred_at: at(),
    })
}

fn hidden() -> ReviewEvent {
    ReviewEvent::ReviewHidden {
        moderator_id: "rita".into(),
        note: "advertises another product".into(),
        stars: stars(4),
        occurred_at: at(),
    }
}

fn vote(voter: &str, helpful: bool) -> ReviewCommand {
    ReviewCommand::Vote(VoteReview {
        voter: voter.into(),
        helpful,
        occurred_at: at(),
    })
}

#[test]
fn a_user_who_installed_rates_and_reviews() {
    Given::with(())
        .given_no_previous_events()
        .when(ReviewCommand::Write(write(TEXT)))
        .then_expect_events(vec![written()]);
}

#[test]
fn only_users_who_installed_may_review() {
    let mut c = write(TEXT);
    c.has_installed = false;
    Given::with(())
        .given_no_previous_events()
        .when(ReviewCommand::Write(c))
        .then_expect_error(ReviewError::NotInstalled);
}

#[test]
fn one_review_per_user_per_capsule() {
    Given::with(())
        .given(vec![written()])
        .when(ReviewCommand::Write(write("Second thoughts")))
        .then_expect_error(ReviewError::AlreadyReviewed);
}

#[test]
fn stars_are_1_to_5_and_text_at_most_5000_characters() {
    assert_eq!(
        Stars::parse(0),
        Err(ReviewError::StarsOutOfRange { stars: 0 })
    );
    assert_eq!(
        Stars::parse(6),
        Err(ReviewError::StarsOutOfRange { stars: 6 })
    );
    assert!(serde_json::from_str::<Stars>("9").is_err());
    assert_eq!(serde_json::from_str::<Stars>("5").unwrap(), stars(5));
    let long = "é".repeat(MAX_REVIEW_CHARS + 1);
    Given::with(())
        .given_no_previous_events()
        .when(ReviewCommand::Write(write(&long)))
        .then_expect_error(ReviewError::TextTooLong {
            max_chars: MAX_REVIEW_CHARS,
        });
    let exact = "é".repeat(MAX_REVIEW_CHARS);
    let events = CapsuleReview::default()
        .decide(ReviewCommand::Write(write(&exact)))
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn a_rating_alone_has_an_empty_text() {
    let events = CapsuleReview::default()
        .decide(ReviewCommand::Write(write("")))
        .unwrap();
    assert!(matches!(&events[0], ReviewEvent::ReviewWritten { text, .. } if text.is_empty()));
}

#[test]
fn too_many_reviews_in_an_hour_is_rate_limited_and_retryable() {
    let mut c = write(TEXT);
    c.facts.author_reviews_last_hour = MAX_REVIEWS_PER_HOUR;
    let err = CapsuleReview::default()
        .decide(ReviewCommand::Write(c))
        .unwrap_err();
    assert_eq!(
        err,
        ReviewError::RateLimited {
            max_per_hour: MAX_REVIEWS_PER_HOUR
        }
    );
    assert!(err.is_retryable());
    assert!(!ReviewError::NotInstalled.is_retryable());
}

#[test]
fn a_near_duplicate_text_is_refused_naming_the_original() {
    let mut c = write(TEXT);
    c.facts.near_duplicate_of = Some("csv-summary/bob".into());
    Given::with(())
        .given_no_previous_events()
        .when(ReviewCommand::Write(c))
        .then_expect_error(ReviewError::DuplicateText {
            of: "csv-summary/bob".into(),
        });
}

#[test]
fn the_author_edits_and_the_event_carries_the_old_stars() {
    Given::with(())
        .given(vec![written()])
        .when(edit("ann", 2, "It broke on quoted newlines."))
        .then_expect_events(vec![ReviewEvent::ReviewEdited {
            previous_stars: stars(4),
            stars: stars(2),
            text: "It broke on quoted newlines.".into(),
            fingerprint: "it broke on quoted newlines".into(),
            occurred_at: at(),
        }]);
    Given::with(())
        .given(vec![written()])
        .when(edit("ann", 4, TEXT))
        .then_expect_events(vec![]);
}

#[test]
fn only_the_author_edits_and_only_an_existing_review() {
    Given::with(())
        .given(vec![written()])
        .when(edit("bob", 1, "mine now"))
        .then_expect_error(ReviewError::NotAuthor);
    Given::with(())
        .given_no_previous_events()
        .when(edit("ann", 1, "nothing to edit"))
        .then_expect_error(ReviewError::NoReview);
}

#[test]
fn a_reviewer_hides_and_restores_with_a_note() {
    Given::with(())
        .given(vec![written()])
        .when(moderate(
            Role::Reviewer,
            Moderation::Hide,
            "advertises another product",
        ))
        .then_expect_events(vec![hidden()]);
    Given::with(())
        .given(vec![written(), hidden()])
        .when(moderate(
            Role::Reviewer,
            Moderation::Restore,
            "appeal accepted",
        ))
        .then_expect_events(vec![ReviewEvent::ReviewRestored {
            moderator_id: "rita".into(),
            note: "appeal accepted".into(),
            stars: stars(4),
            occurred_at: at(),
        }]);
    Given::with(())
        .given(vec![written(), hidden()])
        .when(moderate(Role::Reviewer, Moderation::Hide, "again"))
        .then_expect_events(vec![]);
}

#[test]
fn only_reviewers_moderate_and_always_with_a_note() {
    for role in [Role::Author, Role::Client, Role::Admin] {
        Given::with(())
            .given(vec![written()])
            .when(moderate(role, Moderation::Hide, "spam"))
            .then_expect_error(ReviewError::NotAReviewer);
    }
    Given::with(())
        .given(vec![written()])
        .when(moderate(Role::Reviewer, Moderation::Hide, "  "))
        .then_expect_error(ReviewError::NoteRequired {
            max_chars: MAX_NOTES_CHARS,
        });
}

#[test]
fn others_vote_once_each() {
    let voted = ReviewEvent::ReviewVoted {
        voter: "bob".into(),
        helpful: true,
        occurred_at: at(),
    };
    Given::with(())
        .given(vec![written()])
        .when(vote("bob", true))
        .then_expect_events(vec![voted.clone()]);
    Given::with(())
        .given(vec![written(), voted])
        .when(vote("bob", false))
        .then_expect_error(ReviewError::AlreadyVoted);
}

#[test]
fn no_vote_on_ones_own_or_a_hidden_review() {
    Given::with(())
        .given(vec![written()])
        .when(vote("ann", true))
        .then_expect_error(ReviewError::OwnReview);
    Given::with(())
        .given(vec![written(), hidden()])
        .when(vote("bob", true))
        .then_expect_error(ReviewError::ReviewHidden);
}

#[test]
fn the_state_counts_votes() {
    let mut review = CapsuleReview::default();
    review.apply(written());
    for (voter, helpful) in [("bob", true), ("cy", true), ("dee", false)] {
        for e in review.decide(vote(voter, helpful)).unwrap() {
            review.apply(e);
        }
    }
    assert_eq!(review.votes(), (2, 1));
    assert_eq!(review.stars(), Some(stars(4)));
    assert_eq!(review_id(&capsule(), "ann"), "csv-summary/ann");
}

#[test]
fn fingerprints_ignore_case_punctuation_and_spacing() {
    assert_eq!(
        fingerprint("  GREAT tool!!  Saved me\n\thours... "),
        "great tool saved me hours"
    );
    assert_eq!(fingerprint("Ünïcode, ok?"), "ünïcode ok");
}

#[test]
fn near_duplicates_are_found_and_short_or_different_texts_are_not() {
    let original = fingerprint("This capsule turned our nightly CSV exports into clean reports.");
    let tweaked = fingerprint("this capsule turned our nightly csv exports into clean report!!");
    let other = fingerprint("Crashes when the file has a BOM; the author fixed it in a day.");
    assert!(near_duplicate(&original, &tweaked));
    assert!(!near_duplicate(&original, &other));
    assert!(!near_duplicate("great tool", "great tool"));
    let candidates = [
        ("csv-summary/cy", other.as_str()),
        ("csv-summary/bob", original.as_str()),
    ];
    assert_eq!(
        find_near_duplicate(
            "This capsule turned our nightly CSV exports into clean reports",
            candidates
        ),
        Some("csv-summary/bob")
    );
    assert_eq!(
        find_near_duplicate("Something else entirely, written fresh.", candidates),
        None
    );
}

fn activity(name: &str, install_ages_h: &[i64], ratings: &[(u8, i64)]) -> CapsuleActivity {
    CapsuleActivity {
        capsule: CapsuleName::parse(name).unwrap(),
        installs_at: install_ages_h
            .iter()
            .map(|h| at() - Duration::hours(*h))
            .collect(),
        ratings: ratings
            .iter()
            .map(|(s, h)| (stars(*s), at() - Duration::hours(*h)))
            .collect(),
    }
}

#[test]
fn the_trending_score_follows_the_documented_formula() {
    // Installs now (weight 1) and 84 h ago (half the window, weight 0.5); two 5-star ratings:
    // bayes = (10·3 + 10) / 12 = 3.333333…, score = 1.5 + 2 × 0.333333… = 2.166667.
    let e = score(&activity("csv-summary", &[0, 84], &[(5, 1), (5, 2)]), at()).unwrap();
    assert_eq!(e.weighted_installs, Decimal::new(15, 1));
    assert_eq!(e.bayesian_rating, Decimal::new(3_333_333, 6));
    assert_eq!(e.score, Decimal::new(2_166_667, 6));
    assert_eq!((e.installs_in_window, e.ratings_in_window), (2, 2));
    // Outside the window, or in the future: ignored.
    assert_eq!(
        score(&activity("old-one", &[168, 500, -1], &[]), at()),
        None
    );
}

#[test]
fn trending_orders_by_score_then_installs_then_name() {
    let list = trending(
        &[
            activity("zeta-tool", &[1], &[]),
            activity("alpha-tool", &[1], &[]),
            activity("busy-tool", &[10, 10, 10], &[(1, 1)]),
            activity(
                "loved-tool",
                &[2],
                &[(5, 1), (5, 1), (5, 1), (5, 1), (5, 1)],
            ),
            activity("quiet-tool", &[], &[(5, 1)]),
        ],
        at(),
    );
    let names: Vec<&str> = list.iter().map(|e| e.capsule.as_str()).collect();
    // busy: 3 × 158/168 + 2 × (31/11 − 3) = 2.458; loved: 166/168 + 2 × (55/15 − 3) = 2.321.
    assert_eq!(
        names,
        ["busy-tool", "loved-tool", "alpha-tool", "zeta-tool"]
    );
}

#[test]
fn trending_lists_at_most_the_limit() {
    let many: Vec<CapsuleActivity> = (0..MAX_TRENDING + 5)
        .map(|i| activity(&format!("tool-{i}"), &[i as i64], &[]))
        .collect();
    let list = trending(&many, at());
    assert_eq!(list.len(), MAX_TRENDING);
    assert_eq!(list[0].capsule.as_str(), "tool-0");
}

#[test]
fn events_round_trip_through_json_and_bad_stars_do_not_load() {
    for event in [written(), hidden()] {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<ReviewEvent>(&json).unwrap(), event);
    }
    let mut json = serde_json::to_value(written()).unwrap();
    json["ReviewWritten"]["stars"] = serde_json::json!(0);
    assert!(serde_json::from_value::<ReviewEvent>(json).is_err());
}
