package schema_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// The stats tests write a history with exact timestamps (runs and attempts "happened" some
// time ago), so every count, rate and percentile has one right value.

type workflowStats struct {
	Workflow      string   `db:"workflow"`
	Runs          int64    `db:"runs"`
	Pending       int64    `db:"pending"`
	Running       int64    `db:"running"`
	Succeeded     int64    `db:"succeeded"`
	Failed        int64    `db:"failed"`
	Cancelled     int64    `db:"cancelled"`
	TimedOut      int64    `db:"timed_out"`
	Finished      int64    `db:"finished"`
	SuccessRate   *float64 `db:"success_rate"`
	ErrorRate     *float64 `db:"error_rate"`
	P50DurationMS *float64 `db:"p50_duration_ms"`
	P95DurationMS *float64 `db:"p95_duration_ms"`
	RunsPerMinute float64  `db:"runs_per_minute"`
}

type stepStats struct {
	Workflow      string   `db:"workflow"`
	Step          string   `db:"step"`
	Position      *int32   `db:"position"`
	StepRuns      int64    `db:"step_runs"`
	Attempts      int64    `db:"attempts"`
	Succeeded     int64    `db:"succeeded"`
	Failed        int64    `db:"failed"`
	TimedOut      int64    `db:"timed_out"`
	Cancelled     int64    `db:"cancelled"`
	FailureRatio  *float64 `db:"failure_ratio"`
	P50DurationMS *float64 `db:"p50_duration_ms"`
	P95DurationMS *float64 `db:"p95_duration_ms"`
	Retries       int64    `db:"retries"`
}

// pastRun starts a run of workflow and rewrites it into one created age ago that is now in
// status, having taken duration when it finished (a pending run never started).
func (b *testBundle) pastRun(t *testing.T, workflow string, age time.Duration, status string, duration time.Duration) int64 {
	t.Helper()
	id := b.start(t, workflow, "{}")
	b.exec(t, `UPDATE qflow.runs
	              SET status = $2, remaining_steps = 0,
	                  created_at = now() - $3::bigint * interval '1 millisecond',
	                  started_at = CASE WHEN $2 <> 'pending' THEN now() - $3::bigint * interval '1 millisecond' END,
	                  finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled', 'timed_out')
	                                     THEN now() - ($3::bigint - $4::bigint) * interval '1 millisecond' END
	            WHERE id = $1`, id, status, age.Milliseconds(), duration.Milliseconds())
	return id
}

