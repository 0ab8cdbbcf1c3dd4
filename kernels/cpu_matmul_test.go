package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// naiveMatMul is the definition of sgemm, in float64, indexing A and B
// through their transposes explicitly.
func naiveMatMul(transA, transB bool, alpha float64, a []float32, ar, ac int, b []float32, br, bc int, beta float64, c []float32) []float64 {
	m, k := ar, ac
	if transA {
		m, k = ac, ar
	}
	n := bc
	if transB {
		n = br
	}
	at := func(i, p int) float64 {
		if transA {
			return float64(a[p*ac+i])
		}
		return float64(a[i*ac+p])
	}
	bt := func(p, j int) float64 {
		if transB {
			return float64(b[j*bc+p])
		}
		return float64(b[p*bc+j])
	}
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += at(i, p) * bt(p, j)
			}
			out[i*n+j] = alpha*s + beta*float64(c[i*n+j])
		}
	}
	return out
}

func TestMatMulMatchesNaiveForEveryTranspose(t *testing.T) {
	t.Parallel()
	// Odd shapes exercise the 4-row blocks, the leftover rows and partial
	// column blocks; the large one also crosses colBlock and goes parallel.
	shapes := []struct{ m, k, n int }{
		{1, 1, 1}, {3, 5, 7}, {7, 3, 5}, {9, 13, 1}, {1, 17, 11}, {37, 41, 29}, {67, 300, 263},
	}
	scalars := []struct{ alpha, beta float32 }{{1, 0}, {0.5, 1}, {-2, 0.25}}
	for _, s := range shapes {
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				for _, sc := range scalars {
					name := fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v/alpha=%v/beta=%v", s.m, s.k, s.n, transA, transB, sc.alpha, sc.beta)
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						r := newTestRand(uint64(s.m*1000 + s.k*10 + s.n))
						ar, ac := s.m, s.k
						if transA {
							ar, ac = s.k, s.m
						}
						br, bc := s.k, s.n
						if transB {
							br, bc = s.n, s.k
						}
						a, b, c := r.floats(ar*ac, -1, 1), r.floats(br*bc, -1, 1), r.floats(s.m*s.n, -1, 1)
						want := naiveMatMul(transA, transB, float64(sc.alpha), a, ar, ac, b, br, bc, float64(sc.beta), c)

						be := &CPU{Workers: 3}
						at, bt, ct := upload(t, be, ar, ac, a), upload(t, be, br, bc, b), upload(t, be, s.m, s.n, c)
						require.NoError(t, be.MatMul(transA, transB, sc.alpha, at, bt, sc.beta, ct))
						// float32 accumulation over k terms of size ≤ 1.
						requireClose(t, want, download(t, be, ct), 1e-6*float64(s.k+1), 1e-5, "C")
					})
				}
			}
		}
	}
}

func TestMatMulBitIdenticalForAnyWorkerCount(t *testing.T) {
	t.Parallel()
	r := newTestRand(7)
	const m, k, n = 203, 129, 157
	a, b := r.floats(m*k, -1, 1), r.floats(k*n, -1, 1)
	var ref []float32
	for _, workers := range []int{1, 2, 3, 5, 8, 64} {
		be := &CPU{Workers: workers}
		at, bt := upload(t, be, m, k, a), upload(t, be, k, n, b)
		ct, err := be.Alloc(m, n)
		require.NoError(t, err)
		require.NoError(t, be.MatMul(false, false, 1, at, bt, 0, ct))
		got := download(t, be, ct)
		if ref == nil {
			ref = got
			continue
		}
		for i := range ref {
			require.Equalf(t, math.Float32bits(ref[i]), math.Float32bits(got[i]), "workers=%d element %d", workers, i)
		}
	}
}

func TestMatMulBetaZeroOverwritesNaN(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	a := upload(t, be, 2, 2, []float32{1, 2, 3, 4})
	b := upload(t, be, 2, 2, []float32{1, 0, 0, 1})
	nan := float32(math.NaN())
	c := upload(t, be, 2, 2, []float32{nan, nan, nan, nan})
	require.NoError(t, be.MatMul(false, false, 1, a, b, 0, c))
	require.Equal(t, []float32{1, 2, 3, 4}, download(t, be, c))
}

func TestMatMulRejectsBadOperands(t *testing.T) {
	t.Parallel()
	be := NewCPU()
	a := upload(t, be, 2, 3, make([]float32, 6))
	b := upload(t, be, 2, 3, make([]float32, 6))
	c := upload(t, be, 2, 2, make([]float32, 4))

	err := be.MatMul(false, false, 1, a, b, 0, c)
	require.ErrorContains(t, err, "op(A) is 2x3, op(B) is 2x3")
	require.NoError(t, be.MatMul(false, true, 1, a, b, 0, c))

	sq := upload(t, be, 2, 2, make([]float32, 4))
	require.ErrorContains(t, be.MatMul(false, false, 1, sq, sq, 0, sq), "aliases")

	require.NoError(t, be.Free(c))
	require.ErrorIs(t, be.MatMul(false, true, 1, a, b, 0, c), errFreed)
}

func BenchmarkMatMul(b *testing.B) {
	for _, tc := range []struct {
		name           string
		transA, transB bool
		m, k, n        int
	}{
		{"forward_1024x1024x1024", false, false, 1024, 1024, 1024},
		{"weightgrad_TN_1024x1024x1024", true, false, 1024, 1024, 1024},
		{"inputgrad_NT_1024x1024x1024", false, true, 1024, 1024, 1024},
		{"seed_32x64x32", false, false, 32, 64, 32},
	} {
		b.Run(tc.name, func(b *testing.B) {
			be := NewCPU()
			r := newTestRand(1)
			ar, ac := tc.m, tc.k
			if tc.transA {
				ar, ac = ac, ar
			}
			br, bc := tc.k, tc.n
			if tc.transB {
				br, bc = bc, br
			}
			at, _ := be.Alloc(ar, ac)
			bt, _ := be.Alloc(br, bc)
			ct, _ := be.Alloc(tc.m, tc.n)
			_ = be.Upload(at, r.floats(ar*ac, -1, 1))
			_ = be.Upload(bt, r.floats(br*bc, -1, 1))
			b.ResetTimer()
			for b.Loop() {
				if err := be.MatMul(tc.transA, tc.transB, 1, at, bt, 0, ct); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(2*float64(tc.m*tc.n*tc.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
