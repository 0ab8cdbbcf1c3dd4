package migrations_test

import (
	"fmt"
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

	// Each sweep finds these, without the complete search of every queued step.
	b.exec(t, "UPDATE qflow.sweep_state SET full_scan_at = now()")
	b.exec(t, "CALL qflow.sweep()")

	for _, r := range []int64{discarded, fetchedByTheDead} {
		require.Equal(t, 2, b.stepInt(t, r, "a", "attempt"))
		require.Equal(t, "available", b.jobState(t, r, "a"))
	}
	require.Equal(t, 1, b.stepInt(t, fresh, "a", "attempt"), "a job fetched just now is left to its worker")
}

func TestSweepFindsRarerLostJobsInItsSearchEveryFiveMinutes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	deleted := b.start(t, "chain", "{}")
	b.exec(t, "DELETE FROM river.river_job WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')", deleted)
	longDiscarded := b.start(t, "chain", "{}")
	b.exec(t, `UPDATE river.river_job SET state = 'discarded', finalized_at = now() - interval '2 hours'
	            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')`, longDiscarded)
	completed := b.start(t, "chain", "{}")
	b.exec(t, `UPDATE river.river_job SET state = 'completed', finalized_at = now()
	            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')`, completed)
	waiting := b.start(t, "chain", "{}")
	lost := []int64{deleted, longDiscarded, completed}

	// Searched a minute ago: the sweeps of each second leave them.
	b.exec(t, "UPDATE qflow.sweep_state SET full_scan_at = now() - interval '1 minute'")
	b.exec(t, "CALL qflow.sweep()")
	for _, r := range lost {
		require.Equal(t, 1, b.stepInt(t, r, "a", "attempt"))
		require.Equal(t, "queued", b.stepStatus(t, r, "a"))
	}

	// Five minutes on, the complete search queues each again with a new job, and notes when it ran.
	b.exec(t, "UPDATE qflow.sweep_state SET full_scan_at = now() - interval '5 minutes'")
	b.exec(t, "CALL qflow.sweep()")
	for _, r := range lost {
		require.Equal(t, 2, b.stepInt(t, r, "a", "attempt"), "run %d", r)
		require.Equal(t, "available", b.jobState(t, r, "a"), "run %d", r)
	}
	require.Equal(t, 1, b.stepInt(t, waiting, "a", "attempt"), "a step whose job waits is left alone")
	require.Equal(t, true, b.scalar(t, "SELECT full_scan_at > now() - interval '1 minute' FROM qflow.sweep_state"))
}

func TestAResultWhoseClaimWasLostQueuesItsStepAgainAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	// River fetched each a's job, the worker claimed it and ran it, but an immediate restart
	// undid the claim (claims commit without waiting for the WAL flush): the step is queued
	// with the job when the result arrives.
	completed, failed := b.start(t, "chain", "{}"), b.start(t, "chain", "{}")
	cancelled := b.start(t, "chain", "{}")
	jobs := map[int64]int64{}
	for _, r := range []int64{completed, failed, cancelled} {
		b.exec(t, `UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now()
		            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')`, r)
		jobs[r] = int64(b.stepInt(t, r, "a", "job_id"))
	}
	b.exec(t, "SELECT qflow.cancel_run($1)", cancelled)

	rows, err := b.pool.Query(b.ctx, `SELECT run_id, outcome FROM qflow.finish_steps($1)`, fmt.Sprintf(`[
		{"run_id": %d, "step": "a", "attempt": 1, "job_id": %d, "result": "complete", "output": {}},
		{"run_id": %d, "step": "a", "attempt": 1, "job_id": %d, "result": "fail", "error": "boom"},
		{"run_id": %d, "step": "a", "attempt": 1, "job_id": %d, "result": "complete", "output": {}}]`,
		completed, jobs[completed], failed, jobs[failed], cancelled, jobs[cancelled]))
	require.NoError(t, err)
	outcomes := map[int64]string{}
	for rows.Next() {
		var run int64
		var outcome string
		require.NoError(t, rows.Scan(&run, &outcome))
		outcomes[run] = outcome
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[int64]string{completed: "stale", failed: "stale", cancelled: "stale"}, outcomes)

	// The attempts that never were run again as new attempts with new jobs; the old jobs end.
	for _, r := range []int64{completed, failed} {
		require.Equal(t, 2, b.stepInt(t, r, "a", "attempt"), "run %d", r)
		require.Equal(t, "queued", b.stepStatus(t, r, "a"))
		require.Equal(t, "available", b.jobState(t, r, "a"))
		require.Equal(t, "cancelled", b.scalar(t, "SELECT state::text FROM river.river_job WHERE id = $1", jobs[r]))
		require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND status = 'failed'", r), "no failure is charged")
	}
	// A stale result of a cancelled run changes nothing.
	require.Equal(t, "cancelled", b.stepStatus(t, cancelled, "a"))
	require.Equal(t, 1, b.stepInt(t, cancelled, "a", "attempt"))
}
