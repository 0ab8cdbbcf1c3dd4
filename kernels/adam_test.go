package kernels

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAdamStepMatchesHandComputedSteps(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	p := AdamParams{LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	w := upload(t, be, 1, 2, []float32{1, -3})
	m, _ := be.Alloc(1, 2)
	v, _ := be.Alloc(1, 2)

	// Moments are compared relatively: 1-β2 is itself rounded in float32.
	// Step 1, g = 0.5: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25,
	// w = 1 - 0.1·0.5/(0.5 + 1e-8) = 0.9. The second weight has g = 0 and
	// must not move.
	g := upload(t, be, 1, 2, []float32{0.5, 0})
	require.NoError(t, be.AdamStep(w, g, m, v, p, 1))
	require.InEpsilon(t, 0.05, download(t, be, m)[0], 1e-4)
	require.InEpsilon(t, 0.00025, download(t, be, v)[0], 1e-4)
	require.InDelta(t, 0.9, download(t, be, w)[0], 1e-6)
	require.Equal(t, float32(-3), download(t, be, w)[1])

	// Step 2, g = -0.25: m = 0.045 - 0.025 = 0.02,
	// v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225,
	// m̂ = 0.02/0.19 = 0.1052632, v̂ = 0.00031225/0.001999 = 0.1562031,
	// w = 0.9 - 0.1·0.1052632/(√0.1562031 + 1e-8) = 0.8733663.
	require.NoError(t, be.Upload(g, []float32{-0.25, 0}))
	require.NoError(t, be.AdamStep(w, g, m, v, p, 2))
	require.InEpsilon(t, 0.02, download(t, be, m)[0], 1e-4)
	require.InEpsilon(t, 0.00031225, download(t, be, v)[0], 1e-4)
	require.InDelta(t, 0.8733663, download(t, be, w)[0], 1e-6)
}

func TestAdamStepRejectsBadArguments(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	w, _ := be.Alloc(2, 2)
	g, _ := be.Alloc(2, 2)
	m, _ := be.Alloc(2, 2)
	v, _ := be.Alloc(2, 1)
	require.ErrorContains(t, be.AdamStep(w, g, m, v, DefaultAdam(), 1), "w is 2x2 but v is 2x1")
	require.ErrorContains(t, be.AdamStep(w, g, m, m, DefaultAdam(), 0), "step 0")
}
