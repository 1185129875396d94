-- The event log. cqrs-es/sqlite-es write the first seven columns (it names them on insert).
-- The primary key is the per-aggregate optimistic-concurrency check (sqlite-es maps its
-- violation, code 1555, to a conflict). SQLite has a single writer, so an insert-time counter is
-- commit order; it is a real column rather than the rowid because VACUUM may renumber rowids.
CREATE TABLE events
(
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    sequence        INTEGER NOT NULL CHECK (sequence >= 1),
    event_type      TEXT    NOT NULL,
    event_version   TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    global_position INTEGER,
    recorded_at_us  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position ON events (global_position);

CREATE TRIGGER events_assign_global_position
    AFTER INSERT ON events
    FOR EACH ROW
BEGIN
    UPDATE events
       SET global_position = (SELECT COALESCE(MAX(global_position), 0) + 1 FROM events)
     WHERE rowid = NEW.rowid;
END;

-- Events are immutable (the one update above only fills the position of a fresh row).
CREATE TRIGGER events_immutable_update
    BEFORE UPDATE ON events
    FOR EACH ROW WHEN OLD.global_position IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'events are immutable: UPDATE on events is not allowed');
END;

CREATE TRIGGER events_immutable_delete
    BEFORE DELETE ON events
    FOR EACH ROW
BEGIN
    SELECT RAISE(ABORT, 'events are immutable: DELETE on events is not allowed');
END;

CREATE TABLE snapshots
(
    aggregate_type   TEXT    NOT NULL,
    aggregate_id     TEXT    NOT NULL,
    last_sequence    INTEGER NOT NULL CHECK (last_sequence >= 0),
    current_snapshot INTEGER NOT NULL CHECK (current_snapshot >= 0),
    payload          TEXT    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

CREATE TABLE projection_checkpoints
(
    name            TEXT    PRIMARY KEY,
    transaction_id  INTEGER NOT NULL DEFAULT 0,
    global_position INTEGER NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL,
    events_applied  INTEGER NOT NULL DEFAULT 0,
    updated_at_us   INTEGER NOT NULL DEFAULT 0
);
