package pipelines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/quantumflow/qflow/gen"
)

// Workflow is a workflow definition: a DAG of steps. Its JSON form is the document
// qflow.register_workflow takes.
type Workflow struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// TimeoutMS is the run deadline, from start to the last step.
	TimeoutMS int64  `json:"timeout_ms,omitempty"`
	Steps     []Step `json:"steps"`
}

// Step is one node of a workflow. Zero values take the database's defaults (worker class
// cpu, 3 attempts, 1 s base retry delay capped at 60 s, 60 s timeout, no concurrency limit).
type Step struct {
	Name      string   `json:"name"`
	DependsOn []string `json:"depends_on,omitempty"`
	// WorkerClass is the River queue the step runs on: "cpu", "gpu", ...
	WorkerClass string `json:"worker_class,omitempty"`
	MaxAttempts int    `json:"max_attempts,omitempty"`
	RetryBaseMS int64  `json:"retry_base_ms,omitempty"`
	RetryMaxMS  int64  `json:"retry_max_ms,omitempty"`
	TimeoutMS   int64  `json:"timeout_ms,omitempty"`
	// MaxConcurrency limits how many runs execute this step at once, fleet-wide.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// OnFailure is "fail" (the default: the run fails) or "skip" (successors go on without it).
	OnFailure     string         `json:"on_failure,omitempty"`
	ResourceHints map[string]any `json:"resource_hints,omitempty"`
	// Condition makes the step run only when {"input": <run input>, <dependency>: <its output>,
	// ...} contains it (JSON containment); otherwise it is skipped. A step whose dependencies
	// were all skipped is skipped too.
	Condition map[string]any `json:"condition,omitempty"`
	// Map makes the step a map step: it runs once per element of an array, each element a task
	// with its own attempts, and its output is the array of the tasks' outputs in element order.
	// The array is "input.<path>" (a field of the run input) or "<dependency>[.<path>]" (a
	// dependency's output or a field of it); a path descends objects by dot-separated keys.
	Map string `json:"map,omitempty"`
	// MaxItems bounds a map step's elements (default 10000); a longer array fails the step.
	MaxItems int `json:"max_items,omitempty"`
	// CacheTTLMS makes the step cached: a succeeded output of the same workflow, step and
	// version whose input hashed the same, at most this old, is reused without running the
	// handler (the attempt is recorded as cached).
	CacheTTLMS int64 `json:"cache_ttl_ms,omitempty"`
	// CacheKey names what the input hash covers: paths such as "input.days_back" or
	// "data_fingerprint" (a dependency's output) or "data_fingerprint.rows"; empty: the whole run
	// input and every dependency's output.
	CacheKey []string `json:"cache_key,omitempty"`

	Handler Handler `json:"-"`
}

// Input is what a step handler receives.
type Input struct {
	RunID   int64
	Step    string
	Attempt int
	// Run is the run's input object.
	Run json.RawMessage
	// Deps holds the output of each step this one depends on, by step name.
	Deps map[string]json.RawMessage
	// Task is the element's index when the step is a map step, -1 otherwise; Item is the
	// element itself.
	Task int
	Item json.RawMessage
}

// Handler executes one step. Its context ends at the step timeout, when the run is cancelled
// or when the worker shuts down; a handler must return promptly then. The output is encoded as
// JSON (a json.RawMessage is used as is). An error is retried unless marked with Permanent.
type Handler func(ctx context.Context, in Input) (any, error)

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the step fails at once (or is skipped, if its
// definition says so).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Registry maps workflow and step names to definitions and handlers. It is safe for
// concurrent use.
type Registry struct {
	mu        sync.RWMutex
	workflows map[string]Workflow
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{workflows: map[string]Workflow{}}
}

// Add registers a workflow and its handlers. Structural checks (cycles, unknown dependencies,
// bad numbers) are the database's; Add only refuses what the registry itself cannot hold.
func (r *Registry) Add(w Workflow) error {
	if w.Name == "" {
		return errors.New("adding workflow: empty name")
	}
	for _, s := range w.Steps {
		if s.Handler == nil {
			return fmt.Errorf("adding workflow %s: step %s has no handler", w.Name, s.Name)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.workflows[w.Name]; ok {
		return fmt.Errorf("adding workflow %s: already registered", w.Name)
	}
	r.workflows[w.Name] = w
	return nil
}

// MustAdd is Add for definitions known at compile time.
func (r *Registry) MustAdd(w Workflow) {
	if err := r.Add(w); err != nil {
		panic(err)
	}
}

// Handler returns the handler of a step.
func (r *Registry) Handler(workflow, step string) (Handler, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	w, ok := r.workflows[workflow]
	if !ok {
		return nil, false
	}
	for _, s := range w.Steps {
		if s.Name == step {
			return s.Handler, true
		}
	}
	return nil, false
}

// Workflow returns a registered workflow by name.
func (r *Registry) Workflow(name string) (Workflow, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	w, ok := r.workflows[name]
	return w, ok
}

// Workflows returns every registered workflow, sorted by name.
func (r *Registry) Workflows() []Workflow {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Workflow, 0, len(r.workflows))
	for _, w := range r.workflows {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Definition is the JSON document qflow.register_workflow takes.
func (w Workflow) Definition() (json.RawMessage, error) {
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encoding workflow %s: %w", w.Name, err)
	}
	return b, nil
}

// Sync registers every workflow of the registry in the database and returns the version each
// one has there. Registering an unchanged definition is a no-op in the database.
func (r *Registry) Sync(ctx context.Context, db gen.DBTX) (map[string]int32, error) {
	q := gen.New(db)
	versions := map[string]int32{}
	for _, w := range r.Workflows() {
		def, err := w.Definition()
		if err != nil {
			return nil, err
		}
		v, err := q.RegisterWorkflow(ctx, def)
		if err != nil {
			return nil, fmt.Errorf("registering workflow %s: %w", w.Name, err)
		}
		versions[w.Name] = v
	}
	return versions, nil
}
