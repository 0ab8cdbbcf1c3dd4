package schema_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/stretchr/testify/require"
)

func TestSweepRetriesExpiredLeasesAndTimesOutRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	b.register(t, "slow", map[string][]string{"a": nil}, nil)

	// A live worker claimed a step and overran it: its lease runs out.
	b.live(t, "test-worker")
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
	require.Contains(t, b.scalar(t, "SELECT error FROM qflow.step_attempts WHERE run_id = $1 AND attempt = $2", dead, attempt), "lease expired: worker test-worker did not finish")
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
	jobOf := "(SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')"
	fetchedByTheDead := b.start(t, "chain", "{}")
	b.exec(t, `UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '1 minute'
	            WHERE id = `+jobOf, fetchedByTheDead)
	fresh := b.start(t, "chain", "{}")
	b.exec(t, `UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now()
	            WHERE id = `+jobOf, fresh)
	discarded := b.start(t, "chain", "{}")
	b.exec(t, "UPDATE river.river_job SET state = 'discarded', finalized_at = now() WHERE id = "+jobOf, discarded)
	deleted := b.start(t, "chain", "{}")
	b.exec(t, "DELETE FROM river.river_job WHERE id = "+jobOf, deleted)
	waiting := b.start(t, "chain", "{}")

	b.exec(t, "CALL qflow.sweep()")
	require.Equal(t, 2, b.stepInt(t, fetchedByTheDead, "a", "attempt"), "a fetch that never became a claim is found at the next sweep")
	require.Equal(t, "available", b.jobState(t, fetchedByTheDead, "a"))

	// A job gone or finalized is found among the queued steps, a sixteenth of them per sweep:
	// within sixteen sweeps, once.
	for range 15 {
		b.exec(t, "CALL qflow.sweep()")
	}
	for _, r := range []int64{fetchedByTheDead, discarded, deleted} {
		require.Equal(t, 2, b.stepInt(t, r, "a", "attempt"))
		require.Equal(t, "available", b.jobState(t, r, "a"))
	}
	require.Equal(t, 1, b.stepInt(t, fresh, "a", "attempt"), "a job fetched just now is left to its worker")
	require.Equal(t, 1, b.stepInt(t, waiting, "a", "attempt"), "an available job is left to River")
}

func TestSweepRetriesTheAttemptsOfADeadWorkerAtOnceAndLeavesTheLivingAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "long", map[string][]string{"a": nil}, func(w *pipelines.Workflow) { w.Steps[0].TimeoutMS = 3_600_000 })
	b.live(t, "alive")

	claimAs := func(run int64, worker string) int {
		attempt := b.stepInt(t, run, "a", "attempt")
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
		    'run_id', $1::bigint, 'step', 'a', 'attempt', $2::integer)), $3)`, run, attempt, worker))
		b.exec(t, `UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = ARRAY[$2]
		            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')`, run, worker)
		return attempt
	}
	dead := b.start(t, "long", "{}")
	deadAttempt := claimAs(dead, "gone")
	deadJob := b.count(t, "SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a'", dead)
	living := b.start(t, "long", "{}")
	claimAs(living, "alive")
	// A job fetched by a worker that died before it could claim the step.
	fetched := b.start(t, "long", "{}")
	b.exec(t, `UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = '{gone}'
	            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')`, fetched)

	// The leases run for an hour: only liveness can tell.
	b.exec(t, "CALL qflow.sweep()")

	require.Equal(t, "timed_out", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND attempt = $2", dead, deadAttempt))
	require.Contains(t, b.scalar(t, "SELECT error FROM qflow.step_attempts WHERE run_id = $1 AND attempt = $2", dead, deadAttempt),
		"worker gone died")
	require.Equal(t, "queued", b.stepStatus(t, dead, "a"), "retried at once")
	require.Equal(t, "cancelled", b.scalar(t, "SELECT state::text FROM river.river_job WHERE id = $1", deadJob))
	require.Equal(t, "running", b.stepStatus(t, living, "a"), "a live worker keeps its step however long it runs")
	require.Equal(t, 2, b.stepInt(t, fetched, "a", "attempt"), "a job fetched by the dead is queued again without waiting 30 s")
	require.Equal(t, "available", b.jobState(t, fetched, "a"))
}

func TestSweepRetriesTheLegacyRunOfADeadWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	var run int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, mode) VALUES ('chain', 'legacy') RETURNING id").Scan(&run))
	b.exec(t, "SELECT * FROM qflow.legacy_claim($1, 1)", run)
	b.exec(t, `UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = '{gone}'
	            WHERE kind = 'qflow_legacy' AND (args ->> 'run_id')::bigint = $1`, run)

	b.exec(t, "CALL qflow.sweep()")

	require.Equal(t, "pending", b.runStatus(t, run), "queued for attempt 2")
	require.Contains(t, b.scalar(t, "SELECT error FROM qflow.runs WHERE id = $1", run), "worker gone died")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job WHERE kind = 'qflow_legacy' AND (args ->> 'run_id')::bigint = $1
	                                  AND state = 'cancelled'`, run), "the dead job is not rescued an hour later")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job WHERE kind = 'qflow_legacy' AND args = jsonb_build_object('run_id', $1::bigint, 'attempt', 2)`, run))
}

