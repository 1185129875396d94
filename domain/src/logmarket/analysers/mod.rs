//! The four monitoring agents as deterministic rule sets over log text.
//!
//! Every analyser is a pure function `(&LogText, &AnalyserConfig) -> Vec<Insight>`: no IO, no
//! clock, no randomness, so an auditor re-running it on the same log gets the same insights.
//! `docs/analysers.md` documents every rule.

pub mod error;
pub mod performance;
pub mod quality;
pub mod security;

use super::insight::Insight;

/// A submitted log, split into lines once and shared by all analysers.
#[derive(Debug)]
pub struct LogText<'a> {
    pub text: &'a str,
    /// Lines without their terminator (`\n` or `\r\n`).
    pub lines: Vec<&'a str>,
}

impl<'a> LogText<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect::<Vec<_>>();
        // A trailing newline does not make an extra empty line.
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        Self { text, lines }
    }
}

/// Thresholds, all configurable (defaults are the seed's numbers).
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyserConfig {
    /// A query slower than this is a slow query (seed: 1000 ms).
    pub slow_query_ms: u64,
    /// Memory use above this share is high (seed: 80 %).
    pub high_memory_percent: u32,
    /// An image larger than this is large (seed: 1 GB).
    pub large_image_bytes: u64,
    /// A response slower than this is slow (seed: 2 s).
    pub slow_response_ms: u64,
    /// The same query shape this many times in one request is an N+1 pattern.
    pub n_plus_one_repeats: u32,
    /// This many authentication failures from one source …
    pub brute_force_failures: u32,
    /// … within this many seconds is a brute-force attempt.
    pub brute_force_window_secs: u32,
    /// Coverage below this percentage is reported (seed: 80 %).
    pub coverage_target_percent: u32,
}

impl Default for AnalyserConfig {
    fn default() -> Self {
        Self {
            slow_query_ms: 1000,
            high_memory_percent: 80,
            large_image_bytes: 1_000_000_000,
            slow_response_ms: 2000,
            n_plus_one_repeats: 5,
            brute_force_failures: 5,
            brute_force_window_secs: 300,
            coverage_target_percent: 80,
        }
    }
}

/// Runs all four agents and returns their insights in a stable order (by agent, then log
/// line).
pub fn analyse_all(log: &LogText<'_>, config: &AnalyserConfig) -> Vec<Insight> {
    let mut insights = error::analyse(log, config);
    insights.extend(performance::analyse(log, config));
    insights.extend(security::analyse(log, config));
    insights.extend(quality::analyse(log, config));
    insights.sort_by_key(|i| (i.agent(), i.log_line));
    insights
}
