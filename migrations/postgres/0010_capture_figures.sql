-- Data-capture figures per capture destination (`bucket/prefix/endpoint/variant`), summed over
-- every server process that captured for it: each adds what it counted since its last report, so
-- an endpoint's figures are the same whichever replica answers, and survive restarts.
CREATE TABLE capture_figures (
    destination TEXT PRIMARY KEY,
    captured    BIGINT NOT NULL,
    written     BIGINT NOT NULL,
    dropped     BIGINT NOT NULL,
    sampled_out BIGINT NOT NULL,
    last_flush  TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL
);
