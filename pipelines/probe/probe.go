// Package probe defines tiny workflows whose behaviour comes from the run input. Tests,
// benchmarks and smoke checks use them to drive the engine through every path.
//
// Run input fields:
//
//	sleep_ms  number, or {"step": ms}: how long a step works (honouring cancellation)
//	fail      {"step": n}: the step fails its first n attempts, then succeeds
//	fatal     ["step", ...]: the step fails with a permanent error
//	panic     {"step": n}: the step's handler panics on its first n attempts (a failed attempt)
//	hang      ["step", ...]: the step ignores cancellation and sleeps hang_ms (default 60000)
//	seed      number: the value roots start from (default 0)
//
// Every step outputs {"step": name, "value": v} with v = 1 + 2*seed for a root and
// v = 1 + 2*(sum of the dependencies' values) otherwise, so a test can check that data
// flowed along every edge: probe_chain with seed 0 ends with e = 31, probe_diamond with d = 13.
// probe_limited (a→b→c, c = 7 with seed 0) runs its b step at most twice at once, fleet-wide.
// probe_branch (check→{big, small}→finish) takes one branch by its input's size: big runs only
// when the input holds {"size": "big"}, small only for {"size": "small"}, and finish outputs
// {"path": "big"} or {"path": "small"}; with any other size both branches and finish are
// skipped and the run succeeds.
//
// probe_map (split→square→total): split outputs {"items": [1..n]} (n from the input, default
// 3), square maps over items and outputs e*e for its element e, total outputs {"sum": <sum of
// the squares>}. Input fail_item: k makes the element k (the item of value k) fail its first
// attempt, fatal_item: k fail for good; sleep_ms as above (for "square", per element).
//
// probe_cached (load→use): load is cached for an hour on the input's key; it outputs
// {"key": <key>, "computed_by": <run id>}, so a later run whose load came from the cache shows
// the run that computed it; use outputs {"computed_by": ...} from it.
package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/quantumflow/qflow/pipelines"
)

// Chain is a→b→c→d→e.
const Chain = "probe_chain"

// Diamond is a→{b,c}→d.
const Diamond = "probe_diamond"

// Limited is a→b→c where b has max_concurrency LimitedSlots.
const Limited = "probe_limited"

// LimitedSlots is how many b steps of probe_limited may run at once across all runs.
const LimitedSlots = 2

// Branch is check→{big, small}→finish, big and small conditional on the input's size.
const Branch = "probe_branch"

// Map is split→square→total, square a map step over split's items.
const Map = "probe_map"

// Cached is load→use, load cached on the input's key for CachedTTL.
const Cached = "probe_cached"

// CachedTTL is the cache lifetime of probe_cached's load step.
const CachedTTL = time.Hour

// Register adds probe_chain, probe_diamond and probe_limited to reg.
func Register(reg *pipelines.Registry) {
	reg.MustAdd(Workflow(Chain, map[string][]string{"a": nil, "b": {"a"}, "c": {"b"}, "d": {"c"}, "e": {"d"}}))
	reg.MustAdd(Workflow(Diamond, map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}))
	limited := Workflow(Limited, map[string][]string{"a": nil, "b": {"a"}, "c": {"b"}})
	for i := range limited.Steps {
		if limited.Steps[i].Name == "b" {
			limited.Steps[i].MaxConcurrency = LimitedSlots
		}
	}
	reg.MustAdd(limited)
	reg.MustAdd(BranchWorkflow())
	reg.MustAdd(MapWorkflow())
	reg.MustAdd(CachedWorkflow())
}

// MapWorkflow is probe_map.
func MapWorkflow() pipelines.Workflow {
	w := Workflow(Map, map[string][]string{"split": nil, "square": {"split"}, "total": {"square"}})
	for i := range w.Steps {
		switch w.Steps[i].Name {
		case "split":
			w.Steps[i].Handler = split
		case "square":
			w.Steps[i].Map = "split.items"
			w.Steps[i].Handler = square
		case "total":
			w.Steps[i].Handler = total
		}
	}
	return w
}

// MapParams is probe_map's input.
type MapParams struct {
	N         *int            `json:"n"`
	FailItem  *int64          `json:"fail_item"`
	FatalItem *int64          `json:"fatal_item"`
	SleepMS   json.RawMessage `json:"sleep_ms"`
}

