package complexity_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/complexity"
	"github.com/quantumflow/qflow/pipelines/ml"
)

func TestSelectionKeepsTheConfigOfTheLowestValidationLossWithoutReadingTheHoldout(t *testing.T) {
	t.Parallel()
	b := setupHandlers(t, 1500)
	run := b.newRun(t)
	// An absurd learning rate, the seed network twice (they tie), and a network too small and
	// too briefly trained to learn much.
	const input = `{"epochs": 20, "seed": 7, "min_rows": 50, "sweep": [
		{"learning_rate": 5},
		{},
		{"epochs": 20},
		{"hidden_layers": [1], "dropout": [0], "epochs": 1, "learning_rate": 0.0001}]}`
	out := b.chain(t, run, input, complexity.StepModelTraining, nil)

	fe := decode[complexity.FeaturesOutput](t, out[complexity.StepFeatureEngineering])
	seed := complexity.TrainingConfig{LearningRate: 0.001, HiddenLayers: []int{64, 32}, Dropout: []float32{0.2, 0.1}, Epochs: 20, BatchSize: 32, Seed: 7}
	absurd := seed
	absurd.LearningRate = 5
	tiny := complexity.TrainingConfig{LearningRate: 0.0001, HiddenLayers: []int{1}, Dropout: []float32{0}, Epochs: 1, BatchSize: 32, Seed: 7}
	require.Equal(t, []complexity.TrainingConfig{absurd, seed, seed, tiny}, fe.Configs, "each entry over the run's own configuration")
	trained := decode[[]complexity.TrainOutput](t, out[complexity.StepModelTraining])
	require.Len(t, trained, 4)
	require.Equal(t, 4, b.Count(t, "SELECT count(DISTINCT name) FROM ml.artifacts WHERE run_id = $1 AND name ~ '^model_[0-3]$'", run),
		"a model artifact per configuration")

	// The held-out rows are out of reach: selection still chooses.
	elsewhere := b.newRun(t)
	const hide = "UPDATE ml.artifacts SET run_id = $2 WHERE run_id = $1 AND name IN ('held_out', 'held_out_records')"
	b.Exec(t, hide, run, elsewhere)
	raw, err := b.call(t, run, complexity.StepModelSelection, input, out)
	require.NoError(t, err)
	b.Exec(t, hide, elsewhere, run)
	out[complexity.StepModelSelection] = raw
	sel := decode[complexity.SelectOutput](t, raw)

	losses := make([]float64, len(sel.Configs))
	for i, c := range sel.Configs {
		require.Equal(t, fe.Configs[i], c.Config)
		require.NotNil(t, c.ValidationLoss, "configs[%d]", i)
		losses[i] = *c.ValidationLoss
	}
	t.Logf("validation losses %v, chose %d", losses, sel.Chosen)
	require.Equal(t, 1, sel.Chosen, "the seed network, the first of the two that tie")
	require.Equal(t, losses[1], losses[2], "the same configuration trains the same model")
	require.Greater(t, losses[0], 2*losses[1], "an absurd learning rate is visibly worse")
	require.Greater(t, losses[3], 2*losses[1], "so is a one-unit network trained for one epoch")
	require.Equal(t, trained[1], sel.TrainOutput, "the chosen configuration's training is passed on")

	// The loss is the chosen model's MSE on feature_engineering's validation rows.
	v := fe.Artifacts.Validation
	val, err := b.artifacts.Matrix(b.Ctx, v.Run, v.ID, nil)
	require.NoError(t, err)
	require.Equal(t, fe.ValidationRows, val.Rows)
	model, _, err := b.artifacts.Model(b.Ctx, sel.Artifacts.Model.Run, sel.Artifacts.Model.ID, nil)
	require.NoError(t, err)
	pred, err := model.Predict(val.Columns(0, val.Cols-1))
	require.NoError(t, err)
	var sse float64
	for i, p := range pred {
		d := float64(p) - val.Data[i*val.Cols+val.Cols-1]
		sse += d * d
	}
	require.InDelta(t, sse/float64(val.Rows), losses[1], 1e-12)

	// Evaluation and deployment take the chosen model as they took the only one.
	out = b.chain(t, run, input, complexity.StepModelDeployment, out)
	deployed := decode[complexity.DeployOutput](t, out[complexity.StepModelDeployment])
	require.Equal(t, ml.StatusActive, deployed.Model.Status)
	require.Equal(t, 1, b.Count(t, `SELECT count(*) FROM ml.models WHERE id = $1 AND architecture -> 'adam' ->> 'lr' = '0.001'
	                                 AND jsonb_array_length(architecture -> 'layers') = 3`, deployed.Model.ID))
}

