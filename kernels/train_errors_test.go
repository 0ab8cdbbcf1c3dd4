package kernels

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTrainRejectsInvalidConfigs(t *testing.T) {
	t.Parallel()
	valid := func() Config {
		return Config{
			Inputs:    2,
			Layers:    []LayerConfig{{Units: 4, Activation: ReLU, Dropout: 0.5}, {Units: 1, Activation: Sigmoid}},
			Epochs:    1,
			BatchSize: 2,
		}
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no inputs", func(c *Config) { c.Inputs = 0 }, "inputs 0"},
		{"no layers", func(c *Config) { c.Layers = nil }, "no layers"},
		{"zero units", func(c *Config) { c.Layers[0].Units = 0 }, "layer 0: units 0"},
		{"dropout of one", func(c *Config) { c.Layers[0].Dropout = 1 }, "layer 0: dropout 1 outside [0, 1)"},
		{"output dropout", func(c *Config) { c.Layers[1].Dropout = 0.1 }, "dropout on the output layer"},
		{"xent without softmax", func(c *Config) { c.Loss = SoftmaxCrossEntropy }, "needs a softmax output layer"},
		{"unknown activation", func(c *Config) { c.Layers[1].Activation = 7 }, "unknown activation(7)"},
		{"no epochs", func(c *Config) { c.Epochs = 0 }, "epochs 0"},
		{"no batch", func(c *Config) { c.BatchSize = -1 }, "batch size -1"},
		{"negative lr", func(c *Config) { c.Adam.LR = -1 }, "adam lr -1"},
		{"beta of one", func(c *Config) { c.Adam.Beta2 = 1 }, "adam betas"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid()
			tc.mutate(&cfg)
			_, _, err := Train(context.Background(), cfg, []float32{1, 2, 3, 4}, []float32{0, 1})
			require.ErrorContains(t, err, "train: config: ")
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestTrainRejectsMisshapenData(t *testing.T) {
	t.Parallel()
	cfg := SeedNetwork(3)
	cfg.Epochs = 1
	_, _, err := Train(context.Background(), cfg, []float32{1, 2, 3, 4}, []float32{0})
	require.ErrorContains(t, err, "4 values is not a whole number of 3-wide rows")
	_, _, err = Train(context.Background(), cfg, []float32{1, 2, 3, 4, 5, 6}, []float32{0})
	require.ErrorContains(t, err, "1 target values for 2 samples of 1 outputs")
	_, _, err = Train(context.Background(), cfg, nil, nil)
	require.ErrorContains(t, err, "no training samples")
}

func TestTrainStopsWhenTheContextIsCanceled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := SeedNetwork(2)
	_, _, err := Train(ctx, cfg, []float32{1, 2, 3, 4}, []float32{0, 1})
	require.ErrorIs(t, err, context.Canceled)
}

func TestTrainReportsDivergence(t *testing.T) {
	t.Parallel()
	// Targets of 1e30 overflow the float32 loss on the first epoch.
	cfg := Config{Inputs: 1, Layers: []LayerConfig{{Units: 1, Activation: Identity}}, Epochs: 2, BatchSize: 2}
	_, _, err := Train(context.Background(), cfg, []float32{1, 2}, []float32{1e30, -1e30})
	require.ErrorContains(t, err, "training diverged")
}

func TestPredictRejectsMisshapenInput(t *testing.T) {
	t.Parallel()
	cfg := SeedNetwork(3)
	cfg.Epochs = 1
	model, _, err := Train(context.Background(), cfg, []float32{1, 2, 3, 4, 5, 6}, []float32{0, 1})
	require.NoError(t, err)
	_, err = model.Predict([]float32{1, 2})
	require.ErrorContains(t, err, "predict: 2 values is not a whole number of 3-wide rows")
	out, err := model.Predict(nil)
	require.NoError(t, err)
	require.Empty(t, out)
}

func TestOneHot(t *testing.T) {
	t.Parallel()
	y, err := OneHot([]int{2, 0}, 3)
	require.NoError(t, err)
	require.Equal(t, []float32{0, 0, 1, 1, 0, 0}, y)
	_, err = OneHot([]int{3}, 3)
	require.ErrorContains(t, err, "label 3 at row 0 outside [0, 3)")
}

func TestPredictOnAnEmptyModelFails(t *testing.T) {
	t.Parallel()
	_, err := (&Model{}).Predict([]float32{1})
	require.ErrorContains(t, err, "empty model")
}
