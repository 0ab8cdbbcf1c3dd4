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
--            list_workflows(), workflow_stats(), step_stats(). The model registry (ml.models);
--            no other ml table, no River, no writes.
--
-- A role calls a procedure only where qflow.procedure_access lists it. Procedures that cross
-- those lines (a trigger inserting a run makes step rows and River jobs it may not touch
-- itself) run as their owner, the admin role: SECURITY DEFINER with a fixed search_path, so
-- that nothing a caller puts on its own path is ever looked up by them. The sweep is the one
-- procedure that cannot be SECURITY DEFINER (it commits after each item, which Postgres
-- forbids there); it does every change through SECURITY DEFINER helpers instead.
--
-- Grants on qflow's routines survive the code pass of `qflow migrate` (migrations/doc.go),
-- and `qflow migrate` calls ensure_roles after it, so SECURITY DEFINER and the grants always
-- follow qflow.procedure_access (0920_procedure_access.sql).

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
    -- the model registry, which the web view's /models shows; not the task records
    IF to_regclass('ml.models') IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA ml TO %I', p_reader);
        EXECUTE format('GRANT SELECT ON ml.models TO %I', p_reader);
    END IF;
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
