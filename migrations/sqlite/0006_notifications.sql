-- Notifications (DESIGN §3, docs/ARCHITECTURE.md): an outbox over the events table.
-- Every event is written undispatched; a dispatcher on any worker reads undispatched events in
-- id order, decides which of them people are told about, and — in one transaction — records the
-- notification, one delivery per channel with its job, and marks the events dispatched. So an
-- event committed before a crash is notified after it, and never twice.
-- Same tables, columns and names as migrations/postgres/0006_notifications.sql.
ALTER TABLE events ADD COLUMN details TEXT;
ALTER TABLE events ADD COLUMN dispatched BOOLEAN NOT NULL DEFAULT FALSE;
-- Events from before notifications existed are history, not news.
UPDATE events SET dispatched = TRUE;
CREATE INDEX events_undispatched ON events (id) WHERE NOT dispatched;

CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    -- No foreign keys: the record of what people were told outlives the pipeline.
    pipeline_id TEXT,
    event_id    INTEGER,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX notifications_created ON notifications (created_at, id);
CREATE INDEX notifications_pipeline ON notifications (pipeline_id, created_at);

CREATE TABLE notification_deliveries (
    id              TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel         TEXT NOT NULL,
    channel_kind    TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_at    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (notification_id, channel)
);

CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES notification_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    succeeded   BOOLEAN NOT NULL,
    -- What the channel answered: an HTTP status, an SMTP reply, an SNS message id.
    response    TEXT,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
