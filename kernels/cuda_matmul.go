//go:build cuda || cudaemu

package kernels

import (
	"errors"
	"fmt"
)

// gemmTile is one of matmul.cu's tile shapes: each block of 256 threads
// computes a bm×bn tile of C, walking K bk at a time.
type gemmTile struct {
	name       string
	bm, bn, bk int
}

// The shapes from the largest (most reuse per shared-memory load) down;
// plan takes the largest the output fills without too much padding.
var (
	gemmLarge  = gemmTile{"large", 128, 128, 8}
	gemmMedium = gemmTile{"medium", 64, 64, 16}
	gemmSmall  = gemmTile{"small", 32, 32, 32}
)

// gemmPlan is how one MatMul runs: a tile shape, and K split into splits
// slices of kSplit (a multiple of bk) when the tiles alone cannot fill the GPU.
type gemmPlan struct {
	tile          gemmTile
	splits        int
	kSplit        int
	gridX, gridY  int
	partialFloats int
}

const (
	// maxSplits bounds the extra work of the reduction pass.
	maxSplits = 16
	// minSplitSteps keeps each K slice long enough to amortize loading
	// and writing its tile.
	minSplitSteps = 4
	// maxPartialFloats caps the split-K workspace at 256 MiB.
	maxPartialFloats = 64 << 20
)

// planGemm picks the tile shape and K split for an m×n output with inner
// dimension k on a GPU with sms multiprocessors. It aims at two resident
// blocks per SM, which the kernels' register use allows for every shape.
func planGemm(m, n, k, sms int) gemmPlan {
	tile := gemmSmall
	switch {
	case m >= gemmLarge.bm && n >= gemmLarge.bn:
		tile = gemmLarge
	case m >= gemmMedium.bm && n >= gemmMedium.bn:
		tile = gemmMedium
	}
	p := gemmPlan{tile: tile, splits: 1, kSplit: k,
		gridX: (n + tile.bn - 1) / tile.bn, gridY: (m + tile.bm - 1) / tile.bm}
	tiles := p.gridX * p.gridY
	target := 2 * sms
	steps := (k + tile.bk - 1) / tile.bk
	splits := min(target/tiles, steps/minSplitSteps, maxSplits, maxPartialFloats/(m*n))
	if splits < 2 {
		return p
	}
	stepsPer := (steps + splits - 1) / splits
	p.kSplit = stepsPer * tile.bk
	p.splits = (k + p.kSplit - 1) / p.kSplit
	if p.splits < 2 {
		p.splits, p.kSplit = 1, k
		return p
	}
	p.partialFloats = p.splits * m * n
	return p
}

// MatMul implements Backend with matmul.cu's tiled kernels.
func (c *CUDA) MatMul(transA, transB bool, alpha float32, a, b Tensor, beta float32, out Tensor) error {
	const op = "matmul"
	at, err := c.tensor(op, "A", a)
	if err != nil {
		return err
	}
	bt, err := c.tensor(op, "B", b)
	if err != nil {
		return err
	}
	ct, err := c.tensor(op, "C", out)
	if err != nil {
		return err
	}
	m, k := at.rows, at.cols
	if transA {
		m, k = k, m
	}
	kb, n := bt.rows, bt.cols
	if transB {
		kb, n = n, kb
	}
	if k != kb || ct.rows != m || ct.cols != n {
		return fmt.Errorf("%s: op(A) is %dx%d, op(B) is %dx%d, C is %dx%d", op, m, k, kb, n, ct.rows, ct.cols)
	}
	if ct == at || ct == bt {
		return errors.New("matmul: C aliases an input")
	}
	p := planGemm(m, n, k, c.sms)
	kernel := "sgemm_" + p.tile.name + "_" + transposeLetter(transA) + transposeLetter(transB)
	return c.enqueue(op, func() error {
		if p.splits == 1 {
			return c.launch(kernel, [3]int{p.gridX, p.gridY, 1}, [3]int{256, 1, 1},
				i64(m), i64(n), i64(k), f32(alpha), ptr(at), ptr(bt), f32(beta), ptr(ct), i64(p.kSplit), 0)
		}
		partial, _, err := c.split.ensure(c.drv, int64(p.partialFloats)*4)
		if err != nil {
			return err
		}
		if err := c.launch(kernel, [3]int{p.gridX, p.gridY, p.splits}, [3]int{256, 1, 1},
			i64(m), i64(n), i64(k), f32(alpha), ptr(at), ptr(bt), f32(beta), ptr(ct), i64(p.kSplit), uint64(partial)); err != nil {
			return err
		}
		grid, block := c.elementwise(m * n)
		return c.launch("sgemm_splitk_reduce", grid, block, i64(m), i64(n), i64(p.splits), f32(alpha), uint64(partial), f32(beta), ptr(ct))
	})
}

// transposeLetter is the BLAS name of an operand's op: n as is, t transposed.
func transposeLetter(t bool) string {
	if t {
		return "t"
	}
	return "n"
}
