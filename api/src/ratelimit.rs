//! Per-key limits: a fixed window per key (one minute for API requests, one hour for log
//! submissions), in memory (per process).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default requests per minute per key (`AGORA_RATE_LIMIT_PER_MINUTE`).
pub const DEFAULT_PER_MINUTE: u32 = 1_200;
const WINDOW: Duration = Duration::from_secs(60);
/// Past this many tracked keys, windows that have ended are dropped.
const PRUNE_ABOVE: usize = 10_000;

pub struct RateLimiter {
    limit: u32,
    window: Duration,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// `per_minute` requests per key per minute.
    pub fn new(per_minute: u32) -> Self {
        Self::with_window(per_minute, WINDOW)
    }

    /// `limit` units per key per `window`.
    pub fn with_window(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request by `key` at `now`; `Err(retry_after)` when over the limit.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.check_n(key, 1, now)
    }

    /// Counts `n` units by `key` at `now`, all or none; `Err(retry_after)` when they would go
    /// over the limit.
    pub fn check_n(&self, key: &str, n: u32, now: Instant) -> Result<(), Duration> {
        let window = self.window;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = windows.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1.saturating_add(n) > self.limit {
            return Err(window.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_per_window() {
        let limiter = RateLimiter::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", t0).is_ok());
        }
        let retry = limiter
            .check("a", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(
            limiter.check("b", t0).is_ok(),
            "keys are counted separately"
        );
        assert!(
            limiter.check("a", t0 + Duration::from_secs(60)).is_ok(),
            "a new window"
        );
    }

    #[test]
    fn counts_batches_all_or_nothing() {
        let limiter = RateLimiter::with_window(1000, Duration::from_secs(3600));
        let t0 = Instant::now();
        assert!(limiter.check_n("s", 990, t0).is_ok());
        let retry = limiter.check_n("s", 11, t0 + Duration::from_secs(600));
        assert_eq!(retry, Err(Duration::from_secs(3000)));
        assert!(
            limiter.check_n("s", 10, t0).is_ok(),
            "the refused batch counted nothing"
        );
        assert!(limiter.check("s", t0).is_err());
    }
}
