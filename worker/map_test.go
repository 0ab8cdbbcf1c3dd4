package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

func TestProbeMapSumsTheSquaresInEitherMode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	m, err := worker.NewMetrics(reg)
	require.NoError(t, err)
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 4, Metrics: m})

	for _, mode := range []string{"workflow", "legacy"} {
		for _, tc := range []struct {
			input string
			sum   int
		}{
			{`{}`, 14},
			{`{"n": 0}`, 0},
			{`{"n": 1}`, 1},
			{`{"n": 10, "fail_item": 4}`, 385},
		} {
			r := b.Wait(t, b.StartMode(t, probe.Map, mode, tc.input), time.Minute)
			require.Equal(t, "succeeded", r.Status, "%s %s: %s", mode, tc.input, r.Error)
			jsonEq(t, fmt.Sprintf(`{"total": {"sum": %d}}`, tc.sum), r.Output)
		}
	}
	// In workflow mode the element that failed once ran twice, and alone.
	require.Equal(t, 1, b.Count(t, `SELECT count(*) FROM qflow.step_runs sr JOIN qflow.runs r ON r.id = sr.run_id
	                                 WHERE r.mode = 'workflow' AND r.input ->> 'fail_item' = '4'
	                                   AND sr.step = 'square[3]' AND sr.attempt = 2 AND sr.item = '4'`))
	require.Zero(t, b.Count(t, `SELECT count(*) FROM qflow.step_runs sr JOIN qflow.runs r ON r.id = sr.run_id
	                             WHERE r.mode = 'workflow' AND r.input ->> 'fail_item' = '4' AND sr.task <> 3 AND sr.attempt <> 1`))
	// Metrics label elements by their step: one series, not one per element.
	text := scrape(t, reg)
	// (A legacy chain's failed attempt is a failure of the chain, retried whole.)
	require.Equal(t, 1.0, value(t, reg, "qflow_steps_total", `workflow="probe_map"`, `step="square"`, `outcome="retried"`))
	require.Equal(t, 1.0, value(t, reg, "qflow_steps_total", `workflow="probe_map"`, `step="square"`, `outcome="failed"`))
	require.False(t, strings.Contains(text, `step="square[`), "a series per element")
}

func TestAnElementThatFailsForGoodFailsTheRunSayingWhich(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "w1"})
	r := b.Wait(t, b.Start(t, probe.Map, `{"n": 4, "fatal_item": 3}`), time.Minute)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, "step square failed: element 2 failed permanently: probe_map: element 3 is fatal by request")
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND status IN ('ready', 'queued', 'running')", r.ID))
}

func TestARunWithTheSameKeyReusesTheCachedStepAndTheReporterCountsTheHit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	m, err := worker.NewMetrics(reg)
	require.NoError(t, err)
	m.ReportLag = 50 * time.Millisecond
	b.StartWorker(t, worker.Config{ID: "w1", Metrics: m, ReportInterval: 100 * time.Millisecond})

	first := b.Wait(t, b.Start(t, probe.Cached, `{"key": "data-v1"}`), time.Minute)
	require.Equal(t, "succeeded", first.Status, first.Error)
	second := b.Wait(t, b.Start(t, probe.Cached, `{"key": "data-v1", "note": "retrain"}`), time.Minute)
	require.Equal(t, "succeeded", second.Status, second.Error)
	jsonEq(t, fmt.Sprintf(`{"use": {"computed_by": %d}}`, first.ID), second.Output)
	other := b.Wait(t, b.Start(t, probe.Cached, `{"key": "data-v2"}`), time.Minute)
	jsonEq(t, fmt.Sprintf(`{"use": {"computed_by": %d}}`, other.ID), other.Output)

	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, reg), `qflow_steps_total{outcome="cached",step="load",workflow="probe_cached"} 1`)
	}, 20*time.Second, 50*time.Millisecond, "the cache hit was never counted")
	require.Equal(t, 2.0, value(t, reg, "qflow_steps_total", `workflow="probe_cached"`, `step="load"`, `outcome="succeeded"`),
		"the two runs that computed load")
}
