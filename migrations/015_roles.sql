-- Roles: who may do what.
--
-- `qflow migrate` creates four group roles (NOLOGIN; an operator grants them to login users)
-- with qflow.ensure_roles, named <prefix>_admin, _worker, _trigger and _reader (prefix qflow
-- unless told otherwise):
--
--   admin    owns the schemas qflow, ml and river and everything in them: runs migrations,
--            registers and configures workflows, and can do all the rest.
--   worker   what `qflow worker` needs: the step and legacy procedures, registration of the
--            workflows it brings, the sweep; its own row in qflow.workers; River's tables;
--            the ml schema of the ML pipelines; reading qflow. It cannot write definitions,
--            runs or step rows except through those procedures.
--   trigger  inserts runs (the columns a caller chooses: workflow, version, input, priority,
--            idempotency_key) and calls start_run, cancel_run and retry_run. Nothing else: it
--            reads no run (but the ids it gets back), no River job, no definition.
--   reader   reads: every view and table of schema qflow, status(), metrics(),
--            list_workflows(), workflow_stats(), step_stats(). No River, no ml, no writes.
--
-- A role calls a procedure only where qflow.procedure_access lists it. Procedures that cross
-- those lines (a trigger inserting a run makes step rows and River jobs it may not touch
-- itself) run as their owner, the admin role: SECURITY DEFINER with a fixed search_path, so
-- that nothing a caller puts on its own path is ever looked up by them. The sweep is the one
-- procedure that cannot be SECURITY DEFINER (it commits after each item, which Postgres
-- forbids there); it does every change through SECURITY DEFINER helpers instead.
--
-- A later migration that adds a procedure a role calls adds its row to procedure_access:
-- migrations.Migrate calls secure_procedures after every migration run and `qflow migrate`
-- calls ensure_roles, so SECURITY DEFINER and the grants follow the table.

CREATE TABLE qflow.procedure_access (
    -- Every overload of qflow.<name>.
    name    text    PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    -- The roles that may call it, besides admin (which owns it).
    roles   text[]  NOT NULL DEFAULT '{}' CHECK (roles <@ ARRAY['worker', 'trigger', 'reader']),
    -- Runs as its owner (SECURITY DEFINER, fixed search_path).
    definer boolean NOT NULL DEFAULT true
);

INSERT INTO qflow.procedure_access (name, roles, definer) VALUES
    -- the step worker (batched and one by one) and the legacy worker
    ('claim_steps', '{worker}', true),
    ('finish_steps', '{worker}', true),
    ('claim_step', '{worker}', true),
    ('complete_step', '{worker}', true),
    ('fail_step', '{worker}', true),
    ('release_step', '{worker}', true),
    ('legacy_claim', '{worker}', true),
    ('legacy_steps', '{worker}', true),
    ('legacy_complete', '{worker}', true),
    ('legacy_fail', '{worker}', true),
    -- a worker registers the workflows it brings and applies its environment's settings
    ('register_workflow', '{worker}', true),
    ('configure_workflow', '{worker}', true),
    -- the leader's sweep and what it changes through
    ('sweep', '{worker}', false),
    ('sweep_deadline', '{worker}', true),
    ('sweep_lease', '{worker}', true),
    ('sweep_lost_job', '{worker}', true),
    ('sweep_orphaned_jobs', '{worker}', true),
    ('sweep_limited', '{worker}', true),
    -- starting and steering runs
    ('start_run', '{trigger}', true),
    ('cancel_run', '{trigger}', true),
    ('retry_run', '{trigger}', true),
    -- the INSERT triggers: a trigger role's INSERT makes step rows and River jobs
    ('runs_prepare', '{}', true),
    ('runs_start', '{}', true),
    -- reading
    ('status', '{reader}', true),
    ('metrics', '{reader}', true),
    ('list_workflows', '{reader}', true),
    ('workflow_stats', '{reader}', true),
    ('step_stats', '{reader}', true);

-- The sweep, piece by piece ------------------------------------------------------------------

