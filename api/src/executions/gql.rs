//! Executions over GraphQL: `reportExecutions` (as the REST path, one result per report) and
//! `eraseDataSubject` (tenant admins for their tenant; platform admins name the tenant).

use agora_commands::executions::{EraseError, ReportOutcome};
use agora_domain::access::Role;
use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::graphql::error::ApiError;
use crate::graphql::schema::{caller, metadata, resolve_key, state};

type Res<T> = Result<T, async_graphql::Error>;

const ANY_ROLE: &[Role] = &Role::ALL;

#[derive(SimpleObject)]
pub struct ExecutionProblemGql {
    /// The report's field (`durationMs`, `tokens/0/model`; empty when the report did not parse).
    pub field: String,
    pub message: String,
}

#[derive(SimpleObject)]
pub struct ExecutionReportResult {
    pub execution_id: String,
    /// `STORED`, `DUPLICATE`, `CONFLICT` or `INVALID`.
    pub outcome: String,
    pub problems: Vec<ExecutionProblemGql>,
}

impl From<ReportOutcome> for ExecutionReportResult {
    fn from(o: ReportOutcome) -> Self {
        Self {
            execution_id: o.execution_id,
            outcome: o.outcome,
            problems: o
                .problems
                .into_iter()
                .map(|p| ExecutionProblemGql {
                    field: p.field,
                    message: p.message,
                })
                .collect(),
        }
    }
}

#[derive(SimpleObject)]
pub struct ReportExecutionsResult {
    pub stored: i32,
    pub duplicates: i32,
    pub conflicts: i32,
    pub invalid: i32,
    pub results: Vec<ExecutionReportResult>,
}

#[derive(SimpleObject)]
pub struct DataSubjectErasure {
    /// The subject's reference (a digest of tenant and user id).
    pub subject: String,
    pub erased_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ExecutionMutation;

#[Object]
impl ExecutionMutation {
    /// Reports executions of `agentId` for the caller's tenant (the seed's `AgentExecution`
    /// fields, camelCase; at most 1,000). Idempotent by each report's `executionId` (the key
    /// is required as for every mutation; a re-send under any key is a duplicate).
    async fn report_executions(
        &self,
        ctx: &Context<'_>,
        agent_id: String,
        executions: async_graphql::Json<Vec<serde_json::Value>>,
        idempotency_key: Option<String>,
    ) -> Res<ReportExecutionsResult> {
        let p = caller(ctx, ANY_ROLE)?;
        resolve_key(ctx, idempotency_key)?;
        let results = super::ingest(state(ctx), p, &agent_id, executions.0).await?;
        let count = |code: &str| {
            i32::try_from(results.iter().filter(|r| r.outcome == code).count()).unwrap_or(i32::MAX)
        };
        Ok(ReportExecutionsResult {
            stored: count("STORED"),
            duplicates: count("DUPLICATE"),
            conflicts: count("CONFLICT"),
            invalid: count("INVALID"),
            results: results.into_iter().map(Into::into).collect(),
        })
    }

    /// Erases a user's personal data: recorded as an event, then the user's key deleted, so
    /// nothing of theirs opens again and new reports for them are refused. Tenant admins for
    /// their own tenant; platform admins give `tenant`. Repeating it changes nothing.
    async fn erase_data_subject(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        reason: String,
        tenant: Option<String>,
        idempotency_key: Option<String>,
    ) -> Res<DataSubjectErasure> {
        let p = caller(ctx, &[Role::Admin])?;
        let tenant = match tenant {
            Some(t) if p.is_platform() => t,
            Some(t) if t == p.tenant => t,
            Some(_) => {
                return Err(ApiError::Forbidden(
                    "only platform admins erase another tenant's users".into(),
                )
                .into())
            }
            None => p.tenant.clone(),
        };
        let key = resolve_key(ctx, idempotency_key)?;
        let meta = metadata(ctx, p, &key)?;
        let (subject, erased_at) = state(ctx)
            .executions
            .erase_subject(
                &tenant,
                &user_id,
                &format!("{}/{}", p.tenant, p.name),
                &reason,
                &meta,
            )
            .await
            .map_err(|e| match e {
                EraseError::Refused(r) => ApiError::BadUserInput(r.to_string()),
                EraseError::BadUserId => ApiError::BadUserInput(e.to_string()),
                EraseError::Storage(detail) => ApiError::internal("erasure", detail),
            })?;
        Ok(DataSubjectErasure { subject, erased_at })
    }
}
