package kernels

import (
	"fmt"
	"strings"
)

// Loss is the training objective of a Model.
type Loss uint8

const (
	// MSE is the mean squared error between outputs and targets, for regression
	// (the complexity score).
	MSE Loss = iota
	// SoftmaxCrossEntropy is the cross-entropy of a softmax output layer
	// against one-hot (or probability) targets, for classification.
	SoftmaxCrossEntropy
)

var lossNames = [...]string{
	MSE:                 "mse",
	SoftmaxCrossEntropy: "softmax_xent",
}

// String returns the name used in configs and serialized models.
func (l Loss) String() string {
	if int(l) < len(lossNames) {
		return lossNames[l]
	}
	return fmt.Sprintf("loss(%d)", uint8(l))
}

func (l Loss) valid() bool { return int(l) < len(lossNames) }

// ParseLoss maps "mse" or "softmax_xent" (case-insensitive) to a Loss.
func ParseLoss(s string) (Loss, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for i, n := range lossNames {
		if n == name {
			return Loss(i), nil
		}
	}
	return 0, fmt.Errorf("unknown loss %q (want mse or softmax_xent)", s)
}

// MarshalText lets losses appear by name in JSON configs.
func (l Loss) MarshalText() ([]byte, error) {
	if !l.valid() {
		return nil, fmt.Errorf("marshaling %s: not a known loss", l)
	}
	return []byte(l.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (l *Loss) UnmarshalText(b []byte) error {
	v, err := ParseLoss(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// LayerConfig describes one dense layer: its width, the activation after its
// bias, and the dropout applied to its output during training.
type LayerConfig struct {
	// Units is the layer's output width.
	Units int `json:"units"`
	// Activation follows the bias add.
	Activation Activation `json:"activation"`
	// Dropout is the share of outputs zeroed in training, in [0, 1);
	// it must be 0 on the output layer.
	Dropout float32 `json:"dropout,omitempty"`
}

// Config is everything Train needs besides the data.
type Config struct {
	// Inputs is the number of features per sample.
	Inputs int `json:"inputs"`
	// Layers are the hidden layers followed by the output layer.
	Layers []LayerConfig `json:"layers"`
	// Loss is the objective; SoftmaxCrossEntropy needs a Softmax output layer.
	Loss Loss `json:"loss"`
	// Adam holds the optimizer's hyperparameters; zero fields take the
	// defaults of DefaultAdam.
	Adam AdamParams `json:"adam"`
	// Epochs is the number of passes over the training data.
	Epochs int `json:"epochs"`
	// BatchSize is the minibatch size; the last batch of an epoch may be smaller.
	BatchSize int `json:"batch_size"`
	// Seed determines weight init, shuffling and dropout masks: on the CPU
	// backend the same seed and data give bit-identical weights.
	Seed uint64 `json:"seed"`
	// Backend runs the math; nil means a CPU backend.
	Backend Backend `json:"-"`
	// Resume, when not nil, continues the training that wrote this
	// checkpoint instead of starting afresh. It must come from a training of
	// the same config (Epochs aside: it may be larger now) and data, else
	// Train fails with ErrCheckpointMismatch. Any backend may resume any
	// backend's checkpoint; on the CPU backend the result is bit for bit that
	// of the uninterrupted training.
	Resume *Checkpoint `json:"-"`
	// Checkpoints says when Train saves its state, and where [never].
	Checkpoints Checkpoints `json:"-"`
	// OnEpoch, when not nil, is called after every epoch, on Train's
	// goroutine, before the epoch's checkpoint is saved: progress reports.
	OnEpoch func(EpochStats) `json:"-"`
	// Validation, when it has rows, is data the training never fits: after
	// every epoch Train measures the model's loss on it, without dropout, and
	// reports it as EpochStats.ValidationLoss (a loss curve's second line).
	// It changes nothing the training computes, the checkpoint's fingerprint
	// included, so a training may be resumed with other validation data.
	Validation Data `json:"-"`
	// KeepBest, with Validation, makes Train return the weights of the epoch
	// with the lowest validation loss (the first of equals) rather than the
	// last epoch's: early stopping that still runs every epoch, so the loss
	// curves stay whole. Checkpoints keep the best weights so far, so that a
	// resumed training returns the same ones.
	KeepBest bool `json:"keep_best"`
}

// Data is a dataset in Train's layout: X row-major with Config.Inputs values
// per sample, Y the targets as Train takes them.
type Data struct {
	X, Y []float32
}

// DefaultAdam returns the usual Adam hyperparameters with the seed network's
// learning rate: lr 1e-3, β1 0.9, β2 0.999, ε 1e-8.
func DefaultAdam() AdamParams {
	return AdamParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// SeedNetwork returns the complexity model of the seed pipeline: inputs →
// 64 ReLU (dropout 0.2) → 32 ReLU (dropout 0.1) → 1 sigmoid, MSE, Adam lr 1e-3,
// batch 32. Epochs is a starting point; callers tune it to their data size.
func SeedNetwork(inputs int) Config {
	return Config{
		Inputs: inputs,
		Layers: []LayerConfig{
			{Units: 64, Activation: ReLU, Dropout: 0.2},
			{Units: 32, Activation: ReLU, Dropout: 0.1},
			{Units: 1, Activation: Sigmoid},
		},
		Loss:      MSE,
		Adam:      DefaultAdam(),
		Epochs:    50,
		BatchSize: 32,
	}
}

// withDefaults fills the zero Adam fields so a Config literal that only sets
// a learning rate (or nothing) still trains.
func (c Config) withDefaults() Config {
	d := DefaultAdam()
	if c.Adam.LR == 0 {
		c.Adam.LR = d.LR
	}
	if c.Adam.Beta1 == 0 {
		c.Adam.Beta1 = d.Beta1
	}
	if c.Adam.Beta2 == 0 {
		c.Adam.Beta2 = d.Beta2
	}
	if c.Adam.Eps == 0 {
		c.Adam.Eps = d.Eps
	}
	if c.Backend == nil {
		c.Backend = NewCPU()
	}
	return c
}

// validate checks the architecture and hyperparameters before any memory is
// allocated, naming the offending field.
func (c Config) validate() error {
	if c.Inputs <= 0 {
		return fmt.Errorf("inputs %d, want > 0", c.Inputs)
	}
	if len(c.Layers) == 0 {
		return fmt.Errorf("no layers")
	}
	if !c.Loss.valid() {
		return fmt.Errorf("unknown loss %s", c.Loss)
	}
	last := len(c.Layers) - 1
	for i, l := range c.Layers {
		if l.Units <= 0 {
			return fmt.Errorf("layer %d: units %d, want > 0", i, l.Units)
		}
		if !l.Activation.valid() {
			return fmt.Errorf("layer %d: unknown %s", i, l.Activation)
		}
		if !(l.Dropout >= 0 && l.Dropout < 1) {
			return fmt.Errorf("layer %d: dropout %v outside [0, 1)", i, l.Dropout)
		}
		if i == last && l.Dropout != 0 {
			return fmt.Errorf("layer %d: dropout on the output layer is not supported", i)
		}
	}
	if c.Loss == SoftmaxCrossEntropy && c.Layers[last].Activation != Softmax {
		return fmt.Errorf("loss %s needs a softmax output layer, got %s", c.Loss, c.Layers[last].Activation)
	}
	if c.Epochs <= 0 {
		return fmt.Errorf("epochs %d, want > 0", c.Epochs)
	}
	if c.BatchSize <= 0 {
		return fmt.Errorf("batch size %d, want > 0", c.BatchSize)
	}
	a := c.Adam
	if !isFinite32(a.LR) || a.LR <= 0 {
		return fmt.Errorf("adam lr %v, want > 0", a.LR)
	}
	if !(a.Beta1 >= 0 && a.Beta1 < 1) || !(a.Beta2 >= 0 && a.Beta2 < 1) {
		return fmt.Errorf("adam betas (%v, %v) outside [0, 1)", a.Beta1, a.Beta2)
	}
	if !isFinite32(a.Eps) || a.Eps <= 0 {
		return fmt.Errorf("adam eps %v, want > 0", a.Eps)
	}
	return c.Checkpoints.validate()
}
