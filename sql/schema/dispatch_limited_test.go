package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

func TestMaxConcurrencyHoldsAcrossRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, func(w *pipelines.Workflow) { w.Steps[1].MaxConcurrency = 2 }) // b
	inFlight := func() int {
		return b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE step = 'b' AND status IN ('queued', 'running')")
	}

	var runs []int64
	for i := 0; i < 6; i++ {
		runs = append(runs, b.start(t, "chain", "{}"))
	}
	for _, r := range runs {
		b.runStep(t, r, "a")
		require.LessOrEqual(t, inFlight(), 2)
	}
	require.Equal(t, 2, inFlight())
	require.Equal(t, 4, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE step = 'b' AND status = 'ready'"))

	// Finishing, failing for good and cancelling each hand the slot to the oldest waiting run.
	b.runStep(t, runs[0], "b")
	require.Equal(t, "queued", b.stepStatus(t, runs[2], "b"))
	require.Equal(t, "failed", b.fail(t, runs[1], "b", b.claim(t, runs[1], "b"), true))
	require.Equal(t, "queued", b.stepStatus(t, runs[3], "b"))
	b.exec(t, "SELECT qflow.cancel_run($1)", runs[2])
	require.Equal(t, "queued", b.stepStatus(t, runs[4], "b"))
	require.Equal(t, 2, inFlight())

	// A retry waiting for its backoff competes for a slot like any other ready row.
	require.Equal(t, "retry", b.fail(t, runs[3], "b", b.claim(t, runs[3], "b"), false))
	require.Equal(t, 2, inFlight())
}
