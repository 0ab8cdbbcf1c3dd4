package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
)

type testBundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	c    *chaos
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	pool := dbtest.Pool(t)
	reg := pipelines.NewRegistry()
	probe.Register(reg)
	_, err := reg.Sync(ctx, pool)
	require.NoError(t, err)
	c := &chaos{admin: pool, acked: map[string]bool{}, started: time.Now(), cfg: Config{Log: &strings.Builder{}},
		report: &Report{Faults: map[string]int{}, Outcomes: map[string]int{},
			RestartRecovery: map[string][]time.Duration{}, RestartDowntime: map[string][]time.Duration{}}}
	return &testBundle{ctx: ctx, pool: pool, c: c}
}

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, sql, args...)
	require.NoError(t, err, sql)
}

func (b *testBundle) start(t *testing.T, workflow, input, key string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, input, idempotency_key) VALUES ($1, $2, $3) RETURNING id",
		workflow, input, key).Scan(&id))
	b.c.acked[key] = true
	return id
}

// step plays a worker: claims the step's current attempt, completes it with value and
// finishes its River job.
func (b *testBundle) step(t *testing.T, run int64, step string, value int) {
	t.Helper()
	b.claim(t, run, step)
	b.exec(t, `SELECT qflow.finish_steps(jsonb_build_array(jsonb_build_object(
	               'run_id', $1::bigint, 'step', $2::text, 'attempt', (SELECT attempt FROM qflow.step_runs WHERE run_id = $1 AND step = $2),
	               'result', 'complete', 'output', jsonb_build_object('step', $2::text, 'value', $3::int))))`, run, step, value)
	b.jobDone(t, run, step)
}

func (b *testBundle) claim(t *testing.T, run int64, step string) {
	t.Helper()
	b.exec(t, `SELECT qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	               'run_id', $1::bigint, 'step', $2::text, 'attempt', (SELECT attempt FROM qflow.step_runs WHERE run_id = $1 AND step = $2))), 'w')`, run, step)
}

// failFatal plays a worker whose handler of step a failed permanently.
func (b *testBundle) failFatal(t *testing.T, run int64) {
	t.Helper()
	b.exec(t, `SELECT qflow.finish_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1,
	               'result', 'fail', 'error', 'probe: step a is fatal by request', 'permanent', true)))`, run)
}

func (b *testBundle) jobDone(t *testing.T, run int64, step string) {
	t.Helper()
	b.exec(t, `UPDATE river.river_job SET state = 'completed', attempt = 1, attempted_at = now(), finalized_at = now()
	            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = $2)`, run, step)
}

func TestChecksPassAnHonestHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ok := b.start(t, probe.Limited, `{"seed": 1}`, "k1")
	b.step(t, ok, "a", 3)
	b.step(t, ok, "b", 7)
	b.step(t, ok, "c", 15)
	fatal := b.start(t, probe.Limited, `{"fatal": ["a"]}`, "k2")
	b.claim(t, fatal, "a")
	b.failFatal(t, fatal)
	b.jobDone(t, fatal, "a")
	cancelled := b.start(t, probe.Limited, `{"chaos": {"cancel": true}}`, "k3")
	b.exec(t, "SELECT qflow.cancel_run($1)", cancelled)

	require.NoError(t, b.c.check(b.ctx))
	require.Empty(t, b.c.report.Violations)
	require.Equal(t, map[string]int{"succeeded": 1, "failed": 1, "cancelled": 1}, b.c.report.Outcomes)
	require.Equal(t, 1, b.c.report.LimitPeak)
}

func TestChecksCatchEveryKindOfViolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.c.report

	// lost: a confirmed insert that is not there, and a succeeded run with a wrong value.
	b.c.acked["never-inserted"] = true
	wrong := b.start(t, probe.Limited, `{}`, "k1")
	b.step(t, wrong, "a", 1)
	b.step(t, wrong, "b", 99)
	b.step(t, wrong, "c", 7)
	// lost: a run that failed for no reason its input or a fault gives.
	failed := b.start(t, probe.Limited, `{}`, "k2")
	b.claim(t, failed, "a")
	b.failFatal(t, failed)
	b.jobDone(t, failed, "a")

	// stuck: a run left running, and a live River job of a finished run.
	b.start(t, probe.Limited, `{}`, "k3")
	cancelled := b.start(t, probe.Limited, `{"chaos": {"cancel": true}}`, "k4")
	b.exec(t, "SELECT qflow.cancel_run($1)", cancelled)
	b.exec(t, `INSERT INTO river.river_job (args, kind, max_attempts, queue) VALUES (jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 9), 'qflow_step', 1, 'cpu')`, cancelled)

	// duplicated, over budget and over the limit: history written by hand.
	var runs []int64
	for i := range 3 {
		runs = append(runs, b.start(t, probe.Limited, `{}`, "o"+string(rune('0'+i))))
	}
	b.exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, status, started_at, finished_at)
	           VALUES ($1, 'a', 1, 'succeeded', now(), now()), ($1, 'a', 2, 'succeeded', now(), now()),
	                  ($2, 'a', 1, 'failed', now(), now()), ($2, 'a', 2, 'failed', now(), now()),
	                  ($2, 'a', 3, 'failed', now(), now()), ($2, 'a', 4, 'timed_out', now(), now())`, runs[0], runs[1])
	for _, run := range runs {
		b.exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, status, started_at, finished_at)
		           VALUES ($1, 'b', 1, 'succeeded', now() - interval '10 seconds', now() - interval '5 seconds')`, run)
	}

	require.NoError(t, b.c.check(b.ctx))
	joined := strings.Join(r.Violations, "\n")
	require.Equal(t, 3, r.Lost, joined)
	require.Contains(t, joined, "lost: 1 of")
	require.Contains(t, joined, "output {\"step\": \"b\", \"value\": 99}, want value 3")
	require.Contains(t, joined, "failed with no fault to blame")
	require.Contains(t, joined, "stuck: run still running")
	require.Contains(t, joined, "stuck: River job available for ended run")
	require.Equal(t, 1, r.Duplicated, joined)
	require.Equal(t, 1, r.OverBudget, joined)
	require.Equal(t, 1, r.LimitViolations, joined)
	require.Equal(t, 3, r.LimitPeak)
	require.Equal(t, 5, r.Stuck, joined) // four runs left running, one job
}
