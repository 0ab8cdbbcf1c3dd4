package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

func TestReleaseStepRequeuesWithoutSpendingAnAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, func(w *pipelines.Workflow) { w.Steps[0].MaxAttempts = 1 })
	run := b.start(t, "chain", "{}")
	attempt := b.claim(t, run, "a")

	require.Equal(t, "released", b.report(t, run, "a", attempt, map[string]any{"result": "release", "error": "shutting down"}))
	require.Equal(t, "queued", b.stepStatus(t, run, "a"))
	require.Equal(t, "cancelled", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND step = 'a' AND attempt = 1", run))

	// The step had one attempt in its budget and it was not spent: a failure now fails it.
	require.Equal(t, "failed", b.fail(t, run, "a", b.claim(t, run, "a"), false))
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1", run))
}
