package kernels

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// determinismConfig is wide enough that MatMul goes parallel (so worker
// counts matter) and uses dropout and shuffling (so the seed matters).
func determinismConfig(seed uint64, workers int) Config {
	return Config{
		Inputs: 20,
		Layers: []LayerConfig{
			{Units: 128, Activation: ReLU, Dropout: 0.2},
			{Units: 64, Activation: Sigmoid, Dropout: 0.1},
			{Units: 3, Activation: Softmax},
		},
		Loss:      SoftmaxCrossEntropy,
		Epochs:    3,
		BatchSize: 64,
		Seed:      seed,
		Backend:   &CPU{Workers: workers},
	}
}

func determinismData(t *testing.T) (x, y []float32) {
	t.Helper()
	r := newTestRand(8)
	const n = 300
	x = r.floats(n*20, -3, 3)
	labels := make([]int, n)
	for i := range labels {
		// A label that depends on the features, so training has a signal.
		if x[i*20] > 1 {
			labels[i] = 2
		} else if x[i*20+1] > 0 {
			labels[i] = 1
		}
	}
	y, err := OneHot(labels, 3)
	require.NoError(t, err)
	return x, y
}

func TestTrainIsBitIdenticalForTheSameSeed(t *testing.T) {
	t.Parallel()
	x, y := determinismData(t)
	train := func(seed uint64, workers int) ([]byte, []float64) {
		model, losses, err := Train(context.Background(), determinismConfig(seed, workers), x, y)
		require.NoError(t, err)
		b, err := model.MarshalBinary()
		require.NoError(t, err)
		return b, losses
	}

	ref, refLosses := train(11, 1)
	for _, workers := range []int{1, 2, 3, 8} {
		got, losses := train(11, workers)
		// Marshaled bytes hold every weight bit, so equality is bit equality.
		require.Equal(t, ref, got, "weights with %d workers", workers)
		require.Len(t, losses, len(refLosses))
		for i := range losses {
			require.Equal(t, math.Float64bits(refLosses[i]), math.Float64bits(losses[i]), "epoch %d loss with %d workers", i, workers)
		}
	}

	other, _ := train(12, 1)
	require.NotEqual(t, ref, other, "a different seed must give different weights")
}
