package kernels

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Train fits a new Model to x (row-major, cfg.Inputs values per sample) and
// y (the last layer's Units values per sample; one-hot rows for
// SoftmaxCrossEntropy, see OneHot) and returns it with the mean training
// loss of every epoch.
//
// The data are normalized with statistics that become part of the model,
// uploaded once, and batched on the backend; the host sees only the
// per-epoch loss and, at the end, the weights. Epoch losses are measured
// with dropout active, as the optimizer saw them. Train stops with ctx's
// error between batches, and with an error if the loss stops being finite.
func Train(ctx context.Context, cfg Config, x, y []float32) (model *Model, losses []float64, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, nil, fmt.Errorf("train: config: %w", err)
	}
	be := cfg.Backend
	rows, err := rowsOf("train: inputs", x, cfg.Inputs)
	if err != nil {
		return nil, nil, err
	}
	if rows == 0 {
		return nil, nil, errors.New("train: no training samples")
	}
	outputs := cfg.Layers[len(cfg.Layers)-1].Units
	if len(y) != rows*outputs {
		return nil, nil, fmt.Errorf("train: %d target values for %d samples of %d outputs", len(y), rows, outputs)
	}

	model = newModel(cfg)
	model.fitNormalization(x, rows)
	model.initWeights(cfg.Seed)

	net, err := newNetwork(be, model, true, cfg.Seed)
	if err != nil {
		return nil, nil, fmt.Errorf("train on %s: %w", be.Name(), err)
	}
	defer func() {
		if ferr := net.free(); ferr != nil {
			err = errors.Join(err, fmt.Errorf("train on %s: releasing tensors: %w", be.Name(), ferr))
		}
	}()
	dataX, err := net.upload(rows, cfg.Inputs, model.normalize(x))
	if err != nil {
		return nil, nil, fmt.Errorf("train on %s: uploading inputs: %w", be.Name(), err)
	}
	dataY, err := net.upload(rows, outputs, y)
	if err != nil {
		return nil, nil, fmt.Errorf("train on %s: uploading targets: %w", be.Name(), err)
	}
	lossAcc, err := net.alloc(1, 1)
	if err != nil {
		return nil, nil, fmt.Errorf("train on %s: %w", be.Name(), err)
	}

	batch := min(cfg.BatchSize, rows)
	order := make([]int, rows)
	for i := range order {
		order[i] = i
	}
	shuffler := newSplitmix(cfg.Seed, streamShuffle)
	lossHost := []float32{0}
	var step uint64
	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		shuffler.shuffle(order)
		lossHost[0] = 0
		if err := be.Upload(lossAcc, lossHost); err != nil {
			return nil, nil, fmt.Errorf("train on %s: epoch %d: %w", be.Name(), epoch, err)
		}
		for start := 0; start < rows; start += batch {
			if err := ctx.Err(); err != nil {
				return nil, nil, fmt.Errorf("train: epoch %d: %w", epoch, err)
			}
			idx := order[start:min(start+batch, rows)]
			if err := trainStep(net, dataX, dataY, lossAcc, idx, cfg.Adam, step); err != nil {
				return nil, nil, fmt.Errorf("train on %s: epoch %d, step %d: %w", be.Name(), epoch, step, err)
			}
			step++
		}
		if err := be.Download(lossHost, lossAcc); err != nil {
			return nil, nil, fmt.Errorf("train on %s: epoch %d: reading loss: %w", be.Name(), epoch, err)
		}
		loss := float64(lossHost[0]) / float64(rows)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, nil, fmt.Errorf("train on %s: epoch %d: loss is %v; training diverged (lower the learning rate)", be.Name(), epoch, loss)
		}
		losses = append(losses, loss)
	}
	if err := net.download(model); err != nil {
		return nil, nil, fmt.Errorf("train on %s: reading weights: %w", be.Name(), err)
	}
	return model, losses, nil
}

// trainStep is one minibatch: gather, forward, loss, backward, Adam. Adam's
// step count is 1-based for its bias correction.
func trainStep(net *network, dataX, dataY, lossAcc Tensor, idx []int, adam AdamParams, step uint64) error {
	bb, err := net.buffers(len(idx))
	if err != nil {
		return err
	}
	if err := net.be.GatherRows(bb.x, dataX, idx); err != nil {
		return fmt.Errorf("batch inputs: %w", err)
	}
	if err := net.be.GatherRows(bb.y, dataY, idx); err != nil {
		return fmt.Errorf("batch targets: %w", err)
	}
	if err := net.forward(bb, true, step); err != nil {
		return err
	}
	if err := net.lossGrad(bb, lossAcc); err != nil {
		return err
	}
	if err := net.backward(bb, step); err != nil {
		return err
	}
	return net.update(adam, int(step)+1)
}
