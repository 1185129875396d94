-- The event log. cqrs-es/postgres-es write the first seven columns (it names them on insert, so
-- the defaulted columns below are filled by PostgreSQL). The primary key is the per-aggregate
-- optimistic-concurrency check; (transaction_id, global_position) is the global commit order
-- that catch-up readers follow (DESIGN.md §2).
CREATE TABLE events
(
    aggregate_type  text      NOT NULL,
    aggregate_id    text      NOT NULL,
    sequence        bigint    NOT NULL CHECK (sequence >= 1),
    event_type      text      NOT NULL,
    event_version   text      NOT NULL,
    payload         jsonb     NOT NULL,
    metadata        jsonb     NOT NULL,
    global_position bigint    GENERATED ALWAYS AS IDENTITY,
    transaction_id  xid8      NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position ON events (global_position);
CREATE INDEX events_catch_up ON events (transaction_id, global_position);
CREATE INDEX events_recorded_at ON events (recorded_at);

-- Snapshots (postgres-es schema). Unused until aggregates' streams are long (DESIGN.md §6).
CREATE TABLE snapshots
(
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- Events are immutable. This stops accidents, not a superuser (who can disable triggers);
-- the audit seal catches the rest.
CREATE FUNCTION agora_reject_event_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable: % on events is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER events_immutable_rows
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION agora_reject_event_mutation();

CREATE TRIGGER events_immutable_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION agora_reject_event_mutation();

-- One row per projection: where it has read up to, in the global order. Updated in the same
-- transaction as the projection's tables (exactly-once).
CREATE TABLE projection_checkpoints
(
    name            text   PRIMARY KEY,
    transaction_id  bigint NOT NULL DEFAULT 0,
    global_position bigint NOT NULL DEFAULT 0,
    version         bigint NOT NULL,
    events_applied  bigint NOT NULL DEFAULT 0,
    updated_at_us   bigint NOT NULL DEFAULT 0
);
