package worker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
)

type testBundle struct {
	*enginetest.Env
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{Env: enginetest.New(t, enginetest.Probes)}
}

// add registers a probe-shaped workflow (the registry and, at worker start, the database).
func (b *testBundle) add(t *testing.T, name string, deps map[string][]string, adjust func(*pipelines.Workflow)) {
	t.Helper()
	w := probe.Workflow(name, deps)
	if adjust != nil {
		adjust(&w)
	}
	require.NoError(t, b.Registry.Add(w))
	_, err := b.Registry.Sync(b.Ctx, b.Pool)
	require.NoError(t, err)
}

// waitStep waits until a step of a run reaches status.
func (b *testBundle) waitStep(t *testing.T, run int64, step, status string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var s string
		require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT status FROM qflow.step_runs WHERE run_id = $1 AND step = $2", run, step).Scan(&s))
		if s == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("step %s of run %d is %s, not %s, after %s", step, run, s, status, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type attemptRow struct {
	Attempt           int
	Status, Worker    string
	Error             *string
	Started, Finished time.Time
}

func (b *testBundle) attempts(t *testing.T, run int64, step string) []attemptRow {
	t.Helper()
	rows, err := b.Pool.Query(b.Ctx, `SELECT attempt, status, coalesce(worker, ''), error, started_at, coalesce(finished_at, now())
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

func jsonEq(t *testing.T, want string, got json.RawMessage) {
	t.Helper()
	require.JSONEq(t, want, string(got), fmt.Sprintf("got %s", got))
}

// logBuffer keeps what a worker logs, as JSON lines, for a test that looks at the log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// logger logs everything, debug included, into l.
func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records logged so far.
func (l *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	text := l.buf.String()
	l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(text) {
		var r map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		out = append(out, r)
	}
	return out
}

// waitFor waits until a record matches and returns it; limit catches a hang.
func (l *logBuffer) waitFor(t *testing.T, match func(r map[string]any) bool, limit time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		for _, r := range l.records(t) {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching log record after %s; the log:\n%s", limit, l.text())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *logBuffer) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
