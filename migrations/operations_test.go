package migrations_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
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

func TestReleaseStepRequeuesWithoutSpendingAnAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, func(w *pipelines.Workflow) { w.Steps[0].MaxAttempts = 1 })
	run := b.start(t, "chain", "{}")
	attempt := b.claim(t, run, "a")

	var released bool
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.release_step($1, 'a', $2, 'shutting down')", run, attempt).Scan(&released))
	require.True(t, released)
	require.Equal(t, "queued", b.stepStatus(t, run, "a"))
	require.Equal(t, "cancelled", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND step = 'a' AND attempt = 1", run))

	// The step had one attempt in its budget and it was not spent: a failure now fails it.
	require.Equal(t, "failed", b.fail(t, run, "a", b.claim(t, run, "a"), false))
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1", run))
}

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
