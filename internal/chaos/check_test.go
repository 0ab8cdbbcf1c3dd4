package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
)

type testBundle struct {
	ctx  context.Context
	pool *pgxpool.Pool
	c    *chaos
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	pool := dbtest.Pool(t)
	reg := pipelines.NewRegistry()
	probe.Register(reg)
	_, err := reg.Sync(ctx, pool)
	require.NoError(t, err)
	c := &chaos{admin: pool, acked: map[string]bool{}, started: time.Now(), cfg: Config{Log: &strings.Builder{}},
		report: &Report{Faults: map[string]int{}, Outcomes: map[string]int{}, ByWorkflow: map[string]map[string]int{},
			RestartRecovery: map[string][]time.Duration{}, RestartDowntime: map[string][]time.Duration{}}}
	return &testBundle{ctx: ctx, pool: pool, c: c}
}

func (b *testBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(b.ctx, sql, args...)
	require.NoError(t, err, sql)
}

func (b *testBundle) start(t *testing.T, workflow, input, key string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, input, idempotency_key) VALUES ($1, $2, $3) RETURNING id",
		workflow, input, key).Scan(&id))
	b.c.acked[key] = true
	return id
}

// step plays a worker of a probe step: claims the step's current attempt, completes it with
// value and finishes its River job.
func (b *testBundle) step(t *testing.T, run int64, step string, value int) {
	t.Helper()
	b.complete(t, run, step, fmt.Sprintf(`{"step": %q, "value": %d}`, step, value))
}

// complete plays a worker: claims the step's (or element's) current attempt, completes it
// with output and finishes its River job.
func (b *testBundle) complete(t *testing.T, run int64, step, output string) {
	t.Helper()
	b.claim(t, run, step)
	b.exec(t, `SELECT qflow.finish_steps(jsonb_build_array(jsonb_build_object(
	               'run_id', $1::bigint, 'step', $2::text, 'attempt', (SELECT attempt FROM qflow.step_runs WHERE run_id = $1 AND step = $2),
	               'result', 'complete', 'output', $3::jsonb)))`, run, step, output)
	b.jobDone(t, run, step)
}

// fail plays a worker whose handler of the step (or element) failed, for good or not. Its job
// is finished first: a retry queues the next attempt under a job of its own.
func (b *testBundle) fail(t *testing.T, run int64, step, why string, permanent bool) {
	t.Helper()
	b.claim(t, run, step)
	b.jobDone(t, run, step)
	b.exec(t, `SELECT qflow.finish_steps(jsonb_build_array(jsonb_build_object(
	               'run_id', $1::bigint, 'step', $2::text, 'attempt', (SELECT attempt FROM qflow.step_runs WHERE run_id = $1 AND step = $2),
	               'result', 'fail', 'error', $3::text, 'permanent', $4::boolean)))`, run, step, why, permanent)
}

// mapRun plays probe_map's workers through split and every element of square, the squares
// of 1..n; total is left to the caller.
func (b *testBundle) mapRun(t *testing.T, n int, input, key string) int64 {
	t.Helper()
	run := b.start(t, probe.Map, input, key)
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprint(i + 1)
	}
	b.complete(t, run, "split", `{"items": [`+strings.Join(items, ", ")+`]}`)
	for i := range n {
		b.complete(t, run, element("square", i), fmt.Sprint((i+1)*(i+1)))
	}
	return run
}

// forge writes history no procedure would, past the guards.
func (b *testBundle) forge(t *testing.T, sql string, args ...any) {
	t.Helper()
	tx, err := b.pool.Begin(b.ctx)
	require.NoError(t, err)
	defer tx.Rollback(b.ctx) //nolint:errcheck // after Commit, a no-op
	_, err = tx.Exec(b.ctx, "SET LOCAL session_replication_role = replica")
	require.NoError(t, err)
	_, err = tx.Exec(b.ctx, sql, args...)
	require.NoError(t, err, sql)
	require.NoError(t, tx.Commit(b.ctx))
}

