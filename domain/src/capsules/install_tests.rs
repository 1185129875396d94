//! Given/when/then tests of the installation aggregate, one or more per rule.

use chrono::TimeZone;
use cqrs_es::test::TestFramework;

use super::*;
use crate::capsules::aggregate::{VersionState, VersionStatus};
use crate::capsules::fixtures::SEED_MANIFEST;
use crate::capsules::manifest;

type Given = TestFramework<Installation>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
}

fn v(s: &str) -> Version {
    Version::parse(s).unwrap()
}

fn perms(list: &[Permission]) -> BTreeSet<Permission> {
    list.iter().copied().collect()
}

fn name() -> CapsuleName {
    CapsuleName::parse("csv-summary").unwrap()
}

fn acme() -> Subject {
    Subject::Tenant("acme".into())
}

fn facts(version: &str, declared: &[Permission]) -> VersionFacts {
    VersionFacts {
        version: v(version),
        declared_permissions: perms(declared),
        token_estimate_tokens: 800,
        yanked: false,
        deprecated: None,
    }
}

const QUIET: &[Permission] = &[Permission::FilesystemRead];
const LOUD: &[Permission] = &[Permission::FilesystemRead, Permission::NetworkEgress];

fn install_of(release: VersionFacts, approved: &[Permission]) -> Install {
    Install {
        subject: acme(),
        capsule: name(),
        shown_permissions: release.declared_permissions.clone(),
        release,
        approved_permissions: perms(approved),
        token_budget_tokens: 10_000,
        dependencies: vec![Pin {
            name: "csv-kit".into(),
            version: v("1.4.2"),
        }],
        by: "ann".into(),
        occurred_at: at(),
    }
}

fn install(version: &str) -> InstallationCommand {
    InstallationCommand::Install(Box::new(install_of(facts(version, QUIET), &[])))
}

fn installed_event(c: &Install) -> InstallationEvent {
    InstallationEvent::Installed {
        subject: c.subject.clone(),
        capsule: c.capsule.clone(),
        version: c.release.version.clone(),
        permissions: c.release.declared_permissions.clone(),
        approved_dangerous: dangerous(&c.release.declared_permissions),
        token_budget_tokens: c.token_budget_tokens,
        dependencies: c.dependencies.clone(),
        deprecation_warning: c.release.deprecated.clone(),
        by: c.by.clone(),
        occurred_at: at(),
    }
}

fn installed(version: &str) -> InstallationEvent {
    installed_event(&install_of(facts(version, QUIET), &[]))
}

fn upgrade_to(release: VersionFacts, approved: &[Permission]) -> InstallationCommand {
    InstallationCommand::Upgrade(Box::new(Upgrade {
        shown_permissions: release.declared_permissions.clone(),
        release,
        approved_permissions: perms(approved),
        dependencies: vec![],
        by: "ann".into(),
        occurred_at: at(),
    }))
}

fn upgraded(
    from: &str,
    to: &str,
    permissions: &[Permission],
    newly: &[Permission],
) -> InstallationEvent {
    InstallationEvent::Upgraded {
        from: v(from),
        to: v(to),
        permissions: perms(permissions),
        newly_approved: perms(newly),
        dependencies: vec![],
        deprecation_warning: None,
        by: "ann".into(),
        occurred_at: at(),
    }
}

fn notify(version: &str, breaking: bool) -> InstallationCommand {
    InstallationCommand::NotifyNewVersion(NotifyNewVersion {
        new_version: v(version),
        breaking,
        occurred_at: at(),
    })
}

#[test]
fn installing_records_the_permissions_budget_and_dependencies() {
    let c = install_of(facts("1.0.0", LOUD), &[Permission::NetworkEgress]);
    Given::with(())
        .given_no_previous_events()
        .when(InstallationCommand::Install(Box::new(c.clone())))
        .then_expect_events(vec![installed_event(&c)]);
}

#[test]
fn the_permissions_shown_must_be_the_declared_ones() {
    let mut c = install_of(facts("1.0.0", LOUD), &[Permission::NetworkEgress]);
    c.shown_permissions = perms(&[Permission::FilesystemRead, Permission::DatabaseRead]);
    Given::with(())
        .given_no_previous_events()
        .when(InstallationCommand::Install(Box::new(c)))
        .then_expect_error(InstallError::PermissionsShownMismatch {
            not_shown: perms(&[Permission::NetworkEgress]),
            not_declared: perms(&[Permission::DatabaseRead]),
        });
}

#[test]
fn every_dangerous_permission_must_be_approved_to_install() {
    let c = install_of(facts("1.0.0", LOUD), &[]);
    Given::with(())
        .given_no_previous_events()
        .when(InstallationCommand::Install(Box::new(c)))
        .then_expect_error(InstallError::PermissionsNotApproved {
            permissions: perms(&[Permission::NetworkEgress]),
        });
}

#[test]
fn approving_an_undeclared_permission_is_refused() {
    let c = install_of(facts("1.0.0", QUIET), &[Permission::SecretsRead]);
    Given::with(())
        .given_no_previous_events()
        .when(InstallationCommand::Install(Box::new(c)))
        .then_expect_error(InstallError::ApprovedPermissionsNotDeclared {
            permissions: perms(&[Permission::SecretsRead]),
        });
}

