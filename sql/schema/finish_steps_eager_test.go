package schema_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

// finishRow is one row of qflow.finish_steps: an entry's outcome and the step its slot takes.
type finishRow struct {
	Run         int64
	Step        string
	Outcome     string
	NextStep    *string
	NextAttempt *int
	NextJob     *int64
	NextFlow    *string
	NextTimeout *int64
	NextInput   json.RawMessage
	NextDeps    json.RawMessage
}

// finish calls finish_steps as worker "w1" serving the given classes.
func (b *testBundle) finish(t *testing.T, results string, classes ...string) []finishRow {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `
		SELECT run_id, step, outcome, next_step, next_attempt, next_job_id, next_workflow, next_timeout_ms, next_input, next_deps
		  FROM qflow.finish_steps($1, 'w1', $2)`, results, classes)
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

// completion is a finish_steps entry completing step of run with output, offering its slot.
func completion(run int64, step string, attempt int, output string, take bool) string {
	return fmt.Sprintf(`{"run_id": %d, "step": %q, "attempt": %d, "job_id": 0, "result": "complete", "output": %s, "take": %t}`,
		run, step, attempt, output, take)
}

func TestEagerDispatchClaimsTheSuccessorForTheFinishingWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, func(w *pipelines.Workflow) { w.Steps[1].TimeoutMS = 7000 })
	run := b.start(t, "chain", `{"n": 7}`)
	attempt := b.claim(t, run, "a")

	rows := b.finish(t, "["+completion(run, "a", attempt, `{"v": 1}`, true)+"]", "cpu")
	require.Len(t, rows, 1)
	r := rows[0]
	require.Equal(t, "completed", r.Outcome)
	require.NotNil(t, r.NextStep)
	require.Equal(t, "b", *r.NextStep)
	require.Equal(t, 1, *r.NextAttempt)
	require.Equal(t, "chain", *r.NextFlow)
	require.Equal(t, int64(7000), *r.NextTimeout)
	require.JSONEq(t, `{"n": 7}`, string(r.NextInput))
	require.JSONEq(t, `{"a": {"v": 1}}`, string(r.NextDeps))

	// b is claimed for w1 exactly as a fetched job would be: running with a lease, an open
	// attempt, and its own River job running, attempted by w1.
	require.Equal(t, "running", b.stepStatus(t, run, "b"))
	require.Equal(t, int(*r.NextJob), b.stepInt(t, run, "b", "job_id"))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND step = 'b' AND worker = 'w1'
	                                   AND lease_expires_at > now() + interval '8 seconds'`, run))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'b' AND attempt = 1 AND status = 'running' AND worker = 'w1'", run))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job WHERE id = $1 AND state = 'running' AND kind = 'qflow_step'
	                                   AND attempt = 1 AND attempted_by = '{w1}' AND args = jsonb_build_object('run_id', $2::bigint, 'step', 'b', 'attempt', 1)`,
		*r.NextJob, run))

	// Its result completes it like any other, and the last step hands on nothing.
	rows = b.finish(t, fmt.Sprintf(`[{"run_id": %d, "step": "b", "attempt": 1, "job_id": %d, "result": "complete", "output": {}, "take": true}]`, run, *r.NextJob), "cpu")
	require.Equal(t, "completed", rows[0].Outcome)
	require.Equal(t, "completed", b.jobState(t, run, "b"))
	require.Equal(t, "c", *rows[0].NextStep)
	rows = b.finish(t, "["+completion(run, "c", 1, `{}`, true)+"]", "cpu")
	require.Equal(t, "completed", rows[0].Outcome)
	require.Nil(t, rows[0].NextStep)
	require.Equal(t, "succeeded", b.runStatus(t, run))
}

func TestEagerDispatchTakesOnlyWhatTheQueueWouldHaveGiven(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	b.register(t, "gpu_chain", map[string][]string{"a": nil, "b": {"a"}}, func(w *pipelines.Workflow) { w.Steps[1].WorkerClass = "gpu" })
	b.register(t, "limited", map[string][]string{"a": nil, "b": {"a"}}, func(w *pipelines.Workflow) { w.Steps[1].MaxConcurrency = 5 })

	queued := func(name string, run int64, step string) {
		t.Helper()
		require.Equal(t, "queued", b.stepStatus(t, run, step), name)
		require.Equal(t, "available", b.jobState(t, run, step), name)
	}

	// The slot was not offered.
	run := b.start(t, "chain", "{}")
	rows := b.finish(t, "["+completion(run, "a", b.claim(t, run, "a"), `{}`, false)+"]", "cpu")
	require.Nil(t, rows[0].NextStep)
	queued("no take", run, "b")

	// The successor belongs to a class the worker does not serve.
	run = b.start(t, "gpu_chain", "{}")
	rows = b.finish(t, "["+completion(run, "a", b.claim(t, run, "a"), `{}`, true)+"]", "cpu")
	require.Nil(t, rows[0].NextStep)
	queued("other class", run, "b")

	// The successor has a concurrency limit: it waits for a slot like every other run's.
	run = b.start(t, "limited", "{}")
	rows = b.finish(t, "["+completion(run, "a", b.claim(t, run, "a"), `{}`, true)+"]", "cpu")
	require.Nil(t, rows[0].NextStep)
	queued("limited", run, "b")

	// Work of a higher priority waits in the queue: it goes first.
	urgent := b.start(t, "chain", "{}")
	b.exec(t, "UPDATE river.river_job SET priority = 1 WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')", urgent)
	run = b.start(t, "chain", "{}")
	rows = b.finish(t, "["+completion(run, "a", b.claim(t, run, "a"), `{}`, true)+"]", "cpu")
	require.Nil(t, rows[0].NextStep)
	queued("higher priority waiting", run, "b")
}

