// Package rollout applies the seed pipelines' environment variables to the database: which
// runs go to the new (workflow) mode, and the timeouts, retries and concurrency of their steps.
//
// Workers (and `qflow migrate`) call Apply at start, after registering definitions. Only
// variables that are set change anything, so a host started without them, or with fewer, never
// undoes what others configured; an invalid value stops the process with a message naming the
// variable, before anything is written. Operators may change the same settings with SQL at any
// time (UPDATE qflow.rollouts / qflow.steps / qflow.workflows, or qflow.configure_workflow);
// they take effect for the next run without a restart.
//
// # Variables
//
// For complexity_training (prefix COMPLEXITY) and architecture_learning (prefix ARCHITECTURE):
//
//	PGFLOW_COMPLEXITY_TRAINING_ENABLED     qflow.rollouts.enabled: true sends canary_percent of new runs
//	PGFLOW_ARCHITECTURE_LEARNING_ENABLED   to workflow mode, false sends every new run to legacy mode
//	COMPLEXITY_TRAINING_CANARY_PERCENT     qflow.rollouts.canary_percent, 0-100 (architecture has none:
//	                                       it was a direct migration, so its rollout row says 100)
//	<P>_WORKFLOW_TIMEOUT_MS                qflow.workflows.timeout_ms: the run deadline
//	<P>_WORKFLOW_RETRIES                   qflow.steps.max_attempts = retries + 1, every step
//	<P>_WORKFLOW_RETRY_DELAY_MS            qflow.steps.retry_base_ms, every step (the cap rises with it)
//	<P>_WORKFLOW_CONCURRENCY               qflow.steps.max_concurrency of model_training
//	<P>_<STEP>_TIMEOUT_MS                  qflow.steps.timeout_ms of that step
//
// The seed's workflow-level concurrency is mapped to the training step because that is what it
// limited there: the one GPU ("single_worker: true"); the other steps keep their own limits
// (5/3/2/1 and 2/3/2/1), which SQL can change. Settings go to the current version of each
// workflow, the one new runs use. When a workflow has no rollout row yet (the migration creates
// both with the seeds' defaults: disabled, canary 10 for complexity_training and 100 for
// architecture_learning), setting one of its rollout variables creates it with those defaults
// for the other column.
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/quantumflow/qflow/gen"
)

// Workflow says which variables configure one workflow.
type Workflow struct {
	Name string
	// EnabledVar switches the new mode on or off.
	EnabledVar string
	// CanaryVar sets the share of runs in the new mode; empty when the seed had none.
	CanaryVar string
	// DefaultCanary is the canary share of a rollout row created from the environment.
	DefaultCanary int
	// Prefix starts the timeout, retry and concurrency variables.
	Prefix string
	// Steps get a <Prefix>_<STEP>_TIMEOUT_MS variable each.
	Steps []string
	// TrainingStep takes <Prefix>_WORKFLOW_CONCURRENCY.
	TrainingStep string
}

// Workflows are the seeds' two pipelines.
var Workflows = []Workflow{
	{
		Name: "complexity_training", EnabledVar: "PGFLOW_COMPLEXITY_TRAINING_ENABLED",
		CanaryVar: "COMPLEXITY_TRAINING_CANARY_PERCENT", DefaultCanary: 10, Prefix: "COMPLEXITY",
		Steps:        []string{"data_collection", "feature_engineering", "model_training", "model_evaluation", "model_deployment"},
		TrainingStep: "model_training",
	},
	{
		Name: "architecture_learning", EnabledVar: "PGFLOW_ARCHITECTURE_LEARNING_ENABLED",
		DefaultCanary: 100, Prefix: "ARCHITECTURE",
		Steps:        []string{"pattern_discovery", "pattern_analysis", "model_training", "model_validation", "model_deployment"},
		TrainingStep: "model_training",
	},
}

// Variables lists every variable Apply reads, workflow by workflow.
func Variables() []string {
	var out []string
	for _, w := range Workflows {
		for _, v := range w.variables() {
			out = append(out, v.name)
		}
	}
	return out
}

// variable is one environment variable and how it becomes a setting.
type variable struct {
	name string
	kind kind
	// set puts the parsed value into the settings document of configure_workflow.
	set func(s map[string]any, v any)
}

type kind int

const (
	kindBool kind = iota
	kindPercent
	kindTimeout
	kindRetries
	kindDelay
	kindConcurrency
)

