package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/worker"
)

// eagerHops counts the hops of succeeded runs whose step was claimed in the transaction that
// completed its dependency (the same transaction timestamp): the hops eager dispatch took.
const eagerHops = `
	SELECT count(*)
	  FROM qflow.step_runs nxt
	  JOIN qflow.step_deps d ON d.workflow = nxt.workflow AND d.version = nxt.version AND d.step = nxt.step
	  JOIN qflow.step_runs prev ON prev.run_id = nxt.run_id AND prev.step = d.depends_on
	 WHERE nxt.started_at = prev.finished_at`

func TestEagerDispatchRunsEachChainInTheSlotThatStartedIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 4})

	_, err := b.Pool.Exec(b.Ctx, `INSERT INTO qflow.runs (workflow, input)
	                               SELECT 'probe_chain', jsonb_build_object('seed', g) FROM generate_series(1, 40) g`)
	require.NoError(t, err)
	b.WaitRuns(t, 2*time.Minute)

	require.Equal(t, 40, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE status = 'succeeded'"))
	require.Zero(t, b.Count(t, `SELECT count(*) FROM qflow.runs WHERE (output -> 'e' ->> 'value')::bigint <> 31 + 32 * (input ->> 'seed')::bigint`))
	// Every hop of every run: nothing waited in the queue with higher priority, and every
	// step is of the class the worker serves.
	require.Equal(t, 4*40, b.Count(t, eagerHops))
	// Each eagerly claimed step still has its own River job, attempted by the worker and
	// completed with the step.
	require.Equal(t, 5*40, b.Count(t, `SELECT count(*) FROM river.river_job j JOIN qflow.step_runs sr ON sr.job_id = j.id
	                                     WHERE j.state = 'completed' AND j.attempted_by = ARRAY[$1]`, w.ID()))
	require.Equal(t, 5*40, b.Count(t, "SELECT count(*) FROM qflow.step_attempts WHERE status = 'succeeded' AND attempt = 1"))
}

func TestWithoutEagerDispatchEveryStepGoesThroughItsQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 4, DisableEagerDispatch: true})

	_, err := b.Pool.Exec(b.Ctx, `INSERT INTO qflow.runs (workflow) SELECT 'probe_chain' FROM generate_series(1, 10)`)
	require.NoError(t, err)
	b.WaitRuns(t, 2*time.Minute)

	require.Equal(t, 10, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE status = 'succeeded'"))
	require.Zero(t, b.Count(t, eagerHops))
}

func TestAStoppingWorkerTakesNoMoreStepsWithItsResults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 4})

	// Chains of 100 ms steps: while it stops, the worker's slots finish their steps and
	// must hand the successors to the queue instead of running them.
	_, err := b.Pool.Exec(b.Ctx, `INSERT INTO qflow.runs (workflow, input)
	                               SELECT 'probe_chain', '{"sleep_ms": 100}' FROM generate_series(1, 4)`)
	require.NoError(t, err)
	var first int64
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT min(id) FROM qflow.runs").Scan(&first))
	b.waitStep(t, first, "b", "running", time.Minute)

	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, w.Stop(ctx))
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.step_runs WHERE status = 'running'"), "no step left claimed by the stopped worker")
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.step_attempts WHERE status <> 'succeeded'"), "every step it took finished")
	require.Equal(t, 4, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE status = 'running'"), "the chains stopped with the worker")

	b.StartWorker(t, worker.Config{ID: "w2", MaxWorkers: 4})
	b.WaitRuns(t, 2*time.Minute)
	require.Equal(t, 4, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE status = 'succeeded'"))
	require.Positive(t, b.Count(t, "SELECT count(*) FROM qflow.step_attempts WHERE worker = 'w2'"))
}
