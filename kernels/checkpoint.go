package kernels

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math"
	"time"
)

// Checkpoint is a training stopped between two epochs, complete enough that
// Train, given it as Config.Resume with the same config and data, goes on to
// exactly the weights the uninterrupted training reaches (bit for bit on the
// CPU backend). It holds:
//
//   - the weights and the input normalization, as a Model;
//   - Adam's first and second moments of every weight and bias, and its step
//     count (the minibatches done, which is also the bias correction's t);
//   - the number of epochs completed and their losses;
//   - the state of the random streams: the shuffler's state and the batch
//     order it permutes in place each epoch. Dropout masks are a function of
//     the seed and the step count (DropoutKeep), and weight init happens once
//     before the first epoch, so nothing else is random;
//   - with Config.KeepBest, the weights of the epoch with the lowest
//     validation loss so far, that epoch and its loss.
//
// It also carries a fingerprint of the config (less Epochs and Backend) and
// the data, so that a checkpoint is never resumed by another training.
// A Checkpoint is immutable once Train hands it out.
type Checkpoint struct {
	fingerprint uint64
	epoch       int
	step        uint64
	shuffle     uint64
	model       *Model
	// moments holds, per layer, Adam's m and v of the weights, then m and v
	// of the bias, concatenated in that order (see netLayer.adamState).
	moments [][]float32
	order   []int
	losses  []float64
	// best, bestEpoch and bestLoss are trainState's (nil, 0, 0 without KeepBest).
	best      *Model
	bestEpoch int
	bestLoss  float64
}

// Epoch is the number of epochs the checkpointed training had completed.
func (c *Checkpoint) Epoch() int { return c.epoch }

// ErrCheckpointMismatch is wrapped by the error Train returns when
// Config.Resume was written by a training of other data, another network,
// other optimizer settings, batch size or seed, or is past Config.Epochs.
var ErrCheckpointMismatch = errors.New("checkpoint does not match this training")

// ErrInvalidCheckpoint is wrapped by every error UnmarshalBinary returns for
// bytes that are not a checkpoint this version can read.
var ErrInvalidCheckpoint = errors.New("invalid checkpoint data")

func invalidCheckpoint(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidCheckpoint, fmt.Sprintf(format, args...))
}

var checkpointFormat = binaryFormat{
	what: "training checkpoint", magic: checkpointMagic, version: checkpointVersion,
	headerSize: checkpointHeaderSize, invalid: invalidCheckpoint,
}

// Checkpoints says when Train saves a Checkpoint and where to. Train saves
// after every Every-th epoch, after the first epoch that ends Interval or
// more after the last save (or the start), after the last epoch (so that a
// step retried after its training finished returns at once), and when ctx
// ends mid-training: then it saves the last epoch it completed, if that is
// not saved yet, so an interrupted training loses at most the epoch in
// progress.
//
// To have the last completed epoch at hand when ctx ends, Train downloads
// the weights and Adam moments after every epoch while checkpoints are on:
// three times the weights' size per epoch, little next to an epoch's batches.
type Checkpoints struct {
	// Save stores a checkpoint; nil turns checkpoints off. Train stops with
	// Save's error. Save may keep c: Train never modifies a checkpoint.
	Save func(ctx context.Context, c *Checkpoint) error
	// Every saves after every Every-th epoch, counted from the first epoch
	// of the training, not of this call [0: not by epoch count].
	Every int
	// Interval saves after the first epoch that ends Interval or more after
	// the last save [0: not by time].
	Interval time.Duration
	// Grace bounds the save after ctx has ended, which runs on a context
	// that is no longer cancelled with ctx [DefaultCheckpointGrace].
	Grace time.Duration
}

// DefaultCheckpointGrace is the time the save after cancellation gets when
// Checkpoints.Grace is 0. It stays under the second a qflow worker waits for
// a cancelled handler before abandoning it.
const DefaultCheckpointGrace = 800 * time.Millisecond

func (c Checkpoints) validate() error {
	if c.Every < 0 {
		return fmt.Errorf("checkpoints every %d epochs, want >= 0", c.Every)
	}
	if c.Interval < 0 || c.Grace < 0 {
		return fmt.Errorf("checkpoint interval %s and grace %s, want >= 0", c.Interval, c.Grace)
	}
	return nil
}

