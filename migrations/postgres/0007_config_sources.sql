-- Config sources (issue 14): every revision of a watched mlops-config.json (a Git commit, a
-- config-bucket object version) is recorded once per source, with what became of it, and a
-- pipeline provisioned from one records where it came from.
-- Same tables, columns and names as migrations/sqlite/0007_config_sources.sql.
ALTER TABLE pipelines ADD COLUMN origin JSONB;

CREATE TABLE config_revisions (
    id             TEXT PRIMARY KEY,
    source         TEXT NOT NULL,
    source_kind    TEXT NOT NULL,
    -- The commit SHA, or the object's version id / ETag.
    revision       TEXT NOT NULL,
    content_sha256 TEXT,
    author         TEXT,
    message        TEXT,
    -- processing, accepted, rejected, unchanged, partially_applied
    state          TEXT NOT NULL,
    errors         JSONB,
    pipelines      JSONB,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (source, revision)
);
CREATE INDEX config_revisions_source ON config_revisions (source, id);
