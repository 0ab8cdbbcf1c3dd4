package ml

import "github.com/quantumflow/qflow/pipelines"

// Every ML step retries as the seed configured both pipelines (*_WORKFLOW_RETRIES=3,
// *_RETRY_DELAY_MS=5000): 3 retries, so 4 attempts, backing off from 5 s, at most a minute.
const (
	stepAttempts = 4
	retryBaseMS  = 5000
	retryMaxMS   = 60000
)

// runTimeoutMS bounds a whole run of an ML pipeline, training included.
const runTimeoutMS = 300000

// Step returns one step of an ML pipeline: its worker class, fleet-wide concurrency limit and
// timeout, with the retry policy every ML step shares. A gpu step is hinted to hold its
// worker alone, as a training holds the device.
func Step(name, class string, concurrency int, timeoutMS int64, h pipelines.Handler) pipelines.Step {
	s := pipelines.Step{
		Name: name, WorkerClass: class, MaxConcurrency: concurrency, TimeoutMS: timeoutMS,
		MaxAttempts: stepAttempts, RetryBaseMS: retryBaseMS, RetryMaxMS: retryMaxMS,
		Handler: h,
	}
	if class == "gpu" {
		s.ResourceHints = map[string]any{"gpu": true, "single_worker": true}
	}
	return s
}

// Chain returns the definition of an ML pipeline: its steps run in the order given, each
// depending on the one before (whatever DependsOn they had), and a run has 5 minutes in all.
func Chain(name, description string, steps ...pipelines.Step) pipelines.Workflow {
	for i := 1; i < len(steps); i++ {
		steps[i].DependsOn = []string{steps[i-1].Name}
	}
	return pipelines.Workflow{Name: name, Description: description, TimeoutMS: runTimeoutMS, Steps: steps}
}