// pastAttempt records an attempt of a step that started a minute ago and, unless it is still
// running, took duration.
func (b *testBundle) pastAttempt(t *testing.T, run int64, step string, attempt int, status string, duration time.Duration) {
	t.Helper()
	b.exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, status, worker, started_at, finished_at)
	           VALUES ($1, $2, $3, $4, 'test-worker', now() - interval '1 minute',
	                   CASE WHEN $4 <> 'running' THEN now() - interval '1 minute' + $5::bigint * interval '1 millisecond' END)`,
		run, step, attempt, status, duration.Milliseconds())
}

func (b *testBundle) workflowStats(t *testing.T, sql string, args ...any) map[string]workflowStats {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, sql, args...)
	require.NoError(t, err)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[workflowStats])
	require.NoError(t, err)
	out := map[string]workflowStats{}
	for _, s := range list {
		out[s.Workflow] = s
	}
	require.Len(t, out, len(list), "one row per workflow")
	return out
}

func (b *testBundle) stepStats(t *testing.T, sql string, args ...any) []stepStats {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, sql, args...)
	require.NoError(t, err)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[stepStats])
	require.NoError(t, err)
	return list
}

func requireFloat(t *testing.T, want float64, got *float64, what string) {
	t.Helper()
	require.NotNil(t, got, what)
	require.InDelta(t, want, *got, 1e-6, what)
}

func TestWorkflowStatsCountsRatesAndPercentilesInTheWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	b.diamond(t, nil)

	// In the last hour: finished durations 100, 200, 300, 400 (succeeded), 500 (cancelled),
	// 1000 (failed), 2000 (timed out) ms, and one run still running.
	for i, ms := range []int{100, 200, 300, 400} {
		b.pastRun(t, "chain", time.Duration(10+i)*time.Minute, "succeeded", time.Duration(ms)*time.Millisecond)
	}
	b.pastRun(t, "chain", 20*time.Minute, "cancelled", 500*time.Millisecond)
	b.pastRun(t, "chain", 30*time.Minute, "failed", time.Second)
	b.pastRun(t, "chain", 40*time.Minute, "timed_out", 2*time.Second)
	b.pastRun(t, "chain", 50*time.Minute, "running", 0)
	// Two hours ago: only the 24-hour view sees it. A day and more ago: nobody does.
	b.pastRun(t, "chain", 2*time.Hour, "succeeded", 5*time.Second)
	b.pastRun(t, "chain", 25*time.Hour, "failed", 9*time.Second)
	b.pastRun(t, "diamond", 30*time.Hour, "succeeded", time.Second)

	hour := b.workflowStats(t, "SELECT * FROM qflow.workflow_stats('1 hour')")
	require.Len(t, hour, 2)
	c := hour["chain"]
	require.Equal(t, int64(8), c.Runs)
	require.Equal(t, []int64{0, 1, 4, 1, 1, 1, 7}, []int64{c.Pending, c.Running, c.Succeeded, c.Failed, c.Cancelled, c.TimedOut, c.Finished})
	requireFloat(t, 0.5714, c.SuccessRate, "success rate = 4/7")
	requireFloat(t, 0.2857, c.ErrorRate, "error rate = (failed + timed out)/finished = 2/7")
	// Seven sorted durations: the median is the 4th; p95 lies 0.7 of the way from the 6th to the 7th.
	requireFloat(t, 400, c.P50DurationMS, "p50")
	requireFloat(t, 1700, c.P95DurationMS, "p95")
	require.InDelta(t, 8.0/60, c.RunsPerMinute, 1e-6)

	// A workflow with no run in the window has a row of zeros and no rates.
	d := hour["diamond"]
	require.Equal(t, workflowStats{Workflow: "diamond"}, d)

	day := b.workflowStats(t, "SELECT * FROM qflow.workflow_stats")
	c = day["chain"]
	require.Equal(t, int64(9), c.Runs, "the view covers 24 hours: the run of 2 hours ago in, the one of 25 hours ago out")
	require.Equal(t, []int64{5, 8}, []int64{c.Succeeded, c.Finished})
	requireFloat(t, 0.625, c.SuccessRate, "success rate = 5/8")
	requireFloat(t, 0.25, c.ErrorRate, "error rate = 2/8")
	requireFloat(t, 450, c.P50DurationMS, "p50 of 8 = mean of the 4th and 5th")
	requireFloat(t, 3950, c.P95DurationMS, "p95 of 8: 0.65 of the way from 2000 to 5000")
	require.InDelta(t, 9.0/1440, c.RunsPerMinute, 1e-6)
	require.Equal(t, int64(0), day["diamond"].Runs)

	require.Equal(t, day, b.workflowStats(t, "SELECT * FROM qflow.workflow_stats($1::interval)", "24 hours"),
		"the view is the function over 24 hours")
	require.Equal(t, map[string]workflowStats{"chain": hour["chain"]}, b.workflowStats(t, "SELECT * FROM qflow.workflow_stats('1 hour', 'chain')"),
		"the workflow argument keeps one workflow's row")
}

func TestWorkflowStatsRefusesAnEmptyWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, w := range []string{"0 seconds", "-1 hour"} {
		require.ErrorContains(t, b.execErr("SELECT * FROM qflow.workflow_stats($1::interval)", w), "window must be a positive interval")
		require.ErrorContains(t, b.execErr("SELECT * FROM qflow.step_stats($1::interval)", w), "window must be a positive interval")
	}
	require.ErrorContains(t, b.execErr("SELECT * FROM qflow.step_stats(NULL)"), "got NULL")
}

func TestStepStatsCountsAttemptsFailuresAndRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)

	first := b.pastRun(t, "chain", 10*time.Minute, "succeeded", time.Second)
	second := b.pastRun(t, "chain", 20*time.Minute, "succeeded", time.Second)
	third := b.pastRun(t, "chain", 30*time.Minute, "running", 0)
	old := b.pastRun(t, "chain", 2*time.Hour, "failed", time.Second)

	// Step a: 10 ms at once; 30 ms failed, 50 ms timed out, then 20 ms succeeded; one running.
	b.pastAttempt(t, first, "a", 1, "succeeded", 10*time.Millisecond)
	b.pastAttempt(t, second, "a", 1, "failed", 30*time.Millisecond)
	b.pastAttempt(t, second, "a", 2, "timed_out", 50*time.Millisecond)
	b.pastAttempt(t, second, "a", 3, "succeeded", 20*time.Millisecond)
	b.pastAttempt(t, third, "a", 1, "running", 0)
	// Step b: one attempt released at shutdown, which is no failure and has no duration that counts.
	b.pastAttempt(t, first, "b", 1, "cancelled", 70*time.Millisecond)
	// Outside the hour: its run was created two hours ago.
	b.pastAttempt(t, old, "a", 1, "failed", 999*time.Millisecond)

	hour := b.stepStats(t, "SELECT * FROM qflow.step_stats('1 hour')")
	require.Len(t, hour, 3, "every step of the current version, in order")
	a, sb, c := hour[0], hour[1], hour[2]
	require.Equal(t, []string{"a", "b", "c"}, []string{a.Step, sb.Step, c.Step})
	require.Equal(t, int32(0), *a.Position)

	require.Equal(t, "chain", a.Workflow)
	require.Equal(t, []int64{3, 5, 2, 2, 1, 0, 2}, []int64{a.StepRuns, a.Attempts, a.Succeeded, a.Failed, a.TimedOut, a.Cancelled, a.Retries})
	requireFloat(t, 0.5, a.FailureRatio, "failed (failed + timed out) / finished = 2/4")
	// Finished durations 10, 20, 30, 50: median 25; p95 0.85 of the way from 30 to 50.
	requireFloat(t, 25, a.P50DurationMS, "p50")
	requireFloat(t, 47, a.P95DurationMS, "p95")

	require.Equal(t, []int64{1, 1, 0, 0, 1, 0}, []int64{sb.StepRuns, sb.Attempts, sb.Succeeded, sb.Failed, sb.Cancelled, sb.Retries})
	require.Nil(t, sb.FailureRatio, "no finished attempt, no ratio")
	require.Nil(t, sb.P50DurationMS)
	require.Equal(t, stepStats{Workflow: "chain", Step: "c", Position: c.Position}, c)

	require.Equal(t, hour, b.stepStats(t, "SELECT * FROM qflow.step_stats('1 hour', 'chain')"))
	require.Empty(t, b.stepStats(t, "SELECT * FROM qflow.step_stats('1 hour', 'no_such_workflow')"))

	day := b.stepStats(t, "SELECT * FROM qflow.step_stats WHERE step = 'a'")
	require.Len(t, day, 1)
	require.Equal(t, []int64{4, 6, 3}, []int64{day[0].StepRuns, day[0].Attempts, day[0].Failed}, "the 24-hour view sees the old run's attempt")
	requireFloat(t, 0.6, day[0].FailureRatio, "3/5")
}

func TestStepStatsKeepsStepsOfOlderVersions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "shape", map[string][]string{"a": nil, "gone": {"a"}}, nil)
	run := b.pastRun(t, "shape", time.Minute, "succeeded", time.Second)
	b.pastAttempt(t, run, "gone", 1, "succeeded", 5*time.Millisecond)
	require.Equal(t, 2, b.register(t, "shape", map[string][]string{"a": nil, "new": {"a"}}, nil))

	stats := b.stepStats(t, "SELECT * FROM qflow.step_stats WHERE workflow = 'shape'")
	require.Len(t, stats, 3)
	require.Equal(t, []string{"a", "new", "gone"}, []string{stats[0].Step, stats[1].Step, stats[2].Step},
		"current steps in order, then steps only older versions have")
	require.Nil(t, stats[2].Position)
	require.Equal(t, int64(1), stats[2].Attempts)
}
