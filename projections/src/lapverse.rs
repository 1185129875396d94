//! Lap-Verse read models: every task and round with its status (`rm_lv_work`), tenants
//! (`rm_lv_tenants`) and webhook deliveries (`rm_lv_deliveries`); plus the SLO counts and the
//! chargeback report (the latter read from the ledger's history, so it is the journal).

use std::collections::BTreeMap;

use agora_commands::lapverse::{OutcomeCounts, OutcomeSource};
use agora_commands::store::StoredEvent;
use agora_domain::money::Money;
use agora_domain::tenancy::competition::CompetitionEvent;
use agora_domain::tenancy::delivery::DeliveryEvent;
use agora_domain::tenancy::lifecycle::{LifecycleEvent, Transition};
use agora_domain::tenancy::slo::{EventCounts, WindowCounts};
use agora_domain::tenancy::task::TaskEvent;
use agora_domain::tenancy::tenant::TenantEvent;
use async_trait::async_trait;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use sqlx::{AnyPool, Row};

use crate::engine::{Projection, ProjectionError, ReadTx, TableSpec, LIVE_PREFIX};

pub const NAME: &str = "lapverse";
const VERSION: i64 = 1;
/// Most rows a list query returns.
pub const MAX_LIST: i64 = 200;

const WORK_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    tenant TEXT NOT NULL,
    task_type TEXT,
    priority TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    cost TEXT NOT NULL,
    cost_center TEXT NOT NULL,
    tags TEXT NOT NULL,
    variant TEXT,
    competitors TEXT,
    production TEXT,
    last_error TEXT,
    retry_at_us BIGINT,
    accepted_at_us BIGINT NOT NULL,
    started_at_us BIGINT,
    finished_at_us BIGINT,
    duration_ms BIGINT,
    result TEXT,
    champion TEXT,
    win_rate_delta TEXT,
    promoted BIGINT,
    global_position BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {t}_finished ON {t} (tenant, finished_at_us)",
    "CREATE INDEX IF NOT EXISTS {t}_list ON {t} (kind, tenant, global_position)",
];

const TENANTS_DDL: &[&str] = &["CREATE TABLE IF NOT EXISTS {t} (
    tenant TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    mrr TEXT NOT NULL,
    cost_center TEXT NOT NULL,
    production TEXT NOT NULL,
    registered_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL)"];

const DELIVERIES_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {t} (
    delivery_id TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    event TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    reason TEXT,
    updated_at_us BIGINT NOT NULL,
    global_position BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {t}_tenant ON {t} (tenant, global_position)",
];

#[derive(Clone, Debug)]
struct Tables {
    work: String,
    tenants: String,
    deliveries: String,
}

impl Tables {
    fn new(prefix: &str) -> Self {
        Self {
            work: format!("{prefix}lv_work"),
            tenants: format!("{prefix}lv_tenants"),
            deliveries: format!("{prefix}lv_deliveries"),
        }
    }
}

/// The Lap-Verse projection.
#[derive(Clone, Debug)]
pub struct LapVerseProjection {
    t: Tables,
}

impl Default for LapVerseProjection {
    fn default() -> Self {
        Self::new(LIVE_PREFIX)
    }
}

impl LapVerseProjection {
    pub fn new(prefix: &str) -> Self {
        Self {
            t: Tables::new(prefix),
        }
    }
}

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn json(event: &StoredEvent, v: &impl serde::Serialize) -> Result<String, ProjectionError> {
    serde_json::to_string(v).map_err(|e| ProjectionError::decode(event, e))
}

fn decode<T: serde::de::DeserializeOwned>(event: &StoredEvent) -> Result<T, ProjectionError> {
    serde_json::from_value(event.payload.clone()).map_err(|e| ProjectionError::decode(event, e))
}

#[async_trait]
impl Projection for LapVerseProjection {
    fn name(&self) -> &str {
        NAME
    }

    fn version(&self) -> i64 {
        VERSION
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![
            TableSpec::new(self.t.work.clone(), WORK_DDL),
            TableSpec::new(self.t.tenants.clone(), TENANTS_DDL),
            TableSpec::new(self.t.deliveries.clone(), DELIVERIES_DDL),
        ]
    }

    async fn apply(&self, tx: &mut ReadTx, event: &StoredEvent) -> Result<(), ProjectionError> {
        match event.aggregate_type.as_str() {
            "task" => self.fold_task(tx, event, decode(event)?).await,
            "competition" => self.fold_competition(tx, event, decode(event)?).await,
            "tenant" => self.fold_tenant(tx, event, decode(event)?).await,
            "webhook_delivery" => self.fold_delivery(tx, event, decode(event)?).await,
            _ => Ok(()),
        }
    }

