//! The trending list: which capsules are being installed and liked now. A pure function of the
//! installs and ratings in a window and the current time, both passed in.
//!
//! Formula (all in exact decimals, so the same input always gives the same list):
//! - the window is the [`TRENDING_WINDOW_DAYS`] days up to `now`; an install of age `a` in it
//!   weighs `(W - a) / W` (1 just now, falling linearly to 0 at the window's start);
//!   installs and ratings outside the window (or after `now`) are ignored;
//! - `weighted_installs` is the sum of those weights;
//! - `bayesian_rating = (C·m + Σ stars) / (C + n)` over the `n` ratings in the window, with a
//!   prior of `C =` [`PRIOR_RATINGS`] ratings at `m =` [`PRIOR_STARS`] stars, so a few
//!   ratings cannot carry a capsule far from the middle;
//! - `score = weighted_installs + `[`RATING_WEIGHT`]` × (bayesian_rating − m)`: each star
//!   above the prior is worth two fresh installs, each star below costs two;
//! - only capsules with at least one install in the window trend; ties are broken by more
//!   installs in the window, then by name; at most [`MAX_TRENDING`] are listed.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Stars;
use crate::capsules::CapsuleName;

/// Length of the trending window.
pub const TRENDING_WINDOW_DAYS: i64 = 7;
/// Weight of the prior in the Bayesian average, in ratings.
pub const PRIOR_RATINGS: u32 = 10;
/// The prior's rating, in stars (the middle of 1–5).
pub const PRIOR_STARS: Decimal = Decimal::from_parts(3, 0, 0, false, 0);
/// Fresh installs one star above the prior is worth.
pub const RATING_WEIGHT: Decimal = Decimal::from_parts(2, 0, 0, false, 0);
/// Longest trending list.
pub const MAX_TRENDING: usize = 100;

/// What happened to one capsule recently (the commands layer reads it from the projections).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapsuleActivity {
    pub capsule: CapsuleName,
    pub installs_at: Vec<DateTime<Utc>>,
    pub ratings: Vec<(Stars, DateTime<Utc>)>,
}

/// One line of the trending list, with every term of its score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendingEntry {
    pub capsule: CapsuleName,
    pub score: Decimal,
    pub installs_in_window: u32,
    pub weighted_installs: Decimal,
    pub ratings_in_window: u32,
    pub bayesian_rating: Decimal,
}

fn window_seconds() -> i64 {
    Duration::days(TRENDING_WINDOW_DAYS).num_seconds()
}

/// The age of `at` in seconds when it lies in the window ending at `now`.
fn age_in_window(at: DateTime<Utc>, now: DateTime<Utc>) -> Option<i64> {
    let age = (now - at).num_seconds();
    (0..window_seconds()).contains(&age).then_some(age)
}

/// The score of one capsule, `None` when it had no install in the window.
pub fn score(activity: &CapsuleActivity, now: DateTime<Utc>) -> Option<TrendingEntry> {
    let w = Decimal::from(window_seconds());
    let ages: Vec<i64> = activity
        .installs_at
        .iter()
        .filter_map(|at| age_in_window(*at, now))
        .collect();
    if ages.is_empty() {
        return None;
    }
    let weighted_installs: Decimal = ages.iter().map(|a| (w - Decimal::from(*a)) / w).sum();
    let stars: Vec<u8> = activity
        .ratings
        .iter()
        .filter(|(_, at)| age_in_window(*at, now).is_some())
        .map(|(s, _)| s.get())
        .collect();
    let n = Decimal::from(stars.len() as u64);
    let sum: Decimal = stars.iter().map(|s| Decimal::from(*s)).sum();
    let c = Decimal::from(PRIOR_RATINGS);
    let bayesian_rating = (c * PRIOR_STARS + sum) / (c + n);
    let score = weighted_installs + RATING_WEIGHT * (bayesian_rating - PRIOR_STARS);
    Some(TrendingEntry {
        capsule: activity.capsule.clone(),
        score: score.round_dp(6),
        installs_in_window: ages.len() as u32,
        weighted_installs: weighted_installs.round_dp(6),
        ratings_in_window: stars.len() as u32,
        bayesian_rating: bayesian_rating.round_dp(6),
    })
}

/// The trending list at `now`, best first.
pub fn trending(activity: &[CapsuleActivity], now: DateTime<Utc>) -> Vec<TrendingEntry> {
    let mut entries: Vec<TrendingEntry> = activity.iter().filter_map(|a| score(a, now)).collect();
    entries.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then(b.installs_in_window.cmp(&a.installs_in_window))
            .then(a.capsule.cmp(&b.capsule))
    });
    entries.truncate(MAX_TRENDING);
    entries
}
