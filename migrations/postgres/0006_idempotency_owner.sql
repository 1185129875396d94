-- The request that holds a `pending` record: it renews `updated_at_us` while it runs (a
-- heartbeat), and only a record whose heartbeat stopped may be taken over by a retry.
ALTER TABLE idempotency_records ADD COLUMN owner text;