// due reports whether the checkpoint of epoch (completed, from 1) is saved.
func (c Checkpoints) due(epoch, epochs int, sinceSave time.Duration) bool {
	return epoch == epochs || (c.Every > 0 && epoch%c.Every == 0) || (c.Interval > 0 && sinceSave >= c.Interval)
}

// saveInterrupted saves the last completed epoch after ctx ended, on a
// context that outlives ctx by at most Grace, since the caller (a worker
// releasing the step) is waiting for Train to return.
func (c Checkpoints) saveInterrupted(ctx context.Context, ck *Checkpoint) error {
	grace := c.Grace
	if grace == 0 {
		grace = DefaultCheckpointGrace
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := c.Save(sctx, ck); err != nil {
		return fmt.Errorf("saving the checkpoint of epoch %d after cancellation: %w", ck.epoch, err)
	}
	return nil
}

// EpochStats is what Train tells Config.OnEpoch after each epoch.
type EpochStats struct {
	// Epoch counts the epochs completed, from 1; Epochs is the number configured.
	Epoch, Epochs int
	// Loss is the epoch's mean training loss, with dropout active.
	Loss float64
	// ValidationLoss is the mean loss on Config.Validation after the epoch,
	// without dropout; 0 when there is no validation data.
	ValidationLoss float64
	// Samples is the number of training samples; an epoch sees each once.
	Samples int
	// ResumedFrom is the epoch this call of Train started at: 0, or the
	// epoch of Config.Resume.
	ResumedFrom int
	// Elapsed is the time since this call of Train began its first epoch.
	Elapsed time.Duration
}

// fingerprint identifies what a training's result depends on besides its
// epoch count and backend: the network, loss, optimizer settings, batch size,
// seed and data. FNV-1a, because it is fixed across Go versions and processes.
func fingerprint(cfg Config, x, y []float32) uint64 {
	h := fnv.New64a()
	le := binary.LittleEndian
	buf := make([]byte, 0, 4096)
	flush := func(need int) {
		if len(buf)+need > cap(buf) {
			_, _ = h.Write(buf) // a hash.Hash never fails
			buf = buf[:0]
		}
	}
	buf = le.AppendUint32(buf, uint32(cfg.Inputs))
	buf = append(buf, byte(cfg.Loss))
	buf = le.AppendUint32(buf, uint32(len(cfg.Layers)))
	for _, l := range cfg.Layers {
		buf = le.AppendUint32(buf, uint32(l.Units))
		buf = append(buf, byte(l.Activation))
		buf = le.AppendUint32(buf, math.Float32bits(l.Dropout))
	}
	for _, f := range []float32{cfg.Adam.LR, cfg.Adam.Beta1, cfg.Adam.Beta2, cfg.Adam.Eps} {
		buf = le.AppendUint32(buf, math.Float32bits(f))
	}
	buf = le.AppendUint64(buf, uint64(cfg.BatchSize))
	buf = le.AppendUint64(buf, cfg.Seed)
	if cfg.KeepBest {
		// Only when set, so that other trainings keep the fingerprints they had.
		buf = append(buf, "keep best"...)
	}
	for _, v := range [][]float32{x, y} {
		flush(8)
		buf = le.AppendUint64(buf, uint64(len(v)))
		for _, f := range v {
			flush(4)
			buf = le.AppendUint32(buf, math.Float32bits(f))
		}
	}
	_, _ = h.Write(buf)
	return h.Sum64()
}

// The serialized checkpoint, version 2, all integers and floats little-endian:
//
//	magic        "QFCK"
//	version      uint16 (1)
//	reserved     uint16 (0)
//	fingerprint  uint64
//	epoch        uint32 (epochs completed)
//	step         uint64 (minibatches done: Adam's step count)
//	shuffle      uint64 (the shuffler's state)
//	samples      uint32
//	model bytes  uint32, then the model in its own format (MarshalBinary,
//	             version 1, with its own checksum): weights and normalization
//	per layer:   Adam m and v of the weights (in×units float32 each, row-major),
//	             then m and v of the bias (units float32 each)
//	order        samples uint32: the batch order after the last shuffle
//	losses       epoch float64: the mean loss of every epoch completed
//	best epoch   uint32 (0 without KeepBest), then its validation loss float64
//	best bytes   uint32 (0 without KeepBest), then the best weights as a model
//	crc32        uint32, IEEE, of every byte before it
//
// Version 1 had no best section; this build reads only version 2, and a step
// finding a version 1 checkpoint trains afresh.
// Embedding the model format keeps one definition of how weights are
// written; the outer checksum covers the state around it.
const (
	checkpointMagic      = "QFCK"
	checkpointVersion    = 2
	checkpointHeaderSize = 4 + 2 + 2 + 8 + 4 + 8 + 8 + 4 + 4
	// maxCheckpointEpochs and maxSamples reject absurd headers before any allocation.
	maxCheckpointEpochs = 1 << 24
	maxSamples          = 1 << 31
	// bestHeaderSize is the best epoch, its loss and the best weights' size.
	bestHeaderSize = 4 + 8 + 4
)

// MarshalBinary encodes the checkpoint in the versioned format above.
func (c *Checkpoint) MarshalBinary() ([]byte, error) {
	if c == nil || c.model == nil {
		return nil, errors.New("marshaling checkpoint: empty checkpoint")
	}
	model, err := c.model.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshaling checkpoint: %w", err)
	}
	var best []byte
	if c.best != nil {
		if best, err = c.best.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("marshaling checkpoint: the best weights: %w", err)
		}
	}
	size := checkpointHeaderSize + len(model) + 4*len(c.order) + 8*len(c.losses) + bestHeaderSize + len(best) + 4
	for _, m := range c.moments {
		size += 4 * len(m)
	}
	le := binary.LittleEndian
	buf := make([]byte, 0, size)
	buf = append(buf, checkpointMagic...)
	buf = le.AppendUint16(buf, checkpointVersion)
	buf = le.AppendUint16(buf, 0)
	buf = le.AppendUint64(buf, c.fingerprint)
	buf = le.AppendUint32(buf, uint32(c.epoch))
	buf = le.AppendUint64(buf, c.step)
	buf = le.AppendUint64(buf, c.shuffle)
	buf = le.AppendUint32(buf, uint32(len(c.order)))
	buf = le.AppendUint32(buf, uint32(len(model)))
	buf = append(buf, model...)
	for _, m := range c.moments {
		buf = appendFloats(buf, m)
	}
	for _, i := range c.order {
		buf = le.AppendUint32(buf, uint32(i))
	}
	for _, l := range c.losses {
		buf = le.AppendUint64(buf, math.Float64bits(l))
	}
	buf = le.AppendUint32(buf, uint32(c.bestEpoch))
	buf = le.AppendUint64(buf, math.Float64bits(c.bestLoss))
	buf = le.AppendUint32(buf, uint32(len(best)))
	buf = append(buf, best...)
	return le.AppendUint32(buf, crc32.ChecksumIEEE(buf)), nil
}

