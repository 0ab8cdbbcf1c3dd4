package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/worker"
)

func TestMaxConcurrencyNeverExceededUnderLoad(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const limit = 3
	b.add(t, "limited", map[string][]string{"a": nil, "b": {"a"}, "c": {"b"}}, func(w *pipelines.Workflow) {
		w.Steps[1].MaxConcurrency = limit // b
	})
	// Two worker processes' worth of slots, far more than the limit.
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 10})
	b.StartWorker(t, worker.Config{ID: "w2", MaxWorkers: 10})

	_, err := b.Pool.Exec(b.Ctx, `INSERT INTO qflow.runs (workflow, input)
	                               SELECT 'limited', '{"sleep_ms": {"b": 15}}' FROM generate_series(1, 200)`)
	require.NoError(t, err)
	b.WaitRuns(t, 5*time.Minute)
	require.Equal(t, 200, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE status = 'succeeded'"))

	// The most attempts of b that overlapped at any instant, from the attempt history.
	peak := b.Count(t, `
		SELECT max(running) FROM (
		    SELECT sum(delta) OVER (ORDER BY at, delta) AS running
		      FROM (SELECT started_at AS at, 1 AS delta FROM qflow.step_attempts WHERE step = 'b'
		            UNION ALL
		            SELECT finished_at, -1 FROM qflow.step_attempts WHERE step = 'b') e) x`)
	require.LessOrEqual(t, peak, limit)
	require.Equal(t, limit, peak, "the limit is also used, not just respected")
}
