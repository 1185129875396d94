-- The durable work queue of tasks, self-compete rounds and webhook notifications. Rows are
-- written by the Lap-Verse process manager (a checkpointed reader of the event log) and claimed
-- by workers under a lease: a worker that dies leaves its lease to expire and the job runs again
-- (the aggregates decide whether there is anything left to do, so a second run is harmless).
CREATE TABLE lapverse_jobs
(
    job_id         TEXT    PRIMARY KEY,
    queue          TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    tenant         TEXT    NOT NULL,
    priority       INTEGER  NOT NULL,
    payload        TEXT,
    state          TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done')),
    run_after_us   INTEGER  NOT NULL,
    lease_owner    TEXT,
    lease_until_us INTEGER,
    runs           INTEGER  NOT NULL,
    created_at_us  INTEGER  NOT NULL,
    updated_at_us  INTEGER  NOT NULL
);

CREATE INDEX lapverse_jobs_due ON lapverse_jobs (queue, state, run_after_us);
