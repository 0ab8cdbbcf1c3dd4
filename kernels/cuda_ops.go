//go:build cuda || cudaemu

package kernels

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// Every operation checks its operands on the calling goroutine, so shape
// errors come back at once, and then queues its kernels without waiting.

// GatherRows implements Backend. The row indices are the only per-batch
// data the host sends: an asynchronous copy into a device index buffer,
// skipped when the indices are the ones already there (Train gathers the
// inputs and the targets of a batch with the same rows).
func (c *CUDA) GatherRows(dst, src Tensor, rows []int) error {
	const op = "gather rows"
	d, err := c.tensor(op, "dst", dst)
	if err != nil {
		return err
	}
	s, err := c.tensor(op, "src", src)
	if err != nil {
		return err
	}
	if d.cols != s.cols || d.rows != len(rows) {
		return fmt.Errorf("%s: %d rows of a %dx%d src into a %dx%d dst", op, len(rows), s.rows, s.cols, d.rows, d.cols)
	}
	if d == s {
		return errors.New("gather rows: dst and src are the same tensor")
	}
	// A copy, because the caller may change rows once this returns.
	idx := make([]int32, len(rows))
	for i, r := range rows {
		if r < 0 || r >= s.rows {
			return fmt.Errorf("%s: index %d at position %d out of range [0,%d)", op, r, i, s.rows)
		}
		idx[i] = int32(r)
	}
	return c.enqueue(op, func() error {
		p, fresh, err := c.rows.ensure(c.drv, int64(len(idx))*4)
		if err != nil {
			return err
		}
		if fresh || !slices.Equal(idx, c.last) {
			// From pageable memory the driver stages the bytes before it
			// returns, so idx is not read after this call (cgo's rule), and
			// the copy is ordered after the kernels that read the old indices.
			if err := c.drv.uploadAsync(p, unsafe.Pointer(&idx[0]), int64(len(idx))*4); err != nil {
				return err
			}
			c.last = idx
		}
		grid, block := c.elementwise(d.n())
		return c.launch("gather_rows", grid, block, ptr(d), ptr(s), uint64(p), i64(d.rows), i64(d.cols))
	})
}

// BiasActivate implements Backend.
func (c *CUDA) BiasActivate(act Activation, x, bias, y Tensor) error {
	const op = "bias activate"
	xt, err := c.tensor(op, "x", x)
	if err != nil {
		return err
	}
	bt, err := c.tensor(op, "bias", bias)
	if err != nil {
		return err
	}
	yt, err := c.tensor(op, "y", y)
	if err != nil {
		return err
	}
	if err := sameShape(op, "x", x, "y", y); err != nil {
		return err
	}
	if bt.rows != 1 || bt.cols != xt.cols {
		return fmt.Errorf("%s: bias is %dx%d, want 1x%d", op, bt.rows, bt.cols, xt.cols)
	}
	if !act.valid() {
		return fmt.Errorf("%s: %s", op, act)
	}
	return c.enqueue(op, func() error {
		if act == Softmax {
			grid, block := c.rowWarps(xt.rows)
			return c.launch("softmax_rows", grid, block, ptr(xt), ptr(bt), ptr(yt), i64(xt.rows), i64(xt.cols))
		}
		grid, block := c.elementwise(xt.n())
		return c.launch("bias_act", grid, block, uint64(act), ptr(xt), ptr(bt), ptr(yt), i64(xt.rows), i64(xt.cols))
	})
}

// ActivationBackward implements Backend. For the elementwise activations one
// kernel computes dz and the bias gradient; softmax first applies its
// row-wise Jacobian, then sums the columns of dz.
func (c *CUDA) ActivationBackward(act Activation, y, dy, dz, dbias Tensor) error {
	const op = "activation backward"
	yt, err := c.tensor(op, "y", y)
	if err != nil {
		return err
	}
	gt, err := c.tensor(op, "dy", dy)
	if err != nil {
		return err
	}
	zt, err := c.tensor(op, "dz", dz)
	if err != nil {
		return err
	}
	bt, err := c.optTensor(op, "dbias", dbias)
	if err != nil {
		return err
	}
	if err := sameShape(op, "y", y, "dy", dy); err != nil {
		return err
	}
	if err := sameShape(op, "y", y, "dz", dz); err != nil {
		return err
	}
	if bt != nil && (bt.rows != 1 || bt.cols != yt.cols) {
		return fmt.Errorf("%s: dbias is %dx%d, want 1x%d", op, bt.rows, bt.cols, yt.cols)
	}
	if !act.valid() {
		return fmt.Errorf("%s: %s", op, act)
	}
	return c.enqueue(op, func() error {
		cols := [3]int{(yt.cols + 31) / 32, 1, 1}
		square := [3]int{32, 32, 1}
		if act != Softmax {
			return c.launch("act_backward", cols, square, uint64(act), ptr(yt), ptr(gt), ptr(zt), optPtr(bt), i64(yt.rows), i64(yt.cols))
		}
		grid, block := c.rowWarps(yt.rows)
		if err := c.launch("softmax_backward_rows", grid, block, ptr(yt), ptr(gt), ptr(zt), i64(yt.rows), i64(yt.cols)); err != nil {
			return err
		}
		if bt == nil {
			return nil
		}
		return c.launch("act_backward", cols, square, uint64(Identity), ptr(yt), ptr(zt), ptr(zt), ptr(bt), i64(yt.rows), i64(yt.cols))
	})
}

