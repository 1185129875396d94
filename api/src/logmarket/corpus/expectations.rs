//! Regression test: what the four analysers must find in every corpus log.
//!
//! Each log lists the insight kinds that must be present (with a minimum count where the log
//! holds several distinct findings of that kind) and the kinds that must not appear (false
//! positives seen before). The clean runs must produce nothing of medium severity or worse.
//! Most corpus lines carry a CI timestamp prefix (GitHub Actions, Jenkins, GitLab, `ts`,
//! syslog), so this also guards the prefix stripping of `LogText::bodies`.

use std::collections::BTreeMap;

use agora_domain::logmarket::analysers::{analyse_all, AnalyserConfig, LogText};
use agora_domain::logmarket::insight::{Insight, InsightKind, Severity};

use super::{find, CORPUS};

use InsightKind::*;

/// `(log, kinds that must be present with their minimum count, kinds that must be absent)`.
type Expectation = (
    &'static str,
    &'static [(InsightKind, usize)],
    &'static [InsightKind],
);

const EXPECTATIONS: &[Expectation] = &[
    (
        "build-rust-compile-error",
        &[(CompileError, 2), (Warning, 1)],
        &[],
    ),
    (
        "test-pytest-coverage",
        // 3 FAILED + 1 setup ERROR
        &[(TestFailure, 4), (LowCoverage, 1)],
        &[],
    ),
    (
        "deploy-kubernetes-oomkilled",
        &[(OutOfMemory, 1), (HighMemory, 1)],
        // the CrashLoopBackOff is explained by the OOM kill: no separate crash
        &[Crash],
    ),
    ("runtime-node-typeerror", &[(RuntimeException, 1)], &[]),
    (
        "runtime-nginx-attacks",
        &[
            (SqlInjection, 1),
            (Xss, 1),
            (BruteForce, 1),
            (AuthFailure, 1),
            (UnauthorizedAccess, 1),
            (SuspiciousIp, 1),
        ],
        &[],
    ),
    (
        "build-typescript-npm",
        &[
            (CompileError, 5),
            (DependencyConflict, 1),
            (DeprecatedDependency, 1),
        ],
        &[],
    ),
    (
        "test-jest-coverage",
        &[(TestFailure, 3), (LowCoverage, 1)],
        // `toThrow(ForbiddenException)` in a Jest code frame is test source, not a denial.
        &[UnauthorizedAccess],
    ),
    (
        "deploy-secrets-missing-env",
        &[(ExposedSecret, 2), (ConfigError, 1)],
        &[],
    ),
    (
        "runtime-postgres-slow-queries",
        // deadlock + connection-slot exhaustion (two FATAL lines, one finding)
        &[(SlowQuery, 2), (AuthFailure, 1), (RuntimeException, 2)],
        &[],
    ),
    (
        "runtime-sshd-bruteforce",
        &[(BruteForce, 1), (AuthFailure, 1), (SuspiciousIp, 1)],
        &[],
    ),
    (
        "build-docker-image",
        &[(LargeImage, 1), (DeprecatedDependency, 1)],
        &[],
    ),
    (
        "test-maven-surefire",
        &[(TestFailure, 3)],
        // The exceptions belong to their failing tests, not to the runtime.
        &[RuntimeException],
    ),
    (
        "runtime-rails-n-plus-one",
        &[(NPlusOneQuery, 1), (SlowQuery, 1), (SlowResponse, 1)],
        &[],
    ),
    (
        "build-java-maven",
        // cannot find symbol, incompatible types, public class in the wrong file (printed
        // twice by Maven, counted once)
        &[(CompileError, 3), (DeprecatedDependency, 1)],
        &[],
    ),
    (
        "test-go-failures",
        // 2 subtests + TestStore_Expire + 2 window tests; the parent is dropped. The data race
        // is a runtime exception; the panic in TestStore_Expire is that test's failure only.
        &[(TestFailure, 5), (RuntimeException, 1)],
        &[Crash],
    ),
    (
        "runtime-python-traceback",
        // KeyError + the chained OperationalError; gunicorn WORKER TIMEOUT → SIGKILL is a crash
        &[(RuntimeException, 2), (Crash, 1), (SlowResponse, 1)],
        &[],
    ),
    ("build-c-gcc-make", &[(CompileError, 4)], &[]),
];

