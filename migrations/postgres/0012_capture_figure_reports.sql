-- The last capture-figures report each server process applied (0010): a report is numbered by
-- its process and applied once, so one sent again after a commit whose answer was lost is not
-- counted twice.
CREATE TABLE capture_figure_reports (
    replica     TEXT PRIMARY KEY,
    sequence    BIGINT NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL
);
