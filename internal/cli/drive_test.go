package cli

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
	    'run_id', $1::bigint, 'step', $2::text, 'attempt', $3::integer)), 'cli-test')`, run, step, attempt),
		"claiming %s of run %d", step, run)
	return attempt
}

// finish reports the result of a claimed attempt as finish_steps takes it.
func (b *testBundle) finish(t *testing.T, run int64, step string, attempt int, result map[string]any) {
	t.Helper()
	entry := map[string]any{"run_id": run, "step": step, "attempt": attempt}
	for k, v := range result {
		entry[k] = v
	}
	doc, err := json.Marshal([]any{entry})
	require.NoError(t, err)
	b.Exec(t, "SELECT * FROM qflow.finish_steps($1)", doc)
}

// succeed claims a step and completes it with output.
func (b *testBundle) succeed(t *testing.T, run int64, step, output string) {
	t.Helper()
	b.finish(t, run, step, b.claim(t, run, step), map[string]any{"result": "complete", "output": json.RawMessage(output)})
}

// failFor claims a step and fails it for good with message.
func (b *testBundle) failFor(t *testing.T, run int64, step, message string) {
	t.Helper()
	b.finish(t, run, step, b.claim(t, run, step), map[string]any{"result": "fail", "error": message, "permanent": true})
}
