//! A circuit breaker per destination (an external API), as a pure state
//! machine: the caller keeps one [`CircuitBreaker`] per destination, asks
//! [`CircuitBreaker::on_attempt`] before each call and reports the outcome
//! of every allowed call with [`CircuitBreaker::on_success`] or
//! [`CircuitBreaker::on_failure`] (a timeout is a failure).
//!
//! ```text
//! Closed { n }  ──failure, n+1 ≥ threshold──▶  Open { until: now + timeout }
//! Closed { n }  ──failure, n+1 < threshold──▶  Closed { n+1 }
//! Closed { n }  ──success─────────────────────▶ Closed { 0 }
//! Open { until } ──attempt, now < until──▶ Skip (retry at `until`)
//! Open { until } ──attempt, now ≥ until──▶ HalfOpen { probe in flight }, Allow
//! HalfOpen       ──attempt while probing──▶ Skip (one probe at a time)
//! HalfOpen       ──success──▶ Closed { 0 }
//! HalfOpen       ──failure──▶ Open { until: now + timeout } (a fresh timeout)
//! ```
//!
//! Outcomes reported while `Open` (calls allowed before it opened) change
//! nothing: a late failure does not extend the timeout, a late success does
//! not close the circuit. Time comes in as arguments.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Consecutive failures that open the circuit, by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;

/// How long the circuit stays open before a probe, by default.
pub const DEFAULT_OPEN_TIMEOUT_SECONDS: i64 = 30;

/// Longest open timeout allowed: one day.
pub const MAX_OPEN_TIMEOUT_SECONDS: i64 = 86_400;

/// Why a breaker configuration was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BreakerConfigError {
    #[error("failure threshold must be at least 1")]
    ZeroFailureThreshold,
    #[error("open timeout must be 1..={MAX_OPEN_TIMEOUT_SECONDS} seconds, got {seconds}")]
    OpenTimeoutOutOfRange { seconds: i64 },
}

/// When to open and how long to stay open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BreakerConfig {
    failure_threshold: u32,
    open_timeout: Duration,
}

impl BreakerConfig {
    pub fn try_new(
        failure_threshold: u32,
        open_timeout_seconds: i64,
    ) -> Result<Self, BreakerConfigError> {
        if failure_threshold == 0 {
            return Err(BreakerConfigError::ZeroFailureThreshold);
        }
        if !(1..=MAX_OPEN_TIMEOUT_SECONDS).contains(&open_timeout_seconds) {
            return Err(BreakerConfigError::OpenTimeoutOutOfRange {
                seconds: open_timeout_seconds,
            });
        }
        Ok(Self {
            failure_threshold,
            open_timeout: Duration::seconds(open_timeout_seconds),
        })
    }

    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }

    pub fn open_timeout(&self) -> Duration {
        self.open_timeout
    }
}

impl Default for BreakerConfig {
    /// Five consecutive failures, thirty seconds open.
    fn default() -> Self {
        Self {
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            open_timeout: Duration::seconds(DEFAULT_OPEN_TIMEOUT_SECONDS),
        }
    }
}

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow; counts failures in a row.
    Closed { consecutive_failures: u32 },
    /// Calls are skipped until `until`.
    Open { until: DateTime<Utc> },
    /// One probe call decides whether to close or re-open.
    HalfOpen { probe_in_flight: bool },
}

impl Default for BreakerState {
    fn default() -> Self {
        Self::Closed {
            consecutive_failures: 0,
        }
    }
}

/// Why a call was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The circuit is open.
    CircuitOpen,
    /// The circuit is half-open and its one probe has not reported yet.
    ProbeInFlight,
}

/// Whether to make a call now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    /// Fall back instead. `retry_at` is when the circuit lets a probe
    /// through; `None` while a probe is in flight (as soon as it reports).
    Skip {
        reason: SkipReason,
        retry_at: Option<DateTime<Utc>>,
    },
}

