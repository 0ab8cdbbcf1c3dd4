package schema_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

func TestStatusMetricsAndListWorkflowsDescribeRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, func(w *pipelines.Workflow) { w.Steps[1].MaxAttempts = 2 }) // b
	run := b.start(t, "chain", `{"x": 1}`)
	b.runStep(t, run, "a")
	require.Equal(t, "retry", b.fail(t, run, "b", b.claim(t, run, "b"), false))
	b.exec(t, "UPDATE river.river_job SET scheduled_at = now() WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'b')", run)
	b.runStep(t, run, "b")
	b.runStep(t, run, "c")
	failed := b.start(t, "chain", "{}")
	require.Equal(t, "failed", b.fail(t, failed, "a", b.claim(t, failed, "a"), true))
	b.start(t, "chain", "{}")

	doc := b.statusDoc(t, run)
	require.Equal(t, "succeeded", doc["status"])
	steps := doc["steps"].([]any)
	require.Len(t, steps, 3)
	stepB := steps[1].(map[string]any)
	require.Equal(t, "b", stepB["step"])
	require.Equal(t, float64(2), stepB["attempt"])
	attempts := stepB["attempts"].([]any)
	require.Len(t, attempts, 2)
	require.Equal(t, "failed", attempts[0].(map[string]any)["status"])
	require.Equal(t, "boom", attempts[0].(map[string]any)["error"])
	require.Equal(t, "succeeded", attempts[1].(map[string]any)["status"])

	var raw []byte
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.metrics($1)", run).Scan(&raw))
	var m struct {
		Attempts        int                `json:"attempts"`
		AttemptsFailed  int                `json:"attempts_failed"`
		SuccessRate     float64            `json:"success_rate"`
		ErrorRate       float64            `json:"error_rate"`
		Retries         int                `json:"retries"`
		StepsSucceeded  int                `json:"steps_succeeded"`
		StepsPerSecond  float64            `json:"steps_per_second"`
		ExecutionMS     float64            `json:"execution_ms"`
		StepDurationMS  map[string]float64 `json:"step_duration_ms"`
		StepQueueWaitMS map[string]float64 `json:"step_queue_wait_ms"`
	}
	require.NoError(t, json.Unmarshal(raw, &m))
	require.Equal(t, 4, m.Attempts)
	require.Equal(t, 1, m.AttemptsFailed)
	require.Equal(t, 1, m.Retries)
	require.Equal(t, 3, m.StepsSucceeded)
	require.InDelta(t, 0.75, m.SuccessRate, 1e-9)
	require.InDelta(t, 0.25, m.ErrorRate, 1e-9)
	require.Greater(t, m.ExecutionMS, 0.0)
	require.Greater(t, m.StepsPerSecond, 0.0)
	require.Len(t, m.StepDurationMS, 3)
	require.Len(t, m.StepQueueWaitMS, 3)

	var name string
	var version int
	var stepNames []string
	var running, succeeded, failedN int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT name, version, steps, running, succeeded, failed FROM qflow.list_workflows()").
		Scan(&name, &version, &stepNames, &running, &succeeded, &failedN))
	require.Equal(t, "chain", name)
	require.Equal(t, 1, version)
	require.Equal(t, []string{"a", "b", "c"}, stepNames)
	require.Equal(t, []int{1, 1, 1}, []int{running, succeeded, failedN})

	require.Equal(t, 3, b.count(t, "SELECT steps_succeeded FROM qflow.run_overview WHERE id = $1", run))
	require.Equal(t, 1, b.count(t, "SELECT retries FROM qflow.run_overview WHERE id = $1", run))
	require.Equal(t, "failed", b.scalar(t, "SELECT status FROM qflow.step_overview WHERE run_id = $1 AND step = 'a'", failed))
	require.ErrorContains(t, b.execErr("SELECT qflow.status(424242)"), "run 424242 does not exist")
}
