package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

func TestStartRunRejectsUnknownWorkflowAndBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)

	err := b.execErr("INSERT INTO qflow.runs (workflow) VALUES ('nope')")
	require.ErrorContains(t, err, `qflow: unknown workflow "nope"`)
	err = b.execErr(`INSERT INTO qflow.runs (workflow, input) VALUES ('chain', '[1, 2]')`)
	require.ErrorContains(t, err, "run input must be a JSON object, got array")
	err = b.execErr(`INSERT INTO qflow.runs (workflow, input) VALUES ('chain', '{"x":'::text::jsonb)`)
	require.ErrorContains(t, err, "invalid input syntax for type json")
	err = b.execErr(`INSERT INTO qflow.runs (workflow, version) VALUES ('chain', 9)`)
	require.ErrorContains(t, err, `workflow "chain" has no version 9`)
	err = b.execErr(`SELECT qflow.start_run('nope', '{}')`)
	require.ErrorContains(t, err, `unknown workflow "nope"`)

	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.runs"))
	require.Zero(t, b.count(t, "SELECT count(*) FROM river.river_job"))
}

func TestStartRunCreatesStepsAndQueuesRoots(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil)

	// An INSERT cannot forge runtime columns: the trigger owns them.
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx,
		`INSERT INTO qflow.runs (workflow, input, status, output) VALUES ('diamond', '{"k": 1}', 'succeeded', '{"x": 1}') RETURNING id`).Scan(&id))
	require.Equal(t, "running", b.runStatus(t, id))
	require.Nil(t, b.scalar(t, "SELECT output FROM qflow.runs WHERE id = $1", id))

	require.Equal(t, "queued", b.stepStatus(t, id, "a"))
	for _, s := range []string{"b", "c", "d"} {
		require.Equal(t, "waiting", b.stepStatus(t, id, s))
	}
	require.Equal(t, 2, b.stepInt(t, id, "d", "remaining_deps"))
	require.Equal(t, "available", b.jobState(t, id, "a"))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job WHERE kind = 'qflow_step' AND queue = 'cpu'
	                                  AND args = jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1)`, id))
}

func TestBulkInsertStartsEveryRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)

	b.exec(t, `INSERT INTO qflow.runs (workflow, input) SELECT 'chain', jsonb_build_object('i', g) FROM generate_series(1, 1000) g`)
	require.Equal(t, 1000, b.count(t, "SELECT count(*) FROM qflow.runs WHERE status = 'running'"))
	require.Equal(t, 3000, b.count(t, "SELECT count(*) FROM qflow.step_runs"))
	require.Equal(t, 1000, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE step = 'a' AND status = 'queued'"))
	require.Equal(t, 1000, b.count(t, "SELECT count(*) FROM river.river_job WHERE kind = 'qflow_step'"))
}

func TestIdempotencyKeyMakesRepeatsNoOps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)

	var first, second int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT qflow.start_run('chain', '{}', 'order-42')`).Scan(&first))
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT qflow.start_run('chain', '{"other": true}', 'order-42')`).Scan(&second))
	require.Equal(t, first, second, "the repeat returns the first run")

	tag, err := b.pool.Exec(b.ctx, `INSERT INTO qflow.runs (workflow, idempotency_key) VALUES ('chain', 'order-42') ON CONFLICT (idempotency_key) DO NOTHING`)
	require.NoError(t, err)
	require.Zero(t, tag.RowsAffected())

	err = b.execErr(`INSERT INTO qflow.runs (workflow, idempotency_key) VALUES ('chain', 'order-42')`)
	require.ErrorContains(t, err, "runs_idempotency_key_key")

	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.runs"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM river.river_job"), "no orphan work from the repeats")
}

func TestPriorityOrdersDispatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, func(w *pipelines.Workflow) { w.Steps[0].MaxConcurrency = 1 })

	// With one slot, the queued job is the first run's; of the waiting ones the urgent run
	// gets the slot next, ahead of older normal runs.
	low := b.start(t, "chain", "{}")
	normal := b.start(t, "chain", "{}")
	var urgent int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `INSERT INTO qflow.runs (workflow, priority) VALUES ('chain', 1) RETURNING id`).Scan(&urgent))
	require.Equal(t, "queued", b.stepStatus(t, low, "a"))
	require.Equal(t, "ready", b.stepStatus(t, normal, "a"))

	b.runStep(t, low, "a")
	require.Equal(t, "queued", b.stepStatus(t, urgent, "a"))
	require.Equal(t, "ready", b.stepStatus(t, normal, "a"))
	require.Equal(t, 1, b.count(t, `SELECT priority FROM river.river_job WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')`, urgent))
}
