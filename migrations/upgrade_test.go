package migrations_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbserver"
	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/migrations"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

// release17 is the last release whose migrations defined the code objects themselves. Its
// migrations are the upgrade path of every database made before sql/schema, so they are
// frozen: a changed byte here means databases of that release would upgrade differently from
// how they were made.
const release17 = 17

var frozen = map[string]string{
	"001_schema.sql":             "2cf4ce142170a5d16e5732193b5c00629f411e6034c18cf5aa8884fffc1e73a2",
	"002_register_workflow.sql":  "9abb99aa6176ccb27ea8a6193664db0db4ac0f54195fa39b33f85917f7763f7c",
	"003_dispatch.sql":           "0756890b56d1cb8e5b502bdece414f6bf7f97afd3141dc321c0b2d662fc8fede",
	"004_start_run.sql":          "7ee3074a0ff4d3fd9fb0ab460706207c6114cceb6d330e6b3fd69c422b41ece1",
	"005_claim_step.sql":         "eb207625cb3a1fe3e4f2e2e9d74a1e0839eb4bb69f7b307e4217ad21c90f65e1",
	"006_complete_step.sql":      "b9351d082506ab0111e13323df5dd617b2813cd580fc0b6f38054e647e983c8d",
	"007_operations.sql":         "6aa24db71a1f92225e878c40167ca106b5bf98a290a018fa6ecc47989b925b35",
	"008_legacy.sql":             "c8a7290d969d2653c4b19fcfeeff13fe9970140d29f3848a859bffe398e59594",
	"009_views.sql":              "be6d23ae4c22c342fc4de10ce0dbe800ff0f004dd987d62939042a4479b868f2",
	"010_ml.sql":                 "cbe123413544a29a33101afc439c6902c02d99c4ca265fdbc6b95f4f381fa324",
	"011_configure_workflow.sql": "974492a1829ceb34680302b3c50e71a7b9ade525a450f365f23ef06a84a34dd1",
	"012_metrics.sql":            "f3f213a94b3f9b5761dedeac2c2ee659596554abdf573c572c1a9b7f6f940e09",
	"013_stats.sql":              "9399c99ee43c8e61b41eab6be262ace081342310e26209e6a725b8778f0bc5e3",
	"014_guards.sql":             "ffbce724b94b65e0a16ed559c60a4b29c4f9ccbb1e04990b3606b6fb2a330797",
	"015_roles.sql":              "041962131d1bce195c7189b1519b98066e91a1fbf5bca5691714bfc584824613",
	"016_eager_dispatch.sql":     "90d5ffd410998beeff510c40df79e1dab2270da44bd7dd967d9f7e5542d627e3",
	"017_set_based_claims.sql":   "64152786e1ef5befcc3dd911a10be4145374fc2971fd667754d32357a2083fd5",
}

func TestReleasedMigrationsAreFrozen(t *testing.T) {
	t.Parallel()
	for name, want := range frozen {
		b, err := fs.ReadFile(migrations.Files, name)
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		require.Equal(t, want, hex.EncodeToString(sum[:]), "%s is released history: change sql/schema and add a migration instead", name)
	}
}

// upgradeChain is a probe chain with short timeouts, so that a step left running by the old
// release's dead worker is retried within seconds of the upgrade.
func upgradeChain() pipelines.Workflow {
	w := probe.Workflow("upgrade_chain", map[string][]string{"a": nil, "b": {"a"}, "c": {"b"}})
	for i := range w.Steps {
		w.Steps[i].TimeoutMS = 1000
	}
	return w
}

func registry(t *testing.T) *pipelines.Registry {
	reg := pipelines.NewRegistry()
	require.NoError(t, reg.Add(upgradeChain()))
	return reg
}

// release17Database builds a database as release 17's `qflow migrate` left it: River's
// migrations, migrations 001-017, secure_procedures and the roles.
func release17Database(t *testing.T, ctx context.Context, roles migrations.Roles) *pgxpool.Pool {
	t.Helper()
	server := dbtest.ServerURL(t)
	name := fmt.Sprintf("qflow_release17_%d_%d", os.Getpid(), time.Now().UnixNano())
	url, err := dbserver.Create(ctx, server, name, "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = dbserver.Drop(context.Background(), server, name) })
	pool := dbtest.PoolFor(t, url, 20)

	_, err = pool.Exec(ctx, "CREATE SCHEMA river; CREATE SCHEMA qflow")
	require.NoError(t, err)
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: migrations.RiverSchema})
	require.NoError(t, err)
	_, err = rm.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(t, err)
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), migrations.VersionTable)
	require.NoError(t, err)
	require.NoError(t, m.LoadMigrations(migrations.Files))
	require.NoError(t, m.MigrateTo(ctx, release17))
	_, err = pool.Exec(ctx, "SELECT qflow.secure_procedures()")
	require.NoError(t, err)
	require.NoError(t, migrations.EnsureRoles(ctx, pool, roles))
	return pool
}

