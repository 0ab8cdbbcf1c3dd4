-- lease_expiry: when the lease of an attempt that started at p_start runs out: the step's
-- timeout plus a grace period, in which a live worker reports even a handler that overran (its
-- context is cancelled at the timeout). Past it the sweep fails the attempt as timed out and
-- retries the step (0610_sweep_lease.sql), and a job still running for it is orphaned
-- (0630_sweep_orphaned_jobs.sql).
CREATE FUNCTION qflow.lease_expiry(p_start timestamptz, p_timeout_ms bigint)
RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT p_start + p_timeout_ms * interval '1 millisecond' + interval '2 seconds'
$$;
