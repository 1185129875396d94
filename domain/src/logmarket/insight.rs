//! What an analyser reports: one [`Insight`] per finding, in one shape for all four agents.
//!
//! The seed shows a different JSON shape per agent (`pattern`/`issue`/`threat`, `fix`/
//! `optimization`/`recommendation`); Agora keeps one typed shape and the REST adapter renders
//! each agent's seed fields from it (`title` is the pattern/issue/threat, `fix` the
//! fix/optimization/recommendation, `details` the agent-specific fields such as `query`,
//! `durationMs`, `current`, `target`, `source`, `method`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The four monitoring agents of the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Agent {
    ErrorDetective,
    PerformanceAnalyzer,
    SecurityGuardian,
    QualityInspector,
}

impl Agent {
    pub const ALL: [Agent; 4] = [
        Agent::ErrorDetective,
        Agent::PerformanceAnalyzer,
        Agent::SecurityGuardian,
        Agent::QualityInspector,
    ];

    /// The seed's id (`error-detective`, …).
    pub fn id(self) -> &'static str {
        match self {
            Agent::ErrorDetective => "error-detective",
            Agent::PerformanceAnalyzer => "performance-analyzer",
            Agent::SecurityGuardian => "security-guardian",
            Agent::QualityInspector => "quality-inspector",
        }
    }

    pub fn parse(id: &str) -> Option<Agent> {
        Agent::ALL.into_iter().find(|a| a.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            Agent::ErrorDetective => "Error Detective",
            Agent::PerformanceAnalyzer => "Performance Analyzer",
            Agent::SecurityGuardian => "Security Guardian",
            Agent::QualityInspector => "Quality Inspector",
        }
    }

    pub fn expertise(self) -> &'static str {
        match self {
            Agent::ErrorDetective => "Error pattern recognition, root cause analysis",
            Agent::PerformanceAnalyzer => "Performance optimization, bottleneck detection",
            Agent::SecurityGuardian => "Security analysis, threat detection",
            Agent::QualityInspector => "Code quality, test coverage, best practices",
        }
    }

    /// Pipeline stages the agent monitors (the seed's lists).
    pub fn monitored_stages(self) -> &'static [&'static str] {
        match self {
            Agent::ErrorDetective => &["build", "test", "runtime"],
            Agent::PerformanceAnalyzer => &["test", "deploy", "runtime"],
            Agent::SecurityGuardian => &["build", "test", "deploy", "runtime"],
            Agent::QualityInspector => &["build", "test"],
        }
    }

    /// What actually runs: deterministic rule sets, not a language model.
    pub fn engine(self) -> &'static str {
        match self {
            Agent::ErrorDetective => "agora-rules/error-detective-v1",
            Agent::PerformanceAnalyzer => "agora-rules/performance-analyzer-v1",
            Agent::SecurityGuardian => "agora-rules/security-guardian-v1",
            Agent::QualityInspector => "agora-rules/quality-inspector-v1",
        }
    }
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What was found. Each kind belongs to exactly one agent ([`InsightKind::agent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InsightKind {
    // Error Detective
    CompileError,
    TestFailure,
    RuntimeException,
    Crash,
    OutOfMemory,
    DependencyConflict,
    ConfigError,
    // Performance Analyzer
    SlowQuery,
    HighMemory,
    LargeImage,
    SlowResponse,
    NPlusOneQuery,
    // Security Guardian
    UnauthorizedAccess,
    BruteForce,
    SqlInjection,
    Xss,
    ExposedSecret,
    SuspiciousIp,
    AuthFailure,
    // Quality Inspector
    LowCoverage,
    DeprecatedDependency,
    Warning,
    MissingErrorHandling,
    // Security Guardian, added later: new variants go last so that stored events (which name
    // kinds by their serde name) and the derived order of the earlier kinds stay as they were.
    CommandInjection,
    PathTraversal,
}

impl InsightKind {
    pub fn agent(self) -> Agent {
        use InsightKind::*;
        match self {
            CompileError | TestFailure | RuntimeException | Crash | OutOfMemory
            | DependencyConflict | ConfigError => Agent::ErrorDetective,
            SlowQuery | HighMemory | LargeImage | SlowResponse | NPlusOneQuery => {
                Agent::PerformanceAnalyzer
            }
            UnauthorizedAccess | BruteForce | SqlInjection | Xss | ExposedSecret | SuspiciousIp
            | AuthFailure | CommandInjection | PathTraversal => Agent::SecurityGuardian,
            LowCoverage | DeprecatedDependency | Warning | MissingErrorHandling => {
                Agent::QualityInspector
            }
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insight {
    pub kind: InsightKind,
    pub severity: Severity,
    /// One line saying what was found (the seed's `pattern` / `issue` / `threat`), redacted.
    pub title: String,
    /// `file:line` (or `file:line:col`) in the code the log talks about, when the log has one.
    pub location: Option<String>,
    /// 1-based line of the submitted log where the finding starts.
    pub log_line: u32,
    /// The cited log text (at most [`MAX_EXCERPT_CHARS`], already redacted).
    pub excerpt: String,
    /// What it costs (the seed's `impact`).
    pub impact: String,
    /// Why it happened, when the rule can tell.
    pub root_cause: Option<String>,
    /// What to do (the seed's `fix` / `optimization` / `recommendation`).
    pub fix: String,
    /// Agent-specific fields (e.g. `query`, `durationMs`, `current`, `target`, `source`).
    pub details: BTreeMap<String, String>,
}

impl Insight {
    pub fn agent(&self) -> Agent {
        self.kind.agent()
    }
}

/// Longest excerpt an insight keeps.
pub const MAX_EXCERPT_CHARS: usize = 240;
/// Most insights of one kind kept per log (a log with 10,000 identical warnings is one finding
/// repeated, not 10,000 insights).
pub const MAX_INSIGHTS_PER_KIND: usize = 20;