func TestWithoutASweepARunTrainsTheSeedNetworkAsBefore(t *testing.T) {
	t.Parallel()
	b := setupHandlers(t, 1500)
	run := b.newRun(t)
	const input = `{"epochs": 12, "seed": 7, "min_rows": 50}`
	out := b.chain(t, run, input, complexity.StepModelDeployment, nil)

	var fe struct {
		Configs []json.RawMessage `json:"configs"`
	}
	require.NoError(t, json.Unmarshal(out[complexity.StepFeatureEngineering], &fe))
	require.Len(t, fe.Configs, 1)
	require.JSONEq(t, `{"learning_rate": 0.001, "hidden_layers": [64, 32], "dropout": [0.2, 0.1], "epochs": 12, "batch_size": 32, "seed": 7}`,
		string(fe.Configs[0]), "the run's own configuration, alone")
	sel := decode[complexity.SelectOutput](t, out[complexity.StepModelSelection])
	require.Zero(t, sel.Chosen)
	require.Len(t, sel.Configs, 1)
	require.NotNil(t, sel.Configs[0].ValidationLoss)

	// The weights are those the seed network trains on these rows, bit for bit, as
	// model_training trained them before sweeps.
	features := decode[complexity.FeaturesOutput](t, out[complexity.StepFeatureEngineering])
	matrix := func(r ml.Ref) *ml.Matrix {
		m, err := b.artifacts.Matrix(b.Ctx, r.Run, r.ID, nil)
		require.NoError(t, err)
		return m
	}
	train, val := matrix(features.Artifacts.Train), matrix(features.Artifacts.Validation)
	d := train.Cols - 1
	cfg := kernels.SeedNetwork(d)
	cfg.Epochs, cfg.BatchSize, cfg.Seed = 12, 32, 7
	cfg.Validation, cfg.KeepBest = kernels.Data{X: val.Columns(0, d), Y: val.Columns(d, d+1)}, true
	want, _, err := ml.NewTrainer(nil).Train(b.Ctx, cfg, train.Columns(0, d), train.Columns(d, d+1), nil)
	require.NoError(t, err)
	wantRaw, err := want.MarshalBinary()
	require.NoError(t, err)
	deployed := decode[complexity.DeployOutput](t, out[complexity.StepModelDeployment])
	var weights, architecture []byte
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT weights, architecture FROM ml.models WHERE id = $1", deployed.Model.ID).Scan(&weights, &architecture))
	require.Equal(t, wantRaw, weights)
	wantArch, err := json.Marshal(ml.Architecture(cfg))
	require.NoError(t, err)
	require.JSONEq(t, string(wantArch), string(architecture), "the registry describes the network as before")
	require.Equal(t, ml.StatusActive, deployed.Model.Status)
	require.Equal(t, 12, deployed.Training.Epochs)
}

func TestABadSweepFailsPermanentlyNamingEveryMistake(t *testing.T) {
	t.Parallel()
	b := setupHandlers(t, 0)
	run := b.newRun(t)
	fails := func(input string, want ...string) {
		t.Helper()
		_, err := b.call(t, run, complexity.StepDataFingerprint, input, nil)
		require.Error(t, err, input)
		require.True(t, pipelines.IsPermanent(err), "%s: %v", input, err)
		for _, w := range want {
			require.Contains(t, err.Error(), w, input)
		}
	}

	fails(`{"sweep": []}`, "sweep must list 1 to 64 configurations, got 0")
	fails(`{"sweep": [`+strings.Repeat(`{}, `, 64)+`{}]}`, "sweep must list 1 to 64 configurations, got 65")
	fails(`{"sweep": {"epochs": 3}}`, "run input: json: cannot unmarshal object")
	fails(`{"sweep": [
		{"learning_rate": 0},
		{"hidden_layers": [128, 64, 32]},
		{"lr": 0.1},
		{"dropout": [1, 0.1], "epochs": 0, "batch_size": 0},
		3,
		null,
		{"hidden_layers": [0, 5000], "dropout": [0.1, 0.1], "learning_rate": 11},
		{"learning_rate": 0.01, "hidden_layers": [128, 64, 32], "dropout": [0.3, 0.2, 0.1], "epochs": 100, "batch_size": 64, "seed": 3}]}`,
		"sweep[0]: learning_rate must be in (0, 10], got 0",
		"sweep[1]: dropout must list one share per hidden layer (3), got 2",
		`sweep[2]: json: unknown field "lr"`,
		"sweep[3]: dropout[0] must be a share in [0, 1), got 1",
		"sweep[3]: epochs must be between 1 and 10000, got 0",
		"sweep[3]: batch_size must be between 1 and 65536, got 0",
		"sweep[4]: json: cannot unmarshal number",
		"sweep[5]: must be an object",
		"sweep[6]: learning_rate must be in (0, 10], got 11",
		"sweep[6]: hidden_layers[0] must be between 1 and 4096 units, got 0",
		"sweep[6]: hidden_layers[1] must be between 1 and 4096 units, got 5000")
	_, err := b.call(t, run, complexity.StepDataFingerprint, `{"sweep": [{"learning_rate": 0}, {}]}`, nil)
	require.NotContains(t, err.Error(), "sweep[1]", "a good entry is not mentioned")
	_, err = b.call(t, run, complexity.StepDataFingerprint,
		`{"sweep": [{"learning_rate": 0.01, "hidden_layers": [128, 64, 32], "dropout": [0.3, 0.2, 0.1], "epochs": 100, "batch_size": 64, "seed": 3}]}`, nil)
	require.NoError(t, err, "every field may be set")

	// model_training trains only an element it is given, and a valid one.
	training := b.step(t, complexity.StepModelTraining)
	for _, in := range []pipelines.Input{
		{RunID: run, Step: training.Name, Task: -1},
		{RunID: run, Step: training.Name, Task: 0, Item: json.RawMessage(`{"learning_rate": -1, "hidden_layers": [8], "dropout": [0], "epochs": 1, "batch_size": 1}`)},
		{RunID: run, Step: training.Name, Task: 0, Item: json.RawMessage(`{"units": 8}`)},
	} {
		_, err := training.Handler(b.Ctx, in)
		require.Error(t, err)
		require.True(t, pipelines.IsPermanent(err), "%v", err)
		t.Log(err)
	}
}
