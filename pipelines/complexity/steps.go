package complexity

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// Params is the run input; every field is optional.
type Params struct {
	DaysBack  int     `json:"days_back"`
	MinRows   int     `json:"min_rows"`
	MaxRows   int     `json:"max_rows"`
	HeldOut   float64 `json:"held_out"`
	Epochs    int     `json:"epochs"`
	BatchSize int     `json:"batch_size"`
	Seed      uint64  `json:"seed"`
	// MinImprovement is the least relative reduction of held-out MSE over the active model,
	// with 95% confidence, for which a candidate replaces it.
	MinImprovement float64 `json:"min_improvement"`
	// Sweep lists training configurations (TrainingConfig objects, each field optional, taken
	// from the run's own configuration when absent): model_training trains each one and
	// model_selection keeps the one of the lowest validation loss. Absent: the run's own alone.
	Sweep []json.RawMessage `json:"sweep"`
	// CheckpointParams are model_training's checkpoint_every and checkpoint_seconds.
	ml.CheckpointParams
}

// DefaultParams are the seed's defaults, and ml's for checkpoints.
func DefaultParams() Params {
	return Params{DaysBack: 30, MinRows: 100, MaxRows: 100000, HeldOut: 0.2, Epochs: 50, BatchSize: 32,
		MinImprovement: 0.02, CheckpointParams: ml.DefaultCheckpointParams()}
}

func params(in pipelines.Input) (Params, error) {
	return ml.DecodeParams(in, DefaultParams(), func(p Params, check ml.Check) {
		check(p.DaysBack >= 1 && p.DaysBack <= 36500, "days_back must be between 1 and 36500, got %d", p.DaysBack)
		check(p.MinRows >= 10, "min_rows must be at least 10, got %d", p.MinRows)
		check(p.MaxRows >= p.MinRows && p.MaxRows <= 10_000_000, "max_rows must be between min_rows (%d) and 10000000, got %d", p.MinRows, p.MaxRows)
		check(p.HeldOut > 0 && p.HeldOut <= 0.5, "held_out must be a share in (0, 0.5], got %v", p.HeldOut)
		check(p.Epochs >= 1 && p.Epochs <= 10000, "epochs must be between 1 and 10000, got %d", p.Epochs)
		check(p.BatchSize >= 1 && p.BatchSize <= 65536, "batch_size must be between 1 and 65536, got %d", p.BatchSize)
		check(p.MinImprovement >= 0 && p.MinImprovement < 1, "min_improvement must be a share in [0, 1), got %v", p.MinImprovement)
		p.checkSweep(check)
		p.CheckpointParams.Check(check)
	})
}

// holdout is the run's holdout: records by id.
func holdout(prm Params) ml.Holdout { return ml.NewHoldout("ml.task_executions.id", prm.HeldOut) }

// Refs are the artifacts a run has made or reused so far; each step passes them on. A reused
// (cached) step's artifacts are the run's that computed it, so each names its writer (ml.Ref).
type Refs struct {
	Snapshot        ml.Ref  `json:"snapshot,omitzero"`
	Spec            ml.Ref  `json:"features,omitzero"`
	Train           ml.Ref  `json:"train,omitzero"`
	Validation      ml.Ref  `json:"validation,omitzero"`
	HeldOut         ml.Ref  `json:"held_out,omitzero"`
	HeldOutRecords  ml.Ref  `json:"held_out_records,omitzero"`
	Model           ml.Ref  `json:"model,omitzero"`
	TrainTargetMean float64 `json:"train_target_mean,omitempty"`
}

// CollectOutput is data_collection's output.
type CollectOutput struct {
	Artifacts Refs           `json:"artifacts"`
	Rows      int            `json:"rows"`
	DaysBack  int            `json:"days_back"`
	TaskTypes map[string]int `json:"task_types"`
}

// FeaturesOutput is feature_engineering's output.
type FeaturesOutput struct {
	Artifacts      Refs     `json:"artifacts"`
	Features       []string `json:"features"`
	TrainRows      int      `json:"train_rows"`
	ValidationRows int      `json:"validation_rows"`
	HeldOutRows    int      `json:"held_out_rows"`
	// Configs are the configurations to train, model_training's elements: the sweep's, or
	// the run's own alone.
	Configs []TrainingConfig `json:"configs"`
}

