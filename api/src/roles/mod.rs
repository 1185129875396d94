//! What one `agora serve` process runs (`--role`), and the runtime background work runs on.
//!
//! * `all` (default): the API and the background work (projections, process managers,
//!   workers, purges), the latter on a runtime of its own ([`BackgroundRuntime`]) so request
//!   handling and command writers never starve the projections of threads, nor the reverse.
//! * `api`: GraphQL and REST only. Projections are read, not run: their statuses come from the
//!   checkpoints another process moves.
//! * `projector`: the background work only, with `/healthz`, `/readyz` and `/metrics`.
//!
//! Every piece of background work is leased (DESIGN.md §7), so any number of processes of any
//! role can run side by side: exactly one applies each projection.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle, Runtime};

/// What a serving process runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// GraphQL and REST; no projections, process managers or workers.
    Api,
    /// Projections, process managers, workers and purges; only the operations routes.
    Projector,
    /// Both.
    #[default]
    All,
}

impl Role {
    pub fn serves_api(self) -> bool {
        self != Self::Projector
    }

    pub fn runs_background(self) -> bool {
        self != Self::Api
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Projector => "projector",
            Self::All => "all",
        }
    }
}

/// Worker threads of the background runtime: projections are I/O bound (one transaction per
/// batch), so two threads keep every runner moving on a small machine.
pub const BACKGROUND_THREADS: usize = 2;

/// A multi-thread tokio runtime of its own for background work. Dropping it stops its tasks
/// without waiting (stop the work first: [`crate::app::App::shutdown`] does).
pub struct BackgroundRuntime {
    runtime: Option<Runtime>,
}

impl BackgroundRuntime {
    pub fn start(threads: usize) -> std::io::Result<Self> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name_fn(|| format!("agora-background-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> Handle {
        match &self.runtime {
            Some(rt) => rt.handle().clone(),
            None => Handle::current(),
        }
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Allowed inside an async context, unlike dropping the runtime.
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for BackgroundRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundRuntime").finish_non_exhaustive()
    }
}
