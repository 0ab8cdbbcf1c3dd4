//go:build cuda || cudaemu

package kernels

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// On a GPU (the cuda tag), build them with
// `go test -tags cuda -c -o kernels.test ./kernels` and run
// `./kernels.test -test.run CUDA -test.v` on the GPU host (bench/gpu/run.sh).
// Without one they run on the CUDA emulator: `go test -tags cudaemu ./kernels`
// (make test-cudaemu), which checks the same backend and kernel sources.
// Each operation runs on the CPU backend (the reference) and the CUDA
// backend with the same inputs. Identity, ReLU, dropout, the gather and Adam
// round exactly as the CPU does and must match it bit for bit; the rest
// (matrix products with fused multiply-adds, float64 sums in another order,
// the GPU's exp) must match within the tolerances stated per test.

var sharedCUDA = sync.OnceValues(func() (*CUDA, error) { return NewCUDA(0) })

// cudaTestBundle is one CUDA backend (shared by all tests, which also
// exercises it from parallel goroutines) and the CPU reference.
type cudaTestBundle struct {
	gpu *CUDA
	cpu *CPU
	r   *testRand
}

func setupCUDA(t *testing.T, seed uint64) *cudaTestBundle {
	t.Helper()
	gpu, err := sharedCUDA()
	require.NoError(t, err, "no usable GPU; these tests need one")
	return &cudaTestBundle{gpu: gpu, cpu: NewCPU(), r: newTestRand(seed)}
}

// pair uploads the same values to both backends.
func (b *cudaTestBundle) pair(t *testing.T, rows, cols int, data []float32) (cpu, gpu Tensor) {
	t.Helper()
	return upload(t, b.cpu, rows, cols, data), upload(t, b.gpu, rows, cols, data)
}

func (b *cudaTestBundle) both(t *testing.T, cpu, gpu Tensor) (want, got []float32) {
	t.Helper()
	return download(t, b.cpu, cpu), download(t, b.gpu, gpu)
}

func TestCUDADescribesItsDevice(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 1)
	d := b.gpu.Device()
	free, total, err := b.gpu.MemInfo()
	require.NoError(t, err)
	t.Logf("device %d: %s, compute %s, %d SMs, driver %d, memory %d MiB free of %d MiB",
		d.Index, d.Name, d.ComputeCapability, d.Multiprocessors, d.Driver, free>>20, total>>20)
	require.NotEmpty(t, d.Name)
	require.Positive(t, d.Multiprocessors)
	require.Equal(t, d.MemoryBytes, total)
	require.Positive(t, free)
	require.LessOrEqual(t, free, total)
}

// matmulScale bounds the magnitude of each output's sum, Σ_p |op(A)_ip·op(B)_pj|,
// by Cauchy–Schwarz: ‖row i of op(A)‖·‖column j of op(B)‖. Rounding errors of
// any summation order scale with it. (The exact sum would cost m·n·k in Go.)
func matmulScale(transA, transB bool, a []float32, ar, ac int, b []float32, br, bc int) (rowNorm, colNorm []float64) {
	m, k, n := ar, ac, bc
	if transA {
		m, k = ac, ar
	}
	if transB {
		n = br
	}
	rowNorm, colNorm = make([]float64, m), make([]float64, n)
	for i := 0; i < m; i++ {
		for p := 0; p < k; p++ {
			var v float64
			if transA { // A is stored k×m
				v = float64(a[p*ac+i])
			} else {
				v = float64(a[i*ac+p])
			}
			rowNorm[i] += v * v
		}
		rowNorm[i] = math.Sqrt(rowNorm[i])
	}
	for j := 0; j < n; j++ {
		for p := 0; p < k; p++ {
			var v float64
			if transB { // B is stored n×k
				v = float64(b[j*bc+p])
			} else {
				v = float64(b[p*bc+j])
			}
			colNorm[j] += v * v
		}
		colNorm[j] = math.Sqrt(colNorm[j])
	}
	return rowNorm, colNorm
}

