package architecture

import (
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// Name is the workflow's name.
const Name = "architecture_learning"

// ModelName is the model's name in ml.models.
const ModelName = "architecture"

// The steps, in order.
const (
	StepPatternDiscovery = "pattern_discovery"
	StepPatternAnalysis  = "pattern_analysis"
	StepModelTraining    = "model_training"
	StepModelValidation  = "model_validation"
	StepModelDeployment  = "model_deployment"
)

// Options are what the workflow's steps need from the binary that runs them.
type Options struct {
	// DB is where artifacts, models and package patterns live.
	DB ml.DB
	// Trainer runs model_training; nil trains on a fresh CPU backend each time.
	Trainer *ml.Trainer
}

// Workflow returns the architecture_learning definition with its handlers: the seed's steps,
// concurrency limits and timeouts, training on the gpu worker class, and the retries of the
// seed's ARCHITECTURE_WORKFLOW_RETRIES=3 and _RETRY_DELAY_MS=5000 (ml.Step).
func Workflow(o Options) pipelines.Workflow {
	p := &pipeline{db: o.DB, trainer: o.Trainer, artifacts: ml.NewArtifacts(o.DB)}
	return ml.Chain(Name, "learns architecture patterns of Go packages from real source trees",
		ml.Step(StepPatternDiscovery, "cpu", 2, 60000, p.patternDiscovery),
		ml.Step(StepPatternAnalysis, "cpu", 3, 30000, p.patternAnalysis),
		ml.Step(StepModelTraining, "gpu", 1, 180000, p.modelTraining),
		ml.Step(StepModelValidation, "cpu", 2, 30000, p.modelValidation),
		ml.Step(StepModelDeployment, "cpu", 1, 60000, p.modelDeployment),
	)
}
