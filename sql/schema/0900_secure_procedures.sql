-- secure_procedures applies qflow.procedure_access: nothing in schema qflow is callable by
-- PUBLIC, and the procedures marked definer run as their owner with a fixed search_path
-- (other settings a function declares, such as plan_cache_mode, are kept). It changes a
-- catalog row only where it must, so calling it again is cheap and invalidates no plan.
-- `qflow migrate` calls it after every code pass.
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
           AND NOT (p.prosecdef AND 'search_path=pg_catalog, qflow, pg_temp' = ANY (coalesce(p.proconfig, '{}')))
    LOOP
        EXECUTE format('ALTER ROUTINE %s SECURITY DEFINER SET search_path = pg_catalog, qflow, pg_temp', v_proc.signature);
    END LOOP;
END $$;
