package kernels

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// gradBundle is a small network on the CPU backend with one fixed batch,
// so the full training objective (dropout masks included) is a
// deterministic function of the weights.
type gradBundle struct {
	be    *CPU
	model *Model
	net   *network
	bb    *batchBuffers
	loss  Tensor
	rows  int
}

const gradStep = 3

func setupGradBundle(t *testing.T, cfg Config, seed uint64) *gradBundle {
	t.Helper()
	const rows = 6
	cfg = cfg.withDefaults()
	cfg.Epochs, cfg.BatchSize = 1, rows
	require.NoError(t, cfg.validate())
	r := newTestRand(seed)
	m := newModel(cfg)
	m.initWeights(seed)
	for i := range m.layers {
		for j := range m.layers[i].b {
			m.layers[i].b[j] = float32(r.uniform(-0.3, 0.3))
		}
	}
	be := NewCPU()
	net, err := newNetwork(be, m, true, seed)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, net.free()) })
	bb, err := net.buffers(rows)
	require.NoError(t, err)
	require.NoError(t, be.Upload(bb.x, r.floats(rows*cfg.Inputs, -2, 2)))
	outs := m.Outputs()
	if cfg.Loss == SoftmaxCrossEntropy {
		labels := make([]int, rows)
		for i := range labels {
			labels[i] = r.r.intn(outs)
		}
		y, err := OneHot(labels, outs)
		require.NoError(t, err)
		require.NoError(t, be.Upload(bb.y, y))
	} else {
		require.NoError(t, be.Upload(bb.y, r.floats(rows*outs, 0, 1)))
	}
	loss, err := net.alloc(1, 1)
	require.NoError(t, err)
	return &gradBundle{be: be, model: m, net: net, bb: bb, loss: loss, rows: rows}
}

// objective is the batch-mean training loss at the current device weights.
func (b *gradBundle) objective(t *testing.T) float64 {
	require.NoError(t, b.be.Upload(b.loss, []float32{0}))
	require.NoError(t, b.net.forward(b.bb, training, gradStep))
	require.NoError(t, b.net.lossGrad(b.bb, b.loss, true))
	return float64(download(t, b.be, b.loss)[0]) / float64(b.rows)
}

// reluPattern records which ReLU units are active, so a finite difference
// that steps across a kink (where the derivative does not exist) is skipped
// rather than reported as a wrong gradient.
func (b *gradBundle) reluPattern(t *testing.T) []bool {
	var out []bool
	for i, l := range b.net.layers {
		if l.Activation != ReLU {
			continue
		}
		for _, v := range download(t, b.be, b.bb.out[i]) {
			out = append(out, v > 0)
		}
	}
	return out
}

func TestNetworkGradientsMatchCentralDifferences(t *testing.T) {
	t.Parallel()
	// Together these cover every activation as a hidden and as an output
	// layer, dropout on hidden layers, and both losses.
	cases := []struct {
		name string
		cfg  Config
	}{
		{"relu_sigmoid_dropout_mse", Config{Inputs: 3, Loss: MSE, Layers: []LayerConfig{
			{Units: 5, Activation: ReLU, Dropout: 0.3}, {Units: 4, Activation: Sigmoid, Dropout: 0.25}, {Units: 2, Activation: Sigmoid}}}},
		{"identity_softmax_hidden_mse", Config{Inputs: 3, Loss: MSE, Layers: []LayerConfig{
			{Units: 5, Activation: Identity}, {Units: 4, Activation: Softmax}, {Units: 2, Activation: Identity}}}},
		{"softmax_xent_dropout", Config{Inputs: 4, Loss: SoftmaxCrossEntropy, Layers: []LayerConfig{
			{Units: 6, Activation: ReLU, Dropout: 0.2}, {Units: 3, Activation: Softmax}}}},
		{"softmax_output_mse", Config{Inputs: 3, Loss: MSE, Layers: []LayerConfig{
			{Units: 4, Activation: Sigmoid}, {Units: 3, Activation: Softmax}}}},
		{"seed_network_shape", func() Config { c := SeedNetwork(4); c.Layers[0].Units, c.Layers[1].Units = 6, 5; return c }()},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupGradBundle(t, tc.cfg, uint64(100+i))
			require.NoError(t, b.net.forward(b.bb, training, gradStep))
			require.NoError(t, b.net.lossGrad(b.bb, nil, true))
			require.NoError(t, b.net.backward(b.bb, gradStep))
			type analytic struct{ w, b []float32 }
			grads := make([]analytic, len(b.net.layers))
			for li, l := range b.net.layers {
				grads[li] = analytic{w: download(t, b.be, l.gw), b: download(t, b.be, l.gb)}
			}

			base := b.reluPattern(t)
			const h = 1e-2
			checked, skipped := 0, 0
			for li, l := range b.net.layers {
				host := &b.model.layers[li]
				for _, p := range []struct {
					name   string
					values []float32
					dev    Tensor
					grad   []float32
				}{{"w", host.w, l.w, grads[li].w}, {"b", host.b, l.b, grads[li].b}} {
					for j := range p.values {
						orig := p.values[j]
						eval := func(v float32) (float64, bool) {
							p.values[j] = v
							require.NoError(t, b.be.Upload(p.dev, p.values))
							f := b.objective(t)
							return f, equalBools(base, b.reluPattern(t))
						}
						up, okUp := eval(orig + h)
						down, okDown := eval(orig - h)
						p.values[j] = orig
						require.NoError(t, b.be.Upload(p.dev, p.values))
						if !okUp || !okDown {
							skipped++
							continue
						}
						num := (up - down) / (2 * h)
						got := float64(p.grad[j])
						require.InDeltaf(t, num, got, 1e-4+5e-3*math.Abs(num), "layer %d %s[%d]", li, p.name, j)
						checked++
					}
				}
			}
			require.Greater(t, checked, 10*max(skipped, 1), "too many coordinates crossed a ReLU kink to trust the check")
		})
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
