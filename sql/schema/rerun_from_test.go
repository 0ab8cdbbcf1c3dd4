package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRerunFromReusesEveryOutputBeforeTheStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil) // a → {b, c} → d
	run := b.start(t, "diamond", `{"n": 5}`)
	b.runStep(t, run, "a")
	b.runStep(t, run, "b")
	require.Equal(t, "failed", b.fail(t, run, "c", b.claim(t, run, "c"), true))
	require.Equal(t, "failed", b.runStatus(t, run))

	var fork int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.rerun_from($1, 'c')", run).Scan(&fork))

	doc := b.statusDoc(t, fork)
	require.EqualValues(t, run, doc["forked_from"])
	require.Equal(t, "c", doc["forked_step"])
	require.JSONEq(t, `{"n": 5}`, string(mustJSON(t, doc["input"])))
	// a and b are not downstream of c: reused, not run.
	for _, s := range []string{"a", "b"} {
		require.Equal(t, "succeeded", b.stepStatus(t, fork, s), s)
		require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = $2", fork, s))
		require.Equal(t, b.scalar(t, "SELECT output::text FROM qflow.step_runs WHERE run_id = $1 AND step = $2", run, s),
			b.scalar(t, "SELECT output::text FROM qflow.step_runs WHERE run_id = $1 AND step = $2", fork, s))
	}
	require.Equal(t, "queued", b.stepStatus(t, fork, "c"), "c runs again")
	require.Equal(t, "waiting", b.stepStatus(t, fork, "d"))
	require.Equal(t, 2, b.count(t, "SELECT remaining_steps FROM qflow.runs WHERE id = $1", fork))

	b.runStep(t, fork, "c")
	b.runStep(t, fork, "d")
	require.Equal(t, "succeeded", b.runStatus(t, fork))
	require.Equal(t, "failed", b.runStatus(t, run), "the source run is left as it was")
}

func TestRerunFromASucceededRunAndItsRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil) // a → b → c
	run := b.start(t, "chain", "{}")
	for _, s := range []string{"a", "b", "c"} {
		b.runStep(t, run, s)
	}
	var fork int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.rerun_from($1, 'b')", run).Scan(&fork))
	require.Equal(t, "succeeded", b.stepStatus(t, fork, "a"))
	require.Equal(t, "queued", b.stepStatus(t, fork, "b"))
	require.Equal(t, "waiting", b.stepStatus(t, fork, "c"))

	require.ErrorContains(t, b.execErr("SELECT qflow.rerun_from($1, 'x')", run), "has no step 'x'")
	require.ErrorContains(t, b.execErr("SELECT qflow.rerun_from($1, 'a')", fork), "is running: only a finished run can be forked")
	require.ErrorContains(t, b.execErr("SELECT qflow.rerun_from(999999, 'a')"), "run 999999 does not exist")
	// Only a fork may insert a succeeded step row.
	require.ErrorContains(t, b.execErr(`INSERT INTO qflow.step_runs (run_id, step, workflow, version, status, remaining_deps, priority, output, finished_at, attempt)
	                                     VALUES ($1, 'zz', 'chain', 1, 'succeeded', 0, 2, '{}', now(), 1)`, run), "cannot start as succeeded")
}
