package schema_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

func TestRetryBackoffGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, func(w *pipelines.Workflow) {
		w.Steps[0].MaxAttempts = 6
		w.Steps[0].RetryBaseMS = 1000
		w.Steps[0].RetryMaxMS = 5000
	})
	run := b.start(t, "chain", "{}")

	// Nominal delays 1, 2, 4, then capped at 5 s; equal jitter keeps each in [d/2, d].
	for i, nominal := range []float64{1000, 2000, 4000, 5000, 5000} {
		attempt := b.claim(t, run, "a")
		require.Equal(t, i+1, attempt)
		require.Equal(t, "retry", b.fail(t, run, "a", attempt, false))

		var delayMS float64
		var scheduledMatches bool
		require.NoError(t, b.pool.QueryRow(b.ctx, `
			SELECT extract(epoch FROM sr.next_attempt_at - a.finished_at) * 1000,
			       j.scheduled_at = sr.next_attempt_at
			  FROM qflow.step_runs sr
			  JOIN qflow.step_attempts a ON a.run_id = sr.run_id AND a.step = sr.step AND a.attempt = $2
			  JOIN river.river_job j ON j.id = sr.job_id
			 WHERE sr.run_id = $1 AND sr.step = 'a'`, run, attempt).Scan(&delayMS, &scheduledMatches))
		require.GreaterOrEqual(t, delayMS, nominal/2, "retry %d", i+1)
		require.LessOrEqual(t, delayMS, nominal, "retry %d", i+1)
		require.True(t, scheduledMatches, "the retry's River job waits until next_attempt_at")
		require.Equal(t, "queued", b.stepStatus(t, run, "a"))
		require.Equal(t, "failed", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND step = 'a' AND attempt = $2", run, attempt))
	}

	// The sixth attempt is the last: its failure fails the run.
	last := b.claim(t, run, "a")
	require.Equal(t, "failed", b.fail(t, run, "a", last, false))
	require.Equal(t, "failed", b.runStatus(t, run))
	require.Equal(t, "step a failed after 6 attempt(s): boom", b.scalar(t, "SELECT error FROM qflow.runs WHERE id = $1", run))
}

func TestPermanentErrorFailsRunAndCancelsSiblings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil)
	run := b.start(t, "diamond", "{}")
	b.runStep(t, run, "a")

	bAttempt := b.claim(t, run, "b")
	require.Equal(t, "queued", b.stepStatus(t, run, "c"))
	require.Equal(t, "failed", b.fail(t, run, "b", bAttempt, true))

	require.Equal(t, "failed", b.runStatus(t, run))
	require.Equal(t, "step b failed permanently: boom", b.scalar(t, "SELECT error FROM qflow.runs WHERE id = $1", run))
	require.Equal(t, "cancelled", b.stepStatus(t, run, "c"))
	require.Equal(t, "cancelled", b.jobState(t, run, "c"), "the sibling's River job will not run")
	require.Equal(t, "cancelled", b.stepStatus(t, run, "d"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'b'", run), "no retry")
}

func TestExhaustedRetriesFailRunAndCancelRunningSiblings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, nil)
	run := b.start(t, "diamond", "{}")
	b.runStep(t, run, "a")
	cAttempt := b.claim(t, run, "c") // c is running elsewhere

	for i := 1; i <= 3; i++ {
		attempt := b.claim(t, run, "b")
		outcome := b.fail(t, run, "b", attempt, false)
		if i < 3 {
			require.Equal(t, "retry", outcome)
			b.exec(t, "UPDATE river.river_job SET scheduled_at = now() WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'b')", run)
		} else {
			require.Equal(t, "failed", outcome)
		}
	}
	require.Equal(t, "failed", b.runStatus(t, run))
	require.Equal(t, "cancelled", b.stepStatus(t, run, "c"))
	require.Equal(t, "cancelled", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND step = 'c'", run))
	// The running sibling's late success is ignored.
	require.False(t, b.complete(t, run, "c", cAttempt, "{}"))
	require.Equal(t, "failed", b.runStatus(t, run))
}

func TestSkippableStepLetsSuccessorsRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.diamond(t, func(w *pipelines.Workflow) {
		w.Steps[1].OnFailure = "skip" // b
		w.Steps[1].MaxAttempts = 1
	})
	run := b.start(t, "diamond", "{}")
	b.runStep(t, run, "a")
	require.Equal(t, "skipped", b.fail(t, run, "b", b.claim(t, run, "b"), false))
	b.runStep(t, run, "c")
	b.runStep(t, run, "d")
	require.Equal(t, "succeeded", b.runStatus(t, run))
	require.Equal(t, "skipped", b.stepStatus(t, run, "b"))
}

func TestRetryWaitsForItsTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, func(w *pipelines.Workflow) { w.Steps[0].RetryBaseMS = 60000; w.Steps[0].RetryMaxMS = 60000 })
	run := b.start(t, "chain", "{}")
	require.Equal(t, "retry", b.fail(t, run, "a", b.claim(t, run, "a"), false))

	var notBefore time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT scheduled_at FROM river.river_job WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = 'a')", run).Scan(&notBefore))
	require.Greater(t, time.Until(notBefore), 25*time.Second, "River does not fetch the retry before its backoff")
}
