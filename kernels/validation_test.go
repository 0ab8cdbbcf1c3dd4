package kernels

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// split cuts the determinism data into a training part and a validation part of the last
// rows.
func split(x, y []float32, inputs, outputs, validation int) (train, val Data) {
	rows := len(x) / inputs
	cut := rows - validation
	return Data{X: x[:cut*inputs], Y: y[:cut*outputs]}, Data{X: x[cut*inputs:], Y: y[cut*outputs:]}
}

// crossEntropy is the mean of -Σ y·log p over rows of probabilities p.
func crossEntropy(p, y []float32, k int) float64 {
	var s float64
	for i := range p {
		if y[i] != 0 {
			s -= float64(y[i]) * math.Log(float64(p[i]))
		}
	}
	return s / float64(len(p)/k)
}

func TestValidationLossIsTheLossOfEachEpochsModelAndChangesNothing(t *testing.T) {
	t.Parallel()
	x, y := determinismData(t)
	tr, val := split(x, y, 20, 3, 70)

	// The same training cut after each of its epochs: its validation loss must be what that
	// epoch's model predicts for the validation rows.
	cfg := determinismConfig(11, 2)
	cfg.Epochs = 4
	var reported []float64
	cfg.Validation = val
	cfg.OnEpoch = func(e EpochStats) { reported = append(reported, e.ValidationLoss) }
	with := train(t, cfg, tr.X, tr.Y)
	require.Len(t, reported, cfg.Epochs)

	for epoch := 1; epoch <= cfg.Epochs; epoch++ {
		c := cfg
		c.Epochs, c.OnEpoch, c.Validation = epoch, nil, Data{}
		m, _, err := Train(context.Background(), c, tr.X, tr.Y)
		require.NoError(t, err)
		p, err := m.Predict(val.X)
		require.NoError(t, err)
		require.InDelta(t, crossEntropy(p, val.Y, 3), reported[epoch-1], 1e-5, "epoch %d", epoch)
	}
	require.Less(t, reported[cfg.Epochs-1], reported[0], "the model learns something that generalises")

	// Measuring the validation data changes no bit of the training.
	cfg.Validation, cfg.OnEpoch = Data{}, nil
	requireBitIdentical(t, train(t, cfg, tr.X, tr.Y), with, "without validation data")
}

func TestValidationLossOfARegressionIsItsMeanSquaredError(t *testing.T) {
	t.Parallel()
	r := newTestRand(6)
	x, y := complexityData(r, 600)
	tr, val := split(x, y, 10, 1, 150)
	cfg := SeedNetwork(10)
	cfg.Epochs, cfg.Seed = 5, 7
	var last EpochStats
	cfg.Validation = val
	cfg.OnEpoch = func(e EpochStats) { last = e }
	m, _, err := Train(context.Background(), cfg, tr.X, tr.Y)
	require.NoError(t, err)
	p, err := m.Predict(val.X)
	require.NoError(t, err)
	require.InDelta(t, mse(p, val.Y), last.ValidationLoss, 1e-6)
}

func TestValidationDataOfTheWrongShapeIsRefused(t *testing.T) {
	t.Parallel()
	x, y := determinismData(t)
	cfg := determinismConfig(1, 1)
	cfg.Validation = Data{X: x[:40], Y: y[:3]}
	_, _, err := Train(context.Background(), cfg, x, y)
	require.ErrorContains(t, err, "3 validation target values for 2 samples of 3 outputs")
	cfg.Validation = Data{X: x[:30], Y: y[:3]}
	_, _, err = Train(context.Background(), cfg, x, y)
	require.ErrorContains(t, err, "validation inputs: 30 values is not a whole number of 20-wide rows")
}

// overfitting is a training that overfits a small sample: its validation loss turns up well
// before its last epoch.
func overfitting(t *testing.T) (Config, Data) {
	t.Helper()
	r := newTestRand(12)
	x, y := complexityData(r, 260)
	tr, val := split(x, y, 10, 1, 200)
	cfg := Config{
		Inputs: 10, Loss: MSE, Adam: AdamParams{LR: 0.01}, Epochs: 60, BatchSize: 16, Seed: 3,
		Layers:     []LayerConfig{{Units: 64, Activation: ReLU}, {Units: 64, Activation: ReLU}, {Units: 1, Activation: Sigmoid}},
		Validation: val, KeepBest: true,
	}
	return cfg, tr
}

func TestKeepBestReturnsTheWeightsOfTheEpochWithTheLowestValidationLoss(t *testing.T) {
	t.Parallel()
	cfg, tr := overfitting(t)
	var curve []float64
	cfg.OnEpoch = func(e EpochStats) { curve = append(curve, e.ValidationLoss) }
	best := train(t, cfg, tr.X, tr.Y)
	bestEpoch := 0
	for i, v := range curve {
		if v < curve[bestEpoch] {
			bestEpoch = i
		}
	}
	t.Logf("validation loss %.4f at epoch 1, lowest %.4f at epoch %d, %.4f at epoch %d", curve[0], curve[bestEpoch], bestEpoch+1, curve[len(curve)-1], len(curve))
	require.Less(t, bestEpoch+1, cfg.Epochs-5, "the sample is small enough to overfit")

	// The weights returned are those a training stopped at that epoch ends with, and the
	// losses are still every epoch's.
	stopped := cfg
	stopped.Epochs, stopped.KeepBest, stopped.OnEpoch = bestEpoch+1, false, nil
	require.Equal(t, train(t, stopped, tr.X, tr.Y).model, best.model)
	require.Len(t, best.losses, cfg.Epochs)

	// Interrupted after the best epoch, resumed: the same best weights.
	cfg.OnEpoch = nil
	ck := interruptedAfter(t, cfg, tr.X, tr.Y, bestEpoch+3)
	resumed := cfg
	resumed.Resume = ck
	requireBitIdentical(t, best, train(t, resumed, tr.X, tr.Y), "resumed")
	raw, err := ck.MarshalBinary()
	require.NoError(t, err)
	again, err := LoadCheckpoint(raw)
	require.NoError(t, err)
	require.Equal(t, bestEpoch+1, again.bestEpoch, "the checkpoint keeps the best epoch")

	// A checkpoint of a training that kept no best weights is another training's.
	plain := cfg
	plain.KeepBest = false
	resumed.Resume = interruptedAfter(t, plain, tr.X, tr.Y, 2)
	_, _, err = Train(context.Background(), resumed, tr.X, tr.Y)
	require.ErrorIs(t, err, ErrCheckpointMismatch)

	// And there is no best without validation data.
	cfg.Validation = Data{}
	_, _, err = Train(context.Background(), cfg, tr.X, tr.Y)
	require.ErrorContains(t, err, "keep best needs validation data")
}
