package enginetest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

type testBundle struct{ *enginetest.Env }

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{enginetest.New(t, enginetest.Probes)}
}

func TestEnvRunsWorkflowsToTheirEndInEitherMode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.StartWorker(t, worker.Config{ID: "harness"})
	require.Equal(t, "harness", w.ID())

	wf := b.Wait(t, b.Start(t, probe.Chain, `{}`), time.Minute)
	require.Equal(t, "succeeded", wf.Status)
	require.Equal(t, "workflow", wf.Mode)
	require.Empty(t, wf.Error)
	require.JSONEq(t, `{"e": {"step": "e", "value": 31}}`, string(wf.Output))
	var d struct{ Value int }
	b.StepOutput(t, wf.ID, "d", &d)
	require.Equal(t, 15, d.Value)

	lg := b.Wait(t, b.StartMode(t, probe.Diamond, "legacy", `{"fatal": ["b"]}`), time.Minute)
	require.Equal(t, "failed", lg.Status)
	require.Equal(t, "legacy", lg.Mode)
	require.Contains(t, lg.Error, "step b is fatal by request")

	b.Exec(t, "INSERT INTO qflow.runs (workflow) SELECT $1 FROM generate_series(1, 5)", probe.Chain)
	b.WaitRuns(t, time.Minute)
	require.Equal(t, 6, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE status = 'succeeded'"))
	require.Equal(t, 5*6, b.Count(t, "SELECT count(*) FROM qflow.step_attempts WHERE worker = $1", "harness"))
}

func TestEnvsAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := setup(t), enginetest.New(t, nil)
	a.Start(t, probe.Chain, `{}`)
	require.NotEqual(t, a.URL, b.URL)
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.runs"))
	_, ok := b.Registry.Workflow(probe.Chain)
	require.False(t, ok, "New registers only what it is given")
}
