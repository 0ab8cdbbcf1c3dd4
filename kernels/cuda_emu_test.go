//go:build cudaemu && !cuda

package kernels

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// The emulator's own tests: that it runs exactly the kernels of the
// committed PTX, and catches the mistakes it claims to catch. The CUDA
// backend's tests (backend_cuda_test.go, train_cuda_test.go) run on it too
// with -tags cudaemu.

type emuTestBundle struct {
	drv *emuDriver
}

func setupEmu(t *testing.T) *emuTestBundle {
	t.Helper()
	drv := &emuDriver{}
	require.NoError(t, drv.open(0))
	t.Cleanup(drv.close)
	return &emuTestBundle{drv: drv}
}

func (b *emuTestBundle) alloc(t *testing.T, values []float32) devicePtr {
	t.Helper()
	p, err := b.drv.alloc(int64(len(values)) * 4)
	require.NoError(t, err)
	require.NoError(t, b.drv.upload(p, unsafe.Pointer(&values[0]), int64(len(values))*4))
	return p
}

func (b *emuTestBundle) read(t *testing.T, p devicePtr, n int) []float32 {
	t.Helper()
	out := make([]float32, n)
	require.NoError(t, b.drv.download(unsafe.Pointer(&out[0]), p, int64(n)*4))
	return out
}

func TestEmulatorRunsTheKernelsOfTheCommittedPTX(t *testing.T) {
	t.Parallel()
	ptx := map[string]ptxEntry{}
	names, err := fs.Glob(ptxFiles, "*.ptx")
	require.NoError(t, err)
	for _, name := range names {
		src, err := ptxFiles.ReadFile(name)
		require.NoError(t, err)
		maps.Copy(ptx, ptxEntries(string(src)))
	}
	var emulated []string
	for i := range emuKernelCount() {
		if name := emuKernelName(i); !strings.HasPrefix(name, "emu_test_") {
			emulated = append(emulated, name)
		}
	}
	slices.Sort(emulated)
	require.Equal(t, slices.Sorted(maps.Keys(ptx)), emulated, "kernels in the PTX and in the emulator's table")
	require.ElementsMatch(t, kernelNames, emulated, "kernels the backend launches")

	// Parameter sizes agree too (loadModule's check), and a PTX whose
	// kernel takes other parameters than its source is called stale.
	b := setupEmu(t)
	require.NoError(t, b.drv.loadModule("all.ptx", "", ptx))
	stale := map[string]ptxEntry{"adam": {params: []int{8, 8}}}
	require.ErrorContains(t, b.drv.loadModule("elementwise.ptx", "", stale), "stale PTX")
	require.ErrorContains(t, b.drv.loadModule("x.ptx", "", map[string]ptxEntry{"nope": {}}), "not in the emulator")
}

func TestEmulatorFailsALaunchWhoseBarrierNeverOpens(t *testing.T) {
	t.Parallel()
	b := setupEmu(t)
	out := b.alloc(t, make([]float32, 128))
	err := b.drv.launch("emu_test_divergent_sync", [3]int{1, 1, 1}, [3]int{128, 1, 1}, []uint64{uint64(out)})
	require.ErrorContains(t, err, "barrier divergence in block (0,0,0): of 128 threads 64 wait at __syncthreads")
}

func TestEmulatorExposesAMissingBarrier(t *testing.T) {
	t.Parallel()
	b := setupEmu(t)
	const n = 256
	in1, in2 := make([]float32, n), make([]float32, n)
	for i := range in1 {
		in1[i], in2[i] = float32(i), float32(1000+i)
	}
	p1, p2, out := b.alloc(t, in1), b.alloc(t, in2), b.alloc(t, make([]float32, n))
	reverse := func(in devicePtr, sync uint64) []float32 {
		require.NoError(t, b.drv.launch("emu_test_reverse", [3]int{1, 1, 1}, [3]int{n, 1, 1}, []uint64{uint64(in), uint64(out), sync}))
		return b.read(t, out, n)
	}
	for i, v := range reverse(p1, 1) {
		require.Equal(t, in1[n-1-i], v)
	}
	// Without the barrier, threads scheduled before a slot's owner read
	// what the previous launch left in shared memory.
	got, stale := reverse(p2, 0), 0
	for i, v := range got {
		if v != in2[n-1-i] {
			require.Equal(t, in1[n-1-i], v, "a stale read returns the old value")
			stale++
		}
	}
	require.Positive(t, stale, "no thread read before the write it needed")
	require.Less(t, stale, n, "thread order is not shuffled")
}

