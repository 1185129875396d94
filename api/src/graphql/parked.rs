//! Parked events over GraphQL (admin only): `parkedEvents`, `retryParkedEvent`,
//! `skipParkedEvent`. See [`crate::parked`].

use agora_domain::access::Role;
use agora_projections::parking::{ParkedEvent, MAX_PARKED_PAGE};
use async_graphql::{Context, Object, SimpleObject, ID};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::schema::{counted, metadata, platform_caller, resolve_key, state};

type Res<T> = Result<T, async_graphql::Error>;

/// An event a projection or process manager could not handle, parked after its retries.
#[derive(Clone, Debug, Serialize, Deserialize, SimpleObject)]
#[graphql(name = "ParkedEvent")]
pub struct ParkedEventNode {
    pub id: ID,
    /// The projection or process manager that parked it.
    pub runner: String,
    /// Global position of the event in the log.
    pub position: String,
    pub event_id: Option<String>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: String,
    pub event_type: String,
    pub event_version: String,
    /// The last error.
    pub error: String,
    pub attempts: i32,
    /// Microseconds since the Unix epoch.
    pub parked_at_us: String,
    /// `parked` (awaiting an operator) or `skipped`.
    pub status: String,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
}

impl From<ParkedEvent> for ParkedEventNode {
    fn from(p: ParkedEvent) -> Self {
        Self {
            id: ID(p.id.to_string()),
            runner: p.runner,
            position: p.global_position.to_string(),
            event_id: p.event_id,
            aggregate_type: p.aggregate_type,
            aggregate_id: p.aggregate_id,
            sequence: p.sequence.to_string(),
            event_type: p.event_type,
            event_version: p.event_version,
            error: p.error,
            attempts: i32::try_from(p.attempts).unwrap_or(i32::MAX),
            parked_at_us: p.parked_at_us.to_string(),
            status: p.status,
            resolved_by: p.resolved_by,
            resolution: p.resolution,
        }
    }
}

fn parse_id(id: &ID) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .map_err(|_| ApiError::BadUserInput(format!("invalid parked event id {:?}", id.as_str())))
}

#[derive(Default)]
pub struct ParkedQuery;

#[Object]
impl ParkedQuery {
    /// Parked events, newest first (admin): those awaiting an operator, or all with
    /// `includeResolved`; of one runner when `runner` is given. At most `first` (≤ 500).
    async fn parked_events(
        &self,
        ctx: &Context<'_>,
        runner: Option<String>,
        #[graphql(default = false)] include_resolved: bool,
        #[graphql(default = 100)] first: i32,
    ) -> Res<Vec<ParkedEventNode>> {
        platform_caller(ctx, &[Role::Admin])?;
        if !(1..=MAX_PARKED_PAGE).contains(&i64::from(first)) {
            return Err(
                ApiError::BadUserInput(format!("`first` must be 1..={MAX_PARKED_PAGE}")).into(),
            );
        }
        let rows = state(ctx)
            .parked
            .store
            .list(runner.as_deref(), include_resolved, i64::from(first))
            .await
            .map_err(|e| ApiError::internal("listing parked events", e))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct ParkedMutation;

#[Object]
impl ParkedMutation {
    /// Has the runner handle a parked event again (admin). On success the row is gone; if it
    /// fails again the row stays (`CONFLICT`).
    async fn retry_parked_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        idempotency_key: Option<String>,
    ) -> Res<ParkedEventNode> {
        let p = platform_caller(ctx, &[Role::Admin])?;
        let key = resolve_key(ctx, idempotency_key)?;
        let req = json!({"retryParkedEvent": id.as_str()});
        let s = state(ctx);
        Ok(s.idempotency
            .once(p, &key, &req, || async {
                let id = parse_id(&id)?;
                let done = s.parked.retry(id).await.map_err(ApiError::from);
                counted(s, "parked_event", done).map(ParkedEventNode::from)
            })
            .await?)
    }

    /// Lets the runner do without a parked event (admin): recorded as a `ParkedEventSkipped`
    /// event naming the caller and `reason`; the row is marked `skipped`.
    async fn skip_parked_event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
        idempotency_key: Option<String>,
    ) -> Res<ParkedEventNode> {
        let p = platform_caller(ctx, &[Role::Admin])?;
        let key = resolve_key(ctx, idempotency_key)?;
        let req = json!({"skipParkedEvent": {"id": id.as_str(), "reason": &reason}});
        let s = state(ctx);
        Ok(s.idempotency
            .once(p, &key, &req, || async {
                let id = parse_id(&id)?;
                let meta = metadata(ctx, p, &key)?;
                let done = s
                    .parked
                    .skip(id, &reason, &meta)
                    .await
                    .map_err(ApiError::from);
                counted(s, "parked_event_skip", done).map(ParkedEventNode::from)
            })
            .await?)
    }
}