func mapParams(in pipelines.Input) (MapParams, error) {
	var p MapParams
	if len(in.Run) > 0 {
		if err := json.Unmarshal(in.Run, &p); err != nil {
			return p, pipelines.Permanent(fmt.Errorf("probe_map input: %w", err))
		}
	}
	return p, nil
}

func split(ctx context.Context, in pipelines.Input) (any, error) {
	p, err := mapParams(in)
	if err != nil {
		return nil, err
	}
	n := 3
	if p.N != nil {
		n = *p.N
	}
	if n < 0 || n > 1_000_000 {
		return nil, pipelines.Permanent(fmt.Errorf("probe_map: n must be between 0 and 1000000, got %d", n))
	}
	items := make([]int64, n)
	for i := range items {
		items[i] = int64(i + 1)
	}
	return map[string][]int64{"items": items}, nil
}

func square(ctx context.Context, in pipelines.Input) (any, error) {
	p, err := mapParams(in)
	if err != nil {
		return nil, err
	}
	var e int64
	if err := json.Unmarshal(in.Item, &e); err != nil {
		return nil, pipelines.Permanent(fmt.Errorf("probe_map: square's element %s: %w", in.Item, err))
	}
	if err := sleep(ctx, p.SleepMS, in.Step); err != nil {
		return nil, err
	}
	if p.FatalItem != nil && *p.FatalItem == e {
		return nil, pipelines.Permanent(fmt.Errorf("probe_map: element %d is fatal by request", e))
	}
	if p.FailItem != nil && *p.FailItem == e && in.Attempt == 1 {
		return nil, fmt.Errorf("probe_map: element %d fails its first attempt by request", e)
	}
	return e * e, nil
}

func total(_ context.Context, in pipelines.Input) (any, error) {
	var squares []int64
	if err := json.Unmarshal(in.Deps["square"], &squares); err != nil {
		return nil, pipelines.Permanent(fmt.Errorf("probe_map: square's output: %w", err))
	}
	var sum int64
	for _, s := range squares {
		sum += s
	}
	return map[string]int64{"sum": sum}, nil
}

// CachedWorkflow is probe_cached.
func CachedWorkflow() pipelines.Workflow {
	w := Workflow(Cached, map[string][]string{"load": nil, "use": {"load"}})
	for i := range w.Steps {
		switch w.Steps[i].Name {
		case "load":
			w.Steps[i].CacheTTLMS = CachedTTL.Milliseconds()
			w.Steps[i].CacheKey = []string{"input.key"}
			w.Steps[i].Handler = load
		case "use":
			w.Steps[i].Handler = use
		}
	}
	return w
}

func load(ctx context.Context, in pipelines.Input) (any, error) {
	var p struct {
		Key     json.RawMessage `json:"key"`
		SleepMS json.RawMessage `json:"sleep_ms"`
	}
	if err := json.Unmarshal(in.Run, &p); err != nil {
		return nil, pipelines.Permanent(fmt.Errorf("probe_cached input: %w", err))
	}
	if err := sleep(ctx, p.SleepMS, in.Step); err != nil {
		return nil, err
	}
	return map[string]any{"key": p.Key, "computed_by": in.RunID}, nil
}

func use(_ context.Context, in pipelines.Input) (any, error) {
	var o struct {
		ComputedBy int64 `json:"computed_by"`
	}
	if err := json.Unmarshal(in.Deps["load"], &o); err != nil {
		return nil, pipelines.Permanent(fmt.Errorf("probe_cached: load's output: %w", err))
	}
	return map[string]int64{"computed_by": o.ComputedBy}, nil
}

