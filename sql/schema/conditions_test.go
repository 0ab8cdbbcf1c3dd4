package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

// branch registers check→{big, small}→finish with big and small conditional on the input.
func (b *testBundle) branch(t *testing.T) {
	b.register(t, "branch", map[string][]string{"check": nil, "big": {"check"}, "small": {"check"}, "finish": {"big", "small"}},
		func(w *pipelines.Workflow) {
			for i := range w.Steps {
				if n := w.Steps[i].Name; n == "big" || n == "small" {
					w.Steps[i].Condition = map[string]any{"input": map[string]any{"size": n}}
				}
			}
		})
}

func TestAConditionPicksTheBranchAndTheJoinRunsAfterIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.branch(t)
	run := b.start(t, "branch", `{"size": "big"}`)
	b.runStep(t, run, "check")

	require.Equal(t, "queued", b.stepStatus(t, run, "big"))
	require.Equal(t, "skipped", b.stepStatus(t, run, "small"), "its condition is false: skipped without running")
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'small'", run))
	require.Equal(t, "waiting", b.stepStatus(t, run, "finish"), "the join waits for the branch that runs")

	b.runStep(t, run, "big")
	attempt := b.stepInt(t, run, "finish", "attempt")
	var deps string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT deps::text FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', 'finish', 'attempt', $2::integer)), 'w')`, run, attempt).Scan(&deps))
	require.JSONEq(t, `{"big": {"ok": true}, "small": null}`, deps, "a skipped dependency gives null")
	require.True(t, b.complete(t, run, "finish", attempt, `{"path": "big"}`))
	require.Equal(t, "succeeded", b.runStatus(t, run))
}

func TestWhenEveryBranchIsSkippedTheJoinIsSkippedAndTheRunSucceeds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.branch(t)
	run := b.start(t, "branch", `{"size": "medium"}`)
	b.runStep(t, run, "check")

	for _, s := range []string{"big", "small", "finish"} {
		require.Equal(t, "skipped", b.stepStatus(t, run, s), s)
	}
	require.Equal(t, "succeeded", b.runStatus(t, run))
	require.JSONEq(t, `{}`, string(mustJSON(t, b.statusDoc(t, run)["output"])), "no leaf ran")
}

func TestASkipCascadesDownAChainAndARootCanBeSkippedAtStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "gated", map[string][]string{"a": nil, "b": {"a"}, "c": {"b"}, "d": {"c"}}, func(w *pipelines.Workflow) {
		for i := range w.Steps {
			switch w.Steps[i].Name {
			case "a":
				w.Steps[i].Condition = map[string]any{"input": map[string]any{"go": true}}
			case "b":
				// A condition on a dependency's output.
				w.Steps[i].Condition = map[string]any{"a": map[string]any{"ok": true}}
			}
		}
	})
	stopped := b.start(t, "gated", `{"go": false}`)
	for _, s := range []string{"a", "b", "c", "d"} {
		require.Equal(t, "skipped", b.stepStatus(t, stopped, s), s)
	}
	require.Equal(t, "succeeded", b.runStatus(t, stopped), "nothing ran, nothing failed")
	require.Zero(t, b.count(t, "SELECT count(*) FROM river.river_job WHERE (args ->> 'run_id')::bigint = $1", stopped))

	gone := b.start(t, "gated", `{"go": true}`)
	require.True(t, b.complete(t, gone, "a", b.claim(t, gone, "a"), `{"ok": false}`))
	for _, s := range []string{"b", "c", "d"} {
		require.Equal(t, "skipped", b.stepStatus(t, gone, s), s)
	}
	require.Equal(t, "succeeded", b.runStatus(t, gone))

	through := b.start(t, "gated", `{"go": true}`)
	require.True(t, b.complete(t, through, "a", b.claim(t, through, "a"), `{"ok": true}`))
	require.Equal(t, "queued", b.stepStatus(t, through, "b"))
}

func TestConditionsAreCheckedAtRegistration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct{ def, err string }{
		{`{"name": "x", "steps": [{"name": "a", "condition": "yes"}]}`, `condition must be a JSON object`},
		{`{"name": "x", "steps": [{"name": "a"}, {"name": "b", "depends_on": ["a"], "condition": {"c": {}}}]}`,
			`condition names "c", which is neither "input" nor a dependency of the step`},
		{`{"name": "x", "steps": [{"name": "input"}, {"name": "b", "depends_on": ["input"], "condition": {"input": {}}}]}`,
			`cannot depend on a step named "input"`},
	} {
		require.ErrorContains(t, b.execErr("SELECT qflow.register_workflow($1)", c.def), c.err, c.def)
	}
}
