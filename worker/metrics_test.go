package worker_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/worker"
)

func TestMetricsCountStepsRunsQueuesAndWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reg := prometheus.NewRegistry()
	m, err := worker.NewMetrics(reg)
	require.NoError(t, err)
	m.ReportLag = 50 * time.Millisecond
	b.StartWorker(t, worker.Config{ID: "metered", MaxWorkers: 2, Metrics: m, ReportInterval: 100 * time.Millisecond})

	b.Start(t, "probe_chain", `{"fail": {"b": 1}}`)
	b.Start(t, "probe_diamond", `{"fatal": ["a"]}`)
	b.WaitRuns(t, time.Minute)

	// Step outcomes, observed by the process that ran them.
	require.Equal(t, 5.0, value(t, reg, "qflow_steps_total", `workflow="probe_chain"`, `outcome="succeeded"`))
	require.Equal(t, 1.0, value(t, reg, "qflow_steps_total", `workflow="probe_chain"`, `step="b"`, `outcome="retried"`))
	require.Equal(t, 1.0, value(t, reg, "qflow_steps_total", `workflow="probe_diamond"`, `step="a"`, `outcome="failed"`))
	// How each attempt arrived: a chain's first step and the retried b from the queue; c, d
	// and e handed on eagerly by the step before (one worker, nothing else queued).
	require.Equal(t, 1.0, value(t, reg, "qflow_steps_started_total", `workflow="probe_chain"`, `step="a"`, `dispatch="queue"`))
	require.Equal(t, 1.0, value(t, reg, "qflow_steps_started_total", `workflow="probe_chain"`, `step="b"`, `dispatch="eager"`))
	require.Equal(t, 1.0, value(t, reg, "qflow_steps_started_total", `workflow="probe_chain"`, `step="b"`, `dispatch="queue"`))
	for _, step := range []string{`step="c"`, `step="d"`, `step="e"`} {
		require.Equal(t, 1.0, value(t, reg, "qflow_steps_started_total", `workflow="probe_chain"`, step, `dispatch="eager"`))
	}

	// Runs, queues and workers, from the database by the reporter.
	require.Eventually(t, func() bool {
		text := scrape(t, reg)
		return strings.Contains(text, `qflow_runs_total{mode="workflow",status="succeeded",workflow="probe_chain"} 1`) &&
			strings.Contains(text, `qflow_runs_total{mode="workflow",status="failed",workflow="probe_diamond"} 1`) &&
			strings.Contains(text, `qflow_run_duration_seconds_count{mode="workflow",status="succeeded",workflow="probe_chain"} 1`) &&
			strings.Contains(text, `qflow_workers{class="cpu"} 1`) &&
			strings.Contains(text, `qflow_queue_depth{queue="cpu"} 0`) &&
			strings.Contains(text, `qflow_metrics_reporter 1`)
	}, 20*time.Second, 50*time.Millisecond, "database-derived metrics never appeared")
	require.Zero(t, value(t, reg, "qflow_steps_in_flight", `workflow="probe_chain"`, `step="b"`))

	// Work waiting with no worker for its class shows as depth and age.
	b.add(t, "gpu_only", map[string][]string{"train": nil}, func(wf *pipelines.Workflow) { wf.Steps[0].WorkerClass = "gpu" })
	b.Start(t, "gpu_only", `{}`)
	require.Eventually(t, func() bool {
		return strings.Contains(scrape(t, reg), `qflow_queue_depth{queue="gpu"} 1`)
	}, 20*time.Second, 50*time.Millisecond)

	// A legacy-mode run's steps all run inside its one job.
	_, err = b.Pool.Exec(b.Ctx, "INSERT INTO qflow.runs (workflow, mode) VALUES ('probe_chain', 'legacy')")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return value(t, reg, "qflow_steps_started_total", `workflow="probe_chain"`, `dispatch="legacy"`) == 5
	}, 20*time.Second, 50*time.Millisecond)
}

func TestServeMetricsExposesTheRegistry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := worker.ServeMetrics(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	resp, err := http.Get("http://" + addr.String() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "go_goroutines")

	_, err = worker.ServeMetrics(ctx, addr.String())
	require.ErrorContains(t, err, "listening for /metrics on "+addr.String())
}

// scrape renders the registry in the text format Prometheus scrapes.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	var b strings.Builder
	for _, f := range families {
		_, err := expfmt.MetricFamilyToText(&b, f)
		require.NoError(t, err)
	}
	return b.String()
}

// value sums the samples of a counter or gauge family whose labels include all of the given
// name="value" pairs.
func value(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]bool{}
			for _, l := range m.GetLabel() {
				have[l.GetName()+`="`+l.GetValue()+`"`] = true
			}
			for _, want := range labels {
				if !have[want] {
					continue metrics
				}
			}
			if m.GetCounter() != nil {
				sum += m.GetCounter().GetValue()
			} else {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
