package worker_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

// The args of qflow's jobs are written in SQL (qflow.step_job_args, qflow.legacy_job_args)
// and read in Go (worker.StepArgs, worker.LegacyArgs); nothing but these tests ties the two.

// TestJobArgsAreWhatSQLWrites checks that each Go args type encodes to what its SQL function
// writes and decodes it back to the same values.
func TestJobArgsAreWhatSQLWrites(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx  context.Context
		pool *pgxpool.Pool
	}

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return &testBundle{ctx: ctx, pool: dbtest.Pool(t)}
	}

	t.Run("StepArgs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, want := range []worker.StepArgs{
			{RunID: 1, Step: "a", Attempt: 1},
			{RunID: 1<<53 + 1, Step: `say "hi" \ ünïcødé ✓ <&>` + "\n\t", Attempt: math.MaxInt32},
			{RunID: math.MaxInt64, Step: "", Attempt: 0},
		} {
			var sqlJSON []byte
			require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.step_job_args($1, $2, $3)", want.RunID, want.Step, want.Attempt).Scan(&sqlJSON))
			requireSameArgs(t, want, sqlJSON)
		}
	})

	t.Run("LegacyArgs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, want := range []worker.LegacyArgs{
			{RunID: 1, Attempt: 1},
			{RunID: 1<<53 + 1, Attempt: math.MaxInt32},
			{RunID: math.MaxInt64, Attempt: 0},
		} {
			var sqlJSON []byte
			require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.legacy_job_args($1, $2)", want.RunID, want.Attempt).Scan(&sqlJSON))
			requireSameArgs(t, want, sqlJSON)
		}
	})
}

// requireSameArgs checks that want encodes to sqlJSON and that sqlJSON decodes to want.
// JSONEq compares numbers as float64, blind above 2^53; the decoded values are compared
// exactly.
func requireSameArgs[T any](t *testing.T, want T, sqlJSON []byte) {
	t.Helper()
	goJSON, err := json.Marshal(want)
	require.NoError(t, err)
	require.JSONEq(t, string(goJSON), string(sqlJSON))
	var got T
	require.NoError(t, json.Unmarshal(sqlJSON, &got))
	require.Equal(t, want, got)
}

// TestJobKindsAreWhatSQLInserts starts runs and checks that the job each one queues has the
// kind River routes to the worker's args type, and args that decode to the run's attempt.
func TestJobKindsAreWhatSQLInserts(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		ctx  context.Context
		pool *pgxpool.Pool
	}

	// setup registers a probe workflow a→b on a fresh database: one root, so one job a run.
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		b := &testBundle{ctx: ctx, pool: dbtest.Pool(t)}
		def, err := probe.Workflow("kinds", map[string][]string{"a": nil, "b": {"a"}}).Definition()
		require.NoError(t, err)
		_, err = b.pool.Exec(ctx, "SELECT qflow.register_workflow($1)", def)
		require.NoError(t, err)
		return b
	}

	// onlyJob returns the kind and args of the one job in the database.
	onlyJob := func(t *testing.T, b *testBundle) (string, []byte) {
		t.Helper()
		rows, err := b.pool.Query(b.ctx, "SELECT kind, args FROM river.river_job")
		require.NoError(t, err)
		defer rows.Close()
		var (
			kinds []string
			args  [][]byte
		)
		for rows.Next() {
			var (
				kind string
				doc  []byte
			)
			require.NoError(t, rows.Scan(&kind, &doc))
			kinds, args = append(kinds, kind), append(args, doc)
		}
		require.NoError(t, rows.Err())
		require.Len(t, kinds, 1, "jobs queued: %v", kinds)
		return kinds[0], args[0]
	}

	t.Run("WorkflowRunQueuesAStepArgsJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var run int64
		require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, input) VALUES ('kinds', '{}') RETURNING id").Scan(&run))

		kind, args := onlyJob(t, b)
		require.Equal(t, worker.StepArgs{}.Kind(), kind)
		var got worker.StepArgs
		require.NoError(t, json.Unmarshal(args, &got))
		require.Equal(t, worker.StepArgs{RunID: run, Step: "a", Attempt: 1}, got)
	})

	t.Run("LegacyRunQueuesALegacyArgsJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var run int64
		require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, mode, input) VALUES ('kinds', 'legacy', '{}') RETURNING id").Scan(&run))

		kind, args := onlyJob(t, b)
		require.Equal(t, worker.LegacyArgs{}.Kind(), kind)
		var got worker.LegacyArgs
		require.NoError(t, json.Unmarshal(args, &got))
		require.Equal(t, worker.LegacyArgs{RunID: run, Attempt: 1}, got)
	})
}
