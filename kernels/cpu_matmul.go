package kernels

import (
	"errors"
	"fmt"
	"sync"
)

// The kernel computes C in 4×2 tiles whose eight sums stay in registers for
// the whole k loop: each step loads 4 values of A and 2 of B for 8
// multiply-adds, against one load and store of C per multiply-add in a
// plain loop. Among the tiles tried (2×2 to 4×4), 4×2 and 3×2 were fastest
// with the Go compiler on amd64; larger tiles spill their sums to the stack.
const (
	tileRows = 4
	tileCols = 2
)

// parallelFlops is the size below which goroutine start-up costs more than
// the multiply; small layers (the seed network) run on the calling goroutine.
const parallelFlops = 1 << 17

// MatMul implements Backend.
func (c *CPU) MatMul(transA, transB bool, alpha float32, a, b Tensor, beta float32, out Tensor) error {
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

	// B is packed once into column panels (k×tileCols, zero-padded), read
	// through its transpose if asked, so the kernel walks it contiguously.
	panels := (n + tileCols - 1) / tileCols
	packed := getScratch(panels * k * tileCols)
	defer putScratch(packed)
	sbp, sbj := n, 1
	if transB {
		sbp, sbj = 1, k
	}
	packPanels(*packed, bt.data, k, n, sbp, sbj)

	// A is read in place through strides: element (i, p) of op(A).
	sai, sap := k, 1
	if transA {
		sai, sap = 1, m
	}
	g := gemm{m: m, n: n, k: k, alpha: alpha, beta: beta, a: at.data, sai: sai, sap: sap, b: *packed, c: ct.data}

	workers := c.workers()
	if m*n*k < parallelFlops || m < 2*tileRows {
		workers = 1
	}
	// Each C element is a sum over p in ascending order done by the same
	// kernel whatever the chunking, so results are bit-identical for any
	// worker count; chunks are tile-aligned only to avoid wasted padding.
	chunk := (m + workers - 1) / workers
	chunk = (chunk + tileRows - 1) / tileRows * tileRows
	if chunk >= m {
		g.rows(0, m)
		return nil
	}
	var wg sync.WaitGroup
	for i0 := 0; i0 < m; i0 += chunk {
		i1 := min(i0+chunk, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.rows(i0, i1)
		}()
	}
	wg.Wait()
	return nil
}

// packPanels copies the k×n matrix whose (p, j) element is src[p*sp+j*sj]
// into panels of tileCols columns: panel q holds columns q·tileCols.. as k
// consecutive rows of tileCols values, padded with zeros past column n.
func packPanels(dst, src []float32, k, n, sp, sj int) {
	for q := 0; q*tileCols < n; q++ {
		panel := dst[q*k*tileCols : (q+1)*k*tileCols]
		for c := 0; c < tileCols; c++ {
			j := q*tileCols + c
			if j >= n {
				for p := 0; p < k; p++ {
					panel[p*tileCols+c] = 0
				}
				continue
			}
			for p := 0; p < k; p++ {
				panel[p*tileCols+c] = src[p*sp+j*sj]
			}
		}
	}
}

// gemm is one C = alpha·op(A)·op(B) + beta·C with op(B) packed into panels.
type gemm struct {
	m, n, k     int
	alpha, beta float32
	a           []float32
	sai, sap    int
	b, c        []float32
}

// rows computes C rows [i0, i1), tileRows at a time; rows past m are
// computed on zero padding and discarded.
func (g *gemm) rows(i0, i1 int) {
	k := g.k
	apanel := make([]float32, k*tileRows)
	var acc [tileRows * tileCols]float32
	for i := i0; i < i1; i += tileRows {
		rows := min(tileRows, i1-i)
		for r := 0; r < tileRows; r++ {
			for p := 0; p < k; p++ {
				v := float32(0)
				if r < rows {
					v = g.a[(i+r)*g.sai+p*g.sap]
				}
				apanel[p*tileRows+r] = v
			}
		}
		for q := 0; q*tileCols < g.n; q++ {
			kernel4x2(&acc, apanel, g.b[q*k*tileCols:(q+1)*k*tileCols])
			cols := min(tileCols, g.n-q*tileCols)
			for r := 0; r < rows; r++ {
				row := g.c[(i+r)*g.n+q*tileCols:]
				for c := 0; c < cols; c++ {
					v := g.alpha * acc[r*tileCols+c]
					// beta == 0 must not read C: it may hold NaN (sgemm contract).
					if g.beta != 0 {
						v += g.beta * row[c]
					}
					row[c] = v
				}
			}
		}
	}
}

// kernel4x2 sums a 4×2 tile over the packed A panel (k×4) and B panel (k×2),
// each element in ascending p order.
func kernel4x2(acc *[tileRows * tileCols]float32, a, b []float32) {
	var c00, c01, c10, c11, c20, c21, c30, c31 float32
	for len(a) >= 4 && len(b) >= 2 {
		a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
		b0, b1 := b[0], b[1]
		c00 += a0 * b0
		c01 += a0 * b1
		c10 += a1 * b0
		c11 += a1 * b1
		c20 += a2 * b0
		c21 += a2 * b1
		c30 += a3 * b0
		c31 += a3 * b1
		a, b = a[4:], b[2:]
	}
	*acc = [tileRows * tileCols]float32{c00, c01, c10, c11, c20, c21, c30, c31}
}

var scratchPool sync.Pool

// getScratch returns a buffer of exactly n float32s, reusing pooled memory so
// packing B in every MatMul does not churn the garbage collector.
func getScratch(n int) *[]float32 {
	if p, ok := scratchPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

func putScratch(p *[]float32) { scratchPool.Put(p) }
