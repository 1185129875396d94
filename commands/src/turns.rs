//! Turns: commands on one aggregate run one at a time within a process.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// One turn at a time per aggregate within this process: commands on the same aggregate queue
/// (first come, first served) instead of racing to append at the same version, where all but
/// one would lose and retry. A burst on one hot aggregate (a tenant's month budget) then costs
/// one load and one append per command, not a storm of conflicts that can outlast the retries.
/// Writers in other processes are still met by the optimistic check and its retries.
#[derive(Debug, Default)]
pub struct AggregateTurns {
    /// Live turn locks by aggregate type and id; entries whose lock nobody holds are pruned.
    locks: std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Prune when the map grows past this; then set to twice what survived.
    prune_at: std::sync::atomic::AtomicUsize,
}

/// Smallest size at which the turn map is pruned.
const TURNS_PRUNE_MIN: usize = 1_024;

impl AggregateTurns {
    /// The turn lock of `aggregate_type`/`aggregate_id`.
    pub fn lock_for(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Arc<tokio::sync::Mutex<()>> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        let key = format!("{aggregate_type}\u{1f}{aggregate_id}");
        if let Some(lock) = locks.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        if locks.len() >= self.prune_at.load(Relaxed).max(TURNS_PRUNE_MIN) {
            locks.retain(|_, w| w.strong_count() > 0);
            self.prune_at.store(locks.len() * 2, Relaxed);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(key, Arc::downgrade(&lock));
        lock
    }
}
