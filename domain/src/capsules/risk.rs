//! The explainable risk score of a submitted capsule version, in 0..=1.
//!
//! Every factor has a **weight** (the most it can add) and a **value** in 0..=1; its
//! contribution is `weight × value`, and the score is the sum, clamped to 1. All factors are
//! listed, zero or not, each with a sentence saying why. Weights:
//!
//! | factor | weight | value |
//! |---|---|---|
//! | `dangerous_permissions` | 0.50 | dangerous permissions / 2, at most 1 |
//! | `elevated_permissions` | 0.15 | elevated permissions / 3, at most 1 |
//! | `dependency_count` | 0.10 | declared dependencies / 10, at most 1 |
//! | `dependency_depth` | 0.10 | depth of the resolved dependency tree / 5, at most 1 |
//! | `unpinned_dependencies` | 0.10 | share of requirements with no upper bound (`*`, `>=2`) |
//! | `unknown_dependencies` | 0.20 | share of dependencies that name no existing capsule |
//! | `name_similarity` | 0.40 | 1 if the name is one edit (Damerau–Levenshtein, 5+ chars) from an existing name or equal to one once `-` are removed; 0.5 for one edit under 5 chars or two edits at 8+ chars |
//! | `executables` | 0.10 | files with an execute bit or a native header / 5, at most 1 |
//! | `native_binaries` | 0.20 | 1 if any file is an ELF, Mach-O or PE binary |
//! | `install_scripts` | 0.20 | 1 if any file is an install hook (`install.sh`, `setup.py`, `postinstall`, ...) |
//! | `obfuscated_content` | 0.20 | 1 if any encoded blob, 0.5 if only minified files |
//! | `first_capsule` | 0.10 | 1 if the author has no published capsule yet |
//! | `earlier_rejections` | 0.20 | the author's rejected submissions / 3, at most 1 |
//! | `unsigned` | 0.10 | 1 if the submission carries no verified author signature |
//!
//! A version is auto-approved iff its score is below [`AUTO_APPROVE_BELOW`] **and** it declares
//! no dangerous permission. A typosquat, one native binary plus an install script, or a single
//! dangerous permission therefore always goes to a reviewer.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use semver::{Op, VersionReq};
use serde::{Deserialize, Serialize};

use super::bundle::BundleFlags;
use super::manifest::Manifest;
use super::permissions::{Permission, PermissionTier};

/// Scores below this (with no dangerous permission) are auto-approved: 0.3, the seed's rule.
pub const AUTO_APPROVE_BELOW: Decimal = Decimal::from_parts(3, 0, 0, false, 1);

/// What the author did before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorHistory {
    pub published_capsules: u32,
    pub rejected_submissions: u32,
}

/// Facts the score needs, looked up before scoring.
#[derive(Clone, Copy, Debug)]
pub struct RiskInput<'a> {
    pub manifest: &'a Manifest,
    /// Depth of the resolved dependency tree (0: no dependencies).
    pub dependency_depth: u32,
    /// Names of the capsules already in the catalogue (for unknown dependencies and typosquats).
    pub existing_names: &'a BTreeSet<String>,
    pub bundle: &'a BundleFlags,
    pub author: AuthorHistory,
    /// Whether a verified author signature came with the submission.
    pub signed: bool,
}

/// One factor of the score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskFactor {
    pub name: String,
    pub weight: Decimal,
    pub value: Decimal,
    pub contribution: Decimal,
    pub explanation: String,
}

/// The score, its factors and the auto-approval decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskReport {
    pub score: Decimal,
    pub factors: Vec<RiskFactor>,
    pub dangerous_permissions: BTreeSet<Permission>,
    pub auto_approve: bool,
}

fn dec(hundredths: i64) -> Decimal {
    Decimal::new(hundredths, 2)
}

/// `n / d` clamped to 1, four decimals; 0 when `d` is 0.
fn ratio(n: usize, d: usize) -> Decimal {
    if d == 0 {
        return Decimal::ZERO;
    }
    (Decimal::from(n) / Decimal::from(d))
        .min(Decimal::ONE)
        .round_dp(4)
}

fn flag(on: bool) -> Decimal {
    if on {
        Decimal::ONE
    } else {
        Decimal::ZERO
    }
}

fn factor(name: &str, weight: Decimal, value: Decimal, explanation: String) -> RiskFactor {
    RiskFactor {
        name: name.to_owned(),
        weight,
        value,
        contribution: (weight * value).round_dp(4),
        explanation,
    }
}

/// Whether a requirement caps the versions it accepts from above.
pub fn is_pinned(requirement: &VersionReq) -> bool {
    !requirement.comparators.is_empty()
        && requirement.comparators.iter().any(|c| {
            matches!(
                c.op,
                Op::Exact | Op::Less | Op::LessEq | Op::Tilde | Op::Caret | Op::Wildcard
            )
        })
}

