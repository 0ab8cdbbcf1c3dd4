-- schedules_check refuses, at insert or update, a schedule that names an unknown workflow, a
-- time zone Postgres does not know, or a cron expression that is not of the shape the workers'
-- cron library (github.com/robfig/cron/v3, standard form) reads: five fields (minute, hour, day
-- of month, month, day of week) of *, ?, numbers or names, ranges, steps and lists within each
-- field's bounds, or a descriptor (@yearly, @annually, @monthly, @weekly, @daily, @midnight,
-- @hourly, @every <duration>). Computing fire times is the library's alone; an expression it
-- still refuses is reported in the row's error and does not fire.
CREATE FUNCTION qflow.schedules_check()
RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_fields text[];
    v_bounds integer[] := ARRAY[59, 23, 31, 12, 7];
    v_names  text[] := ARRAY['minute', 'hour', 'day of month', 'month', 'day of week'];
    v_part   text;
    v_n      text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM qflow.workflows WHERE name = NEW.workflow) THEN
        RAISE EXCEPTION 'qflow: schedule %: unknown workflow "%"', NEW.name, NEW.workflow
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'SELECT name FROM qflow.list_workflows() shows the registered workflows';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.time_zone) THEN
        RAISE EXCEPTION 'qflow: schedule %: unknown time zone "%"', NEW.name, NEW.time_zone
            USING ERRCODE = 'invalid_parameter_value', HINT = 'use a name of pg_timezone_names, e.g. UTC or Europe/Berlin';
    END IF;
    NEW.cron := btrim(NEW.cron);
    IF NEW.cron ~ '^@(yearly|annually|monthly|weekly|daily|midnight|hourly)$'
       OR NEW.cron ~ '^@every ([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$' THEN
        NEW.updated_at := now();
        RETURN NEW;
    END IF;
    v_fields := regexp_split_to_array(NEW.cron, '\s+');
    IF cardinality(v_fields) <> 5 THEN
        RAISE EXCEPTION 'qflow: schedule %: cron expression "%" has % field(s), not 5 (minute hour day-of-month month day-of-week)',
                        NEW.name, NEW.cron, cardinality(v_fields)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'e.g. "0 3 * * *" is every day at 03:00; "@hourly" works too';
    END IF;
    FOR i IN 1..5 LOOP
        FOREACH v_part IN ARRAY string_to_array(v_fields[i], ',') LOOP
            IF v_part !~* '^(\*|\?|[0-9a-z]+(-[0-9a-z]+)?)(/[0-9]+)?$' THEN
                RAISE EXCEPTION 'qflow: schedule %: cron expression "%": % field "%" is malformed', NEW.name, NEW.cron, v_names[i], v_fields[i]
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            FOR v_n IN SELECT m[1] FROM regexp_matches(split_part(v_part, '/', 1), '([0-9]+)', 'g') AS m LOOP
                IF v_n::numeric > v_bounds[i] THEN
                    RAISE EXCEPTION 'qflow: schedule %: cron expression "%": % % is out of range (at most %)',
                                    NEW.name, NEW.cron, v_names[i], v_n, v_bounds[i]
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
            END LOOP;
        END LOOP;
    END LOOP;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER schedules_check BEFORE INSERT OR UPDATE OF workflow, cron, time_zone ON qflow.schedules
    FOR EACH ROW EXECUTE FUNCTION qflow.schedules_check();
