package schema_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

// demand is one row of qflow.autoscaling.
type demand struct {
	WorkerClass    string
	Backlog        int64
	Running        int64
	Wanted         int64
	DesiredWorkers int32
}

func (b *testBundle) autoscaling(t *testing.T, maxWorkers int, class any) []demand {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, "SELECT * FROM qflow.autoscaling($1, $2)", maxWorkers, class)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[demand])
	require.NoError(t, err)
	return out
}

// train is a = prepare (cpu) → b = fit (gpu, at most 2 at once fleet-wide).
func (b *testBundle) train(t *testing.T) {
	b.chain(t, func(w *pipelines.Workflow) {
		w.Steps[1].WorkerClass = "gpu"
		w.Steps[1].MaxConcurrency = 2
		w.Steps[2].RetryBaseMS = 600_000 // c's retries wait ten minutes
		w.Steps[2].RetryMaxMS = 600_000
	})
}

func TestAutoscalingWantsAWorkerSlotForEveryDueOrRunningStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.train(t)
	require.Equal(t, []demand{{"cpu", 0, 0, 0, 0}, {"gpu", 0, 0, 0, 0}}, b.autoscaling(t, 2, nil), "idle: no worker wanted")

	var runs []int64
	for i := 0; i < 5; i++ {
		runs = append(runs, b.start(t, "chain", "{}"))
	}
	require.Equal(t, []demand{{"cpu", 5, 0, 5, 3}, {"gpu", 0, 0, 0, 0}}, b.autoscaling(t, 2, nil), "5 queued steps, 2 per worker")
	b.claim(t, runs[0], "a")
	b.claim(t, runs[1], "a")
	require.Equal(t, []demand{{"cpu", 3, 2, 5, 3}, {"gpu", 0, 0, 0, 0}}, b.autoscaling(t, 2, nil), "running steps keep their slots")

	// Every a done: five fits are due, but at most 2 may run at once.
	for _, r := range runs {
		if b.stepStatus(t, r, "a") == "running" {
			require.True(t, b.complete(t, r, "a", 1, `{}`))
		} else {
			b.runStep(t, r, "a")
		}
	}
	require.Equal(t, []demand{{"gpu", 5, 0, 2, 2}}, b.autoscaling(t, 1, "gpu"), "held back by max_concurrency: 2 slots, not 5")
	b.claim(t, runs[0], "b")
	require.Equal(t, []demand{{"gpu", 4, 1, 2, 2}}, b.autoscaling(t, 1, "gpu"))

	// A retry in its backoff wants no worker until it is due.
	b.runStep(t, runs[0], "b")
	require.Equal(t, "retry", b.fail(t, runs[0], "c", b.claim(t, runs[0], "c"), false))
	require.Equal(t, []demand{{"cpu", 0, 0, 0, 0}}, b.autoscaling(t, 10, "cpu"))
	b.exec(t, "UPDATE qflow.step_runs SET next_attempt_at = now() WHERE run_id = $1 AND step = 'c'", runs[0])
	require.Equal(t, []demand{{"cpu", 1, 0, 1, 1}}, b.autoscaling(t, 10, "cpu"))

	// A legacy run is one job of the cpu queue: one slot, waiting or running.
	b.exec(t, "INSERT INTO qflow.runs (workflow, mode) VALUES ('chain', 'legacy')")
	require.Equal(t, []demand{{"cpu", 2, 0, 2, 1}}, b.autoscaling(t, 10, "cpu"))

	require.Equal(t, []demand{{"tpu", 0, 0, 0, 0}}, b.autoscaling(t, 1, "tpu"), "a class nothing names: one row, zeros")
	require.ErrorContains(t, b.execErr("SELECT * FROM qflow.autoscaling(0)"), "max workers per process must be at least 1, got 0")
}
