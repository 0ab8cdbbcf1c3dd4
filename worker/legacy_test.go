package worker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/probe"
)

func TestLegacyModeRunsTheWholeChainInOneJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, "w1", 2)

	// Rollback: every new run of the workflow goes to legacy mode.
	_, err := b.pool.Exec(b.ctx, "INSERT INTO qflow.rollouts (workflow, enabled) VALUES ($1, false)", probe.Diamond)
	require.NoError(t, err)
	legacy := b.start(t, probe.Diamond, `{"seed": 3, "fail": {"c": 1}}`)
	fatal := b.start(t, probe.Diamond, `{"fatal": ["b"]}`)
	_, err = b.pool.Exec(b.ctx, "UPDATE qflow.rollouts SET enabled = true, canary_percent = 100 WHERE workflow = $1", probe.Diamond)
	require.NoError(t, err)
	modern := b.start(t, probe.Diamond, `{"seed": 3, "fail": {"c": 1}}`)
	b.waitRuns(t, time.Minute)

	require.Equal(t, "legacy", modeOf(t, b, legacy))
	require.Equal(t, "workflow", modeOf(t, b, modern))
	l, m := b.run(t, legacy), b.run(t, modern)
	require.Equal(t, "succeeded", l.Status)
	require.Equal(t, "succeeded", m.Status)
	require.JSONEq(t, string(m.Output), string(l.Output), "both modes compute the same output")
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1", legacy), "legacy mode keeps no per-step state")
	require.Equal(t, 2, b.count(t, "SELECT attempt FROM qflow.runs WHERE id = $1", legacy), "the failure retried the whole chain")

	f := b.run(t, fatal)
	require.Equal(t, "failed", f.Status)
	require.Contains(t, *f.Error, "legacy run failed permanently: step b: probe: step b is fatal by request")
	require.Equal(t, 1, b.count(t, "SELECT attempt FROM qflow.runs WHERE id = $1", fatal))
}

func modeOf(t *testing.T, b *testBundle, run int64) string {
	t.Helper()
	var mode string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT mode FROM qflow.runs WHERE id = $1", run).Scan(&mode))
	return mode
}
