// Package mltest runs ML workflows end to end in tests: a fresh database, in-process workers
// serving the cpu and gpu classes, runs started by SQL inserts in a chosen mode.
package mltest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/worker"
)

// Env is one test's database, registry and workers.
type Env struct {
	Ctx      context.Context
	URL      string
	Pool     *pgxpool.Pool
	Registry *pipelines.Registry
}

// New creates a fresh migrated database and a registry filled by add, which gets the pool the
// workflows' steps should use, and registers the definitions.
func New(t *testing.T, add func(reg *pipelines.Registry, pool *pgxpool.Pool)) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	url := dbtest.URL(t)
	e := &Env{Ctx: ctx, URL: url, Pool: dbtest.PoolFor(t, url, 20), Registry: pipelines.NewRegistry()}
	add(e.Registry, e.Pool)
	_, err := e.Registry.Sync(ctx, e.Pool)
	require.NoError(t, err)
	return e
}

// StartWorker runs an in-process worker serving the cpu and gpu classes until the test ends.
func (e *Env) StartWorker(t *testing.T, id string) {
	t.Helper()
	w, err := worker.New(worker.Config{
		Pool: dbtest.PoolFor(t, e.URL, 16), Registry: e.Registry, Classes: []string{"cpu", "gpu"},
		MaxWorkers: 4, ID: id, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, w.Start(e.Ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
}

// Start inserts a run in the given mode ("workflow" or "legacy") and returns its id.
func (e *Env) Start(t *testing.T, workflow, mode, input string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, e.Pool.QueryRow(e.Ctx, "INSERT INTO qflow.runs (workflow, mode, input) VALUES ($1, $2, $3) RETURNING id",
		workflow, mode, input).Scan(&id))
	return id
}

// Run is a finished run as the test sees it.
type Run struct {
	ID     int64
	Status string
	Mode   string
	Error  string
	Output json.RawMessage
}

// Wait waits until the run finishes and returns it; limit catches hangs, not slowness.
func (e *Env) Wait(t *testing.T, id int64, limit time.Duration) Run {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var r Run
		var errText *string
		require.NoError(t, e.Pool.QueryRow(e.Ctx, "SELECT id, status, mode, error, output FROM qflow.runs WHERE id = $1", id).
			Scan(&r.ID, &r.Status, &r.Mode, &errText, &r.Output))
		if errText != nil {
			r.Error = *errText
		}
		switch r.Status {
		case "succeeded", "failed", "cancelled", "timed_out":
			return r
		}
		if time.Now().After(deadline) {
			var doc string
			_ = e.Pool.QueryRow(e.Ctx, "SELECT qflow.status($1)::text", id).Scan(&doc)
			t.Fatalf("run %d still %s after %s: %s", id, r.Status, limit, doc)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Count runs a query that returns one integer.
func (e *Env) Count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.Pool.QueryRow(e.Ctx, sql, args...).Scan(&n))
	return n
}

// StepOutput decodes the output of a step of a workflow-mode run into v.
func (e *Env) StepOutput(t *testing.T, run int64, step string, v any) {
	t.Helper()
	var raw []byte
	require.NoError(t, e.Pool.QueryRow(e.Ctx, "SELECT output FROM qflow.step_runs WHERE run_id = $1 AND step = $2", run, step).Scan(&raw))
	require.NoError(t, json.Unmarshal(raw, v))
}
