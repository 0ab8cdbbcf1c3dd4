-- procedure_access: which role may call which procedure, and which run as their owner
-- (SECURITY DEFINER). Its rows are the grants' source of truth and live with the grants, in
-- 0920_procedure_access.sql; 0900_secure_procedures.sql and 0910_ensure_roles.sql apply them.

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
