-- retry_delay is the backoff before attempt n+1 after n failures counted in the budget:
-- min(max, base * 2^(n-1)), with "equal jitter" (half fixed, half random) so that retries of
-- many runs spread out but never come sooner than half the nominal delay.
CREATE FUNCTION qflow.retry_delay(p_base_ms bigint, p_max_ms bigint, p_failures integer)
RETURNS interval
LANGUAGE sql VOLATILE AS $$
    SELECT (d / 2 + random() * d / 2) * interval '1 millisecond'
      FROM (SELECT least(p_max_ms::double precision, p_base_ms * power(2, greatest(p_failures, 1) - 1)) AS d) x;
$$;
