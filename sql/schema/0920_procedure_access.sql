-- Who may call what: the rows of qflow.procedure_access (0190_procedure_access.sql). Only
-- the procedures a role calls are listed; everything else in schema qflow is internal, called
-- by these as their owner, and callable by nobody else. Applied with the code: a change here
-- takes effect at the next `qflow migrate` (secure_procedures, then ensure_roles).

DELETE FROM qflow.procedure_access;

INSERT INTO qflow.procedure_access (name, roles, definer) VALUES
    -- the step worker and the legacy worker
    ('claim_steps', '{worker}', true),
    ('finish_steps', '{worker}', true),
    ('report_progress', '{worker}', true),
    ('legacy_claim', '{worker}', true),
    ('legacy_steps', '{worker}', true),
    ('legacy_complete', '{worker}', true),
    ('legacy_fail', '{worker}', true),
    -- a worker registers the workflows it brings and applies its environment's settings
    ('register_workflow', '{worker}', true),
    ('configure_workflow', '{worker}', true),
    -- liveness: the lock a worker holds while it lives (its key), and who is dead
    ('worker_lock_key', '{worker}', false),
    ('dead_workers', '{worker}', true),
    -- the sweep and what it changes through
    ('sweep', '{worker}', false),
    ('sweep_deadline', '{worker}', true),
    ('sweep_lease', '{worker}', true),
    ('sweep_legacy', '{worker}', true),
    ('lost_step_jobs', '{worker}', true),
    ('sweep_lost_job', '{worker}', true),
    ('sweep_orphaned_jobs', '{worker}', true),
    ('sweep_limited', '{worker}', true),
    ('prune_runs', '{worker}', true),
    ('analyze_grown_tables', '{worker}', true),
    -- schedules: the workers fire them
    ('fire_schedule', '{worker}', true),
    ('refuse_schedule', '{worker}', true),
    -- starting and steering runs
    ('start_run', '{trigger}', true),
    ('cancel_run', '{trigger}', true),
    ('retry_run', '{trigger}', true),
    ('rerun_from', '{trigger}', true),
    ('invalidate_cache', '{trigger}', true),
    -- the INSERT triggers: a trigger role's INSERT makes step rows and River jobs
    ('runs_prepare', '{}', true),
    ('runs_start', '{}', true),
    -- reading
    ('status', '{reader}', true),
    ('metrics', '{reader}', true),
    ('list_workflows', '{reader}', true),
    ('workflow_stats', '{reader}', true),
    ('step_stats', '{reader}', true),
    -- how old the data read here is (a read replica's lag); the metrics reporter's clock
    ('staleness', '{worker,reader}', false),
    -- the autoscaling signal (KEDA's PostgreSQL scaler logs in as a reader)
    ('autoscaling', '{reader}', false);