    fn with_prefix(&self, prefix: &str) -> Box<dyn Projection> {
        Box::new(Self::new(prefix))
    }
}

/// Fields of a completed task or round.
struct Completion<'a> {
    attempt: u32,
    duration_ms: u64,
    result: String,
    champion: Option<&'a str>,
    win_rate_delta: Option<String>,
    promoted: Option<bool>,
    at: DateTime<Utc>,
}

/// Fields of a newly accepted task or round.
struct NewWork<'a> {
    kind: &'a str,
    tenant: &'a str,
    task_type: Option<&'a str>,
    priority: &'a str,
    description: &'a str,
    cost: Money,
    cost_center: &'a str,
    tags: String,
    variant: Option<&'a str>,
    competitors: Option<String>,
    production: Option<&'a str>,
    at: DateTime<Utc>,
}

impl LapVerseProjection {
    async fn insert_work(
        &self,
        tx: &mut ReadTx,
        event: &StoredEvent,
        w: NewWork<'_>,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "INSERT INTO {} (id, kind, tenant, task_type, priority, description, status, attempts, \
             cost, cost_center, tags, variant, competitors, production, accepted_at_us, global_position) \
             VALUES ($1, $2, $3, $4, $5, $6, 'accepted', 0, $7, $8, $9, $10, $11, $12, $13, $14)",
            self.t.work
        ))
        .bind(&event.aggregate_id)
        .bind(w.kind)
        .bind(w.tenant)
        .bind(w.task_type)
        .bind(w.priority)
        .bind(w.description)
        .bind(w.cost.to_string())
        .bind(w.cost_center)
        .bind(w.tags)
        .bind(w.variant)
        .bind(w.competitors)
        .bind(w.production)
        .bind(us(w.at))
        .bind(event.position.global_position)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// The lifecycle columns of every task and round event but acceptance and completion.
    async fn step(
        &self,
        tx: &mut ReadTx,
        id: &str,
        step: Option<Transition<'_>>,
    ) -> Result<(), ProjectionError> {
        let t = &self.t.work;
        // One statement shape for every step: unchanged columns are written back as they are.
        let (status, attempts, error, retry_at, started, finished) = match step {
            None | Some(Transition::Completed { .. }) => return Ok(()),
            Some(Transition::Started {
                attempt,
                occurred_at,
            }) => (
                "running",
                Some(attempt),
                None,
                None,
                Some(us(occurred_at)),
                None,
            ),
            Some(Transition::AttemptFailed {
                attempt,
                reason,
                retry_at,
                ..
            }) => {
                let status = if retry_at.is_some() {
                    "retrying"
                } else {
                    "running"
                };
                (
                    status,
                    Some(attempt),
                    Some(reason.to_owned()),
                    retry_at.map(us),
                    None,
                    None,
                )
            }
            Some(Transition::Failed {
                attempts,
                reason,
                occurred_at,
            }) => (
                "failed",
                Some(attempts),
                Some(reason.to_owned()),
                None,
                None,
                Some(us(occurred_at)),
            ),
            Some(Transition::Rejected {
                code,
                reason,
                occurred_at,
            }) => (
                "rejected",
                None,
                Some(format!("{code}: {reason}")),
                None,
                None,
                Some(us(occurred_at)),
            ),
        };
        sqlx::query(&format!(
            "UPDATE {t} SET status = $2, attempts = COALESCE($3, attempts), \
             last_error = COALESCE($4, last_error), retry_at_us = $5, \
             started_at_us = COALESCE($6, started_at_us), \
             finished_at_us = COALESCE($7, finished_at_us) WHERE id = $1"
        ))
        .bind(id)
        .bind(status)
        .bind(attempts.map(i64::from))
        .bind(error)
        .bind(retry_at)
        .bind(started)
        .bind(finished)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn complete(
        &self,
        tx: &mut ReadTx,
        id: &str,
        done: Completion<'_>,
    ) -> Result<(), ProjectionError> {
        sqlx::query(&format!(
            "UPDATE {} SET status = 'completed', attempts = $2, duration_ms = $3, result = $4, \
             champion = $5, win_rate_delta = $6, promoted = $7, finished_at_us = $8, \
             retry_at_us = NULL WHERE id = $1",
            self.t.work
        ))
        .bind(id)
        .bind(i64::from(done.attempt))
        .bind(done.duration_ms as i64)
        .bind(done.result)
        .bind(done.champion)
        .bind(done.win_rate_delta)
        .bind(done.promoted.map(i64::from))
        .bind(us(done.at))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn fold_task(
        &self,
        tx: &mut ReadTx,
        event: &StoredEvent,
        e: TaskEvent,
    ) -> Result<(), ProjectionError> {
        let id = event.aggregate_id.as_str();
        match e {
            TaskEvent::TaskAccepted { spec, occurred_at } => {
                let w = NewWork {
                    kind: "task",
                    tenant: &spec.tenant,
                    task_type: Some(spec.task_type.as_str()),
                    priority: spec.priority.as_str(),
                    description: &spec.description,
                    cost: spec.cost,
                    cost_center: spec.tags.cost_center.as_str(),
                    tags: json(event, &spec.tags)?,
                    variant: spec.variant.map(|v| v.name()),
                    competitors: None,
                    production: None,
                    at: occurred_at,
                };
                self.insert_work(tx, event, w).await
            }
            TaskEvent::TaskCompleted {
                attempt,
                output,
                duration_ms,
                occurred_at,
            } => {
                let done = Completion {
                    attempt,
                    duration_ms,
                    result: json(event, &output)?,
                    champion: None,
                    win_rate_delta: None,
                    promoted: None,
                    at: occurred_at,
                };
                self.complete(tx, id, done).await
            }
            other => self.step(tx, id, other.transition()).await,
        }
    }

    async fn fold_competition(
        &self,
        tx: &mut ReadTx,
        event: &StoredEvent,
        e: CompetitionEvent,
    ) -> Result<(), ProjectionError> {
        let id = event.aggregate_id.as_str();
        match e {
            CompetitionEvent::CompetitionAccepted { spec, occurred_at } => {
                let w = NewWork {
                    kind: "competition",
                    tenant: &spec.tenant,
                    task_type: None,
                    priority: spec.priority.as_str(),
                    description: &spec.content,
                    cost: spec.cost,
                    cost_center: spec.tags.cost_center.as_str(),
                    tags: json(event, &spec.tags)?,
                    variant: None,
                    competitors: Some(json(event, &spec.competitors)?),
                    production: Some(spec.production.name()),
                    at: occurred_at,
                };
                self.insert_work(tx, event, w).await
            }
            CompetitionEvent::CompetitionCompleted {
                attempt,
                result,
                duration_ms,
                occurred_at,
            } => {
                let done = Completion {
                    attempt,
                    duration_ms,
                    result: json(event, &result)?,
                    champion: Some(result.champion.name()),
                    win_rate_delta: Some(result.win_rate_delta.to_string()),
                    promoted: Some(result.promote),
                    at: occurred_at,
                };
                self.complete(tx, id, done).await
            }
            other => self.step(tx, id, other.transition()).await,
        }
    }

    async fn fold_tenant(
        &self,
        tx: &mut ReadTx,
        event: &StoredEvent,
        e: TenantEvent,
    ) -> Result<(), ProjectionError> {
        let t = &self.t.tenants;
        let id = event.aggregate_id.as_str();
        let (sql, value, at) = match e {
            TenantEvent::TenantRegistered {
                name,
                mrr,
                cost_center,
                occurred_at,
                ..
            } => {
                sqlx::query(&format!(
                    "INSERT INTO {t} (tenant, name, mrr, cost_center, production, registered_at_us, \
                     updated_at_us) VALUES ($1, $2, $3, $4, 'balanced', $5, $5)"
                ))
                .bind(id)
                .bind(name.as_str())
                .bind(mrr.to_string())
                .bind(cost_center.as_str())
                .bind(us(occurred_at))
                .execute(&mut *tx)
                .await?;
                return Ok(());
            }
            TenantEvent::MrrChanged {
                to, occurred_at, ..
            } => ("mrr", to.to_string(), occurred_at),
            TenantEvent::CostCenterChanged {
                to, occurred_at, ..
            } => ("cost_center", to.as_str().to_owned(), occurred_at),
            TenantEvent::VariantPromoted {
                to, occurred_at, ..
            } => ("production", to.name().to_owned(), occurred_at),
            _ => return Ok(()),
        };
        sqlx::query(&format!(
            "UPDATE {t} SET {sql} = $2, updated_at_us = $3 WHERE tenant = $1"
        ))
        .bind(id)
        .bind(value)
        .bind(us(at))
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn fold_delivery(
        &self,
        tx: &mut ReadTx,
        event: &StoredEvent,
        e: DeliveryEvent,
    ) -> Result<(), ProjectionError> {
        let t = &self.t.deliveries;
        let id = event.aggregate_id.as_str();
        let insert = format!(
            "INSERT INTO {t} (delivery_id, notification_id, tenant, event, webhook_id, url, status, \
             attempts, reason, updated_at_us, global_position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (delivery_id) DO UPDATE SET status = $7, attempts = $8, reason = $9, \
             updated_at_us = $10"
        );
        let update = format!(
            "UPDATE {t} SET status = $2, attempts = $3, reason = COALESCE($4, reason), \
             updated_at_us = $5 WHERE delivery_id = $1"
        );
        match e {
            DeliveryEvent::DeliveryAttempted {
                notification_id,
                tenant,
                event: kind,
                webhook_id,
                url,
                attempt,
                outcome,
                occurred_at,
            } => {
                let reason = match &outcome {
                    agora_domain::tenancy::delivery::AttemptOutcome::Delivered { .. } => None,
                    agora_domain::tenancy::delivery::AttemptOutcome::Failed { reason, .. } => {
                        Some(reason.clone())
                    }
                };
                sqlx::query(&insert)
                    .bind(id)
                    .bind(notification_id)
                    .bind(tenant)
                    .bind(kind.as_str())
                    .bind(webhook_id.as_str())
                    .bind(url.as_str())
                    .bind("pending")
                    .bind(i64::from(attempt))
                    .bind(reason)
                    .bind(us(occurred_at))
                    .bind(event.position.global_position)
                    .execute(&mut *tx)
                    .await?;
            }
            DeliveryEvent::DeliverySkipped {
                notification_id,
                tenant,
                event: kind,
                webhook_id,
                url,
                reason,
                occurred_at,
            } => {
                sqlx::query(&insert)
                    .bind(id)
                    .bind(notification_id)
                    .bind(tenant)
                    .bind(kind.as_str())
                    .bind(webhook_id.as_str())
                    .bind(url.as_str())
                    .bind("skipped")
                    .bind(0i64)
                    .bind(Some(reason))
                    .bind(us(occurred_at))
                    .bind(event.position.global_position)
                    .execute(&mut *tx)
                    .await?;
            }
            DeliveryEvent::DeliverySucceeded {
                attempts,
                occurred_at,
                ..
            } => {
                sqlx::query(&update)
                    .bind(id)
                    .bind("succeeded")
                    .bind(i64::from(attempts))
                    .bind(None::<String>)
                    .bind(us(occurred_at))
                    .execute(&mut *tx)
                    .await?;
            }
            DeliveryEvent::DeliveryAbandoned {
                attempts,
                reason,
                occurred_at,
            } => {
                sqlx::query(&update)
                    .bind(id)
                    .bind("abandoned")
                    .bind(i64::from(attempts))
                    .bind(Some(reason))
                    .bind(us(occurred_at))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        Ok(())
    }
}

/// One task or round as the read model holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkRow {
    pub id: String,
    pub kind: String,
    pub tenant: String,
    pub task_type: Option<String>,
    pub priority: String,
    pub description: String,
    pub status: String,
    pub attempts: i64,
    pub cost: Money,
    pub cost_center: String,
    pub tags: serde_json::Value,
    pub variant: Option<String>,
    pub competitors: Option<serde_json::Value>,
    pub production: Option<String>,
    pub last_error: Option<String>,
    pub retry_at: Option<DateTime<Utc>>,
    pub accepted_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub result: Option<serde_json::Value>,
    pub champion: Option<String>,
    pub win_rate_delta: Option<String>,
    pub promoted: Option<bool>,
    pub global_position: i64,
}

/// A tenant row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRow {
    pub tenant: String,
    pub name: String,
    pub mrr: Money,
    pub cost_center: String,
    pub production: String,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A webhook delivery row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRow {
    pub delivery_id: String,
    pub notification_id: String,
    pub tenant: String,
    pub event: String,
    pub webhook_id: String,
    pub url: String,
    pub status: String,
    pub attempts: i64,
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One chargeback line: a tenant's cost center in one month, from the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargebackLine {
    pub tenant: String,
    pub cost_center: String,
    /// `YYYY-MM` (UTC).
    pub month: String,
    /// Charges minus refunds.
    pub amount: Money,
    pub charges: i64,
    pub refunds: i64,
}

fn time(v: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(v).single().unwrap_or_default()
}

fn parse_money(s: &str) -> Result<Money, ProjectionError> {
    Money::parse(s).map_err(|e| ProjectionError::Invariant(format!("bad amount {s:?}: {e}")))
}

fn parse_json(s: Option<String>) -> Option<serde_json::Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

const WORK_COLUMNS: &str = "id, kind, tenant, task_type, priority, description, status, attempts, \
    cost, cost_center, tags, variant, competitors, production, last_error, retry_at_us, \
    accepted_at_us, started_at_us, finished_at_us, duration_ms, result, champion, win_rate_delta, \
    promoted, global_position";

fn work_row(r: &sqlx::any::AnyRow) -> Result<WorkRow, ProjectionError> {
    let cost: String = r.try_get("cost")?;
    let tags: String = r.try_get("tags")?;
    Ok(WorkRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        tenant: r.try_get("tenant")?,
        task_type: r.try_get("task_type")?,
        priority: r.try_get("priority")?,
        description: r.try_get("description")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        cost: parse_money(&cost)?,
        cost_center: r.try_get("cost_center")?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        variant: r.try_get("variant")?,
        competitors: parse_json(r.try_get("competitors")?),
        production: r.try_get("production")?,
        last_error: r.try_get("last_error")?,
        retry_at: r.try_get::<Option<i64>, _>("retry_at_us")?.map(time),
        accepted_at: time(r.try_get("accepted_at_us")?),
        started_at: r.try_get::<Option<i64>, _>("started_at_us")?.map(time),
        finished_at: r.try_get::<Option<i64>, _>("finished_at_us")?.map(time),
        duration_ms: r.try_get("duration_ms")?,
        result: parse_json(r.try_get("result")?),
        champion: r.try_get("champion")?,
        win_rate_delta: r.try_get("win_rate_delta")?,
        promoted: r.try_get::<Option<i64>, _>("promoted")?.map(|p| p != 0),
        global_position: r.try_get("global_position")?,
    })
}

/// `YYYY-MM` of an instant.
pub fn month_of(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

/// Queries over the live Lap-Verse tables (and the ledger's history for chargeback).
#[derive(Clone, Debug)]
pub struct LapVerseQueries {
    pool: AnyPool,
    t: Tables,
    ledger_history: String,
}

impl LapVerseQueries {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            t: Tables::new(LIVE_PREFIX),
            ledger_history: format!("{LIVE_PREFIX}ledger_history"),
        }
    }

    pub async fn work(&self, id: &str) -> Result<Option<WorkRow>, ProjectionError> {
        let row = sqlx::query(&format!(
            "SELECT {WORK_COLUMNS} FROM {} WHERE id = $1",
            self.t.work
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(work_row).transpose()
    }

    /// Newest first, before a global position (keyset paging).
    pub async fn list_work(
        &self,
        kind: &str,
        tenant: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<WorkRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT {WORK_COLUMNS} FROM {} WHERE kind = $1 AND ($2 IS NULL OR tenant = $2) \
             AND global_position < $3 ORDER BY global_position DESC LIMIT $4",
            self.t.work
        ))
        .bind(kind)
        .bind(tenant)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, MAX_LIST))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(work_row).collect()
    }

    /// Completed rounds, oldest first (the export's rows).
    pub async fn completed_competitions(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<WorkRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT {WORK_COLUMNS} FROM {} WHERE kind = 'competition' AND status = 'completed' \
             AND ($1 IS NULL OR tenant = $1) ORDER BY global_position ASC",
            self.t.work
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(work_row).collect()
    }

    pub async fn tenants(&self) -> Result<Vec<TenantRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT tenant, name, mrr, cost_center, production, registered_at_us, updated_at_us \
             FROM {} ORDER BY tenant",
            self.t.tenants
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let mrr: String = r.try_get(2)?;
                Ok(TenantRow {
                    tenant: r.try_get(0)?,
                    name: r.try_get(1)?,
                    mrr: parse_money(&mrr)?,
                    cost_center: r.try_get(3)?,
                    production: r.try_get(4)?,
                    registered_at: time(r.try_get(5)?),
                    updated_at: time(r.try_get(6)?),
                })
            })
            .collect()
    }

    pub async fn deliveries(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, ProjectionError> {
        let rows = sqlx::query(&format!(
            "SELECT delivery_id, notification_id, tenant, event, webhook_id, url, status, attempts, \
             reason, updated_at_us FROM {} WHERE tenant = $1 ORDER BY global_position DESC LIMIT $2",
            self.t.deliveries
        ))
        .bind(tenant)
        .bind(limit.clamp(1, MAX_LIST))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryRow {
                    delivery_id: r.try_get(0)?,
                    notification_id: r.try_get(1)?,
                    tenant: r.try_get(2)?,
                    event: r.try_get(3)?,
                    webhook_id: r.try_get(4)?,
                    url: r.try_get(5)?,
                    status: r.try_get(6)?,
                    attempts: r.try_get(7)?,
                    reason: r.try_get(8)?,
                    updated_at: time(r.try_get(9)?),
                })
            })
            .collect()
    }

    /// Charges and refunds per tenant × cost center × month, summed exactly from the journal's
    /// postings on `tenant:<tenant>:cc:<cost center>` accounts.
    pub async fn chargeback(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<ChargebackLine>, ProjectionError> {
        // An exact prefix comparison, not `LIKE`: a tenant id may hold `_`, which `LIKE` reads
        // as a wildcard and so would match other tenants' accounts (and not a range either,
        // whose order would depend on the database's collation).
        let prefix = match tenant {
            Some(t) => format!("tenant:{t}:cc:"),
            None => "tenant:".to_owned(),
        };
        let rows = sqlx::query(&format!(
            "SELECT account, amount, occurred_at_us FROM {} \
              WHERE substr(account, 1, length($1)) = $1 ORDER BY account, seq",
            self.ledger_history
        ))
        .bind(&prefix)
        .fetch_all(&self.pool)
        .await?;
        let mut lines: BTreeMap<(String, String, String), ChargebackLine> = BTreeMap::new();
        for r in rows {
            let account: String = r.try_get(0)?;
            let amount: String = r.try_get(1)?;
            let at = time(r.try_get(2)?);
            let parts: Vec<&str> = account.split(':').collect();
            let ["tenant", tenant, "cc", cost_center] = parts.as_slice() else {
                continue;
            };
            let amount = parse_money(&amount)?;
            let month = month_of(at);
            let line = lines
                .entry((tenant.to_string(), cost_center.to_string(), month.clone()))
                .or_insert_with(|| ChargebackLine {
                    tenant: tenant.to_string(),
                    cost_center: cost_center.to_string(),
                    month,
                    amount: Money::ZERO,
                    charges: 0,
                    refunds: 0,
                });
            line.amount = line
                .amount
                .checked_add(amount)
                .map_err(|e| ProjectionError::Invariant(e.to_string()))?;
            if amount.is_negative() {
                line.refunds += 1;
            } else {
                line.charges += 1;
            }
        }
        Ok(lines.into_values().collect())
    }
}

