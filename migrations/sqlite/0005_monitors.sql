-- Model monitors on the local target: one row per monitored stage (its schedule and baseline),
-- and one row per execution (a scheduled window or a run-now). A scheduled window is claimed by
-- moving next_run_at forward with a compare-and-set, and the unique index below makes a window
-- impossible to record twice, so replicas never run the same window twice.
CREATE TABLE monitors (
    id                  TEXT PRIMARY KEY,
    pipeline_id         TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    environment         TEXT NOT NULL,
    name                TEXT NOT NULL,
    monitor_type        TEXT NOT NULL,
    endpoint_name       TEXT NOT NULL,
    schedule_expression TEXT NOT NULL,
    config              TEXT NOT NULL,
    state               TEXT NOT NULL,
    next_run_at         TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (pipeline_id, environment)
);
CREATE INDEX monitors_due ON monitors (state, next_run_at);

CREATE TABLE monitor_executions (
    id           TEXT PRIMARY KEY,
    monitor_id   TEXT NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    origin       TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end   TEXT NOT NULL,
    state        TEXT NOT NULL,
    result       TEXT,
    error        TEXT,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);
CREATE UNIQUE INDEX monitor_executions_scheduled_window
    ON monitor_executions (monitor_id, window_start) WHERE origin = 'schedule';
CREATE INDEX monitor_executions_monitor ON monitor_executions (monitor_id, created_at);
