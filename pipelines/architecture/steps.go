package architecture

import (
	"cmp"
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
	// Roots are the source trees to scan [the Go standard library under GOROOT and the Go
	// module cache, GOMODCACHE].
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
	// Folds is the k of the k-fold cross-validation on the training side.
	Folds int `json:"folds"`
	// MinImprovement is the least macro-F1 gain over the active model, with 95% confidence,
	// for which a candidate replaces it.
	MinImprovement float64 `json:"min_improvement"`
	// CheckpointParams are model_training's checkpoint_every and checkpoint_seconds.
	ml.CheckpointParams
}

// DefaultParams are the defaults of every run input field but roots (ml's for checkpoints).
func DefaultParams() Params {
	return Params{MaxPackages: 5000, MinPackages: 30, HeldOut: 0.25, Epochs: 150, BatchSize: 32, LearningRate: 3e-3,
		Folds: 5, MinImprovement: 0.01, CheckpointParams: ml.DefaultCheckpointParams()}
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
		check(p.Folds >= 2 && p.Folds <= 20, "folds must be between 2 and 20, got %d", p.Folds)
		check(p.MinImprovement >= 0 && p.MinImprovement < 1, "min_improvement must be in [0, 1), got %v", p.MinImprovement)
		p.CheckpointParams.Check(check)
		for _, r := range p.Roots {
			check(filepath.IsAbs(r), "roots must be absolute paths, got %q", r)
		}
	})
}

// defaultRoots are the Go source on this machine: the standard library ($GOROOT/src) and the
// third-party modules of the module cache ($GOMODCACHE, when it exists), each from the
// environment or else `go env`.
func defaultRoots(ctx context.Context) ([]string, error) {
	goroot, modcache := os.Getenv("GOROOT"), os.Getenv("GOMODCACHE")
	if goroot == "" || modcache == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOROOT", "GOMODCACHE").Output()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil || len(lines) != 2 {
			return nil, errors.New("no roots in the run input, GOROOT or GOMODCACHE is not set and `go env` failed; give roots")
		}
		goroot, modcache = cmp.Or(goroot, strings.TrimSpace(lines[0])), cmp.Or(modcache, strings.TrimSpace(lines[1]))
	}
	roots := []string{filepath.Join(goroot, "src")}
	if isDir(modcache) {
		roots = append(roots, modcache)
	}
	return roots, nil
}

// holdout is the run's holdout: packages by import path.
func holdout(prm Params) ml.Holdout { return ml.NewHoldout("import path", prm.HeldOut) }

// Refs are the artifact ids a run has made so far; each step passes them on.
type Refs struct {
	Packages   int64 `json:"packages,omitempty"`
	Spec       int64 `json:"features,omitempty"`
	Split      int64 `json:"split,omitempty"`
	Train      int64 `json:"train,omitempty"`
	Validation int64 `json:"validation,omitempty"`
	HeldOut    int64 `json:"held_out,omitempty"`
	Model      int64 `json:"model,omitempty"`
	// CV holds the cross-validation's out-of-fold predictions.
	CV int64 `json:"cv,omitempty"`
	// Majority is the most common pattern of the training side: the baseline's answer.
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
	Artifacts      Refs           `json:"artifacts"`
	Patterns       map[string]int `json:"patterns"`
	Features       []string       `json:"features"`
	TrainRows      int            `json:"train_rows"`
	ValidationRows int            `json:"validation_rows"`
	HeldOutRows    int            `json:"held_out_rows"`
}

// TrainOutput is model_training's output.
type TrainOutput struct {
	Artifacts      Refs          `json:"artifacts"`
	Training       ml.TrainStats `json:"training"`
	ValidationRows int           `json:"validation_rows"`
	// Folds is how many models the cross-validation trained besides the classifier.
	Folds int `json:"folds"`
}

