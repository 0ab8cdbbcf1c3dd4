package kernels

import (
	"errors"
	"fmt"
	"math"
	"runtime"
)

// CPU is the pure-Go Backend: the reference every other backend is checked
// against, and the default when a Config names none. Its zero value is ready
// to use. Results are bit-identical for any Workers value, because work is
// split by output rows and each row is always summed in the same order.
type CPU struct {
	// Workers caps the goroutines a large MatMul is split across;
	// 0 means runtime.GOMAXPROCS(0).
	Workers int
}

var _ Backend = (*CPU)(nil)

// NewCPU returns a CPU backend that uses all of GOMAXPROCS.
func NewCPU() *CPU { return &CPU{} }

type cpuTensor struct {
	rows, cols int
	data       []float32
}

func (t *cpuTensor) Rows() int { return t.rows }
func (t *cpuTensor) Cols() int { return t.cols }

var errFreed = errors.New("tensor was freed")

// Name implements Backend.
func (c *CPU) Name() string { return "cpu" }

func (c *CPU) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// maxElements bounds a single tensor so rows*cols cannot overflow int
// arithmetic on any platform and a corrupt shape fails loudly.
const maxElements = 1 << 31

// Alloc implements Backend.
func (c *CPU) Alloc(rows, cols int) (Tensor, error) {
	if rows <= 0 || cols <= 0 || rows > maxElements/cols {
		return nil, fmt.Errorf("cpu alloc: invalid shape %dx%d", rows, cols)
	}
	return &cpuTensor{rows: rows, cols: cols, data: make([]float32, rows*cols)}, nil
}

// Free implements Backend.
func (c *CPU) Free(t Tensor) error {
	ct, err := c.tensor("free", "t", t)
	if err != nil {
		return err
	}
	ct.data = nil
	return nil
}

// tensor unwraps a handle, rejecting nil, foreign and freed tensors with the
// op and operand named.
func (c *CPU) tensor(op, name string, t Tensor) (*cpuTensor, error) {
	ct, ok := t.(*cpuTensor)
	if !ok || ct == nil {
		return nil, fmt.Errorf("%s: %s is %T, not a cpu tensor", op, name, t)
	}
	if ct.data == nil {
		return nil, fmt.Errorf("%s: %s: %w", op, name, errFreed)
	}
	return ct, nil
}

// optTensor is tensor for operands that may be nil.
func (c *CPU) optTensor(op, name string, t Tensor) (*cpuTensor, error) {
	if t == nil {
		return nil, nil
	}
	return c.tensor(op, name, t)
}

// Upload implements Backend.
func (c *CPU) Upload(dst Tensor, src []float32) error {
	d, err := c.tensor("upload", "dst", dst)
	if err != nil {
		return err
	}
	if len(src) != len(d.data) {
		return fmt.Errorf("upload: %d values for a %dx%d tensor", len(src), d.rows, d.cols)
	}
	copy(d.data, src)
	return nil
}

// Download implements Backend.
func (c *CPU) Download(dst []float32, src Tensor) error {
	s, err := c.tensor("download", "src", src)
	if err != nil {
		return err
	}
	if len(dst) != len(s.data) {
		return fmt.Errorf("download: %d-value buffer for a %dx%d tensor", len(dst), s.rows, s.cols)
	}
	copy(dst, s.data)
	return nil
}

// GatherRows implements Backend.
func (c *CPU) GatherRows(dst, src Tensor, rows []int) error {
	d, err := c.tensor("gather rows", "dst", dst)
	if err != nil {
		return err
	}
	s, err := c.tensor("gather rows", "src", src)
	if err != nil {
		return err
	}
	if d.cols != s.cols || d.rows != len(rows) {
		return fmt.Errorf("gather rows: %d rows of a %dx%d src into a %dx%d dst", len(rows), s.rows, s.cols, d.rows, d.cols)
	}
	if d == s {
		return errors.New("gather rows: dst and src are the same tensor")
	}
	n := s.cols
	for i, r := range rows {
		if r < 0 || r >= s.rows {
			return fmt.Errorf("gather rows: index %d at position %d out of range [0,%d)", r, i, s.rows)
		}
		copy(d.data[i*n:(i+1)*n], s.data[r*n:(r+1)*n])
	}
	return nil
}

// BiasActivate implements Backend.
func (c *CPU) BiasActivate(act Activation, x, bias, y Tensor) error {
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
	n := xt.cols
	b := bt.data
	for r := 0; r < xt.rows; r++ {
		xr := xt.data[r*n : (r+1)*n]
		yr := yt.data[r*n : (r+1)*n]
		switch act {
		case Identity:
			for j, v := range xr {
				yr[j] = v + b[j]
			}
		case ReLU:
			for j, v := range xr {
				yr[j] = max(v+b[j], 0)
			}
		case Sigmoid:
			for j, v := range xr {
				yr[j] = sigmoid(v + b[j])
			}
		case Softmax:
			softmaxRow(yr, xr, b)
		}
	}
	return nil
}

// sigmoid is evaluated on the side where exp cannot overflow.
func sigmoid(z float32) float32 {
	if z >= 0 {
		return float32(1 / (1 + math.Exp(-float64(z))))
	}
	e := math.Exp(float64(z))
	return float32(e / (1 + e))
}

