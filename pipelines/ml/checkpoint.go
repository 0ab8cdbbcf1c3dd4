package ml

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines"
)

// CheckpointParams are the run input fields that say how often a training step saves its
// checkpoint. Both ML pipelines embed them in their Params, so they read the same in either.
type CheckpointParams struct {
	// CheckpointEvery saves after every N-th epoch [10; 0: not by epoch count].
	CheckpointEvery int `json:"checkpoint_every"`
	// CheckpointSeconds saves after the first epoch that ends this long after the last save
	// [60; 0: not by time].
	CheckpointSeconds float64 `json:"checkpoint_seconds"`
}

// DefaultCheckpointParams are the defaults: every 10 epochs or every minute, whichever comes
// first, so a crash loses at most about a minute of training and a short training writes a
// handful of checkpoints.
func DefaultCheckpointParams() CheckpointParams {
	return CheckpointParams{CheckpointEvery: 10, CheckpointSeconds: 60}
}

// Check states the rules of the checkpoint fields, for DecodeParams.
func (p CheckpointParams) Check(check Check) {
	check(p.CheckpointEvery >= 0 && p.CheckpointEvery <= 1_000_000, "checkpoint_every must be between 0 and 1000000 epochs, got %d", p.CheckpointEvery)
	check(p.CheckpointSeconds >= 0 && p.CheckpointSeconds <= 86400, "checkpoint_seconds must be between 0 and 86400, got %v", p.CheckpointSeconds)
}

// checkpointMeta is the metadata of a checkpoint artifact: for people reading ml.artifacts,
// and the validation losses of its epochs, which the checkpoint's own format does not hold,
// so that a resumed training's loss curve is whole.
type checkpointMeta struct {
	Step           string    `json:"step"`
	Epoch          int       `json:"epoch"`
	ValidationLoss []float64 `json:"validation_loss,omitempty"`
}

// StepCheckpoint is where one training step of a run keeps its checkpoint: the run's
// artifact checkpoint_<step>, or checkpoint_<step>_<task> for a task of a map step (each
// element trains a model of its own), overwritten as training advances, so every attempt of
// the step (and a retried legacy chain) finds the same one. It is used by one training at a
// time.
type StepCheckpoint struct {
	artifacts *Artifacts
	runID     int64
	step      string
	// task is the map task's index, -1 for a step that is not mapped.
	task   int
	params CheckpointParams
	// id is the artifact's, once found or saved (0 until then).
	id int64
	// curve is the training's, whose validation losses a save keeps (nil: none).
	curve *Curve
}

// StepCheckpoint returns the checkpoint of the step in, saved as often as p says.
func (a *Artifacts) StepCheckpoint(in pipelines.Input, p CheckpointParams) *StepCheckpoint {
	task := -1
	if in.Task >= 0 && in.Item != nil {
		// A map task has its element; an Input without one (Task's zero value, from an engine
		// that predates map steps, or a test's literal) is the step's only training.
		task = in.Task
	}
	return &StepCheckpoint{artifacts: a, runID: in.RunID, step: in.Step, task: task, params: p}
}

func (c *StepCheckpoint) name() string {
	if c.task >= 0 {
		return fmt.Sprintf("checkpoint_%s_%d", c.step, c.task)
	}
	return "checkpoint_" + c.step
}

// load returns the step's checkpoint, nil when there is none, and why a checkpoint found
// cannot be resumed: a damaged one is no reason to fail the step, which trains afresh. It also
// returns the validation losses of the checkpoint's epochs (nil when it has none).
func (c *StepCheckpoint) load(ctx context.Context) (ck *kernels.Checkpoint, validation []float64, ignored string, err error) {
	row, err := c.artifacts.find(ctx, c.runID, c.name())
	if err != nil || row == nil {
		return nil, nil, "", err
	}
	c.id = row.ID
	if ck, err = kernels.LoadCheckpoint(row.Data); err != nil {
		return nil, nil, fmt.Sprintf("artifact %d (%s): %v", row.ID, c.name(), err), nil
	}
	var meta checkpointMeta
	if json.Unmarshal(row.Meta, &meta) == nil && len(meta.ValidationLoss) == ck.Epoch() {
		validation = meta.ValidationLoss
	}
	return ck, validation, "", nil
}

// save stores ck as the step's checkpoint.
func (c *StepCheckpoint) save(ctx context.Context, ck *kernels.Checkpoint) error {
	raw, err := ck.MarshalBinary()
	if err != nil {
		return fmt.Errorf("encoding the checkpoint of %s: %w", c.step, err)
	}
	meta := checkpointMeta{Step: c.step, Epoch: ck.Epoch()}
	if c.curve != nil && len(c.curve.Validation) >= ck.Epoch() {
		meta.ValidationLoss = c.curve.Validation[:ck.Epoch()]
	}
	id, err := c.artifacts.put(ctx, gen.PutArtifactParams{RunID: c.runID, Name: c.name(), Kind: "model", Data: raw}, meta)
	if err != nil {
		return err
	}
	c.id = id
	return nil
}

// policy is when kernels.Train saves to c.
func (c *StepCheckpoint) policy() kernels.Checkpoints {
	return kernels.Checkpoints{
		Save:     c.save,
		Every:    c.params.CheckpointEvery,
		Interval: time.Duration(c.params.CheckpointSeconds * float64(time.Second)),
	}
}
