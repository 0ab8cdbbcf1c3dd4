package kernels

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// testRand is a seeded source for test data; it reuses the package's
// splitmix so fixtures do not change with the Go version.
type testRand struct{ r *splitmix }

func newTestRand(seed uint64) *testRand { return &testRand{r: newSplitmix(seed, 99)} }

func (t *testRand) uniform(lo, hi float64) float64 { return lo + (hi-lo)*t.r.float64() }

// normal is Box–Muller; the second variate is dropped for simplicity.
func (t *testRand) normal() float64 {
	u1 := 1 - t.r.float64()
	u2 := t.r.float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

func (t *testRand) floats(n int, lo, hi float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(t.uniform(lo, hi))
	}
	return out
}

// upload allocates a tensor on be holding data.
func upload(t *testing.T, be Backend, rows, cols int, data []float32) Tensor {
	t.Helper()
	x, err := be.Alloc(rows, cols)
	require.NoError(t, err)
	require.NoError(t, be.Upload(x, data))
	return x
}

// download reads a whole tensor back.
func download(t *testing.T, be Backend, x Tensor) []float32 {
	t.Helper()
	out := make([]float32, x.Rows()*x.Cols())
	require.NoError(t, be.Download(out, x))
	return out
}

// requireClose compares element by element with an absolute plus relative
// tolerance, naming the first index that is off.
func requireClose(t *testing.T, want []float64, got []float32, abs, rel float64, what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	for i := range want {
		tol := abs + rel*math.Abs(want[i])
		require.InDeltaf(t, want[i], float64(got[i]), tol, "%s[%d]", what, i)
	}
}

func to64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// mutated returns f applied to a copy of data: a damaged copy of serialized bytes.
func mutated(data []byte, f func([]byte) []byte) []byte {
	return f(append([]byte(nil), data...))
}

// resigned rewrites the trailing CRC-32 of a serialized model or checkpoint, so that a
// damaged body reaches the semantic checks behind the checksum.
func resigned(data []byte) []byte {
	body := data[:len(data)-4]
	binary.LittleEndian.PutUint32(data[len(body):], crc32.ChecksumIEEE(body))
	return data
}
