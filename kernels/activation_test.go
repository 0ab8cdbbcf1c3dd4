package kernels

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// refActivate is the float64 definition of act(z) applied to one row.
func refActivate(act Activation, z []float64) []float64 {
	out := make([]float64, len(z))
	switch act {
	case Identity:
		copy(out, z)
	case ReLU:
		for i, v := range z {
			out[i] = math.Max(v, 0)
		}
	case Sigmoid:
		for i, v := range z {
			out[i] = 1 / (1 + math.Exp(-v))
		}
	case Softmax:
		m := math.Inf(-1)
		for _, v := range z {
			m = math.Max(m, v)
		}
		var s float64
		for i, v := range z {
			out[i] = math.Exp(v - m)
			s += out[i]
		}
		for i := range out {
			out[i] /= s
		}
	}
	return out
}

// denseObjective is Σ R ⊙ act(X·W + b) in float64: a scalar whose gradient
// with respect to X, W and b is exactly what one layer's backward pass
// computes when the upstream gradient is R.
func denseObjective(act Activation, x, w, b, r []float64, rows, in, out int) float64 {
	var total float64
	z := make([]float64, out)
	for i := 0; i < rows; i++ {
		for j := 0; j < out; j++ {
			s := b[j]
			for p := 0; p < in; p++ {
				s += x[i*in+p] * w[p*out+j]
			}
			z[j] = s
		}
		for j, v := range refActivate(act, z) {
			total += r[i*out+j] * v
		}
	}
	return total
}

// numericGrad is the central difference of f with respect to each element
// of v, in float64 so the reference itself carries no float32 noise.
func numericGrad(v []float64, f func() float64) []float64 {
	const h = 1e-5
	g := make([]float64, len(v))
	for i := range v {
		orig := v[i]
		v[i] = orig + h
		up := f()
		v[i] = orig - h
		down := f()
		v[i] = orig
		g[i] = (up - down) / (2 * h)
	}
	return g
}

func TestDenseLayerGradientsMatchCentralDifferences(t *testing.T) {
	t.Parallel()
	const rows, in, out = 5, 4, 6
	for _, act := range []Activation{Identity, ReLU, Sigmoid, Softmax} {
		t.Run(act.String(), func(t *testing.T) {
			t.Parallel()
			r := newTestRand(uint64(act) + 11)
			x32, w32, b32, up32 := r.floats(rows*in, -2, 2), r.floats(in*out, -1, 1), r.floats(out, -0.5, 0.5), r.floats(rows*out, -1, 1)
			x, w, b, up := to64(x32), to64(w32), to64(b32), to64(up32)

			be := NewCPU()
			xt, wt, bt := upload(t, be, rows, in, x32), upload(t, be, in, out, w32), upload(t, be, 1, out, b32)
			upt := upload(t, be, rows, out, up32)
			y, _ := be.Alloc(rows, out)
			dz, _ := be.Alloc(rows, out)
			db, _ := be.Alloc(1, out)
			dw, _ := be.Alloc(in, out)
			dx, _ := be.Alloc(rows, in)

			require.NoError(t, be.MatMul(false, false, 1, xt, wt, 0, y))
			require.NoError(t, be.BiasActivate(act, y, bt, y))
			require.NoError(t, be.ActivationBackward(act, y, upt, dz, db))
			require.NoError(t, be.MatMul(true, false, 1, xt, dz, 0, dw))
			require.NoError(t, be.MatMul(false, true, 1, dz, wt, 0, dx))

			// The forward values themselves match the float64 definition.
			yWant := make([]float64, 0, rows*out)
			for i := 0; i < rows; i++ {
				z := make([]float64, out)
				for j := range z {
					z[j] = b[j]
					for p := 0; p < in; p++ {
						z[j] += x[i*in+p] * w[p*out+j]
					}
				}
				yWant = append(yWant, refActivate(act, z)...)
			}
			requireClose(t, yWant, download(t, be, y), 1e-6, 1e-5, "y")

			f := func() float64 { return denseObjective(act, x, w, b, up, rows, in, out) }
			requireClose(t, numericGrad(w, f), download(t, be, dw), 1e-4, 1e-3, "dW")
			requireClose(t, numericGrad(b, f), download(t, be, db), 1e-4, 1e-3, "db")
			requireClose(t, numericGrad(x, f), download(t, be, dx), 1e-4, 1e-3, "dX")
		})
	}
}

func TestSoftmaxRowsAreStableDistributions(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	// Logits of ±1000 overflow a naive exp; every row must still sum to 1.
	x := upload(t, be, 3, 3, []float32{1000, 999, -1000, -1000, -1000, -1000, 0, 0, 88})
	bias := upload(t, be, 1, 3, []float32{0, 0, 0})
	require.NoError(t, be.BiasActivate(Softmax, x, bias, x))
	got := download(t, be, x)
	for r := 0; r < 3; r++ {
		var s float64
		for _, v := range got[r*3 : r*3+3] {
			require.False(t, math.IsNaN(float64(v)))
			s += float64(v)
		}
		require.InDelta(t, 1, s, 1e-6, "row %d", r)
	}
	require.InDelta(t, 1/(1+math.Exp(-1)), got[0], 1e-6)
	require.InDelta(t, 1.0/3, got[3], 1e-6)
}

func TestBiasActivateRejectsBadShapes(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	x, _ := be.Alloc(2, 3)
	y, _ := be.Alloc(2, 3)
	badBias, _ := be.Alloc(1, 2)
	require.ErrorContains(t, be.BiasActivate(ReLU, x, badBias, y), "bias is 1x2, want 1x3")
	bias, _ := be.Alloc(1, 3)
	wrongY, _ := be.Alloc(3, 2)
	require.ErrorContains(t, be.BiasActivate(ReLU, x, bias, wrongY), "x is 2x3 but y is 3x2")
	require.ErrorContains(t, be.BiasActivate(Activation(9), x, bias, y), "activation(9)")
	require.ErrorContains(t, be.ActivationBackward(ReLU, x, y, y, badBias), "dbias is 1x2")
}

func TestActivationNamesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, a := range []Activation{Identity, ReLU, Sigmoid, Softmax} {
		text, err := a.MarshalText()
		require.NoError(t, err)
		var back Activation
		require.NoError(t, back.UnmarshalText(text))
		require.Equal(t, a, back)
	}
	a, err := ParseActivation(" ReLU ")
	require.NoError(t, err)
	require.Equal(t, ReLU, a)
	_, err = ParseActivation("tanh")
	require.ErrorContains(t, err, `unknown activation "tanh"`)
}