// Dropout implements Backend. The host derives the call's key and threshold
// exactly as the CPU does; the kernel hashes each element's index with them.
func (c *CUDA) Dropout(x, y Tensor, rate float32, seed, step uint64) error {
	const op = "dropout"
	xt, err := c.tensor(op, "x", x)
	if err != nil {
		return err
	}
	yt, err := c.tensor(op, "y", y)
	if err != nil {
		return err
	}
	if err := sameShape(op, "x", x, "y", y); err != nil {
		return err
	}
	if !(rate >= 0 && rate < 1) {
		return fmt.Errorf("%s: rate %v outside [0, 1)", op, rate)
	}
	if rate == 0 {
		if xt == yt {
			return nil
		}
		return c.enqueue(op, func() error {
			return c.drv.copyAsync(yt.ptr, xt.ptr, xt.bytes())
		})
	}
	key := DropoutStreamKey(seed, step)
	threshold := DropoutThreshold(rate)
	scale := float32(1 / (1 - float64(rate)))
	return c.enqueue(op, func() error {
		grid, block := c.elementwise(xt.n())
		return c.launch("dropout", grid, block, ptr(xt), ptr(yt), i64(xt.n()), key, threshold, f32(scale))
	})
}

// lossOperands validates the shared operand shapes of the two losses.
func (c *CUDA) lossOperands(op string, out, target, grad, loss Tensor) (o, t, g, l *cudaTensor, err error) {
	if o, err = c.tensor(op, "outputs", out); err != nil {
		return
	}
	if t, err = c.tensor(op, "target", target); err != nil {
		return
	}
	if g, err = c.optTensor(op, "grad", grad); err != nil {
		return
	}
	if l, err = c.optTensor(op, "loss", loss); err != nil {
		return
	}
	if err = sameShape(op, "outputs", out, "target", target); err != nil {
		return
	}
	if g != nil {
		if err = sameShape(op, "outputs", out, "grad", grad); err != nil {
			return
		}
	}
	if l != nil && (l.rows != 1 || l.cols != 1) {
		err = fmt.Errorf("%s: loss is %dx%d, want 1x1", op, l.rows, l.cols)
	}
	return
}

// lossBlock is the launch shape of the single-block loss kernels.
var lossBlock = [3]int{1024, 1, 1}

// MSELoss implements Backend.
func (c *CUDA) MSELoss(pred, target, grad, loss Tensor) error {
	const op = "mse loss"
	p, t, g, l, err := c.lossOperands(op, pred, target, grad, loss)
	if err != nil {
		return err
	}
	if g == nil && l == nil {
		return nil
	}
	scale := float32(2 / float64(p.rows*p.cols))
	return c.enqueue(op, func() error {
		return c.launch("mse_loss", [3]int{1, 1, 1}, lossBlock, ptr(p), ptr(t), optPtr(g), optPtr(l), i64(p.rows), i64(p.cols), f32(scale))
	})
}

// SoftmaxCrossEntropyLoss implements Backend.
func (c *CUDA) SoftmaxCrossEntropyLoss(logits, target, grad, loss Tensor) error {
	const op = "softmax cross-entropy loss"
	z, t, g, l, err := c.lossOperands(op, logits, target, grad, loss)
	if err != nil {
		return err
	}
	if g == nil && l == nil {
		return nil
	}
	inv := 1 / float64(z.rows)
	return c.enqueue(op, func() error {
		return c.launch("xent_loss", [3]int{1, 1, 1}, lossBlock, ptr(z), ptr(t), optPtr(g), optPtr(l), i64(z.rows), i64(z.cols), f64(inv))
	})
}

// AdamStep implements Backend. The bias corrections are computed on the host
// in float64, as the CPU does, and passed to the kernel.
func (c *CUDA) AdamStep(w, g, m, v Tensor, p AdamParams, t int) error {
	const op = "adam step"
	wt, err := c.tensor(op, "w", w)
	if err != nil {
		return err
	}
	gt, err := c.tensor(op, "g", g)
	if err != nil {
		return err
	}
	mt, err := c.tensor(op, "m", m)
	if err != nil {
		return err
	}
	vt, err := c.tensor(op, "v", v)
	if err != nil {
		return err
	}
	for _, o := range []struct {
		name string
		t    Tensor
	}{{"g", g}, {"m", m}, {"v", v}} {
		if err := sameShape(op, "w", w, o.name, o.t); err != nil {
			return err
		}
	}
	if t < 1 {
		return fmt.Errorf("%s: step %d, want >= 1", op, t)
	}
	c1 := float32(1 / (1 - math.Pow(float64(p.Beta1), float64(t))))
	c2 := float32(1 / (1 - math.Pow(float64(p.Beta2), float64(t))))
	return c.enqueue(op, func() error {
		grid, block := c.elementwise(wt.n())
		return c.launch("adam", grid, block, ptr(wt), ptr(gt), ptr(mt), ptr(vt), i64(wt.n()),
			f32(p.LR), f32(p.Beta1), f32(p.Beta2), f32(p.Eps), f32(c1), f32(c2))
	})
}
