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
// concurrency limits and timeouts, training on the gpu worker class.
func Workflow(o Options) pipelines.Workflow {
	p := &pipeline{db: o.DB, trainer: o.Trainer, artifacts: ml.NewArtifacts(o.DB)}
	step := func(name string, deps []string, class string, concurrency int, timeoutMS int64, h pipelines.Handler) pipelines.Step {
		s := pipelines.Step{
			Name: name, DependsOn: deps, WorkerClass: class, MaxConcurrency: concurrency, TimeoutMS: timeoutMS,
			// The seed's ARCHITECTURE_WORKFLOW_RETRIES=3 and _RETRY_DELAY_MS=5000: 3 retries, 4 attempts.
			MaxAttempts: 4, RetryBaseMS: 5000, RetryMaxMS: 60000,
			Handler: h,
		}
		if class == "gpu" {
			s.ResourceHints = map[string]any{"gpu": true, "single_worker": true}
		}
		return s
	}
	return pipelines.Workflow{
		Name:        Name,
		Description: "learns architecture patterns of Go packages from real source trees",
		TimeoutMS:   300000,
		Steps: []pipelines.Step{
			step(StepPatternDiscovery, nil, "cpu", 2, 60000, p.patternDiscovery),
			step(StepPatternAnalysis, []string{StepPatternDiscovery}, "cpu", 3, 30000, p.patternAnalysis),
			step(StepModelTraining, []string{StepPatternAnalysis}, "gpu", 1, 180000, p.modelTraining),
			step(StepModelValidation, []string{StepModelTraining}, "cpu", 2, 30000, p.modelValidation),
			step(StepModelDeployment, []string{StepModelValidation}, "cpu", 1, 60000, p.modelDeployment),
		},
	}
}
