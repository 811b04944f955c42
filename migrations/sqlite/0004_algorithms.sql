-- Custom algorithms built by byom_image_builder on the local target, by the name custom_image_uri
-- gives them (ecr_repo_name:image_tag). The zip itself is a content-addressed snapshot in the
-- object store (_mlops/algorithms/<sha256>.zip); each replica unpacks it on first use.
CREATE TABLE algorithms (
    name        TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    sha256      TEXT NOT NULL,
    source      TEXT NOT NULL,
    details     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX algorithms_pipeline ON algorithms (pipeline_id);
