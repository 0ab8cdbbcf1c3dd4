package ml_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// progress records a training's reports and, at epoch cancelAt, cancels it: the worker
// cancelling a handler to release its step.
type progress struct {
	mu       sync.Mutex
	reports  []pipelines.Progress
	cancelAt int64
	cancel   func()
}

func (p *progress) ReportProgress(r pipelines.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reports = append(p.reports, r)
	if r.Done == p.cancelAt {
		p.cancel()
	}
}

type checkpointBundle struct {
	*testBundle
	artifacts *ml.Artifacts
	cfg       kernels.Config
	x, y      []float32
}

// setupCheckpoint is a database and a small regression with dropout over eight epochs.
func setupCheckpoint(t *testing.T) *checkpointBundle {
	t.Helper()
	b := setup(t)
	const rows = 200
	var x, y []float32
	for i := 0; i < rows; i++ {
		a, c := float32(i%17)/17, float32(i%5)/5
		x = append(x, a, c, a*c, float32(i%3))
		y = append(y, float32(0.5+0.4*math.Sin(float64(3*a-c))))
	}
	cfg := kernels.SeedNetwork(4)
	cfg.Epochs, cfg.Seed = 8, 3
	return &checkpointBundle{testBundle: b, artifacts: ml.NewArtifacts(b.Pool), cfg: cfg, x: x, y: y}
}

// train runs one attempt of the model_training step of run with the given checkpoint
// settings, its progress reported to p; it returns the weights' bytes.
func (b *checkpointBundle) train(t *testing.T, ctx context.Context, run int64, prm ml.CheckpointParams, p *progress) ([]byte, ml.TrainStats, error) {
	t.Helper()
	ck := b.artifacts.StepCheckpoint(pipelines.Input{RunID: run, Step: "model_training"}, prm)
	m, st, err := ml.NewTrainer(nil).Train(pipelines.WithProgress(ctx, p), b.cfg, b.x, b.y, ck)
	if err != nil {
		return nil, st, err
	}
	raw, err := m.MarshalBinary()
	require.NoError(t, err)
	return raw, st, nil
}

// checkpointEpoch is the epoch of run's checkpoint artifact as its metadata says.
func (b *checkpointBundle) checkpointEpoch(t *testing.T, run int64) int {
	t.Helper()
	return b.Count(t, "SELECT (meta ->> 'epoch')::int FROM ml.artifacts WHERE run_id = $1 AND name = 'checkpoint_model_training' AND kind = 'model'", run)
}

