package kernels

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Train fits a new Model to x (row-major, cfg.Inputs values per sample) and
// y (the last layer's Units values per sample; one-hot rows for
// SoftmaxCrossEntropy, see OneHot) and returns it with the mean training
// loss of every epoch.
//
// The data are normalized with statistics that become part of the model,
// uploaded once, and batched on the backend; the host sees only the
// per-epoch loss and, at the end, the weights (and, with checkpoints on, the
// state after every epoch). Epoch losses are measured with dropout active,
// as the optimizer saw them. Train stops with ctx's error between batches,
// having saved the last completed epoch when checkpoints are on (see
// Checkpoints), and with an error if the loss stops being finite. With
// cfg.Resume it continues an earlier training from its checkpoint, and the
// losses it returns are those of every epoch, the checkpoint's included.
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
	st, err := newTrainState(cfg, x, y, rows)
	if err != nil {
		return nil, nil, fmt.Errorf("train: resuming from the checkpoint: %w", err)
	}
	resumedFrom := len(st.losses)
	if resumedFrom == cfg.Epochs {
		// The checkpoint is of the finished training: nothing is left to do.
		return st.result(), st.losses, nil
	}

	net, err := newNetwork(be, st.model, true, cfg.Seed)
	if err != nil {
		return nil, nil, fmt.Errorf("train on %s: %w", be.Name(), err)
	}
	defer func() {
		if ferr := net.free(); ferr != nil {
			err = errors.Join(err, fmt.Errorf("train on %s: releasing tensors: %w", be.Name(), ferr))
		}
	}()
	if cfg.Resume != nil {
		if err := net.moments(cfg.Resume.moments, true); err != nil {
			return nil, nil, fmt.Errorf("train on %s: restoring the checkpoint: %w", be.Name(), err)
		}
	}
	dataX, err := net.upload(rows, cfg.Inputs, st.model.normalize(x))
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
	val, err := newValidation(net, cfg, st.model, outputs)
	if err != nil {
		return nil, nil, fmt.Errorf("train on %s: %w", be.Name(), err)
	}
	if cfg.KeepBest && val == nil {
		return nil, nil, errors.New("train: config: keep best needs validation data")
	}

	batch := min(cfg.BatchSize, rows)
	ck := cfg.Checkpoints
	// pending is the state after the last completed epoch while it is not
	// saved: what a cancellation saves, since by then the backend's state
	// has moved into the next epoch.
	var pending *Checkpoint
	began := time.Now()
	lastSave := began
	lossHost := []float32{0}
	for epoch := resumedFrom; epoch < cfg.Epochs; epoch++ {
		st.shuffler.shuffle(st.order)
		lossHost[0] = 0
		if err := be.Upload(lossAcc, lossHost); err != nil {
			return nil, nil, fmt.Errorf("train on %s: epoch %d: %w", be.Name(), epoch, err)
		}
		for start := 0; start < rows; start += batch {
			if ctx.Err() != nil {
				return nil, nil, interrupted(ctx, ck, pending, epoch)
			}
			idx := st.order[start:min(start+batch, rows)]
			if err := trainStep(net, dataX, dataY, lossAcc, idx, cfg.Adam, st.step); err != nil {
				return nil, nil, fmt.Errorf("train on %s: epoch %d, step %d: %w", be.Name(), epoch, st.step, err)
			}
			st.step++
		}
		if err := be.Download(lossHost, lossAcc); err != nil {
			return nil, nil, fmt.Errorf("train on %s: epoch %d: reading loss: %w", be.Name(), epoch, err)
		}
		loss := float64(lossHost[0]) / float64(rows)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, nil, fmt.Errorf("train on %s: epoch %d: loss is %v; training diverged (lower the learning rate)", be.Name(), epoch, loss)
		}
		st.losses = append(st.losses, loss)
		var valLoss float64
		if val != nil {
			if valLoss, err = val.loss(net, batch); err != nil {
				return nil, nil, fmt.Errorf("train on %s: epoch %d: validation loss: %w", be.Name(), epoch, err)
			}
		}
		if cfg.KeepBest && (st.bestEpoch == 0 || valLoss < st.bestLoss) {
			if st.best == nil {
				st.best = st.model.clone()
			}
			if err := net.download(st.best); err != nil {
				return nil, nil, fmt.Errorf("train on %s: epoch %d: keeping the best weights: %w", be.Name(), epoch, err)
			}
			st.bestEpoch, st.bestLoss = epoch+1, valLoss
		}
		if ck.Save != nil {
			if pending, err = st.checkpoint(net); err != nil {
				return nil, nil, fmt.Errorf("train on %s: epoch %d: checkpoint: %w", be.Name(), epoch, err)
			}
		}
		if cfg.OnEpoch != nil {
			cfg.OnEpoch(EpochStats{Epoch: epoch + 1, Epochs: cfg.Epochs, Loss: loss, ValidationLoss: valLoss, Samples: rows,
				ResumedFrom: resumedFrom, Elapsed: time.Since(began)})
		}
		if pending != nil && ck.due(epoch+1, cfg.Epochs, time.Since(lastSave)) {
			if err := ck.Save(ctx, pending); err != nil {
				if ctx.Err() != nil {
					return nil, nil, interrupted(ctx, ck, pending, epoch+1)
				}
				return nil, nil, fmt.Errorf("train: saving the checkpoint of epoch %d: %w", epoch+1, err)
			}
			pending, lastSave = nil, time.Now()
		}
	}
	if err := net.download(st.model); err != nil {
		return nil, nil, fmt.Errorf("train on %s: reading weights: %w", be.Name(), err)
	}
	return st.result(), st.losses, nil
}

