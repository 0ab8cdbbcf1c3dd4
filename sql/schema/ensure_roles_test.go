package schema_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/migrations"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

// Each test makes its own four roles (roles belong to the server, not to a database), grants
// them in its own database, and connects as a login user in each.

type rolesBundle struct {
	*testBundle
	url   string
	roles migrations.Roles
	// as holds a pool per role, connected as a login user that is a member of it.
	as map[string]*pgxpool.Pool
}

var roleTests atomic.Int64

func setupRoles(t *testing.T) *rolesBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	prefix := fmt.Sprintf("qt%d_%d", os.Getpid(), roleTests.Add(1))
	roles, err := migrations.RolesWithPrefix(prefix)
	require.NoError(t, err)
	kinds := map[string]string{"admin": roles.Admin, "worker": roles.Worker, "trigger": roles.Trigger, "reader": roles.Reader}

	// Registered first, so it runs last: after the database (whose objects the roles own) is gone.
	server := dbtest.ServerURL(t)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), server)
		if err != nil {
			t.Logf("dropping roles: %v", err)
			return
		}
		defer conn.Close(context.Background())
		for kind, group := range kinds {
			for _, r := range []string{prefix + "_" + kind + "_login", group} {
				if _, err := conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+r); err != nil {
					t.Logf("dropping role %s: %v", r, err)
				}
			}
		}
	})

	dbURL := dbtest.URL(t)
	b := &rolesBundle{testBundle: &testBundle{ctx: ctx, pool: dbtest.PoolFor(t, dbURL, 8)}, url: dbURL, roles: roles, as: map[string]*pgxpool.Pool{}}
	require.NoError(t, migrations.EnsureRoles(ctx, b.pool, roles))
	require.NoError(t, migrations.EnsureRoles(ctx, b.pool, roles), "a second run changes nothing and fails on nothing")
	for kind, group := range kinds {
		login := prefix + "_" + kind + "_login"
		b.exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'secret' IN ROLE %s", login, group))
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		u.User = url.UserPassword(login, "secret")
		b.as[kind] = dbtest.PoolFor(t, u.String(), 6)
	}
	b.chain(t, nil)
	return b
}

// can runs sql as the role and requires it to work.
func (b *rolesBundle) can(t *testing.T, role, sql string, args ...any) {
	t.Helper()
	_, err := b.as[role].Exec(b.ctx, sql, args...)
	require.NoError(t, err, "%s: %s", role, sql)
}

// cannot runs sql as the role and requires a permission error.
func (b *rolesBundle) cannot(t *testing.T, role, sql string, args ...any) {
	t.Helper()
	_, err := b.as[role].Exec(b.ctx, sql, args...)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "%s: %s", role, sql)
	require.Equal(t, "42501", pgErr.Code, "%s: %s: %s", role, sql, pgErr.Message)
}

func (b *rolesBundle) startAs(t *testing.T, role, input string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.as[role].QueryRow(b.ctx, "INSERT INTO qflow.runs (workflow, input) VALUES ('chain', $1) RETURNING id", input).Scan(&id))
	return id
}

