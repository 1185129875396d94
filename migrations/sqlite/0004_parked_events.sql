-- Dead letters: events a projection or a process manager could not handle after its retries
-- (DESIGN.md §7). A row is written in the same transaction that moves the runner's checkpoint
-- past the event, so the runner goes on and the event is never skipped silently. An operator
-- retries the event (the row is deleted in the transaction that applies it) or skips it (a
-- `ParkedEventSkipped` event is appended to the log and the row is marked resolved).
CREATE TABLE parked_events
(
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    runner          TEXT    NOT NULL,
    transaction_id  INTEGER  NOT NULL,
    global_position INTEGER  NOT NULL,
    event_id        TEXT,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    sequence        INTEGER  NOT NULL,
    event_type      TEXT    NOT NULL,
    event_version   TEXT    NOT NULL,
    error           TEXT    NOT NULL,
    attempts        INTEGER  NOT NULL,
    parked_at_us    INTEGER  NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('parked', 'skipped')),
    resolved_by     TEXT,
    resolution      TEXT,
    resolved_at_us  INTEGER,
    UNIQUE (runner, global_position)
);

CREATE INDEX parked_events_open ON parked_events (status, runner);
