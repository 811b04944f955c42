-- What a long-running stage step has finished so far (the local batch transform: the input files
-- already written), so a job restarted after a crash resumes instead of starting over. Provisioning
-- replaces the stage rows, which clears it.
ALTER TABLE stages ADD COLUMN checkpoint JSONB;