// TrainOutput is the output of one task of model_training: the model of one configuration.
// model_training's output is the array of them, in configs order.
type TrainOutput struct {
	Artifacts      Refs           `json:"artifacts"`
	Config         TrainingConfig `json:"config"`
	Training       ml.TrainStats  `json:"training"`
	ValidationRows int            `json:"validation_rows"`
}

// Metrics are the held-out metrics of a model and its baseline, each with its interval, and
// the rows they come from, as stored in ml.models (where deployment adds the loss curve, a
// predicted-vs-actual sample and its decision).
type Metrics struct {
	ml.Regression
	Baseline ml.Regression `json:"baseline"`
	ml.Evaluation
}

// EvalOutput is model_evaluation's output.
type EvalOutput struct {
	Artifacts Refs          `json:"artifacts"`
	Metrics   Metrics       `json:"metrics"`
	Training  ml.TrainStats `json:"training"`
}

// DeployOutput is model_deployment's output, and so the run's.
type DeployOutput struct {
	Model      ml.Deployed   `json:"model"`
	Metrics    Metrics       `json:"metrics"`
	Training   ml.TrainStats `json:"training"`
	Backfilled int64         `json:"backfilled"`
	// BackfilledBy is the id of the active model that scored the backfilled records.
	BackfilledBy int64 `json:"backfilled_by,omitempty"`
}

type pipeline struct {
	db        ml.DB
	trainer   *ml.Trainer
	artifacts *ml.Artifacts
}

func (p *pipeline) dataCollection(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	rows, err := gen.New(p.db).CollectTaskExecutions(ctx, gen.CollectTaskExecutionsParams{DaysBack: int32(prm.DaysBack), MaxRows: int32(prm.MaxRows)})
	if err != nil {
		return nil, fmt.Errorf("reading task executions of the last %d days: %w", prm.DaysBack, err)
	}
	if len(rows) < prm.MinRows {
		return nil, pipelines.Permanent(fmt.Errorf(
			"too little data: %d labelled task executions (observed_complexity set) in the last %d days, at least %d needed; "+
				"load records into ml.task_executions (or run `qflow seed-data`), or lower min_rows or widen days_back",
			len(rows), prm.DaysBack, prm.MinRows))
	}
	recs := make([]Record, len(rows))
	counts := map[string]int{}
	for i, r := range rows {
		recs[i] = fromCollected(r)
		counts[r.TaskType]++
	}
	// Oldest first, by id: the snapshot's order must not depend on timestamps that tie.
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	m, meta := toSnapshot(recs)
	id, err := p.artifacts.PutMatrix(ctx, in.RunID, "snapshot", m, meta)
	if err != nil {
		return nil, err
	}
	return CollectOutput{Artifacts: Refs{Snapshot: ml.Ref{Run: in.RunID, ID: id}}, Rows: len(recs), DaysBack: prm.DaysBack, TaskTypes: counts}, nil
}

func (p *pipeline) loadSnapshot(ctx context.Context, ref ml.Ref) ([]Record, snapshotMeta, error) {
	var meta snapshotMeta
	m, err := p.artifacts.Matrix(ctx, ref.Run, ref.ID, &meta)
	if err != nil {
		return nil, meta, err
	}
	recs, err := fromSnapshot(m, meta)
	if err != nil {
		return nil, meta, pipelines.Permanent(err)
	}
	return recs, meta, nil
}

// withTarget appends the label column to a feature matrix.
func withTarget(x *ml.Matrix, recs []Record) *ml.Matrix {
	out := ml.NewMatrix(x.Rows, x.Cols+1)
	for i := 0; i < x.Rows; i++ {
		row := out.Row(i)
		copy(row, x.Row(i))
		row[x.Cols] = recs[i].ObservedComplexity
	}
	return out
}