func (b *testBundle) claim(t *testing.T, run int64, step string) {
	t.Helper()
	b.exec(t, `SELECT qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	               'run_id', $1::bigint, 'step', $2::text, 'attempt', (SELECT attempt FROM qflow.step_runs WHERE run_id = $1 AND step = $2))), 'w')`, run, step)
}

// failFatal plays a worker whose handler of step a failed permanently.
func (b *testBundle) failFatal(t *testing.T, run int64) {
	t.Helper()
	b.exec(t, `SELECT qflow.finish_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1,
	               'result', 'fail', 'error', 'probe: step a is fatal by request', 'permanent', true)))`, run)
}

func (b *testBundle) jobDone(t *testing.T, run int64, step string) {
	t.Helper()
	b.exec(t, `UPDATE river.river_job SET state = 'completed', attempt = 1, attempted_at = now(), finalized_at = now()
	            WHERE id = (SELECT job_id FROM qflow.step_runs WHERE run_id = $1 AND step = $2)`, run, step)
}

func TestChecksPassAnHonestHistory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ok := b.start(t, probe.Limited, `{"seed": 1}`, "k1")
	b.step(t, ok, "a", 3)
	b.step(t, ok, "b", 7)
	b.step(t, ok, "c", 15)
	fatal := b.start(t, probe.Limited, `{"fatal": ["a"]}`, "k2")
	b.claim(t, fatal, "a")
	b.failFatal(t, fatal)
	b.jobDone(t, fatal, "a")
	cancelled := b.start(t, probe.Limited, `{"chaos": {"cancel": true}}`, "k3")
	b.exec(t, "SELECT qflow.cancel_run($1)", cancelled)

	// Maps: three elements, none, one retried, one fatal (the run fails, the others are
	// stopped), and one cancelled while its elements wait.
	squares := b.mapRun(t, 3, `{"n": 3}`, "m1")
	b.complete(t, squares, "total", `{"sum": 14}`)
	empty := b.mapRun(t, 0, `{"n": 0}`, "m2")
	b.complete(t, empty, "total", `{"sum": 0}`)
	retried := b.start(t, probe.Map, `{"n": 2, "fail_item": 2}`, "m3")
	b.complete(t, retried, "split", `{"items": [1, 2]}`)
	b.fail(t, retried, "square[1]", "probe_map: element 2 fails its first attempt by request", false)
	b.complete(t, retried, "square[1]", "4")
	b.complete(t, retried, "square[0]", "1")
	b.complete(t, retried, "total", `{"sum": 5}`)
	fatalItem := b.start(t, probe.Map, `{"n": 3, "fatal_item": 2}`, "m4")
	b.complete(t, fatalItem, "split", `{"items": [1, 2, 3]}`)
	b.complete(t, fatalItem, "square[0]", "1")
	b.fail(t, fatalItem, "square[1]", "probe_map: element 2 is fatal by request", true)
	stopped := b.start(t, probe.Map, `{"n": 2, "chaos": {"cancel": true}}`, "m5")
	b.complete(t, stopped, "split", `{"items": [1, 2]}`)
	b.exec(t, "SELECT qflow.cancel_run($1)", stopped)
	// Branches: each way, and neither.
	for _, size := range []string{"big", "small"} {
		run := b.start(t, probe.Branch, `{"size": "`+size+`", "seed": 1}`, "b"+size)
		b.step(t, run, "check", 3)
		b.step(t, run, size, 7)
		b.complete(t, run, "finish", `{"path": "`+size+`"}`)
	}
	neither := b.start(t, probe.Branch, `{"size": "medium"}`, "b3")
	b.step(t, neither, "check", 1)

	require.NoError(t, b.c.check(b.ctx))
	require.Empty(t, b.c.report.Violations)
	require.Equal(t, map[string]int{"succeeded": 7, "failed": 2, "cancelled": 2}, b.c.report.Outcomes)
	require.Equal(t, map[string]int{"succeeded": 3, "failed": 1, "cancelled": 1}, b.c.report.ByWorkflow[probe.Map])
	require.Equal(t, map[string]int{"succeeded": 3}, b.c.report.ByWorkflow[probe.Branch])
	require.Equal(t, 3+0+2+3+2, b.c.report.Elements)
	require.Equal(t, 1, b.c.report.LimitPeak)
}

func TestChecksCatchEveryKindOfViolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.c.report

	// lost: a confirmed insert that is not there, and a succeeded run with a wrong value.
	b.c.acked["never-inserted"] = true
	wrong := b.start(t, probe.Limited, `{}`, "k1")
	b.step(t, wrong, "a", 1)
	b.step(t, wrong, "b", 99)
	b.step(t, wrong, "c", 7)
	// lost: a run that failed for no reason its input or a fault gives.
	failed := b.start(t, probe.Limited, `{}`, "k2")
	b.claim(t, failed, "a")
	b.failFatal(t, failed)
	b.jobDone(t, failed, "a")

	// stuck: a run left running, and a live River job of a finished run.
	b.start(t, probe.Limited, `{}`, "k3")
	cancelled := b.start(t, probe.Limited, `{"chaos": {"cancel": true}}`, "k4")
	b.exec(t, "SELECT qflow.cancel_run($1)", cancelled)
	b.exec(t, `INSERT INTO river.river_job (args, kind, max_attempts, queue) VALUES (jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 9), 'qflow_step', 1, 'cpu')`, cancelled)

	// duplicated, over budget and over the limit: history written by hand.
	var runs []int64
	for i := range 3 {
		runs = append(runs, b.start(t, probe.Limited, `{}`, "o"+string(rune('0'+i))))
	}
	b.exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, status, started_at, finished_at)
	           VALUES ($1, 'a', 1, 'succeeded', now(), now()), ($1, 'a', 2, 'succeeded', now(), now()),
	                  ($2, 'a', 1, 'failed', now(), now()), ($2, 'a', 2, 'failed', now(), now()),
	                  ($2, 'a', 3, 'failed', now(), now()), ($2, 'a', 4, 'timed_out', now(), now())`, runs[0], runs[1])
	for _, run := range runs {
		b.exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, status, started_at, finished_at)
		           VALUES ($1, 'b', 1, 'succeeded', now() - interval '10 seconds', now() - interval '5 seconds')`, run)
	}

	require.NoError(t, b.c.check(b.ctx))
	joined := strings.Join(r.Violations, "\n")
	require.Equal(t, 3, r.Lost, joined)
	require.Contains(t, joined, "lost: 1 of")
	require.Contains(t, joined, "output {\"step\": \"b\", \"value\": 99}, want {\"step\":\"b\",\"value\":3}")
	require.Contains(t, joined, "failed with no fault to blame")
	require.Contains(t, joined, "stuck: run still running")
	require.Contains(t, joined, "stuck: River job available for ended run")
	require.Equal(t, 1, r.Duplicated, joined)
	require.Equal(t, 1, r.OverBudget, joined)
	require.Equal(t, 1, r.LimitViolations, joined)
	require.Equal(t, 3, r.LimitPeak)
	require.Equal(t, 5, r.Stuck, joined) // four runs left running, one job
}

