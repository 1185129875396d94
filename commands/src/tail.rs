//! The shared tail of the global order: the events most recently read in global order, kept in
//! memory so that the projections and process managers of one process, which all follow the
//! same log, read and decode each event from the database once instead of once each.
//!
//! Correctness rests on one property of the global-order read ([`crate::Store::read_global`]):
//! it returns a contiguous run of the final order. On PostgreSQL it reads only transactions
//! older than the oldest one still open (the horizon), so no event can later appear between two
//! it returned; on SQLite one writer commits at a time in position order. The tail therefore
//! only ever holds one contiguous run `(start, end]`, extended by reads that begin exactly at
//! `end`; a read after a position inside the run is served from memory, and the rest of what
//! was asked is read from the database from the run's end. Results are exactly what the
//! database would return, never shorter.
//!
//! Bounded by [`TAIL_MAX_EVENTS`] and [`TAIL_MAX_BYTES`] (an estimate of each event's decoded
//! size): the oldest events are dropped first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::store::{LogPosition, StoredEvent};

/// Most events the tail keeps.
pub const TAIL_MAX_EVENTS: usize = 20_000;
/// Most bytes (estimated, decoded) the tail keeps.
pub const TAIL_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Reads served, by source (see [`Tail::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TailStats {
    /// Events handed out from memory.
    pub from_memory: u64,
    /// Events read from the database.
    pub from_database: u64,
}

#[derive(Default)]
struct Run {
    /// The position just before the first event held (the run is `(start, end]`).
    start: LogPosition,
    events: VecDeque<(StoredEvent, usize)>,
    bytes: usize,
}

impl Run {
    fn end(&self) -> LogPosition {
        self.events.back().map_or(self.start, |(e, _)| e.position)
    }

    /// Up to `limit` events right after `after`, if `after` is the start or an event of the run.
    fn after(&self, after: LogPosition, limit: usize, out: &mut Vec<StoredEvent>) {
        let from = if after == self.start {
            0
        } else {
            match self
                .events
                .binary_search_by(|(e, _)| e.position.cmp(&after))
            {
                Ok(i) => i + 1,
                Err(_) => return,
            }
        };
        out.extend(
            self.events
                .range(from..)
                .take(limit)
                .map(|(e, _)| e.clone()),
        );
    }

    fn push(&mut self, event: StoredEvent) {
        let size = estimate(&event);
        self.bytes += size;
        self.events.push_back((event, size));
        while self.events.len() > TAIL_MAX_EVENTS || self.bytes > TAIL_MAX_BYTES {
            let Some((dropped, size)) = self.events.pop_front() else {
                break;
            };
            self.bytes -= size;
            self.start = dropped.position;
        }
    }
}

/// The tail of one [`crate::Store`] (cloned stores share it; a sibling store has its own).
#[derive(Clone, Default)]
pub struct Tail {
    run: Arc<Mutex<Run>>,
    /// Held while reading at the end of the run, so that runners woken by one commit make one
    /// database read between them.
    fetching: Arc<tokio::sync::Mutex<()>>,
    from_memory: Arc<AtomicU64>,
    from_database: Arc<AtomicU64>,
    /// Off: every read goes to the database (a benchmark's baseline).
    off: Arc<AtomicBool>,
}

impl Tail {
    /// Turns sharing on (the default) or off; off, the run is dropped.
    pub fn share(&self, on: bool) {
        self.off.store(!on, Ordering::Relaxed);
        if !on {
            *lock(&self.run) = Run::default();
        }
    }

    /// Whether reads are shared.
    pub fn is_shared(&self) -> bool {
        !self.off.load(Ordering::Relaxed)
    }

    /// Up to `limit` events after `after` from memory (none if `after` is not in the run).
    pub fn cached(&self, after: LogPosition, limit: usize) -> Vec<StoredEvent> {
        let mut out = Vec::new();
        lock(&self.run).after(after, limit, &mut out);
        self.from_memory
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        out
    }

    /// Whether a read after `from` would read at (or past) the end of the run.
    pub fn at_end(&self, from: LogPosition) -> bool {
        from >= lock(&self.run).end()
    }

    /// Serialises reads at the end of the run.
    pub async fn fetching(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.fetching.lock().await
    }

    /// Offers what a database read after `from` returned: appended when it continues the run,
    /// a new run when it reaches past the run's end from elsewhere, else ignored.
    pub fn offer(&self, from: LogPosition, events: &[StoredEvent]) {
        self.from_database
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let Some(last) = events.last() else {
            return;
        };
        let mut run = lock(&self.run);
        let end = run.end();
        if from == end {
            for e in events {
                run.push(e.clone());
            }
        } else if last.position > end {
            *run = Run {
                start: from,
                ..Run::default()
            };
            for e in events {
                run.push(e.clone());
            }
        }
    }

    /// Events served from memory and from the database so far.
    pub fn stats(&self) -> TailStats {
        TailStats {
            from_memory: self.from_memory.load(Ordering::Relaxed),
            from_database: self.from_database.load(Ordering::Relaxed),
        }
    }

    /// Events held now.
    pub fn len(&self) -> usize {
        lock(&self.run).events.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("events", &self.len())
            .field("stats", &self.stats())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A decoded event's size, roughly: its strings and a fixed cost per JSON node.
fn estimate(event: &StoredEvent) -> usize {
    fn value(v: &Value) -> usize {
        32 + match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(value).sum(),
            Value::Object(o) => o.iter().map(|(k, v)| k.len() + value(v)).sum(),
            _ => 0,
        }
    }
    160 + event.aggregate_type.len()
        + event.aggregate_id.len()
        + event.event_type.len()
        + event.event_version.len()
        + value(&event.payload)
        + value(&event.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn event(pos: i64, payload: Value) -> StoredEvent {
        StoredEvent {
            position: LogPosition {
                transaction_id: 0,
                global_position: pos,
            },
            aggregate_type: "t".into(),
            aggregate_id: format!("a{pos}"),
            sequence: 1,
            event_type: "E".into(),
            event_version: "1".into(),
            payload,
            metadata: Value::Null,
            recorded_at: Utc::now(),
        }
    }

    fn at(pos: i64) -> LogPosition {
        LogPosition {
            transaction_id: 0,
            global_position: pos,
        }
    }

    fn positions(events: &[StoredEvent]) -> Vec<i64> {
        events.iter().map(|e| e.position.global_position).collect()
    }

    #[test]
    fn a_read_continuing_the_run_extends_it_and_later_reads_are_served_from_memory() {
        let tail = Tail::default();
        tail.offer(
            at(0),
            &(1..=3).map(|p| event(p, Value::Null)).collect::<Vec<_>>(),
        );
        tail.offer(
            at(3),
            &(4..=5).map(|p| event(p, Value::Null)).collect::<Vec<_>>(),
        );
        assert_eq!(positions(&tail.cached(at(0), 10)), [1, 2, 3, 4, 5]);
        assert_eq!(positions(&tail.cached(at(2), 2)), [3, 4]);
        assert_eq!(positions(&tail.cached(at(5), 10)), Vec::<i64>::new());
        assert!(tail.at_end(at(5)) && !tail.at_end(at(4)));
        assert_eq!(tail.stats().from_memory, 7);
    }

    #[test]
    fn a_position_outside_the_run_is_never_served() {
        let tail = Tail::default();
        tail.offer(
            at(10),
            &(11..=12).map(|p| event(p, Value::Null)).collect::<Vec<_>>(),
        );
        // Before the run: events between it and the run's start are unknown here.
        assert!(tail.cached(at(5), 10).is_empty());
        // A position the run does not hold (a gap cannot be assumed empty).
        assert!(tail.cached(at(13), 10).is_empty());
    }

    #[test]
    fn a_lagging_read_does_not_replace_a_run_further_ahead() {
        let tail = Tail::default();
        tail.offer(at(100), &[event(101, Value::Null)]);
        tail.offer(
            at(0),
            &(1..=50).map(|p| event(p, Value::Null)).collect::<Vec<_>>(),
        );
        assert_eq!(positions(&tail.cached(at(100), 10)), [101]);
        assert!(tail.cached(at(0), 10).is_empty());
        // A read from elsewhere that reaches past the end starts a new run.
        tail.offer(at(150), &[event(151, Value::Null), event(152, Value::Null)]);
        assert_eq!(positions(&tail.cached(at(150), 10)), [151, 152]);
        assert!(tail.cached(at(100), 10).is_empty());
    }

    #[test]
    fn the_oldest_events_go_first_past_the_bounds() {
        let tail = Tail::default();
        let many: Vec<_> = (1..=(TAIL_MAX_EVENTS as i64 + 10))
            .map(|p| event(p, Value::Null))
            .collect();
        tail.offer(at(0), &many);
        assert_eq!(tail.len(), TAIL_MAX_EVENTS);
        assert!(tail.cached(at(0), 1).is_empty(), "the start moved");
        assert_eq!(positions(&tail.cached(at(10), 1)), [11]);

        let big = Value::String("x".repeat(TAIL_MAX_BYTES / 4));
        let tail = Tail::default();
        tail.offer(
            at(0),
            &(1..=8).map(|p| event(p, big.clone())).collect::<Vec<_>>(),
        );
        assert!(tail.len() < 4, "bytes bound the tail: {} held", tail.len());
        assert_eq!(positions(&tail.cached(at(7), 1)), [8]);
    }
}
