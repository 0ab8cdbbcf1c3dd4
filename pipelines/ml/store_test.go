package ml_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines/ml"
)

type testBundle struct {
	*enginetest.Env
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{Env: enginetest.New(t, enginetest.Probes)}
}

// run inserts a run (artifacts and models belong to one); no worker runs it.
func (b *testBundle) run(t *testing.T) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "INSERT INTO qflow.runs (workflow) VALUES ('probe_chain') RETURNING id").Scan(&id))
	return id
}

func TestArtifactsRoundTripByRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := ml.NewArtifacts(b.Pool)
	run, other := b.run(t), b.run(t)

	m := &ml.Matrix{Rows: 2, Cols: 3, Data: []float64{1, 2.5, -3, 1e15 + 1, 0, 7}}
	id, err := a.PutMatrix(b.Ctx, run, "x", m, map[string]any{"vocab": []string{"a"}})
	require.NoError(t, err)
	var meta struct{ Vocab []string }
	got, err := a.Matrix(b.Ctx, run, id, &meta)
	require.NoError(t, err)
	require.Equal(t, m, got, "float64 keeps ids and counts exact")
	require.Equal(t, []string{"a"}, meta.Vocab)
	require.Equal(t, []float32{2.5, -3, 0, 7}, got.Columns(1, 3))

	// A retried step overwrites its artifact and keeps the id.
	again, err := a.PutMatrix(b.Ctx, run, "x", &ml.Matrix{Rows: 1, Cols: 1, Data: []float64{9}}, nil)
	require.NoError(t, err)
	require.Equal(t, id, again)
	got, err = a.Matrix(b.Ctx, run, id, nil)
	require.NoError(t, err)
	require.Equal(t, []float64{9}, got.Data)

	// Another run cannot read it, and a JSON artifact is not a matrix.
	_, err = a.Matrix(b.Ctx, other, id, nil)
	require.ErrorContains(t, err, "does not exist")
	jid, err := a.PutJSON(b.Ctx, run, "doc", map[string]int{"n": 1})
	require.NoError(t, err)
	_, err = a.Matrix(b.Ctx, run, jid, nil)
	require.ErrorContains(t, err, "is a json, not a matrix")

	// Pruning spares live runs and takes those finished long enough ago.
	n, err := a.Prune(b.Ctx, time.Hour)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = b.Pool.Exec(b.Ctx, "UPDATE qflow.runs SET status = 'cancelled', finished_at = now() - interval '2 hours' WHERE id = $1", run)
	require.NoError(t, err)
	n, err = a.Prune(b.Ctx, time.Hour)
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
}

// tinyModel trains a real (if useless) model so that the registry stores real weights.
func tinyModel(t *testing.T, seed uint64) []byte {
	t.Helper()
	cfg := kernels.Config{Inputs: 2, Layers: []kernels.LayerConfig{{Units: 1, Activation: kernels.Sigmoid}}, Epochs: 1, BatchSize: 2, Seed: seed}
	m, _, err := ml.NewTrainer(nil).Train(context.Background(), cfg, []float32{0, 1, 1, 0}, []float32{0, 1}, nil)
	require.NoError(t, err)
	raw, err := m.MarshalBinary()
	require.NoError(t, err)
	return raw
}

func TestDeployActivatesOnlyWinners(t *testing.T) {
	t.Parallel()
	b := setup(t)
	deploy := func(run int64, win bool) ml.Deployed {
		t.Helper()
		d, err := ml.Deploy(b.Ctx, b.Pool, ml.Candidate{
			Name: "demo", RunID: run, Backend: "cpu", Weights: tinyModel(t, uint64(run)),
			Architecture: map[string]any{"layers": 1}, Normalization: map[string]any{},
			Metrics: map[string]any{"mse": 0.1, "holdout": ml.NewHoldout("id", 0.2)},
		}, func(_ context.Context, active *ml.StoredModel) (ml.Decision, error) {
			if active == nil {
				return ml.Decision{Activated: true, Reason: "first"}, nil
			}
			require.NotNil(t, active.Model, "the judge gets the active model decoded")
			require.Equal(t, &ml.Holdout{Of: "id", Share: 0.2, Scheme: 1}, active.Holdout, "and the holdout its metrics record")
			if win {
				return ml.Decision{Activated: true, Reason: "wins", Metric: "MSE"}, nil
			}
			return ml.Decision{Reason: "loses"}, nil
		})
		require.NoError(t, err)
		return d
	}
	r1, r2, r3 := b.run(t), b.run(t), b.run(t)

	first := deploy(r1, false)
	require.Equal(t, ml.Deployed{ID: first.ID, Version: 1, Status: ml.StatusActive, Decision: "first"}, first)
	loser := deploy(r2, false)
	require.Equal(t, ml.StatusCandidate, loser.Status)
	require.EqualValues(t, 2, loser.Version)
	winner := deploy(r3, true)
	require.Equal(t, ml.StatusActive, winner.Status)

	var statuses []string
	rows, err := b.Pool.Query(b.Ctx, "SELECT status FROM ml.models WHERE name = 'demo' ORDER BY version")
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		statuses = append(statuses, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"retired", "candidate", "active"}, statuses)
	// The decision goes into the metrics, next to what the pipeline put there.
	require.Equal(t, 1, b.Count(t, `SELECT count(*) FROM ml.models WHERE id = $1 AND decision = 'wins'
	                                 AND metrics -> 'decision' ->> 'reason' = 'wins' AND metrics -> 'decision' ->> 'metric' = 'MSE'
	                                 AND (metrics -> 'decision' ->> 'activated')::boolean AND (metrics ->> 'mse')::float = 0.1`, winner.ID))

	// A retried deployment of a run gets what the run stored, and changes nothing.
	again := deploy(r2, true)
	require.True(t, again.Reused)
	require.Equal(t, loser.ID, again.ID)
	require.Equal(t, ml.StatusCandidate, again.Status)

	active, err := ml.ActiveModel(b.Ctx, b.Pool, "demo")
	require.NoError(t, err)
	require.Equal(t, winner.ID, active.ID)

	// A judge that fails leaves nothing behind.
	_, err = ml.Deploy(b.Ctx, b.Pool, ml.Candidate{Name: "demo", RunID: b.run(t), Backend: "cpu", Weights: tinyModel(t, 9),
		Architecture: map[string]any{}, Normalization: map[string]any{}, Metrics: map[string]any{}},
		func(context.Context, *ml.StoredModel) (ml.Decision, error) { return ml.Decision{}, errors.New("boom") })
	require.ErrorContains(t, err, "comparing with the active model: boom")
	var n int
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT count(*) FROM ml.models").Scan(&n))
	require.Equal(t, 3, n)
}
