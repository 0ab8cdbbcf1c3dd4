package kernels

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMSELossValueAndGradient(t *testing.T) {
	t.Parallel()
	const rows, cols = 4, 3
	r := newTestRand(21)
	p32, t32 := r.floats(rows*cols, -1, 1), r.floats(rows*cols, -1, 1)
	p, tg := to64(p32), to64(t32)
	// The batch-mean loss: mean over rows of the per-row mean squared error.
	mean := func() float64 {
		var s float64
		for i := range p {
			s += (p[i] - tg[i]) * (p[i] - tg[i])
		}
		return s / (rows * cols)
	}

	be := NewCPU()
	pt, tt := upload(t, be, rows, cols, p32), upload(t, be, rows, cols, t32)
	grad, _ := be.Alloc(rows, cols)
	loss := upload(t, be, 1, 1, []float32{0.5})
	require.NoError(t, be.MSELoss(pt, tt, grad, loss))

	// The accumulator gets the per-row losses summed, on top of what it held.
	require.InDelta(t, 0.5+rows*mean(), download(t, be, loss)[0], 1e-6)
	requireClose(t, numericGrad(p, mean), download(t, be, grad), 1e-6, 1e-4, "grad")

	// Either output may be skipped.
	require.NoError(t, be.MSELoss(pt, tt, nil, loss))
	require.NoError(t, be.MSELoss(pt, tt, grad, nil))
	require.InDelta(t, 0.5+2*rows*mean(), download(t, be, loss)[0], 1e-6)
}

func TestSoftmaxCrossEntropyValueAndGradient(t *testing.T) {
	t.Parallel()
	const rows, cols = 4, 5
	r := newTestRand(22)
	z32 := r.floats(rows*cols, -3, 3)
	// One-hot rows, a soft distribution, and a row whose targets do not sum
	// to 1 (the gradient formula must not assume they do).
	t32 := []float32{
		0, 0, 1, 0, 0,
		1, 0, 0, 0, 0,
		0.1, 0.2, 0.3, 0.4, 0,
		0, 0.5, 0, 0, 0,
	}
	z, tg := to64(z32), to64(t32)
	mean := func() float64 {
		var s float64
		for i := 0; i < rows; i++ {
			y := refActivate(Softmax, z[i*cols:(i+1)*cols])
			for j := range y {
				s -= tg[i*cols+j] * math.Log(y[j])
			}
		}
		return s / rows
	}

	be := NewCPU()
	zt, tt := upload(t, be, rows, cols, z32), upload(t, be, rows, cols, t32)
	grad, _ := be.Alloc(rows, cols)
	loss, _ := be.Alloc(1, 1)
	require.NoError(t, be.SoftmaxCrossEntropyLoss(zt, tt, grad, loss))
	require.InDelta(t, rows*mean(), download(t, be, loss)[0], 1e-5)
	requireClose(t, numericGrad(z, mean), download(t, be, grad), 1e-6, 1e-4, "grad")
}

func TestSoftmaxCrossEntropyStaysFiniteForExtremeLogits(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	// Row 0 is confidently right, row 1 confidently wrong by a margin that
	// underflows the probability to 0 in float32 and float64 alike.
	z := upload(t, be, 2, 2, []float32{1000, -1000, 1000, -1000})
	tg := upload(t, be, 2, 2, []float32{1, 0, 0, 1})
	grad, _ := be.Alloc(2, 2)
	loss, _ := be.Alloc(1, 1)
	require.NoError(t, be.SoftmaxCrossEntropyLoss(z, tg, grad, loss))
	require.InDelta(t, 2000, download(t, be, loss)[0], 1e-3)
	require.Equal(t, []float32{0, 0, 0.5, -0.5}, download(t, be, grad))
}

func TestLossRejectsMismatchedShapes(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	p, _ := be.Alloc(2, 3)
	tg, _ := be.Alloc(3, 2)
	big, _ := be.Alloc(2, 2)
	require.ErrorContains(t, be.MSELoss(p, tg, nil, nil), "outputs is 2x3 but target is 3x2")
	require.ErrorContains(t, be.SoftmaxCrossEntropyLoss(p, p, nil, big), "loss is 2x2, want 1x1")
}

func TestLossNamesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, l := range []Loss{MSE, SoftmaxCrossEntropy} {
		text, err := l.MarshalText()
		require.NoError(t, err)
		var back Loss
		require.NoError(t, back.UnmarshalText(text))
		require.Equal(t, l, back)
	}
	_, err := ParseLoss("hinge")
	require.ErrorContains(t, err, `unknown loss "hinge"`)
}
