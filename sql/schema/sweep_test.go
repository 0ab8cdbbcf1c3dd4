package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSweepRetriesExpiredLeasesAndTimesOutRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	b.register(t, "slow", map[string][]string{"a": nil}, nil)

	// A worker claimed a step and died: its lease runs out.
	dead := b.start(t, "chain", "{}")
	attempt := b.claim(t, dead, "a")
	b.exec(t, "UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')", dead)
	oldJob := b.count(t, "SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a'", dead)
	b.exec(t, "UPDATE qflow.step_runs SET lease_expires_at = now() - interval '1 second' WHERE run_id = $1 AND step = 'a'", dead)

	// A run is past its deadline.
	late := b.start(t, "slow", "{}")
	b.exec(t, "UPDATE qflow.runs SET deadline = now() - interval '1 second' WHERE id = $1", late)

	b.exec(t, "CALL qflow.sweep()")

	require.Equal(t, "timed_out", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND step = 'a' AND attempt = $2", dead, attempt))
	require.Contains(t, b.scalar(t, "SELECT error FROM qflow.step_attempts WHERE run_id = $1 AND attempt = $2", dead, attempt), "lease expired: worker test-worker")
	require.Equal(t, "queued", b.stepStatus(t, dead, "a"))
	require.Equal(t, attempt+1, b.stepInt(t, dead, "a", "attempt"))
	require.Equal(t, "cancelled", b.scalar(t, "SELECT state::text FROM river.river_job WHERE id = $1", oldJob), "the dead worker's job is not rescued later")

	require.Equal(t, "timed_out", b.runStatus(t, late))
	require.Equal(t, "cancelled", b.stepStatus(t, late, "a"))
	require.Equal(t, "cancelled", b.jobState(t, late, "a"))
}

func TestSweepRequeuesStepsWhoseJobWasLost(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	discarded := b.start(t, "chain", "{}")
	b.exec(t, "UPDATE river.river_job SET state = 'discarded', finalized_at = now() WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')", discarded)
	fetchedByTheDead := b.start(t, "chain", "{}")
	b.exec(t, `UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '1 minute'
	            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')`, fetchedByTheDead)
	fresh := b.start(t, "chain", "{}")
	b.exec(t, `UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now()
	            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')`, fresh)

	b.exec(t, "CALL qflow.sweep()")

	for _, r := range []int64{discarded, fetchedByTheDead} {
		require.Equal(t, 2, b.stepInt(t, r, "a", "attempt"))
		require.Equal(t, "available", b.jobState(t, r, "a"))
	}
	require.Equal(t, 1, b.stepInt(t, fresh, "a", "attempt"), "a job fetched just now is left to its worker")
}