func TestTriggerRoleStartsAndSteersRunsOnly(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)

	run := b.startAs(t, "trigger", `{"k": 1}`)
	require.Equal(t, "queued", b.stepStatus(t, run, "a"), "its INSERT made the step rows and the River job it may not touch itself")
	b.can(t, "trigger", `INSERT INTO qflow.runs (workflow, idempotency_key, priority) VALUES ('chain', 'order-7', 1)
	                     ON CONFLICT (idempotency_key) DO NOTHING`)
	b.can(t, "trigger", `SELECT qflow.start_run('chain', '{}', 'order-7')`)
	b.can(t, "trigger", `SELECT qflow.cancel_run($1)`, run)
	b.can(t, "trigger", `SELECT qflow.retry_run($1)`, run)
	// Errors stay clear through SECURITY DEFINER.
	_, err := b.as["trigger"].Exec(b.ctx, `INSERT INTO qflow.runs (workflow) VALUES ('nope')`)
	require.ErrorContains(t, err, `qflow: unknown workflow "nope"`)

	b.cannot(t, "trigger", `INSERT INTO qflow.runs (workflow, status) VALUES ('chain', 'succeeded')`)
	b.cannot(t, "trigger", `SELECT input FROM qflow.runs`)
	b.cannot(t, "trigger", `UPDATE qflow.runs SET priority = 1`)
	b.cannot(t, "trigger", `DELETE FROM qflow.runs`)
	b.cannot(t, "trigger", `UPDATE qflow.step_runs SET status = 'ready'`)
	b.cannot(t, "trigger", `SELECT count(*) FROM river.river_job`)
	b.cannot(t, "trigger", `SELECT qflow.finish_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1, 'result', 'complete')))`, run)
	b.cannot(t, "trigger", `SELECT qflow.status($1)`, run)
	b.cannot(t, "trigger", `SELECT count(*) FROM qflow.run_overview`)
	b.cannot(t, "trigger", `SELECT qflow.register_workflow('{"name": "x", "steps": [{"name": "a"}]}')`)
	b.cannot(t, "trigger", `SELECT qflow.dispatch(ARRAY[$1::bigint])`, run)
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM qflow.runs"))
}

func TestReaderRoleReadsOnly(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)
	run := b.start(t, "chain", "{}")
	b.runStep(t, run, "a")

	for _, sql := range []string{
		`SELECT * FROM qflow.run_overview`, `SELECT * FROM qflow.step_overview`, `SELECT * FROM qflow.workflow_settings`,
		`SELECT * FROM qflow.workflow_stats`, `SELECT * FROM qflow.step_stats`, `SELECT * FROM qflow.list_workflows()`,
		`SELECT * FROM qflow.workflow_stats('1 hour')`, `SELECT * FROM qflow.step_stats('1 hour', 'chain')`,
		`SELECT id, status FROM qflow.runs`, `SELECT * FROM qflow.steps`, `SELECT * FROM qflow.settings`,
		`SELECT * FROM qflow.staleness()`, `SELECT desired_workers FROM qflow.autoscaling(1, 'gpu')`,
	} {
		b.can(t, "reader", sql)
	}
	var status string
	require.NoError(t, b.as["reader"].QueryRow(b.ctx, `SELECT qflow.status($1) ->> 'status'`, run).Scan(&status))
	require.Equal(t, "running", status)
	b.can(t, "reader", `SELECT qflow.metrics($1)`, run)

	b.cannot(t, "reader", `INSERT INTO qflow.runs (workflow) VALUES ('chain')`)
	b.cannot(t, "reader", `SELECT qflow.start_run('chain')`)
	b.cannot(t, "reader", `SELECT qflow.cancel_run($1)`, run)
	b.cannot(t, "reader", `SELECT qflow.finish_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'b', 'attempt', 1, 'result', 'complete')))`, run)
	b.cannot(t, "reader", `UPDATE qflow.steps SET max_attempts = 9`)
	b.cannot(t, "reader", `UPDATE qflow.settings SET value = 10`)
	b.cannot(t, "reader", `SELECT count(*) FROM river.river_job`)
	b.can(t, "reader", `SELECT count(*) FROM ml.models`)
	b.cannot(t, "reader", `SELECT count(*) FROM ml.task_executions`)
	b.cannot(t, "reader", `CALL qflow.sweep()`)
}