func TestAnInterruptedTrainingStepResumesToTheWeightsOfAnUninterruptedOne(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	every3 := ml.CheckpointParams{CheckpointEvery: 3}

	want, fresh, err := b.train(t, b.Ctx, b.run(t), every3, &progress{})
	require.NoError(t, err)
	require.Zero(t, fresh.ResumedFromEpoch)
	require.Positive(t, fresh.Checkpoint)

	// The first attempt is cancelled as epoch 5 ends: it saves epoch 5 (3 was saved on schedule)
	// and returns the context's error.
	run := b.run(t)
	ctx, cancel := context.WithCancel(b.Ctx)
	defer cancel()
	_, _, err = b.train(t, ctx, run, every3, &progress{cancelAt: 5, cancel: cancel})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 5, b.checkpointEpoch(t, run))

	// The retry finds the checkpoint and ends with the same weights, bit for bit.
	p := &progress{}
	got, resumed, err := b.train(t, b.Ctx, run, every3, p)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, 5, resumed.ResumedFromEpoch)
	require.Equal(t, fresh.FirstLoss, resumed.FirstLoss, "the losses of the resumed epochs come with the checkpoint")
	require.Equal(t, fresh.FinalLoss, resumed.FinalLoss)
	require.Equal(t, 8, b.checkpointEpoch(t, run), "the last epoch is saved too")
	raw, err := json.Marshal(resumed)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"resumed_from_epoch":5`)

	// It reported the epochs it trained, with their loss, speed and time left.
	require.Len(t, p.reports, 3)
	for i, r := range p.reports {
		require.EqualValues(t, 6+i, r.Done)
		require.EqualValues(t, 8, r.Total)
		require.Equal(t, "epoch", r.Unit)
		require.Contains(t, r.Message, "(resumed at epoch 5)")
		require.Contains(t, r.Metrics, "loss")
		require.Positive(t, r.Metrics["samples_per_sec"])
	}
	require.Equal(t, fresh.FinalLoss, p.reports[2].Metrics["loss"])
	require.Positive(t, p.reports[0].ETA)
	require.Zero(t, p.reports[2].ETA, "nothing left after the last epoch")
}

func TestATrainingStepIgnoresADamagedOrForeignCheckpoint(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	run := b.run(t)
	want, _, err := b.train(t, b.Ctx, run, ml.DefaultCheckpointParams(), &progress{})
	require.NoError(t, err)

	// One flipped bit: the checksum catches it, and the step trains afresh rather than fail.
	b.Exec(t, `UPDATE ml.artifacts SET data = set_byte(data, 100, get_byte(data, 100) # 1)
	            WHERE run_id = $1 AND name = 'checkpoint_model_training'`, run)
	got, st, err := b.train(t, b.Ctx, run, ml.DefaultCheckpointParams(), &progress{})
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Zero(t, st.ResumedFromEpoch)
	require.Contains(t, st.CheckpointIgnored, "checksum mismatch")

	// The data changed between attempts: the checkpoint is another training's.
	b.y[0] += 0.1
	_, st, err = b.train(t, b.Ctx, run, ml.DefaultCheckpointParams(), &progress{})
	require.NoError(t, err)
	require.Zero(t, st.ResumedFromEpoch)
	require.Contains(t, st.CheckpointIgnored, "checkpoint does not match this training")
}

func TestCheckpointSettingsAreReadFromTheRunInput(t *testing.T) {
	t.Parallel()
	type params struct {
		Epochs int `json:"epochs"`
		ml.CheckpointParams
	}
	decode := func(input string) (params, error) {
		return ml.DecodeParams(pipelines.Input{Run: json.RawMessage(input)}, params{Epochs: 5, CheckpointParams: ml.DefaultCheckpointParams()},
			func(p params, check ml.Check) { p.CheckpointParams.Check(check) })
	}
	p, err := decode(`{"epochs": 7}`)
	require.NoError(t, err)
	require.Equal(t, ml.CheckpointParams{CheckpointEvery: 10, CheckpointSeconds: 60}, p.CheckpointParams)

	p, err = decode(`{"checkpoint_every": 0, "checkpoint_seconds": 0.5}`)
	require.NoError(t, err)
	require.Equal(t, ml.CheckpointParams{CheckpointEvery: 0, CheckpointSeconds: 0.5}, p.CheckpointParams)

	_, err = decode(`{"checkpoint_every": -1, "checkpoint_seconds": 1e9}`)
	require.EqualError(t, err, "run input: checkpoint_every must be between 0 and 1000000 epochs, got -1\n"+
		"checkpoint_seconds must be between 0 and 86400, got 1e+09")
}

// oom is a backend out of device memory: a training on it fails after looking up its
// checkpoint and before saving any.
type oom struct{ *kernels.CPU }

func (oom) Alloc(int, int) (kernels.Tensor, error) { return nil, errors.New("out of memory") }

func TestLookingUpACheckpointChangesNothing(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	onOOM := func(run int64) error {
		ck := b.artifacts.StepCheckpoint(pipelines.Input{RunID: run, Step: "model_training"}, ml.DefaultCheckpointParams())
		_, _, err := ml.NewTrainer(oom{kernels.NewCPU()}).Train(b.Ctx, b.cfg, b.x, b.y, ck)
		return err
	}

	// No checkpoint: none appears.
	run := b.run(t)
	require.ErrorContains(t, onOOM(run), "out of memory")
	require.Zero(t, b.Count(t, "SELECT count(*) FROM ml.artifacts WHERE run_id = $1", run))

	// A checkpoint: it stays as it was, bytes, metadata and id.
	ctx, cancel := context.WithCancel(b.Ctx)
	defer cancel()
	_, _, err := b.train(t, ctx, run, ml.CheckpointParams{}, &progress{cancelAt: 2, cancel: cancel})
	require.ErrorIs(t, err, context.Canceled)
	const state = "SELECT id || md5(data) || meta::text FROM ml.artifacts WHERE run_id = $1 AND name = 'checkpoint_model_training'"
	var before, after string
	require.NoError(t, b.Pool.QueryRow(b.Ctx, state, run).Scan(&before))
	require.ErrorContains(t, onOOM(run), "out of memory")
	require.NoError(t, b.Pool.QueryRow(b.Ctx, state, run).Scan(&after))
	require.Equal(t, before, after)
	require.Equal(t, 2, b.checkpointEpoch(t, run))
}

func TestEachTaskOfAMapStepKeepsItsOwnCheckpoint(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	run := b.run(t)
	trainAs := func(in pipelines.Input, cfg kernels.Config) ml.TrainStats {
		t.Helper()
		in.RunID, in.Step = run, "model_training"
		_, st, err := ml.NewTrainer(nil).Train(b.Ctx, cfg, b.x, b.y, b.artifacts.StepCheckpoint(in, ml.DefaultCheckpointParams()))
		require.NoError(t, err)
		return st
	}
	other := b.cfg
	other.Adam.LR = 0.01

	// Two elements of a sweep, trained with different configs, and the step unmapped (Task -1,
	// or an Input that predates map steps): three checkpoints, none mistaken for another's.
	first := trainAs(pipelines.Input{Task: 0, Item: json.RawMessage(`{}`)}, b.cfg)
	second := trainAs(pipelines.Input{Task: 1, Item: json.RawMessage(`{}`)}, other)
	unmapped := trainAs(pipelines.Input{Task: -1}, b.cfg)
	require.Empty(t, second.CheckpointIgnored, "task 1 did not find task 0's checkpoint")
	require.Empty(t, unmapped.CheckpointIgnored)
	require.NotEqual(t, first.Checkpoint, second.Checkpoint)
	require.Equal(t, 3, b.Count(t, `SELECT count(*) FROM ml.artifacts WHERE run_id = $1
	                                 AND name IN ('checkpoint_model_training_0', 'checkpoint_model_training_1', 'checkpoint_model_training')`, run))
	require.Equal(t, 8, b.checkpointEpoch(t, run), "the unmapped step's checkpoint keeps its name")

	// A retried task finds its own finished checkpoint.
	again := trainAs(pipelines.Input{Task: 1, Item: json.RawMessage(`{}`)}, other)
	require.Equal(t, 8, again.ResumedFromEpoch)
	require.Equal(t, second.FinalLoss, again.FinalLoss)
}