func pick(recs []Record, idx []int) []Record {
	out := make([]Record, len(idx))
	for i, j := range idx {
		out[i] = recs[j]
	}
	return out
}

func (p *pipeline) featureEngineering(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	var prev CollectOutput
	if err := ml.DecodeDep(in, StepDataCollection, &prev); err != nil {
		return nil, err
	}
	recs, meta, err := p.loadSnapshot(ctx, prev.Artifacts.Snapshot)
	if err != nil {
		return nil, err
	}
	var parts [3][]Record
	h := holdout(prm)
	for _, r := range recs {
		part := h.PartOf(holdoutKey(r.ID))
		parts[part] = append(parts[part], r)
	}
	train, val, held := parts[ml.Train], parts[ml.Validate], parts[ml.HeldOut]
	if len(train) == 0 || len(held) == 0 {
		return nil, pipelines.Permanent(fmt.Errorf("too little data: %d records make %d training and %d held-out rows; widen days_back or change held_out",
			len(recs), len(train), len(held)))
	}
	configs, err := prm.configs()
	if err != nil {
		return nil, err
	}
	spec := FitSpec(tasksOf(train), meta.TaskTypes)

	// put stores an artifact of this run and returns its Ref.
	put := func(id int64, err error) (ml.Ref, error) { return ml.Ref{Run: in.RunID, ID: id}, err }
	refs := prev.Artifacts
	var mean float64
	for _, r := range train {
		mean += r.ObservedComplexity
	}
	refs.TrainTargetMean = mean / float64(len(train))
	if refs.Spec, err = put(p.artifacts.PutJSON(ctx, in.RunID, "features", spec)); err != nil {
		return nil, err
	}
	target := map[string]any{"target": "observed_complexity"}
	for _, m := range []struct {
		ref  *ml.Ref
		name string
		recs []Record
	}{{&refs.Train, "train", train}, {&refs.Validation, "validation", val}, {&refs.HeldOut, "held_out", held}} {
		if *m.ref, err = put(p.artifacts.PutMatrix(ctx, in.RunID, m.name, withTarget(spec.Encode(tasksOf(m.recs)), m.recs), target)); err != nil {
			return nil, err
		}
	}
	heldRaw, _ := toSnapshot(held)
	if refs.HeldOutRecords, err = put(p.artifacts.PutMatrix(ctx, in.RunID, "held_out_records", heldRaw, meta)); err != nil {
		return nil, err
	}
	return FeaturesOutput{Artifacts: refs, Features: spec.Names, TrainRows: len(train), ValidationRows: len(val), HeldOutRows: len(held),
		Configs: configs}, nil
}

// modelTraining trains one configuration, its task's element of feature_engineering's configs,
// into the artifact model_<task>.
func (p *pipeline) modelTraining(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	c, err := itemConfig(in)
	if err != nil {
		return nil, err
	}
	var prev FeaturesOutput
	if err := ml.DecodeDep(in, StepFeatureEngineering, &prev); err != nil {
		return nil, err
	}
	tr, vr := prev.Artifacts.Train, prev.Artifacts.Validation
	train, err := p.artifacts.Matrix(ctx, tr.Run, tr.ID, nil)
	if err != nil {
		return nil, err
	}
	val, err := p.artifacts.Matrix(ctx, vr.Run, vr.ID, nil)
	if err != nil {
		return nil, err
	}
	d := train.Cols - 1
	cfg := trainConfig(d, c)
	cfg.Validation, cfg.KeepBest = kernels.Data{X: val.Columns(0, d), Y: val.Columns(d, d+1)}, true
	model, stats, err := p.trainer.Train(ctx, cfg, train.Columns(0, d), train.Columns(d, d+1), p.artifacts.StepCheckpoint(in, prm.CheckpointParams))
	if err != nil {
		return nil, fmt.Errorf("training the complexity model: %w", err)
	}
	refs := prev.Artifacts
	id, err := p.artifacts.PutModel(ctx, in.RunID, fmt.Sprintf("model_%d", in.Task), model, ml.ModelMeta{Architecture: ml.Architecture(cfg), Curve: stats.Curve})
	if err != nil {
		return nil, err
	}
	refs.Model = ml.Ref{Run: in.RunID, ID: id}
	return TrainOutput{Artifacts: refs, Config: c, Training: stats, ValidationRows: val.Rows}, nil
}