func TestWorkerRoleRunsStepsButWritesNothingElse(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)
	run := b.start(t, "chain", "{}")

	// The procedures of a step's life, in the batched form the worker uses.
	var claimed int
	require.NoError(t, b.as["worker"].QueryRow(b.ctx, `SELECT count(*) FROM qflow.claim_steps(jsonb_build_array(
	    jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1)), 'w1')`, run).Scan(&claimed))
	require.Equal(t, 1, claimed)
	var outcome string
	require.NoError(t, b.as["worker"].QueryRow(b.ctx, `SELECT outcome FROM qflow.finish_steps(jsonb_build_array(
	    jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1, 'result', 'complete', 'output', '{"v": 1}'::jsonb)))`,
		run).Scan(&outcome))
	require.Equal(t, "completed", outcome)
	b.can(t, "worker", `SELECT qflow.claim_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'b', 'attempt', 1)), 'w1')`, run)
	b.can(t, "worker", `SELECT qflow.finish_steps(jsonb_build_array(
	    jsonb_build_object('run_id', $1::bigint, 'step', 'b', 'attempt', 1, 'result', 'fail', 'error', 'boom')))`, run)
	b.can(t, "worker", `SELECT qflow.register_workflow('{"name": "mine", "steps": [{"name": "a"}]}')`)
	b.can(t, "worker", `SELECT qflow.configure_workflow('mine', '{"timeout_ms": 1000}')`)
	b.can(t, "worker", `INSERT INTO qflow.workers (id, host, pid, classes) VALUES ('w1', 'h', 1, '{cpu}')
	                    ON CONFLICT (id) DO UPDATE SET last_seen_at = now()`)
	b.can(t, "worker", `SELECT count(*) FROM river.river_job`)
	b.can(t, "worker", `SELECT count(*) FROM ml.task_executions`)
	b.can(t, "worker", `SELECT version FROM qflow.schema_version`)
	b.can(t, "worker", `SELECT as_of FROM qflow.staleness()`) // the metrics reporter's clock
	// The sweep commits as it goes, so it cannot be SECURITY DEFINER; it works through helpers that are.
	b.claim(t, run, "b")
	b.exec(t, `UPDATE qflow.step_runs SET lease_expires_at = now() - interval '1 second' WHERE run_id = $1 AND step = 'b'`, run)
	var expired int
	require.NoError(t, b.as["worker"].QueryRow(b.ctx, `CALL qflow.sweep()`).Scan(nil, &expired, nil))
	require.Equal(t, 1, expired)

	b.cannot(t, "worker", `UPDATE qflow.step_runs SET status = 'ready' WHERE run_id = $1`, run)
	b.cannot(t, "worker", `UPDATE qflow.runs SET status = 'cancelled', finished_at = now() WHERE id = $1`, run)
	b.cannot(t, "worker", `INSERT INTO qflow.runs (workflow) VALUES ('chain')`)
	b.cannot(t, "worker", `UPDATE qflow.steps SET max_attempts = 9`)
	b.cannot(t, "worker", `DELETE FROM qflow.workflows`)
	b.cannot(t, "worker", `SELECT qflow.cancel_run($1)`, run)
	b.cannot(t, "worker", `SELECT qflow.retry_run($1)`, run)
	b.cannot(t, "worker", `SELECT qflow.finish_run($1, 'succeeded', NULL)`, run)
	// The rules finish_steps applies are internal: the worker reaches them only through it.
	b.cannot(t, "worker", `SELECT qflow.fail_step($1, 'b', 2, 'boom')`, run)
	b.cannot(t, "worker", `SELECT qflow.river_finalize_jobs(ARRAY[1::bigint], 'completed', '{running}')`)
	b.cannot(t, "worker", `SELECT qflow.ensure_roles('a', 'b', 'c', 'd')`)
	b.cannot(t, "worker", `UPDATE qflow.settings SET value = 10`)
}

