package schema_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBatchedClaimsAndResultsFollowTheSingleStepRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil)
	r1 := b.start(t, "diamond", `{"n": 1}`)
	r2 := b.start(t, "diamond", `{"n": 2}`)
	r3 := b.start(t, "diamond", `{}`)

	// One call claims a's of three runs; a stale entry (wrong attempt) is left out.
	rows, err := b.pool.Query(b.ctx, `SELECT run_id, step, attempt, input::text FROM qflow.claim_steps($1, 'w')`,
		fmt.Sprintf(`[{"run_id": %d, "step": "a", "attempt": 1}, {"run_id": %d, "step": "a", "attempt": 1},
		              {"run_id": %d, "step": "a", "attempt": 1}, {"run_id": %d, "step": "a", "attempt": 7}]`, r1, r2, r3, r3))
	require.NoError(t, err)
	claimed := map[int64]string{}
	for rows.Next() {
		var run int64
		var step, input string
		var attempt int
		require.NoError(t, rows.Scan(&run, &step, &attempt, &input))
		claimed[run] = input
	}
	require.NoError(t, rows.Err())
	require.Len(t, claimed, 3)
	require.JSONEq(t, `{"n": 2}`, claimed[r2])

	// One call: two completions, a duplicate of one, a permanent failure, and a release.
	results := fmt.Sprintf(`[
		{"run_id": %[1]d, "step": "a", "attempt": 1, "job_id": 0, "result": "complete", "output": {"v": 1}},
		{"run_id": %[1]d, "step": "a", "attempt": 1, "job_id": 0, "result": "complete", "output": {"v": "dup"}},
		{"run_id": %[2]d, "step": "a", "attempt": 1, "job_id": 0, "result": "fail", "error": "boom", "permanent": true},
		{"run_id": %[3]d, "step": "a", "attempt": 1, "job_id": 0, "result": "release", "error": "shutting down"}]`, r1, r2, r3)
	rows, err = b.pool.Query(b.ctx, `SELECT run_id, step, outcome FROM qflow.finish_steps($1)`, results)
	require.NoError(t, err)
	var outcomes []string
	for rows.Next() {
		var run int64
		var step, outcome string
		require.NoError(t, rows.Scan(&run, &step, &outcome))
		outcomes = append(outcomes, fmt.Sprintf("%d/%s:%s", run, step, outcome))
	}
	require.NoError(t, rows.Err())
	require.ElementsMatch(t, []string{
		fmt.Sprintf("%d/a:completed", r1), fmt.Sprintf("%d/a:completed", r1),
		fmt.Sprintf("%d/a:failed", r2), fmt.Sprintf("%d/a:released", r3),
	}, outcomes, "both copies of a duplicated entry report the one completion")

	require.JSONEq(t, `{"v": 1}`, b.scalar(t, "SELECT output::text FROM qflow.step_runs WHERE run_id = $1 AND step = 'a'", r1).(string))
	require.Equal(t, "queued", b.stepStatus(t, r1, "b"))
	require.Equal(t, "queued", b.stepStatus(t, r1, "c"))
	require.Equal(t, "failed", b.runStatus(t, r2))
	require.Equal(t, "queued", b.stepStatus(t, r3, "a"))
	require.Equal(t, 2, b.stepInt(t, r3, "a", "attempt"))
}

func TestFinishStepsCompletesItsRiverJobsAndJoinsInOneBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil)
	run := b.start(t, "diamond", "{}")
	b.runStep(t, run, "a")
	for _, s := range []string{"b", "c"} {
		b.exec(t, "UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = $2)", run, s)
		b.claim(t, run, s)
	}
	jobs := b.count(t, "SELECT count(*) FROM river.river_job j JOIN qflow.step_runs sr ON sr.job_id = j.id WHERE sr.run_id = $1 AND sr.step IN ('b', 'c') AND j.state = 'running'", run)
	require.Equal(t, 2, jobs)

	// Both dependencies of d complete in the same batch: d's counter drops by two at once.
	b.exec(t, `SELECT * FROM qflow.finish_steps(
		(SELECT jsonb_agg(jsonb_build_object('run_id', run_id, 'step', step, 'attempt', attempt, 'job_id', job_id,
		                                     'result', 'complete', 'output', '{}'::jsonb))
		   FROM qflow.step_runs WHERE run_id = $1 AND step IN ('b', 'c')))`, run)
	require.Equal(t, "queued", b.stepStatus(t, run, "d"))
	require.Zero(t, b.stepInt(t, run, "d", "remaining_deps"))
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM river.river_job j JOIN qflow.step_runs sr ON sr.job_id = j.id WHERE sr.run_id = $1 AND sr.step IN ('b', 'c') AND j.state = 'completed' AND j.finalized_at IS NOT NULL", run))

	b.runStep(t, run, "d")
	require.Equal(t, "succeeded", b.runStatus(t, run))
}

func TestAResultAfterTheDeadlineTimesTheRunOut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	run := b.start(t, "chain", "{}")
	attempt := b.claim(t, run, "a")
	// The deadline passes while a runs; the sweep has not come by yet.
	b.exec(t, "UPDATE qflow.runs SET deadline = now() - interval '1 second' WHERE id = $1", run)

	var outcome string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT outcome FROM qflow.finish_steps($1)`,
		fmt.Sprintf(`[{"run_id": %d, "step": "a", "attempt": %d, "job_id": 0, "result": "complete", "output": {}}]`, run, attempt)).Scan(&outcome))
	require.Equal(t, "stale", outcome)
	require.Equal(t, "timed_out", b.runStatus(t, run))
	require.Equal(t, "cancelled", b.stepStatus(t, run, "a"))
	require.Equal(t, "cancelled", b.stepStatus(t, run, "b"))
}