// predict scores standardized feature rows with a model.
func predict(m *kernels.Model, x []float32) ([]float64, error) {
	out, err := m.Predict(x)
	if err != nil {
		return nil, err
	}
	scores := make([]float64, len(out))
	for i, v := range out {
		scores[i] = float64(v)
	}
	return scores, nil
}

// accuracyTolerance is the seed's "accurate": within 0.1 of the observed complexity.
const accuracyTolerance = 0.1

// heldOut is a run's held-out records scored by its model, and by the baseline.
type heldOut struct {
	records           []Record
	truth, pred, base []float64
}

// scoreHeldOut scores the run's held-out records with its model and its baseline.
func (p *pipeline) scoreHeldOut(ctx context.Context, refs Refs, model *kernels.Model) (heldOut, error) {
	var h heldOut
	held, err := p.artifacts.Matrix(ctx, refs.HeldOut.Run, refs.HeldOut.ID, nil)
	if err != nil {
		return h, err
	}
	if h.records, _, err = p.loadSnapshot(ctx, refs.HeldOutRecords); err != nil {
		return h, err
	}
	d := held.Cols - 1
	if h.pred, err = predict(model, held.Columns(0, d)); err != nil {
		return h, fmt.Errorf("scoring the held-out records: %w", err)
	}
	h.truth = held.Column(d)
	h.base = make([]float64, len(h.truth))
	for i := range h.base {
		h.base[i] = refs.TrainTargetMean
	}
	return h, nil
}

func (p *pipeline) modelEvaluation(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	// The chosen configuration's training, as model_training output it.
	var prev TrainOutput
	if err := ml.DecodeDep(in, StepModelSelection, &prev); err != nil {
		return nil, err
	}
	model, _, err := p.artifacts.Model(ctx, prev.Artifacts.Model.Run, prev.Artifacts.Model.ID, nil)
	if err != nil {
		return nil, err
	}
	h, err := p.scoreHeldOut(ctx, prev.Artifacts, model)
	if err != nil {
		return nil, err
	}
	m := Metrics{
		Regression: ml.RegressionMetrics(h.pred, h.truth, accuracyTolerance),
		Baseline:   ml.RegressionMetrics(h.base, h.truth, accuracyTolerance),
		Evaluation: ml.Evaluation{Holdout: holdout(prm), TrainRows: prev.Training.Samples, ValidationRows: prev.ValidationRows,
			HeldOutRows: len(h.truth)},
	}
	return EvalOutput{Artifacts: prev.Artifacts, Metrics: m, Training: prev.Training}, nil
}

func (p *pipeline) modelDeployment(ctx context.Context, in pipelines.Input) (any, error) {
	prm, err := params(in)
	if err != nil {
		return nil, err
	}
	var prev EvalOutput
	if err := ml.DecodeDep(in, StepModelEvaluation, &prev); err != nil {
		return nil, err
	}
	refs := prev.Artifacts
	var meta ml.ModelMeta
	model, weights, err := p.artifacts.Model(ctx, refs.Model.Run, refs.Model.ID, &meta)
	if err != nil {
		return nil, err
	}
	var spec FeatureSpec
	if err := p.artifacts.JSON(ctx, refs.Spec.Run, refs.Spec.ID, &spec); err != nil {
		return nil, err
	}
	h, err := p.scoreHeldOut(ctx, refs, model)
	if err != nil {
		return nil, err
	}
	metrics := prev.Metrics
	metrics.Curve, metrics.Sample = &meta.Curve, ml.SampleOf(h.pred, h.truth)
	deployed, err := ml.Deploy(ctx, p.db, ml.Candidate{
		Name: ModelName, RunID: in.RunID, Backend: prev.Training.Backend, Weights: weights,
		// The chosen configuration's, as model_training stored it with the model.
		Architecture: meta.Architecture, Normalization: spec, Metrics: metrics,
	}, deployRule(prm, h).Judge(h.pred, h.base))
	if err != nil {
		return nil, err
	}
	n, by, err := p.backfill(ctx)
	if err != nil {
		return nil, err
	}
	return DeployOutput{Model: deployed, Metrics: prev.Metrics, Training: prev.Training, Backfilled: n, BackfilledBy: by}, nil
}

