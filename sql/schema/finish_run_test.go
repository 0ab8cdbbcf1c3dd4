package schema_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A claim commits its attempt while the run is being finished: the attempt must end with the
// run, not stay running in a finished run (the chaos test found this race).
func TestFinishRunCancelsAnAttemptClaimedMeanwhile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	run := b.start(t, "chain", "{}")

	claim, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer claim.Rollback(b.ctx) //nolint:errcheck
	var wf string
	require.NoError(t, claim.QueryRow(b.ctx, "SELECT workflow FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1)), 'w')", run).Scan(&wf))

	cancelled := make(chan error, 1)
	go func() {
		_, err := b.pool.Exec(b.ctx, "SELECT qflow.cancel_run($1)", run)
		cancelled <- err
	}()
	// The cancel waits for the claim's step row; let it get there, then commit the claim.
	require.Eventually(t, func() bool {
		return b.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%cancel_run%'`) > 0
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, claim.Commit(b.ctx))
	require.NoError(t, <-cancelled)

	require.Equal(t, "cancelled", b.runStatus(t, run))
	require.Equal(t, "cancelled", b.stepStatus(t, run, "a"))
	require.Equal(t, "cancelled", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND step = 'a'", run))
}
