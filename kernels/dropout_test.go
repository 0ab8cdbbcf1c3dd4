package kernels

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDropoutMaskIsAFunctionOfSeedStepAndIndex(t *testing.T) {
	t.Parallel()
	const rows, cols = 64, 33
	const rate = 0.3
	be := NewCPU()
	ones := make([]float32, rows*cols)
	for i := range ones {
		ones[i] = 1
	}
	x := upload(t, be, rows, cols, ones)
	run := func(seed, step uint64) []float32 {
		y, err := be.Alloc(rows, cols)
		require.NoError(t, err)
		require.NoError(t, be.Dropout(x, y, rate, seed, step))
		return download(t, be, y)
	}

	first := run(42, 7)
	require.Equal(t, first, run(42, 7), "same (seed, step) must give the same mask")
	require.NotEqual(t, first, run(42, 8), "another step must give another mask")
	require.NotEqual(t, first, run(43, 7), "another seed must give another mask")

	// The backend applies exactly the documented DropoutKeep mask, with
	// inverted scaling so the expected activation is unchanged.
	scale := float32(1 / (1 - float64(float32(rate))))
	for i, v := range first {
		if DropoutKeep(42, 7, uint64(i), rate) {
			require.Equal(t, scale, v, "element %d", i)
		} else {
			require.Zero(t, v, "element %d", i)
		}
	}
}

func TestDropoutKeepsTheConfiguredShare(t *testing.T) {
	t.Parallel()
	const n = 200_000
	for _, rate := range []float32{0.1, 0.2, 0.5, 0.9} {
		kept := 0
		for i := uint64(0); i < n; i++ {
			if DropoutKeep(1, 3, i, rate) {
				kept++
			}
		}
		// Binomial standard deviation is at most sqrt(n)/2 ≈ 224; 5σ ≈ 0.0056.
		require.InDelta(t, 1-float64(rate), float64(kept)/n, 0.006, "rate %v", rate)
	}
}

func TestDropoutBackwardReusesTheForwardMask(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	r := newTestRand(5)
	act := upload(t, be, 8, 16, r.floats(128, 0.1, 1))
	out, _ := be.Alloc(8, 16)
	require.NoError(t, be.Dropout(act, out, 0.5, 9, 100))
	grad := upload(t, be, 8, 16, r.floats(128, 0.1, 1))
	// In place, as the trainer does it.
	require.NoError(t, be.Dropout(grad, grad, 0.5, 9, 100))
	fwd, bwd := download(t, be, out), download(t, be, grad)
	for i := range fwd {
		require.Equal(t, fwd[i] == 0, bwd[i] == 0, "element %d", i)
	}
}

func TestDropoutHashIsPinned(t *testing.T) {
	t.Parallel()
	// Other backends reproduce this mask bit for bit, and a changed hash
	// would silently change every seeded training run: pin it. mix64 must
	// give the published splitmix64 outputs for seed 0 (state γ, then 2γ).
	state := uint64(golden)
	require.Equal(t, uint64(0xe220a8397b1dcdaf), mix64(state))
	require.Equal(t, uint64(0x6e789e6aa1b965f4), mix64(state+state))
	// These were recorded from this implementation; a CUDA backend's test
	// compares against the same list.
	var bits []bool
	for i := uint64(0); i < 16; i++ {
		bits = append(bits, DropoutKeep(42, 7, i, 0.5))
	}
	require.Equal(t, []bool{true, false, true, true, true, true, true, false, false, true, true, false, false, true, false, true}, bits)
}

func TestDropoutRateEdges(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	x := upload(t, be, 1, 3, []float32{1, 2, 3})
	y, _ := be.Alloc(1, 3)
	require.NoError(t, be.Dropout(x, y, 0, 1, 1))
	require.Equal(t, []float32{1, 2, 3}, download(t, be, y))
	require.ErrorContains(t, be.Dropout(x, y, 1, 1, 1), "outside [0, 1)")
	require.ErrorContains(t, be.Dropout(x, y, -0.1, 1, 1), "outside [0, 1)")
}
