package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

func TestLegacyModeRunsTheWholeChainInOneJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 2})

	// Rollback: every new run of the workflow goes to legacy mode.
	_, err := b.Pool.Exec(b.Ctx, "INSERT INTO qflow.rollouts (workflow, enabled) VALUES ($1, false)", probe.Diamond)
	require.NoError(t, err)
	legacy := b.Start(t, probe.Diamond, `{"seed": 3, "fail": {"c": 1}}`)
	fatal := b.Start(t, probe.Diamond, `{"fatal": ["b"]}`)
	_, err = b.Pool.Exec(b.Ctx, "UPDATE qflow.rollouts SET enabled = true, canary_percent = 100 WHERE workflow = $1", probe.Diamond)
	require.NoError(t, err)
	modern := b.Start(t, probe.Diamond, `{"seed": 3, "fail": {"c": 1}}`)
	b.WaitRuns(t, time.Minute)

	l, m := b.Run(t, legacy), b.Run(t, modern)
	require.Equal(t, "legacy", l.Mode)
	require.Equal(t, "workflow", m.Mode)
	require.Equal(t, "succeeded", l.Status)
	require.Equal(t, "succeeded", m.Status)
	require.JSONEq(t, string(m.Output), string(l.Output), "both modes compute the same output")
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1", legacy), "legacy mode keeps no per-step state")
	require.Equal(t, 2, b.Count(t, "SELECT attempt FROM qflow.runs WHERE id = $1", legacy), "the failure retried the whole chain")

	f := b.Run(t, fatal)
	require.Equal(t, "failed", f.Status)
	require.Contains(t, f.Error, "legacy run failed permanently: step b: probe: step b is fatal by request")
	require.Equal(t, 1, b.Count(t, "SELECT attempt FROM qflow.runs WHERE id = $1", fatal))
}

func TestLegacyResultIsSentAgainUntilPostgresTakesIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Postgres refuses the first five calls that record a legacy run's result, as a server
	// that is starting up does (57P03), and takes the sixth. A sequence counts the calls: a
	// refused call rolls back everything else it wrote.
	b.Exec(t, "CREATE SEQUENCE public.result_calls")
	b.Exec(t, `CREATE FUNCTION public.refuse_results() RETURNS trigger LANGUAGE plpgsql AS $$
	           BEGIN
	               IF nextval('public.result_calls') <= 5 THEN
	                   RAISE EXCEPTION 'the database system is starting up' USING ERRCODE = '57P03';
	               END IF;
	               RETURN NEW;
	           END $$`)
	// legacy_complete writes the output of a run that stays running until finish_run.
	b.Exec(t, `CREATE TRIGGER refuse_results BEFORE UPDATE ON qflow.runs FOR EACH ROW
	           WHEN (OLD.mode = 'legacy' AND OLD.status = 'running' AND NEW.status = 'running')
	           EXECUTE FUNCTION public.refuse_results()`)
	logs := &logBuffer{}
	b.StartWorker(t, worker.Config{ID: "w1", Logger: logs.logger()})

	run := b.Wait(t, b.StartMode(t, probe.Chain, "legacy", `{}`), time.Minute)
	require.Equal(t, "succeeded", run.Status, run.Error)
	require.JSONEq(t, `{"e": {"step": "e", "value": 31}}`, string(run.Output))
	require.Equal(t, 1, b.Count(t, "SELECT attempt FROM qflow.runs WHERE id = $1", run.ID),
		"the chain that ran recorded its result; it did not run again")
	require.Equal(t, 6, b.Count(t, "SELECT last_value FROM public.result_calls"))
	require.Equal(t, 1, b.Count(t, "SELECT count(*) FROM river.river_job WHERE kind = 'qflow_legacy' AND state = 'completed'"))

	failures := 0
	for _, r := range logs.records(t) {
		if r["msg"] == "recording legacy result failed" {
			failures++
			require.Equal(t, "WARN", r["level"])
			require.Contains(t, r["err"], "SQLSTATE 57P03")
		}
	}
	require.Equal(t, 5, failures, "each refusal is logged")
}