impl BreakerState {
    /// Decides whether a call may go now; the state after the attempt.
    pub fn on_attempt(self, now: DateTime<Utc>) -> (BreakerState, Decision) {
        match self {
            Self::Closed { .. } => (self, Decision::Allow),
            Self::Open { until } if now < until => (
                self,
                Decision::Skip {
                    reason: SkipReason::CircuitOpen,
                    retry_at: Some(until),
                },
            ),
            Self::Open { .. }
            | Self::HalfOpen {
                probe_in_flight: false,
            } => (
                Self::HalfOpen {
                    probe_in_flight: true,
                },
                Decision::Allow,
            ),
            Self::HalfOpen {
                probe_in_flight: true,
            } => (
                self,
                Decision::Skip {
                    reason: SkipReason::ProbeInFlight,
                    retry_at: None,
                },
            ),
        }
    }

    /// An allowed call succeeded.
    pub fn on_success(self) -> BreakerState {
        match self {
            Self::Closed { .. } | Self::HalfOpen { .. } => Self::default(),
            Self::Open { .. } => self,
        }
    }

    /// An allowed call failed at `now`.
    pub fn on_failure(self, config: &BreakerConfig, now: DateTime<Utc>) -> BreakerState {
        match self {
            Self::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= config.failure_threshold {
                    Self::open_from(config, now)
                } else {
                    Self::Closed {
                        consecutive_failures: failures,
                    }
                }
            }
            Self::HalfOpen { .. } => Self::open_from(config, now),
            Self::Open { .. } => self,
        }
    }

    fn open_from(config: &BreakerConfig, now: DateTime<Utc>) -> BreakerState {
        Self::Open {
            until: now + config.open_timeout,
        }
    }
}