func TestCUDAMatMulMatchesCPU(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 2)
	// Fixed shapes hit every tile shape, split-K and the wide network's
	// layers; random ones land anywhere, mostly off the tile multiples.
	shapes := []struct{ m, k, n int }{
		{1, 1, 1}, {5, 3, 7}, {32, 10, 64}, {33, 17, 65}, {127, 31, 129}, {128, 8, 128},
		{64, 300, 64}, {1024, 1024, 10}, {1024, 10, 1024}, {256, 1024, 1024}, {1024, 256, 1024}, {1024, 1024, 1024},
	}
	for i := 0; i < 12; i++ {
		shapes = append(shapes, struct{ m, k, n int }{1 + b.r.r.intn(400), 1 + b.r.r.intn(400), 1 + b.r.r.intn(400)})
	}
	scalars := []struct{ alpha, beta float32 }{{1, 0}, {0.5, 1}, {-2, 0.25}}
	for _, s := range shapes {
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				for si, sc := range scalars {
					if s.m*s.n*s.k > 1<<24 && si > 0 {
						continue // the big shapes once, with beta 0
					}
					name := fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v/alpha=%v/beta=%v", s.m, s.k, s.n, transA, transB, sc.alpha, sc.beta)
					t.Run(name, func(t *testing.T) {
						ar, ac := s.m, s.k
						if transA {
							ar, ac = ac, ar
						}
						br, bc := s.k, s.n
						if transB {
							br, bc = bc, br
						}
						av, bv, cv := b.r.floats(ar*ac, -1, 1), b.r.floats(br*bc, -1, 1), b.r.floats(s.m*s.n, -1, 1)
						ca, ga := b.pair(t, ar, ac, av)
						cb, gb := b.pair(t, br, bc, bv)
						cc, gc := b.pair(t, s.m, s.n, cv)
						require.NoError(t, b.cpu.MatMul(transA, transB, sc.alpha, ca, cb, sc.beta, cc))
						require.NoError(t, b.gpu.MatMul(transA, transB, sc.alpha, ga, gb, sc.beta, gc))
						want, got := b.both(t, cc, gc)
						rows, cols := matmulScale(transA, transB, av, ar, ac, bv, br, bc)
						for i := range want {
							// Each of the k float32 additions rounds by up to 2^-24
							// of the running sum (at most mag); the errors, of random
							// sign, grow as √k. 8× that, for either backend's order.
							mag := rows[i/s.n] * cols[i%s.n]
							tol := 5e-7*math.Sqrt(float64(s.k+1))*(math.Abs(float64(sc.alpha))*mag+math.Abs(float64(sc.beta*cv[i]))) + 1e-6
							require.InDeltaf(t, want[i], got[i], tol, "C[%d] (row %d, col %d)", i, i/s.n, i%s.n)
						}
						for _, x := range []Tensor{ga, gb, gc} {
							require.NoError(t, b.gpu.Free(x))
						}
					})
				}
			}
		}
	}
}

func TestCUDAMatMulBetaZeroOverwritesNaN(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 3)
	for _, n := range []int{7, 300} { // a small plan and a split-K one
		nan := make([]float32, n*n)
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		a := upload(t, b.gpu, n, n, b.r.floats(n*n, -1, 1))
		bb := upload(t, b.gpu, n, n, b.r.floats(n*n, -1, 1))
		c := upload(t, b.gpu, n, n, nan)
		require.NoError(t, b.gpu.MatMul(false, false, 1, a, bb, 0, c))
		for i, v := range download(t, b.gpu, c) {
			require.False(t, math.IsNaN(float64(v)), "n=%d C[%d] kept the NaN", n, i)
		}
	}
}

func TestCUDAGatherRowsMatchesCPU(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 4)
	src := b.r.floats(500*13, -5, 5)
	cs, gs := b.pair(t, 500, 13, src)
	// Same indices twice (the cached copy), then others, then a longer batch
	// (the index buffer grows).
	for _, n := range []int{37, 37, 37, 2000} {
		rows := make([]int, n)
		for i := range rows {
			rows[i] = b.r.r.intn(500)
		}
		cd, _ := b.cpu.Alloc(n, 13)
		gd, err := b.gpu.Alloc(n, 13)
		require.NoError(t, err)
		require.NoError(t, b.cpu.GatherRows(cd, cs, rows))
		require.NoError(t, b.gpu.GatherRows(gd, gs, rows))
		want, got := b.both(t, cd, gd)
		require.Equal(t, want, got)
	}
	gd, _ := b.gpu.Alloc(1, 13)
	require.ErrorContains(t, b.gpu.GatherRows(gd, gs, []int{500}), "out of range")
	require.ErrorContains(t, b.gpu.GatherRows(gd, gs, []int{-1}), "out of range")
}

