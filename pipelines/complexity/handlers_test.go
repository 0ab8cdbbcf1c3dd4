package complexity_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/complexity"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// handlerBundle calls complexity_training's handlers directly, the way the engine calls them,
// on a database of generated records: no worker, and no engine (mapping a step over an array
// and reusing cached outputs are the engine's; these tests do what it would).
type handlerBundle struct {
	*enginetest.Env
	wf        pipelines.Workflow
	artifacts *ml.Artifacts
}

// setupHandlers makes a database with rows generated task executions.
func setupHandlers(t *testing.T, rows int) *handlerBundle {
	t.Helper()
	env := enginetest.New(t, enginetest.Probes)
	if rows > 0 {
		recs := complexity.Generate(complexity.GenerateOptions{Rows: rows, Days: 20, Now: time.Now(), Unlabelled: 0.1, Seed: 11})
		n, err := complexity.Insert(env.Ctx, env.Pool, recs)
		require.NoError(t, err)
		require.EqualValues(t, rows, n)
	}
	return &handlerBundle{Env: env, wf: complexity.Workflow(complexity.Options{DB: env.Pool, Trainer: ml.NewTrainer(nil)}),
		artifacts: ml.NewArtifacts(env.Pool)}
}

// newRun inserts a run for artifacts and models to belong to (a probe's: nothing runs it).
func (b *handlerBundle) newRun(t *testing.T) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "INSERT INTO qflow.runs (workflow) VALUES ('probe_chain') RETURNING id").Scan(&id))
	return id
}

func (b *handlerBundle) step(t *testing.T, name string) pipelines.Step {
	t.Helper()
	for _, s := range b.wf.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %s", name)
	return pipelines.Step{}
}

// call runs a step of run with the run input and the outputs of earlier steps, and returns its
// output as the engine stores it. A map step runs once per element, and its output is the
// array of theirs.
func (b *handlerBundle) call(t *testing.T, run int64, name, input string, outputs map[string]json.RawMessage) (json.RawMessage, error) {
	t.Helper()
	s := b.step(t, name)
	in := pipelines.Input{RunID: run, Step: name, Attempt: 1, Run: json.RawMessage(input), Deps: map[string]json.RawMessage{}, Task: -1}
	for _, d := range s.DependsOn {
		in.Deps[d] = outputs[d]
	}
	if s.Map == "" {
		return b.handle(t, s, in)
	}
	dep, path, _ := strings.Cut(s.Map, ".")
	var doc map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(in.Deps[dep], &doc))
	var items []json.RawMessage
	require.NoError(t, json.Unmarshal(doc[path], &items))
	outs := make([]json.RawMessage, len(items))
	for i, item := range items {
		in.Task, in.Item = i, item
		out, err := b.handle(t, s, in)
		if err != nil {
			return nil, err
		}
		outs[i] = out
	}
	return json.Marshal(outs)
}

func (b *handlerBundle) handle(t *testing.T, s pipelines.Step, in pipelines.Input) (json.RawMessage, error) {
	t.Helper()
	out, err := s.Handler(b.Ctx, in)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(out)
	require.NoError(t, err)
	return raw, nil
}

// chain runs the steps of run in order up to and including last, each with its predecessors'
// outputs (those in outputs already are taken as they are, as a cached output would be), and
// returns every output.
func (b *handlerBundle) chain(t *testing.T, run int64, input, last string, outputs map[string]json.RawMessage) map[string]json.RawMessage {
	t.Helper()
	if outputs == nil {
		outputs = map[string]json.RawMessage{}
	}
	for _, s := range b.wf.Steps {
		if _, reused := outputs[s.Name]; !reused {
			out, err := b.call(t, run, s.Name, input, outputs)
			require.NoError(t, err, "step %s", s.Name)
			outputs[s.Name] = out
		}
		if s.Name == last {
			return outputs
		}
	}
	t.Fatalf("no step %s", last)
	return nil
}

// decode decodes a step's output.
func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(raw, &v))
	return v
}
