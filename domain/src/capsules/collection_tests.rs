//! Given/when/then tests of the collection aggregate, one or more per rule.

use chrono::TimeZone;
use cqrs_es::test::TestFramework;

use super::*;

type Given = TestFramework<Collection>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
}

fn actor(id: &str, role: Role) -> Actor {
    Actor {
        id: id.into(),
        role,
    }
}

fn admin() -> Actor {
    actor("ada", Role::Admin)
}

fn ann() -> Actor {
    actor("ann", Role::Client)
}

fn title(s: &str) -> Title {
    Title::parse(s).unwrap()
}

fn name(s: &str) -> CapsuleName {
    CapsuleName::parse(s).unwrap()
}

fn create(kind: CollectionKind, by: Actor) -> CollectionCommand {
    CollectionCommand::Create(CreateCollection {
        kind,
        title: title("Data wrangling"),
        description: "Capsules for CSV and SQL chores".into(),
        by,
        occurred_at: at(),
    })
}

fn created(kind: CollectionKind, owner: &str) -> CollectionEvent {
    CollectionEvent::CollectionCreated {
        kind,
        title: title("Data wrangling"),
        description: "Capsules for CSV and SQL chores".into(),
        owner: owner.into(),
        occurred_at: at(),
    }
}

fn add(capsule: &str, by: Actor) -> CollectionCommand {
    CollectionCommand::AddCapsule {
        capsule: name(capsule),
        by,
        occurred_at: at(),
    }
}

fn added(capsule: &str, by: &str) -> CollectionEvent {
    CollectionEvent::CapsuleAdded {
        capsule: name(capsule),
        by: by.into(),
        occurred_at: at(),
    }
}

fn feature(featured: bool, by: Actor) -> CollectionCommand {
    CollectionCommand::Feature {
        featured,
        by,
        occurred_at: at(),
    }
}

#[test]
fn anyone_creates_a_user_collection_only_admins_a_curated_one() {
    Given::with(())
        .given_no_previous_events()
        .when(create(CollectionKind::UserCreated, ann()))
        .then_expect_events(vec![created(CollectionKind::UserCreated, "ann")]);
    Given::with(())
        .given_no_previous_events()
        .when(create(CollectionKind::Curated, admin()))
        .then_expect_events(vec![created(CollectionKind::Curated, "ada")]);
    Given::with(())
        .given_no_previous_events()
        .when(create(CollectionKind::Curated, ann()))
        .then_expect_error(CollectionError::AdminOnly);
    Given::with(())
        .given(vec![created(CollectionKind::UserCreated, "ann")])
        .when(create(CollectionKind::UserCreated, ann()))
        .then_expect_error(CollectionError::AlreadyCreated);
}

#[test]
fn titles_and_descriptions_have_limits() {
    assert_eq!(
        Title::parse("   "),
        Err(CollectionError::InvalidTitle {
            max_chars: MAX_TITLE_CHARS
        })
    );
    assert!(Title::parse(&"t".repeat(MAX_TITLE_CHARS + 1)).is_err());
    assert_eq!(title("  Top picks ").as_str(), "Top picks");
    assert!(serde_json::from_str::<Title>("\"\"").is_err());
    let mut c = CreateCollection {
        kind: CollectionKind::UserCreated,
        title: title("x"),
        description: "d".repeat(MAX_DESCRIPTION_CHARS + 1),
        by: ann(),
        occurred_at: at(),
    };
    Given::with(())
        .given_no_previous_events()
        .when(CollectionCommand::Create(c.clone()))
        .then_expect_error(CollectionError::DescriptionTooLong {
            max_chars: MAX_DESCRIPTION_CHARS,
        });
    c.description.pop();
    assert!(Collection::default()
        .decide(CollectionCommand::Create(c))
        .is_ok());
}