func TestKilledAttemptsAreMeasuredAndALongStepThatWaitedForItsLeaseIsReported(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.c.report
	b.exec(t, `SELECT qflow.configure_workflow($1, '{"steps": {"c": {"timeout_ms": 180000}}}')`, probe.Limited)
	var now time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT now()").Scan(&now))
	ago := func(s float64) time.Time { return now.Add(-time.Duration(s * float64(time.Second))) }
	died := func(w string) string {
		return "worker " + w + " died: its database session ended while it ran the step"
	}
	// attempt writes one attempt of a run's step; a nil end leaves it running.
	attempt := func(run int64, step string, n int, worker string, start float64, end *float64, status, why string) {
		var finished *time.Time
		if end != nil {
			f := ago(*end)
			finished = &f
		}
		b.exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, worker, status, error, started_at, finished_at)
		           VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7, $8)`, run, step, n, worker, status, why, ago(start), finished)
	}
	at := func(s float64) *float64 { return &s }

	// w1 was killed 199 s ago: its long step waited for the lease once by the sweep's word and
	// once by the clock (the next attempt started past the lease, 182 s after the start).
	b.c.kills = append(b.c.kills, kill{at: ago(199), victim: "w1"})
	leased := b.start(t, probe.Limited, `{}`, "k1")
	attempt(leased, "c", 1, "w1", 200, at(18), "timed_out", "lease expired: worker w1 did not finish the step within its timeout")
	attempt(leased, "c", 2, "w3", 17, nil, "running", "")
	late := b.start(t, probe.Limited, `{}`, "k2")
	attempt(late, "c", 1, "w1", 200, at(15), "timed_out", died("w1"))
	attempt(late, "c", 2, "w3", 15, nil, "running", "")
	// w2 was killed 5 s ago, and its steps ran again a second or two later, but one whose
	// run had no attempt left; an attempt it had finished before the kill does not count.
	b.c.kills = append(b.c.kills, kill{at: ago(5), victim: "w2"})
	long := b.start(t, probe.Limited, `{}`, "k3")
	attempt(long, "c", 1, "w2", 10, at(4), "timed_out", died("w2"))
	attempt(long, "c", 2, "w3", 3.5, nil, "running", "")
	short := b.start(t, probe.Limited, `{}`, "k4")
	attempt(short, "a", 1, "w2", 6, at(4), "timed_out", died("w2"))
	attempt(short, "a", 2, "w3", 3, nil, "running", "")
	attempt(short, "b", 1, "w2", 30, at(20), "succeeded", "")
	spent := b.start(t, probe.Limited, `{}`, "k5")
	attempt(spent, "c", 3, "w2", 8, at(4), "timed_out", died("w2"))
	// One whose lease ran out a second after the kill, before the sweep could know of the
	// death, ended by lease expiry: no wait.
	due := b.start(t, probe.Limited, `{}`, "k7")
	attempt(due, "a", 1, "w2", 11, at(3.9), "timed_out", "lease expired: worker w2 did not finish the step within its timeout")
	// w4 was never killed: its liveness session was cut, and the sweep retried its step.
	cut := b.start(t, probe.Limited, `{}`, "k6")
	attempt(cut, "c", 1, "w4", 50, at(40), "timed_out", died("w4"))

	require.NoError(t, b.c.check(b.ctx))
	joined := strings.Join(r.Violations, "\n")
	require.Equal(t, 6, r.KilledAttempts)
	require.Equal(t, 2, r.KilledNotRetried)
	require.Equal(t, []time.Duration{1500 * time.Millisecond, 182 * time.Second, 184 * time.Second}, sorted(r.KillRecoveryLong))
	require.Equal(t, []time.Duration{2 * time.Second}, r.KillRecoveryShort)
	require.Equal(t, 5, r.Died)
	require.Equal(t, 4, r.DiedAtKill)
	require.Equal(t, 4, r.DiedLong)
	require.Equal(t, 3, r.DiedLongAtKill)
	require.Equal(t, 2, r.LeaseExpired)
	require.Len(t, r.LeaseExpiries, 2)
	require.Equal(t, 2, r.LeaseWaits, joined)
	require.NotContains(t, joined, fmt.Sprintf("run %d", due))
	require.Contains(t, joined, fmt.Sprintf("lease: step c of run %d attempt 1 (timeout 3m0s) ended by lease expiry although its worker w1 was SIGKILLed", leased))
	require.Contains(t, joined, fmt.Sprintf("lease: long step c of run %d ran again 3m4s after its worker w1 was SIGKILLed, past the lease of attempt 1", late))
}

func sorted(ds []time.Duration) []time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s
}

func TestALeaseThatRanOutWhileItsWorkerWasConnectedAndARunFailedByTheNetworkAreReported(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.c.report
	var now time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT now()").Scan(&now))
	ago := func(s float64) time.Time { return now.Add(-time.Duration(s * float64(time.Second))) }
	// Slot 1 was cut off twice, slot 2 only slowed down; the database restarted once.
	b.c.outages = []outage{
		{slot: 1, kind: FaultBlackHole, cutOff: true, start: ago(100), end: ago(90)},
		{slot: 2, kind: FaultLatency, start: ago(60), end: ago(50)},
		{slot: 1, kind: FaultReset, cutOff: true, start: ago(3), end: now.Add(10 * time.Second)},
	}
	b.c.restarts = []restart{{kind: FaultRestartFast, start: ago(40), end: ago(39)}}
	attempt := func(run int64, step, worker string, start, end float64, why string) {
		b.exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, worker, status, error, started_at, finished_at)
		           VALUES ($1, $2, 1, $3, 'timed_out', $4, $5, $6)`, run, step, worker, why, ago(start), ago(end))
	}
	lease := func(w string) string {
		return "lease expired: worker " + w + " did not finish the step within its timeout"
	}
	died := func(w string) string {
		return "worker " + w + " died: its database session ended while it ran the step"
	}
	// Cut off: allowed, and counted.
	cut := b.start(t, probe.Limited, `{}`, "k1")
	attempt(cut, "a", "chaos-w1-1", 97, 89.5, lease("chaos-w1-1"))
	attempt(cut, "b", "chaos-w1-1", 95, 93, died("chaos-w1-1"))
	// Its worker SIGKILLed meanwhile: the kill's, not the network's.
	b.c.kills = append(b.c.kills, kill{at: ago(95.5), victim: "chaos-w1-3"})
	attempt(cut, "c", "chaos-w1-3", 97, 94, died("chaos-w1-3"))
	// During a restart: allowed.
	restarted := b.start(t, probe.Limited, `{}`, "k2")
	attempt(restarted, "a", "chaos-w0-1", 45, 37.5, lease("chaos-w0-1"))
	// Cut off, but back well before its handler was done; slowed down, but connected; and
	// connected with no fault at all: violations.
	early := b.start(t, probe.Limited, `{}`, "k7")
	attempt(early, "a", "chaos-w1-2", 91, 83.5, lease("chaos-w1-2"))
	slowed := b.start(t, probe.Limited, `{}`, "k3")
	attempt(slowed, "a", "chaos-w2-1", 58, 50.5, lease("chaos-w2-1"))
	connected := b.start(t, probe.Limited, `{}`, "k4")
	attempt(connected, "a", "chaos-w0-2", 30, 22.5, lease("chaos-w0-2"))

	// A run whose budget a died attempt spent while slot 1 was cut off fails by a fault; one
	// that failed with a network error fails by the network.
	finish := func(run int64, why string) {
		b.exec(t, `SELECT qflow.claim_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1)), 'chaos-w1-1')`, run)
		b.exec(t, `SELECT qflow.finish_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1,
		               'result', 'fail', 'error', $2::text, 'permanent', true)))`, run, why)
		b.jobDone(t, run, "a")
	}
	spent := b.start(t, probe.Limited, `{}`, "k5")
	finish(spent, died("chaos-w1-1"))
	reset := b.start(t, probe.Limited, `{}`, "k6")
	finish(reset, "read tcp 127.0.0.1:5432: connection reset by peer")

	require.NoError(t, b.c.check(b.ctx))
	joined := strings.Join(r.Violations, "\n")
	require.Equal(t, 5, r.LeaseExpired)
	require.Equal(t, 3, r.LeaseExpiredNetwork)
	require.Equal(t, 3, r.LeaseExpiredLive, joined)
	require.Contains(t, joined, fmt.Sprintf("lease: step a of run %d attempt 1 expired although its worker chaos-w1-2 was alive and connected", early))
	require.Contains(t, joined, fmt.Sprintf("lease: step a of run %d attempt 1 expired although its worker chaos-w2-1 was alive and connected", slowed))
	require.Contains(t, joined, fmt.Sprintf("lease: step a of run %d attempt 1 expired although its worker chaos-w0-2 was alive and connected", connected))
	require.Equal(t, 2, r.DiedNetwork)
	require.Equal(t, 1, r.FaultSpent)
	require.Equal(t, 1, r.FaultSpentNetwork)
	require.Equal(t, 1, r.FailedByNetwork, joined)
	require.Contains(t, joined, fmt.Sprintf("failed by network: run %d failed", reset))
	require.Contains(t, joined, "connection reset by peer")
}