#[test]
fn a_yanked_version_is_not_installed() {
    let mut release = facts("1.0.0", QUIET);
    release.yanked = true;
    Given::with(())
        .given_no_previous_events()
        .when(InstallationCommand::Install(Box::new(install_of(
            release,
            &[],
        ))))
        .then_expect_error(InstallError::VersionYanked {
            version: v("1.0.0"),
        });
}

#[test]
fn a_deprecated_version_is_installed_with_the_warning_recorded() {
    let mut release = facts("1.0.0", QUIET);
    release.deprecated = Some("use 2.x".into());
    let c = install_of(release, &[]);
    let event = installed_event(&c);
    assert!(
        matches!(&event, InstallationEvent::Installed { deprecation_warning: Some(w), .. } if w == "use 2.x")
    );
    Given::with(())
        .given_no_previous_events()
        .when(InstallationCommand::Install(Box::new(c)))
        .then_expect_events(vec![event]);
}

#[test]
fn the_token_budget_covers_one_run_and_stays_under_the_limit() {
    let mut low = install_of(facts("1.0.0", QUIET), &[]);
    low.token_budget_tokens = 799;
    Given::with(())
        .given_no_previous_events()
        .when(InstallationCommand::Install(Box::new(low)))
        .then_expect_error(InstallError::TokenBudgetBelowEstimate {
            budget_tokens: 799,
            estimate_tokens: 800,
        });
    let mut high = install_of(facts("1.0.0", QUIET), &[]);
    high.token_budget_tokens = MAX_TOKEN_BUDGET_TOKENS + 1;
    Given::with(())
        .given_no_previous_events()
        .when(InstallationCommand::Install(Box::new(high)))
        .then_expect_error(InstallError::TokenBudgetTooLarge {
            max_tokens: MAX_TOKEN_BUDGET_TOKENS,
        });
}

#[test]
fn installing_the_installed_version_again_is_a_no_op_another_is_refused() {
    Given::with(())
        .given(vec![installed("1.0.0")])
        .when(install("1.0.0"))
        .then_expect_events(vec![]);
    Given::with(())
        .given(vec![installed("1.0.0")])
        .when(install("1.1.0"))
        .then_expect_error(InstallError::AlreadyInstalled {
            version: v("1.0.0"),
        });
}

#[test]
fn an_installation_is_of_one_capsule_for_one_subject() {
    let mut other = install_of(facts("1.0.0", QUIET), &[]);
    other.subject = Subject::User("bob".into());
    Given::with(())
        .given(vec![
            installed("1.0.0"),
            InstallationEvent::Uninstalled {
                version: v("1.0.0"),
                by: "ann".into(),
                occurred_at: at(),
            },
        ])
        .when(InstallationCommand::Install(Box::new(other)))
        .then_expect_error(InstallError::WrongInstallation {
            installed: name(),
            subject: acme(),
        });
}

#[test]
fn an_upgrade_without_new_dangerous_permissions_needs_no_approval() {
    Given::with(())
        .given(vec![installed("1.0.0")])
        .when(upgrade_to(facts("1.1.0", QUIET), &[]))
        .then_expect_events(vec![upgraded("1.0.0", "1.1.0", QUIET, &[])]);
}

#[test]
fn an_upgrade_adding_a_dangerous_permission_needs_reapproval() {
    Given::with(())
        .given(vec![installed("1.0.0")])
        .when(upgrade_to(facts("2.0.0", LOUD), &[]))
        .then_expect_error(InstallError::ReapprovalRequired {
            permissions: perms(&[Permission::NetworkEgress]),
        });
}

#[test]
fn an_upgrade_carrying_the_approval_goes_through_and_records_it() {
    Given::with(())
        .given(vec![installed("1.0.0")])
        .when(upgrade_to(
            facts("2.0.0", LOUD),
            &[Permission::NetworkEgress],
        ))
        .then_expect_events(vec![upgraded(
            "1.0.0",
            "2.0.0",
            LOUD,
            &[Permission::NetworkEgress],
        )]);
}

#[test]
fn a_dangerous_permission_already_held_needs_no_second_approval() {
    Given::with(())
        .given(vec![
            installed("1.0.0"),
            upgraded("1.0.0", "2.0.0", LOUD, &[Permission::NetworkEgress]),
        ])
        .when(upgrade_to(facts("2.1.0", LOUD), &[]))
        .then_expect_events(vec![upgraded("2.0.0", "2.1.0", LOUD, &[])]);
}

#[test]
fn a_permission_dropped_then_added_back_is_approved_again() {
    Given::with(())
        .given(vec![
            installed("1.0.0"),
            upgraded("1.0.0", "2.0.0", LOUD, &[Permission::NetworkEgress]),
            upgraded("2.0.0", "2.1.0", QUIET, &[]),
        ])
        .when(upgrade_to(facts("2.2.0", LOUD), &[]))
        .then_expect_error(InstallError::ReapprovalRequired {
            permissions: perms(&[Permission::NetworkEgress]),
        });
}

