package kernels

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type checkpointBundle struct {
	cfg  Config
	x, y []float32
}

// setupCheckpoint is the determinism test's training (dropout, shuffling,
// parallel MatMul) over six epochs of five batches.
func setupCheckpoint(t *testing.T) *checkpointBundle {
	t.Helper()
	x, y := determinismData(t)
	cfg := determinismConfig(11, 2)
	cfg.Epochs = 6
	return &checkpointBundle{cfg: cfg, x: x, y: y}
}

// trained is a finished training as bytes: marshaled weights hold every bit.
type trained struct {
	model  []byte
	losses []float64
}

func train(t *testing.T, cfg Config, x, y []float32) trained {
	t.Helper()
	m, losses, err := Train(context.Background(), cfg, x, y)
	require.NoError(t, err)
	b, err := m.MarshalBinary()
	require.NoError(t, err)
	return trained{model: b, losses: losses}
}

// requireBitIdentical compares two trainings bit for bit: weights and every epoch's loss.
func requireBitIdentical(t *testing.T, want, got trained, what string) {
	t.Helper()
	require.Equal(t, want.model, got.model, "%s: weights", what)
	require.Len(t, got.losses, len(want.losses), what)
	for i := range want.losses {
		require.Equal(t, math.Float64bits(want.losses[i]), math.Float64bits(got.losses[i]), "%s: epoch %d loss", what, i)
	}
}

// interruptedAfter trains cfg, cancels it as epoch k completes and returns
// the checkpoint the cancellation saved, through its bytes, as a store keeps it.
func interruptedAfter(t *testing.T, cfg Config, x, y []float32, k int) *Checkpoint {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var saved [][]byte
	cfg.Checkpoints = Checkpoints{Save: func(_ context.Context, c *Checkpoint) error {
		b, err := c.MarshalBinary()
		saved = append(saved, b)
		return err
	}}
	cfg.OnEpoch = func(e EpochStats) {
		if e.Epoch == k {
			cancel()
		}
	}
	_, _, err := Train(ctx, cfg, x, y)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, saved, 1, "one save: the cancellation's")
	c, err := LoadCheckpoint(saved[0])
	require.NoError(t, err)
	require.Equal(t, k, c.Epoch())
	return c
}

func TestResumedTrainingEndsWithTheWeightsOfAnUninterruptedOne(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	want := train(t, b.cfg, b.x, b.y)
	for k := 1; k < b.cfg.Epochs; k++ {
		cfg := b.cfg
		cfg.Resume = interruptedAfter(t, cfg, b.x, b.y, k)
		requireBitIdentical(t, want, train(t, cfg, b.x, b.y), fmt.Sprintf("resumed after epoch %d", k))
	}
}

// preempted is a CPU backend that cancels its training after a number of
// Adam updates: a preemption that lands in the middle of an epoch.
type preempted struct {
	*CPU
	updates, after int
	cancel         func()
}

func (p *preempted) AdamStep(w, g, m, v Tensor, ap AdamParams, t int) error {
	if p.updates++; p.updates == p.after {
		p.cancel()
	}
	return p.CPU.AdamStep(w, g, m, v, ap, t)
}

func TestCancellationMidEpochSavesTheLastCompletedEpoch(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	want := train(t, b.cfg, b.x, b.y)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := b.cfg
	// 300 rows in batches of 64 is 5 steps an epoch, each updating 3 layers'
	// weights and biases: cancel in the third step of epoch 3 (from 1).
	cfg.Backend = &preempted{CPU: &CPU{Workers: 2}, after: 6 * (2*5 + 3), cancel: cancel}
	var saved []*Checkpoint
	cfg.Checkpoints = Checkpoints{Every: 100, Save: func(ctx context.Context, c *Checkpoint) error {
		require.NoError(t, ctx.Err(), "the save after cancellation runs on a live context")
		deadline, ok := ctx.Deadline()
		require.True(t, ok, "and a bounded one")
		require.WithinDuration(t, time.Now().Add(DefaultCheckpointGrace), deadline, DefaultCheckpointGrace)
		saved = append(saved, c)
		return nil
	}}
	_, _, err := Train(ctx, cfg, b.x, b.y)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "train: epoch 2: context canceled")
	require.Len(t, saved, 1)
	require.Equal(t, 2, saved[0].Epoch(), "the epoch in progress is lost, no more")

	cfg = b.cfg
	cfg.Resume = saved[0]
	requireBitIdentical(t, want, train(t, cfg, b.x, b.y), "resumed after a preemption mid-epoch")
}

