package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
)

// These tests run real qflow worker processes against a test database and kill or stop them.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qflow-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "qflow")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building qflow: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type testBundle struct {
	ctx  context.Context
	url  string
	pool *pgxpool.Pool
	// env is added to the commands' environment after DATABASE_URL, so it may replace it.
	env []string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return setupOn(t, dbtest.URL(t))
}

// setupOn is setup on the database of url, e.g. one on a cluster of the test's own.
func setupOn(t *testing.T, url string) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	b := &testBundle{ctx: ctx, url: url, pool: dbtest.PoolFor(t, url, 5)}
	out, err := b.qflow("migrate").CombinedOutput()
	require.NoError(t, err, string(out))
	return b
}

func (b *testBundle) qflow(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+b.url), b.env...)
	return cmd
}

// worker starts a worker process, killed at the end of the test if still running.
func (b *testBundle) worker(t *testing.T, id string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := spawn(t, "worker "+id, b.qflow(append([]string{"worker", "--id", id, "--max-workers", "4", "--metrics-addr", "127.0.0.1:0"}, extra...)...))
	b.waitFor(t, 30*time.Second, "worker "+id+" registered", "SELECT count(*) FROM qflow.workers WHERE id = $1", id)
	return cmd
}

// spawn starts cmd, killed at the end of the test if still running; its output is logged
// when the test failed.
func spawn(t *testing.T, name string, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, log.String())
		}
	})
	return cmd
}

// serveUI starts cmd, a `qflow ui --addr addr`, and waits until it serves; it is stopped when
// the test ends.
func serveUI(t *testing.T, addr string, cmd *exec.Cmd) {
	t.Helper()
	spawn(t, "qflow ui", cmd)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/static/style.css"); err == nil {
			resp.Body.Close()
			return
		}
		require.False(t, time.Now().After(deadline), "qflow ui did not start serving")
	}
}

// freeAddr returns a 127.0.0.1 address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func (b *testBundle) start(t *testing.T, workflow, input string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, input) VALUES ($1, $2) RETURNING id", workflow, input).Scan(&id))
	return id
}

// waitFor polls a count query until it is positive.
func (b *testBundle) waitFor(t *testing.T, limit time.Duration, what, sql string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n))
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type attempt struct {
	Attempt        int
	Status, Worker string
}

func (b *testBundle) attempts(t *testing.T, run int64, step string) []attempt {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, "SELECT attempt, status, worker FROM qflow.step_attempts WHERE run_id = $1 AND step = $2 ORDER BY attempt", run, step)
	require.NoError(t, err)
	defer rows.Close()
	var out []attempt
	for rows.Next() {
		var a attempt
		require.NoError(t, rows.Scan(&a.Attempt, &a.Status, &a.Worker))
		out = append(out, a)
	}
	return out
}

func (b *testBundle) runStatus(t *testing.T, run int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT status FROM qflow.runs WHERE id = $1", run).Scan(&s))
	return s
}

func (b *testBundle) waitRunDone(t *testing.T, run int64, limit time.Duration) string {
	t.Helper()
	b.waitFor(t, limit, fmt.Sprintf("run %d to finish", run),
		"SELECT count(*) FROM qflow.runs WHERE id = $1 AND status NOT IN ('pending', 'running')", run)
	return b.runStatus(t, run)
}

func TestKilledWorkerStepIsRetriedOnAnotherWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	victim := b.worker(t, "victim")
	run := b.start(t, "probe_chain", `{"sleep_ms": {"c": 2000}}`)
	b.waitFor(t, 30*time.Second, "c running on the victim",
		"SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND step = 'c' AND status = 'running'", run)
	b.worker(t, "survivor")

	require.NoError(t, victim.Process.Signal(syscall.SIGKILL))
	require.Equal(t, "succeeded", b.waitRunDone(t, run, time.Minute))

	got := b.attempts(t, run, "c")
	require.Len(t, got, 2)
	require.Equal(t, attempt{1, "timed_out", "victim"}, got[0], "the lease ran out: a failed attempt")
	require.Equal(t, attempt{2, "succeeded", "survivor"}, got[1])
	var out string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT output -> 'e' ->> 'value' FROM qflow.runs WHERE id = $1", run).Scan(&out))
	require.Equal(t, "31", out, "the chain's data survived the kill")
}

func TestGracefulShutdownFinishesRunningSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.worker(t, "first", "--shutdown-timeout", "30s")
	run := b.start(t, "probe_chain", `{"sleep_ms": {"b": 1000}}`)
	b.waitFor(t, 30*time.Second, "b running", "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND step = 'b' AND status = 'running'", run)

	require.NoError(t, first.Process.Signal(syscall.SIGTERM))
	require.NoError(t, first.Wait(), "a SIGTERM'd worker exits cleanly")
	require.Equal(t, []attempt{{1, "succeeded", "first"}}, b.attempts(t, run, "b"), "the in-flight step finished before exit")

	b.worker(t, "second")
	require.Equal(t, "succeeded", b.waitRunDone(t, run, time.Minute))
	require.Zero(t, count(t, b, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND status <> 'succeeded'", run))
}

func TestShutdownPastItsTimeoutReleasesSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.worker(t, "first", "--shutdown-timeout", "200ms")
	run := b.start(t, "probe_chain", `{"sleep_ms": {"b": 3000}}`)
	b.waitFor(t, 30*time.Second, "b running", "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND step = 'b' AND status = 'running'", run)

	require.NoError(t, first.Process.Signal(syscall.SIGTERM))
	require.NoError(t, first.Wait())
	got := b.attempts(t, run, "b")
	require.Equal(t, []attempt{{1, "cancelled", "first"}}, got, "released, not failed")

	b.worker(t, "second")
	require.Equal(t, "succeeded", b.waitRunDone(t, run, time.Minute))
	got = b.attempts(t, run, "b")
	require.Equal(t, attempt{2, "succeeded", "second"}, got[1])
}

func count(t *testing.T, b *testBundle, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n))
	return n
}

// A step may run for hours, so its lease is long; a killed worker is found by its session
// ending, not by the lease. The victim is one of two workers, either of which may have been
// the one sweeping: every worker tries, so the survivor sweeps in its place.
func TestAKilledWorkersLongStepIsRetriedLongBeforeItsLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.pool.Exec(b.ctx, `SELECT qflow.configure_workflow('probe_chain', '{"steps": {"c": {"timeout_ms": 180000}}}')`)
	require.NoError(t, err)
	victim := b.worker(t, "victim")
	run := b.start(t, "probe_chain", `{"sleep_ms": {"c": 2000}}`)
	b.waitFor(t, 30*time.Second, "c running on the victim",
		"SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND step = 'c' AND status = 'running'", run)
	b.worker(t, "survivor")

	require.NoError(t, victim.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	// The lease runs 182 s: only liveness can retry the step within this wait.
	b.waitFor(t, 60*time.Second, "c retried on the survivor",
		"SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'c' AND attempt = 2", run)
	t.Logf("a 180 s step of a SIGKILLed worker started again %s after the kill", time.Since(killed).Round(time.Millisecond))
	require.Equal(t, "succeeded", b.waitRunDone(t, run, time.Minute))
	var reason string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT error FROM qflow.step_attempts WHERE run_id = $1 AND step = 'c' AND attempt = 1", run).Scan(&reason))
	require.Contains(t, reason, "worker victim died")
}

func TestAKilledWorkersLegacyRunContinuesOnAnotherWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	victim := b.worker(t, "victim")
	var run int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `INSERT INTO qflow.runs (workflow, mode, input)
	    VALUES ('probe_chain', 'legacy', '{"sleep_ms": {"c": 3000}}') RETURNING id`).Scan(&run))
	b.waitFor(t, 30*time.Second, "the legacy run taken by the victim",
		"SELECT count(*) FROM qflow.runs WHERE id = $1 AND status = 'running'", run)
	b.worker(t, "survivor")

	require.NoError(t, victim.Process.Signal(syscall.SIGKILL))
	// River's own rescuer would wait an hour.
	require.Equal(t, "succeeded", b.waitRunDone(t, run, time.Minute))
	require.Equal(t, 2, count(t, b, "SELECT attempt FROM qflow.runs WHERE id = $1", run), "the chain ran again, once")
}

// Each fire of a schedule is one run across the fleet, with one of two workers SIGKILLed
// while fires fall due every second: the survivor takes the fires on, none twice.
func TestAScheduleFiresOnceEachThroughAWorkerKilledAtItsDueTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	victim := b.worker(t, "victim")
	b.worker(t, "survivor")
	_, err := b.pool.Exec(b.ctx, `INSERT INTO qflow.schedules (name, workflow, cron) VALUES ('every_second', 'probe_chain', '@every 1s')`)
	require.NoError(t, err)
	b.waitFor(t, 30*time.Second, "two fires", "SELECT (count(*) >= 2)::int FROM qflow.runs WHERE schedule = 'every_second'")

	require.NoError(t, victim.Process.Signal(syscall.SIGKILL))
	var killedAt time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT clock_timestamp()").Scan(&killedAt))
	b.waitFor(t, 30*time.Second, "three fires after the kill",
		"SELECT (count(*) >= 3)::int FROM qflow.runs WHERE schedule = 'every_second' AND created_at > $1", killedAt)
	_, err = b.pool.Exec(b.ctx, "UPDATE qflow.schedules SET enabled = false")
	require.NoError(t, err)

	// One run per fire key, and no second gone missing between the first fire and the last.
	var runs, keys int
	var span float64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT count(*), count(DISTINCT idempotency_key),
	    extract(epoch FROM max(created_at) - min(created_at)) FROM qflow.runs WHERE schedule = 'every_second'`).Scan(&runs, &keys, &span))
	require.Equal(t, keys, runs, "a fire ran twice")
	require.GreaterOrEqual(t, runs, int(span), "a fire went missing: %d runs over %.1f s", runs, span)
}