func TestTheEngineTellsTheWorkerWhenItsAttemptIsNoLongerWanted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	listener, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer listener.Release()
	_, err = listener.Exec(b.ctx, "LISTEN qflow_cancel")
	require.NoError(t, err)

	run := b.start(t, "chain", "{}")
	attempt := b.claim(t, run, "a")
	b.exec(t, "SELECT qflow.cancel_run($1)", run)

	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	n, err := listener.Conn().WaitForNotification(ctx)
	require.NoError(t, err)
	require.JSONEq(t, fmt.Sprintf(`{"worker": "test-worker", "run_id": %d, "step": "a", "attempt": %d}`, run, attempt), n.Payload)
}

func TestARegisteredWorkersCutSessionHasAMomentToComeBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "long", map[string][]string{"a": nil}, func(w *pipelines.Workflow) { w.Steps[0].TimeoutMS = 3_600_000 })
	b.exec(t, "INSERT INTO qflow.workers (id, host, pid, classes) VALUES ('blip', 'h', 1, '{cpu}')")
	run := b.start(t, "long", "{}")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', 'a', 'attempt', 1)), 'blip')`, run))

	// Its lock is free (its session was cut): noted, not yet given up.
	b.exec(t, "CALL qflow.sweep()")
	require.Equal(t, "running", b.stepStatus(t, run, "a"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.workers WHERE id = 'blip' AND dead_since IS NOT NULL"))

	// It came back: forgotten.
	b.live(t, "blip")
	b.exec(t, "CALL qflow.sweep()")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.workers WHERE id = 'blip' AND dead_since IS NULL"))
	require.Equal(t, "running", b.stepStatus(t, run, "a"))
}

func TestARegisteredWorkerDeadForTwoSweepsIsGivenUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "long", map[string][]string{"a": nil}, func(w *pipelines.Workflow) { w.Steps[0].TimeoutMS = 3_600_000 })
	b.exec(t, "INSERT INTO qflow.workers (id, host, pid, classes, dead_since) VALUES ('gone', 'h', 1, '{cpu}', now() - interval '3 seconds')")
	run := b.start(t, "long", "{}")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', 'a', 'attempt', 1)), 'gone')`, run))

	b.exec(t, "CALL qflow.sweep()")

	require.Equal(t, "queued", b.stepStatus(t, run, "a"))
	require.Contains(t, b.scalar(t, "SELECT error FROM qflow.step_attempts WHERE run_id = $1 AND attempt = 1", run), "worker gone died")
}

// One INSERT of many runs into small tables leaves the planner's statistics describing the
// small tables until autovacuum comes by (up to a minute); the sweep analyzes the hot tables a
// burst has outgrown (more than twice the rows their statistics say), and only those, once.
func TestSweepAnalyzesTablesABurstOutgrew(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	defer conn.Release()
	insert := func(n int) {
		_, err := conn.Exec(b.ctx, "INSERT INTO qflow.runs (workflow) SELECT 'chain' FROM generate_series(1, $1)", n)
		require.NoError(t, err)
		// The session's counts reach the statistics views at its next flush, at most a second
		// after a commit in a busy session; this one is made now.
		_, err = conn.Exec(b.ctx, "SELECT pg_stat_force_next_flush()")
		require.NoError(t, err)
	}
	analyzed := func() map[string]int {
		rows, err := b.pool.Query(b.ctx, `SELECT relname, analyze_count FROM pg_stat_all_tables
		    WHERE relid IN ('qflow.runs'::regclass, 'qflow.step_runs'::regclass, 'qflow.step_attempts'::regclass, 'river.river_job'::regclass)`)
		require.NoError(t, err)
		m := map[string]int{}
		for rows.Next() {
			var name string
			var n int
			require.NoError(t, rows.Scan(&name, &n))
			m[name] = n
		}
		require.NoError(t, rows.Err())
		return m
	}

	insert(10)
	b.exec(t, "CALL qflow.sweep()")
	require.Equal(t, map[string]int{"runs": 0, "step_runs": 0, "step_attempts": 0, "river_job": 0}, analyzed(), "a few rows are autovacuum's business")

	insert(1500) // 1,510 runs, 4,530 steps, 1,510 jobs; no attempts yet
	b.exec(t, "CALL qflow.sweep()")
	require.Equal(t, map[string]int{"runs": 1, "step_runs": 1, "step_attempts": 0, "river_job": 1}, analyzed())
	require.EqualValues(t, 1510, b.scalar(t, "SELECT reltuples::integer FROM pg_class WHERE oid = 'qflow.runs'::regclass"))
	require.EqualValues(t, 1510, b.scalar(t, "SELECT reltuples::integer FROM pg_class WHERE oid = 'river.river_job'::regclass"))

	b.exec(t, "CALL qflow.sweep()")
	require.Equal(t, map[string]int{"runs": 1, "step_runs": 1, "step_attempts": 0, "river_job": 1}, analyzed(), "analyzed once per burst")
}
