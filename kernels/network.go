package kernels

import (
	"errors"
	"fmt"
)

// Seed streams, so weight init, shuffling and each layer's dropout draw from
// independent sequences of the one configured seed.
const (
	streamInit    = 1
	streamShuffle = 2
	streamDropout = 3
)

// network is a Model's weights resident on a backend, plus, when training,
// their gradients and Adam moments. It is the only code that sequences
// backend operations, so the forward and backward passes read top to bottom.
type network struct {
	be       Backend
	loss     Loss
	training bool
	layers   []*netLayer
	// batches caches activation buffers per batch size: an epoch uses at most
	// two (full batches and the remainder).
	batches map[int]*batchBuffers
	owned   []Tensor
}

type netLayer struct {
	LayerConfig
	in          int
	dropoutSeed uint64
	w, b        Tensor
	// Training only.
	gw, gb, mw, vw, mb, vb Tensor
}

// batchBuffers are the per-batch-size activations. out[l] is layer l's
// output before dropout (its activation derivative needs that), drop[l] the
// output after dropout (nil when the layer has none or outside training),
// grad[l] the loss gradient with respect to the layer's output.
type batchBuffers struct {
	x, y Tensor
	out  []Tensor
	drop []Tensor
	grad []Tensor
}

// newNetwork uploads m's weights to be. With training set it also allocates
// zeroed gradients and Adam state and derives each layer's dropout seed from
// seed.
func newNetwork(be Backend, m *Model, training bool, seed uint64) (*network, error) {
	n := &network{be: be, loss: m.loss, training: training, batches: map[int]*batchBuffers{}}
	for i, l := range m.layers {
		nl := &netLayer{LayerConfig: l.LayerConfig, in: l.in, dropoutSeed: derivedSeed(seed, streamDropout, uint64(i))}
		var err error
		if nl.w, err = n.upload(l.in, l.Units, l.w); err != nil {
			return nil, errors.Join(fmt.Errorf("layer %d weights: %w", i, err), n.free())
		}
		if nl.b, err = n.upload(1, l.Units, l.b); err != nil {
			return nil, errors.Join(fmt.Errorf("layer %d bias: %w", i, err), n.free())
		}
		if training {
			for _, t := range []*Tensor{&nl.gw, &nl.mw, &nl.vw} {
				if *t, err = n.alloc(l.in, l.Units); err != nil {
					return nil, errors.Join(fmt.Errorf("layer %d training state: %w", i, err), n.free())
				}
			}
			for _, t := range []*Tensor{&nl.gb, &nl.mb, &nl.vb} {
				if *t, err = n.alloc(1, l.Units); err != nil {
					return nil, errors.Join(fmt.Errorf("layer %d training state: %w", i, err), n.free())
				}
			}
		}
		n.layers = append(n.layers, nl)
	}
	return n, nil
}

func (n *network) alloc(rows, cols int) (Tensor, error) {
	t, err := n.be.Alloc(rows, cols)
	if err != nil {
		return nil, err
	}
	n.owned = append(n.owned, t)
	return t, nil
}

func (n *network) upload(rows, cols int, data []float32) (Tensor, error) {
	t, err := n.alloc(rows, cols)
	if err != nil {
		return nil, err
	}
	return t, n.be.Upload(t, data)
}

// free releases every tensor the network allocated.
func (n *network) free() error {
	var errs []error
	for _, t := range n.owned {
		if err := n.be.Free(t); err != nil {
			errs = append(errs, err)
		}
	}
	n.owned = nil
	return errors.Join(errs...)
}

// buffers returns the activation buffers for a batch of the given size,
// allocating them on first use.
func (n *network) buffers(rows int) (*batchBuffers, error) {
	if bb, ok := n.batches[rows]; ok {
		return bb, nil
	}
	bb := &batchBuffers{}
	var err error
	if bb.x, err = n.alloc(rows, n.layers[0].in); err != nil {
		return nil, fmt.Errorf("batch of %d inputs: %w", rows, err)
	}
	last := n.layers[len(n.layers)-1]
	if n.training {
		if bb.y, err = n.alloc(rows, last.Units); err != nil {
			return nil, fmt.Errorf("batch of %d targets: %w", rows, err)
		}
	}
	for i, l := range n.layers {
		var out, drop, grad Tensor
		if out, err = n.alloc(rows, l.Units); err != nil {
			return nil, fmt.Errorf("layer %d activations: %w", i, err)
		}
		if n.training {
			if l.Dropout > 0 {
				if drop, err = n.alloc(rows, l.Units); err != nil {
					return nil, fmt.Errorf("layer %d dropout: %w", i, err)
				}
			}
			if grad, err = n.alloc(rows, l.Units); err != nil {
				return nil, fmt.Errorf("layer %d gradients: %w", i, err)
			}
		}
		bb.out = append(bb.out, out)
		bb.drop = append(bb.drop, drop)
		bb.grad = append(bb.grad, grad)
	}
	n.batches[rows] = bb
	return bb, nil
}

// input is what layer l reads: the batch for the first layer, otherwise the
// previous layer's output, after its dropout when dropped is set.
func (bb *batchBuffers) input(l int, dropped bool) Tensor {
	if l == 0 {
		return bb.x
	}
	if dropped && bb.drop[l-1] != nil {
		return bb.drop[l-1]
	}
	return bb.out[l-1]
}

// pass is what a forward pass is for.
type pass int

const (
	// predicting applies the configured output activation, without dropout.
	predicting pass = iota
	// training stops the output layer at what the loss takes and applies
	// dropout with the masks of the step.
	training
	// validating is training's pass without dropout: the loss of data the
	// training does not fit, measured as the model would predict it.
	validating
)

