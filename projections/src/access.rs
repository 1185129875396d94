//! API keys as a read model (`rm_api_keys`): who holds which key, its role and tenant, when it
//! was issued, when it expires and whether it was revoked. Never the token or its hash.

use agora_commands::store::StoredEvent;
use agora_domain::access::{AccessEvent, Role};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::{AnyPool, Row};

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub const NAME: &str = "api_keys";
const VERSION: i64 = 1;
/// Most keys one page returns.
pub const MAX_PAGE: i64 = 200;

const KEYS_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    key_id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    role TEXT NOT NULL,
    tenant TEXT NOT NULL,
    issued_at_us BIGINT NOT NULL,
    expires_at_us BIGINT,
    revoked_at_us BIGINT,
    global_position BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {t}_tenant ON {t} (tenant, key_id)",
];

/// The API-key projection.
#[derive(Clone, Debug)]
pub struct ApiKeyProjection {
    table: String,
}

impl Default for ApiKeyProjection {
    fn default() -> Self {
        Self::new(LIVE_PREFIX)
    }
}

impl ApiKeyProjection {
    pub fn new(prefix: &str) -> Self {
        Self {
            table: format!("{prefix}api_keys"),
        }
    }
}

#[async_trait]
impl Projection for ApiKeyProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![TableSpec::new(self.table.clone(), KEYS_DDL)]
    }

    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        if event.aggregate_type != "api_key" {
            return Ok(());
        }
        let decoded: AccessEvent = serde_json::from_value(event.payload.clone())
            .map_err(|e| ProjectionError::decode(event, e))?;
        match decoded {
            AccessEvent::ApiKeyIssued {
                principal,
                role,
                tenant,
                expires_at,
                occurred_at,
                ..
            } => {
                sqlx::query(&format!(
                    "INSERT INTO {} (key_id, principal, role, tenant, issued_at_us, expires_at_us, \
                     global_position) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    self.table
                ))
                .bind(&event.aggregate_id)
                .bind(principal)
                .bind(role.as_str())
                .bind(tenant)
                .bind(occurred_at.timestamp_micros())
                .bind(expires_at.map(|e| e.timestamp_micros()))
                .bind(event.position.global_position)
                .execute(&mut *tx)
                .await?;
            }
            AccessEvent::ApiKeyRevoked { occurred_at } => {
                sqlx::query(&format!(
                    "UPDATE {} SET revoked_at_us = $1 WHERE key_id = $2",
                    self.table
                ))
                .bind(occurred_at.timestamp_micros())
                .bind(&event.aggregate_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(())
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::new(prefix))
    }
}

/// One key as listed to an administrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub key_id: String,
    pub principal: String,
    pub role: Role,
    pub tenant: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Reads of `rm_api_keys`.
#[derive(Clone)]
pub struct ApiKeyQueries {
    pool: AnyPool,
    table: String,
}

fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

impl ApiKeyQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            table: format!("{LIVE_PREFIX}api_keys"),
        }
    }

    /// Keys ordered by id after `after`, of one tenant or (None) of every tenant.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ApiKeyRow>, ProjectionError> {
        let columns = "key_id, principal, role, tenant, issued_at_us, expires_at_us, revoked_at_us";
        let after = after.unwrap_or("");
        let limit = limit.clamp(1, MAX_PAGE);
        let rows = match tenant {
            Some(t) => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM {} WHERE tenant = $1 AND key_id > $2 \
                     ORDER BY key_id LIMIT $3",
                    self.table
                ))
                .bind(t)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM {} WHERE key_id > $1 ORDER BY key_id LIMIT $2",
                    self.table
                ))
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(2)?;
                Ok(ApiKeyRow {
                    key_id: r.try_get(0)?,
                    principal: r.try_get(1)?,
                    role: Role::parse(&role)
                        .map_err(|e| ProjectionError::Invariant(format!("role {role:?}: {e}")))?,
                    tenant: r.try_get(3)?,
                    issued_at: time(r.try_get(4)?),
                    expires_at: r.try_get::<Option<i64>, _>(5)?.map(time),
                    revoked_at: r.try_get::<Option<i64>, _>(6)?.map(time),
                })
            })
            .collect()
    }
}