func TestCUDABiasActivateMatchesCPU(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 5)
	for _, act := range []Activation{Identity, ReLU, Sigmoid, Softmax} {
		for _, shape := range [][2]int{{1, 1}, {3, 10}, {33, 65}, {1024, 10}, {7, 1000}} {
			for _, inPlace := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%dx%d/inplace=%v", act, shape[0], shape[1], inPlace), func(t *testing.T) {
					rows, cols := shape[0], shape[1]
					xv := b.r.floats(rows*cols, -20, 20)
					cx, gx := b.pair(t, rows, cols, xv)
					cb, gb := b.pair(t, 1, cols, b.r.floats(cols, -1, 1))
					cy, gy := cx, gx
					if !inPlace {
						cy, _ = b.cpu.Alloc(rows, cols)
						var err error
						gy, err = b.gpu.Alloc(rows, cols)
						require.NoError(t, err)
					}
					require.NoError(t, b.cpu.BiasActivate(act, cx, cb, cy))
					require.NoError(t, b.gpu.BiasActivate(act, gx, gb, gy))
					want, got := b.both(t, cy, gy)
					if act == Identity || act == ReLU {
						require.Equal(t, want, got)
						return
					}
					// exp in float64 on both sides, rounded to float32.
					requireClose(t, to64(want), got, 1e-7, 2e-7, act.String())
				})
			}
		}
	}
}

func TestCUDAActivationBackwardMatchesCPU(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 6)
	for _, act := range []Activation{Identity, ReLU, Sigmoid, Softmax} {
		for _, shape := range [][2]int{{1, 1}, {5, 10}, {33, 65}, {1024, 1024}, {2000, 3}} {
			for _, withBias := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%dx%d/dbias=%v", act, shape[0], shape[1], withBias), func(t *testing.T) {
					rows, cols := shape[0], shape[1]
					// y is a forward output of the activation, so it is in its
					// range; both backends get the CPU's.
					zero := make([]float32, cols)
					cz := upload(t, b.cpu, rows, cols, b.r.floats(rows*cols, -3, 3))
					require.NoError(t, b.cpu.BiasActivate(act, cz, upload(t, b.cpu, 1, cols, zero), cz))
					cy, gy := b.pair(t, rows, cols, download(t, b.cpu, cz))
					cdy, gdy := b.pair(t, rows, cols, b.r.floats(rows*cols, -1, 1))
					var cdb, gdb Tensor
					if withBias {
						cdb, gdb = b.pair(t, 1, cols, zero)
					}
					// In place, as the trainer calls it.
					require.NoError(t, b.cpu.ActivationBackward(act, cy, cdy, cdy, cdb))
					require.NoError(t, b.gpu.ActivationBackward(act, gy, gdy, gdy, gdb))
					want, got := b.both(t, cdy, gdy)
					if act == Softmax {
						requireClose(t, to64(want), got, 1e-7, 1e-6, "dz")
					} else {
						require.Equal(t, want, got, "dz")
					}
					if withBias {
						// float64 column sums in another order, rounded to float32.
						wb, gb := b.both(t, cdb, gdb)
						requireClose(t, to64(wb), gb, 1e-6, 1e-6, "dbias")
					}
				})
			}
		}
	}
}

func TestCUDADropoutMatchesCPUBitForBit(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 7)
	for _, rate := range []float32{0, 0.1, 0.2, 0.5, 0.9} {
		for _, shape := range [][2]int{{1, 1}, {32, 64}, {1024, 1024}, {333, 7}} {
			for _, inPlace := range []bool{false, true} {
				rows, cols := shape[0], shape[1]
				xv := b.r.floats(rows*cols, -2, 2)
				cx, gx := b.pair(t, rows, cols, xv)
				cy, gy := cx, gx
				if !inPlace {
					cy, _ = b.cpu.Alloc(rows, cols)
					gy, _ = b.gpu.Alloc(rows, cols)
				}
				seed, step := b.r.r.next(), b.r.r.next()
				require.NoError(t, b.cpu.Dropout(cx, cy, rate, seed, step))
				require.NoError(t, b.gpu.Dropout(gx, gy, rate, seed, step))
				want, got := b.both(t, cy, gy)
				require.Equal(t, want, got, "rate %v, %dx%d, in place %v", rate, rows, cols, inPlace)
			}
		}
	}
	// The pinned mask of TestDropoutHashIsPinned.
	ones := make([]float32, 16)
	for i := range ones {
		ones[i] = 1
	}
	x := upload(t, b.gpu, 1, 16, ones)
	require.NoError(t, b.gpu.Dropout(x, x, 0.5, 42, 7))
	var kept []bool
	for _, v := range download(t, b.gpu, x) {
		kept = append(kept, v != 0)
	}
	require.Equal(t, []bool{true, false, true, true, true, true, true, false, false, true, true, false, false, true, false, true}, kept)
}

