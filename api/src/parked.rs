//! Operators' handling of parked events (DESIGN.md §7), shared by GraphQL (`parkedEvents`,
//! `retryParkedEvent`, `skipParkedEvent`) and the CLI (`agora parked …`).
//!
//! * retry: the runner that parked the event handles it again. A projection applies it and
//!   deletes the row in one transaction; a process manager reacts again (its reactions are
//!   idempotent) and then the row is deleted.
//! * skip: a `ParkedEventSkipped` event is appended (who, what, why), then the row is marked
//!   `skipped`. A skip recorded before a crash is found again by its aggregate id, so a second
//!   try only marks the row.

use std::sync::Arc;

use agora_commands::process::Redeliver;
use agora_commands::{CommandBus, CommandError, CommandMetadata, CommitSignal, Store};
use agora_domain::parking::{skip_id, ParkedEventSkip, SkipCommand, SkipError};
use agora_projections::parking::{ParkedEvent, ParkingError, ParkingStore};
use agora_projections::ProjectionRunner;

use crate::graphql::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ParkedError {
    #[error(transparent)]
    Parking(#[from] ParkingError),
    #[error("the skip was refused: {0}")]
    SkipRefused(SkipError),
    #[error("recording the skip failed: {0}")]
    Storage(String),
}

impl From<ParkedError> for ApiError {
    fn from(e: ParkedError) -> Self {
        let message = e.to_string();
        match e {
            ParkedError::Parking(ParkingError::NotFound(_)) => ApiError::NotFound(message),
            ParkedError::Parking(
                ParkingError::AlreadyResolved { .. } | ParkingError::StillFailing { .. },
            ) => ApiError::Conflict(message),
            ParkedError::Parking(
                ParkingError::UnknownRunner(_) | ParkingError::EventMissing(_),
            ) => ApiError::NotFound(message),
            ParkedError::SkipRefused(_) => ApiError::BadUserInput(message),
            ParkedError::Parking(ParkingError::Database(e)) => {
                ApiError::internal("dead-letter store", e)
            }
            ParkedError::Storage(detail) => ApiError::internal("recording a skip", detail),
        }
    }
}

/// The dead-letter store and every runner that can take an event back.
#[derive(Clone)]
pub struct ParkedEvents {
    pub store: ParkingStore,
    log: Store,
    projections: Vec<ProjectionRunner>,
    processes: Vec<Arc<dyn Redeliver>>,
    skips: Arc<CommandBus<ParkedEventSkip>>,
}

impl ParkedEvents {
    pub fn new(
        log: &Store,
        signal: CommitSignal,
        projections: Vec<ProjectionRunner>,
        processes: Vec<Arc<dyn Redeliver>>,
    ) -> Self {
        Self {
            store: ParkingStore::new(log.read_models().clone()),
            log: log.clone(),
            projections,
            processes,
            skips: Arc::new(CommandBus::new(log, signal, ())),
        }
    }

    /// Handles the event of row `id` again with the runner that parked it; the row is gone
    /// afterwards. Returns the row as it was.
    pub async fn retry(&self, id: i64) -> Result<ParkedEvent, ParkedError> {
        let parked = self.store.open(id).await?;
        if let Some(runner) = self.projections.iter().find(|r| r.name() == parked.runner) {
            runner.retry_parked(id).await?;
            return Ok(parked);
        }
        let process = self
            .processes
            .iter()
            .find(|p| p.name() == parked.runner)
            .ok_or_else(|| ParkingError::UnknownRunner(parked.runner.clone()))?;
        let event = self
            .log
            .event_at(parked.global_position)
            .await
            .map_err(ParkingError::from)?
            .ok_or(ParkingError::EventMissing(parked.global_position))?;
        process
            .redeliver(&event)
            .await
            .map_err(|e| ParkingError::StillFailing {
                runner: e.runner,
                reason: e.reason,
            })?;
        if !self.store.remove(id).await.map_err(ParkingError::from)? {
            return Err(ParkingError::AlreadyResolved {
                id,
                status: "resolved meanwhile".into(),
            }
            .into());
        }
        tracing::info!(process = %parked.runner, id, "parked event handled on retry");
        Ok(parked)
    }

    /// Records the skip of row `id` as an event (actor from `meta`), then marks the row.
    pub async fn skip(
        &self,
        id: i64,
        reason: &str,
        meta: &CommandMetadata,
    ) -> Result<ParkedEvent, ParkedError> {
        let parked = self.store.open(id).await?;
        let command = SkipCommand::Skip {
            runner: parked.runner.clone(),
            position: parked.global_position,
            event_id: parked.event_id.clone(),
            reason: reason.to_string(),
            actor: meta.actor.clone(),
            occurred_at: meta.occurred_at,
        };
        let aggregate = skip_id(&parked.runner, parked.global_position);
        match self.skips.execute(&aggregate, command, meta).await {
            // Already recorded (a crash before the row was marked): mark it now.
            Ok(()) | Err(CommandError::Rejected(SkipError::AlreadySkipped)) => {}
            Err(CommandError::Rejected(e)) => return Err(ParkedError::SkipRefused(e)),
            Err(e) => return Err(ParkedError::Storage(e.to_string())),
        }
        self.store
            .mark_skipped(id, &meta.actor, reason.trim())
            .await?;
        tracing::warn!(runner = %parked.runner, id, position = parked.global_position,
            actor = %meta.actor, "parked event skipped by an operator");
        Ok(self.store.get(id).await?)
    }
}
