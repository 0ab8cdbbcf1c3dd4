package architecture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// Params is the run input; every field is optional.
type Params struct {
	// Roots are the source trees to scan [the Go standard library under GOROOT].
	Roots       []string `json:"roots"`
	MaxPackages int      `json:"max_packages"`
	MinPackages int      `json:"min_packages"`
	HeldOut     float64  `json:"held_out"`
	// HiddenUnits adds a ReLU layer (dropout 0.1) before the softmax; 0 is softmax regression.
	HiddenUnits  int     `json:"hidden_units"`
	Epochs       int     `json:"epochs"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float32 `json:"learning_rate"`
	Seed         uint64  `json:"seed"`
	// CheckpointParams are model_training's checkpoint_every and checkpoint_seconds.
	ml.CheckpointParams
}

// DefaultParams are the defaults of every run input field but roots (ml's for checkpoints).
func DefaultParams() Params {
	return Params{MaxPackages: 5000, MinPackages: 30, HeldOut: 0.25, Epochs: 150, BatchSize: 32, LearningRate: 3e-3,
		CheckpointParams: ml.DefaultCheckpointParams()}
}

func params(in pipelines.Input) (Params, error) {
	return ml.DecodeParams(in, DefaultParams(), func(p Params, check ml.Check) {
		check(p.MaxPackages >= 1 && p.MaxPackages <= 1_000_000, "max_packages must be between 1 and 1000000, got %d", p.MaxPackages)
		check(p.MinPackages >= 10 && p.MinPackages <= p.MaxPackages, "min_packages must be between 10 and max_packages (%d), got %d", p.MaxPackages, p.MinPackages)
		check(p.HeldOut > 0 && p.HeldOut <= 0.5, "held_out must be a share in (0, 0.5], got %v", p.HeldOut)
		check(p.HiddenUnits >= 0 && p.HiddenUnits <= 4096, "hidden_units must be between 0 and 4096, got %d", p.HiddenUnits)
		check(p.Epochs >= 1 && p.Epochs <= 100000, "epochs must be between 1 and 100000, got %d", p.Epochs)
		check(p.BatchSize >= 1 && p.BatchSize <= 65536, "batch_size must be between 1 and 65536, got %d", p.BatchSize)
		check(p.LearningRate > 0 && p.LearningRate <= 1, "learning_rate must be in (0, 1], got %v", p.LearningRate)
		p.CheckpointParams.Check(check)
		for _, r := range p.Roots {
			check(filepath.IsAbs(r), "roots must be absolute paths, got %q", r)
		}
	})
}

// defaultRoots is the standard library's source: $GOROOT/src, else `go env GOROOT`.
func defaultRoots(ctx context.Context) ([]string, error) {
	goroot := os.Getenv("GOROOT")
	if goroot == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
		if err != nil {
			return nil, errors.New("no roots in the run input, GOROOT is not set and `go env GOROOT` failed; give roots")
		}
		goroot = strings.TrimSpace(string(out))
	}
	return []string{filepath.Join(goroot, "src")}, nil
}

// Refs are the artifact ids a run has made so far; each step passes them on.
type Refs struct {
	Packages int64 `json:"packages,omitempty"`
	Spec     int64 `json:"features,omitempty"`
	Split    int64 `json:"split,omitempty"`
	Train    int64 `json:"train,omitempty"`
	HeldOut  int64 `json:"held_out,omitempty"`
	Model    int64 `json:"model,omitempty"`
	// Majority is the most common pattern of the training split: the baseline's answer.
	Majority int `json:"majority"`
}

// DiscoveryOutput is pattern_discovery's output.
type DiscoveryOutput struct {
	Artifacts Refs     `json:"artifacts"`
	Roots     []string `json:"roots"`
	Packages  int      `json:"packages"`
	Files     int      `json:"files"`
	Lines     int      `json:"lines"`
	Seconds   float64  `json:"seconds"`
}

// AnalysisOutput is pattern_analysis's output.
type AnalysisOutput struct {
	Artifacts   Refs           `json:"artifacts"`
	Patterns    map[string]int `json:"patterns"`
	Features    []string       `json:"features"`
	TrainRows   int            `json:"train_rows"`
	HeldOutRows int            `json:"held_out_rows"`
}

// TrainOutput is model_training's output.
type TrainOutput struct {
	Artifacts Refs          `json:"artifacts"`
	Training  ml.TrainStats `json:"training"`
}

// Metrics are the held-out metrics of the classifier and of the majority-class baseline, as
// stored in ml.models; confusion rows are true patterns, columns predicted ones.
type Metrics struct {
	ml.Classification
	Baseline    ml.Classification `json:"baseline"`
	Patterns    []string          `json:"patterns"`
	TrainRows   int               `json:"train_rows"`
	HeldOutRows int               `json:"held_out_rows"`
}

// ValidationOutput is model_validation's output.
type ValidationOutput struct {
	Artifacts Refs          `json:"artifacts"`
	Metrics   Metrics       `json:"metrics"`
	Training  ml.TrainStats `json:"training"`
}

// DeployOutput is model_deployment's output, and so the run's.
type DeployOutput struct {
	Model    ml.Deployed   `json:"model"`
	Metrics  Metrics       `json:"metrics"`
	Training ml.TrainStats `json:"training"`
	// Labelled is how many packages got the active model's pattern in ml.package_patterns.
	Labelled   int64 `json:"labelled"`
	LabelledBy int64 `json:"labelled_by,omitempty"`
}

// split is the held-out choice of pattern_analysis, as indices into the packages artifact.
type split struct {
	Train   []int `json:"train"`
	HeldOut []int `json:"held_out"`
}

type pipeline struct {
	db        ml.DB
	trainer   *ml.Trainer
	artifacts *ml.Artifacts
}

func (p *pipeline) patternDiscovery(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	if _, err := p.artifacts.Prune(ctx, ml.ArtifactRetention); err != nil {
		return nil, err
	}
	roots := prm.Roots
	if len(roots) == 0 {
		if roots, err = defaultRoots(ctx); err != nil {
			return nil, pipelines.Permanent(err)
		}
	}
	start := time.Now()
	pkgs, err := Discover(ctx, roots, DiscoverOptions{MaxPackages: prm.MaxPackages})
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// A missing or unreadable tree will not appear by retrying.
		return nil, pipelines.Permanent(fmt.Errorf("discovering packages: %w", err))
	}
	if len(pkgs) < prm.MinPackages {
		return nil, pipelines.Permanent(fmt.Errorf("too little data: %d Go packages under %s, at least %d needed; give more roots or lower min_packages",
			len(pkgs), strings.Join(roots, ", "), prm.MinPackages))
	}
	out := DiscoveryOutput{Roots: roots, Packages: len(pkgs), Seconds: time.Since(start).Seconds()}
	for _, pk := range pkgs {
		out.Files += pk.Files
		out.Lines += pk.Lines
	}
	if out.Artifacts.Packages, err = p.artifacts.PutJSON(ctx, in.RunID, "packages", pkgs); err != nil {
		return nil, err
	}
	return out, nil
}

func (p *pipeline) loadPackages(ctx context.Context, runID, id int64) ([]*Package, error) {
	var pkgs []*Package
	if err := p.artifacts.JSON(ctx, runID, id, &pkgs); err != nil {
		return nil, err
	}
	return pkgs, nil
}

func pick(pkgs []*Package, idx []int) []*Package {
	out := make([]*Package, len(idx))
	for i, j := range idx {
		out[i] = pkgs[j]
	}
	return out
}

// withLabels appends the pattern index column to a feature matrix.
func withLabels(x *ml.Matrix, labels []int) *ml.Matrix {
	out := ml.NewMatrix(x.Rows, x.Cols+1)
	for i := 0; i < x.Rows; i++ {
		row := out.Row(i)
		copy(row, x.Row(i))
		row[x.Cols] = float64(labels[i])
	}
	return out
}

func (p *pipeline) patternAnalysis(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	var prev DiscoveryOutput
	if err := ml.DecodeDep(in, StepPatternDiscovery, &prev); err != nil {
		return nil, err
	}
	pkgs, err := p.loadPackages(ctx, in.RunID, prev.Artifacts.Packages)
	if err != nil {
		return nil, err
	}
	labels := make([]int, len(pkgs))
	counts := map[string]int{}
	for i, pk := range pkgs {
		pattern := Detect(pk)
		labels[i] = PatternIndex(pattern)
		counts[pattern]++
	}
	trainIdx, heldIdx := ml.StratifiedSplit(labels, prm.HeldOut, prm.Seed)
	train := pick(pkgs, trainIdx)
	spec := FitSpec(train)
	pickLabels := func(idx []int) []int {
		out := make([]int, len(idx))
		for i, j := range idx {
			out[i] = labels[j]
		}
		return out
	}
	refs := prev.Artifacts
	refs.Majority = majority(pickLabels(trainIdx))
	if refs.Spec, err = p.artifacts.PutJSON(ctx, in.RunID, "features", spec); err != nil {
		return nil, err
	}
	if refs.Split, err = p.artifacts.PutJSON(ctx, in.RunID, "split", split{Train: trainIdx, HeldOut: heldIdx}); err != nil {
		return nil, err
	}
	if refs.Train, err = p.artifacts.PutMatrix(ctx, in.RunID, "train", withLabels(spec.Encode(train), pickLabels(trainIdx)), map[string]any{"target": "pattern index", "patterns": Patterns}); err != nil {
		return nil, err
	}
	if refs.HeldOut, err = p.artifacts.PutMatrix(ctx, in.RunID, "held_out", withLabels(spec.Encode(pick(pkgs, heldIdx)), pickLabels(heldIdx)), map[string]any{"target": "pattern index", "patterns": Patterns}); err != nil {
		return nil, err
	}
	return AnalysisOutput{Artifacts: refs, Patterns: counts, Features: spec.Names, TrainRows: len(trainIdx), HeldOutRows: len(heldIdx)}, nil
}

// majority is the most common label, the smallest of equals.
func majority(labels []int) int {
	counts := map[int]int{}
	best := -1
	for _, l := range labels {
		counts[l]++
	}
	keys := make([]int, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		if best < 0 || counts[k] > counts[best] {
			best = k
		}
	}
	return max(best, 0)
}

// classifierConfig is the softmax classifier the run input describes.
func classifierConfig(prm Params) kernels.Config {
	cfg := kernels.Config{
		Inputs: len(FeatureNames), Loss: kernels.SoftmaxCrossEntropy,
		Adam: kernels.DefaultAdam(), Epochs: prm.Epochs, BatchSize: prm.BatchSize, Seed: prm.Seed,
	}
	cfg.Adam.LR = prm.LearningRate
	if prm.HiddenUnits > 0 {
		cfg.Layers = append(cfg.Layers, kernels.LayerConfig{Units: prm.HiddenUnits, Activation: kernels.ReLU, Dropout: 0.1})
	}
	cfg.Layers = append(cfg.Layers, kernels.LayerConfig{Units: len(Patterns), Activation: kernels.Softmax})
	return cfg
}

func labelsOf(m *ml.Matrix) []int {
	col := m.Column(m.Cols - 1)
	out := make([]int, len(col))
	for i, v := range col {
		out[i] = int(v)
	}
	return out
}

func (p *pipeline) modelTraining(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	var prev AnalysisOutput
	if err := ml.DecodeDep(in, StepPatternAnalysis, &prev); err != nil {
		return nil, err
	}
	train, err := p.artifacts.Matrix(ctx, in.RunID, prev.Artifacts.Train, nil)
	if err != nil {
		return nil, err
	}
	y, err := kernels.OneHot(labelsOf(train), len(Patterns))
	if err != nil {
		return nil, pipelines.Permanent(fmt.Errorf("train labels: %w", err))
	}
	cfg := classifierConfig(prm)
	model, stats, err := p.trainer.Train(ctx, cfg, train.Columns(0, train.Cols-1), y, p.artifacts.StepCheckpoint(in, prm.CheckpointParams))
	if err != nil {
		return nil, fmt.Errorf("training the architecture classifier: %w", err)
	}
	refs := prev.Artifacts
	if refs.Model, err = p.artifacts.PutModel(ctx, in.RunID, "model", model, map[string]any{"architecture": ml.Architecture(cfg)}); err != nil {
		return nil, err
	}
	return TrainOutput{Artifacts: refs, Training: stats}, nil
}

// classify returns the most likely pattern index of each standardized row, with its probability.
func classify(m *kernels.Model, x *ml.Matrix) ([]int, []float64, error) {
	probs, err := m.Predict(x.Columns(0, x.Cols))
	if err != nil {
		return nil, nil, err
	}
	labels, conf := ml.Argmax(probs, m.Outputs())
	return labels, conf, nil
}

func (p *pipeline) modelValidation(ctx context.Context, in pipelines.Input) (any, error) {
	var prev TrainOutput
	if err := ml.DecodeDep(in, StepModelTraining, &prev); err != nil {
		return nil, err
	}
	model, _, err := p.artifacts.Model(ctx, in.RunID, prev.Artifacts.Model)
	if err != nil {
		return nil, err
	}
	held, err := p.artifacts.Matrix(ctx, in.RunID, prev.Artifacts.HeldOut, nil)
	if err != nil {
		return nil, err
	}
	x := ml.NewMatrix(held.Rows, held.Cols-1)
	for i := 0; i < held.Rows; i++ {
		copy(x.Row(i), held.Row(i)[:held.Cols-1])
	}
	pred, _, err := classify(model, x)
	if err != nil {
		return nil, fmt.Errorf("classifying the held-out packages: %w", err)
	}
	truth := labelsOf(held)
	base := make([]int, len(truth))
	for i := range base {
		base[i] = prev.Artifacts.Majority
	}
	m := Metrics{
		Classification: ml.ClassificationMetrics(pred, truth, len(Patterns)),
		Baseline:       ml.ClassificationMetrics(base, truth, len(Patterns)),
		Patterns:       Patterns, TrainRows: prev.Training.Samples, HeldOutRows: held.Rows,
	}
	return ValidationOutput{Artifacts: prev.Artifacts, Metrics: m, Training: prev.Training}, nil
}

func (p *pipeline) modelDeployment(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	var prev ValidationOutput
	if err := ml.DecodeDep(in, StepModelValidation, &prev); err != nil {
		return nil, err
	}
	refs := prev.Artifacts
	_, weights, err := p.artifacts.Model(ctx, in.RunID, refs.Model)
	if err != nil {
		return nil, err
	}
	var spec FeatureSpec
	if err := p.artifacts.JSON(ctx, in.RunID, refs.Spec, &spec); err != nil {
		return nil, err
	}
	var sp split
	if err := p.artifacts.JSON(ctx, in.RunID, refs.Split, &sp); err != nil {
		return nil, err
	}
	pkgs, err := p.loadPackages(ctx, in.RunID, refs.Packages)
	if err != nil {
		return nil, err
	}
	held := pick(pkgs, sp.HeldOut)
	deployed, err := ml.Deploy(ctx, p.db, ml.Candidate{
		Name: ModelName, RunID: in.RunID, Backend: prev.Training.Backend, Weights: weights,
		Architecture: ml.Architecture(classifierConfig(prm)), Normalization: spec, Metrics: prev.Metrics,
	}, deployRule(held).Judge(prev.Metrics.Classification, prev.Metrics.Baseline))
	if err != nil {
		return nil, err
	}
	n, by, err := p.label(ctx, in.RunID, pkgs)
	if err != nil {
		return nil, err
	}
	return DeployOutput{Model: deployed, Metrics: prev.Metrics, Training: prev.Training, Labelled: n, LabelledBy: by}, nil
}

// better reports whether a beats b: higher macro-F1, or equal macro-F1 and higher accuracy.
func better(a, b ml.Classification) bool {
	return a.MacroF1 > b.MacroF1 || (a.MacroF1 == b.MacroF1 && a.Accuracy > b.Accuracy)
}

// deployRule is the deployment rule (see the package documentation) in macro-F1, then
// accuracy; held are this run's held-out packages.
func deployRule(held []*Package) ml.Rule[ml.Classification] {
	return ml.Rule[ml.Classification]{
		Beats: better,
		Score: func(active *ml.StoredModel) (ml.Classification, bool, error) {
			var spec FeatureSpec
			if err := json.Unmarshal(active.Normalization, &spec); err != nil || spec.check(active.Model.Inputs(), active.Model.Outputs()) != nil {
				return ml.Classification{}, false, nil
			}
			pred, _, err := classify(active.Model, spec.Encode(held))
			if err != nil {
				return ml.Classification{}, true, err
			}
			truth := make([]int, len(held))
			for i, pk := range held {
				truth[i] = PatternIndex(Detect(pk))
			}
			return ml.ClassificationMetrics(pred, truth, len(Patterns)), true, nil
		},
		Deployed: func(metrics json.RawMessage) (ml.Classification, error) {
			var stored Metrics
			err := json.Unmarshal(metrics, &stored)
			return stored.Classification, err
		},
		HeldOut: "packages", Own: "metrics",
		Below: func(m, baseline ml.Classification) string {
			return fmt.Sprintf("held-out macro-F1 %.4f (accuracy %.4f) does not beat the majority baseline's %.4f (%.4f)",
				m.MacroF1, m.Accuracy, baseline.MacroF1, baseline.Accuracy)
		},
		First: func(m, baseline ml.Classification) string {
			return fmt.Sprintf("no active model; held-out macro-F1 %.4f beats the majority baseline's %.4f", m.MacroF1, baseline.MacroF1)
		},
		Versus: func(m, active ml.Classification, verdict string, version int32, how string) string {
			return fmt.Sprintf("held-out macro-F1 %.4f (accuracy %.4f) %s active v%d's %.4f (%.4f) (%s)",
				m.MacroF1, m.Accuracy, verdict, version, active.MacroF1, active.Accuracy, how)
		},
	}
}

// label records the active model's pattern for every package of the run in
// ml.package_patterns, next to the rule's.
func (p *pipeline) label(ctx context.Context, runID int64, pkgs []*Package) (int64, int64, error) {
	active, err := ml.ActiveModel(ctx, p.db, ModelName)
	if err != nil || active == nil {
		return 0, 0, err
	}
	var spec FeatureSpec
	if err := json.Unmarshal(active.Normalization, &spec); err != nil {
		return 0, 0, fmt.Errorf("decoding the feature spec of active model v%d: %w", active.Version, err)
	}
	if err := spec.check(active.Model.Inputs(), active.Model.Outputs()); err != nil {
		return 0, 0, fmt.Errorf("active model v%d cannot classify packages: %w", active.Version, err)
	}
	pred, conf, err := classify(active.Model, spec.Encode(pkgs))
	if err != nil {
		return 0, 0, fmt.Errorf("classifying packages: %w", err)
	}
	arg := gen.UpsertPackagePatternsParams{ModelID: active.ID, RunID: runID}
	for i, pk := range pkgs {
		arg.Packages = append(arg.Packages, pk.Path)
		arg.RulePatterns = append(arg.RulePatterns, Detect(pk))
		arg.PredictedPatterns = append(arg.PredictedPatterns, spec.Patterns[pred[i]])
		arg.Confidences = append(arg.Confidences, min(max(conf[i], 0), 1))
	}
	n, err := gen.New(p.db).UpsertPackagePatterns(ctx, arg)
	if err != nil {
		return 0, 0, fmt.Errorf("storing package patterns: %w", err)
	}
	return n, active.ID, nil
}