// sleep waits as sleep_ms asks for the step, or until ctx ends.
func sleep(ctx context.Context, raw json.RawMessage, step string) error {
	d, err := sleepFor(raw, step)
	if err != nil {
		return pipelines.Permanent(err)
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// BranchWorkflow is probe_branch.
func BranchWorkflow() pipelines.Workflow {
	w := Workflow(Branch, map[string][]string{"check": nil, "big": {"check"}, "small": {"check"}, "finish": {"big", "small"}})
	for i := range w.Steps {
		switch w.Steps[i].Name {
		case "big", "small":
			w.Steps[i].Condition = map[string]any{"input": map[string]any{"size": w.Steps[i].Name}}
		case "finish":
			w.Steps[i].Handler = finishBranch
		}
	}
	return w
}

// finishBranch names the branch that ran: the dependency whose output is not null (a skipped
// dependency's is).
func finishBranch(_ context.Context, in pipelines.Input) (any, error) {
	for _, name := range []string{"big", "small"} {
		if raw := in.Deps[name]; len(raw) > 0 && string(raw) != "null" {
			return map[string]string{"path": name}, nil
		}
	}
	return nil, pipelines.Permanent(errors.New("probe_branch: finish ran with neither branch"))
}

// Workflow builds a probe workflow with the given edges (step -> dependencies); every step
// has the probe settings (3 attempts, 100 ms base retry delay, 5 s timeout) and the probe
// handler. Tests use it to build their own shapes and then adjust settings.
func Workflow(name string, deps map[string][]string) pipelines.Workflow {
	names := make([]string, 0, len(deps))
	for n := range deps {
		names = append(names, n)
	}
	sort.Strings(names)
	w := pipelines.Workflow{Name: name, Description: "probe workflow: behaviour from the run input", TimeoutMS: 600000}
	for _, n := range names {
		w.Steps = append(w.Steps, pipelines.Step{
			Name: n, DependsOn: deps[n], WorkerClass: "cpu",
			MaxAttempts: 3, RetryBaseMS: 100, RetryMaxMS: 2000, TimeoutMS: 5000,
			Handler: Handle,
		})
	}
	return w
}

// Params is the run input the probe handler understands.
type Params struct {
	SleepMS json.RawMessage `json:"sleep_ms"`
	Fail    map[string]int  `json:"fail"`
	Fatal   []string        `json:"fatal"`
	Panic   map[string]int  `json:"panic"`
	Hang    []string        `json:"hang"`
	HangMS  int64           `json:"hang_ms"`
	Seed    int64           `json:"seed"`
}

// Output is what every probe step returns.
type Output struct {
	Step  string `json:"step"`
	Value int64  `json:"value"`
}

// Handle is the probe step handler.
func Handle(ctx context.Context, in pipelines.Input) (any, error) {
	var p Params
	if len(in.Run) > 0 {
		if err := json.Unmarshal(in.Run, &p); err != nil {
			return nil, pipelines.Permanent(fmt.Errorf("probe input: %w", err))
		}
	}
	if contains(p.Hang, in.Step) {
		hang := p.HangMS
		if hang == 0 {
			hang = 60000
		}
		time.Sleep(time.Duration(hang) * time.Millisecond) // deliberately deaf to ctx
	}
	if d, err := sleepFor(p.SleepMS, in.Step); err != nil {
		return nil, pipelines.Permanent(err)
	} else if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	if contains(p.Fatal, in.Step) {
		return nil, pipelines.Permanent(fmt.Errorf("probe: step %s is fatal by request", in.Step))
	}
	if n := p.Panic[in.Step]; in.Attempt <= n {
		panic(fmt.Sprintf("probe: step %s panics on attempt %d of its first %d by request", in.Step, in.Attempt, n))
	}
	if n := p.Fail[in.Step]; in.Attempt <= n {
		return nil, fmt.Errorf("probe: step %s fails attempt %d of its first %d by request", in.Step, in.Attempt, n)
	}

	value := 1 + 2*p.Seed
	if len(in.Deps) > 0 {
		var sum int64
		for name, raw := range in.Deps {
			var o Output
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, pipelines.Permanent(fmt.Errorf("probe: output of %s: %w", name, err))
			}
			sum += o.Value
		}
		value = 1 + 2*sum
	}
	return Output{Step: in.Step, Value: value}, nil
}

func sleepFor(raw json.RawMessage, step string) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var ms float64
	if err := json.Unmarshal(raw, &ms); err == nil {
		return time.Duration(ms * float64(time.Millisecond)), nil
	}
	var per map[string]float64
	if err := json.Unmarshal(raw, &per); err != nil {
		return 0, errors.New("probe: sleep_ms must be a number or an object of step -> ms")
	}
	return time.Duration(per[step] * float64(time.Millisecond)), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