// result is the model a finished training returns: the best epoch's with
// KeepBest, else the last's.
func (st *trainState) result() *Model {
	if st.best != nil {
		return st.best
	}
	return st.model
}

// interrupted is Train's error when ctx ends in epoch (from 0): ctx's, after
// saving the last completed epoch if that is not saved yet.
func interrupted(ctx context.Context, ck Checkpoints, pending *Checkpoint, epoch int) error {
	err := fmt.Errorf("train: epoch %d: %w", epoch, ctx.Err())
	if pending != nil {
		err = errors.Join(err, ck.saveInterrupted(ctx, pending))
	}
	return err
}

// trainState is what a training carries from epoch to epoch besides the
// weights and moments on the backend, that is the rest of a Checkpoint.
type trainState struct {
	// model is the host copy: the normalization, and the weights at the start.
	model       *Model
	fingerprint uint64
	step        uint64
	shuffler    *splitmix
	order       []int
	losses      []float64
	// best is the weights of epoch bestEpoch (from 1), whose validation loss
	// bestLoss is the lowest so far; nil without KeepBest.
	best      *Model
	bestEpoch int
	bestLoss  float64
}

// newTrainState starts a training afresh (normalization fitted, weights
// drawn, the identity batch order) or from cfg.Resume. The fingerprint is
// computed only when a checkpoint is read or written.
func newTrainState(cfg Config, x, y []float32, rows int) (*trainState, error) {
	st := &trainState{}
	if cfg.Resume != nil || cfg.Checkpoints.Save != nil {
		st.fingerprint = fingerprint(cfg, x, y)
	}
	if c := cfg.Resume; c != nil {
		if err := c.resumes(cfg, st.fingerprint, rows); err != nil {
			return nil, err
		}
		// Copies: the training shuffles and appends in place, and a
		// checkpoint is immutable.
		st.model, st.step, st.shuffler = c.model.clone(), c.step, &splitmix{state: c.shuffle}
		st.order, st.losses = slices.Clone(c.order), slices.Clone(c.losses)
		if c.best != nil {
			st.best, st.bestEpoch, st.bestLoss = c.best.clone(), c.bestEpoch, c.bestLoss
		}
		return st, nil
	}
	st.model = newModel(cfg)
	st.model.fitNormalization(x, rows)
	st.model.initWeights(cfg.Seed)
	st.shuffler = newSplitmix(cfg.Seed, streamShuffle)
	st.order = make([]int, rows)
	for i := range st.order {
		st.order[i] = i
	}
	return st, nil
}