#[test]
fn upgrades_only_go_up_and_not_to_yanked_versions() {
    Given::with(())
        .given(vec![installed("1.2.0")])
        .when(upgrade_to(facts("1.1.0", QUIET), &[]))
        .then_expect_error(InstallError::NotAnUpgrade {
            installed: v("1.2.0"),
            requested: v("1.1.0"),
        });
    Given::with(())
        .given(vec![installed("1.2.0")])
        .when(upgrade_to(facts("1.2.0", QUIET), &[]))
        .then_expect_events(vec![]);
    let mut yanked = facts("1.3.0", QUIET);
    yanked.yanked = true;
    Given::with(())
        .given(vec![installed("1.2.0")])
        .when(upgrade_to(yanked, &[]))
        .then_expect_error(InstallError::VersionYanked {
            version: v("1.3.0"),
        });
    Given::with(())
        .given_no_previous_events()
        .when(upgrade_to(facts("1.3.0", QUIET), &[]))
        .then_expect_error(InstallError::NotInstalled);
}

#[test]
fn uninstalling_needs_an_installation_and_allows_a_fresh_install() {
    let uninstalled = InstallationEvent::Uninstalled {
        version: v("1.0.0"),
        by: "ann".into(),
        occurred_at: at(),
    };
    Given::with(())
        .given(vec![installed("1.0.0")])
        .when(InstallationCommand::Uninstall(Uninstall {
            by: "ann".into(),
            occurred_at: at(),
        }))
        .then_expect_events(vec![uninstalled.clone()]);
    Given::with(())
        .given(vec![installed("1.0.0"), uninstalled.clone()])
        .when(InstallationCommand::Uninstall(Uninstall {
            by: "ann".into(),
            occurred_at: at(),
        }))
        .then_expect_error(InstallError::NotInstalled);
    Given::with(())
        .given(vec![installed("1.0.0"), uninstalled])
        .when(install("1.1.0"))
        .then_expect_events(vec![installed("1.1.0")]);
}

#[test]
fn a_breaking_version_above_the_installed_one_notifies_once() {
    let notice = InstallationEvent::BreakingVersionNotified {
        installed_version: v("1.4.0"),
        installed_major: 1,
        new_version: v("2.0.0"),
        occurred_at: at(),
    };
    Given::with(())
        .given(vec![installed("1.4.0")])
        .when(notify("2.0.0", true))
        .then_expect_events(vec![notice.clone()]);
    Given::with(())
        .given(vec![installed("1.4.0"), notice])
        .when(notify("2.0.0", true))
        .then_expect_events(vec![]);
}

#[test]
fn no_notice_when_not_breaking_not_newer_or_not_installed() {
    for (installed_version, new, breaking) in [
        ("1.4.0", "1.5.0", false),
        ("2.1.0", "2.0.0", true),
        ("2.0.0", "2.0.0", true),
    ] {
        Given::with(())
            .given(vec![installed(installed_version)])
            .when(notify(new, breaking))
            .then_expect_events(vec![]);
    }
    Given::with(())
        .given_no_previous_events()
        .when(notify("2.0.0", true))
        .then_expect_events(vec![]);
}

#[test]
fn version_facts_are_read_from_the_capsule_aggregate() {
    let parsed = manifest::parse(SEED_MANIFEST.as_bytes()).unwrap().manifest;
    let state = VersionState {
        status: VersionStatus::Published,
        manifest: parsed.clone(),
        manifest_sha256: "a".repeat(64),
        bundle_sha256: "b".repeat(64),
        risk_score: rust_decimal::Decimal::ZERO,
        submitted_by: "alice".into(),
        deprecated: Some("use 2.x".into()),
        yanked: false,
        breaking: false,
    };
    let f = VersionFacts::of(&parsed.version, &state);
    assert_eq!(f.declared_permissions, parsed.permissions);
    assert_eq!(f.token_estimate_tokens, 2500);
    assert_eq!(f.deprecated.as_deref(), Some("use 2.x"));
    assert_eq!(installation_id(&acme(), &name()), "tenant:acme/csv-summary");
}

#[test]
fn events_round_trip_through_json() {
    let c = install_of(facts("1.0.0", LOUD), &[Permission::NetworkEgress]);
    for event in [
        installed_event(&c),
        upgraded("1.0.0", "2.0.0", LOUD, &[Permission::NetworkEgress]),
        InstallationEvent::BreakingVersionNotified {
            installed_version: v("1.4.0"),
            installed_major: 1,
            new_version: v("2.0.0"),
            occurred_at: at(),
        },
    ] {
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<InstallationEvent>(&json).unwrap(),
            event
        );
    }
    let json = serde_json::to_value(installed_event(&c)).unwrap();
    assert_eq!(
        json["Installed"]["subject"],
        serde_json::json!({"kind": "tenant", "id": "acme"})
    );
    assert_eq!(
        json["Installed"]["permissions"],
        serde_json::json!(["filesystem.read", "network.egress"])
    );
}
