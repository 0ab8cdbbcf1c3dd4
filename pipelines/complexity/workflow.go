package complexity

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// Name is the workflow's name.
const Name = "complexity_training"

// ModelName is the model's name in ml.models.
const ModelName = "complexity"

// The steps, in order.
const (
	StepDataFingerprint    = "data_fingerprint"
	StepDataCollection     = "data_collection"
	StepFeatureEngineering = "feature_engineering"
	StepModelTraining      = "model_training"
	StepModelSelection     = "model_selection"
	StepModelEvaluation    = "model_evaluation"
	StepModelDeployment    = "model_deployment"
)

// cacheTTLMS is how long an output of data_collection or feature_engineering is reused by later
// runs: half of ml.ArtifactRetention, so that the artifacts a reused output names (the earlier
// run's) are still there when the reusing run reads them.
const cacheTTLMS = int64(ml.ArtifactRetention / 2 / time.Millisecond)

// Options are what the workflow's steps need from the binary that runs them.
type Options struct {
	// DB is where records, artifacts and models live.
	DB ml.DB
	// Trainer runs model_training; nil trains on a fresh CPU backend each time.
	Trainer *ml.Trainer
}

// Workflow returns the complexity_training definition with its handlers: the seed's steps,
// concurrency limits and timeouts, training on the gpu worker class, and the retries of the
// seed's COMPLEXITY_WORKFLOW_RETRIES=3 and _RETRY_DELAY_MS=5000 (ml.Step); a fingerprint of the
// data first, so that collecting and encoding the same data again can be skipped, and a sweep:
// model_training maps over feature_engineering's configs, model_selection keeps the best.
func Workflow(o Options) pipelines.Workflow {
	p := &pipeline{db: o.DB, trainer: o.Trainer, artifacts: ml.NewArtifacts(o.DB)}

	// data_collection's output is a function of the rows the fingerprint summarizes and of the
	// input fields that say which rows (min_rows: whether too few fail the run).
	collect := ml.Step(StepDataCollection, "cpu", 5, 60000, p.dataCollection)
	collect.CacheTTLMS = cacheTTLMS
	collect.CacheKey = []string{"input.days_back", "input.min_rows", "input.max_rows", StepDataFingerprint}
	// feature_engineering's, of the snapshot, the holdout share, and the fields its configs are
	// made of.
	features := ml.Step(StepFeatureEngineering, "cpu", 3, 30000, p.featureEngineering)
	features.CacheTTLMS = cacheTTLMS
	features.CacheKey = []string{StepDataCollection, "input.held_out", "input.sweep", "input.epochs", "input.batch_size", "input.seed"}
	training := ml.Step(StepModelTraining, "gpu", 1, 180000, p.modelTraining)
	training.Map, training.MaxItems = StepFeatureEngineering+".configs", MaxSweep

	return ml.Chain(Name, "learns a task-complexity score in [0,1] from ml.task_executions",
		ml.Step(StepDataFingerprint, "cpu", 5, 30000, p.dataFingerprint),
		collect,
		features,
		training,
		ml.Step(StepModelSelection, "cpu", 2, 30000, p.modelSelection),
		ml.Step(StepModelEvaluation, "cpu", 2, 30000, p.modelEvaluation),
		ml.Step(StepModelDeployment, "cpu", 1, 60000, p.modelDeployment),
	)
}

// insertBatch bounds the arrays of one INSERT.
const insertBatch = 5000

// Insert writes records to ml.task_executions and returns how many it wrote. IDs and
// predictions of the records are ignored; the database assigns the one and the pipeline the
// other.
func Insert(ctx context.Context, db gen.DBTX, recs []Record) (int64, error) {
	q := gen.New(db)
	var total int64
	for lo := 0; lo < len(recs); lo += insertBatch {
		batch := recs[lo:min(lo+insertBatch, len(recs))]
		var p gen.InsertTaskExecutionsParams
		for _, r := range batch {
			p.TaskTypes = append(p.TaskTypes, r.TaskType)
			p.Models = append(p.Models, r.Model)
			p.ContextLengths = append(p.ContextLengths, int32(r.ContextLength))
			p.OutputTokens = append(p.OutputTokens, int32(r.OutputTokens))
			p.ParameterCounts = append(p.ParameterCounts, r.ParameterCount)
			p.InputPrices = append(p.InputPrices, r.InputPrice)
			p.OutputPrices = append(p.OutputPrices, r.OutputPrice)
			p.UsesTools = append(p.UsesTools, r.UsesTools)
			p.UsesVision = append(p.UsesVision, r.UsesVision)
			p.DurationMs = append(p.DurationMs, int32(r.DurationMS))
			p.Successes = append(p.Successes, r.Success)
			p.QualityScores = append(p.QualityScores, r.QualityScore)
			p.UserSatisfactions = append(p.UserSatisfactions, int16(r.UserSatisfaction))
			p.ObservedComplexities = append(p.ObservedComplexities, r.ObservedComplexity)
			p.ExecutedAts = append(p.ExecutedAts, pgtype.Timestamptz{Time: r.ExecutedAt, Valid: true})
		}
		n, err := q.InsertTaskExecutions(ctx, p)
		if err != nil {
			return total, fmt.Errorf("inserting task executions %d-%d: %w", lo, lo+len(batch)-1, err)
		}
		total += n
	}
	return total, nil
}
