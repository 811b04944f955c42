-- The newest output of each custom endpoint's algorithm on each server process (at most 200
-- lines and 64 KiB a row), so that any replica shows every replica's. A process rewrites its row
-- when its algorithm wrote more; an endpoint keeps the rows of its ten most recent writers.
CREATE TABLE endpoint_logs (
    environment TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    replica     TEXT NOT NULL,
    restarts    INTEGER NOT NULL,
    -- A JSON array of lines, oldest first.
    lines       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (environment, endpoint, replica)
);
