package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

type testBundle struct {
	ctx  context.Context
	url  string
	pool *pgxpool.Pool
	reg  *pipelines.Registry
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	url := dbtest.URL(t)
	reg := pipelines.NewRegistry()
	probe.Register(reg)
	return &testBundle{ctx: ctx, url: url, pool: dbtest.PoolFor(t, url, 20), reg: reg}
}

// add registers a probe-shaped workflow (the registry and, at worker start, the database).
func (b *testBundle) add(t *testing.T, name string, deps map[string][]string, adjust func(*pipelines.Workflow)) {
	t.Helper()
	w := probe.Workflow(name, deps)
	if adjust != nil {
		adjust(&w)
	}
	require.NoError(t, b.reg.Add(w))
	_, err := b.reg.Sync(b.ctx, b.pool)
	require.NoError(t, err)
}

// startWorker runs an in-process worker on its own pool until the test ends; adjust, if
// given, changes its configuration first.
func (b *testBundle) startWorker(t *testing.T, id string, maxWorkers int, adjust ...func(*worker.Config)) *worker.Worker {
	t.Helper()
	cfg := worker.Config{
		Pool: dbtest.PoolFor(t, b.url, int32(maxWorkers)+10), Registry: b.reg, Classes: []string{"cpu"},
		MaxWorkers: maxWorkers, ID: id, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range adjust {
		f(&cfg)
	}
	w, err := worker.New(cfg)
	require.NoError(t, err)
	require.NoError(t, w.Start(b.ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

func (b *testBundle) start(t *testing.T, workflow, input string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, input) VALUES ($1, $2) RETURNING id", workflow, input).Scan(&id))
	return id
}

// waitRuns waits until no run is pending or running, and fails the test if that takes longer
// than limit (a hang, not a speed bound: limits are many times the expected time).
func (b *testBundle) waitRuns(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var live int
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM qflow.runs WHERE status IN ('pending', 'running')").Scan(&live))
		if live == 0 {
			return
		}
		if time.Now().After(deadline) {
			var doc string
			_ = b.pool.QueryRow(b.ctx, "SELECT qflow.status(min(id))::text FROM qflow.runs WHERE status IN ('pending', 'running')").Scan(&doc)
			t.Fatalf("%d runs still live after %s; first: %s", live, limit, doc)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStep waits until a step of a run reaches status.
func (b *testBundle) waitStep(t *testing.T, run int64, step, status string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var s string
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT status FROM qflow.step_runs WHERE run_id = $1 AND step = $2", run, step).Scan(&s))
		if s == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("step %s of run %d is %s, not %s, after %s", step, run, s, status, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type runRow struct {
	Status string
	Error  *string
	Output json.RawMessage
}

func (b *testBundle) run(t *testing.T, id int64) runRow {
	t.Helper()
	var r runRow
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT status, error, output FROM qflow.runs WHERE id = $1", id).Scan(&r.Status, &r.Error, &r.Output))
	return r
}

type attemptRow struct {
	Attempt           int
	Status, Worker    string
	Error             *string
	Started, Finished time.Time
}

func (b *testBundle) attempts(t *testing.T, run int64, step string) []attemptRow {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT attempt, status, coalesce(worker, ''), error, started_at, coalesce(finished_at, now())
	                                   FROM qflow.step_attempts WHERE run_id = $1 AND step = $2 ORDER BY attempt`, run, step)
	require.NoError(t, err)
	defer rows.Close()
	var out []attemptRow
	for rows.Next() {
		var a attemptRow
		require.NoError(t, rows.Scan(&a.Attempt, &a.Status, &a.Worker, &a.Error, &a.Started, &a.Finished))
		out = append(out, a)
	}
	require.NoError(t, rows.Err())
	return out
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

func jsonEq(t *testing.T, want string, got json.RawMessage) {
	t.Helper()
	require.JSONEq(t, want, string(got), fmt.Sprintf("got %s", got))
}