// softmaxRow writes softmax(x + b) into y, shifting by the row max so exp
// never overflows; y may alias x.
func softmaxRow(y, x, b []float32) {
	m := float32(math.Inf(-1))
	for j, v := range x {
		m = max(m, v+b[j])
	}
	var sum float64
	for j, v := range x {
		e := math.Exp(float64(v + b[j] - m))
		y[j] = float32(e)
		sum += e
	}
	inv := 1 / sum
	for j := range y {
		y[j] = float32(float64(y[j]) * inv)
	}
}

// ActivationBackward implements Backend.
func (c *CPU) ActivationBackward(act Activation, y, dy, dz, dbias Tensor) error {
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
	n := yt.cols
	for r := 0; r < yt.rows; r++ {
		yr := yt.data[r*n : (r+1)*n]
		gr := gt.data[r*n : (r+1)*n]
		zr := zt.data[r*n : (r+1)*n]
		switch act {
		case Identity:
			copy(zr, gr)
		case ReLU:
			for j, v := range yr {
				if v > 0 {
					zr[j] = gr[j]
				} else {
					zr[j] = 0
				}
			}
		case Sigmoid:
			for j, v := range yr {
				zr[j] = gr[j] * v * (1 - v)
			}
		case Softmax:
			// The softmax Jacobian is diag(y) - y yᵀ, so its product with
			// dy needs the row's dot product first.
			var dot float64
			for j, v := range yr {
				dot += float64(v) * float64(gr[j])
			}
			d := float32(dot)
			for j, v := range yr {
				zr[j] = v * (gr[j] - d)
			}
		}
	}
	if bt != nil {
		columnSums(bt.data, zt.data, zt.rows, n)
	}
	return nil
}

// columnSums accumulates in float64 so a large batch's bias gradient does
// not lose the small contributions.
func columnSums(dst, x []float32, rows, cols int) {
	acc := make([]float64, cols)
	for r := 0; r < rows; r++ {
		for j, v := range x[r*cols : (r+1)*cols] {
			acc[j] += float64(v)
		}
	}
	for j, v := range acc {
		dst[j] = float32(v)
	}
}

// Dropout implements Backend.
func (c *CPU) Dropout(x, y Tensor, rate float32, seed, step uint64) error {
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
		copy(yt.data, xt.data)
		return nil
	}
	key := DropoutStreamKey(seed, step)
	threshold := DropoutThreshold(rate)
	scale := float32(1 / (1 - float64(rate)))
	for i, v := range xt.data {
		if dropoutKept(key, uint64(i), threshold) {
			yt.data[i] = v * scale
		} else {
			yt.data[i] = 0
		}
	}
	return nil
}

// lossOperands validates the shared operand shapes of the two losses.
func (c *CPU) lossOperands(op string, out, target, grad, loss Tensor) (o, t, g, l *cpuTensor, err error) {
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

// MSELoss implements Backend.
func (c *CPU) MSELoss(pred, target, grad, loss Tensor) error {
	p, t, g, l, err := c.lossOperands("mse loss", pred, target, grad, loss)
	if err != nil {
		return err
	}
	n := p.cols
	scale := float32(2 / float64(p.rows*p.cols))
	var total float64
	for r := 0; r < p.rows; r++ {
		var row float64
		for j := r * n; j < (r+1)*n; j++ {
			d := p.data[j] - t.data[j]
			row += float64(d) * float64(d)
			if g != nil {
				g.data[j] = scale * d
			}
		}
		total += row / float64(n)
	}
	if l != nil {
		l.data[0] += float32(total)
	}
	return nil
}

// SoftmaxCrossEntropyLoss implements Backend.
func (c *CPU) SoftmaxCrossEntropyLoss(logits, target, grad, loss Tensor) error {
	z, t, g, l, err := c.lossOperands("softmax cross-entropy loss", logits, target, grad, loss)
	if err != nil {
		return err
	}
	n := z.cols
	inv := 1 / float64(z.rows)
	var total float64
	for r := 0; r < z.rows; r++ {
		zr := z.data[r*n : (r+1)*n]
		tr := t.data[r*n : (r+1)*n]
		m := math.Inf(-1)
		for _, v := range zr {
			m = max(m, float64(v))
		}
		var sum, tsum float64
		for j, v := range zr {
			sum += math.Exp(float64(v) - m)
			tsum += float64(tr[j])
		}
		lse := m + math.Log(sum)
		for j, v := range zr {
			total += float64(tr[j]) * (lse - float64(v))
			if g != nil {
				p := math.Exp(float64(v) - lse)
				g.data[r*n+j] = float32((p*tsum - float64(tr[j])) * inv)
			}
		}
	}
	if l != nil {
		l.data[0] += float32(total)
	}
	return nil
}

// AdamStep implements Backend.
func (c *CPU) AdamStep(w, g, m, v Tensor, p AdamParams, t int) error {
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
	// The bias corrections are per-call scalars; computing them in float64
	// keeps 1-β^t accurate when β is close to 1 and t is small.
	c1 := float32(1 / (1 - math.Pow(float64(p.Beta1), float64(t))))
	c2 := float32(1 / (1 - math.Pow(float64(p.Beta2), float64(t))))
	b1, b2 := p.Beta1, p.Beta2
	for i, gi := range gt.data {
		mi := b1*mt.data[i] + (1-b1)*gi
		vi := b2*vt.data[i] + (1-b2)*gi*gi
		mt.data[i] = mi
		vt.data[i] = vi
		vhat := float32(math.Sqrt(float64(vi * c2)))
		wt.data[i] -= p.LR * (mi * c1) / (vhat + p.Eps)
	}
	return nil
}
