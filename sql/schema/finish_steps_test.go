package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCompleteStepUnlocksSuccessorsAndFinishesRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil)
	run := b.start(t, "diamond", `{"n": 7}`)

	a := b.claim(t, run, "a")
	require.True(t, b.complete(t, run, "a", a, `{"v": "a"}`))
	require.Equal(t, "queued", b.stepStatus(t, run, "b"))
	require.Equal(t, "queued", b.stepStatus(t, run, "c"))

	b.runStep(t, run, "b")
	require.Equal(t, "waiting", b.stepStatus(t, run, "d"), "d still waits for c")
	require.Equal(t, 1, b.stepInt(t, run, "d", "remaining_deps"))

	// A step's input is the run input plus its dependencies' outputs.
	attempt := b.stepInt(t, run, "c", "attempt")
	var input, deps string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT input::text, deps::text FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'c', 'attempt', $2::integer)), 'w')", run, attempt).Scan(&input, &deps))
	require.JSONEq(t, `{"n": 7}`, input)
	require.JSONEq(t, `{"a": {"v": "a"}}`, deps)
	require.True(t, b.complete(t, run, "c", attempt, `{"v": "c"}`))

	require.Equal(t, "queued", b.stepStatus(t, run, "d"))
	require.Equal(t, "running", b.runStatus(t, run))
	d := b.claim(t, run, "d")
	require.True(t, b.complete(t, run, "d", d, `{"v": "d"}`))

	require.Equal(t, "succeeded", b.runStatus(t, run))
	var out string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT output::text FROM qflow.runs WHERE id = $1", run).Scan(&out))
	require.JSONEq(t, `{"d": {"v": "d"}}`, out, "run output is the leaf steps' outputs")
	require.Equal(t, 4, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND status = 'succeeded'", run))
}

func TestLateAndDuplicateCompletionsChangeNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	run := b.start(t, "chain", "{}")

	first := b.claim(t, run, "a")
	require.Equal(t, "retry", b.fail(t, run, "a", first, false))
	b.exec(t, "UPDATE qflow.step_runs SET next_attempt_at = now() WHERE run_id = $1", run)

	// The first attempt's worker reports success late: the step is on attempt 2 now.
	require.False(t, b.complete(t, run, "a", first, `{"late": true}`))
	require.Equal(t, "stale", b.fail(t, run, "a", first, false))

	second := b.claim(t, run, "a")
	require.Equal(t, first+1, second)
	require.True(t, b.complete(t, run, "a", second, `{"v": 2}`))
	// The same completion delivered again.
	require.False(t, b.complete(t, run, "a", second, `{"v": "dup"}`))
	require.Equal(t, "stale", b.fail(t, run, "a", second, true))

	var out string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT output::text FROM qflow.step_runs WHERE run_id = $1 AND step = 'a'", run).Scan(&out))
	require.JSONEq(t, `{"v": 2}`, out)
	require.Equal(t, "queued", b.stepStatus(t, run, "b"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND status = 'queued'", run), "b was dispatched once")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM river.river_job WHERE args ->> 'step' = 'b'"))

	// A duplicate claim of a step already running is refused too.
	b.claim(t, run, "b")
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'b', 'attempt', 1)), 'other')", run))
}