/// A breaker for one destination: its configuration and state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::default(),
        }
    }

    /// A breaker restored from a stored state.
    pub fn with_state(config: BreakerConfig, state: BreakerState) -> Self {
        Self { config, state }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn on_attempt(&mut self, now: DateTime<Utc>) -> Decision {
        let (state, decision) = self.state.on_attempt(now);
        self.state = state;
        decision
    }

    pub fn on_success(&mut self) {
        self.state = self.state.on_success();
    }

    pub fn on_failure(&mut self, now: DateTime<Utc>) {
        self.state = self.state.on_failure(&self.config, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .single()
            .expect("valid instant")
            + Duration::seconds(seconds)
    }

    fn given(state: BreakerState) -> CircuitBreaker {
        CircuitBreaker::with_state(BreakerConfig::default(), state)
    }

    fn closed(consecutive_failures: u32) -> BreakerState {
        BreakerState::Closed {
            consecutive_failures,
        }
    }

    fn open_until(seconds: i64) -> BreakerState {
        BreakerState::Open { until: t(seconds) }
    }

    fn half_open(probe_in_flight: bool) -> BreakerState {
        BreakerState::HalfOpen { probe_in_flight }
    }

    fn skip_open(retry_at: i64) -> Decision {
        Decision::Skip {
            reason: SkipReason::CircuitOpen,
            retry_at: Some(t(retry_at)),
        }
    }

    #[test]
    fn defaults_are_five_failures_and_thirty_seconds() {
        let config = BreakerConfig::default();
        assert_eq!(config.failure_threshold(), 5);
        assert_eq!(config.open_timeout(), Duration::seconds(30));
        assert_eq!(CircuitBreaker::default().state(), closed(0));
    }

    #[test]
    fn config_is_validated() {
        assert_eq!(
            BreakerConfig::try_new(0, 30),
            Err(BreakerConfigError::ZeroFailureThreshold)
        );
        assert_eq!(
            BreakerConfig::try_new(5, 0),
            Err(BreakerConfigError::OpenTimeoutOutOfRange { seconds: 0 })
        );
        assert_eq!(
            BreakerConfig::try_new(5, MAX_OPEN_TIMEOUT_SECONDS + 1),
            Err(BreakerConfigError::OpenTimeoutOutOfRange {
                seconds: MAX_OPEN_TIMEOUT_SECONDS + 1
            })
        );
        assert!(BreakerConfig::try_new(50, 3).is_ok());
    }

    #[test]
    fn given_closed_when_attempting_then_allowed() {
        let mut breaker = given(closed(3));
        assert_eq!(breaker.on_attempt(t(0)), Decision::Allow);
        assert_eq!(breaker.state(), closed(3));
    }

    #[test]
    fn given_closed_when_a_failure_below_the_threshold_then_counted() {
        let mut breaker = given(closed(3));
        breaker.on_failure(t(0));
        assert_eq!(breaker.state(), closed(4));
    }

    #[test]
    fn given_closed_when_the_threshold_failure_then_open_for_the_timeout() {
        let mut breaker = given(closed(4));
        breaker.on_failure(t(10));
        assert_eq!(breaker.state(), open_until(40));
    }

    #[test]
    fn given_closed_with_failures_when_a_success_then_the_count_resets() {
        let mut breaker = given(closed(4));
        breaker.on_success();
        assert_eq!(breaker.state(), closed(0));
        breaker.on_failure(t(0));
        assert_eq!(breaker.state(), closed(1));
    }

    #[test]
    fn five_failures_in_a_row_open_a_new_breaker() {
        let mut breaker = CircuitBreaker::new(BreakerConfig::default());
        for second in 0..4 {
            assert_eq!(breaker.on_attempt(t(second)), Decision::Allow);
            breaker.on_failure(t(second));
        }
        assert_eq!(breaker.state(), closed(4));
        breaker.on_failure(t(4));
        assert_eq!(breaker.state(), open_until(34));
    }

    #[test]
    fn a_threshold_of_one_opens_on_the_first_failure() {
        let config = BreakerConfig::try_new(1, 5).expect("valid");
        let mut breaker = CircuitBreaker::new(config);
        breaker.on_failure(t(0));
        assert_eq!(breaker.state(), open_until(5));
    }

    #[test]
    fn given_open_when_attempting_before_the_timeout_then_skipped() {
        let mut breaker = given(open_until(30));
        assert_eq!(breaker.on_attempt(t(29)), skip_open(30));
        assert_eq!(breaker.state(), open_until(30));
    }

    #[test]
    fn given_open_when_attempting_at_the_timeout_then_one_probe_is_allowed() {
        let mut breaker = given(open_until(30));
        assert_eq!(breaker.on_attempt(t(30)), Decision::Allow);
        assert_eq!(breaker.state(), half_open(true));
    }

    #[test]
    fn given_a_probe_in_flight_when_attempting_then_skipped() {
        let mut breaker = given(half_open(true));
        assert_eq!(
            breaker.on_attempt(t(31)),
            Decision::Skip {
                reason: SkipReason::ProbeInFlight,
                retry_at: None,
            }
        );
        assert_eq!(breaker.state(), half_open(true));
    }

    #[test]
    fn given_half_open_without_a_probe_when_attempting_then_it_becomes_the_probe() {
        let mut breaker = given(half_open(false));
        assert_eq!(breaker.on_attempt(t(0)), Decision::Allow);
        assert_eq!(breaker.state(), half_open(true));
    }

    #[test]
    fn given_a_probe_when_it_succeeds_then_closed() {
        let mut breaker = given(half_open(true));
        breaker.on_success();
        assert_eq!(breaker.state(), closed(0));
    }

    #[test]
    fn given_a_probe_when_it_fails_then_open_again_with_a_fresh_timeout() {
        let mut breaker = given(open_until(30));
        assert_eq!(breaker.on_attempt(t(45)), Decision::Allow);
        breaker.on_failure(t(47));
        assert_eq!(breaker.state(), open_until(77));
        assert_eq!(breaker.on_attempt(t(76)), skip_open(77));
        assert_eq!(breaker.on_attempt(t(77)), Decision::Allow);
    }

    #[test]
    fn given_open_when_a_late_outcome_arrives_then_nothing_changes() {
        let mut breaker = given(open_until(30));
        breaker.on_failure(t(20));
        assert_eq!(breaker.state(), open_until(30));
        breaker.on_success();
        assert_eq!(breaker.state(), open_until(30));
    }

    #[test]
    fn the_failure_count_saturates() {
        let config = BreakerConfig::try_new(u32::MAX, 30).expect("valid");
        let state = closed(u32::MAX - 1).on_failure(&config, t(0));
        assert_eq!(state, open_until(30));
        let state = closed(u32::MAX).on_failure(&config, t(0));
        assert_eq!(state, open_until(30));
    }

    #[test]
    fn the_state_serializes_tagged() {
        let json = serde_json::to_value(half_open(true)).expect("serializes");
        assert_eq!(json["state"], "half_open");
        assert_eq!(json["probe_in_flight"], true);
        let back: BreakerState = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, half_open(true));
    }
}