func TestEmulatorShufflesWithinAWarp(t *testing.T) {
	t.Parallel()
	b := setupEmu(t)
	out := b.alloc(t, make([]float32, 2*256))
	require.NoError(t, b.drv.launch("emu_test_warp_sum", [3]int{2, 1, 1}, [3]int{256, 1, 1}, []uint64{uint64(out)}))
	for i, v := range b.read(t, out, 2*256) {
		warp := (i % 256) / 32
		require.Equal(t, float32(32*32*warp+31*32/2), v, "thread %d", i)
	}
}

func TestEmulatorRejectsWhatTheDriverWouldNotRun(t *testing.T) {
	t.Parallel()
	b := setupEmu(t)
	out := b.alloc(t, make([]float32, 4))
	args := []uint64{uint64(out)}
	require.ErrorContains(t, b.drv.launch("emu_test_warp_sum", [3]int{1, 1, 1}, [3]int{2048, 1, 1}, args), "invalid launch")
	require.ErrorContains(t, b.drv.launch("emu_test_warp_sum", [3]int{0, 1, 1}, [3]int{32, 1, 1}, args), "invalid launch")
	require.ErrorContains(t, b.drv.launch("emu_test_warp_sum", [3]int{1, 1, 1}, [3]int{32, 1, 1}, nil), "0 arguments for 1 parameters")
	require.ErrorContains(t, b.drv.launch("nope", [3]int{1, 1, 1}, [3]int{32, 1, 1}, args), "no kernel nope")

	// A pointer argument that is not device memory of this context.
	host := make([]float32, 32)
	require.ErrorContains(t, b.drv.launch("emu_test_warp_sum", [3]int{1, 1, 1}, [3]int{32, 1, 1},
		[]uint64{uint64(uintptr(unsafe.Pointer(&host[0])))}), "argument 0 is 0x")
	other := setupEmu(t)
	require.ErrorContains(t, other.drv.launch("emu_test_warp_sum", [3]int{1, 1, 1}, [3]int{32, 1, 1}, args), "not device memory of this context")

	// Copies stay inside one allocation; frees take allocations only, once.
	buf := make([]float32, 8)
	require.ErrorContains(t, b.drv.download(unsafe.Pointer(&buf[0]), out, 32), "not inside one allocation")
	require.ErrorContains(t, b.drv.upload(out+4, unsafe.Pointer(&buf[0]), 16), "not inside one allocation")
	require.ErrorContains(t, other.drv.free(out), "not an allocation of this context")
	require.NoError(t, b.drv.free(out))
	require.ErrorContains(t, b.drv.free(out), "not an allocation")

	// Memory runs out like a device's, and comes back.
	free, total, err := b.drv.memInfo()
	require.NoError(t, err)
	require.Equal(t, int64(emuMemory), total)
	_, err = b.drv.alloc(free + 1)
	require.ErrorIs(t, err, errEmuOutOfMemory)
}

func TestTheBackendChecksLaunchBoundsFromThePTX(t *testing.T) {
	t.Parallel()
	gpu, err := NewCUDA(0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = gpu.Close() })
	require.Equal(t, 1024, gpu.kernels["mse_loss"].maxThreads)
	require.Equal(t, 0, gpu.kernels["adam"].maxThreads)
	require.Equal(t, []int{8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4}, gpu.kernels["adam"].params)
	err = gpu.call("test", func() error {
		return gpu.launch("mse_loss", [3]int{1, 1, 1}, [3]int{1024, 2, 1}, 0, 0, 0, 0, 1, 1, f32(1))
	})
	require.ErrorContains(t, err, "2048 threads per block, its launch bound is 1024")
}

