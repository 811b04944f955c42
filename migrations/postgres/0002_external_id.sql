-- The id a target gives a pipeline (the aws target: the wrapper stack's StackId). The compat
-- API answers with it and accepts it back, as the AWS solution does.
ALTER TABLE pipelines ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX pipelines_external_id ON pipelines (external_id);