/// The closest existing name and how similar it is (the `name_similarity` value).
pub fn name_similarity(name: &str, existing: &BTreeSet<String>) -> (Decimal, Option<String>) {
    let squash = |s: &str| s.replace('-', "");
    let mine = squash(name);
    let mut best = (Decimal::ZERO, None);
    for other in existing.iter().filter(|o| o.as_str() != name) {
        if other.len().abs_diff(name.len()) > 2 {
            continue;
        }
        let edits = strsim::damerau_levenshtein(name, other);
        let shortest = name.len().min(other.len());
        let value = if squash(other) == mine || (edits == 1 && shortest >= 5) {
            Decimal::ONE
        } else if edits == 1 || (edits == 2 && shortest >= 8) {
            dec(50)
        } else {
            Decimal::ZERO
        };
        if value > best.0 {
            best = (value, Some(other.clone()));
        }
    }
    best
}

/// Scores a submission.
pub fn score(input: &RiskInput<'_>) -> RiskReport {
    let m = input.manifest;
    let tier_count = |t| m.permissions.iter().filter(|p| p.tier() == t).count();
    let dangerous = m.dangerous_permissions();
    let deps = &m.dependencies;
    let unpinned = deps.iter().filter(|d| !is_pinned(&d.requirement)).count();
    let unknown = deps
        .iter()
        .filter(|d| !input.existing_names.contains(&d.name))
        .count();
    let (similar, closest) = name_similarity(m.name.as_str(), input.existing_names);
    let b = input.bundle;
    let obfuscation = if b.encoded_blobs > 0 {
        Decimal::ONE
    } else if b.minified > 0 {
        dec(50)
    } else {
        Decimal::ZERO
    };
    let list = |set: &BTreeSet<Permission>| {
        set.iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let factors = vec![
        factor(
            "dangerous_permissions",
            dec(50),
            ratio(dangerous.len(), 2),
            format!(
                "{} dangerous permission(s): {}",
                dangerous.len(),
                list(&dangerous)
            ),
        ),
        factor(
            "elevated_permissions",
            dec(15),
            ratio(tier_count(PermissionTier::Elevated), 3),
            format!(
                "{} elevated permission(s)",
                tier_count(PermissionTier::Elevated)
            ),
        ),
        factor(
            "dependency_count",
            dec(10),
            ratio(deps.len(), 10),
            format!("{} declared dependencies", deps.len()),
        ),
        factor(
            "dependency_depth",
            dec(10),
            ratio(input.dependency_depth as usize, 5),
            format!("dependency tree {} level(s) deep", input.dependency_depth),
        ),
        factor(
            "unpinned_dependencies",
            dec(10),
            ratio(unpinned, deps.len()),
            format!(
                "{unpinned} of {} requirement(s) have no upper bound",
                deps.len()
            ),
        ),
        factor(
            "unknown_dependencies",
            dec(20),
            ratio(unknown, deps.len()),
            format!(
                "{unknown} of {} dependencies name no capsule in the catalogue",
                deps.len()
            ),
        ),
        factor(
            "name_similarity",
            dec(40),
            similar,
            match closest {
                Some(other) => format!("name is close to the existing capsule {other}"),
                None => "name is not close to any existing capsule".to_owned(),
            },
        ),
        factor(
            "executables",
            dec(10),
            ratio(b.executables, 5),
            format!("{} executable file(s)", b.executables),
        ),
        factor(
            "native_binaries",
            dec(20),
            flag(b.native_binaries > 0),
            format!("{} native binary file(s)", b.native_binaries),
        ),
        factor(
            "install_scripts",
            dec(20),
            flag(b.install_scripts > 0),
            format!("{} install script(s)", b.install_scripts),
        ),
        factor(
            "obfuscated_content",
            dec(20),
            obfuscation,
            format!(
                "{} encoded blob(s), {} minified file(s)",
                b.encoded_blobs, b.minified
            ),
        ),
        factor(
            "first_capsule",
            dec(10),
            flag(input.author.published_capsules == 0),
            format!(
                "author has {} published capsule(s)",
                input.author.published_capsules
            ),
        ),
        factor(
            "earlier_rejections",
            dec(20),
            ratio(input.author.rejected_submissions as usize, 3),
            format!(
                "author had {} rejected submission(s)",
                input.author.rejected_submissions
            ),
        ),
        factor(
            "unsigned",
            dec(10),
            flag(!input.signed),
            if input.signed {
                "signed by the author's registered key"
            } else {
                "no author signature"
            }
            .to_owned(),
        ),
    ];
    let score = factors
        .iter()
        .map(|f| f.contribution)
        .sum::<Decimal>()
        .min(Decimal::ONE);
    RiskReport {
        auto_approve: score < AUTO_APPROVE_BELOW && dangerous.is_empty(),
        score,
        factors,
        dangerous_permissions: dangerous,
    }
}

#[cfg(test)]
#[path = "risk_tests.rs"]
mod tests;
