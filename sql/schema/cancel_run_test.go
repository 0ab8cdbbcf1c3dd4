package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCancelRunStopsEverything(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil)
	run := b.start(t, "diamond", "{}")
	b.runStep(t, run, "a")
	bAttempt := b.claim(t, run, "b")

	var ok bool
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.cancel_run($1)", run).Scan(&ok))
	require.True(t, ok)
	require.Equal(t, "cancelled", b.runStatus(t, run))
	for _, s := range []string{"b", "c", "d"} {
		require.Equal(t, "cancelled", b.stepStatus(t, run, s))
	}
	require.Equal(t, "succeeded", b.stepStatus(t, run, "a"))
	require.Equal(t, "cancelled", b.jobState(t, run, "c"))
	require.False(t, b.complete(t, run, "b", bAttempt, "{}"), "the running step's late result is ignored")

	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.cancel_run($1)", run).Scan(&ok))
	require.False(t, ok, "cancelling twice is harmless")
	require.ErrorContains(t, b.execErr("SELECT qflow.cancel_run(999999)"), "run 999999 does not exist")
}
