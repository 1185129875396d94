-- The deployment's ledger signing key, by its public half. The first `agora` process that starts
-- records its key here; every later process (a restart with another data directory, a restored
-- backup) must hold the same key or it refuses to start. One row at most. The private key is
-- never stored in the database.
CREATE TABLE ledger_signing_key
(
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    public_key  TEXT    NOT NULL CHECK (length(public_key) = 64),
    recorded_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
