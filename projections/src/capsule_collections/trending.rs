//! The trending list: the domain's formula ([`agora_domain::capsules::community::trending`])
//! over the live installations made in its window (`rm_capsule_installations`) and the visible
//! ratings written or edited in it (`rm_capsule_reviews`).

use std::collections::BTreeMap;

use agora_domain::capsules::community::trending::{
    trending, CapsuleActivity, TrendingEntry, TRENDING_WINDOW_DAYS,
};
use agora_domain::capsules::community::Stars;
use agora_domain::capsules::CapsuleName;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::{AnyPool, Row};

use crate::engine::{ProjectionError, LIVE_PREFIX};

/// Most installs and most ratings read for one list (the newest first); past it the oldest in
/// the window, which weigh least, are left out.
pub const MAX_ACTIVITY_ROWS: i64 = 200_000;

/// Reads for the trending list.
#[derive(Clone)]
pub struct TrendingQueries {
    pool: AnyPool,
    installs: String,
    reviews: String,
}

fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// The capsule's activity, created empty on first sight (`None` for a name that is not one).
fn entry(
    activity: &mut BTreeMap<String, CapsuleActivity>,
    name: String,
) -> Option<&mut CapsuleActivity> {
    let capsule = CapsuleName::parse(&name).ok()?;
    Some(activity.entry(name).or_insert_with(|| CapsuleActivity {
        capsule,
        installs_at: Vec::new(),
        ratings: Vec::new(),
    }))
}

impl TrendingQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            installs: format!("{LIVE_PREFIX}capsule_installations"),
            reviews: format!("{LIVE_PREFIX}capsule_reviews"),
        }
    }

    /// The trending list at `now`, best first, each entry with every term of its score.
    pub async fn trending(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<TrendingEntry>, ProjectionError> {
        let since = (now - Duration::days(TRENDING_WINDOW_DAYS)).timestamp_micros();
        let mut activity: BTreeMap<String, CapsuleActivity> = BTreeMap::new();
        let installs = sqlx::query(&format!(
            "SELECT capsule, installed_at_us FROM {} WHERE version IS NOT NULL \
             AND installed_at_us >= $1 ORDER BY installed_at_us DESC LIMIT $2",
            self.installs
        ))
        .bind(since)
        .bind(MAX_ACTIVITY_ROWS)
        .fetch_all(&self.pool)
        .await?;
        for r in &installs {
            if let Some(a) = entry(&mut activity, r.try_get(0)?) {
                a.installs_at.push(time(r.try_get(1)?));
            }
        }
        let ratings = sqlx::query(&format!(
            "SELECT capsule, stars, updated_at_us FROM {} WHERE hidden = 0 \
             AND updated_at_us >= $1 ORDER BY updated_at_us DESC LIMIT $2",
            self.reviews
        ))
        .bind(since)
        .bind(MAX_ACTIVITY_ROWS)
        .fetch_all(&self.pool)
        .await?;
        for r in &ratings {
            let stars: i64 = r.try_get(1)?;
            let Some(stars) = u8::try_from(stars).ok().and_then(|s| Stars::parse(s).ok()) else {
                return Err(ProjectionError::Corrupt(format!(
                    "a review with {stars} stars"
                )));
            };
            if let Some(a) = entry(&mut activity, r.try_get(0)?) {
                a.ratings.push((stars, time(r.try_get(2)?)));
            }
        }
        let activity: Vec<CapsuleActivity> = activity.into_values().collect();
        Ok(trending(&activity, now))
    }
}
