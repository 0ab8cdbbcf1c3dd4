package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/internal/dbserver"
	"github.com/quantumflow/qflow/internal/dbtest"
)

// A read replica, as README's "Read replica" sets it up: a streaming standby of the primary
// (pg_basebackup), which `qflow ui`, `status`, `list` and the workers' metrics reporter read
// through QFLOW_READ_URL, and whose staleness they show.

type replicaBundle struct {
	*testBundle
	replica *pgxpool.Pool // the test's own view of the standby
	readURL string
	primary *dbserver.Cluster
}

func setupReplica(t *testing.T) *replicaBundle {
	t.Helper()
	primary := dbtest.Cluster(t)
	standby := dbtest.Standby(t, primary)
	b := &replicaBundle{testBundle: setupOn(t, dbtest.URLOn(t, primary.URL)), primary: primary}
	// The test database exists on the replica once it has replayed the primary's WAL so far.
	b.caughtUp(t, dbtest.PoolFor(t, standby.URL, 1))
	var err error
	b.readURL, err = dbserver.DatabaseOn(standby.URL, b.url)
	require.NoError(t, err)
	b.replica = dbtest.PoolFor(t, b.readURL, 3)
	// What reads the replica carries a name, so the test sees whose connections are there.
	b.env = []string{"QFLOW_READ_URL=" + b.readURL + "&application_name=qflow_read"}
	return b
}

// reader runs a read command whose only database is the replica: DATABASE_URL leads nowhere.
func (b *replicaBundle) reader(args ...string) *exec.Cmd {
	cmd := b.qflow(args...)
	cmd.Env = append(cmd.Env, "DATABASE_URL=postgres://nobody@127.0.0.1:1/nowhere?connect_timeout=1")
	return cmd
}

// caughtUp waits until the replica (a pool on any of its databases) has replayed everything
// the primary has written so far.
func (b *replicaBundle) caughtUp(t *testing.T, replica *pgxpool.Pool) {
	t.Helper()
	var lsn string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn))
	b.waitOn(t, replica, "the replica to replay "+lsn, "SELECT (pg_last_wal_replay_lsn() >= $1::pg_lsn)::int", lsn)
}

func (b *replicaBundle) waitOn(t *testing.T, pool *pgxpool.Pool, what, sql string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		require.NoError(t, pool.QueryRow(b.ctx, sql, args...).Scan(&n))
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReadsFromAStreamingReplicaSayHowStaleTheyAre(t *testing.T) {
	t.Parallel()
	b := setupReplica(t)
	metrics := freeAddr(t)
	b.worker(t, "w1", "--metrics-addr", metrics)
	var runs []int64
	for _, input := range []string{`{}`, `{"seed": 1}`, `{"fatal": ["c"]}`} {
		runs = append(runs, b.start(t, "probe_chain", input))
	}
	for _, id := range runs {
		b.waitRunDone(t, id, time.Minute)
	}
	b.caughtUp(t, b.replica)

	// status and list read the replica, and need nothing else.
	out, err := b.reader("status", fmt.Sprint(runs[1])).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Regexp(t, `(?m)^  e +succeeded`, string(out))
	out, err = b.reader("list").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Regexp(t, `probe_chain +1 +0 +0 +2 +1`, string(out))

	// The worker's metrics reporter reads there too, and counts every run once.
	b.waitOn(t, b.replica, "the reporter's connection on the replica",
		"SELECT count(*)::int FROM pg_stat_activity WHERE application_name = 'qflow_read'")
	waitMetric(t, metrics, `qflow_runs_total{mode="workflow",status="succeeded",workflow="probe_chain"}`, 2)
	waitMetric(t, metrics, `qflow_runs_total{mode="workflow",status="failed",workflow="probe_chain"}`, 1)
	waitMetric(t, metrics, `qflow_workers{class="cpu"}`, 1)

	ui := freeAddr(t)
	serveUI(t, ui, b.reader("ui", "--addr", ui))
	code, page := get(t, "http://"+ui+"/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "read replica · up to date")
	require.NotContains(t, page, "stale-note")

	// The replica falls behind: its replay is paused while the primary goes on.
	_, err = b.replica.Exec(b.ctx, "SELECT pg_wal_replay_pause()")
	require.NoError(t, err)
	late := b.start(t, "probe_chain", `{"seed": 2}`)
	b.waitRunDone(t, late, time.Minute)
	var lsn string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn))
	b.waitOn(t, b.replica, "the replica to receive the late run", "SELECT (pg_last_wal_receive_lsn() >= $1::pg_lsn)::int", lsn)

	// The page says how stale it is and why, and has not got the late run.
	code, page = get(t, "http://"+ui+"/")
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, `read replica · [0-9.]+ (ms|s) behind`, page)
	require.Regexp(t, `This page reads a replica that is <strong>[0-9.]+ (ms|s) behind</strong> the primary \(replay paused\): it shows the data as of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC`, page)
	require.NotContains(t, page, fmt.Sprintf(`href="/runs/%d"`, late))
	code, page = get(t, fmt.Sprintf("http://%s/runs/%d", ui, late))
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, page, "This page reads a replica that is")
	// So does status, asked for a run the replica has not got yet.
	out, err = b.reader("status", fmt.Sprint(late)).CombinedOutput()
	require.Error(t, err)
	require.Regexp(t, fmt.Sprintf(`run %d does not exist \(read from a replica [0-9.]+ s behind the primary, as of \d\d:\d\d:\d\d UTC: it may not have it yet\)`, late), string(out))

	// On a replica behind by more than a heartbeat's age, workers alive as of its data are
	// alive: the reporter counts time by the data, not by the replica's clock.
	b.waitOn(t, b.replica, "the replica to lag 6 s", "SELECT (lag_seconds > 6)::int FROM qflow.staleness()")
	live, err := gen.New(b.replica).LiveWorkers(b.ctx, 6) // a heartbeat every 5 s
	require.NoError(t, err)
	require.Equal(t, []gen.LiveWorkersRow{{Class: "cpu", Workers: 1}}, live)
	waitMetric(t, metrics, `qflow_workers{class="cpu"}`, 1)

	// Replay resumes: the page is up to date and shows the late run, counted once.
	_, err = b.replica.Exec(b.ctx, "SELECT pg_wal_replay_resume()")
	require.NoError(t, err)
	b.caughtUp(t, b.replica)
	code, page = get(t, "http://"+ui+"/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "read replica · up to date")
	require.Contains(t, page, fmt.Sprintf(`href="/runs/%d"`, late))
	waitMetric(t, metrics, `qflow_runs_total{mode="workflow",status="succeeded",workflow="probe_chain"}`, 3)
}

// waitMetric waits until the worker serving /metrics on addr exports series with value want.
func waitMetric(t *testing.T, addr, series string, want float64) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	var got string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, text := get(t, "http://"+addr+"/metrics")
		if m := re.FindStringSubmatch(text); m != nil {
			got = m[1]
			if v, err := strconv.ParseFloat(got, 64); err == nil && v == want {
				return
			}
		}
		require.False(t, time.Now().After(deadline), "%s is %q, want %v", series, got, want)
	}
}
