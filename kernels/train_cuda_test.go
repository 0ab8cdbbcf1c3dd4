//go:build cuda || cudaemu

package kernels

import (
	"context"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Whole training runs on the CUDA backend against the CPU backend. The two
// differ only by float32 rounding (fused multiply-adds, summation order),
// which training amplifies slowly: on the complexity network a CPU run with
// fused multiply-adds stays within 1e-6 of the plain CPU run for 30 epochs
// and drifts to ~1e-3 by epoch 50 as ReLU units flip. Hence 30 epochs and a
// per-epoch tolerance of 1e-3 relative, with dropout off as the issue asks
// (with dropout on the masks are bit-identical, see the dropout test).
const trainLossTolerance = 1e-3

// requireSameCurve compares two loss curves epoch by epoch.
func requireSameCurve(t *testing.T, cpu, gpu []float64) {
	t.Helper()
	require.Len(t, gpu, len(cpu))
	worst := 0.0
	for i := range cpu {
		rel := math.Abs(gpu[i]-cpu[i]) / math.Abs(cpu[i])
		worst = max(worst, rel)
		require.LessOrEqualf(t, rel, trainLossTolerance, "epoch %d: cpu loss %.9g, cuda %.9g", i, cpu[i], gpu[i])
	}
	t.Logf("loss %.6g -> %.6g over %d epochs; largest relative difference %.2e", cpu[0], cpu[len(cpu)-1], len(cpu), worst)
}

func TestCUDATrainingMatchesCPU(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 20)
	x, y := complexityData(b.r, 2000)
	xt, yt := complexityData(b.r, 500)
	cfg := SeedNetwork(10)
	for i := range cfg.Layers {
		cfg.Layers[i].Dropout = 0
	}
	cfg.Epochs = 30
	cfg.Seed = 7
	// The held-out samples are the validation data too: their loss per epoch must agree.
	cfg.Validation = Data{X: xt, Y: yt}
	var validation [2][]float64
	onEpoch := func(i int) func(EpochStats) {
		return func(e EpochStats) { validation[i] = append(validation[i], e.ValidationLoss) }
	}

	cfg.OnEpoch = onEpoch(0)
	cpuModel, cpuLosses, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)
	cfg.Backend, cfg.OnEpoch = b.gpu, onEpoch(1)
	gpuModel, gpuLosses, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)
	requireSameCurve(t, cpuLosses, gpuLosses)
	requireSameCurve(t, validation[0], validation[1])

	// The two trained models score held-out samples alike.
	want, err := cpuModel.Predict(xt)
	require.NoError(t, err)
	got, err := gpuModel.Predict(xt)
	require.NoError(t, err)
	requireClose(t, to64(want), got, 1e-3, 0, "held-out predictions")
}

// teacherData is the benchmark's wide task in small: Gaussian inputs labelled
// by the argmax of a random linear teacher.
func teacherData(r *testRand, n, in, classes int) (x, y []float32) {
	teacher := make([]float64, in*classes)
	for i := range teacher {
		teacher[i] = r.normal()
	}
	labels := make([]int, n)
	for i := range labels {
		row := make([]float32, in)
		for j := range row {
			row[j] = float32(r.normal())
		}
		x = append(x, row...)
		best, bestScore := 0, math.Inf(-1)
		for c := 0; c < classes; c++ {
			var s float64
			for j, v := range row {
				s += float64(v) * teacher[j*classes+c]
			}
			if s > bestScore {
				best, bestScore = c, s
			}
		}
		labels[i] = best
	}
	y, _ = OneHot(labels, classes)
	return x, y
}

func TestCUDATrainingWideClassifierMatchesCPU(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 21)
	// Batches of 256 through 256-wide layers use the large tiles and
	// split-K; softmax cross-entropy and the 10-wide output the small ones.
	x, y := teacherData(b.r, 2048, 64, 10)
	cfg := Config{
		Inputs: 64,
		Layers: []LayerConfig{
			{Units: 256, Activation: ReLU},
			{Units: 256, Activation: ReLU},
			{Units: 10, Activation: Softmax},
		},
		Loss:      SoftmaxCrossEntropy,
		Epochs:    5,
		BatchSize: 256,
		Seed:      3,
	}
	_, cpuLosses, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)
	cfg.Backend = b.gpu
	_, gpuLosses, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)
	requireSameCurve(t, cpuLosses, gpuLosses)
	require.Less(t, gpuLosses[len(gpuLosses)-1], gpuLosses[0]/2, "the classifier learns on the GPU")
}

func TestCUDAPredictionsMatchCPUForTheSameWeights(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 22)

	// The complexity network, trained with dropout on the CPU.
	x, y := complexityData(b.r, 1000)
	cfg := SeedNetwork(10)
	cfg.Epochs, cfg.Seed = 10, 11
	score, _, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)

	// A classifier with every activation.
	xb, labels := blobs(b.r, 100)
	yb, err := OneHot(labels, 3)
	require.NoError(t, err)
	classifier, _, err := Train(context.Background(), Config{
		Inputs: 2,
		Layers: []LayerConfig{
			{Units: 16, Activation: ReLU},
			{Units: 8, Activation: Sigmoid},
			{Units: 8, Activation: Identity},
			{Units: 3, Activation: Softmax},
		},
		Loss: SoftmaxCrossEntropy, Epochs: 10, BatchSize: 16, Seed: 12,
	}, xb, yb)
	require.NoError(t, err)

	// More rows than one prediction batch (predictBatch), so the last batch is partial.
	xs, _ := complexityData(b.r, 2500)
	xc, _ := blobs(b.r, 900)
	for _, tc := range []struct {
		name  string
		model *Model
		x     []float32
	}{{"complexity", score, xs}, {"classifier", classifier, xc}} {
		want, err := tc.model.Predict(tc.x)
		require.NoError(t, err)
		got, err := tc.model.PredictOn(b.gpu, tc.x)
		require.NoError(t, err)
		requireClose(t, to64(want), got, 1e-6, 1e-5, tc.name)
	}
}

func TestCUDAConcurrentTrainingIsDeterministic(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 23)
	x, y := complexityData(b.r, 1500)
	cfg := SeedNetwork(10) // with dropout
	cfg.Epochs, cfg.Seed, cfg.Backend = 8, 5, b.gpu

	type run struct {
		model  []byte
		losses []float64
		err    error
	}
	train := func(seed uint64) (r run) {
		c := cfg
		c.Seed = seed
		m, losses, err := Train(context.Background(), c, x, y)
		if err != nil {
			return run{err: err}
		}
		r.model, r.err = m.MarshalBinary()
		r.losses = losses
		return r
	}
	// Alone first, then three at once on the same backend (two of them the
	// same run): our kernels sum in a fixed order, so a run on the GPU is
	// reproducible bit for bit, and interleaving must not change that.
	alone := train(5)
	require.NoError(t, alone.err)
	var wg sync.WaitGroup
	runs := make([]run, 3)
	for i, seed := range []uint64{5, 6, 5} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = train(seed)
		}()
	}
	wg.Wait()
	for i, r := range runs {
		require.NoError(t, r.err, "run %d", i)
	}
	for _, i := range []int{0, 2} {
		require.Equal(t, alone.losses, runs[i].losses, "run %d", i)
		require.Equal(t, alone.model, runs[i].model, "run %d", i)
	}
	require.NotEqual(t, alone.losses, runs[1].losses, "another seed trains another model")
}
