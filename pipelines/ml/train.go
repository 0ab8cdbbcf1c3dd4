package ml

import (
	"context"
	"fmt"
	"time"

	"github.com/quantumflow/qflow/kernels"
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
	Backend string  `json:"backend"`
	Samples int     `json:"samples"`
	Epochs  int     `json:"epochs"`
	Batch   int     `json:"batch_size"`
	Seconds float64 `json:"seconds"`
	// SamplesPerSec counts every sample of every epoch.
	SamplesPerSec float64 `json:"samples_per_sec"`
	// WaitSeconds is how long the training waited for the backend.
	WaitSeconds float64 `json:"wait_seconds,omitempty"`
	FirstLoss   float64 `json:"first_epoch_loss"`
	FinalLoss   float64 `json:"final_epoch_loss"`
}

// Train runs kernels.Train with cfg on the trainer's backend (cfg.Backend is overwritten),
// waiting for the backend's turn, or for ctx to end.
func (t *Trainer) Train(ctx context.Context, cfg kernels.Config, x, y []float32) (*kernels.Model, TrainStats, error) {
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
	if err != nil {
		return nil, TrainStats{}, err
	}
	elapsed := time.Since(start)
	samples := len(x) / cfg.Inputs
	st := TrainStats{
		Backend: cfg.Backend.Name(), Samples: samples, Epochs: cfg.Epochs, Batch: cfg.BatchSize,
		Seconds: elapsed.Seconds(), WaitSeconds: wait.Seconds(),
		FirstLoss: losses[0], FinalLoss: losses[len(losses)-1],
	}
	if elapsed > 0 {
		st.SamplesPerSec = float64(samples*cfg.Epochs) / elapsed.Seconds()
	}
	return model, st, nil
}

// Architecture describes a training config for people (ml.models.architecture).
func Architecture(cfg kernels.Config) map[string]any {
	return map[string]any{
		"inputs": cfg.Inputs, "layers": cfg.Layers, "loss": cfg.Loss, "optimizer": "adam", "adam": cfg.Adam,
		"epochs": cfg.Epochs, "batch_size": cfg.BatchSize, "seed": cfg.Seed,
	}
}
