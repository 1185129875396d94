-- The first outcome of every mutation, per principal and client key (Stripe-style). A request
-- holds `pending` while it runs; a retry returns `outcome` as stored.
CREATE TABLE idempotency_records
(
    principal     text   NOT NULL,
    key           text   NOT NULL,
    request_hash  text   NOT NULL,
    state         text   NOT NULL CHECK (state IN ('pending', 'done')),
    outcome       text,
    created_at_us bigint NOT NULL,
    updated_at_us bigint NOT NULL,
    PRIMARY KEY (principal, key)
);

-- Event history lookups for auditors (by correlation id, actor, tenant, aggregate).
CREATE INDEX events_correlation ON events ((metadata ->> 'correlation_id'));
CREATE INDEX events_actor ON events ((metadata ->> 'actor'));
CREATE INDEX events_tenant ON events ((metadata ->> 'tenant'), transaction_id, global_position);
