-- The local target's model cards (issue 16): every version of a card's content and status is
-- kept, as SageMaker keeps them; exports record where their PDF and HTML were written.
CREATE TABLE model_cards (
    name       TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE model_card_versions (
    name        TEXT NOT NULL REFERENCES model_cards (name) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    status      TEXT NOT NULL,
    -- The content JSON exactly as checked against docs/schemas/model-card.schema.json.
    content     TEXT NOT NULL,
    modified_by TEXT NOT NULL,
    modified_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version)
);

-- Kept when the card is deleted, as SageMaker keeps export jobs.
CREATE TABLE model_card_exports (
    job_name   TEXT PRIMARY KEY,
    card_name  TEXT NOT NULL,
    version    BIGINT NOT NULL,
    pdf_key    TEXT NOT NULL,
    html_key   TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX model_card_exports_card ON model_card_exports (card_name, created_at);
