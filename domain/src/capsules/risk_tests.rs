use super::*;
use crate::capsules::fixtures::{quiet_manifest, SEED_MANIFEST};
use crate::capsules::manifest::{self, Manifest};

fn manifest(text: &str) -> Manifest {
    manifest::parse(text.as_bytes()).unwrap().manifest
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn established() -> AuthorHistory {
    AuthorHistory {
        published_capsules: 3,
        rejected_submissions: 0,
    }
}

fn contribution(report: &RiskReport, name: &str) -> Decimal {
    report
        .factors
        .iter()
        .find(|f| f.name == name)
        .unwrap()
        .contribution
}

#[test]
fn a_quiet_signed_capsule_by_a_known_author_scores_zero_and_is_auto_approved() {
    let m = manifest(&quiet_manifest("csv-summary", "1.0.0"));
    let existing = names(&["csv-kit"]);
    let report = score(&RiskInput {
        manifest: &m,
        dependency_depth: 1,
        existing_names: &existing,
        bundle: &BundleFlags::default(),
        author: established(),
        signed: true,
    });
    assert_eq!(report.score, dec(3));
    assert_eq!(contribution(&report, "dependency_depth"), dec(2));
    assert!(report.auto_approve);
    assert_eq!(report.factors.len(), 14);
    for f in &report.factors {
        assert_eq!(f.contribution, (f.weight * f.value).round_dp(4));
        assert!(f.value >= Decimal::ZERO && f.value <= Decimal::ONE);
    }
}

#[test]
fn the_seed_manifest_needs_review_for_its_dangerous_permissions() {
    let m = manifest(SEED_MANIFEST);
    let report = score(&RiskInput {
        manifest: &m,
        dependency_depth: 1,
        existing_names: &names(&[]),
        bundle: &BundleFlags::default(),
        author: AuthorHistory::default(),
        signed: false,
    });
    assert_eq!(contribution(&report, "dangerous_permissions"), dec(50));
    assert_eq!(contribution(&report, "unpinned_dependencies"), dec(10));
    assert_eq!(contribution(&report, "unknown_dependencies"), dec(20));
    assert_eq!(contribution(&report, "first_capsule"), dec(10));
    assert_eq!(contribution(&report, "unsigned"), dec(10));
    assert_eq!(report.score, Decimal::ONE, "clamped");
    assert!(!report.auto_approve);
    assert_eq!(report.dangerous_permissions.len(), 2);
}

#[test]
fn a_low_score_with_a_dangerous_permission_is_not_auto_approved() {
    let text =
        quiet_manifest("csv-summary", "1.0.0").replace("[filesystem.read]", "[process.exec]");
    let m = manifest(&text);
    let existing = names(&["csv-kit"]);
    let report = score(&RiskInput {
        manifest: &m,
        dependency_depth: 0,
        existing_names: &existing,
        bundle: &BundleFlags::default(),
        author: established(),
        signed: true,
    });
    assert_eq!(report.score, dec(26));
    assert!(report.score < AUTO_APPROVE_BELOW);
    assert!(!report.auto_approve);
}

#[test]
fn typosquats_are_caught() {
    let existing = names(&["data-pipeline-builder", "csv-kit"]);
    assert_eq!(
        name_similarity("data-pipeline-bulider", &existing),
        (Decimal::ONE, Some("data-pipeline-builder".into()))
    );
    assert_eq!(
        name_similarity("datapipeline-builder", &existing).0,
        Decimal::ONE
    );
    assert_eq!(name_similarity("csv-kiy", &existing).0, Decimal::ONE);
    assert_eq!(
        name_similarity("data-pipeline-builder", &existing).0,
        Decimal::ZERO
    );
    assert_eq!(
        name_similarity("weather-report", &existing).0,
        Decimal::ZERO
    );
}

#[test]
fn bundle_content_and_author_history_count() {
    let m = manifest(&quiet_manifest("csv-summary", "1.0.0"));
    let flags = BundleFlags {
        executables: 5,
        native_binaries: 1,
        install_scripts: 1,
        minified: 1,
        encoded_blobs: 0,
    };
    let report = score(&RiskInput {
        manifest: &m,
        dependency_depth: 0,
        existing_names: &names(&["csv-kit"]),
        bundle: &flags,
        author: AuthorHistory {
            published_capsules: 0,
            rejected_submissions: 6,
        },
        signed: true,
    });
    assert_eq!(contribution(&report, "executables"), dec(10));
    assert_eq!(contribution(&report, "native_binaries"), dec(20));
    assert_eq!(contribution(&report, "install_scripts"), dec(20));
    assert_eq!(contribution(&report, "obfuscated_content"), dec(10));
    assert_eq!(contribution(&report, "earlier_rejections"), dec(20));
    assert_eq!(report.score, dec(91));
}

#[test]
fn pinning() {
    let pinned = |s: &str| is_pinned(&VersionReq::parse(s).unwrap());
    assert!(pinned("^1.2"));
    assert!(pinned(">=1.0, <2"));
    assert!(pinned("=1.0.0"));
    assert!(pinned("~1.4"));
    assert!(!pinned(">=2.0.0"));
    assert!(!pinned("*"));
}
