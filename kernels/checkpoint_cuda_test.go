//go:build cuda || cudaemu

package kernels

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// Checkpoints on the CUDA backend: its state (weights and Adam moments) goes
// down to a Checkpoint and back up through Download and Upload. Our kernels
// sum in a fixed order, so a CUDA training is reproducible bit for bit, and
// a resumed one must be too; across backends the CPU's tolerances apply.

func TestCUDAResumedTrainingEndsWithTheWeightsOfAnUninterruptedOne(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 30)
	x, y := complexityData(b.r, 600)
	cfg := SeedNetwork(10) // with dropout
	cfg.Epochs, cfg.Seed, cfg.Backend = 6, 5, b.gpu
	want := train(t, cfg, x, y)
	for _, k := range []int{2, 5} {
		resumed := cfg
		resumed.Resume = interruptedAfter(t, cfg, x, y, k)
		requireBitIdentical(t, want, train(t, resumed, x, y), fmt.Sprintf("resumed after epoch %d", k))
	}
}

// requireSameState compares the weights and moments of two checkpoints of
// one training on two backends.
func requireSameState(t *testing.T, cpu, gpu *Checkpoint) {
	t.Helper()
	require.Equal(t, cpu.epoch, gpu.epoch)
	require.Equal(t, cpu.step, gpu.step)
	require.Equal(t, cpu.shuffle, gpu.shuffle)
	require.Equal(t, cpu.order, gpu.order)
	require.Equal(t, cpu.fingerprint, gpu.fingerprint, "the backend is not part of the fingerprint")
	for i, l := range cpu.model.layers {
		requireClose(t, to64(l.w), gpu.model.layers[i].w, 1e-5, 1e-3, fmt.Sprintf("layer %d weights", i))
		requireClose(t, to64(l.b), gpu.model.layers[i].b, 1e-5, 1e-3, fmt.Sprintf("layer %d bias", i))
		requireClose(t, to64(cpu.moments[i]), gpu.moments[i], 1e-6, 1e-3, fmt.Sprintf("layer %d moments", i))
	}
}

func TestCUDAAndCPUResumeEachOthersCheckpoints(t *testing.T) {
	t.Parallel()
	b := setupCUDA(t, 31)
	x, y := complexityData(b.r, 1000)
	cfg := SeedNetwork(10)
	for i := range cfg.Layers {
		cfg.Layers[i].Dropout = 0 // the CPU tolerances of train_cuda_test.go
	}
	cfg.Epochs, cfg.Seed = 12, 9
	gpuCfg := cfg
	gpuCfg.Backend = b.gpu

	// The state each backend saves after 4 epochs is the same within float32 rounding.
	fromCPU := interruptedAfter(t, cfg, x, y, 4)
	fromGPU := interruptedAfter(t, gpuCfg, x, y, 4)
	requireSameState(t, fromCPU, fromGPU)

	// Each backend goes on from the other's checkpoint as the CPU would have.
	want := train(t, cfg, x, y)
	cpuOn := cfg
	cpuOn.Resume = fromGPU
	gpuOn := gpuCfg
	gpuOn.Resume = fromCPU
	requireSameCurve(t, want.losses, train(t, cpuOn, x, y).losses)
	requireSameCurve(t, want.losses, train(t, gpuOn, x, y).losses)
}
