//! The durable queue (`lapverse_jobs`) and its workers.
//!
//! A job names an aggregate; the aggregate's events are the truth about the work, the row only
//! says "look at this again at `run_after`". Workers claim due rows under a lease
//! (`lease_owner`, `lease_until_us`) with one conditional `UPDATE`, so two workers — in one
//! process or several — never run the same job at once, and a job whose worker died is taken
//! over when its lease expires. Each queue runs at most `concurrency` jobs at a time.
//!
//! Attempts: a worker starts the next attempt (an event), runs it, and records completion or
//! the failure with its reason. After a failed attempt the aggregate schedules the retry
//! (1 s, 2 s, … after the failure; three attempts in all) and the job sleeps until then. A job
//! found mid-attempt after its lease expired records that attempt as interrupted first.
//!
//! Each queue is run by one process at a time (the lease `agora.queue:<queue>`, see
//! [`crate::lease`]); the row leases still guard the jobs across a takeover. While a job runs its
//! row lease is renewed every third of the lease, so a long job is never taken over while its
//! worker lives; a worker that finds its job taken stops running it. Due jobs are served
//! round-robin across tenants (a tenant's best job first, then every other tenant's best, and
//! so on), priority ordering each tenant's own jobs and the jobs of one round, so no tenant can
//! starve the others by flooding a queue or raising priorities. Done rows are deleted
//! [`DONE_RETENTION_MS`] after they finish (under the lease `agora.purge:lapverse_jobs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_domain::forecast::Strategy;
use agora_domain::tenancy::budget::WorkKind;
use agora_domain::tenancy::competition::{Competition, CompetitionCommand};
use agora_domain::tenancy::cost::FinOpsTags;
use agora_domain::tenancy::delivery::Notification;
use agora_domain::tenancy::lifecycle::{Lifecycle, Status};
use agora_domain::tenancy::task::{Task, TaskCommand};
use agora_domain::tenancy::tenant::{TenantCommand, WebhookEvent};
use agora_domain::tenancy::work::{self, Priority};
use chrono::{DateTime, Utc};
use sqlx::Row;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{LapVerse, LapVerseError};
use crate::bus::{CommandBus, CommandError};
use crate::lease::{LeaseError, Leases, PURGE_LEASE, QUEUE_LEASE};
use crate::metadata::CommandMetadata;
use crate::store::Store;

pub const QUEUE_TASKS: &str = "lapverse-tasks";
pub const QUEUE_COMPETITIONS: &str = "lapverse-self-compete";
pub const QUEUE_NOTIFY: &str = "lapverse-notify";
pub const QUEUES: [&str; 3] = [QUEUE_TASKS, QUEUE_COMPETITIONS, QUEUE_NOTIFY];
/// Actor stamped on the workers' commands.
pub const WORKER_ACTOR: &str = "worker:lapverse";
/// Why an attempt found running after its lease expired is recorded as failed.
pub const INTERRUPTED: &str = "interrupted: the worker stopped before the attempt finished";
/// How long a finished job's row is kept (its id guards against queueing it again).
pub const DONE_RETENTION_MS: i64 = 7 * 24 * 3_600 * 1_000;
/// How often the done rows are purged.
pub const DONE_PURGE_EVERY_MS: u64 = 60_000;
/// Rows deleted per purge statement.
pub const DONE_PURGE_BATCH: i64 = 1_000;
/// A running job's row lease is renewed every lease / this.
const LEASE_RENEWALS_PER_LEASE: u32 = 3;
/// The key of the lease of the done-row purge.
pub const JOBS_PURGE_LEASE: &str = "lapverse_jobs";

fn storage(e: sqlx::Error) -> LapVerseError {
    LapVerseError::Storage(e.to_string())
}

fn priority_rank(p: Priority) -> i64 {
    match p {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Critical => 3,
    }
}

fn queue_of(kind: WorkKind) -> &'static str {
    match kind {
        WorkKind::Task => QUEUE_TASKS,
        WorkKind::Competition => QUEUE_COMPETITIONS,
    }
}

/// Queues a task or round (no-op when the job exists, whatever its state).
pub async fn enqueue_work(
    store: &Store,
    kind: WorkKind,
    id: &str,
    tenant: &str,
    priority: Priority,
    at: DateTime<Utc>,
) -> Result<(), LapVerseError> {
    insert_job(
        store,
        &format!("{}:{id}", kind.as_str()),
        queue_of(kind),
        id,
        tenant,
        priority_rank(priority),
        None,
        at,
    )
    .await
}

