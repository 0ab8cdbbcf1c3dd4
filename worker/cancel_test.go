package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/worker"
)

// blocking is a handler that runs until its context ends, and says why it ended.
func blocking(started chan<- int64, stopped chan<- error) pipelines.Handler {
	return func(ctx context.Context, in pipelines.Input) (any, error) {
		started <- in.RunID
		<-ctx.Done()
		stopped <- context.Cause(ctx)
		return nil, ctx.Err()
	}
}

func TestCancelRunStopsTheRunningHandlerAndFreesItsSlot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started, stopped := make(chan int64, 1), make(chan error, 1)
	b.add(t, "training", map[string][]string{"a": nil}, func(w *pipelines.Workflow) {
		w.Steps[0].TimeoutMS = 600_000
		w.Steps[0].Handler = blocking(started, stopped)
	})
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 1})

	run := b.Start(t, "training", `{}`)
	<-started
	cancelled := time.Now()
	b.Exec(t, "SELECT qflow.cancel_run($1)", run)
	select {
	case cause := <-stopped:
		t.Logf("cancel_run to the handler's context cancelled: %s", time.Since(cancelled).Round(100*time.Microsecond))
		require.ErrorContains(t, cause, "no longer wants this attempt")
	case <-time.After(30 * time.Second): // the step's timeout is 10 minutes
		t.Fatal("the handler of a cancelled run was not stopped")
	}
	require.Equal(t, "cancelled", b.attempts(t, run, "a")[0].Status)

	// The one slot is free again.
	next := b.Start(t, "probe_chain", `{}`)
	require.Equal(t, "succeeded", b.Wait(t, next, time.Minute).Status)
}

func TestARunPastItsDeadlineStopsItsRunningHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started, stopped := make(chan int64, 1), make(chan error, 1)
	b.add(t, "bounded", map[string][]string{"a": nil}, func(w *pipelines.Workflow) {
		w.TimeoutMS = 500
		w.Steps[0].TimeoutMS = 600_000
		w.Steps[0].Handler = blocking(started, stopped)
	})
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 1})

	run := b.Start(t, "bounded", `{}`)
	<-started
	select {
	case cause := <-stopped:
		require.ErrorContains(t, cause, "no longer wants this attempt")
	case <-time.After(30 * time.Second):
		t.Fatal("the handler of a timed-out run was not stopped")
	}
	require.Equal(t, "timed_out", b.Wait(t, run, time.Minute).Status)
}

func TestProgressReportsShowInStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	release := make(chan struct{})
	b.add(t, "reporting", map[string][]string{"train": nil}, func(w *pipelines.Workflow) {
		w.Steps[0].Handler = func(ctx context.Context, in pipelines.Input) (any, error) {
			for epoch := int64(1); epoch <= 3; epoch++ {
				pipelines.ReportProgress(ctx, pipelines.Progress{Done: epoch, Total: 10, Unit: "epoch",
					Metrics: map[string]float64{"loss": 1 / float64(epoch)}, ETA: 7 * time.Second})
			}
			select {
			case <-release:
				return map[string]int{"epochs": 3}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	})
	b.StartWorker(t, worker.Config{ID: "w1", ProgressInterval: 50 * time.Millisecond})

	run := b.Start(t, "reporting", `{}`)
	type doc struct {
		Steps []struct {
			Progress *struct {
				Done    int64              `json:"done"`
				Total   int64              `json:"total"`
				Unit    string             `json:"unit"`
				Metrics map[string]float64 `json:"metrics"`
				ETAMS   int64              `json:"eta_ms"`
			} `json:"progress"`
		} `json:"steps"`
	}
	var d doc
	require.Eventually(t, func() bool {
		var raw []byte
		require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT qflow.status($1)", run).Scan(&raw))
		require.NoError(t, json.Unmarshal(raw, &d))
		return d.Steps[0].Progress != nil
	}, 30*time.Second, 20*time.Millisecond)
	p := d.Steps[0].Progress
	require.Equal(t, int64(3), p.Done, "the latest report wins")
	require.Equal(t, int64(10), p.Total)
	require.Equal(t, "epoch", p.Unit)
	require.InDelta(t, 1.0/3, p.Metrics["loss"], 1e-9)
	require.Equal(t, int64(7000), p.ETAMS)
	require.Equal(t, 1, b.Count(t, "SELECT count(*) FROM qflow.step_overview WHERE run_id = $1 AND (progress ->> 'done')::int = 3", run))

	close(release)
	require.Equal(t, "succeeded", b.Wait(t, run, time.Minute).Status)
}