// The launch shapes depend on the GPU's size: blocks per grid-stride loop
// and how far MatMul splits K. The emulator can be any size, so the kernels
// are checked on a one-SM GPU (long grid-stride loops, no split-K), a mid
// one and a huge one (split-K on every product that allows it).
func TestTheBackendMatchesCPUWhateverTheGPUSize(t *testing.T) {
	t.Parallel()
	for _, sms := range []int{1, 7, 1000} {
		t.Run(fmt.Sprintf("sms=%d", sms), func(t *testing.T) {
			t.Parallel()
			gpu, err := NewCUDA(0)
			require.NoError(t, err)
			t.Cleanup(func() { _ = gpu.Close() })
			gpu.sms = sms // before any operation: launches read it when queued
			b := &cudaTestBundle{gpu: gpu, cpu: NewCPU(), r: newTestRand(uint64(40 + sms))}
			// 300×100 outputs fill 10 medium tiles: K is split only on the huge GPU.
			require.Equal(t, sms == 1000, planGemm(300, 100, 200, sms).splits > 1)

			for _, s := range []struct{ m, k, n int }{{300, 200, 100}, {64, 1024, 64}, {3, 5000, 2}, {513, 17, 129}} {
				for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
					ar, ac, br, bc := s.m, s.k, s.k, s.n
					if tr[0] {
						ar, ac = ac, ar
					}
					if tr[1] {
						br, bc = bc, br
					}
					av, bv := b.r.floats(ar*ac, -1, 1), b.r.floats(br*bc, -1, 1)
					ca, ga := b.pair(t, ar, ac, av)
					cb, gb := b.pair(t, br, bc, bv)
					cc, gc := b.pair(t, s.m, s.n, make([]float32, s.m*s.n))
					require.NoError(t, b.cpu.MatMul(tr[0], tr[1], 1, ca, cb, 0, cc))
					require.NoError(t, b.gpu.MatMul(tr[0], tr[1], 1, ga, gb, 0, gc))
					want, got := b.both(t, cc, gc)
					rows, cols := matmulScale(tr[0], tr[1], av, ar, ac, bv, br, bc)
					for i := range want {
						tol := 5e-7*math.Sqrt(float64(s.k+1))*rows[i/s.n]*cols[i%s.n] + 1e-6
						require.InDeltaf(t, want[i], got[i], tol, "%v %v C[%d]", s, tr, i)
					}
				}
			}

			// Grid-stride loops over a million elements, bit for bit.
			const rows, cols = 1000, 1000
			cx, gx := b.pair(t, rows, cols, b.r.floats(rows*cols, -2, 2))
			require.NoError(t, b.cpu.Dropout(cx, cx, 0.3, 5, 6))
			require.NoError(t, b.gpu.Dropout(gx, gx, 0.3, 5, 6))
			cbias, gbias := b.pair(t, 1, cols, b.r.floats(cols, -1, 1))
			require.NoError(t, b.cpu.BiasActivate(ReLU, cx, cbias, cx))
			require.NoError(t, b.gpu.BiasActivate(ReLU, gx, gbias, gx))
			want, got := b.both(t, cx, gx)
			require.Equal(t, want, got)

			// A whole training.
			x, y := complexityData(b.r, 1000)
			cfg := SeedNetwork(10)
			cfg.Epochs, cfg.Seed = 5, 3
			_, cpuLosses, err := Train(context.Background(), cfg, x, y)
			require.NoError(t, err)
			cfg.Backend = gpu
			_, gpuLosses, err := Train(context.Background(), cfg, x, y)
			require.NoError(t, err)
			requireSameCurve(t, cpuLosses, gpuLosses)
		})
	}
}