func TestAdminRoleMigratesAndDefines(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)

	// A login in the admin role, neither superuser nor owner of the database, runs `qflow migrate`.
	require.NoError(t, migrations.Migrate(b.ctx, b.as["admin"]))
	require.NoError(t, migrations.EnsureRoles(b.ctx, b.as["admin"], b.roles))
	b.can(t, "admin", `SELECT qflow.register_workflow('{"name": "defined", "steps": [{"name": "a"}, {"name": "b", "depends_on": ["a"]}]}')`)
	b.can(t, "admin", `UPDATE qflow.steps SET max_attempts = 5 WHERE workflow = 'defined'`)
	b.can(t, "admin", `UPDATE qflow.settings SET value = 4096 WHERE key = 'max_input_bytes'`)
	b.can(t, "admin", `CREATE FUNCTION qflow.admin_may_define() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;
	                   DROP FUNCTION qflow.admin_may_define()`)

	// Everything is the admin role's, and the definer procedures run as it.
	require.Zero(t, b.count(t, `SELECT count(*) FROM pg_class WHERE relnamespace IN ('qflow'::regnamespace, 'ml'::regnamespace, 'river'::regnamespace)
	                             AND relkind IN ('r', 'v') AND relowner <> $1::regrole`, b.roles.Admin))
	require.Zero(t, b.count(t, `SELECT count(*) FROM pg_proc WHERE pronamespace = 'qflow'::regnamespace AND proowner <> $1::regrole`, b.roles.Admin))
	require.Zero(t, b.count(t, `SELECT count(*) FROM pg_proc p JOIN qflow.procedure_access a ON a.name = p.proname
	                             WHERE p.pronamespace = 'qflow'::regnamespace AND a.definer
	                               AND NOT (p.prosecdef AND 'search_path=pg_catalog, qflow, pg_temp' = ANY (p.proconfig))`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM pg_proc WHERE pronamespace = 'qflow'::regnamespace
	                             AND has_function_privilege('public', oid, 'EXECUTE')`), "PUBLIC calls nothing")
}

func TestRolesRefuseBadNames(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := migrations.RolesWithPrefix("pg_qflow")
	require.ErrorContains(t, err, "not starting with pg_")
	_, err = migrations.RolesWithPrefix("Q-Flow")
	require.ErrorContains(t, err, `role prefix "Q-Flow" is invalid`)
	err = migrations.EnsureRoles(b.ctx, b.pool, migrations.Roles{Admin: "x_admin", Worker: "x_admin", Trigger: "x_t", Reader: "x_r"})
	require.ErrorContains(t, err, "the four roles need four different names")
	err = migrations.EnsureRoles(b.ctx, b.pool, migrations.Roles{Admin: `x"; DROP TABLE qflow.runs; --`, Worker: "x_w", Trigger: "x_t", Reader: "x_r"})
	require.ErrorContains(t, err, "is invalid")
	require.Zero(t, b.count(t, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'x\\_%'"))
}

// TestWorkerLoginCompletesRuns runs a real worker (River client, batches, sweep) connected as
// a login that has only the worker role, on runs a trigger login inserted.
func TestWorkerLoginCompletesRuns(t *testing.T) {
	t.Parallel()
	b := setupRoles(t)
	reg := pipelines.NewRegistry()
	reg.MustAdd(probe.Workflow("chain", map[string][]string{"a": nil, "b": {"a"}, "c": {"b"}}))
	w, err := worker.New(worker.Config{Pool: b.as["worker"], Registry: reg, MaxWorkers: 4, ID: "least-privilege",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.NoError(t, w.Start(b.ctx))
	t.Cleanup(func() { _ = w.Stop(context.Background()) })

	ok := b.startAs(t, "trigger", `{"seed": 1, "fail": {"b": 1}, "panic": {"c": 1}}`)
	fatal := b.startAs(t, "trigger", `{"fatal": ["b"]}`)
	deadline := time.Now().Add(time.Minute)
	for b.count(t, "SELECT count(*) FROM qflow.runs WHERE status IN ('pending', 'running')") > 0 {
		require.True(t, time.Now().Before(deadline), "runs did not finish: %v", b.statusDoc(t, ok))
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, "succeeded", b.runStatus(t, ok))
	require.Equal(t, "failed", b.runStatus(t, fatal))
	var c string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT output -> 'c' ->> 'value' FROM qflow.runs WHERE id = $1", ok).Scan(&c))
	require.Equal(t, "15", c, "a = 3, b = 7, c = 15")
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'c'", ok), "the panic was an attempt")
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.workers WHERE id = 'least-privilege'"))
	// Its sweep works with the worker login's rights: a step (of a class it does not serve)
	// claimed by a worker that is gone, which never held a liveness lock, is given up.
	b.register(t, "elsewhere", map[string][]string{"a": nil}, func(w *pipelines.Workflow) { w.Steps[0].WorkerClass = "gpu" })
	orphan := b.start(t, "elsewhere", "{}")
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', 'a', 'attempt', 1)), 'gone')`, orphan))
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND status = 'timed_out' AND error LIKE '%gone died%'", orphan) == 1
	}, 10*time.Second, 20*time.Millisecond)
}
