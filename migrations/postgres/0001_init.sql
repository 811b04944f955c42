-- Pipelines, their stages, the job queue, the audit trail and locally served endpoints.
-- Same tables, columns and names as migrations/sqlite/0001_init.sql.

CREATE TABLE pipelines (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    pipeline_type TEXT NOT NULL,
    target        TEXT NOT NULL,
    spec          JSONB NOT NULL,
    request       JSONB NOT NULL,
    state         TEXT NOT NULL,
    version       BIGINT NOT NULL DEFAULT 1,
    created_by    TEXT NOT NULL,
    last_error    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
-- One live pipeline per (type, name): provisioning the same pair again updates it.
CREATE UNIQUE INDEX pipelines_live_identity ON pipelines (pipeline_type, name) WHERE state <> 'deleted';
CREATE INDEX pipelines_state ON pipelines (state, id);

CREATE TABLE stages (
    pipeline_id       TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    ordinal           INTEGER NOT NULL,
    environment       TEXT NOT NULL,
    state             TEXT NOT NULL,
    requires_approval BOOLEAN NOT NULL,
    params            JSONB NOT NULL,
    outputs           JSONB,
    version           BIGINT NOT NULL,
    approved_by       TEXT,
    approved_at       TIMESTAMPTZ,
    last_error        TEXT,
    updated_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pipeline_id, ordinal)
);

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    payload         JSONB NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    run_at          TIMESTAMPTZ NOT NULL,
    locked_by       TEXT,
    lease_until     TIMESTAMPTZ,
    last_error      TEXT,
    idempotency_key TEXT UNIQUE,
    pipeline_id     TEXT,
    stage_ordinal   INTEGER,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_lease ON jobs (status, lease_until);
CREATE INDEX jobs_pipeline ON jobs (pipeline_id);

CREATE TABLE events (
    id            BIGSERIAL PRIMARY KEY,
    pipeline_id   TEXT NOT NULL,
    stage_ordinal INTEGER,
    kind          TEXT NOT NULL,
    from_state    TEXT,
    to_state      TEXT,
    actor         TEXT NOT NULL,
    message       TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_pipeline ON events (pipeline_id, id);

CREATE TABLE endpoints (
    environment   TEXT NOT NULL,
    name          TEXT NOT NULL,
    pipeline_id   TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    stage_ordinal INTEGER NOT NULL,
    state         TEXT NOT NULL,
    config        JSONB NOT NULL,
    revision      BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (environment, name)
);
CREATE INDEX endpoints_pipeline ON endpoints (pipeline_id);