func TestCheckpointsAreSavedEveryNEpochsEveryIntervalAndAtTheEnd(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	b.cfg.Epochs = 7
	cases := []struct {
		name string
		ck   Checkpoints
		want []int
	}{
		{"every 2 epochs", Checkpoints{Every: 2}, []int{2, 4, 6, 7}},
		{"every epoch", Checkpoints{Every: 1}, []int{1, 2, 3, 4, 5, 6, 7}},
		{"an interval shorter than an epoch", Checkpoints{Interval: time.Nanosecond}, []int{1, 2, 3, 4, 5, 6, 7}},
		{"an interval longer than the training", Checkpoints{Interval: time.Hour}, []int{7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg
			cfg.Checkpoints = tc.ck
			var epochs []int
			cfg.Checkpoints.Save = func(_ context.Context, c *Checkpoint) error {
				epochs = append(epochs, c.Epoch())
				return nil
			}
			train(t, cfg, b.x, b.y)
			require.Equal(t, tc.want, epochs)
		})
	}
}

func TestASaveThatFailsBecauseOfTheCancellationIsRetriedWithGrace(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := b.cfg
	// Cancelled as epoch 3 ends, right before its periodic save, which a
	// store on ctx (Postgres) then refuses.
	cfg.OnEpoch = func(e EpochStats) {
		if e.Epoch == 3 {
			cancel()
		}
	}
	var saved []int
	cfg.Checkpoints = Checkpoints{Every: 1, Save: func(ctx context.Context, c *Checkpoint) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		saved = append(saved, c.Epoch())
		return nil
	}}
	_, _, err := Train(ctx, cfg, b.x, b.y)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, []int{1, 2, 3}, saved)
}

func TestAFailedSaveStopsTheTraining(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	cfg := b.cfg
	cfg.Checkpoints = Checkpoints{Every: 2, Save: func(context.Context, *Checkpoint) error { return errors.New("disk full") }}
	var epochs int
	cfg.OnEpoch = func(EpochStats) { epochs++ }
	_, _, err := Train(context.Background(), cfg, b.x, b.y)
	require.EqualError(t, err, "train: saving the checkpoint of epoch 2: disk full")
	require.Equal(t, 2, epochs)
}

func TestOnEpochReportsEveryEpochOfTheCall(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	var fresh []EpochStats
	cfg := b.cfg
	cfg.OnEpoch = func(e EpochStats) { fresh = append(fresh, e) }
	want := train(t, cfg, b.x, b.y)
	require.Len(t, fresh, 6)
	for i, e := range fresh {
		require.Equal(t, i+1, e.Epoch)
		require.Equal(t, 6, e.Epochs)
		require.Equal(t, 300, e.Samples)
		require.Zero(t, e.ResumedFrom)
		require.Equal(t, want.losses[i], e.Loss)
		require.Positive(t, e.Elapsed)
	}

	var resumed []EpochStats
	cfg = b.cfg
	cfg.Resume = interruptedAfter(t, cfg, b.x, b.y, 4)
	cfg.OnEpoch = func(e EpochStats) { resumed = append(resumed, e) }
	train(t, cfg, b.x, b.y)
	require.Len(t, resumed, 2, "a resumed training reports only the epochs it runs")
	require.Equal(t, 5, resumed[0].Epoch)
	require.Equal(t, 4, resumed[0].ResumedFrom)
}

func TestATrainingResumedAtItsLastEpochReturnsItsModel(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	want := train(t, b.cfg, b.x, b.y)
	var last *Checkpoint
	cfg := b.cfg
	cfg.Checkpoints = Checkpoints{Save: func(_ context.Context, c *Checkpoint) error { last = c; return nil }}
	requireBitIdentical(t, want, train(t, cfg, b.x, b.y), "with checkpoints on")
	require.Equal(t, 6, last.Epoch())

	cfg = b.cfg
	cfg.Resume = last
	var epochs int
	cfg.OnEpoch = func(EpochStats) { epochs++ }
	requireBitIdentical(t, want, train(t, cfg, b.x, b.y), "resumed at the end")
	require.Zero(t, epochs, "nothing was left to train")

	// A finished training resumed with more epochs is the longer training.
	cfg.Epochs = 9
	longer := b.cfg
	longer.Epochs = 9
	requireBitIdentical(t, train(t, longer, b.x, b.y), train(t, cfg, b.x, b.y), "trained on to 9 epochs")
}

