package schema_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
)

// These tests drive the SQL state machine directly, playing the worker's part with plain
// calls to the procedures, so each rule is checked without timing in the way.

type testBundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &testBundle{ctx: ctx, pool: dbtest.Pool(t)}
}

// register puts a probe-shaped workflow in the database, after letting the test adjust it.
func (b *testBundle) register(t *testing.T, name string, deps map[string][]string, adjust func(*pipelines.Workflow)) int {
	t.Helper()
	w := probe.Workflow(name, deps)
	if adjust != nil {
		adjust(&w)
	}
	def, err := w.Definition()
	require.NoError(t, err)
	var v int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.register_workflow($1)", def).Scan(&v))
	return v
}

func (b *testBundle) chain(t *testing.T, adjust func(*pipelines.Workflow)) {
	b.register(t, "chain", map[string][]string{"a": nil, "b": {"a"}, "c": {"b"}}, adjust)
}

func (b *testBundle) diamond(t *testing.T, adjust func(*pipelines.Workflow)) {
	b.register(t, "diamond", map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}, adjust)
}

func (b *testBundle) start(t *testing.T, workflow string, input string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, input) VALUES ($1, $2) RETURNING id", workflow, input).Scan(&id))
	return id
}

// claim plays a worker fetching the step's current job and claiming it, with the call the
// worker makes (claim_steps).
func (b *testBundle) claim(t *testing.T, run int64, step string) int {
	t.Helper()
	attempt := b.stepInt(t, run, step, "attempt")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', $2::text, 'attempt', $3::integer)), 'test-worker')",
		run, step, attempt), "claiming %s of run %d", step, run)
	return attempt
}

// report sends one result with the call the worker makes (finish_steps) and returns its outcome.
func (b *testBundle) report(t *testing.T, run int64, step string, attempt int, result map[string]any) string {
	t.Helper()
	entry := map[string]any{"run_id": run, "step": step, "attempt": attempt}
	for k, v := range result {
		entry[k] = v
	}
	doc, err := json.Marshal([]any{entry})
	require.NoError(t, err)
	var outcome string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT outcome FROM qflow.finish_steps($1)", doc).Scan(&outcome))
	return outcome
}

func (b *testBundle) complete(t *testing.T, run int64, step string, attempt int, output string) bool {
	t.Helper()
	return b.report(t, run, step, attempt, map[string]any{"result": "complete", "output": json.RawMessage(output)}) == "completed"
}

func (b *testBundle) fail(t *testing.T, run int64, step string, attempt int, permanent bool) string {
	t.Helper()
	return b.report(t, run, step, attempt, map[string]any{"result": "fail", "error": "boom", "permanent": permanent})
}

// runStep claims and completes a step in one go.
func (b *testBundle) runStep(t *testing.T, run int64, step string) {
	t.Helper()
	require.True(t, b.complete(t, run, step, b.claim(t, run, step), `{"ok":true}`))
}

func (b *testBundle) stepStatus(t *testing.T, run int64, step string) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT status FROM qflow.step_runs WHERE run_id = $1 AND step = $2", run, step).Scan(&s))
	return s
}

func (b *testBundle) stepInt(t *testing.T, run int64, step, col string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT "+col+" FROM qflow.step_runs WHERE run_id = $1 AND step = $2", run, step).Scan(&n))
	return n
}

func (b *testBundle) runStatus(t *testing.T, run int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT status FROM qflow.runs WHERE id = $1", run).Scan(&s))
	return s
}

func (b *testBundle) jobState(t *testing.T, run int64, step string) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(b.ctx,
		"SELECT j.state::text FROM river.river_job j JOIN qflow.step_runs sr ON sr.job_id = j.id WHERE sr.run_id = $1 AND sr.step = $2", run, step).Scan(&s))
	return s
}

func (b *testBundle) scalar(t *testing.T, sql string, args ...any) any {
	t.Helper()
	var v any
	require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&v))
	return v
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, sql, args...)
	require.NoError(t, err)
}

// execErr runs sql and returns its error, which the test expects.
func (b *testBundle) execErr(sql string, args ...any) error {
	_, err := b.pool.Exec(b.ctx, sql, args...)
	return err
}

func (b *testBundle) statusDoc(t *testing.T, run int64) map[string]any {
	t.Helper()
	var raw []byte
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.status($1)", run).Scan(&raw))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	return doc
}

// live makes worker alive for the rest of the test: a session of its own holds the worker's
// liveness lock, as a worker process does (0332_worker_lock_key.sql).
func (b *testBundle) live(t *testing.T, worker string) {
	t.Helper()
	conn, err := b.pool.Acquire(b.ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Conn().Close(context.Background()); conn.Release() })
	var ok bool
	require.NoError(t, conn.QueryRow(b.ctx, "SELECT pg_try_advisory_lock(qflow.worker_lock_key($1))", worker).Scan(&ok))
	require.True(t, ok)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
