//! The Lap-Verse adapters: tenants, tasks and self-compete rounds over REST (the seed's
//! `/api/v2/…` paths) and GraphQL, over [`agora_commands::lapverse::LapVerse`].

pub mod demo;
pub mod export;
pub mod gql;
pub mod metrics;
pub mod openapi;
pub mod rest;
pub mod views;

use std::sync::Arc;

use agora_commands::lapverse::{LapVerse, LapVerseError};
use agora_domain::access::Role;
use agora_projections::lapverse::LapVerseQueries;

use crate::graphql::auth::Principal;
use crate::graphql::error::ApiError;

/// The Lap-Verse service and its read models.
#[derive(Clone)]
pub struct LapVerseApi {
    pub service: Arc<LapVerse>,
    pub queries: LapVerseQueries,
}

/// The one mapping from Lap-Verse failures to API errors.
pub fn api_error(e: LapVerseError) -> ApiError {
    let message = e.to_string();
    match e {
        LapVerseError::BadInput(_) => ApiError::BadUserInput(message),
        LapVerseError::TenantNotFound(_) => ApiError::TenantNotFound(message),
        LapVerseError::NotFound(_) => ApiError::NotFound(message),
        LapVerseError::FeatureNotAvailable { .. } => ApiError::FeatureNotAvailable(message),
        LapVerseError::MarginGuardrailExceeded { .. } => ApiError::MarginGuardrailExceeded(message),
        LapVerseError::ErrorBudgetExhausted { .. } => ApiError::ErrorBudgetExhausted(message),
        LapVerseError::IdempotencyConflict => ApiError::IdempotencyConflict,
        LapVerseError::Conflict(_) => ApiError::Conflict(message),
        LapVerseError::Busy(_) => ApiError::Busy(message),
        LapVerseError::RefusedEarlier { code, reason } => ApiError::from_stored(&code, reason),
        LapVerseError::Storage(detail) => ApiError::internal("lap-verse store", detail),
        LapVerseError::UnreadableEvent { .. } => ApiError::internal("lap-verse event", message),
    }
}

/// Roles whose platform keys may read every tenant's work (operators and auditors). A key bound
/// to a tenant reads only that tenant, whatever its role.
pub const READ_ANY_TENANT: [Role; 3] = [Role::Admin, Role::Finance, Role::Auditor];

/// Whether `p` may submit work for `tenant`: its own tenant, or a platform admin (any tenant).
pub fn may_act_for(p: &Principal, tenant: &str) -> Result<(), ApiError> {
    p.may_reach(tenant, &[Role::Admin])
}

/// Whether `p` may read `tenant`'s work and reports: its own tenant, or a platform admin,
/// finance or auditor key.
pub fn may_read(p: &Principal, tenant: &str) -> Result<(), ApiError> {
    p.may_reach(tenant, &READ_ANY_TENANT)
}
