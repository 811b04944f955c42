-- Pipelines, their stages, the job queue, the audit trail and locally served endpoints.
-- Same tables, columns and names as migrations/postgres/0001_init.sql.
-- SQLite keeps timestamps as RFC 3339 UTC text (ordered lexicographically) and JSON as text.

CREATE TABLE pipelines (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    pipeline_type TEXT NOT NULL,
    target        TEXT NOT NULL,
    spec          TEXT NOT NULL,
    request       TEXT NOT NULL,
    state         TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    created_by    TEXT NOT NULL,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
-- One live pipeline per (type, name): provisioning the same pair again updates it.
CREATE UNIQUE INDEX pipelines_live_identity ON pipelines (pipeline_type, name) WHERE state <> 'deleted';
CREATE INDEX pipelines_state ON pipelines (state, id);

CREATE TABLE stages (
    pipeline_id       TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    ordinal           INTEGER NOT NULL,
    environment       TEXT NOT NULL,
    state             TEXT NOT NULL,
    requires_approval INTEGER NOT NULL,
    params            TEXT NOT NULL,
    outputs           TEXT,
    version           INTEGER NOT NULL,
    approved_by       TEXT,
    approved_at       TEXT,
    last_error        TEXT,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (pipeline_id, ordinal)
);

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    run_at          TEXT NOT NULL,
    locked_by       TEXT,
    lease_until     TEXT,
    last_error      TEXT,
    idempotency_key TEXT UNIQUE,
    pipeline_id     TEXT,
    stage_ordinal   INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_lease ON jobs (status, lease_until);
CREATE INDEX jobs_pipeline ON jobs (pipeline_id);

CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline_id   TEXT NOT NULL,
    stage_ordinal INTEGER,
    kind          TEXT NOT NULL,
    from_state    TEXT,
    to_state      TEXT,
    actor         TEXT NOT NULL,
    message       TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX events_pipeline ON events (pipeline_id, id);

CREATE TABLE endpoints (
    environment   TEXT NOT NULL,
    name          TEXT NOT NULL,
    pipeline_id   TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    stage_ordinal INTEGER NOT NULL,
    state         TEXT NOT NULL,
    config        TEXT NOT NULL,
    revision      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (environment, name)
);
CREATE INDEX endpoints_pipeline ON endpoints (pipeline_id);