// oneStep plays release 17's worker: claims the step's current attempt and, unless it dies
// first, completes it through the procedures of that release.
func oneStep(t *testing.T, ctx context.Context, pool *pgxpool.Pool, run int64, step string, complete bool) {
	t.Helper()
	var attempt int
	require.NoError(t, pool.QueryRow(ctx, "SELECT attempt FROM qflow.step_runs WHERE run_id = $1 AND step = $2", run, step).Scan(&attempt))
	var claimed int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', $2::text, 'attempt', $3::integer)), 'release-17-worker')`, run, step, attempt).Scan(&claimed))
	require.Equal(t, 1, claimed)
	if !complete {
		return
	}
	var outcome string
	require.NoError(t, pool.QueryRow(ctx, `SELECT outcome FROM qflow.finish_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', $2::text, 'attempt', $3::integer, 'result', 'complete', 'output', jsonb_build_object('step', $2::text))))`,
		run, step, attempt).Scan(&outcome))
	require.Equal(t, "completed", outcome)
}

func TestAnUpgradedRelease17DatabaseEqualsAFreshOneAndFinishesItsRuns(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	roles, err := migrations.RolesWithPrefix("qflow_upgrade")
	require.NoError(t, err)

	// B: release 17 with history and runs in flight.
	old := release17Database(t, ctx, roles)
	_, err = registry(t).Sync(ctx, old)
	require.NoError(t, err)
	start := func(mode string) int64 {
		var id int64
		require.NoError(t, old.QueryRow(ctx, "INSERT INTO qflow.runs (workflow, mode) VALUES ('upgrade_chain', $1) RETURNING id", mode).Scan(&id))
		return id
	}
	finished := start("workflow")
	for _, s := range []string{"a", "b", "c"} {
		oneStep(t, ctx, old, finished, s, true)
	}
	queued := start("workflow") // a done, b queued in River
	oneStep(t, ctx, old, queued, "a", true)
	orphaned := start("workflow") // a claimed by a worker that died with release 17
	oneStep(t, ctx, old, orphaned, "a", false)
	fresh := start("workflow") // nothing done yet
	legacy := start("legacy")
	require.Equal(t, "succeeded", scalar(t, ctx, old, "SELECT status FROM qflow.runs WHERE id = $1", finished))

	require.NoError(t, migrations.Migrate(ctx, old))
	require.NoError(t, migrations.EnsureRoles(ctx, old, roles))

	// A: a fresh database migrated by this binary.
	freshDB := dbtest.Pool(t)
	require.NoError(t, migrations.EnsureRoles(ctx, freshDB, roles))

	a, b := catalog(t, ctx, freshDB), catalog(t, ctx, old)
	require.NotEmpty(t, a)
	require.Equal(t, a, b, "a fresh database and an upgraded one differ")

	// The runs release 17 left in flight finish with this binary's worker.
	env := &enginetest.Env{Ctx: ctx, Pool: old, Registry: registry(t), URL: old.Config().ConnString()}
	env.StartWorker(t, worker.Config{ID: "upgraded-worker"})
	for _, id := range []int64{queued, orphaned, fresh, legacy} {
		r := env.Wait(t, id, time.Minute)
		require.Equal(t, "succeeded", r.Status, "run %d: %s", id, r.Error)
	}
	require.Equal(t, 1, env.Count(t, `SELECT count(*) FROM qflow.step_attempts
	                                   WHERE run_id = $1 AND step = 'a' AND status = 'timed_out'`, orphaned),
		"the dead worker's attempt ran out its lease and was retried")
}

func scalar(t *testing.T, ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) any {
	t.Helper()
	var v any
	require.NoError(t, pool.QueryRow(ctx, sql, args...).Scan(&v))
	return v
}