func TestCUDALossesMatchCPU(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 8)
	for _, loss := range []Loss{MSE, SoftmaxCrossEntropy} {
		for _, shape := range [][2]int{{1, 1}, {32, 1}, {1024, 10}, {3000, 7}} {
			for _, parts := range []string{"both", "grad", "loss"} {
				t.Run(fmt.Sprintf("%s/%dx%d/%s", loss, shape[0], shape[1], parts), func(t *testing.T) {
					rows, cols := shape[0], shape[1]
					outv := b.r.floats(rows*cols, -4, 4)
					tv := b.r.floats(rows*cols, 0, 1)
					if loss == SoftmaxCrossEntropy {
						labels := make([]int, rows)
						for i := range labels {
							labels[i] = b.r.r.intn(cols)
						}
						var err error
						tv, err = OneHot(labels, cols)
						require.NoError(t, err)
					}
					co, gout := b.pair(t, rows, cols, outv)
					ct, gt := b.pair(t, rows, cols, tv)
					var cg, gg, cl, gl Tensor
					if parts != "loss" {
						cg, gg = b.pair(t, rows, cols, make([]float32, rows*cols))
					}
					if parts != "grad" {
						// The accumulator starts non-zero: losses add to it.
						cl, gl = b.pair(t, 1, 1, []float32{1.5})
					}
					run := func(be Backend, o, tt, g, l Tensor) error {
						if loss == MSE {
							return be.MSELoss(o, tt, g, l)
						}
						return be.SoftmaxCrossEntropyLoss(o, tt, g, l)
					}
					require.NoError(t, run(b.cpu, co, ct, cg, cl))
					require.NoError(t, run(b.gpu, gout, gt, gg, gl))
					if cg != nil {
						want, got := b.both(t, cg, gg)
						if loss == MSE {
							require.Equal(t, want, got, "gradient")
						} else {
							requireClose(t, to64(want), got, 1e-9, 1e-6, "gradient")
						}
					}
					if cl != nil {
						want, got := b.both(t, cl, gl)
						requireClose(t, to64(want), got, 0, 1e-6, "loss")
					}
				})
			}
		}
	}
}

func TestCUDAAdamMatchesCPUBitForBit(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 9)
	const rows, cols = 257, 129
	p := AdamParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	cw, gw := b.pair(t, rows, cols, b.r.floats(rows*cols, -1, 1))
	cm, gm := b.pair(t, rows, cols, make([]float32, rows*cols))
	cv, gv := b.pair(t, rows, cols, make([]float32, rows*cols))
	for step := 1; step <= 5; step++ {
		cg, gg := b.pair(t, rows, cols, b.r.floats(rows*cols, -0.1, 0.1))
		require.NoError(t, b.cpu.AdamStep(cw, cg, cm, cv, p, step))
		require.NoError(t, b.gpu.AdamStep(gw, gg, gm, gv, p, step))
	}
	for _, pair := range [][2]Tensor{{cw, gw}, {cm, gm}, {cv, gv}} {
		want, got := b.both(t, pair[0], pair[1])
		require.Equal(t, want, got)
	}
}

func TestCUDARejectsBadOperands(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 10)
	x, err := b.gpu.Alloc(2, 3)
	require.NoError(t, err)
	y, err := b.gpu.Alloc(3, 2)
	require.NoError(t, err)
	cpuT, _ := b.cpu.Alloc(2, 3)

	_, err = b.gpu.Alloc(0, 3)
	require.ErrorContains(t, err, "invalid shape")
	require.ErrorContains(t, b.gpu.MatMul(false, false, 1, x, x, 0, y), "matmul: op(A) is 2x3")
	require.ErrorContains(t, b.gpu.MatMul(false, false, 1, x, y, 0, x), "matmul: op(A) is 2x3, op(B) is 3x2, C is 2x3")
	require.ErrorContains(t, b.gpu.BiasActivate(ReLU, x, x, x), "bias is 2x3, want 1x3")
	require.ErrorContains(t, b.gpu.Dropout(x, y, 0.5, 1, 1), "dropout: x is 2x3 but y is 3x2")
	require.ErrorContains(t, b.gpu.Dropout(x, x, 1, 1, 1), "outside [0, 1)")
	require.ErrorContains(t, b.gpu.MSELoss(x, x, nil, x), "loss is 2x3, want 1x1")
	require.ErrorContains(t, b.gpu.AdamStep(x, x, x, x, DefaultAdam(), 0), "step 0")
	require.ErrorContains(t, b.gpu.Upload(x, []float32{1}), "1 values for a 2x3 tensor")
	require.ErrorContains(t, b.gpu.Download(make([]float32, 2), x), "2-value buffer")
	require.ErrorContains(t, b.gpu.BiasActivate(ReLU, cpuT, x, x), "not a tensor of this cuda backend")

	require.NoError(t, b.gpu.Free(y))
	require.ErrorIs(t, b.gpu.Free(y), errFreed)
	require.ErrorIs(t, b.gpu.Upload(y, make([]float32, 6)), errFreed)
	// None of that broke the backend.
	require.NoError(t, b.gpu.Upload(x, []float32{1, 2, 3, 4, 5, 6}))
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, download(t, b.gpu, x))
}

