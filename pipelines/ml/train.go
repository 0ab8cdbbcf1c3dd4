package ml

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines"
)

// Trainer trains models on one backend, one training at a time.
type Trainer struct {
	backend kernels.Backend
	turn    chan struct{}
}

// NewTrainer returns a Trainer on backend; nil means a fresh CPU backend per training, which
// lets trainings run side by side.
func NewTrainer(backend kernels.Backend) *Trainer {
	t := &Trainer{backend: backend}
	if backend != nil {
		t.turn = make(chan struct{}, 1)
	}
	return t
}

// Backend names the backend trainings run on.
func (t *Trainer) Backend() string {
	if t == nil || t.backend == nil {
		return kernels.NewCPU().Name()
	}
	return t.backend.Name()
}

// TrainStats describes one training.
type TrainStats struct {
	Backend string `json:"backend"`
	Samples int    `json:"samples"`
	Epochs  int    `json:"epochs"`
	Batch   int    `json:"batch_size"`
	// ResumedFromEpoch is the epoch of the step's checkpoint the training went on from; 0 when
	// it started afresh.
	ResumedFromEpoch int `json:"resumed_from_epoch"`
	// Seconds and SamplesPerSec count the epochs this attempt trained, not those it resumed.
	Seconds       float64 `json:"seconds"`
	SamplesPerSec float64 `json:"samples_per_sec"`
	// WaitSeconds is how long the training waited for the backend.
	WaitSeconds float64 `json:"wait_seconds,omitempty"`
	FirstLoss   float64 `json:"first_epoch_loss"`
	FinalLoss   float64 `json:"final_epoch_loss"`
	// FinalValidationLoss is the last epoch's loss on the validation rows, when there were any.
	FinalValidationLoss float64 `json:"final_validation_loss,omitempty"`
	// Curve is every epoch's loss. Steps keep it with the model artifact, not in their outputs,
	// which stay small.
	Curve Curve `json:"-"`
	// Checkpoint is the id of the step's checkpoint artifact, when it has one.
	Checkpoint int64 `json:"checkpoint,omitempty"`
	// CheckpointIgnored says why a checkpoint that was found was not resumed (damaged, or of
	// another training: the step's data changed between attempts).
	CheckpointIgnored string `json:"checkpoint_ignored,omitempty"`
}

