-- Lease up to $4 due jobs to worker $1 until $2. Runs inside BEGIN IMMEDIATE, which already
-- serialises writers, so no row locking is needed.
UPDATE jobs
SET status = 'running', locked_by = $1, lease_until = $2, updated_at = $3
WHERE id IN (
    SELECT id FROM jobs
    WHERE status = 'queued' AND run_at <= $3
    ORDER BY run_at, id
    LIMIT $4
)
RETURNING *
