package web_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// These helpers play a worker's part with the calls a worker makes (claim_steps,
// finish_steps), so a test can leave a run in any state, and hold it there, without one.

// claim claims the current attempt of a queued step and returns the attempt.
func (b *testBundle) claim(t *testing.T, run int64, step string) int {
	t.Helper()
	attempt := b.Count(t, "SELECT attempt FROM qflow.step_runs WHERE run_id = $1 AND step = $2", run, step)
	require.Equal(t, 1, b.Count(t, `SELECT count(*) FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', $2::text, 'attempt', $3::integer)), 'web-test')`, run, step, attempt),
		"claiming %s of run %d", step, run)
	return attempt
}

// succeed claims a step and completes it with output, as finish_steps takes a result.
func (b *testBundle) succeed(t *testing.T, run int64, step, output string) {
	t.Helper()
	attempt := b.claim(t, run, step)
	doc, err := json.Marshal([]any{map[string]any{"run_id": run, "step": step, "attempt": attempt,
		"result": "complete", "output": json.RawMessage(output)}})
	require.NoError(t, err)
	b.Exec(t, "SELECT * FROM qflow.finish_steps($1)", doc)
}

// rerunFrom forks a finished run from a step and returns the new run.
func (b *testBundle) rerunFrom(t *testing.T, run int64, step string) int64 {
	t.Helper()
	var fork int64
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT qflow.rerun_from($1, $2)", run, step).Scan(&fork))
	return fork
}