func stepSetting(s map[string]any, step, key string, v any) {
	steps, _ := s["steps"].(map[string]any)
	if steps == nil {
		steps = map[string]any{}
		s["steps"] = steps
	}
	one, _ := steps[step].(map[string]any)
	if one == nil {
		one = map[string]any{}
		steps[step] = one
	}
	one[key] = v
}

func (w Workflow) variables() []variable {
	vars := []variable{{w.EnabledVar, kindBool, func(s map[string]any, v any) {
		s["enabled"], s["default_canary_percent"] = v, w.DefaultCanary
	}}}
	if w.CanaryVar != "" {
		vars = append(vars, variable{w.CanaryVar, kindPercent, func(s map[string]any, v any) { s["canary_percent"] = v }})
	}
	p := w.Prefix + "_WORKFLOW_"
	vars = append(vars,
		variable{p + "TIMEOUT_MS", kindTimeout, func(s map[string]any, v any) { s["timeout_ms"] = v }},
		variable{p + "RETRIES", kindRetries, func(s map[string]any, v any) { s["max_attempts"] = v.(int64) + 1 }},
		variable{p + "RETRY_DELAY_MS", kindDelay, func(s map[string]any, v any) { s["retry_base_ms"] = v }},
		variable{p + "CONCURRENCY", kindConcurrency, func(s map[string]any, v any) { stepSetting(s, w.TrainingStep, "max_concurrency", v) }},
	)
	for _, step := range w.Steps {
		vars = append(vars, variable{w.Prefix + "_" + strings.ToUpper(step) + "_TIMEOUT_MS", kindTimeout,
			func(s map[string]any, v any) { stepSetting(s, step, "timeout_ms", v) }})
	}
	return vars
}

// parse checks one value; the error says what a valid one looks like.
func (k kind) parse(raw string) (any, error) {
	if k == kindBool {
		switch strings.ToLower(raw) {
		case "true", "1", "yes", "on":
			return true, nil
		case "false", "0", "no", "off":
			return false, nil
		}
		return nil, errors.New("want true or false")
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return nil, errors.New("not a whole number")
	}
	bounds := map[kind]struct {
		lo, hi int64
		what   string
	}{
		kindPercent:     {0, 100, "a percentage must be between 0 and 100"},
		kindTimeout:     {1, 31536000000, "a timeout must be a positive number of milliseconds (at most a year)"},
		kindRetries:     {0, 999, "retries must be between 0 and 999"},
		kindDelay:       {0, 86400000, "a retry delay must be between 0 and 86400000 milliseconds"},
		kindConcurrency: {1, 1000000, "a concurrency limit must be between 1 and 1000000"},
	}[k]
	if n < bounds.lo || n > bounds.hi {
		return nil, errors.New(bounds.what)
	}
	return n, nil
}

// Settings is what the environment says about one workflow.
type Settings struct {
	Workflow string
	// Document is the argument of qflow.configure_workflow.
	Document map[string]any
	// Vars are the variables it came from, NAME=value.
	Vars []string
}

// Parse reads the variables from getenv and returns the settings of every workflow that has
// any. An invalid value is an error naming its variable; all of them are reported at once.
func Parse(getenv func(string) string) ([]Settings, error) {
	var out []Settings
	var errs []error
	for _, w := range Workflows {
		s := Settings{Workflow: w.Name, Document: map[string]any{}}
		for _, v := range w.variables() {
			raw := strings.TrimSpace(getenv(v.name))
			if raw == "" {
				continue
			}
			val, err := v.kind.parse(raw)
			if err != nil {
				errs = append(errs, fmt.Errorf("invalid %s=%q: %w", v.name, raw, err))
				continue
			}
			v.set(s.Document, val)
			s.Vars = append(s.Vars, v.name+"="+raw)
		}
		if len(s.Vars) > 0 {
			out = append(out, s)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Apply parses the variables and writes them to the rollout and definition tables through
// qflow.configure_workflow. With nothing set it does nothing. It returns the settings applied.
func Apply(ctx context.Context, db gen.DBTX, getenv func(string) string) ([]Settings, error) {
	all, err := Parse(getenv)
	if err != nil {
		return nil, err
	}
	q := gen.New(db)
	for _, s := range all {
		doc, err := json.Marshal(s.Document)
		if err != nil {
			return nil, fmt.Errorf("encoding the settings of %s: %w", s.Workflow, err)
		}
		if _, err := q.ConfigureWorkflow(ctx, gen.ConfigureWorkflowParams{Workflow: s.Workflow, Settings: doc}); err != nil {
			return nil, fmt.Errorf("applying %s to %s: %w", strings.Join(s.Vars, " "), s.Workflow, err)
		}
	}
	return all, nil
}
