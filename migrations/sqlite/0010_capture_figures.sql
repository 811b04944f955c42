-- Data-capture figures per capture destination (`bucket/prefix/endpoint/variant`), summed over
-- every server process that captured for it: each adds what it counted since its last report, so
-- an endpoint's figures are the same whichever replica answers, and survive restarts.
CREATE TABLE capture_figures (
    destination TEXT PRIMARY KEY,
    captured    INTEGER NOT NULL,
    written     INTEGER NOT NULL,
    dropped     INTEGER NOT NULL,
    sampled_out INTEGER NOT NULL,
    last_flush  TEXT,
    updated_at  TEXT NOT NULL
);
