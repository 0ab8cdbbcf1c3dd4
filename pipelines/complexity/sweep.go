package complexity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// MaxSweep bounds a run's sweep: model_training trains every configuration, one at a time on
// the gpu class, within the run's timeout.
const MaxSweep = 64

// TrainingConfig is one configuration model_training trains: the seed network (ReLU hidden
// layers, a sigmoid output, MSE, Adam) with these widths, dropouts and hyperparameters.
// feature_engineering outputs every configuration of a run, all fields filled; model_training
// trains the one it is mapped over.
type TrainingConfig struct {
	LearningRate float32 `json:"learning_rate"`
	// HiddenLayers are the hidden layers' widths, input side first.
	HiddenLayers []int `json:"hidden_layers"`
	// Dropout is the share of each hidden layer's outputs dropped in training, one per layer.
	Dropout   []float32 `json:"dropout"`
	Epochs    int       `json:"epochs"`
	BatchSize int       `json:"batch_size"`
	Seed      uint64    `json:"seed"`
}

// runConfig is the run's own configuration: the seed network's layers, dropouts and learning
// rate with the run's epochs, batch size and seed. Without a sweep it is the one trained; a
// sweep entry changes the fields it names.
func (p Params) runConfig() TrainingConfig {
	seed := kernels.SeedNetwork(0)
	c := TrainingConfig{LearningRate: seed.Adam.LR, Epochs: p.Epochs, BatchSize: p.BatchSize, Seed: p.Seed}
	for _, l := range seed.Layers[:len(seed.Layers)-1] {
		c.HiddenLayers = append(c.HiddenLayers, l.Units)
		c.Dropout = append(c.Dropout, l.Dropout)
	}
	return c
}

// check states the rules of a configuration; where names it in messages ("sweep[2]").
func (c TrainingConfig) check(where string, check ml.Check) {
	check(c.LearningRate > 0 && c.LearningRate <= 10, "%s: learning_rate must be in (0, 10], got %v", where, c.LearningRate)
	check(len(c.HiddenLayers) >= 1 && len(c.HiddenLayers) <= 8, "%s: hidden_layers must list 1 to 8 widths, got %d", where, len(c.HiddenLayers))
	for i, u := range c.HiddenLayers {
		check(u >= 1 && u <= 4096, "%s: hidden_layers[%d] must be between 1 and 4096 units, got %d", where, i, u)
	}
	// The seed's dropouts are one per seed layer: other layers name theirs.
	check(len(c.Dropout) == len(c.HiddenLayers), "%s: dropout must list one share per hidden layer (%d), got %d",
		where, len(c.HiddenLayers), len(c.Dropout))
	for i, d := range c.Dropout {
		check(d >= 0 && d < 1, "%s: dropout[%d] must be a share in [0, 1), got %v", where, i, d)
	}
	check(c.Epochs >= 1 && c.Epochs <= 10000, "%s: epochs must be between 1 and 10000, got %d", where, c.Epochs)
	check(c.BatchSize >= 1 && c.BatchSize <= 65536, "%s: batch_size must be between 1 and 65536, got %d", where, c.BatchSize)
}

// decodeConfig decodes a configuration object over c; an unknown field or a wrong type is an
// error, as in the run input.
func decodeConfig(raw json.RawMessage, c *TrainingConfig) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return errors.New("must be an object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(c)
}

// sweepEntry is the run's sweep entry i over the run's own configuration.
func (p Params) sweepEntry(i int) (TrainingConfig, error) {
	// A fresh one each time: decoding an array reuses the slice it decodes into.
	c := p.runConfig()
	if err := decodeConfig(p.Sweep[i], &c); err != nil {
		return c, fmt.Errorf("sweep[%d]: %w", i, err)
	}
	return c, nil
}

// checkSweep states the rules of the sweep, for params.
func (p Params) checkSweep(check ml.Check) {
	if p.Sweep == nil {
		return
	}
	check(len(p.Sweep) >= 1 && len(p.Sweep) <= MaxSweep, "sweep must list 1 to %d configurations, got %d", MaxSweep, len(p.Sweep))
	for i := range p.Sweep[:min(len(p.Sweep), MaxSweep)] {
		c, err := p.sweepEntry(i)
		if err != nil {
			check(false, "%v", err)
			continue
		}
		c.check(fmt.Sprintf("sweep[%d]", i), check)
	}
}

// configs are the configurations a run trains: its sweep's, or its own alone. params has
// checked them.
func (p Params) configs() ([]TrainingConfig, error) {
	if p.Sweep == nil {
		return []TrainingConfig{p.runConfig()}, nil
	}
	out := make([]TrainingConfig, len(p.Sweep))
	for i := range p.Sweep {
		var err error
		if out[i], err = p.sweepEntry(i); err != nil {
			return nil, pipelines.Permanent(fmt.Errorf("run input: %w", err))
		}
	}
	return out, nil
}

