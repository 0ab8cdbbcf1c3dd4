package kernels

import (
	"errors"
	"fmt"
	"math"
)

// Model is a trained MLP: architecture, weights and the input normalization
// fitted on its training data. It lives on the host, so it can be serialized
// and used with any Backend. A Model is immutable once returned, so one may
// serve concurrent Predict calls.
type Model struct {
	inputs int
	loss   Loss
	layers []dense
	// mean and std are per-feature statistics of the training inputs;
	// inputs are mapped to (x-mean)/std before the first layer.
	mean, std []float32
}

// dense is one layer's host copy: w is in×Units row-major, b is 1×Units.
type dense struct {
	LayerConfig
	in   int
	w, b []float32
}

// Inputs is the number of features a sample must have.
func (m *Model) Inputs() int { return m.inputs }

// Outputs is the width of the output layer (1 for the complexity score,
// the class count for a classifier).
func (m *Model) Outputs() int {
	if len(m.layers) == 0 {
		return 0
	}
	return m.layers[len(m.layers)-1].Units
}

// Loss is the objective the model was trained with.
func (m *Model) Loss() Loss { return m.loss }

// Layers returns a copy of the layer configurations, output layer last.
func (m *Model) Layers() []LayerConfig {
	out := make([]LayerConfig, len(m.layers))
	for i, l := range m.layers {
		out[i] = l.LayerConfig
	}
	return out
}

// newModel allocates the layers of cfg with zero weights and the identity
// normalization.
func newModel(cfg Config) *Model {
	m := &Model{
		inputs: cfg.Inputs,
		loss:   cfg.Loss,
		mean:   make([]float32, cfg.Inputs),
		std:    make([]float32, cfg.Inputs),
	}
	for i := range m.std {
		m.std[i] = 1
	}
	in := cfg.Inputs
	for _, l := range cfg.Layers {
		m.layers = append(m.layers, dense{LayerConfig: l, in: in, w: make([]float32, in*l.Units), b: make([]float32, l.Units)})
		in = l.Units
	}
	return m
}

// initWeights draws He-uniform weights for ReLU layers (keeps activation
// variance constant through rectifiers) and Glorot-uniform for the others;
// biases start at zero.
func (m *Model) initWeights(seed uint64) {
	r := newSplitmix(seed, streamInit)
	for i := range m.layers {
		l := &m.layers[i]
		limit := math.Sqrt(6 / float64(l.in+l.Units))
		if l.Activation == ReLU {
			limit = math.Sqrt(6 / float64(l.in))
		}
		for j := range l.w {
			l.w[j] = float32(r.uniform(limit))
		}
		clear(l.b)
	}
}

// fitNormalization computes per-feature mean and population standard
// deviation in float64; constant features get std 1 so they map to 0 rather
// than to NaN.
func (m *Model) fitNormalization(x []float32, rows int) {
	d := m.inputs
	for j := 0; j < d; j++ {
		var sum float64
		for r := 0; r < rows; r++ {
			sum += float64(x[r*d+j])
		}
		mean := sum / float64(rows)
		var ss float64
		for r := 0; r < rows; r++ {
			dv := float64(x[r*d+j]) - mean
			ss += dv * dv
		}
		std := math.Sqrt(ss / float64(rows))
		if !(std > 1e-12) || math.IsInf(std, 0) {
			std = 1
		}
		m.mean[j] = float32(mean)
		m.std[j] = float32(std)
	}
}

// normalize returns a normalized copy of x; training and prediction share it
// so the same raw row always becomes the same network input.
func (m *Model) normalize(x []float32) []float32 {
	out := make([]float32, len(x))
	d := m.inputs
	for i, v := range x {
		j := i % d
		out[i] = (v - m.mean[j]) / m.std[j]
	}
	return out
}

// rowsOf checks that x holds whole samples of width cols.
func rowsOf(what string, x []float32, cols int) (int, error) {
	if len(x)%cols != 0 {
		return 0, fmt.Errorf("%s: %d values is not a whole number of %d-wide rows", what, len(x), cols)
	}
	return len(x) / cols, nil
}

// predictBatch bounds the activations one Predict call keeps allocated.
const predictBatch = 1024

// Predict runs the model on x (row-major, Inputs() values per sample) on a
// CPU backend and returns Outputs() values per sample: the sigmoid score,
// or class probabilities for a softmax model. Dropout is off.
func (m *Model) Predict(x []float32) ([]float32, error) {
	return m.PredictOn(NewCPU(), x)
}

// PredictOn is Predict on the given backend.
func (m *Model) PredictOn(be Backend, x []float32) (out []float32, err error) {
	if len(m.layers) == 0 {
		return nil, errors.New("predict: empty model (train or load one first)")
	}
	rows, err := rowsOf("predict", x, m.inputs)
	if err != nil {
		return nil, err
	}
	out = make([]float32, rows*m.Outputs())
	if rows == 0 {
		return out, nil
	}
	net, err := newNetwork(be, m, false, 0)
	if err != nil {
		return nil, fmt.Errorf("predict on %s: %w", be.Name(), err)
	}
	defer func() { err = errors.Join(err, net.free()) }()
	xn := m.normalize(x)
	outs := m.Outputs()
	for r0 := 0; r0 < rows; r0 += predictBatch {
		r1 := min(r0+predictBatch, rows)
		bb, err := net.buffers(r1 - r0)
		if err != nil {
			return nil, fmt.Errorf("predict on %s: %w", be.Name(), err)
		}
		if err := be.Upload(bb.x, xn[r0*m.inputs:r1*m.inputs]); err != nil {
			return nil, fmt.Errorf("predict on %s: %w", be.Name(), err)
		}
		if err := net.forward(bb, predicting, 0); err != nil {
			return nil, fmt.Errorf("predict on %s: %w", be.Name(), err)
		}
		if err := be.Download(out[r0*outs:r1*outs], bb.out[len(bb.out)-1]); err != nil {
			return nil, fmt.Errorf("predict on %s: %w", be.Name(), err)
		}
	}
	return out, nil
}

// OneHot turns class labels in [0, classes) into the row-major one-hot
// targets SoftmaxCrossEntropy trains on.
func OneHot(labels []int, classes int) ([]float32, error) {
	if classes <= 0 {
		return nil, fmt.Errorf("one-hot: %d classes, want > 0", classes)
	}
	out := make([]float32, len(labels)*classes)
	for i, l := range labels {
		if l < 0 || l >= classes {
			return nil, fmt.Errorf("one-hot: label %d at row %d outside [0, %d)", l, i, classes)
		}
		out[i*classes+l] = 1
	}
	return out, nil
}
