package schema_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// A worker sends a call again when its reply was lost, whether or not the first call
// committed: the same claim or result must get the same answer and change nothing.

func TestAClaimSentAgainGetsTheSameClaim(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	b.live(t, "w1")
	run := b.start(t, "chain", `{"n": 1}`)
	claim := fmt.Sprintf(`[{"run_id": %d, "step": "a", "attempt": 1}]`, run)

	first := b.count(t, "SELECT count(*) FROM qflow.claim_steps($1, 'w1')", claim)
	lease := b.scalar(t, "SELECT lease_expires_at FROM qflow.step_runs WHERE run_id = $1 AND step = 'a'", run)
	again := b.count(t, "SELECT count(*) FROM qflow.claim_steps($1, 'w1')", claim)

	require.Equal(t, 1, first)
	require.Equal(t, 1, again, "the repeated claim returns the step, which this worker runs")
	require.Equal(t, lease, b.scalar(t, "SELECT lease_expires_at FROM qflow.step_runs WHERE run_id = $1 AND step = 'a'", run))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1", run), "one attempt")
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.claim_steps($1, 'w2')", claim), "another worker's claim is stale")
}

// finishAs calls finish_steps as worker with the given entries, offering slots, serving cpu.
func (b *testBundle) finishAs(t *testing.T, worker string, entries string) []finishRow {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `
		SELECT run_id, step, outcome, next_step, next_attempt, next_job_id, next_workflow, next_timeout_ms, next_input, next_deps
		  FROM qflow.finish_steps($1, $2, '{cpu}')`, entries, worker)
	require.NoError(t, err)
	defer rows.Close()
	var out []finishRow
	for rows.Next() {
		var r finishRow
		require.NoError(t, rows.Scan(&r.Run, &r.Step, &r.Outcome, &r.NextStep, &r.NextAttempt, &r.NextJob, &r.NextFlow,
			&r.NextTimeout, &r.NextInput, &r.NextDeps))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestAResultSentAgainGetsTheFirstAnswerWithItsEagerSuccessor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	b.live(t, "w1")
	run := b.start(t, "chain", `{"n": 7}`)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.claim_steps($1, 'w1')", fmt.Sprintf(`[{"run_id": %d, "step": "a", "attempt": 1}]`, run)))
	result := "[" + completion(run, "a", 1, `{"v": 1}`, true) + "]"

	first := b.finishAs(t, "w1", result)
	require.Len(t, first, 1)
	require.Equal(t, "completed", first[0].Outcome)
	require.Equal(t, "b", *first[0].NextStep, "the slot took b")

	// The reply was lost: the worker sends the same result again.
	again := b.finishAs(t, "w1", result)
	require.Len(t, again, 1)
	require.Equal(t, "completed", again[0].Outcome)
	require.Equal(t, "b", *again[0].NextStep, "b is handed over again, so it is not left running with nobody running it")
	require.Equal(t, *first[0].NextAttempt, *again[0].NextAttempt)
	require.Equal(t, *first[0].NextJob, *again[0].NextJob)
	var deps map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(again[0].NextDeps, &deps))
	require.JSONEq(t, `{"v": 1}`, string(deps["a"]))

	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'b'", run), "b was claimed once")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM river.river_job WHERE args ->> 'step' = 'b'"))
	require.Equal(t, 1, b.stepInt(t, run, "c", "remaining_deps"), "a was counted once")

	// Another worker sending the same result is stale, as is the first worker's once b moved on.
	require.Equal(t, "stale", b.finishAs(t, "w2", result)[0].Outcome)
	require.Equal(t, "completed", b.finishAs(t, "w1", "["+completion(run, "b", 1, `{}`, false)+"]")[0].Outcome)
	replay := b.finishAs(t, "w1", result)
	require.Equal(t, "completed", replay[0].Outcome)
	require.Nil(t, replay[0].NextStep, "b is no longer running: nothing to hand over")
}

func TestAFailureSentAgainGetsTheFirstAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	b.live(t, "w1")
	run := b.start(t, "chain", "{}")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.claim_steps($1, 'w1')", fmt.Sprintf(`[{"run_id": %d, "step": "a", "attempt": 1}]`, run)))
	failure := fmt.Sprintf(`[{"run_id": %d, "step": "a", "attempt": 1, "result": "fail", "error": "boom"}]`, run)

	require.Equal(t, "retry", b.finishAs(t, "w1", failure)[0].Outcome)
	require.Equal(t, "retry", b.finishAs(t, "w1", failure)[0].Outcome, "the same answer")
	require.Equal(t, 2, b.stepInt(t, run, "a", "attempt"), "one retry, not two")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND status = 'failed'", run))
	require.Equal(t, "stale", b.finishAs(t, "w2", failure)[0].Outcome)
}

func TestALostDispatchIsQueuedAgainWithoutSpendingAnAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	run := b.start(t, "chain", "{}")
	// River's fetch committed but its reply never reached the (live) worker: the job is
	// running and nobody claims the step.
	b.live(t, "w1")
	b.exec(t, `UPDATE river.river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '6 seconds', attempted_by = '{w1}'
	            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')`, run)

	b.exec(t, "CALL qflow.sweep()")

	require.Equal(t, "queued", b.stepStatus(t, run, "a"))
	require.Equal(t, 2, b.stepInt(t, run, "a", "attempt"))
	require.Equal(t, 2, b.stepInt(t, run, "a", "first_attempt"), "the dispatch no handler ran is not a failure")
}
