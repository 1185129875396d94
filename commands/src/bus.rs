//! Running commands: one cqrs-es framework per aggregate type over the shared store, with
//! optimistic-concurrency retries and a signal that wakes the projections after each commit.

use std::time::Duration;

use async_trait::async_trait;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework, EventEnvelope, Query};
use tokio::sync::watch;

use crate::append::{IngestError, IngestOutcome, IngestRecord};
use crate::metadata::CommandMetadata;
use crate::store::{EventRepository, Store};

/// How often a command is re-run when another writer appended to the same aggregate first.
pub const MAX_CONFLICT_RETRIES: u32 = 5;
/// Pause before the first retry; doubles each time.
pub const CONFLICT_BACKOFF_MS: u64 = 2;

pub type AgoraCqrs<A> = CqrsFramework<A, PersistedEventStore<EventRepository, A>>;

/// A counter bumped after every commit. Projection runners wait on it, so a write wakes them at
/// once; a receiver never misses a bump (unlike `Notify::notify_waiters`).
#[derive(Clone, Debug)]
pub struct CommitSignal {
    tx: watch::Sender<u64>,
    events: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for CommitSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl CommitSignal {
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(0);
        Self {
            tx,
            events: Default::default(),
        }
    }

    pub fn notify(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Records a commit of `events` events by this process and wakes the projections.
    pub fn committed(&self, events: usize) {
        self.events
            .fetch_add(events as u64, std::sync::atomic::Ordering::Relaxed);
        self.notify();
    }

    /// Events this process has appended since it started.
    pub fn events_appended(&self) -> u64 {
        self.events.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

/// The only cqrs-es query Agora registers: it keeps no read model (a crash after commit would
/// lose it, DESIGN.md §3), it only wakes the catch-up projections.
struct WakeProjections(CommitSignal);

#[async_trait]
impl<A: Aggregate> Query<A> for WakeProjections {
    async fn dispatch(&self, _aggregate_id: &str, events: &[EventEnvelope<A>]) {
        self.0.committed(events.len());
    }
}

/// Why a command did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate's rules refused the command; nothing was written.
    #[error("{0}")]
    Rejected(E),
    /// Other writers kept appending to the same aggregate; nothing was written.
    #[error("aggregate kept changing under the command after {MAX_CONFLICT_RETRIES} retries")]
    Conflict,
    /// The store failed; nothing was written, or the commit's outcome is unknown.
    #[error("event store failure: {0}")]
    Storage(String),
}

impl<E: std::error::Error> CommandError<E> {
    /// Whether sending the same command again could succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Rejected(_))
    }
}

/// Executes commands of one aggregate type.
pub struct CommandBus<A>
where
    A: Aggregate,
{
    cqrs: AgoraCqrs<A>,
    loader: PersistedEventStore<EventRepository, A>,
    store: Store,
    signal: CommitSignal,
}

/// `pause` stretched by a random 0-100 %, so writers from several processes that collided do
/// not collide again in step.
fn jittered(pause: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let noise = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    pause + pause.mul_f64((noise % 1_000) as f64 / 1_000.0)
}

impl<A> CommandBus<A>
where
    A: Aggregate,
    A::Command: Clone,
{
    pub fn new(store: &Store, signal: CommitSignal, services: A::Services) -> Self {
        let wake: Box<dyn Query<A>> = Box::new(WakeProjections(signal.clone()));
        Self {
            cqrs: CqrsFramework::new(store.event_store(), vec![wake], services),
            loader: store.event_store(),
            store: store.clone(),
            signal,
        }
    }

    /// The aggregate's current state, folded from its events (strongly consistent: read from
    /// the log, not from a projection).
    pub async fn load(&self, aggregate_id: &str) -> Result<A, CommandError<A::Error>> {
        use cqrs_es::EventStore;
        match self.loader.load_aggregate(aggregate_id).await {
            Ok(context) => Ok(context.aggregate),
            Err(e) => Err(CommandError::Storage(e.to_string())),
        }
    }

    /// Loads the aggregate, decides, and appends the resulting events atomically with `meta` on
    /// each. Re-runs the decision on fresh state when another writer got there first.
    #[tracing::instrument(skip_all, fields(aggregate = A::TYPE, id = aggregate_id))]
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        meta: &CommandMetadata,
    ) -> Result<(), CommandError<A::Error>> {
        let map = meta.to_map();
        let mut backoff = Duration::from_millis(CONFLICT_BACKOFF_MS);
        let turn = self.store.turn(A::TYPE, aggregate_id);
        for _ in 0..=MAX_CONFLICT_RETRIES {
            let outcome = {
                let _turn = turn.lock().await;
                self.cqrs
                    .execute_with_metadata(aggregate_id, command.clone(), map.clone())
                    .await
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(AggregateError::AggregateConflict) => {
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff *= 2;
                }
                Err(AggregateError::UserError(e)) => return Err(CommandError::Rejected(e)),
                Err(other) => {
                    tracing::error!(error = %other, "command failed in the event store");
                    return Err(CommandError::Storage(other.to_string()));
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// Appends records that each start their own stream of `A` (no decision over existing
    /// state: DESIGN.md §8), many in one transaction, with `meta` on each; a re-sent record
    /// is a no-op. Outcomes are in the order of `records`.
    pub async fn ingest(
        &self,
        records: Vec<IngestRecord<A::Event>>,
        meta: &CommandMetadata,
    ) -> Result<Vec<IngestOutcome>, IngestError> {
        let metadata: serde_json::Map<String, serde_json::Value> = meta
            .to_map()
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let outcomes = self.store.ingest::<A>(records, &metadata).await?;
        let stored = outcomes
            .iter()
            .filter(|o| **o == IngestOutcome::Stored)
            .count();
        if stored > 0 {
            self.signal.committed(stored);
        }
        Ok(outcomes)
    }
}
