package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbserver"
	"github.com/quantumflow/qflow/internal/dbtest"
)

// Behind PgBouncer in transaction pooling mode, as README's "Behind PgBouncer" sets it up:
// workers, the CLI and the application inserting runs go through PgBouncer; the workers'
// sessions (liveness lock and cancel LISTEN, the sweep's, the scheduler's and the reporter's
// locks) go to Postgres directly.

type pgbBundle struct {
	*testBundle
	pgb    *dbserver.PgBouncer
	pooled string        // the test database through PgBouncer
	app    *pgxpool.Pool // a client of PgBouncer, as an application inserting runs is
}

func setupPgBouncer(t *testing.T) *pgbBundle {
	t.Helper()
	b := &pgbBundle{testBundle: setup(t), pgb: dbtest.PgBouncer(t)}
	var err error
	b.pooled, err = dbserver.DatabaseOn(b.pgb.URL, b.url)
	require.NoError(t, err)
	b.env = []string{"DATABASE_URL=" + b.pooled, "QFLOW_PGBOUNCER=on", "QFLOW_DIRECT_URL=" + b.url}
	b.app, err = dbserver.OpenPooled(b.ctx, b.pooled, 4)
	require.NoError(t, err)
	t.Cleanup(b.app.Close)
	return b
}