// outputActivation is the activation the forward pass applies to the last
// layer. Training with softmax cross-entropy stops at the logits because the
// loss takes logits; prediction applies the configured softmax.
func (n *network) outputActivation(train bool) Activation {
	last := n.layers[len(n.layers)-1]
	if train && n.loss == SoftmaxCrossEntropy {
		return Identity
	}
	return last.Activation
}

// forward runs bb.x through every layer for pass p; a training pass uses the
// dropout masks of the given step.
func (n *network) forward(bb *batchBuffers, p pass, step uint64) error {
	last := len(n.layers) - 1
	for i, l := range n.layers {
		act := l.Activation
		if i == last {
			act = n.outputActivation(p != predicting)
		}
		if err := n.be.MatMul(false, false, 1, bb.input(i, p == training), l.w, 0, bb.out[i]); err != nil {
			return fmt.Errorf("layer %d forward: %w", i, err)
		}
		if err := n.be.BiasActivate(act, bb.out[i], l.b, bb.out[i]); err != nil {
			return fmt.Errorf("layer %d forward: %w", i, err)
		}
		if p == training && bb.drop[i] != nil {
			if err := n.be.Dropout(bb.out[i], bb.drop[i], l.Dropout, l.dropoutSeed, step); err != nil {
				return fmt.Errorf("layer %d forward: %w", i, err)
			}
		}
	}
	return nil
}

// lossGrad adds the batch's summed loss to lossAcc (if not nil) and, with
// grad set, seeds the backward pass with the loss gradient of the last
// layer's output.
func (n *network) lossGrad(bb *batchBuffers, lossAcc Tensor, grad bool) error {
	last := len(n.layers) - 1
	var g Tensor
	if grad {
		g = bb.grad[last]
	}
	var err error
	switch n.loss {
	case MSE:
		err = n.be.MSELoss(bb.out[last], bb.y, g, lossAcc)
	case SoftmaxCrossEntropy:
		err = n.be.SoftmaxCrossEntropyLoss(bb.out[last], bb.y, g, lossAcc)
	default:
		err = fmt.Errorf("unknown loss %s", n.loss)
	}
	if err != nil {
		return fmt.Errorf("loss: %w", err)
	}
	return nil
}

// backward turns bb.grad[last] into weight and bias gradients for every
// layer, undoing dropout with the forward pass's masks.
func (n *network) backward(bb *batchBuffers, step uint64) error {
	last := len(n.layers) - 1
	for i := last; i >= 0; i-- {
		l := n.layers[i]
		g := bb.grad[i]
		if bb.drop[i] != nil {
			if err := n.be.Dropout(g, g, l.Dropout, l.dropoutSeed, step); err != nil {
				return fmt.Errorf("layer %d backward: %w", i, err)
			}
		}
		act := l.Activation
		if i == last {
			act = n.outputActivation(true)
		}
		if err := n.be.ActivationBackward(act, bb.out[i], g, g, l.gb); err != nil {
			return fmt.Errorf("layer %d backward: %w", i, err)
		}
		if err := n.be.MatMul(true, false, 1, bb.input(i, true), g, 0, l.gw); err != nil {
			return fmt.Errorf("layer %d weight gradient: %w", i, err)
		}
		if i > 0 {
			if err := n.be.MatMul(false, true, 1, g, l.w, 0, bb.grad[i-1]); err != nil {
				return fmt.Errorf("layer %d input gradient: %w", i, err)
			}
		}
	}
	return nil
}

// update applies Adam step t to every weight and bias.
func (n *network) update(p AdamParams, t int) error {
	for i, l := range n.layers {
		if err := n.be.AdamStep(l.w, l.gw, l.mw, l.vw, p, t); err != nil {
			return fmt.Errorf("layer %d weights update: %w", i, err)
		}
		if err := n.be.AdamStep(l.b, l.gb, l.mb, l.vb, p, t); err != nil {
			return fmt.Errorf("layer %d bias update: %w", i, err)
		}
	}
	return nil
}

// download copies the trained weights back into m.
func (n *network) download(m *Model) error {
	for i, l := range n.layers {
		if err := n.be.Download(m.layers[i].w, l.w); err != nil {
			return fmt.Errorf("layer %d weights: %w", i, err)
		}
		if err := n.be.Download(m.layers[i].b, l.b); err != nil {
			return fmt.Errorf("layer %d bias: %w", i, err)
		}
	}
	return nil
}

// adamState is layer l's optimizer state in the order a Checkpoint stores it.
func (l *netLayer) adamState() [4]Tensor { return [4]Tensor{l.mw, l.vw, l.mb, l.vb} }

// moments copies every layer's Adam state between the backend and host
// buffers, one per layer as Checkpoint.moments holds them: up to the backend
// when resuming, down when checkpointing. A nil moments[i] is allocated.
func (n *network) moments(moments [][]float32, up bool) error {
	for i, l := range n.layers {
		if moments[i] == nil {
			moments[i] = make([]float32, 2*(l.in*l.Units+l.Units))
		}
		off := 0
		for _, t := range l.adamState() {
			part := moments[i][off : off+t.Rows()*t.Cols()]
			var err error
			if up {
				err = n.be.Upload(t, part)
			} else {
				err = n.be.Download(part, t)
			}
			if err != nil {
				return fmt.Errorf("layer %d optimizer state: %w", i, err)
			}
			off += len(part)
		}
	}
	return nil
}
