-- Per-key limits shared by every process (DESIGN.md §7): one row per limit (scope), key and
-- fixed window, upserted by each check (`api/src/ratelimit.rs`); ended windows are deleted.
CREATE TABLE limit_windows (
    scope TEXT NOT NULL,
    limit_key TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    window_end_ms BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (scope, limit_key, window_start_ms)
);

CREATE INDEX limit_windows_end ON limit_windows (window_end_ms);
