package enginetest

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
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

// Env is one test's engine: its database, a pool on it, the registry its workers serve, and
// the context its calls run under.
type Env struct {
	// Ctx ends when the test does, or after 5 minutes, so a hung call fails the test instead
	// of the whole binary.
	Ctx      context.Context
	URL      string
	Pool     *pgxpool.Pool
	Registry *pipelines.Registry
}

// New creates a fresh migrated database, fills a registry with register (nil adds nothing)
// and registers its definitions there. register gets the pool too, for workflows whose steps
// read and write the database themselves.
func New(t testing.TB, register func(reg *pipelines.Registry, pool *pgxpool.Pool)) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	url := dbtest.URL(t)
	e := &Env{Ctx: ctx, URL: url, Pool: dbtest.PoolFor(t, url, 20), Registry: pipelines.NewRegistry()}
	if register != nil {
		register(e.Registry, e.Pool)
	}
	_, err := e.Registry.Sync(ctx, e.Pool)
	require.NoError(t, err)
	return e
}

// Probes registers the probe workflows; it is what New takes for tests that drive the engine
// with them.
func Probes(reg *pipelines.Registry, _ *pgxpool.Pool) { probe.Register(reg) }

// StartWorker starts an in-process worker that runs until the test ends and returns it. Unset
// fields of cfg take: Pool [a pool of its own on the test database, MaxWorkers+10 connections,
// so the worker never waits for the test's queries], Registry [the Env's], MaxWorkers [4],
// Logger [discards: a test asserts on state, not on logs]; the rest take worker.New's defaults.
func (e *Env) StartWorker(t testing.TB, cfg worker.Config) *worker.Worker {
	t.Helper()
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = 4
	}
	if cfg.Pool == nil {
		cfg.Pool = dbtest.PoolFor(t, e.URL, int32(cfg.MaxWorkers)+10)
	}
	if cfg.Registry == nil {
		cfg.Registry = e.Registry
	}
	if cfg.Logger == nil {
		cfg.Logger = DiscardLogger()
	}
	w, err := worker.New(cfg)
	require.NoError(t, err)
	require.NoError(t, w.Start(e.Ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

// DiscardLogger returns a logger that writes nothing, for workers a test builds itself.
func DiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Start inserts a run, as a user would, and returns its id; the rollouts decide its mode.
func (e *Env) Start(t testing.TB, workflow, input string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, e.Pool.QueryRow(e.Ctx, "INSERT INTO qflow.runs (workflow, input) VALUES ($1, $2) RETURNING id",
		workflow, input).Scan(&id))
	return id
}

// StartMode inserts a run in the given mode ("workflow" or "legacy") and returns its id.
func (e *Env) StartMode(t testing.TB, workflow, mode, input string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, e.Pool.QueryRow(e.Ctx, "INSERT INTO qflow.runs (workflow, mode, input) VALUES ($1, $2, $3) RETURNING id",
		workflow, mode, input).Scan(&id))
	return id
}

// Run is a run as the test sees it.
type Run struct {
	ID     int64
	Status string
	Mode   string
	// Error is empty when the run has none.
	Error  string
	Output json.RawMessage
}

// Run reads a run as it is now.
func (e *Env) Run(t testing.TB, id int64) Run {
	t.Helper()
	var r Run
	var errText *string
	require.NoError(t, e.Pool.QueryRow(e.Ctx, "SELECT id, status, mode, error, output FROM qflow.runs WHERE id = $1", id).
		Scan(&r.ID, &r.Status, &r.Mode, &errText, &r.Output))
	if errText != nil {
		r.Error = *errText
	}
	return r
}

// Wait waits until the run finishes and returns it; limit catches a hang.
func (e *Env) Wait(t testing.TB, id int64, limit time.Duration) Run {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := e.Run(t, id)
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

// WaitRuns waits until no run is pending or running; limit catches a hang.
func (e *Env) WaitRuns(t testing.TB, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		live := e.Count(t, "SELECT count(*) FROM qflow.runs WHERE status IN ('pending', 'running')")
		if live == 0 {
			return
		}
		if time.Now().After(deadline) {
			var doc string
			_ = e.Pool.QueryRow(e.Ctx, "SELECT qflow.status(min(id))::text FROM qflow.runs WHERE status IN ('pending', 'running')").Scan(&doc)
			t.Fatalf("%d runs still live after %s; first: %s", live, limit, doc)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Count runs a query that returns one integer.
func (e *Env) Count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, e.Pool.QueryRow(e.Ctx, sql, args...).Scan(&n))
	return n
}

// Exec runs a statement that must succeed.
func (e *Env) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := e.Pool.Exec(e.Ctx, sql, args...)
	require.NoError(t, err)
}

// StepOutput decodes the output of a step of a workflow-mode run into v.
func (e *Env) StepOutput(t testing.TB, run int64, step string, v any) {
	t.Helper()
	var raw []byte
	require.NoError(t, e.Pool.QueryRow(e.Ctx, "SELECT output FROM qflow.step_runs WHERE run_id = $1 AND step = $2", run, step).Scan(&raw))
	require.NoError(t, json.Unmarshal(raw, v))
}