/// Queues a webhook notification (no-op when already queued or sent).
pub async fn enqueue_notification(
    store: &Store,
    notification: &Notification,
) -> Result<(), LapVerseError> {
    let payload =
        serde_json::to_string(notification).map_err(|e| LapVerseError::Storage(e.to_string()))?;
    insert_job(
        store,
        &format!("notify:{}", notification.id),
        QUEUE_NOTIFY,
        &notification.id,
        &notification.tenant,
        1,
        Some(payload),
        notification.occurred_at,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn insert_job(
    store: &Store,
    job_id: &str,
    queue: &str,
    aggregate_id: &str,
    tenant: &str,
    priority: i64,
    payload: Option<String>,
    at: DateTime<Utc>,
) -> Result<(), LapVerseError> {
    let now = Utc::now().timestamp_micros();
    store.write_read_models(sqlx::query(
        "INSERT INTO lapverse_jobs (job_id, queue, aggregate_id, tenant, priority, payload, state, \
         run_after_us, lease_owner, lease_until_us, runs, created_at_us, updated_at_us) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, NULL, NULL, 0, $8, $8) \
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(job_id)
    .bind(queue)
    .bind(aggregate_id)
    .bind(tenant)
    .bind(priority)
    .bind(payload)
    .bind(at.timestamp_micros())
    .bind(now)
    )
    .await
    .map_err(storage)?;
    Ok(())
}

/// Running and waiting jobs of one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub running: i64,
    pub queued: i64,
}

/// Depth of every queue.
pub async fn queue_depths(store: &Store) -> Result<Vec<(String, QueueDepth)>, LapVerseError> {
    let rows = sqlx::query(
        "SELECT queue, state, CAST(COUNT(*) AS BIGINT) FROM lapverse_jobs \
         WHERE state <> 'done' GROUP BY queue, state",
    )
    .fetch_all(store.read_models())
    .await
    .map_err(storage)?;
    let mut out: Vec<(String, QueueDepth)> = QUEUES
        .iter()
        .map(|q| ((*q).to_owned(), QueueDepth::default()))
        .collect();
    for row in rows {
        let queue: String = row.try_get(0).map_err(storage)?;
        let state: String = row.try_get(1).map_err(storage)?;
        let n: i64 = row.try_get(2).map_err(storage)?;
        if let Some((_, d)) = out.iter_mut().find(|(q, _)| *q == queue) {
            match state.as_str() {
                "running" => d.running += n,
                _ => d.queued += n,
            }
        }
    }
    Ok(out)
}

/// One due or claimed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub job_id: String,
    pub queue: String,
    pub aggregate_id: String,
    pub tenant: String,
    pub payload: Option<String>,
}

/// Due jobs of `queue` at `now_us`, in the order workers take them: round-robin across tenants
/// (each tenant's `n`-th best job comes in round `n`), by priority then age within a round.
pub async fn due_jobs(
    store: &Store,
    queue: &str,
    now_us: i64,
    limit: i64,
) -> Result<Vec<Job>, LapVerseError> {
    let rows = sqlx::query(
        "SELECT job_id, queue, aggregate_id, tenant, payload FROM ( \
           SELECT job_id, queue, aggregate_id, tenant, payload, priority, run_after_us, \
                  ROW_NUMBER() OVER (PARTITION BY tenant \
                                     ORDER BY priority DESC, run_after_us ASC, job_id ASC) AS turn \
             FROM lapverse_jobs \
            WHERE queue = $1 AND ((state = 'queued' AND run_after_us <= $2) \
               OR (state = 'running' AND lease_until_us < $2)) \
         ) due \
         ORDER BY turn ASC, priority DESC, run_after_us ASC, job_id ASC LIMIT $3",
    )
    .bind(queue)
    .bind(now_us)
    .bind(limit)
    .fetch_all(store.read_models())
    .await
    .map_err(storage)?;
    rows.iter()
        .map(|r| {
            Ok(Job {
                job_id: r.try_get(0).map_err(storage)?,
                queue: r.try_get(1).map_err(storage)?,
                aggregate_id: r.try_get(2).map_err(storage)?,
                tenant: r.try_get(3).map_err(storage)?,
                payload: r.try_get(4).map_err(storage)?,
            })
        })
        .collect()
}

/// Deletes done jobs that finished before `cutoff_us`, [`DONE_PURGE_BATCH`] rows per
/// statement; returns how many were deleted.
pub async fn purge_done_jobs(store: &Store, cutoff_us: i64) -> Result<u64, LapVerseError> {
    let mut total = 0;
    loop {
        let deleted = store
            .write_read_models(
                sqlx::query(
                    "DELETE FROM lapverse_jobs WHERE job_id IN ( \
               SELECT job_id FROM lapverse_jobs WHERE state = 'done' AND updated_at_us < $1 \
               LIMIT $2)",
                )
                .bind(cutoff_us)
                .bind(DONE_PURGE_BATCH),
            )
            .await
            .map_err(storage)?
            .rows_affected();
        total += deleted;
        if deleted < DONE_PURGE_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Purges done jobs older than [`DONE_RETENTION_MS`] every [`DONE_PURGE_EVERY_MS`] while
/// holding the purge lease, until `shutdown`; the lease is checked before every purge.
pub async fn run_done_purge(
    store: Store,
    leases: Leases,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), LeaseError> {
    let key = format!("{PURGE_LEASE}{JOBS_PURGE_LEASE}");
    let Some(mut lease) = leases.acquire(&store, &key, &mut shutdown).await? else {
        return Ok(());
    };
    while !*shutdown.borrow() {
        lease.check().await?;
        let cutoff = Utc::now().timestamp_micros() - DONE_RETENTION_MS * 1_000;
        match purge_done_jobs(&store, cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "purged finished jobs"),
            Err(e) => tracing::warn!(error = %e, "purging finished jobs failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(DONE_PURGE_EVERY_MS)) => {}
            _ = shutdown.changed() => {}
        }
    }
    Ok(())
}

/// What a job run asks of the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Done,
    RunAt(DateTime<Utc>),
}

/// The workers of the three queues.
pub struct Workers {
    service: Arc<LapVerse>,
    owner: String,
    leases: Leases,
}

impl Workers {
    pub fn new(service: Arc<LapVerse>) -> Self {
        Self {
            service,
            owner: format!("worker-{}", Uuid::now_v7().simple()),
            leases: Leases::default(),
        }
    }

    /// Records the queue leases taken in `leases` (the process's set).
    pub fn with_leases(mut self, leases: Leases) -> Self {
        self.leases = leases;
        self
    }

    /// The key of `queue`'s lease.
    pub fn lease_key(queue: &str) -> String {
        format!("{QUEUE_LEASE}{queue}")
    }

    /// Extends the row lease of running `job` every lease / [`LEASE_RENEWALS_PER_LEASE`];
    /// returns when the job is no longer this worker's (taken over, or released).
    async fn keep_job_lease(&self, job: &Job) {
        let lease = self.service.settings.lease;
        let every = lease / LEASE_RENEWALS_PER_LEASE;
        loop {
            tokio::time::sleep(every).await;
            let now = Utc::now().timestamp_micros();
            let renewed = self
                .store()
                .write_read_models(
                    sqlx::query(
                        "UPDATE lapverse_jobs SET lease_until_us = $1, updated_at_us = $2 \
                 WHERE job_id = $3 AND lease_owner = $4 AND state = 'running'",
                    )
                    .bind(now + lease.as_micros() as i64)
                    .bind(now)
                    .bind(&job.job_id)
                    .bind(&self.owner),
                )
                .await;
            match renewed {
                Ok(done) if done.rows_affected() == 1 => {}
                Ok(_) => {
                    tracing::warn!(job = %job.job_id, "job is no longer ours; stopping it");
                    return;
                }
                // The lease may still be valid: try again at the next renewal.
                Err(e) => {
                    tracing::warn!(job = %job.job_id, error = %e, "renewing the job lease failed")
                }
            }
        }
    }

    /// Runs a claimed job to its next step while renewing its lease, then releases it. A job
    /// taken over by another worker (its lease lapsed) is dropped without a release.
    async fn run_claimed(self: Arc<Self>, job: Job) {
        // Its own task, so CPU-bound work on this one cannot hold the renewals back.
        // Aborted when this task is (the queue's lease lost), so nothing renews a dropped job.
        let mut renewals = AbortOnDrop(tokio::spawn({
            let (me, job) = (self.clone(), job.clone());
            async move { me.keep_job_lease(&job).await }
        }));
        let next = tokio::select! {
            next = self.run_job(&job) => next,
            _ = &mut renewals.0 => return,
        };
        drop(renewals);
        let next = next.unwrap_or_else(|e| {
            tracing::warn!(job = %job.job_id, error = %e, "job failed; it will run again");
            Next::RunAt(Utc::now() + chrono::Duration::seconds(1))
        });
        if let Err(e) = self.release(&job, next).await {
            tracing::error!(job = %job.job_id, error = %e, "could not release job");
        }
    }

    fn store(&self) -> &Store {
        &self.service.store
    }

    /// Due jobs of `queue`, best first.
    async fn due(&self, queue: &str, limit: i64) -> Result<Vec<Job>, LapVerseError> {
        let now = Utc::now().timestamp_micros();
        due_jobs(self.store(), queue, now, limit).await
    }

    /// Takes the job if it is still due; false when another worker got it first.
    async fn claim(&self, job: &Job) -> Result<bool, LapVerseError> {
        let now = Utc::now().timestamp_micros();
        let lease = now + self.service.settings.lease.as_micros() as i64;
        let done = self.store().write_read_models(sqlx::query(
            "UPDATE lapverse_jobs SET state = 'running', lease_owner = $1, lease_until_us = $2, \
             runs = runs + 1, updated_at_us = $3 \
             WHERE job_id = $4 AND ((state = 'queued' AND run_after_us <= $3) \
                OR (state = 'running' AND lease_until_us < $3))",
        )
        .bind(&self.owner)
        .bind(lease)
        .bind(now)
        .bind(&job.job_id)
        )
        .await
        .map_err(storage)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release(&self, job: &Job, next: Next) -> Result<(), LapVerseError> {
        let now = Utc::now().timestamp_micros();
        let (state, run_after) = match next {
            Next::Done => ("done", now),
            Next::RunAt(at) => ("queued", at.timestamp_micros()),
        };
        self.store()
            .write_read_models(
                sqlx::query(
                    "UPDATE lapverse_jobs SET state = $1, run_after_us = $2, lease_owner = NULL, \
             lease_until_us = NULL, updated_at_us = $3 WHERE job_id = $4 AND lease_owner = $5",
                )
                .bind(state)
                .bind(run_after)
                .bind(now)
                .bind(&job.job_id)
                .bind(&self.owner),
            )
            .await
            .map_err(storage)?;
        Ok(())
    }

    /// Runs one job to its next step.
    async fn run_job(&self, job: &Job) -> Result<Next, LapVerseError> {
        match job.queue.as_str() {
            QUEUE_TASKS => self.run_task(&job.aggregate_id).await,
            QUEUE_COMPETITIONS => self.run_competition(&job.aggregate_id).await,
            QUEUE_NOTIFY => self.run_notification(job).await,
            other => {
                tracing::error!(queue = other, "job on an unknown queue; dropping it");
                Ok(Next::Done)
            }
        }
    }

    fn meta(&self, tenant: &str) -> Result<CommandMetadata, LapVerseError> {
        CommandMetadata::new(WORKER_ACTOR, tenant, Utc::now())
            .map_err(|e| LapVerseError::BadInput(e.to_string()))
    }

    /// One attempt of a task or round: handles the states before it (finished: done; waiting
    /// for a retry: sleep; left running by a dead worker: recorded as interrupted), starts it,
    /// runs `compute`, and records completion or the failure (`on_failed` is told when that was
    /// the last attempt). Returns the job's next step.
    async fn attempt<A, F, Fut>(
        &self,
        id: &str,
        compute: F,
        on_failed: impl FnOnce(&A),
    ) -> Result<Next, LapVerseError>
    where
        A: WorkAggregate,
        A::Command: Clone,
        LapVerseError: From<CommandError<A::Error>>,
        F: FnOnce(A, u32) -> Fut,
        Fut: std::future::Future<Output = Result<A::Command, String>>,
    {
        let s = &self.service;
        let bus = A::bus(s);
        let state = bus.load(id).await?;
        let (Some(life), Some((tenant, tags))) = (state.life().cloned(), state.owner()) else {
            return Ok(Next::Done);
        };
        let meta = super::stamp(self.meta(&tenant)?, &tags);
        let now = Utc::now();
        match life.status {
            status if status.is_terminal() => return Ok(Next::Done),
            Status::Retrying => {
                if let Some(at) = life.retry_at.filter(|at| *at > now) {
                    return Ok(Next::RunAt(at));
                }
            }
            Status::Running => {
                bus.execute(id, A::fail(INTERRUPTED.to_owned(), now), &meta)
                    .await?;
                return Ok(after_failure(bus.load(id).await?.life()));
            }
            _ => {}
        }
        bus.execute(id, A::start(Utc::now()), &meta).await?;
        let attempt = life.attempts + 1;
        let outcome = match self.injected(A::KIND, id, attempt) {
            Some(reason) => Err(reason),
            None => compute(state, attempt).await,
        };
        match outcome {
            Ok(complete) => {
                bus.execute(id, complete, &meta).await?;
                Ok(Next::Done)
            }
            Err(reason) => {
                bus.execute(id, A::fail(reason, Utc::now()), &meta).await?;
                let after = bus.load(id).await?;
                if after.life().map(|l| l.status) == Some(Status::Failed) {
                    on_failed(&after);
                }
                Ok(after_failure(after.life()))
            }
        }
    }

    async fn run_task(&self, id: &str) -> Result<Next, LapVerseError> {
        let s = &self.service;
        let mut finished = None;
        let next = self
            .attempt::<Task, _, _>(
                id,
                |task, _| {
                    let spec = task.spec().cloned();
                    async {
                        let spec = spec.ok_or("task without a spec")?;
                        let started = Instant::now();
                        let variant = spec.variant.unwrap_or(Strategy::Balanced);
                        let (t, input) = (spec.task_type, spec.input.clone());
                        let output = blocking(move || work::execute(t, &input, variant)).await?;
                        let duration_ms = started.elapsed().as_millis() as u64;
                        finished = Some((spec.tenant.clone(), spec.task_type, duration_ms));
                        Ok(TaskCommand::Complete {
                            output,
                            duration_ms,
                            occurred_at: Utc::now(),
                        })
                    }
                },
                |task| {
                    if let (Some(o), Some(spec)) = (&s.observer, task.spec()) {
                        o.task_finished(&spec.tenant, spec.task_type, false, 0);
                    }
                },
            )
            .await?;
        if let (Some(o), Some((tenant, task_type, ms))) = (&s.observer, finished) {
            o.task_finished(&tenant, task_type, true, ms);
        }
        Ok(next)
    }

    async fn run_competition(&self, id: &str) -> Result<Next, LapVerseError> {
        let s = &self.service;
        let mut finished = None;
        let next = self
            .attempt::<Competition, _, _>(
                id,
                |round, _| {
                    let spec = round.spec().cloned();
                    async {
                        let spec = spec.ok_or("round without a spec")?;
                        let started = Instant::now();
                        let tenant = s.tenant(&spec.tenant).await.map_err(|e| e.to_string())?;
                        let burn_rate = s
                            .slo_status(&tenant, &spec.tenant, Utc::now())
                            .await
                            .map_err(|e| e.to_string())?
                            .burn_1h;
                        let input = spec.clone();
                        let result = blocking(move || {
                            work::run_competition(
                                &input.series,
                                input.horizon,
                                &input.competitors,
                                input.production,
                                burn_rate,
                            )
                        })
                        .await?;
                        finished = Some((spec, result.clone()));
                        Ok(CompetitionCommand::Complete {
                            result,
                            duration_ms: started.elapsed().as_millis() as u64,
                            occurred_at: Utc::now(),
                        })
                    }
                },
                |_| {},
            )
            .await?;
        if let Some((spec, result)) = finished {
            if let Some(o) = &s.observer {
                o.competition_finished(&spec.tenant, spec.cost, result.win_rate_delta);
            }
            if result.promote {
                // The process manager repeats this (idempotently) if we stop here.
                let meta = super::stamp(self.meta(&spec.tenant)?, &spec.tags);
                let promoted = s
                    .promote(
                        &spec.tenant,
                        id,
                        result.champion,
                        result.win_rate_delta,
                        Utc::now(),
                        &meta,
                    )
                    .await;
                if let Err(e) = promoted {
                    tracing::warn!(error = %e, "promotion left to the process manager");
                }
            }
        }
        Ok(next)
    }

    fn injected(&self, kind: WorkKind, id: &str, attempt: u32) -> Option<String> {
        self.service
            .faults
            .as_ref()
            .and_then(|f| f.before_attempt(kind, id, attempt))
    }

    async fn run_notification(&self, job: &Job) -> Result<Next, LapVerseError> {
        let s = &self.service;
        let Some(payload) = &job.payload else {
            return Ok(Next::Done);
        };
        let notification: Notification = serde_json::from_str(payload)
            .map_err(|e| LapVerseError::Storage(format!("bad notification job: {e}")))?;
        let tenant = s.tenant(&notification.tenant).await?;
        let webhooks: Vec<_> = tenant
            .webhooks()
            .filter(|(_, w)| w.events.contains(&notification.event))
            .map(|(id, w)| (id.clone(), w.clone()))
            .collect();
        if webhooks.is_empty() {
            return Ok(Next::Done);
        }
        let meta = self.meta(&notification.tenant)?;
        s.dispatcher
            .dispatch(&notification, &webhooks, &meta)
            .await
            .map_err(|e| LapVerseError::Storage(e.to_string()))?;
        Ok(Next::Done)
    }

    /// Takes `queue`'s lease (standing by while another process holds it), then claims and
    /// runs due jobs, at most `concurrency` at a time, until shutdown. The lease is checked
    /// before every poll; when it is lost the running jobs are aborted (their row leases lapse
    /// and the new owner takes them over) and the run ends with the error.
    pub async fn run_queue(
        self: Arc<Self>,
        queue: &'static str,
        mut commits: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), LeaseError> {
        let key = Self::lease_key(queue);
        let Some(mut lease) = self
            .leases
            .acquire(self.store(), &key, &mut shutdown)
            .await?
        else {
            return Ok(());
        };
        let permits = Arc::new(Semaphore::new(self.service.settings.concurrency.max(1)));
        let poll = self.service.settings.poll;
        let mut running = JoinSet::new();
        while !*shutdown.borrow() {
            if let Err(e) = lease.check().await {
                running.abort_all();
                return Err(e);
            }
            while running.try_join_next().is_some() {}
            let free = permits.available_permits() as i64;
            if free > 0 {
                match self.due(queue, free).await {
                    Ok(jobs) => {
                        for job in jobs {
                            let Ok(permit) = permits.clone().try_acquire_owned() else {
                                break;
                            };
                            match self.claim(&job).await {
                                Ok(true) => {
                                    let me = self.clone();
                                    running.spawn(async move {
                                        me.run_claimed(job).await;
                                        drop(permit);
                                    });
                                }
                                Ok(false) => {}
                                Err(e) => tracing::warn!(error = %e, "claim failed"),
                            }
                        }
                    }
                    Err(e) => tracing::warn!(queue, error = %e, "queue poll failed"),
                }
            }
            tokio::select! {
                _ = commits.changed() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
        // Jobs under way at shutdown finish on their own (or their leases lapse).
        running.detach_all();
        Ok(())
    }

    /// Runs the three queues until `shutdown`, each under its lease and supervised (a queue
    /// that loses its lease or panics is started again as a standby).
    pub async fn run(self, commits: watch::Receiver<u64>, shutdown: watch::Receiver<bool>) {
        let me = Arc::new(self);
        let handles: Vec<_> = QUEUES
            .iter()
            .map(|q| {
                let (me, commits, stop) = (me.clone(), commits.clone(), shutdown.clone());
                tokio::spawn(crate::lease::supervise(
                    format!("queue {q}"),
                    shutdown.clone(),
                    move || me.clone().run_queue(q, commits.clone(), stop.clone()),
                ))
            })
            .collect();
        for h in handles {
            if let Err(e) = h.await {
                tracing::error!(error = %e, "queue supervisor panicked");
            }
        }
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs CPU-bound work off the async threads; a panic becomes the attempt's failure reason.
async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("worker panicked: {e}"))?
        .map_err(|e| e.to_string())
}

/// What the workers need of the `Task` and `Competition` aggregates.
trait WorkAggregate: cqrs_es::Aggregate<Services = ()> + Send + Sync + 'static
where
    Self::Command: Clone,
{
    const KIND: WorkKind;
    fn bus(service: &LapVerse) -> &CommandBus<Self>;
    fn life(&self) -> Option<&Lifecycle>;
    /// The tenant and the FinOps tags, once accepted.
    fn owner(&self) -> Option<(String, FinOpsTags)>;
    fn start(at: DateTime<Utc>) -> Self::Command;
    fn fail(reason: String, at: DateTime<Utc>) -> Self::Command;
}

impl WorkAggregate for Task {
    const KIND: WorkKind = WorkKind::Task;

    fn bus(service: &LapVerse) -> &CommandBus<Self> {
        &service.tasks
    }

    fn life(&self) -> Option<&Lifecycle> {
        self.lifecycle()
    }

    fn owner(&self) -> Option<(String, FinOpsTags)> {
        self.spec().map(|s| (s.tenant.clone(), s.tags.clone()))
    }

    fn start(at: DateTime<Utc>) -> TaskCommand {
        TaskCommand::Start { occurred_at: at }
    }

    fn fail(reason: String, at: DateTime<Utc>) -> TaskCommand {
        TaskCommand::FailAttempt {
            reason,
            occurred_at: at,
        }
    }
}

impl WorkAggregate for Competition {
    const KIND: WorkKind = WorkKind::Competition;

    fn bus(service: &LapVerse) -> &CommandBus<Self> {
        &service.competitions
    }

    fn life(&self) -> Option<&Lifecycle> {
        self.lifecycle()
    }

    fn owner(&self) -> Option<(String, FinOpsTags)> {
        self.spec().map(|s| (s.tenant.clone(), s.tags.clone()))
    }

    fn start(at: DateTime<Utc>) -> CompetitionCommand {
        CompetitionCommand::Start { occurred_at: at }
    }

    fn fail(reason: String, at: DateTime<Utc>) -> CompetitionCommand {
        CompetitionCommand::FailAttempt {
            reason,
            occurred_at: at,
        }
    }
}

fn after_failure(life: Option<&Lifecycle>) -> Next {
    match life {
        Some(l) if l.status == Status::Retrying => Next::RunAt(l.retry_at.unwrap_or_else(Utc::now)),
        _ => Next::Done,
    }
}

impl LapVerse {
    /// Promotes a round's champion (idempotent per round; a champion that is already production
    /// is not an error here).
    pub async fn promote(
        &self,
        tenant: &str,
        competition_id: &str,
        champion: agora_domain::forecast::Strategy,
        win_rate_delta: rust_decimal::Decimal,
        at: DateTime<Utc>,
        meta: &CommandMetadata,
    ) -> Result<(), LapVerseError> {
        let command = TenantCommand::PromoteVariant {
            competition_id: competition_id.to_owned(),
            champion,
            win_rate_delta,
            occurred_at: at,
        };
        match self.tenants.execute(tenant, command, meta).await {
            Ok(()) => Ok(()),
            Err(crate::bus::CommandError::Rejected(
                agora_domain::tenancy::tenant::TenantError::AlreadyProduction,
            )) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The notification sent when a round completes.
pub fn competition_notification(
    tenant: &str,
    competition_id: &str,
    result: &agora_domain::tenancy::work::CompetitionResult,
    at: DateTime<Utc>,
) -> Notification {
    Notification {
        id: format!("competition-completed:{competition_id}"),
        tenant: tenant.to_owned(),
        event: WebhookEvent::CompetitionCompleted,
        payload: serde_json::json!({
            "competitionId": competition_id,
            "champion": result.champion,
            "production": result.production,
            "ranking": result.ranking,
            "winRateDelta": result.win_rate_delta.to_string(),
            "promote": result.promote,
        }),
        occurred_at: at,
    }
}

/// The notification sent when a champion is promoted.
pub fn promotion_notification(
    tenant: &str,
    competition_id: &str,
    from: agora_domain::forecast::Strategy,
    to: agora_domain::forecast::Strategy,
    win_rate_delta: rust_decimal::Decimal,
    at: DateTime<Utc>,
) -> Notification {
    Notification {
        id: format!("champion-promoted:{competition_id}"),
        tenant: tenant.to_owned(),
        event: WebhookEvent::ChampionPromoted,
        payload: serde_json::json!({
            "competitionId": competition_id,
            "from": from,
            "to": to,
            "winRateDelta": win_rate_delta.to_string(),
        }),
        occurred_at: at,
    }
}
