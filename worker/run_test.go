package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

func TestRunsFlowAlongEdges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 4})

	chain := b.Start(t, probe.Chain, `{}`)
	diamond := b.Start(t, probe.Diamond, `{"seed": 2}`)
	b.WaitRuns(t, time.Minute)

	r := b.Run(t, chain)
	require.Equal(t, "succeeded", r.Status)
	jsonEq(t, `{"e": {"step": "e", "value": 31}}`, r.Output)

	r = b.Run(t, diamond)
	require.Equal(t, "succeeded", r.Status)
	// a = 1+2*2 = 5; b = c = 11; d = 1 + 2*22 = 45
	jsonEq(t, `{"d": {"step": "d", "value": 45}}`, r.Output)
	require.Equal(t, 9, b.Count(t, "SELECT count(*) FROM qflow.step_attempts WHERE status = 'succeeded'"))
	require.Zero(t, b.Count(t, "SELECT count(*) FROM river.river_job WHERE kind = 'qflow_step' AND state <> 'completed'"))
}

func TestBulkInsertedRunsAllSucceed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 20})

	_, err := b.Pool.Exec(b.Ctx, `INSERT INTO qflow.runs (workflow, input)
	                               SELECT 'probe_chain', jsonb_build_object('seed', g) FROM generate_series(1, 1000) g`)
	require.NoError(t, err)
	b.WaitRuns(t, 5*time.Minute)

	require.Equal(t, 1000, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE status = 'succeeded'"))
	require.Equal(t, 5000, b.Count(t, "SELECT count(*) FROM qflow.step_attempts WHERE status = 'succeeded'"))
	// Output of e for seed s: 31 + 32*s.
	require.Zero(t, b.Count(t, `SELECT count(*) FROM qflow.runs WHERE (output -> 'e' ->> 'value')::bigint <> 31 + 32 * (input ->> 'seed')::bigint`))
}