#[async_trait]
impl OutcomeSource for LapVerseQueries {
    /// Finished work (completed = good, failed = bad; rejected requests are not SLO events) of
    /// the tenant in the 5 m, 30 m, 1 h, 6 h windows and the SLO period ending at `now`.
    async fn counts(
        &self,
        tenant: &str,
        now: DateTime<Utc>,
        period_days: u32,
    ) -> Result<OutcomeCounts, String> {
        let at = |minutes: i64| us(now - Duration::minutes(minutes));
        let period_start = us(now - Duration::days(i64::from(period_days)));
        let mut sums = String::new();
        for w in ["$3", "$4", "$5", "$6", "$2"] {
            sums.push_str(&format!(
                "CAST(COALESCE(SUM(CASE WHEN finished_at_us >= {w} THEN 1 ELSE 0 END), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(CASE WHEN finished_at_us >= {w} AND status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT), "
            ));
        }
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant = $1 AND finished_at_us >= $2 AND finished_at_us <= $7 \
             AND status IN ('completed', 'failed')",
            sums.trim_end_matches(", "),
            self.t.work
        );
        let row = sqlx::query(&sql)
            .bind(tenant)
            .bind(period_start)
            .bind(at(5))
            .bind(at(30))
            .bind(at(60))
            .bind(at(360))
            .bind(us(now))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
        let pair = |i: usize| -> Result<EventCounts, String> {
            let total: i64 = row.try_get(2 * i).map_err(|e| e.to_string())?;
            let bad: i64 = row.try_get(2 * i + 1).map_err(|e| e.to_string())?;
            EventCounts::try_new((total - bad) as u64, total as u64).map_err(|e| e.to_string())
        };
        Ok(OutcomeCounts {
            windows: WindowCounts {
                five_minutes: pair(0)?,
                thirty_minutes: pair(1)?,
                one_hour: pair(2)?,
                six_hours: pair(3)?,
            },
            period: pair(4)?,
        })
    }
}