// startRuns inserts n runs, alternately probe_chain and probe_diamond with seeds from seed0,
// every fourth one with a step b that fails once, through PgBouncer. Each run has an
// idempotency key, so the insert is repeated until it lands, as an application would repeat
// it across a restart of PgBouncer without ever starting a run twice.
func (b *pgbBundle) startRuns(t *testing.T, seed0, n int) {
	t.Helper()
	const insert = `INSERT INTO qflow.runs (workflow, input, idempotency_key)
	SELECT CASE WHEN i % 2 = 0 THEN 'probe_chain' ELSE 'probe_diamond' END,
	       jsonb_build_object('seed', i) || CASE WHEN i % 4 = 0 THEN '{"fail": {"b": 1}}' ELSE '{}' END::jsonb,
	       'pgb-' || i
	  FROM generate_series($1::int, $2::int) AS i
	    ON CONFLICT (idempotency_key) DO NOTHING`
	for try := 0; ; try++ {
		_, err := b.app.Exec(b.ctx, insert, seed0, seed0+n-1)
		if err == nil {
			return
		}
		require.Less(t, try, 50, "inserting runs through PgBouncer: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
}

func TestProbeWorkloadAndSchedulesThroughPgBouncerLoseNothingWhenPgBouncerRestarts(t *testing.T) {
	t.Parallel()
	b := setupPgBouncer(t)
	b.worker(t, "pgb-1")
	b.worker(t, "pgb-2")
	_, err := b.app.Exec(b.ctx, `INSERT INTO qflow.schedules (name, workflow, cron, input) VALUES ('pgb', 'probe_chain', '@every 1s', '{"seed": 1000}')`)
	require.NoError(t, err)

	b.startRuns(t, 0, 40)
	b.waitFor(t, time.Minute, "work in flight", "SELECT (count(*) >= 20)::int FROM qflow.step_runs WHERE status = 'succeeded'")
	// A crash of PgBouncer cuts every pooled connection mid-transaction: claims, results,
	// River's fetches and completions in flight are lost or rolled back.
	require.NoError(t, b.pgb.Restart(b.ctx))
	var restarted time.Time
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT now()").Scan(&restarted))
	b.startRuns(t, 40, 40)

	// The CLI through PgBouncer: start and wait, status, list.
	out, err := b.qflow("start", "probe_diamond", "--input", `{"seed": 100}`, "--wait").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), `"d": {"step": "d", "value": 1613}`)
	var cliRun int64
	_, err = fmt.Sscanf(string(out), "run %d started", &cliRun)
	require.NoError(t, err, string(out))
	// The schedule fires on through PgBouncer's restart.
	b.waitFor(t, time.Minute, "scheduled runs after the restart",
		"SELECT (count(*) >= 2)::int FROM qflow.runs WHERE schedule = 'pgb' AND created_at > $1 AND status = 'succeeded'", restarted)
	_, err = b.app.Exec(b.ctx, "UPDATE qflow.schedules SET enabled = false")
	require.NoError(t, err)

	b.waitFor(t, 2*time.Minute, "every run to finish", "SELECT (count(*) = 0)::int FROM qflow.runs WHERE status IN ('pending', 'running')")
	require.Zero(t, count(t, b.testBundle, "SELECT count(*) FROM qflow.runs WHERE status <> 'succeeded'"), "every run succeeded")
	require.Equal(t, 81, count(t, b.testBundle, "SELECT count(*) FROM qflow.runs WHERE schedule IS NULL"))
	scheduled := count(t, b.testBundle, "SELECT count(*) FROM qflow.runs WHERE schedule = 'pgb'")
	// Each run's leaf holds what its seed makes: chain e = 31 + 32·seed, diamond d = 13 + 16·seed.
	require.Zero(t, count(t, b.testBundle, `SELECT count(*) FROM qflow.runs
	    WHERE (coalesce(output -> 'e', output -> 'd') ->> 'value')::int IS DISTINCT FROM
	          CASE workflow WHEN 'probe_chain' THEN 31 + 32 * (input ->> 'seed')::int ELSE 13 + 16 * (input ->> 'seed')::int END`))
	require.Zero(t, count(t, b.testBundle, `SELECT count(*) FROM qflow.step_runs sr
	    WHERE (SELECT count(*) FROM qflow.step_attempts a WHERE a.run_id = sr.run_id AND a.step = sr.step AND a.status = 'succeeded') <> 1`),
		"every step succeeded exactly once")
	require.Equal(t, 20, count(t, b.testBundle, "SELECT count(*) FROM qflow.step_attempts WHERE step = 'b' AND status = 'failed'"),
		"the planned failures were retried through PgBouncer")
	require.Zero(t, count(t, b.testBundle, "SELECT count(*) FROM river.river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded')"),
		"no job left behind")
	// The workers' liveness is a session of their own: losing PgBouncer is not dying.
	require.Zero(t, count(t, b.testBundle, "SELECT count(*) FROM qflow.step_attempts WHERE error LIKE '%died%'"))
	require.Equal(t, 2, count(t, b.testBundle, "SELECT count(*) FROM qflow.workers"))

	out, err = b.qflow("status", fmt.Sprint(cliRun)).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Regexp(t, `(?m)^  d +succeeded`, string(out))
	out, err = b.qflow("list").CombinedOutput()
	require.NoError(t, err, string(out))
	require.Regexp(t, fmt.Sprintf(`probe_chain +1 +0 +0 +%d +0`, 40+scheduled), string(out))
	ui := freeAddr(t)
	serveUI(t, ui, b.qflow("ui", "--addr", ui))
	code, page := get(t, fmt.Sprintf("http://%s/runs/%d", ui, cliRun))
	require.Equal(t, http.StatusOK, code, page)
	require.Contains(t, page, `data-step="d" data-status="succeeded"`)

	// And it all went through PgBouncer: its console counts the transactions it carried.
	require.Positive(t, pgbouncerTransactions(t, b))
}

// pgbouncerTransactions reads from PgBouncer's console how many transactions it carried to
// the test database since it last started.
func pgbouncerTransactions(t *testing.T, b *pgbBundle) int64 {
	t.Helper()
	admin, err := dbserver.DatabaseOn(b.pgb.URL, b.pgb.URL)
	require.NoError(t, err)
	cfg, err := pgx.ParseConfig(admin)
	require.NoError(t, err)
	cfg.Database = "pgbouncer"
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol // all the console speaks
	conn, err := pgx.ConnectConfig(b.ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	db, err := pgx.ParseConfig(b.url)
	require.NoError(t, err)
	rows, err := conn.Query(b.ctx, "SHOW STATS")
	require.NoError(t, err)
	stats, err := pgx.CollectRows(rows, pgx.RowToMap)
	require.NoError(t, err)
	for _, s := range stats {
		if s["database"] == db.Database {
			n, ok := s["total_xact_count"].(pgtype.Numeric) // PgBouncer's counters are numeric
			require.True(t, ok, "total_xact_count is %T", s["total_xact_count"])
			i, err := n.Int64Value()
			require.NoError(t, err)
			return i.Int64
		}
	}
	t.Fatalf("PgBouncer has no stats for database %s", db.Database)
	return 0
}
