package kernels

import (
	"math"
	"math/bits"
)

// golden is the splitmix64 increment, 2^64/φ rounded to odd.
const golden = 0x9E3779B97F4A7C15

// mix64 is the splitmix64 finalizer (Stafford's variant 13): a bijection on
// uint64 whose output bits all depend on all input bits. It is a handful of
// 64-bit multiplies and shifts, so a GPU thread computes it as cheaply as a CPU.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// DropoutStreamKey derives the per-call key of the dropout mask from the
// layer's seed and the training step. Backends compute it once per call on
// the host and pass it to the per-element hash.
func DropoutStreamKey(seed, step uint64) uint64 {
	return mix64(seed + mix64(step+golden))
}

// DropoutThreshold converts a drop rate to the 24-bit threshold the mask
// compares against: an element is dropped when its 24 random bits are below it.
func DropoutThreshold(rate float32) uint64 {
	return uint64(float64(rate) * (1 << 24))
}

// dropoutKept is the per-element test shared by DropoutKeep and the CPU
// backend, so the reference definition and the implementation cannot drift.
func dropoutKept(key, index, threshold uint64) bool {
	return mix64(key+(index+1)*golden)>>40 >= threshold
}

// DropoutKeep reports whether element index (flat, row-major) survives
// dropout at the given rate for (seed, step). It is counter-based, with no
// state carried between calls, so the backward pass and any backend
// (a GPU thread per element) recompute exactly the same mask:
//
//	key  = mix64(seed + mix64(step + γ))
//	keep = mix64(key + (index+1)·γ) >> 40  ≥  uint64(rate · 2^24)
//
// with γ = 0x9E3779B97F4A7C15, mix64 the splitmix64 finalizer and all
// arithmetic modulo 2^64.
func DropoutKeep(seed, step, index uint64, rate float32) bool {
	return dropoutKept(DropoutStreamKey(seed, step), index, DropoutThreshold(rate))
}

// splitmix is a tiny seeded generator for weight init and shuffling. It is
// ours rather than math/rand's so a seed means the same weights and batch
// order on every Go version.
type splitmix struct{ state uint64 }

func newSplitmix(seed, stream uint64) *splitmix {
	return &splitmix{state: mix64(seed ^ mix64(stream+golden))}
}

func (r *splitmix) next() uint64 {
	r.state += golden
	return mix64(r.state)
}

// float64 returns a uniform value in [0, 1) with 53 random bits.
func (r *splitmix) float64() float64 {
	return float64(r.next()>>11) / (1 << 53)
}

// intn returns a value in [0, n) by Lemire's multiply-high; its bias is
// below 2^-40 for any n a dataset can have, which shuffling does not notice.
func (r *splitmix) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

// uniform returns a value in [-limit, limit).
func (r *splitmix) uniform(limit float64) float64 {
	return (2*r.float64() - 1) * limit
}

// shuffle permutes p in place (Fisher–Yates).
func (r *splitmix) shuffle(p []int) {
	for i := len(p) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		p[i], p[j] = p[j], p[i]
	}
}

// derivedSeed gives each consumer of the model seed (layer dropout streams)
// an independent 64-bit seed.
func derivedSeed(seed uint64, purpose, index uint64) uint64 {
	return mix64(mix64(seed^purpose) + index*golden)
}

// isFinite32 is used to reject NaN/Inf hyperparameters early.
func isFinite32(x float32) bool {
	f := float64(x)
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}
