-- run_mode is the stable canary split: a run's id decides its mode once and for all. The
-- multiplier is coprime with 100, so any 100 consecutive ids split exactly.
CREATE FUNCTION qflow.run_mode(p_workflow text, p_run_id bigint)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_rollout qflow.rollouts;
BEGIN
    SELECT * INTO v_rollout FROM qflow.rollouts WHERE workflow = p_workflow;
    IF NOT FOUND THEN
        RETURN 'workflow';
    ELSIF NOT v_rollout.enabled THEN
        RETURN 'legacy';
    ELSIF mod(p_run_id * 7919, 100) < v_rollout.canary_percent THEN
        RETURN 'workflow';
    END IF;
    RETURN 'legacy';
END $$;