// checkpoint captures the training after its last completed epoch,
// downloading the weights and Adam moments from the backend.
func (st *trainState) checkpoint(net *network) (*Checkpoint, error) {
	c := &Checkpoint{
		fingerprint: st.fingerprint, epoch: len(st.losses), step: st.step, shuffle: st.shuffler.state,
		model: st.model.clone(), moments: make([][]float32, len(net.layers)),
		order: slices.Clone(st.order), losses: slices.Clone(st.losses),
		bestEpoch: st.bestEpoch, bestLoss: st.bestLoss,
	}
	if st.best != nil {
		c.best = st.best.clone()
	}
	if err := net.download(c.model); err != nil {
		return nil, err
	}
	if err := net.moments(c.moments, false); err != nil {
		return nil, err
	}
	return c, nil
}

// validation is Config.Validation resident on the backend, next to the
// training data.
type validation struct {
	x, y, acc Tensor
	order     []int
}

// newValidation uploads cfg.Validation, normalized as the training data is;
// nil when it has no rows.
func newValidation(net *network, cfg Config, m *Model, outputs int) (*validation, error) {
	rows, err := rowsOf("validation inputs", cfg.Validation.X, cfg.Inputs)
	if err != nil || rows == 0 {
		return nil, err
	}
	if len(cfg.Validation.Y) != rows*outputs {
		return nil, fmt.Errorf("%d validation target values for %d samples of %d outputs", len(cfg.Validation.Y), rows, outputs)
	}
	v := &validation{order: make([]int, rows)}
	for i := range v.order {
		v.order[i] = i
	}
	if v.x, err = net.upload(rows, cfg.Inputs, m.normalize(cfg.Validation.X)); err != nil {
		return nil, fmt.Errorf("uploading validation inputs: %w", err)
	}
	if v.y, err = net.upload(rows, outputs, cfg.Validation.Y); err != nil {
		return nil, fmt.Errorf("uploading validation targets: %w", err)
	}
	if v.acc, err = net.alloc(1, 1); err != nil {
		return nil, err
	}
	return v, nil
}

// loss is the mean loss of the validation data under the network's current
// weights, in batches of the training's size (whose buffers it reuses).
func (v *validation) loss(net *network, batch int) (float64, error) {
	host := []float32{0}
	if err := net.be.Upload(v.acc, host); err != nil {
		return 0, err
	}
	for start := 0; start < len(v.order); start += batch {
		idx := v.order[start:min(start+batch, len(v.order))]
		bb, err := net.buffers(len(idx))
		if err != nil {
			return 0, err
		}
		if err := net.be.GatherRows(bb.x, v.x, idx); err != nil {
			return 0, fmt.Errorf("batch inputs: %w", err)
		}
		if err := net.be.GatherRows(bb.y, v.y, idx); err != nil {
			return 0, fmt.Errorf("batch targets: %w", err)
		}
		if err := net.forward(bb, validating, 0); err != nil {
			return 0, err
		}
		if err := net.lossGrad(bb, v.acc, false); err != nil {
			return 0, err
		}
	}
	if err := net.be.Download(host, v.acc); err != nil {
		return 0, err
	}
	return float64(host[0]) / float64(len(v.order)), nil
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
	if err := net.forward(bb, training, step); err != nil {
		return err
	}
	if err := net.lossGrad(bb, lossAcc, true); err != nil {
		return err
	}
	if err := net.backward(bb, step); err != nil {
		return err
	}
	return net.update(adam, int(step)+1)
}