// itemConfig is the configuration a task of model_training trains: its element of
// feature_engineering's configs.
func itemConfig(in pipelines.Input) (TrainingConfig, error) {
	var c TrainingConfig
	if in.Task < 0 || in.Item == nil {
		return c, pipelines.Permanent(fmt.Errorf("%s is a map step over %s.configs: it got no element to train", in.Step, StepFeatureEngineering))
	}
	where := fmt.Sprintf("configs[%d]", in.Task)
	if err := decodeConfig(in.Item, &c); err != nil {
		return c, pipelines.Permanent(fmt.Errorf("%s: %w", where, err))
	}
	var errs []error
	c.check(where, func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	})
	return c, pipelines.Permanent(errors.Join(errs...))
}

// trainConfig is the kernels configuration of c for the given number of inputs.
func trainConfig(inputs int, c TrainingConfig) kernels.Config {
	cfg := kernels.SeedNetwork(inputs)
	output := cfg.Layers[len(cfg.Layers)-1]
	cfg.Layers = make([]kernels.LayerConfig, 0, len(c.HiddenLayers)+1)
	for i, units := range c.HiddenLayers {
		cfg.Layers = append(cfg.Layers, kernels.LayerConfig{Units: units, Activation: kernels.ReLU, Dropout: c.Dropout[i]})
	}
	cfg.Layers = append(cfg.Layers, output)
	cfg.Adam.LR = c.LearningRate
	cfg.Epochs, cfg.BatchSize, cfg.Seed = c.Epochs, c.BatchSize, c.Seed
	return cfg
}

// ConfigResult is one configuration of a run as model_selection saw it.
type ConfigResult struct {
	Config TrainingConfig `json:"config"`
	// ValidationLoss is the MSE of the configuration's model on the validation rows; null when
	// there are none, or when the model's predictions are not all finite (it is never chosen).
	ValidationLoss *float64 `json:"validation_loss"`
}

// SelectOutput is model_selection's output: the chosen configuration's training, which
// model_evaluation and model_deployment read as model_training's output, and every
// configuration's validation loss.
type SelectOutput struct {
	TrainOutput
	// Chosen is the chosen configuration's index in configs.
	Chosen  int            `json:"chosen"`
	Configs []ConfigResult `json:"configs"`
}

// modelSelection keeps the configuration whose model has the lowest MSE on the validation
// rows (the first of equals, in sweep order). The validation rows are the share of the
// training side feature_engineering carved out, which no training fitted; the held-out rows
// are never read here, so the held-out figures of the chosen model stay unbiased by the choice.
func (p *pipeline) modelSelection(ctx context.Context, in pipelines.Input) (any, error) {
	var trained []TrainOutput
	if err := ml.DecodeDep(in, StepModelTraining, &trained); err != nil {
		return nil, err
	}
	if len(trained) == 0 {
		return nil, pipelines.Permanent(fmt.Errorf("%s trained no configuration", StepModelTraining))
	}
	// Every task trained on feature_engineering's one set of rows.
	vref := trained[0].Artifacts.Validation
	val, err := p.artifacts.Matrix(ctx, vref.Run, vref.ID, nil)
	if err != nil {
		return nil, err
	}
	if val.Rows == 0 && len(trained) > 1 {
		return nil, pipelines.Permanent(fmt.Errorf("no validation rows to choose among %d configurations: widen days_back", len(trained)))
	}
	d := val.Cols - 1
	x, truth := val.Columns(0, d), val.Column(d)
	all := make([]int, val.Rows)
	for i := range all {
		all[i] = i
	}
	out := SelectOutput{Chosen: -1, Configs: make([]ConfigResult, len(trained))}
	for i, t := range trained {
		out.Configs[i].Config = t.Config
		if val.Rows == 0 {
			continue
		}
		model, _, err := p.artifacts.Model(ctx, t.Artifacts.Model.Run, t.Artifacts.Model.ID, nil)
		if err != nil {
			return nil, err
		}
		pred, err := predict(model, x)
		if err != nil {
			return nil, fmt.Errorf("scoring configs[%d] on the validation rows: %w", i, err)
		}
		loss := ml.MSE(pred, truth, all)
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			continue
		}
		out.Configs[i].ValidationLoss = &loss
		if out.Chosen < 0 || loss < *out.Configs[out.Chosen].ValidationLoss {
			out.Chosen = i
		}
	}
	if val.Rows == 0 {
		out.Chosen = 0
	}
	if out.Chosen < 0 {
		return nil, pipelines.Permanent(fmt.Errorf("none of %d configurations predicts finite numbers on the validation rows", len(trained)))
	}
	out.TrainOutput = trained[out.Chosen]
	return out, nil
}