// deployRule is the deployment rule (see the package documentation) in held-out MSE, its gain
// relative: the share of the other model's MSE the candidate saves.
func deployRule(prm Params, h heldOut) ml.Rule[float64] {
	keys := make([]string, len(h.records))
	for i, r := range h.records {
		keys[i] = holdoutKey(r.ID)
	}
	return ml.Rule[float64]{
		Metric: "MSE",
		Score:  func(pred []float64, idx []int) float64 { return ml.MSE(pred, h.truth, idx) },
		Gain: func(candidate, other float64) float64 {
			if other == 0 {
				return 0
			}
			return (other - candidate) / other
		},
		MinGain: prm.MinImprovement, Relative: true, Digits: 5,
		Holdout: holdout(prm), Keys: keys, Unit: "records",
		Active: func(active *ml.StoredModel, idx []int) ([]float64, error) {
			spec, err := usableSpec(active)
			if err != nil {
				return nil, fmt.Errorf("%v (%w)", err, ml.ErrCannotScore)
			}
			tasks := make([]Task, len(idx))
			for j, i := range idx {
				tasks[j] = h.records[i].Task
			}
			x := spec.Encode(tasks)
			return predict(active.Model, x.Columns(0, x.Cols))
		},
	}
}

// usableSpec is the feature spec of a stored model, if this build can encode records for it.
func usableSpec(m *ml.StoredModel) (FeatureSpec, error) {
	var spec FeatureSpec
	if err := json.Unmarshal(m.Normalization, &spec); err != nil {
		return spec, fmt.Errorf("has a feature spec this build cannot read: %v", err)
	}
	if err := spec.check(m.Model.Inputs()); err != nil {
		return spec, fmt.Errorf("cannot encode today's records: %v", err)
	}
	return spec, nil
}

// backfillBatch is how many records one prediction round scores and updates.
const backfillBatch = 5000

// backfill scores every record without a predicted complexity with the active model. It
// returns how many it scored and the model's id (0 when no model is active).
func (p *pipeline) backfill(ctx context.Context) (int64, int64, error) {
	active, err := ml.ActiveModel(ctx, p.db, ModelName)
	if err != nil || active == nil {
		return 0, 0, err
	}
	spec, err := usableSpec(active)
	if err != nil {
		return 0, 0, fmt.Errorf("active model v%d %w", active.Version, err)
	}
	q := gen.New(p.db)
	var total int64
	var after int64
	for {
		rows, err := q.UnpredictedTaskExecutions(ctx, gen.UnpredictedTaskExecutionsParams{AfterID: after, BatchSize: backfillBatch})
		if err != nil {
			return total, active.ID, fmt.Errorf("reading records to backfill: %w", err)
		}
		if len(rows) == 0 {
			return total, active.ID, nil
		}
		tasks := make([]Task, len(rows))
		ids := make([]int64, len(rows))
		for i, r := range rows {
			tasks[i] = Task{TaskType: r.TaskType, ContextLength: int(r.ContextLength), UsesTools: r.UsesTools, UsesVision: r.UsesVision}
			ids[i] = r.ID
		}
		x := spec.Encode(tasks)
		scores, err := predict(active.Model, x.Columns(0, x.Cols))
		if err != nil {
			return total, active.ID, fmt.Errorf("scoring records to backfill: %w", err)
		}
		n, err := q.SetPredictedComplexity(ctx, gen.SetPredictedComplexityParams{ModelID: active.ID, Ids: ids, Scores: scores})
		if err != nil {
			return total, active.ID, fmt.Errorf("storing predicted complexity: %w", err)
		}
		total += n
		after = ids[len(ids)-1]
	}
}
