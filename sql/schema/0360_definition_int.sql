-- definition_int reads one whole-number field of a definition object, with a default and bounds.
CREATE FUNCTION qflow.definition_int(p_obj jsonb, p_key text, p_default bigint, p_min bigint, p_max bigint, p_where text)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := p_obj -> p_key;
    n numeric;
BEGIN
    IF v IS NULL OR v = 'null'::jsonb THEN
        RETURN p_default;
    END IF;
    IF jsonb_typeof(v) <> 'number' THEN
        RAISE EXCEPTION 'qflow: %: "%" must be a number, got %', p_where, p_key, v
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    n := v::text::numeric;
    IF n <> trunc(n) OR n < p_min OR n > p_max THEN
        RAISE EXCEPTION 'qflow: %: "%" must be a whole number between % and %, got %', p_where, p_key, p_min, p_max, n
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN n::bigint;
END $$;
