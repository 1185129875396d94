-- The first outcome of every mutation, per principal and client key (Stripe-style). A request
-- holds `pending` while it runs; a retry returns `outcome` as stored.
CREATE TABLE idempotency_records
(
    principal     TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    request_hash  TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'done')),
    outcome       TEXT,
    created_at_us INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);

-- Event history lookups for auditors (by correlation id, actor, tenant, time).
CREATE INDEX events_correlation ON events (json_extract(metadata, '$.correlation_id'));
CREATE INDEX events_actor ON events (json_extract(metadata, '$.actor'));
CREATE INDEX events_tenant ON events (json_extract(metadata, '$.tenant'), global_position);
CREATE INDEX events_recorded_at ON events (recorded_at_us);
