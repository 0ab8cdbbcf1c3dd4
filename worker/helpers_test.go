package worker_test

import (
	"encoding/json"
	"fmt"
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