func TestResumeRefusesTheCheckpointOfAnotherTraining(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	c := interruptedAfter(t, b.cfg, b.x, b.y, 3)
	otherY := append([]float32(nil), b.y...)
	otherY[0], otherY[1] = otherY[1], otherY[0]
	cases := []struct {
		name   string
		mutate func(*Config)
		y      []float32
		want   string
	}{
		{"another seed", func(c *Config) { c.Seed++ }, b.y, "other data, another network"},
		{"another batch size", func(c *Config) { c.BatchSize = 32 }, b.y, "other data, another network"},
		{"another learning rate", func(c *Config) { c.Adam.LR = 0.01 }, b.y, "other data, another network"},
		{"another layer", func(c *Config) { c.Layers[0].Units = 64 }, b.y, "other data, another network"},
		{"other targets", func(*Config) {}, otherY, "other data, another network"},
		{"fewer epochs than it has", func(c *Config) { c.Epochs = 2 }, b.y, "at epoch 3, past the 2 epochs configured"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg
			cfg.Layers = append([]LayerConfig(nil), b.cfg.Layers...)
			tc.mutate(&cfg)
			cfg.Resume = c
			_, _, err := Train(context.Background(), cfg, b.x, tc.y)
			require.ErrorIs(t, err, ErrCheckpointMismatch)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestCheckpointRoundTripKeepsEveryBit(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	c := interruptedAfter(t, b.cfg, b.x, b.y, 2)
	raw, err := c.MarshalBinary()
	require.NoError(t, err)
	again, err := LoadCheckpoint(raw)
	require.NoError(t, err)
	require.Equal(t, c, again)
	raw2, err := again.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, raw, raw2)
}

func TestLoadCheckpointRejectsDamagedBytes(t *testing.T) {
	t.Parallel()
	b := setupCheckpoint(t)
	raw, err := interruptedAfter(t, b.cfg, b.x, b.y, 2).MarshalBinary()
	require.NoError(t, err)
	modelSize := int(binary.LittleEndian.Uint32(raw[checkpointHeaderSize-4:]))
	orderAt := len(raw) - 4 - bestHeaderSize - 8*2 - 4*300
	mutate := func(f func([]byte) []byte) []byte { return mutated(raw, f) }
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "bad magic"},
		{"a model", raw[checkpointHeaderSize : checkpointHeaderSize+modelSize], "bad magic"},
		{"header only", raw[:20], "truncated: 20 bytes, header alone needs 44"},
		{"truncated model", raw[:checkpointHeaderSize+10], "truncated in the model"},
		{"truncated state", raw[:len(raw)-9], "truncated"},
		{"trailing bytes", append(append([]byte(nil), raw...), 0), "1 trailing bytes"},
		{"flipped moment bit", mutate(func(d []byte) []byte { d[checkpointHeaderSize+modelSize+5] ^= 1; return d }), "checksum mismatch"},
		{"future version", mutate(func(d []byte) []byte { d[4] = 3; return d }), "unsupported version 3"},
		{"version 1, without best weights", mutate(func(d []byte) []byte { d[4] = 1; return d }), "unsupported version 1 (this build reads 2)"},
		{"a best epoch without weights", mutate(func(d []byte) []byte {
			d[orderAt+4*300+8*2] = 1
			return resigned(d)
		}), "best epoch 1 of 2 epochs, 0 bytes of best weights"},
		{"damaged model", mutate(func(d []byte) []byte { d[checkpointHeaderSize+30] ^= 1; return resigned(d) }), "the model: invalid model data: checksum mismatch"},
		{"order not a permutation", mutate(func(d []byte) []byte {
			copy(d[orderAt:orderAt+4], d[orderAt+4:orderAt+8])
			return resigned(d)
		}), "not a permutation of 300 samples"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &Checkpoint{}
			err := c.UnmarshalBinary(tc.data)
			require.ErrorIs(t, err, ErrInvalidCheckpoint)
			require.ErrorContains(t, err, tc.want)
			require.Nil(t, c.model, "a failed unmarshal leaves the checkpoint untouched")
		})
	}
	for n := 0; n < len(raw); n += 7 {
		_, err := LoadCheckpoint(raw[:n])
		require.ErrorIs(t, err, ErrInvalidCheckpoint, "prefix of %d bytes", n)
	}
}
