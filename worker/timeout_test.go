package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/worker"
)

func TestStepTimeoutStopsTheHandlerAndRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.add(t, "slow", map[string][]string{"a": nil}, func(w *pipelines.Workflow) {
		w.Steps[0].TimeoutMS = 300
		w.Steps[0].MaxAttempts = 2
		w.Steps[0].RetryBaseMS = 10
	})
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 2})

	run := b.Start(t, "slow", `{"sleep_ms": 30000}`)
	b.WaitRuns(t, time.Minute)

	r := b.Run(t, run)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, "step a failed after 2 attempt(s): step timed out after 300ms")
	attempts := b.attempts(t, run, "a")
	require.Len(t, attempts, 2)
	for _, a := range attempts {
		require.Equal(t, "timed_out", a.Status)
		// The handler was stopped at its timeout, long before its 30 s sleep would end.
		require.Less(t, a.Finished.Sub(a.Started), 10*time.Second)
	}
}

func TestHandlerDeafToCancellationIsAbandoned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.add(t, "deaf", map[string][]string{"a": nil}, func(w *pipelines.Workflow) {
		w.Steps[0].TimeoutMS = 200
		w.Steps[0].MaxAttempts = 1
	})
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 2})

	run := b.Start(t, "deaf", `{"hang": ["a"], "hang_ms": 20000}`)
	b.WaitRuns(t, time.Minute)
	r := b.Run(t, run)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, "ignored cancellation")
	a := b.attempts(t, run, "a")[0]
	require.Equal(t, "timed_out", a.Status)
	require.Less(t, a.Finished.Sub(a.Started), 10*time.Second)
}

func TestRunDeadlineTimesOutTheRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.add(t, "bounded", map[string][]string{"a": nil, "b": {"a"}}, func(w *pipelines.Workflow) { w.TimeoutMS = 500 })
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 2})

	run := b.Start(t, "bounded", `{"sleep_ms": {"b": 4000}}`)
	b.WaitRuns(t, time.Minute)
	r := b.Run(t, run)
	require.Equal(t, "timed_out", r.Status)
	require.Contains(t, r.Error, "run exceeded its deadline")
	require.Equal(t, "cancelled", b.attempts(t, run, "b")[0].Status)
}

func TestPanicIsAFailedAttemptAndRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int32
	require.NoError(t, b.Registry.Add(pipelines.Workflow{Name: "panicky", Steps: []pipelines.Step{{
		Name: "a", MaxAttempts: 2, RetryBaseMS: 10,
		Handler: func(ctx context.Context, in pipelines.Input) (any, error) {
			n := calls.Add(1)
			if in.Attempt == 1 {
				panic("boom")
			}
			return map[string]int32{"calls": n}, nil
		},
	}}}))
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 1})

	run := b.Start(t, "panicky", `{}`)
	b.WaitRuns(t, time.Minute)
	require.Equal(t, "succeeded", b.Run(t, run).Status)
	attempts := b.attempts(t, run, "a")
	require.Len(t, attempts, 2)
	require.Equal(t, "failed", attempts[0].Status)
	require.Contains(t, *attempts[0].Error, "handler panicked: boom")
}

func TestRetriesWaitForTheirBackoff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.add(t, "flaky", map[string][]string{"a": nil}, func(w *pipelines.Workflow) {
		w.Steps[0].MaxAttempts = 4
		w.Steps[0].RetryBaseMS = 200
		w.Steps[0].RetryMaxMS = 10000
	})
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 2})

	run := b.Start(t, "flaky", `{"fail": {"a": 3}}`)
	b.WaitRuns(t, time.Minute)
	require.Equal(t, "succeeded", b.Run(t, run).Status)
	attempts := b.attempts(t, run, "a")
	require.Len(t, attempts, 4)
	// Attempt n+1 starts no sooner than half its nominal delay (200 ms * 2^(n-1)) after n failed.
	for i := 1; i < len(attempts); i++ {
		gap := attempts[i].Started.Sub(attempts[i-1].Finished)
		minGap := time.Duration(100<<(i-1)) * time.Millisecond
		require.GreaterOrEqual(t, gap, minGap, "attempt %d started %s after attempt %d failed", i+1, gap, i)
	}
}
