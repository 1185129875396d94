//! Runs every projection of the process in its own task and reports their status.

use std::sync::Arc;

use agora_commands::process::RetryPolicy;
use agora_commands::{CommitSignal, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use ed25519_dalek::SigningKey;

use crate::access::ApiKeyProjection;
use crate::audit::AuditSealProjection;
use crate::engine::{Projection, ProjectionError, ProjectionRunner, ProjectionStatus};
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
    ]
}

/// The projection called `name` among [`all_projections`].
pub fn projection_named(name: &str, ledger_key: Arc<SigningKey>) -> Option<Arc<dyn Projection>> {
    all_projections(ledger_key)
        .into_iter()
        .find(|p| p.name() == name)
}

/// The running projections of this process.
pub struct ProjectionHost {
    runners: Vec<ProjectionRunner>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<(), ProjectionError>>>,
}

impl ProjectionHost {
    /// Prepares (creates tables, checks versions) and starts a runner per projection. Does not
    /// wait for them to catch up: `/readyz` reports their lag.
    pub async fn start(
        store: &Store,
        signal: &CommitSignal,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, ProjectionError> {
        Self::start_with(store, signal, projections, RetryPolicy::default()).await
    }

    /// [`Self::start`] with the tries per event before it is parked.
    pub async fn start_with(
        store: &Store,
        signal: &CommitSignal,
        projections: Vec<Arc<dyn Projection>>,
        policy: RetryPolicy,
    ) -> Result<Self, ProjectionError> {
        let runners: Vec<ProjectionRunner> = projections
            .into_iter()
            .map(|p| ProjectionRunner::new(store.clone(), p).with_retry_policy(policy))
            .collect();
        for runner in &runners {
            runner.prepare().await?;
        }
        let (shutdown, rx) = watch::channel(false);
        let tasks = runners
            .iter()
            .map(|runner| {
                let runner = runner.clone();
                let commits = signal.subscribe();
                let stop = rx.clone();
                tokio::spawn(async move {
                    let name = runner.name().to_string();
                    let result = runner.run(commits, stop).await;
                    if let Err(e) = &result {
                        tracing::error!(projection = %name, error = %e, "projection runner stopped");
                    }
                    result
                })
            })
            .collect();
        Ok(Self {
            runners,
            shutdown,
            tasks,
        })
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

    /// Names of the projections whose runner task has ended (an error it could not get past).
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
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "projection ended with an error"),
                Err(e) => tracing::error!(error = %e, "projection task panicked"),
            }
        }
    }
}