// Train runs kernels.Train with cfg on the trainer's backend (cfg.Backend is overwritten),
// waiting for the backend's turn, or for ctx to end. It reports each epoch with
// pipelines.ReportProgress and records the loss curve, with cfg.Validation's losses when it has
// rows, in the stats. With ck it resumes from the step's checkpoint, if there is one of this
// training, and saves checkpoints as ck's parameters say; when ctx ends mid-training it saves
// the last completed epoch before returning ctx's error.
func (t *Trainer) Train(ctx context.Context, cfg kernels.Config, x, y []float32, ck *StepCheckpoint) (*kernels.Model, TrainStats, error) {
	var st TrainStats
	validating := len(cfg.Validation.X) > 0
	if ck != nil {
		// Before the backend's turn, so that the device is not held for database round trips.
		var err error
		if cfg.Resume, st.Curve.Validation, st.CheckpointIgnored, err = ck.load(ctx); err != nil {
			return nil, TrainStats{}, err
		}
		if cfg.Resume != nil && validating && st.Curve.Validation == nil {
			// A checkpoint without its epochs' validation losses: the curve would have a hole.
			validating = false
		}
		cfg.Checkpoints = ck.policy()
		ck.curve = &st.Curve
	}
	report := reportEpochs(ctx, validating)
	cfg.OnEpoch = func(e kernels.EpochStats) {
		if validating {
			st.Curve.Validation = append(st.Curve.Validation[:e.Epoch-1], e.ValidationLoss)
		}
		report(e)
	}
	waitStart := time.Now()
	if t != nil && t.turn != nil {
		select {
		case t.turn <- struct{}{}:
			defer func() { <-t.turn }()
		case <-ctx.Done():
			return nil, TrainStats{}, fmt.Errorf("waiting for the %s backend: %w", t.backend.Name(), ctx.Err())
		}
		cfg.Backend = t.backend
	} else {
		cfg.Backend = kernels.NewCPU()
	}
	wait := time.Since(waitStart)
	start := time.Now()
	model, losses, err := kernels.Train(ctx, cfg, x, y)
	if errors.Is(err, kernels.ErrCheckpointMismatch) {
		// The checkpoint is of another training of this step: its input changed between
		// attempts (a legacy chain that collected its data again). Starting afresh is right;
		// failing would fail every retry the same way.
		st.CheckpointIgnored, cfg.Resume, st.Curve.Validation = err.Error(), nil, nil
		validating = len(cfg.Validation.X) > 0
		model, losses, err = kernels.Train(ctx, cfg, x, y)
	}
	if err != nil {
		return nil, TrainStats{}, err
	}
	elapsed := time.Since(start)
	st.Backend, st.Samples, st.Epochs, st.Batch = cfg.Backend.Name(), len(x)/cfg.Inputs, cfg.Epochs, cfg.BatchSize
	st.Seconds, st.WaitSeconds = elapsed.Seconds(), wait.Seconds()
	st.FirstLoss, st.FinalLoss = losses[0], losses[len(losses)-1]
	st.Curve.Train = losses
	if !validating {
		st.Curve.Validation = nil
	}
	if v := st.Curve.Validation; len(v) > 0 {
		st.FinalValidationLoss = v[len(v)-1]
		if cfg.KeepBest {
			// kernels kept the first epoch of the lowest validation loss.
			best := 0
			for i, l := range v {
				if l < v[best] {
					best = i
				}
			}
			st.Curve.BestEpoch = best + 1
		}
	}
	if cfg.Resume != nil {
		st.ResumedFromEpoch = cfg.Resume.Epoch()
	}
	if ck != nil {
		st.Checkpoint = ck.id
	}
	if elapsed > 0 {
		st.SamplesPerSec = float64(st.Samples*(cfg.Epochs-st.ResumedFromEpoch)) / elapsed.Seconds()
	}
	return model, st, nil
}

// reportEpochs is the OnEpoch of a training step: a progress report per epoch (with its
// validation loss when validating), its speed and time left measured over the epochs this
// attempt trained.
func reportEpochs(ctx context.Context, validating bool) func(kernels.EpochStats) {
	return func(e kernels.EpochStats) {
		p := pipelines.Progress{
			Done: int64(e.Epoch), Total: int64(e.Epochs), Unit: "epoch",
			Message: fmt.Sprintf("epoch %d/%d, loss %.4g", e.Epoch, e.Epochs, e.Loss),
			Metrics: map[string]float64{"loss": e.Loss},
		}
		if validating {
			p.Message += fmt.Sprintf(", validation %.4g", e.ValidationLoss)
			p.Metrics["validation_loss"] = e.ValidationLoss
		}
		if e.ResumedFrom > 0 {
			p.Message += fmt.Sprintf(" (resumed at epoch %d)", e.ResumedFrom)
		}
		if ran := e.Epoch - e.ResumedFrom; e.Elapsed > 0 {
			p.Metrics["samples_per_sec"] = float64(e.Samples*ran) / e.Elapsed.Seconds()
			p.ETA = e.Elapsed / time.Duration(ran) * time.Duration(e.Epochs-e.Epoch)
		}
		pipelines.ReportProgress(ctx, p)
	}
}

// Architecture describes a training config for people (ml.models.architecture).
func Architecture(cfg kernels.Config) map[string]any {
	return map[string]any{
		"inputs": cfg.Inputs, "layers": cfg.Layers, "loss": cfg.Loss, "optimizer": "adam", "adam": cfg.Adam,
		"epochs": cfg.Epochs, "batch_size": cfg.BatchSize, "seed": cfg.Seed, "keep_best": cfg.KeepBest,
	}
}

// ModelMeta is the metadata of a trained model's artifact: its training config for people, and
// its loss curve, which deployment stores with the model.
type ModelMeta struct {
	Architecture map[string]any `json:"architecture"`
	Curve        Curve          `json:"curve"`
}