func TestChecksCatchABrokenMapAndAWrongBranch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.c.report
	finished := func(run int64, sum int) {
		b.complete(t, run, "total", fmt.Sprintf(`{"sum": %d}`, sum))
	}

	// An element's output changed after its map step took it.
	changed := b.mapRun(t, 3, `{"n": 3}`, "m1")
	finished(changed, 14)
	b.forge(t, `UPDATE qflow.step_runs SET output = '5' WHERE run_id = $1 AND step = 'square[1]'`, changed)
	// An element row gone from a succeeded map.
	gone := b.mapRun(t, 3, `{"n": 3}`, "m2")
	finished(gone, 14)
	b.forge(t, `DELETE FROM qflow.step_runs WHERE run_id = $1 AND step = 'square[2]'`, gone)
	// A map step's row given a job, as if a worker could run it.
	held := b.mapRun(t, 2, `{"n": 2}`, "m3")
	finished(held, 5)
	b.forge(t, `UPDATE qflow.step_runs SET job_id = 424242 WHERE run_id = $1 AND step = 'square'`, held)
	// An element that succeeded twice and made more attempts than the step's three.
	twice := b.mapRun(t, 1, `{"n": 1}`, "m4")
	finished(twice, 1)
	b.exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, status, started_at, finished_at)
	           VALUES ($1, 'square[0]', 2, 'succeeded', now(), now()), ($1, 'square[0]', 3, 'failed', now(), now()),
	                  ($1, 'square[0]', 4, 'failed', now(), now())`, twice)
	// An element left running in a cancelled run, and one whose lease ran out while its
	// worker was alive and connected.
	stopped := b.start(t, probe.Map, `{"n": 2, "chaos": {"cancel": true}}`, "m5")
	b.complete(t, stopped, "split", `{"items": [1, 2]}`)
	b.exec(t, "SELECT qflow.cancel_run($1)", stopped)
	b.forge(t, `UPDATE qflow.step_runs SET status = 'running', finished_at = NULL, lease_expires_at = now(), started_at = now()
	             WHERE run_id = $1 AND step = 'square[0]'`, stopped)
	b.exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, worker, status, error, started_at, finished_at)
	           VALUES ($1, 'square[1]', 1, 'chaos-w0-9', 'timed_out', 'lease expired: worker chaos-w0-9 did not finish the step within its timeout',
	                   now() - interval '30 seconds', now() - interval '22 seconds')`, stopped)

	// A branch that took the wrong path, and one that ran a branch its input skips.
	wrongPath := b.start(t, probe.Branch, `{"size": "small"}`, "b1")
	b.step(t, wrongPath, "check", 1)
	b.step(t, wrongPath, "small", 3)
	b.complete(t, wrongPath, "finish", `{"path": "big"}`)
	neither := b.start(t, probe.Branch, `{"size": "medium"}`, "b2")
	b.step(t, neither, "check", 1)
	b.forge(t, `UPDATE qflow.step_runs SET status = 'succeeded', output = '{"step": "big", "value": 3}' WHERE run_id = $1 AND step = 'big'`, neither)

	require.NoError(t, b.c.check(b.ctx))
	joined := strings.Join(r.Violations, "\n")
	for _, v := range []string{
		fmt.Sprintf("lost: step square[1] of run %d output 5, want 4", changed),
		fmt.Sprintf("map: map step square of run %d succeeded with an output other than its elements' in order", changed),
		fmt.Sprintf("lost: step square[2] of succeeded run %d is missing, want succeeded", gone),
		fmt.Sprintf("map: map step square of run %d has 2 element rows, the last indexed 1, for 3 tasks", gone),
		fmt.Sprintf("map: map step square of run %d counts 0 tasks remaining, but 2 of 3 elements succeeded", gone),
		fmt.Sprintf("map: map step square of run %d succeeded with 2 of 3 elements succeeded", gone),
		fmt.Sprintf("map: map step square of run %d (succeeded) holds a job, a worker or a lease", held),
		fmt.Sprintf("duplicated: step square[0] of run %d succeeded 2 times", twice),
		fmt.Sprintf("over budget: step square[0] of run %d made 4 attempts, max_attempts 3", twice),
		fmt.Sprintf("stuck: step left running in ended run/step %d/square[0]", stopped),
		fmt.Sprintf("lease: step square[1] of run %d attempt 1 expired although its worker chaos-w0-9 was alive and connected", stopped),
		fmt.Sprintf("lost: step finish of run %d output {\"path\": \"big\"}, want {\"path\":\"small\"}", wrongPath),
		fmt.Sprintf("lost: run %d output {\"finish\": {\"path\": \"big\"}}, want {\"finish\":{\"path\":\"small\"}}", wrongPath),
		fmt.Sprintf("lost: step big of run %d is succeeded although its input skips it", neither),
		fmt.Sprintf("lost: step big of succeeded run %d is succeeded, want skipped", neither),
		fmt.Sprintf("lost: step big of run %d succeeded without a succeeded attempt", neither),
	} {
		require.Contains(t, joined, v)
	}
	require.Equal(t, 5, r.MapViolations, joined)
	require.Equal(t, 1, r.Duplicated, joined)
	require.Equal(t, 1, r.OverBudget, joined)
	require.Equal(t, 1, r.Stuck, joined)
	require.Equal(t, 1, r.LeaseExpiredLive, joined)
	require.Equal(t, 7, r.Lost, joined)
}

// A map step's own row is running on no worker while its elements run: the busiest worker is
// still found (its NULL worker once failed the query, and the victim was drawn at random), and
// the row breaks no invariant.
func TestTheBusiestWorkerIsFoundWhileAMapStepRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.c.rng = rand.New(rand.NewPCG(1, 7))
	b.c.cfg.Workers = 2
	b.c.fleet = &fleet{c: b.c, procs: []*proc{{id: "idle"}, {id: "w"}}}
	// Three map steps running, on no worker, ahead of w's two elements.
	for i := range 3 {
		run := b.start(t, probe.Map, `{"n": 3}`, fmt.Sprint("m", i))
		b.complete(t, run, "split", `{"items": [1, 2, 3]}`)
		if i < 2 {
			b.claim(t, run, "square[0]")
		}
	}

	slot, running, long := b.c.busiestSlot(b.ctx)
	require.Equal(t, 1, slot)
	require.Equal(t, 2, running)
	require.Zero(t, long)
	require.NoError(t, b.c.checkMaps(b.ctx))
	require.NoError(t, b.c.measureRecovery(b.ctx))
	require.Empty(t, b.c.report.Violations)
}