// catalog describes every object of schemas qflow and ml as sorted lines: tables with their
// columns, constraints and indexes; routines with their full definitions (body, SECURITY
// DEFINER, search_path, plan_cache_mode), owners and grants; triggers; views; table grants;
// and the bookkeeping rows (schema version, applied code, procedure access).
func catalog(t *testing.T, ctx context.Context, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(ctx, catalogSQL)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		out = append(out, line)
	}
	require.NoError(t, rows.Err())
	return out
}

const catalogSQL = `
WITH ns AS (SELECT oid, nspname FROM pg_namespace WHERE nspname IN ('qflow', 'ml')),
acl AS (
    SELECT c.oid, string_agg(format('%s:%s', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.privilege_type),
                             ',' ORDER BY 1) AS grants
      FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
     WHERE c.relnamespace IN (SELECT oid FROM ns)
     GROUP BY c.oid
)
SELECT line FROM (
    SELECT format('schema %s owner %s', n.nspname, n.nspowner::regrole) AS line
      FROM pg_namespace n WHERE n.oid IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('relation %s kind %s owner %s grants %s', c.oid::regclass, c.relkind, c.relowner::regrole, coalesce(acl.grants, ''))
      FROM pg_class c LEFT JOIN acl ON acl.oid = c.oid
     WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind IN ('r', 'v', 'S', 'p')
    UNION ALL
    SELECT format('column %s.%s #%s %s notnull=%s default=%s identity=%s', a.attrelid::regclass, a.attname, a.attnum,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity)
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind IN ('r', 'v') AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('constraint %s on %s: %s', con.conname, con.conrelid::regclass, pg_get_constraintdef(con.oid))
      FROM pg_constraint con WHERE con.connamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('routine %s owner %s secdef=%s config=%s acl=%s: %s', p.oid::regprocedure, p.proowner::regrole, p.prosecdef,
                  p.proconfig, (SELECT string_agg(format('%s:%s', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
                                                         a.privilege_type), ',' ORDER BY 1)
                                  FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a),
                  pg_get_functiondef(p.oid))
      FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(tg.oid))
      FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
     WHERE c.relnamespace IN (SELECT oid FROM ns) AND NOT tg.tgisinternal
    UNION ALL
    SELECT format('view %s: %s', c.oid::regclass, pg_get_viewdef(c.oid))
      FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns) AND c.relkind = 'v'
    UNION ALL
    SELECT format('schema_version %s', version) FROM qflow.schema_version
    UNION ALL
    SELECT format('schema_code %s %s', file, sha256) FROM qflow.schema_code
    UNION ALL
    SELECT format('procedure_access %s %s %s', name, roles, definer) FROM qflow.procedure_access
    UNION ALL
    SELECT format('setting %s', key) FROM qflow.settings
) x ORDER BY line`

// A database whose code came from an older build (some checksums differ) takes this build's
// code on the next migrate, and records it: the case of every upgrade after the first.
func TestMigrateAppliesChangedCodeOverCodeAppliedBefore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool := dbtest.Pool(t)
	var files int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM qflow.schema_code").Scan(&files))
	require.NotZero(t, files)

	// An older build: another checksum for one file, a file this build no longer has, and a
	// function of that file's that this build would not define.
	_, err := pool.Exec(ctx, `UPDATE qflow.schema_code SET sha256 = repeat('0', 64) WHERE file = '0820_status.sql';
	                          INSERT INTO qflow.schema_code (file, sha256) VALUES ('0999_gone.sql', repeat('1', 64));
	                          CREATE FUNCTION qflow.gone() RETURNS int LANGUAGE sql AS 'SELECT 1';`)
	require.NoError(t, err)
	require.NoError(t, migrations.Migrate(ctx, pool))

	var stale, gone, fn int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE sha256 = repeat('0', 64)),
	                                              count(*) FILTER (WHERE file = '0999_gone.sql'),
	                                              (SELECT count(*) FROM pg_proc WHERE proname = 'gone')
	                                         FROM qflow.schema_code`).Scan(&stale, &gone, &fn))
	require.Zero(t, stale, "the changed file's checksum is this build's")
	require.Zero(t, gone, "a file this build does not have is forgotten")
	require.Zero(t, fn, "the code pass recreates qflow's code from this build alone")
	var now int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM qflow.schema_code").Scan(&now))
	require.Equal(t, files, now)
}