#[test]
fn the_owner_adds_and_removes_capsules_once_each() {
    Given::with(())
        .given(vec![created(CollectionKind::UserCreated, "ann")])
        .when(add("csv-summary", ann()))
        .then_expect_events(vec![added("csv-summary", "ann")]);
    Given::with(())
        .given(vec![
            created(CollectionKind::UserCreated, "ann"),
            added("csv-summary", "ann"),
        ])
        .when(add("csv-summary", ann()))
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![
            created(CollectionKind::UserCreated, "ann"),
            added("csv-summary", "ann"),
        ])
        .when(CollectionCommand::RemoveCapsule {
            capsule: name("csv-summary"),
            by: ann(),
            occurred_at: at(),
        })
        .then_expect_events(vec![CollectionEvent::CapsuleRemoved {
            capsule: name("csv-summary"),
            by: "ann".into(),
            occurred_at: at(),
        }]);
    Given::with(())
        .given(vec![created(CollectionKind::UserCreated, "ann")])
        .when(CollectionCommand::RemoveCapsule {
            capsule: name("csv-summary"),
            by: ann(),
            occurred_at: at(),
        })
        .then_expect_error(CollectionError::CapsuleNotInCollection {
            capsule: name("csv-summary"),
        });
}

#[test]
fn others_do_not_edit_a_user_collection_admins_edit_curated_ones() {
    Given::with(())
        .given(vec![created(CollectionKind::UserCreated, "ann")])
        .when(add("csv-summary", actor("bob", Role::Client)))
        .then_expect_error(CollectionError::NotOwner {
            owner: "ann".into(),
        });
    Given::with(())
        .given(vec![created(CollectionKind::UserCreated, "ann")])
        .when(add("csv-summary", actor("root", Role::Admin)))
        .then_expect_error(CollectionError::NotOwner {
            owner: "ann".into(),
        });
    Given::with(())
        .given(vec![created(CollectionKind::Curated, "ada")])
        .when(add("csv-summary", actor("abe", Role::Admin)))
        .then_expect_events(vec![added("csv-summary", "abe")]);
    Given::with(())
        .given_no_previous_events()
        .when(add("csv-summary", ann()))
        .then_expect_error(CollectionError::NotCreated);
}

#[test]
fn a_collection_holds_at_most_200_capsules() {
    let mut history = vec![created(CollectionKind::UserCreated, "ann")];
    history.extend((0..MAX_CAPSULES).map(|i| added(&format!("capsule-{i}"), "ann")));
    Given::with(())
        .given(history)
        .when(add("one-more", ann()))
        .then_expect_error(CollectionError::CollectionFull {
            max_capsules: MAX_CAPSULES,
        });
}

#[test]
fn renaming_records_both_titles() {
    Given::with(())
        .given(vec![created(CollectionKind::UserCreated, "ann")])
        .when(CollectionCommand::Rename {
            title: title("CSV chores"),
            by: ann(),
            occurred_at: at(),
        })
        .then_expect_events(vec![CollectionEvent::CollectionRenamed {
            from: title("Data wrangling"),
            to: title("CSV chores"),
            by: "ann".into(),
            occurred_at: at(),
        }]);
}

#[test]
fn only_admins_feature_and_only_non_empty_collections() {
    let filled = vec![
        created(CollectionKind::UserCreated, "ann"),
        added("csv-summary", "ann"),
    ];
    Given::with(())
        .given(filled.clone())
        .when(feature(true, ann()))
        .then_expect_error(CollectionError::AdminOnly);
    let featured = CollectionEvent::CollectionFeatured {
        by: "ada".into(),
        occurred_at: at(),
    };
    Given::with(())
        .given(filled.clone())
        .when(feature(true, admin()))
        .then_expect_events(vec![featured.clone()]);
    Given::with(())
        .given(vec![created(CollectionKind::Curated, "ada")])
        .when(feature(true, admin()))
        .then_expect_error(CollectionError::EmptyCollection);
    let mut with_featured = filled;
    with_featured.push(featured);
    Given::with(())
        .given(with_featured.clone())
        .when(feature(true, admin()))
        .then_expect_events(vec![]);
    Given::with(())
        .given(with_featured)
        .when(feature(false, admin()))
        .then_expect_events(vec![CollectionEvent::CollectionUnfeatured {
            by: "ada".into(),
            occurred_at: at(),
        }]);
}

#[test]
fn events_round_trip_through_json() {
    for event in [
        created(CollectionKind::Curated, "ada"),
        added("csv-summary", "ann"),
    ] {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<CollectionEvent>(&json).unwrap(),
            event
        );
    }
}
