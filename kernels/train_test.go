package kernels

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func mse(pred, target []float32) float64 {
	var s float64
	for i := range pred {
		d := float64(pred[i]) - float64(target[i])
		s += d * d
	}
	return s / float64(len(pred))
}

func argmax(row []float32) int {
	best := 0
	for j, v := range row {
		if v > row[best] {
			best = j
		}
	}
	return best
}

func TestTrainLearnsXOR(t *testing.T) {
	t.Parallel()
	x := []float32{0, 0, 0, 1, 1, 0, 1, 1}
	y := []float32{0, 1, 1, 0}
	cfg := Config{
		Inputs:    2,
		Layers:    []LayerConfig{{Units: 16, Activation: ReLU}, {Units: 1, Activation: Sigmoid}},
		Loss:      MSE,
		Adam:      AdamParams{LR: 0.05},
		Epochs:    300,
		BatchSize: 4,
		Seed:      1,
	}
	model, losses, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)
	require.Len(t, losses, cfg.Epochs)
	require.Less(t, losses[len(losses)-1], 0.01)

	pred, err := model.Predict(x)
	require.NoError(t, err)
	require.Less(t, mse(pred, y), 0.01)
	for i, p := range pred {
		require.Equal(t, y[i] > 0.5, p > 0.5, "sample %d predicted %v", i, p)
	}
}

func TestTrainFitsASine(t *testing.T) {
	t.Parallel()
	// y = sin(x) on [-π, π]: a smooth nonlinear target a linear model cannot
	// fit (its best MSE is about 0.19).
	const n = 256
	x, y := make([]float32, n), make([]float32, n)
	for i := range x {
		v := -math.Pi + 2*math.Pi*float64(i)/(n-1)
		x[i], y[i] = float32(v), float32(math.Sin(v))
	}
	cfg := Config{
		Inputs:    1,
		Layers:    []LayerConfig{{Units: 32, Activation: ReLU}, {Units: 32, Activation: ReLU}, {Units: 1, Activation: Identity}},
		Loss:      MSE,
		Adam:      AdamParams{LR: 0.01},
		Epochs:    150,
		BatchSize: 32,
		Seed:      2,
	}
	model, losses, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)
	require.Less(t, losses[len(losses)-1], 0.005)

	// Held-out points between the training grid.
	r := newTestRand(3)
	xt := r.floats(200, -math.Pi, math.Pi)
	yt := make([]float32, len(xt))
	for i, v := range xt {
		yt[i] = float32(math.Sin(float64(v)))
	}
	pred, err := model.Predict(xt)
	require.NoError(t, err)
	require.Less(t, mse(pred, yt), 0.005)
}

// blobs draws n points per class around three centers 120° apart on a
// circle of radius 3, with unit variance: classes overlap by about 1%.
func blobs(r *testRand, n int) (x []float32, labels []int) {
	for c := 0; c < 3; c++ {
		angle := 2 * math.Pi * float64(c) / 3
		cx, cy := 3*math.Cos(angle), 3*math.Sin(angle)
		for i := 0; i < n; i++ {
			x = append(x, float32(cx+r.normal()), float32(cy+r.normal()))
			labels = append(labels, c)
		}
	}
	return x, labels
}

func TestTrainClassifiesThreeClasses(t *testing.T) {
	t.Parallel()
	r := newTestRand(4)
	x, labels := blobs(r, 100)
	y, err := OneHot(labels, 3)
	require.NoError(t, err)
	cfg := Config{
		Inputs:    2,
		Layers:    []LayerConfig{{Units: 16, Activation: ReLU}, {Units: 3, Activation: Softmax}},
		Loss:      SoftmaxCrossEntropy,
		Adam:      AdamParams{LR: 0.01},
		Epochs:    40,
		BatchSize: 16,
		Seed:      5,
	}
	model, losses, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)
	require.Less(t, losses[len(losses)-1], losses[0]/3)

	xt, lt := blobs(r, 200)
	pred, err := model.Predict(xt)
	require.NoError(t, err)
	correct := 0
	for i, l := range lt {
		row := pred[i*3 : i*3+3]
		require.InDelta(t, 1, float64(row[0]+row[1]+row[2]), 1e-5, "softmax output sums to 1")
		if argmax(row) == l {
			correct++
		}
	}
	require.GreaterOrEqual(t, float64(correct)/float64(len(lt)), 0.95)
}

// complexityData is a stand-in for the complexity pipeline's features: ten
// features of different scales and offsets (normalization must handle them)
// and a score in (0, 1) that depends on them nonlinearly, plus noise.
func complexityData(r *testRand, n int) (x, y []float32) {
	scale := []float64{1, 10, 100, 0.1, 1, 5, 1000, 1, 2, 0.5}
	offset := []float64{0, 50, -200, 1, 3, 0, 5000, -1, 0, 10}
	for i := 0; i < n; i++ {
		f := make([]float64, 10)
		for j := range f {
			f[j] = r.normal()
			x = append(x, float32(offset[j]+scale[j]*f[j]))
		}
		z := 0.8*f[0] - 0.6*f[1] + 0.5*f[2]*f[3] + 0.7*math.Abs(f[4]) - 0.4*f[6] + 0.05*r.normal()
		y = append(y, float32(1/(1+math.Exp(-z))))
	}
	return x, y
}

func TestSeedNetworkLearnsComplexityScores(t *testing.T) {
	t.Parallel()
	r := newTestRand(6)
	x, y := complexityData(r, 2000)
	xt, yt := complexityData(r, 500)
	cfg := SeedNetwork(10)
	cfg.Epochs = 30
	cfg.Seed = 7
	model, losses, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)

	pred, err := model.Predict(xt)
	require.NoError(t, err)
	var mean float64
	for _, v := range yt {
		mean += float64(v)
	}
	mean /= float64(len(yt))
	var variance float64
	for _, v := range yt {
		variance += (float64(v) - mean) * (float64(v) - mean)
	}
	variance /= float64(len(yt))
	r2 := 1 - mse(pred, yt)/variance
	t.Logf("seed network: first loss %.4f, last %.4f, held-out MSE %.4f, R² %.3f", losses[0], losses[len(losses)-1], mse(pred, yt), r2)
	require.Less(t, losses[len(losses)-1], losses[0]/2)
	require.Greater(t, r2, 0.9)
}
