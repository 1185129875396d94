//! Runs every projection of the process in its own supervised task and reports their status.
//!
//! Every process starts a runner per projection; each runner takes the projection's lease
//! (see `agora_commands::lease`), so exactly one process applies events to it and the others
//! stand by. A runner that fails or panics is started again by [`supervise`].

use std::sync::Arc;
use std::time::Duration;

use agora_commands::lease::{supervise, Leases};
use agora_commands::process::RetryPolicy;
use agora_commands::{CommitSignal, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use ed25519_dalek::SigningKey;

use crate::access::ApiKeyProjection;
use crate::audit::AuditSealProjection;
use crate::capsule_collections::CapsuleCollectionProjection;
use crate::capsule_installs::CapsuleInstallProjection;
use crate::capsule_reviews::CapsuleReviewProjection;
use crate::capsule_search::CapsuleSearchProjection;
use crate::capsules::CapsuleProjection;
use crate::engine::{
    read_checkpoint, Projection, ProjectionError, ProjectionRunner, ProjectionStatus,
};
use crate::lapverse::LapVerseProjection;
use crate::ledger::LedgerProjection;
use crate::logmarket::LogMarketProjection;

/// Every projection Agora maintains, writing to its live tables. The audit seal signs its
/// checkpoints with `ledger_key`.
pub fn all_projections(ledger_key: Arc<SigningKey>) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(LedgerProjection::default()),
        Arc::new(LogMarketProjection::default()),
        Arc::new(LapVerseProjection::default()),
        Arc::new(AuditSealProjection::new(ledger_key)),
        Arc::new(ApiKeyProjection::default()),
        Arc::new(CapsuleProjection::default()),
        Arc::new(CapsuleInstallProjection::default()),
        Arc::new(CapsuleReviewProjection::default()),
        Arc::new(CapsuleSearchProjection::default()),
        Arc::new(CapsuleCollectionProjection::default()),
    ]
}

/// The projection called `name` among [`all_projections`].
pub fn projection_named(name: &str, ledger_key: Arc<SigningKey>) -> Option<Arc<dyn Projection>> {
    all_projections(ledger_key)
        .into_iter()
        .find(|p| p.name() == name)
}

/// Longest [`ProjectionHost::start`] waits for every projection's tables to exist (created by
/// whichever process holds its lease).
pub const PREPARED_WAIT_MS: u64 = 60_000;
/// Pause between two looks at whether the tables exist.
const PREPARED_POLL_MS: u64 = 50;

/// The running projections of this process.
pub struct ProjectionHost {
    runners: Vec<ProjectionRunner>,
    leases: Leases,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ProjectionHost {
    /// Starts a supervised runner per projection (each prepares its tables once it holds the
    /// projection's lease) and waits until every projection's tables exist, whoever created
    /// them. Does not wait for them to catch up: `/readyz` reports their lag.
    pub async fn start(
        store: &Store,
        signal: &CommitSignal,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, ProjectionError> {
        Self::start_with(
            store,
            signal,
            projections,
            RetryPolicy::default(),
            Leases::default(),
        )
        .await
    }

    /// [`Self::start`] with the tries per event before it is parked, recording the leases taken
    /// in `leases`.
    pub async fn start_with(
        store: &Store,
        signal: &CommitSignal,
        projections: Vec<Arc<dyn Projection>>,
        policy: RetryPolicy,
        leases: Leases,
    ) -> Result<Self, ProjectionError> {
        let here = tokio::runtime::Handle::current();
        Self::start_on(&here, store, signal, projections, policy, leases).await
    }

    /// [`Self::start_with`] with the runner tasks on `runtime` (a runtime of their own, so
    /// request handling and command writers do not starve them of threads).
    pub async fn start_on(
        runtime: &tokio::runtime::Handle,
        store: &Store,
        signal: &CommitSignal,
        projections: Vec<Arc<dyn Projection>>,
        policy: RetryPolicy,
        leases: Leases,
    ) -> Result<Self, ProjectionError> {
        let runners: Vec<ProjectionRunner> = projections
            .into_iter()
            .map(|p| {
                ProjectionRunner::new(store.clone(), p)
                    .with_retry_policy(policy)
                    .with_leases(leases.clone())
            })
            .collect();
        let (shutdown, rx) = watch::channel(false);
        let tasks = runners
            .iter()
            .map(|runner| {
                let runner = runner.clone();
                let signal = signal.clone();
                let stop = rx.clone();
                let name = format!("projection {}", runner.name());
                runtime.spawn(supervise(name, rx.clone(), move || {
                    runner.clone().run(signal.subscribe(), stop.clone())
                }))
            })
            .collect();
        let host = Self {
            runners,
            leases,
            shutdown,
            tasks,
        };
        host.wait_prepared(Duration::from_millis(PREPARED_WAIT_MS))
            .await?;
        Ok(host)
    }

    /// The runners of `projections` without running them: a process that serves reads while
    /// other processes apply the events (`agora serve --role api`). Statuses are read from the
    /// checkpoints; waits, like [`Self::start`], until every projection's tables exist.
    pub async fn standby(
        store: &Store,
        projections: Vec<Arc<dyn Projection>>,
        policy: RetryPolicy,
    ) -> Result<Self, ProjectionError> {
        let runners = projections
            .into_iter()
            .map(|p| ProjectionRunner::new(store.clone(), p).with_retry_policy(policy))
            .collect();
        let (shutdown, _) = watch::channel(false);
        let host = Self {
            runners,
            leases: Leases::default(),
            shutdown,
            tasks: Vec::new(),
        };
        host.wait_prepared(Duration::from_millis(PREPARED_WAIT_MS))
            .await?;
        Ok(host)
    }

    /// Waits until every projection has its checkpoint row (its tables were created by the
    /// lease holder, in this process or another).
    async fn wait_prepared(&self, timeout: Duration) -> Result<(), ProjectionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for runner in &self.runners {
            let store = runner.store();
            loop {
                match read_checkpoint(store, runner.name()).await {
                    Ok(_) => break,
                    Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                    Err(_) => tokio::time::sleep(Duration::from_millis(PREPARED_POLL_MS)).await,
                }
            }
        }
        Ok(())
    }

    /// The leases this process holds (projections and whatever else shares the set).
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    pub fn runners(&self) -> &[ProjectionRunner] {
        &self.runners
    }

    /// Status of every projection; a runner whose status cannot be read reports the error.
    pub async fn statuses(&self) -> Vec<Result<ProjectionStatus, ProjectionError>> {
        let mut out = Vec::with_capacity(self.runners.len());
        for runner in &self.runners {
            out.push(runner.status().await);
        }
        out
    }

    /// The runner of projection `name`.
    pub fn runner(&self, name: &str) -> Option<&ProjectionRunner> {
        self.runners.iter().find(|r| r.name() == name)
    }

    /// True while every runner task is alive.
    pub fn all_running(&self) -> bool {
        self.tasks.iter().all(|t| !t.is_finished())
    }

    /// Names of the projections whose supervisor has ended (only at shutdown: a failing runner
    /// is restarted).
    pub fn stopped(&self) -> Vec<String> {
        self.runners
            .iter()
            .zip(&self.tasks)
            .filter(|(_, task)| task.is_finished())
            .map(|(runner, _)| runner.name().to_string())
            .collect()
    }

    /// Asks every runner to stop after its current batch and waits for them.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "projection supervisor panicked");
            }
        }
    }
}
