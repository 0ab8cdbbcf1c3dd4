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
