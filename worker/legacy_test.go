package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

func TestLegacyModeRunsTheWholeChainInOneJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 2})

	// Rollback: every new run of the workflow goes to legacy mode.
	_, err := b.Pool.Exec(b.Ctx, "INSERT INTO qflow.rollouts (workflow, enabled) VALUES ($1, false)", probe.Diamond)
	require.NoError(t, err)
	legacy := b.Start(t, probe.Diamond, `{"seed": 3, "fail": {"c": 1}}`)
	fatal := b.Start(t, probe.Diamond, `{"fatal": ["b"]}`)
	_, err = b.Pool.Exec(b.Ctx, "UPDATE qflow.rollouts SET enabled = true, canary_percent = 100 WHERE workflow = $1", probe.Diamond)
	require.NoError(t, err)
	modern := b.Start(t, probe.Diamond, `{"seed": 3, "fail": {"c": 1}}`)
	b.WaitRuns(t, time.Minute)

	l, m := b.Run(t, legacy), b.Run(t, modern)
	require.Equal(t, "legacy", l.Mode)
	require.Equal(t, "workflow", m.Mode)
	require.Equal(t, "succeeded", l.Status)
	require.Equal(t, "succeeded", m.Status)
	require.JSONEq(t, string(m.Output), string(l.Output), "both modes compute the same output")
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1", legacy), "legacy mode keeps no per-step state")
	require.Equal(t, 2, b.Count(t, "SELECT attempt FROM qflow.runs WHERE id = $1", legacy), "the failure retried the whole chain")

	f := b.Run(t, fatal)
	require.Equal(t, "failed", f.Status)
	require.Contains(t, f.Error, "legacy run failed permanently: step b: probe: step b is fatal by request")
	require.Equal(t, 1, b.Count(t, "SELECT attempt FROM qflow.runs WHERE id = $1", fatal))
}