// Metrics are the classifier's held-out metrics and the majority-class baseline's, with its
// cross-validation on the training side, each figure with its interval, as stored in ml.models;
// confusion rows are true patterns, columns predicted ones.
type Metrics struct {
	ml.Classification
	Baseline ml.Classification  `json:"baseline"`
	CV       ml.CrossValidation `json:"cv"`
	Patterns []string           `json:"patterns"`
	ml.Evaluation
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

// split is where pattern_analysis put each package, as indices into the packages artifact,
// with the cross-validation fold of each training-side package (Train's, then Validation's).
type split struct {
	Train      []int `json:"train"`
	Validation []int `json:"validation"`
	HeldOut    []int `json:"held_out"`
	Folds      []int `json:"folds"`
}

// cvPredictions are the cross-validation's out-of-fold predictions of the training side, in
// the order of split.Folds: each package's pattern, the prediction of the model of the other
// folds, and their majority pattern.
type cvPredictions struct {
	Truth     []int `json:"truth"`
	Predicted []int `json:"predicted"`
	Baseline  []int `json:"baseline"`
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
	var sp split
	parts := [3]*[]int{&sp.Train, &sp.Validation, &sp.HeldOut}
	h := holdout(prm)
	for i, pk := range pkgs {
		pattern := Detect(pk)
		labels[i] = PatternIndex(pattern)
		counts[pattern]++
		*parts[h.PartOf(pk.Path)] = append(*parts[h.PartOf(pk.Path)], i)
	}
	if len(sp.Train) == 0 || len(sp.HeldOut) == 0 {
		return nil, pipelines.Permanent(fmt.Errorf("too little data: %d packages make %d training and %d held-out rows; give more roots or change held_out",
			len(pkgs), len(sp.Train), len(sp.HeldOut)))
	}
	for _, i := range append(append([]int(nil), sp.Train...), sp.Validation...) {
		sp.Folds = append(sp.Folds, ml.Fold(pkgs[i].Path, prm.Folds))
	}
	spec := FitSpec(pick(pkgs, sp.Train))
	pickLabels := func(idx []int) []int {
		out := make([]int, len(idx))
		for i, j := range idx {
			out[i] = labels[j]
		}
		return out
	}
	refs := prev.Artifacts
	refs.Majority = majority(pickLabels(append(append([]int(nil), sp.Train...), sp.Validation...)))
	if refs.Spec, err = p.artifacts.PutJSON(ctx, in.RunID, "features", spec); err != nil {
		return nil, err
	}
	if refs.Split, err = p.artifacts.PutJSON(ctx, in.RunID, "split", sp); err != nil {
		return nil, err
	}
	target := map[string]any{"target": "pattern index", "patterns": Patterns}
	for _, m := range []struct {
		ref  *int64
		name string
		idx  []int
	}{{&refs.Train, "train", sp.Train}, {&refs.Validation, "validation", sp.Validation}, {&refs.HeldOut, "held_out", sp.HeldOut}} {
		if *m.ref, err = p.artifacts.PutMatrix(ctx, in.RunID, m.name, withLabels(spec.Encode(pick(pkgs, m.idx)), pickLabels(m.idx)), target); err != nil {
			return nil, err
		}
	}
	return AnalysisOutput{Artifacts: refs, Patterns: counts, Features: spec.Names, TrainRows: len(sp.Train),
		ValidationRows: len(sp.Validation), HeldOutRows: len(sp.HeldOut)}, nil
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

// features is a feature-and-label matrix without its label column.
func features(m *ml.Matrix) *ml.Matrix {
	x := ml.NewMatrix(m.Rows, m.Cols-1)
	for i := 0; i < m.Rows; i++ {
		copy(x.Row(i), m.Row(i)[:m.Cols-1])
	}
	return x
}

// concat stacks matrices of equal width.
func concat(ms ...*ml.Matrix) *ml.Matrix {
	out := &ml.Matrix{Cols: ms[0].Cols}
	for _, m := range ms {
		out.Rows += m.Rows
		out.Data = append(out.Data, m.Data...)
	}
	return out
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
	val, err := p.artifacts.Matrix(ctx, in.RunID, prev.Artifacts.Validation, nil)
	if err != nil {
		return nil, err
	}
	var sp split
	if err := p.artifacts.JSON(ctx, in.RunID, prev.Artifacts.Split, &sp); err != nil {
		return nil, err
	}
	y, err := kernels.OneHot(labelsOf(train), len(Patterns))
	if err != nil {
		return nil, pipelines.Permanent(fmt.Errorf("train labels: %w", err))
	}
	vy, err := kernels.OneHot(labelsOf(val), len(Patterns))
	if err != nil {
		return nil, pipelines.Permanent(fmt.Errorf("validation labels: %w", err))
	}
	cfg := classifierConfig(prm)
	cfg.Validation = kernels.Data{X: features(val).Columns(0, val.Cols-1), Y: vy}
	model, stats, err := p.trainer.Train(ctx, cfg, train.Columns(0, train.Cols-1), y, p.artifacts.StepCheckpoint(in, prm.CheckpointParams))
	if err != nil {
		return nil, fmt.Errorf("training the architecture classifier: %w", err)
	}
	refs := prev.Artifacts
	if refs.Model, err = p.artifacts.PutModel(ctx, in.RunID, "model", model, ml.ModelMeta{Architecture: ml.Architecture(cfg), Curve: stats.Curve}); err != nil {
		return nil, err
	}
	cv, err := p.crossValidate(ctx, prm, concat(train, val), sp.Folds)
	if err != nil {
		return nil, err
	}
	if refs.CV, err = p.artifacts.PutJSON(ctx, in.RunID, "cv_predictions", cv); err != nil {
		return nil, err
	}
	return TrainOutput{Artifacts: refs, Training: stats, ValidationRows: val.Rows, Folds: prm.Folds}, nil
}

// crossValidate trains a classifier on all folds of the training side (rows, with their
// labels) but one and predicts that one, for each fold, on the trainer's backend. The
// holdout takes no part.
func (p *pipeline) crossValidate(ctx context.Context, prm Params, rows *ml.Matrix, folds []int) (cvPredictions, error) {
	truth := labelsOf(rows)
	cv := cvPredictions{Truth: truth, Predicted: make([]int, len(truth)), Baseline: make([]int, len(truth))}
	x := features(rows)
	for k := 0; k < prm.Folds; k++ {
		var fit, test []int
		for i, f := range folds {
			if f == k {
				test = append(test, i)
			} else {
				fit = append(fit, i)
			}
		}
		if len(test) == 0 || len(fit) == 0 {
			continue
		}
		fitLabels := make([]int, len(fit))
		for j, i := range fit {
			fitLabels[j] = truth[i]
		}
		y, err := kernels.OneHot(fitLabels, len(Patterns))
		if err != nil {
			return cv, pipelines.Permanent(fmt.Errorf("fold %d labels: %w", k, err))
		}
		progress := foldProgress{ctx: ctx, fold: k, folds: prm.Folds}
		m, _, err := p.trainer.Train(pipelines.WithProgress(ctx, progress), classifierConfig(prm), x.Select(fit).Columns(0, x.Cols), y, nil)
		if err != nil {
			return cv, fmt.Errorf("cross-validation fold %d of %d: %w", k+1, prm.Folds, err)
		}
		pred, _, err := classify(m, x.Select(test))
		if err != nil {
			return cv, fmt.Errorf("cross-validation fold %d of %d: %w", k+1, prm.Folds, err)
		}
		base := majority(fitLabels)
		for j, i := range test {
			cv.Predicted[i], cv.Baseline[i] = pred[j], base
		}
	}
	return cv, nil
}

// foldProgress reports a cross-validation fold's training as part of the step's progress.
type foldProgress struct {
	ctx         context.Context
	fold, folds int
}

// ReportProgress implements pipelines.ProgressReporter.
func (f foldProgress) ReportProgress(p pipelines.Progress) {
	p.Message = fmt.Sprintf("cross-validation fold %d/%d: %s", f.fold+1, f.folds, p.Message)
	p.Done += int64(f.fold) * p.Total
	p.Total *= int64(f.folds)
	pipelines.ReportProgress(f.ctx, p)
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

// heldOut is a run's held-out packages classified by its model, and by the baseline.
type heldOut struct {
	packages          []*Package
	truth, pred, base []int
}

// classifyHeldOut classifies the run's held-out packages with its model and its baseline.
func (p *pipeline) classifyHeldOut(ctx context.Context, runID int64, refs Refs, model *kernels.Model) (heldOut, error) {
	var h heldOut
	held, err := p.artifacts.Matrix(ctx, runID, refs.HeldOut, nil)
	if err != nil {
		return h, err
	}
	if h.pred, _, err = classify(model, features(held)); err != nil {
		return h, fmt.Errorf("classifying the held-out packages: %w", err)
	}
	h.truth = labelsOf(held)
	h.base = make([]int, len(h.truth))
	for i := range h.base {
		h.base[i] = refs.Majority
	}
	return h, nil
}

func (p *pipeline) modelValidation(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	var prev TrainOutput
	if err := ml.DecodeDep(in, StepModelTraining, &prev); err != nil {
		return nil, err
	}
	model, _, err := p.artifacts.Model(ctx, in.RunID, prev.Artifacts.Model, nil)
	if err != nil {
		return nil, err
	}
	h, err := p.classifyHeldOut(ctx, in.RunID, prev.Artifacts, model)
	if err != nil {
		return nil, err
	}
	var cv cvPredictions
	if err := p.artifacts.JSON(ctx, in.RunID, prev.Artifacts.CV, &cv); err != nil {
		return nil, err
	}
	m := Metrics{
		Classification: ml.ClassificationMetrics(h.pred, h.truth, Patterns),
		Baseline:       ml.ClassificationMetrics(h.base, h.truth, Patterns).Headline(),
		CV: ml.CrossValidation{
			Folds: prev.Folds, Rows: len(cv.Truth),
			Classification: ml.ClassificationMetrics(cv.Predicted, cv.Truth, Patterns),
			Baseline:       ml.ClassificationMetrics(cv.Baseline, cv.Truth, Patterns).Headline(),
		},
		Patterns: Patterns,
		Evaluation: ml.Evaluation{Holdout: holdout(prm), TrainRows: prev.Training.Samples, ValidationRows: prev.ValidationRows,
			HeldOutRows: len(h.truth)},
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
	var meta ml.ModelMeta
	model, weights, err := p.artifacts.Model(ctx, in.RunID, refs.Model, &meta)
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
	h, err := p.classifyHeldOut(ctx, in.RunID, refs, model)
	if err != nil {
		return nil, err
	}
	h.packages = pick(pkgs, sp.HeldOut)
	metrics := prev.Metrics
	metrics.Curve = &meta.Curve
	deployed, err := ml.Deploy(ctx, p.db, ml.Candidate{
		Name: ModelName, RunID: in.RunID, Backend: prev.Training.Backend, Weights: weights,
		Architecture: ml.Architecture(classifierConfig(prm)), Normalization: spec, Metrics: metrics,
	}, deployRule(prm, h).Judge(h.pred, h.base))
	if err != nil {
		return nil, err
	}
	n, by, err := p.label(ctx, in.RunID, pkgs)
	if err != nil {
		return nil, err
	}
	return DeployOutput{Model: deployed, Metrics: prev.Metrics, Training: prev.Training, Labelled: n, LabelledBy: by}, nil
}

// deployRule is the deployment rule (see the package documentation) in held-out macro-F1, its
// gain the difference.
func deployRule(prm Params, h heldOut) ml.Rule[int] {
	keys := make([]string, len(h.packages))
	for i, pk := range h.packages {
		keys[i] = pk.Path
	}
	return ml.Rule[int]{
		Metric:  "macro-F1",
		Score:   func(pred []int, idx []int) float64 { return ml.MacroF1(pred, h.truth, len(Patterns), idx) },
		Gain:    func(candidate, other float64) float64 { return candidate - other },
		MinGain: prm.MinImprovement, Digits: 4,
		Holdout: holdout(prm), Keys: keys, Unit: "packages",
		Active: func(active *ml.StoredModel, idx []int) ([]int, error) {
			spec, err := usableSpec(active)
			if err != nil {
				return nil, fmt.Errorf("%v (%w)", err, ml.ErrCannotScore)
			}
			pred, _, err := classify(active.Model, spec.Encode(pick(h.packages, idx)))
			return pred, err
		},
	}
}

// usableSpec is the feature spec of a stored model, if this build can encode packages for it.
func usableSpec(m *ml.StoredModel) (FeatureSpec, error) {
	var spec FeatureSpec
	if err := json.Unmarshal(m.Normalization, &spec); err != nil {
		return spec, fmt.Errorf("has a feature spec this build cannot read: %v", err)
	}
	if err := spec.check(m.Model.Inputs(), m.Model.Outputs()); err != nil {
		return spec, fmt.Errorf("cannot encode today's packages: %v", err)
	}
	return spec, nil
}

// label records the active model's pattern for every package of the run in
// ml.package_patterns, next to the rule's.
func (p *pipeline) label(ctx context.Context, runID int64, pkgs []*Package) (int64, int64, error) {
	active, err := ml.ActiveModel(ctx, p.db, ModelName)
	if err != nil || active == nil {
		return 0, 0, err
	}
	spec, err := usableSpec(active)
	if err != nil {
		return 0, 0, fmt.Errorf("active model v%d %w", active.Version, err)
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