// LoadCheckpoint decodes bytes written by Checkpoint.MarshalBinary.
func LoadCheckpoint(data []byte) (*Checkpoint, error) {
	c := &Checkpoint{}
	if err := c.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return c, nil
}

// UnmarshalBinary decodes bytes written by MarshalBinary into c. Wrong magic,
// an unknown version, truncation, trailing bytes, a checksum mismatch, an
// invalid embedded model or a batch order that is not a permutation all fail
// with an error wrapping ErrInvalidCheckpoint, and c is left unchanged.
func (c *Checkpoint) UnmarshalBinary(data []byte) error {
	d, err := checkpointFormat.open(data)
	if err != nil {
		return err
	}
	out := &Checkpoint{fingerprint: d.uint64(), epoch: int(d.uint32()), step: d.uint64(), shuffle: d.uint64()}
	samples, modelSize := int64(d.uint32()), int64(d.uint32())
	if out.epoch > maxCheckpointEpochs {
		return invalidCheckpoint("epoch %d out of range", out.epoch)
	}
	if samples <= 0 || samples > maxSamples {
		return invalidCheckpoint("sample count %d out of range", samples)
	}
	if int64(d.remaining()) < modelSize {
		return invalidCheckpoint("truncated in the model: %d bytes left, the header describes %d", d.remaining(), modelSize)
	}
	model, err := LoadModel(data[d.off : d.off+int(modelSize)])
	if err != nil {
		return fmt.Errorf("%w: the model: %w", ErrInvalidCheckpoint, err)
	}
	d.off += int(modelSize)
	bestAt := int64(checkpointHeaderSize) + modelSize + 4*samples + 8*int64(out.epoch)
	for _, l := range model.layers {
		bestAt += 4 * 2 * int64(len(l.w)+len(l.b))
	}
	if int64(len(data)) < bestAt+bestHeaderSize+4 {
		return invalidCheckpoint("truncated: %d bytes, the header describes at least %d", len(data), bestAt+bestHeaderSize+4)
	}
	bestSize := int64(binary.LittleEndian.Uint32(data[bestAt+bestHeaderSize-4:]))
	if err := checkpointFormat.seal(data, bestAt+bestHeaderSize+bestSize+4); err != nil {
		return err
	}
	out.model = model
	for _, l := range model.layers {
		out.moments = append(out.moments, d.floats(2*(len(l.w)+len(l.b))))
	}
	out.order = make([]int, samples)
	seen := make([]bool, samples)
	for i := range out.order {
		j := int(d.uint32())
		if int64(j) >= samples || seen[j] {
			return invalidCheckpoint("the batch order is not a permutation of %d samples (%d at %d)", samples, j, i)
		}
		seen[j] = true
		out.order[i] = j
	}
	out.losses = make([]float64, out.epoch)
	for i := range out.losses {
		out.losses[i] = math.Float64frombits(d.uint64())
	}
	out.bestEpoch, out.bestLoss = int(d.uint32()), math.Float64frombits(d.uint64())
	d.uint32() // the best weights' size, read above
	if bestSize > 0 {
		if out.best, err = LoadModel(data[d.off : d.off+int(bestSize)]); err != nil {
			return fmt.Errorf("%w: the best weights: %w", ErrInvalidCheckpoint, err)
		}
	}
	if (out.best != nil) != (out.bestEpoch > 0) || out.bestEpoch > out.epoch {
		return invalidCheckpoint("best epoch %d of %d epochs, %d bytes of best weights", out.bestEpoch, out.epoch, bestSize)
	}
	*c = *out
	return nil
}

