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