func TestEagerDispatchOfAFanOutTakesOneAndQueuesTheRest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil)
	run := b.start(t, "diamond", "{}")

	rows := b.finish(t, "["+completion(run, "a", b.claim(t, run, "a"), `{}`, true)+"]", "cpu")
	require.Equal(t, "b", *rows[0].NextStep, "the first ready step by topological position")
	require.Equal(t, "running", b.stepStatus(t, run, "b"))
	require.Equal(t, "queued", b.stepStatus(t, run, "c"))

	// b and c complete in one batch, both offering: d goes to one of them only.
	b.claim(t, run, "c")
	rows = b.finish(t, "["+completion(run, "b", 1, `{"v": "b"}`, true)+","+completion(run, "c", 1, `{"v": "c"}`, true)+"]", "cpu")
	require.Len(t, rows, 2)
	var takers []string
	for _, r := range rows {
		require.Equal(t, "completed", r.Outcome)
		if r.NextStep != nil {
			takers = append(takers, r.Step)
			require.Equal(t, "d", *r.NextStep)
			require.JSONEq(t, `{"b": {"v": "b"}, "c": {"v": "c"}}`, string(r.NextDeps))
		}
	}
	require.Len(t, takers, 1)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'd'", run))
}

func TestEagerDispatchHandsADuplicatedCompletionOneStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	run := b.start(t, "chain", "{}")
	attempt := b.claim(t, run, "a")

	rows := b.finish(t, "["+completion(run, "a", attempt, `{}`, true)+","+completion(run, "a", attempt, `{}`, true)+"]", "cpu")
	require.Len(t, rows, 2)
	handed := 0
	for _, r := range rows {
		require.Equal(t, "completed", r.Outcome)
		if r.NextStep != nil {
			handed++
		}
	}
	require.Equal(t, 1, handed)

	// A late repeat is stale and takes nothing.
	rows = b.finish(t, "["+completion(run, "a", attempt, `{}`, true)+"]", "cpu")
	require.Equal(t, "stale", rows[0].Outcome)
	require.Nil(t, rows[0].NextStep)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'b'", run))
}

func TestEagerDispatchSkipsARunThatFailsInTheSameBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil)
	run := b.start(t, "diamond", "{}")
	b.runStep(t, run, "a")
	b.claim(t, run, "b")
	b.claim(t, run, "c")
	b.register(t, "chain", map[string][]string{"a": nil, "b": {"a"}}, nil)
	other := b.start(t, "chain", "{}")
	otherAttempt := b.claim(t, other, "a")

	// c fails permanently while b completes: d must not be claimed for a run that is failing.
	rows := b.finish(t, "["+completion(run, "b", 1, `{}`, true)+
		fmt.Sprintf(`,{"run_id": %d, "step": "c", "attempt": 1, "job_id": 0, "result": "fail", "error": "boom", "permanent": true}`, run)+
		","+completion(other, "a", otherAttempt, `{}`, true)+"]", "cpu")
	require.Len(t, rows, 3)
	for _, r := range rows {
		switch {
		case r.Run == run:
			require.Nil(t, r.NextStep, "step %s", r.Step)
		default:
			require.Equal(t, "b", *r.NextStep, "another run in the batch still takes its successor")
		}
	}
	require.Equal(t, "failed", b.runStatus(t, run))
	require.Equal(t, "cancelled", b.stepStatus(t, run, "d"))
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'd'", run))
}

func TestAStepClaimedEagerlyRecoversLikeAnyOtherWhenItsWorkerDies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	run := b.start(t, "chain", "{}")
	rows := b.finish(t, "["+completion(run, "a", b.claim(t, run, "a"), `{}`, true)+"]", "cpu")
	job := *rows[0].NextJob

	// The worker dies with b in hand: its lease runs out and the sweep retries b with a new
	// job, cancelling the one the dead worker held.
	b.exec(t, "UPDATE qflow.step_runs SET lease_expires_at = now() - interval '1 second' WHERE run_id = $1 AND step = 'b'", run)
	b.exec(t, "CALL qflow.sweep()")
	require.Equal(t, "cancelled", b.scalar(t, "SELECT state::text FROM river.river_job WHERE id = $1", job))
	require.Equal(t, "timed_out", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND step = 'b' AND attempt = 1", run))
	require.Equal(t, 2, b.stepInt(t, run, "b", "attempt"))
	require.Contains(t, []string{"ready", "queued"}, b.stepStatus(t, run, "b"))

	// The dead worker's result, should it arrive after all, is stale.
	rows = b.finish(t, fmt.Sprintf(`[{"run_id": %d, "step": "b", "attempt": 1, "job_id": %d, "result": "complete", "output": {}, "take": true}]`, run, job), "cpu")
	require.Equal(t, "stale", rows[0].Outcome)
	require.Nil(t, rows[0].NextStep)
}

func TestTheHopProceduresKeepGenericPlansAndTheirFixedSearchPath(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, name := range []string{"finish_steps", "claim_steps"} {
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM pg_proc
		                                   WHERE pronamespace = 'qflow'::regnamespace AND proname = $1 AND prosecdef
		                                     AND proconfig @> ARRAY['plan_cache_mode=force_generic_plan',
		                                                            'search_path=pg_catalog, qflow, pg_temp']`, name), name)
	}
}