func TestCUDACloseStopsTheBackend(t *testing.T) {
	t.Parallel()
	gpu, err := NewCUDA(0)
	require.NoError(t, err)
	x, err := gpu.Alloc(4, 4)
	require.NoError(t, err)
	require.NoError(t, gpu.Close())
	require.NoError(t, gpu.Close(), "closing twice is harmless")
	require.ErrorIs(t, gpu.Upload(x, make([]float32, 16)), errCUDAClosed)
	_, err = gpu.Alloc(1, 1)
	require.ErrorIs(t, err, errCUDAClosed)
}

// BenchmarkCUDAMatMul reports the achieved FLOP/s of our SGEMM on the wide
// network's products (batch 1024), the figure to set against the GPU's fp32
// peak (~67 TFLOP/s on an H200).
func BenchmarkCUDAMatMul(b *testing.B) {
	gpu, err := sharedCUDA()
	require.NoError(b, err)
	r := newTestRand(30)
	for _, s := range []struct {
		name           string
		transA, transB bool
		m, k, n        int
	}{
		{"forward_1024x256x1024", false, false, 1024, 256, 1024},
		{"forward_1024x1024x1024", false, false, 1024, 1024, 1024},
		{"forward_1024x1024x10", false, false, 1024, 1024, 10},
		{"weightgrad_1024x1024x1024_tn", true, false, 1024, 1024, 1024},
		{"inputgrad_1024x1024x1024_nt", false, true, 1024, 1024, 1024},
		{"4096x4096x4096", false, false, 4096, 4096, 4096},
	} {
		b.Run(s.name, func(b *testing.B) {
			ar, ac := s.m, s.k
			if s.transA {
				ar, ac = ac, ar
			}
			br, bc := s.k, s.n
			if s.transB {
				br, bc = bc, br
			}
			a := uploadTB(b, gpu, ar, ac, r.floats(ar*ac, -1, 1))
			bb := uploadTB(b, gpu, br, bc, r.floats(br*bc, -1, 1))
			c, err := gpu.Alloc(s.m, s.n)
			require.NoError(b, err)
			host := make([]float32, s.m*s.n)
			require.NoError(b, gpu.MatMul(s.transA, s.transB, 1, a, bb, 0, c)) // warm up
			require.NoError(b, gpu.Download(host, c))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				require.NoError(b, gpu.MatMul(s.transA, s.transB, 1, a, bb, 0, c))
			}
			require.NoError(b, gpu.Download(host, c)) // waits for the queued products
			b.StopTimer()
			flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e12, "TFLOP/s")
			for _, x := range []Tensor{a, bb, c} {
				require.NoError(b, gpu.Free(x))
			}
		})
	}
}

// BenchmarkCUDAOperationOverhead is the host cost of one queued operation on
// a one-element tensor (validation, the hand-off to the context thread and
// the launch): the floor of a training step's time on small networks.
func BenchmarkCUDAOperationOverhead(b *testing.B) {
	gpu, err := sharedCUDA()
	require.NoError(b, err)
	x := uploadTB(b, gpu, 1, 1, []float32{1})
	out := []float32{0}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		require.NoError(b, gpu.Dropout(x, x, 0.5, 1, uint64(i)))
	}
	require.NoError(b, gpu.Download(out, x))
}

// uploadTB is upload for benchmarks.
func uploadTB(tb testing.TB, be Backend, rows, cols int, data []float32) Tensor {
	tb.Helper()
	x, err := be.Alloc(rows, cols)
	require.NoError(tb, err)
	require.NoError(tb, be.Upload(x, data))
	return x
}