/// Exact counts of Error Detective kinds where a rule must fire once per finding (no
/// duplicates): `(log, kind, count)`.
const EXACT: &[(&str, InsightKind, usize)] = &[
    ("test-go-failures", TestFailure, 5),
    ("test-go-failures", RuntimeException, 1),
    ("runtime-python-traceback", Crash, 1),
    ("runtime-python-traceback", RuntimeException, 2),
    ("runtime-postgres-slow-queries", RuntimeException, 2),
    ("deploy-kubernetes-oomkilled", OutOfMemory, 2),
];

/// Clean runs: nothing of medium severity or worse.
const CLEAN: &[&str] = &["deploy-helm-healthy", "test-rust-green", "build-go-success"];

fn analyse(name: &str) -> Vec<Insight> {
    let log = find(name).unwrap_or_else(|| panic!("no corpus log {name}"));
    analyse_all(&LogText::new(log.content), &AnalyserConfig::default())
}

fn counts(insights: &[Insight]) -> BTreeMap<InsightKind, usize> {
    let mut m = BTreeMap::new();
    for i in insights {
        *m.entry(i.kind).or_insert(0) += 1;
    }
    m
}

#[test]
fn every_corpus_log_has_an_expectation() {
    for log in CORPUS {
        let listed = EXPECTATIONS.iter().any(|(n, _, _)| *n == log.name);
        let clean = CLEAN.contains(&log.name);
        assert!(
            listed ^ clean,
            "{}: list it exactly once, in EXPECTATIONS or CLEAN",
            log.name
        );
    }
    assert_eq!(EXPECTATIONS.len() + CLEAN.len(), CORPUS.len());
}

#[test]
fn corpus_logs_yield_their_findings() {
    let mut failures = Vec::new();
    for (name, present, absent) in EXPECTATIONS {
        let found = counts(&analyse(name));
        for (kind, min) in *present {
            let n = found.get(kind).copied().unwrap_or(0);
            if n < *min {
                failures.push(format!("{name}: {kind:?} x{n}, expected at least {min}"));
            }
        }
        for kind in *absent {
            if let Some(n) = found.get(kind) {
                failures.push(format!("{name}: unexpected {kind:?} x{n}"));
            }
        }
        if !failures.is_empty() && failures.last().is_some_and(|f| f.starts_with(name)) {
            failures.push(format!("  {name} found: {found:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn corpus_logs_have_exact_error_detective_counts() {
    let mut failures = Vec::new();
    for (name, kind, want) in EXACT {
        let n = counts(&analyse(name)).get(kind).copied().unwrap_or(0);
        if n != *want {
            failures.push(format!("{name}: {kind:?} x{n}, expected exactly {want}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn clean_corpus_logs_have_no_medium_or_worse_finding() {
    for name in CLEAN {
        let bad: Vec<String> = analyse(name)
            .iter()
            .filter(|i| i.severity >= Severity::Medium)
            .map(|i| {
                format!(
                    "{:?} {:?} line {}: {}",
                    i.kind, i.severity, i.log_line, i.title
                )
            })
            .collect();
        assert!(bad.is_empty(), "{name}: {bad:#?}");
    }
}

#[test]
fn findings_point_into_the_log() {
    for log in CORPUS {
        let lines = LogText::new(log.content).lines.len();
        for i in analyse(log.name) {
            assert!(
                i.log_line >= 1 && i.log_line as usize <= lines,
                "{}: {:?} at line {} of {lines}",
                log.name,
                i.kind,
                i.log_line
            );
        }
    }
}