-- sweep_deadline times out a live run whose deadline passed (checked again under its lock: a
-- retry may have moved the deadline since the sweep looked).
CREATE FUNCTION qflow.sweep_deadline(p_run_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_budget interval;
BEGIN
    SELECT deadline - created_at INTO v_budget FROM qflow.runs
     WHERE id = p_run_id AND status IN ('pending', 'running') AND deadline < now()
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN qflow.finish_run(p_run_id, 'timed_out', format('run exceeded its deadline (%s)', v_budget));
END $$;

-- sweep_lease fails an attempt whose lease expired (its worker died or lost the database) as
-- timed out, which retries the step, and cancels the attempt's River job so that River's
-- rescuer never runs it again.
CREATE FUNCTION qflow.sweep_lease(p_run_id bigint, p_step text, p_attempt integer)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_sr qflow.step_runs;
BEGIN
    SELECT * INTO v_sr FROM qflow.step_runs
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt
       AND status = 'running' AND lease_expires_at < now();
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF qflow.fail_step(p_run_id, p_step, p_attempt,
                       format('lease expired: worker %s stopped without finishing the step', v_sr.worker),
                       false, true) = 'stale' THEN
        RETURN false;
    END IF;
    UPDATE river.river_job SET state = 'cancelled', finalized_at = now()
     WHERE id = v_sr.job_id AND state = 'running';
    RETURN true;
END $$;

-- sweep_lost_job queues a step again whose job can no longer run it (see sweep).
CREATE FUNCTION qflow.sweep_lost_job(p_run_id bigint, p_step text, p_attempt integer, p_job_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM qflow.runs WHERE id = p_run_id FOR UPDATE;
    UPDATE qflow.step_runs SET status = 'ready'
     WHERE run_id = p_run_id AND step = p_step AND attempt = p_attempt AND status = 'queued';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE river.river_job SET state = 'cancelled', finalized_at = now()
     WHERE id = p_job_id AND state = 'running';
    PERFORM qflow.dispatch(ARRAY[p_run_id]);
    RETURN true;
END $$;

-- sweep_orphaned_jobs cancels running step jobs that nothing waits for any more: their step
-- moved on (the run finished, or another attempt took over) while the worker holding the job
-- died. A live worker reports a stale job at most a second after the step's timeout; past
-- the lease nobody will, and River would keep the job running until its rescuer, an hour on.
CREATE FUNCTION qflow.sweep_orphaned_jobs()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer;
BEGIN
    UPDATE river.river_job j
       SET state = 'cancelled', finalized_at = now()
      FROM qflow.step_runs sr
      JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
     WHERE j.state = 'running' AND j.kind = 'qflow_step'
       AND sr.run_id = (j.args ->> 'run_id')::bigint AND sr.step = j.args ->> 'step'
       AND NOT (sr.status IN ('queued', 'running') AND sr.job_id = j.id)
       AND j.attempted_at < now() - s.timeout_ms * interval '1 millisecond' - qflow.lease_grace();
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END $$;

-- sweep_limited hands out free slots of a concurrency-limited step that nobody handed on.
CREATE FUNCTION qflow.sweep_limited(p_workflow text, p_step text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM qflow.notify_queues(qflow.dispatch_limited(p_workflow, p_step));
END $$;

-- sweep (007), now made of the pieces above, plus orphaned jobs. It finds work with plain
-- reads, changes nothing itself but its worker registry, and commits after each item, so it
-- never holds many run locks at once (and cannot deadlock with workers).
CREATE OR REPLACE PROCEDURE qflow.sweep(INOUT timed_out_runs integer DEFAULT 0, INOUT expired_leases integer DEFAULT 0,
                                        INOUT requeued_steps integer DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    v_row record;
BEGIN
    timed_out_runs := 0;
    expired_leases := 0;
    requeued_steps := 0;
    FOR v_row IN
        SELECT id FROM qflow.runs
         WHERE status IN ('pending', 'running') AND deadline < now()
         ORDER BY id LIMIT 1000
    LOOP
        IF qflow.sweep_deadline(v_row.id) THEN
            timed_out_runs := timed_out_runs + 1;
        END IF;
        COMMIT;
    END LOOP;

    FOR v_row IN
        SELECT sr.run_id, sr.step, sr.attempt FROM qflow.step_runs sr
         WHERE sr.status = 'running' AND sr.lease_expires_at < now()
         ORDER BY sr.run_id LIMIT 1000
    LOOP
        IF qflow.sweep_lease(v_row.run_id, v_row.step, v_row.attempt) THEN
            expired_leases := expired_leases + 1;
        END IF;
        COMMIT;
    END LOOP;

    -- Queued steps whose job can no longer run them: the job is gone or finalized (River
    -- discarded it after an infrastructure error), or a worker fetched it and died before
    -- claiming (a claim follows a fetch within milliseconds). They are queued again.
    FOR v_row IN
        SELECT sr.run_id, sr.step, sr.attempt, sr.job_id FROM qflow.step_runs sr
          LEFT JOIN river.river_job j ON j.id = sr.job_id
         WHERE sr.status = 'queued'
           AND (j.id IS NULL
                OR j.state NOT IN ('available', 'scheduled', 'retryable', 'running', 'pending')
                OR (j.state = 'running' AND j.attempted_at < now() - interval '30 seconds'))
         ORDER BY sr.run_id LIMIT 1000
    LOOP
        IF qflow.sweep_lost_job(v_row.run_id, v_row.step, v_row.attempt, v_row.job_id) THEN
            requeued_steps := requeued_steps + 1;
        END IF;
        COMMIT;
    END LOOP;

    PERFORM qflow.sweep_orphaned_jobs();
    COMMIT;

    FOR v_row IN
        SELECT DISTINCT sr.workflow, sr.step
          FROM qflow.step_runs sr
          JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.step
         WHERE sr.status = 'ready' AND s.max_concurrency IS NOT NULL
    LOOP
        PERFORM qflow.sweep_limited(v_row.workflow, v_row.step);
        COMMIT;
    END LOOP;

    DELETE FROM qflow.workers WHERE last_seen_at < now() - interval '1 hour';
END $$;

-- secure_procedures applies qflow.procedure_access: nothing in schema qflow is callable by
-- PUBLIC, and the procedures marked definer run as their owner with a fixed search_path.
-- It changes a catalog row only where it must, so calling it again is cheap and invalidates
-- no plan. (CREATE OR REPLACE FUNCTION resets both settings: calling this after every
-- migration run restores them.)
CREATE FUNCTION qflow.secure_procedures()
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_proc record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('qflow.secure_procedures', 0));
    FOR v_proc IN
        SELECT p.oid::regprocedure AS signature
          FROM pg_proc p
         WHERE p.pronamespace = 'qflow'::regnamespace
           AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a
                                             WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
    LOOP
        EXECUTE format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', v_proc.signature);
    END LOOP;
    FOR v_proc IN
        SELECT p.oid::regprocedure AS signature
          FROM qflow.procedure_access pa
          JOIN pg_proc p ON p.proname = pa.name AND p.pronamespace = 'qflow'::regnamespace
         WHERE pa.definer
           AND NOT (p.prosecdef AND p.proconfig IS NOT DISTINCT FROM ARRAY['search_path=pg_catalog, qflow, pg_temp'])
    LOOP
        EXECUTE format('ALTER ROUTINE %s SECURITY DEFINER SET search_path = pg_catalog, qflow, pg_temp', v_proc.signature);
    END LOOP;
END $$;

-- ensure_roles creates the four roles where missing and grants each what it needs (see the
-- top of this file), in the current database. The caller must be able to create roles (or
-- they must exist) and to hand objects to the admin role: a superuser, or the owner of the
-- schemas with CREATEROLE (it then becomes a member of the admin role). Safe to run again and
-- from several processes at once.
CREATE FUNCTION qflow.ensure_roles(p_admin text, p_worker text, p_trigger text, p_reader text)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_role   text;
    v_obj    record;
    v_schema text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY[p_admin, p_worker, p_trigger, p_reader] LOOP
        IF v_role IS NULL OR v_role !~ '^[a-z_][a-z0-9_]{0,62}$' OR v_role ~ '^pg_' THEN
            RAISE EXCEPTION 'qflow: role name % is invalid', coalesce(quote_literal(v_role), 'NULL')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'use 1-63 lower-case letters, digits and _, not starting with pg_';
        END IF;
    END LOOP;
    IF (SELECT count(DISTINCT r) FROM unnest(ARRAY[p_admin, p_worker, p_trigger, p_reader]) r) <> 4 THEN
        RAISE EXCEPTION 'qflow: the four roles need four different names, got %, %, %, %', p_admin, p_worker, p_trigger, p_reader
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended('qflow.ensure_roles', 0));
    PERFORM qflow.secure_procedures();

    FOREACH v_role IN ARRAY ARRAY[p_admin, p_worker, p_trigger, p_reader] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration created it just now
            END;
        END IF;
    END LOOP;
    IF NOT pg_has_role(current_user, p_admin, 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', p_admin, current_user);
    END IF;

    -- admin owns everything: members run migrations, definer procedures run as admin.
    -- (Only what is missing: a member of admin that is not the database's owner may run this
    -- again, as `qflow migrate` does.)
    FOREACH v_role IN ARRAY ARRAY[p_admin, p_worker, p_trigger, p_reader] LOOP
        IF NOT has_database_privilege(v_role, current_database(), 'CONNECT') THEN
            EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), v_role);
        END IF;
    END LOOP;
    IF NOT has_database_privilege(p_admin, current_database(), 'CREATE') THEN
        EXECUTE format('GRANT CREATE ON DATABASE %I TO %I', current_database(), p_admin);
    END IF;
    FOREACH v_schema IN ARRAY ARRAY['qflow', 'ml', 'river'] LOOP
        CONTINUE WHEN to_regnamespace(v_schema) IS NULL;
        IF (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = v_schema) <> p_admin THEN
            EXECUTE format('ALTER SCHEMA %I OWNER TO %I', v_schema, p_admin);
        END IF;
        FOR v_obj IN
            SELECT c.oid::regclass AS name,
                   CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                                  WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind
              FROM pg_class c
             WHERE c.relnamespace = v_schema::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
               AND c.relowner <> p_admin::regrole
               -- identity and serial sequences follow their table
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
        LOOP
            EXECUTE format('ALTER %s %s OWNER TO %I', v_obj.kind, v_obj.name, p_admin);
        END LOOP;
        FOR v_obj IN
            SELECT p.oid::regprocedure AS name FROM pg_proc p
             WHERE p.pronamespace = v_schema::regnamespace AND p.proowner <> p_admin::regrole
        LOOP
            EXECUTE format('ALTER ROUTINE %s OWNER TO %I', v_obj.name, p_admin);
        END LOOP;
        FOR v_obj IN
            SELECT t.oid::regtype AS name FROM pg_type t
             WHERE t.typnamespace = v_schema::regnamespace AND t.typowner <> p_admin::regrole
               AND t.typtype IN ('e', 'd', 'r') AND t.typelem = 0
        LOOP
            EXECUTE format('ALTER TYPE %s OWNER TO %I', v_obj.name, p_admin);
        END LOOP;
    END LOOP;

    -- worker
    EXECUTE format('GRANT USAGE ON SCHEMA qflow, river, ml TO %I', p_worker);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA qflow TO %I', p_worker);
    EXECUTE format('GRANT INSERT, UPDATE, DELETE ON qflow.workers TO %I', p_worker);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA river, ml TO %I', p_worker);
    EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA river, ml TO %I', p_worker);
    EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA river TO %I', p_worker);
    -- trigger
    EXECUTE format('GRANT USAGE ON SCHEMA qflow TO %I', p_trigger);
    EXECUTE format('GRANT INSERT (workflow, version, input, priority, idempotency_key) ON qflow.runs TO %I', p_trigger);
    -- the id an INSERT ... RETURNING id gives back, and the key ON CONFLICT (idempotency_key) reads
    EXECUTE format('GRANT SELECT (id, idempotency_key) ON qflow.runs TO %I', p_trigger);
    -- reader
    EXECUTE format('GRANT USAGE ON SCHEMA qflow TO %I', p_reader);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA qflow TO %I', p_reader);

    FOR v_obj IN
        SELECT p.oid::regprocedure AS name, pa.roles
          FROM qflow.procedure_access pa
          JOIN pg_proc p ON p.proname = pa.name AND p.pronamespace = 'qflow'::regnamespace
         WHERE cardinality(pa.roles) > 0
    LOOP
        EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO %s', v_obj.name,
                       (SELECT string_agg(quote_ident(CASE r WHEN 'worker' THEN p_worker WHEN 'trigger' THEN p_trigger
                                                             ELSE p_reader END), ', ')
                          FROM unnest(v_obj.roles) r));
    END LOOP;
END $$;

SELECT qflow.secure_procedures();
