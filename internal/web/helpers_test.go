package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/internal/web"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

type testBundle struct {
	ctx  context.Context
	url  string
	pool *pgxpool.Pool
	reg  *pipelines.Registry
	srv  *httptest.Server
}

// setup gives the test its own database with the probe workflows registered, and the web
// view served on it.
func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	url := dbtest.URL(t)
	b := &testBundle{ctx: ctx, url: url, pool: dbtest.PoolFor(t, url, 10), reg: pipelines.NewRegistry()}
	probe.Register(b.reg)
	_, err := b.reg.Sync(ctx, b.pool)
	require.NoError(t, err)
	h, err := web.New(web.Config{DB: b.pool})
	require.NoError(t, err)
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	return b
}

// startWorker runs an in-process worker for the probe workflows until the test ends.
func (b *testBundle) startWorker(t *testing.T) {
	t.Helper()
	w, err := worker.New(worker.Config{
		Pool: dbtest.PoolFor(t, b.url, 14), Registry: b.reg, Classes: []string{"cpu"}, MaxWorkers: 4,
		ID: "web-test-worker", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	require.NoError(t, w.Start(b.ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
}

func (b *testBundle) start(t *testing.T, workflow, input string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, input) VALUES ($1, $2) RETURNING id", workflow, input).Scan(&id))
	return id
}

// waitRuns waits until no run is live; the limit catches a hang, it is no speed bound.
func (b *testBundle) waitRuns(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var live int
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT count(*) FROM qflow.runs WHERE status IN ('pending', 'running')").Scan(&live))
		if live == 0 {
			return
		}
		require.False(t, time.Now().After(deadline), "%d runs still live after %s", live, limit)
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, sql, args...)
	require.NoError(t, err)
}

// get fetches a page of the view and returns its status code and body.
func (b *testBundle) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.srv.URL+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}