// resumes checks that c continues the training of cfg on data with the given
// fingerprint and row count, so that Train never mixes two trainings.
func (c *Checkpoint) resumes(cfg Config, fp uint64, rows int) error {
	if c.model == nil {
		return fmt.Errorf("%w: an empty checkpoint", ErrCheckpointMismatch)
	}
	if c.fingerprint != fp {
		return fmt.Errorf("%w: it was written for other data, another network, other optimizer settings, batch size or seed", ErrCheckpointMismatch)
	}
	if c.epoch > cfg.Epochs {
		return fmt.Errorf("%w: it is at epoch %d, past the %d epochs configured", ErrCheckpointMismatch, c.epoch, cfg.Epochs)
	}
	// The fingerprint covers these; checking them too keeps a forged or
	// buggy checkpoint from indexing out of range.
	if len(c.order) != rows || c.model.inputs != cfg.Inputs || len(c.model.layers) != len(cfg.Layers) {
		return fmt.Errorf("%w: its shapes differ from the config's", ErrCheckpointMismatch)
	}
	for i, l := range cfg.Layers {
		if c.model.layers[i].LayerConfig != l {
			return fmt.Errorf("%w: its layer %d differs from the config's", ErrCheckpointMismatch, i)
		}
	}
	if cfg.KeepBest && c.epoch > 0 && c.best == nil {
		return fmt.Errorf("%w: it keeps no best weights", ErrCheckpointMismatch)
	}
	if c.best != nil && !c.best.sameShape(c.model) {
		return fmt.Errorf("%w: its best weights have another shape", ErrCheckpointMismatch)
	}
	if batches := uint64((rows + cfg.BatchSize - 1) / cfg.BatchSize); c.step != uint64(c.epoch)*batches {
		return fmt.Errorf("%w: %d steps done in %d epochs of %d batches", ErrCheckpointMismatch, c.step, c.epoch, batches)
	}
	return nil
}

// clone returns a deep copy of m, for a training that must not write into a
// model someone else holds (a checkpoint's).
func (m *Model) clone() *Model {
	out := &Model{inputs: m.inputs, loss: m.loss, mean: append([]float32(nil), m.mean...), std: append([]float32(nil), m.std...)}
	for _, l := range m.layers {
		l.w = append([]float32(nil), l.w...)
		l.b = append([]float32(nil), l.b...)
		out.layers = append(out.layers, l)
	}
	return out
}

// sameShape reports whether o has m's inputs, loss and layers.
func (m *Model) sameShape(o *Model) bool {
	if m.inputs != o.inputs || m.loss != o.loss || len(m.layers) != len(o.layers) {
		return false
	}
	for i, l := range m.layers {
		if l.LayerConfig != o.layers[i].LayerConfig || l.in != o.layers[i].in {
			return false
		}
	}
	return true
}
