package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

func TestRetryRunRerunsOnlyWhatFailed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, func(w *pipelines.Workflow) { w.Steps[2].MaxAttempts = 1 }) // c
	run := b.start(t, "diamond", "{}")
	b.runStep(t, run, "a")
	b.runStep(t, run, "b")
	require.Equal(t, "failed", b.fail(t, run, "c", b.claim(t, run, "c"), false))
	require.Equal(t, "failed", b.runStatus(t, run))

	require.ErrorContains(t, b.execErr("SELECT qflow.retry_run($1)", b.start(t, "diamond", "{}")),
		"is running: only failed, cancelled or timed-out runs can be retried")

	b.exec(t, "SELECT qflow.retry_run($1)", run)
	require.Equal(t, "running", b.runStatus(t, run))
	require.Equal(t, "succeeded", b.stepStatus(t, run, "a"))
	require.Equal(t, "succeeded", b.stepStatus(t, run, "b"))
	require.Equal(t, "queued", b.stepStatus(t, run, "c"))
	require.Equal(t, "waiting", b.stepStatus(t, run, "d"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'a'", run), "a is not run again")

	// The retried step gets a fresh budget (max_attempts 1 would otherwise be spent).
	b.runStep(t, run, "c")
	b.runStep(t, run, "d")
	require.Equal(t, "succeeded", b.runStatus(t, run))
}
