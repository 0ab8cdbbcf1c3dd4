package rollout_test

import (
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/architecture"
	"github.com/quantumflow/qflow/pipelines/complexity"
	"github.com/quantumflow/qflow/pipelines/rollout"
)

type testBundle struct {
	*enginetest.Env
}

// setup registers both ML workflows in a fresh database (no workers: runs stay where the
// insert trigger puts them).
func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{Env: enginetest.New(t, func(reg *pipelines.Registry, pool *pgxpool.Pool) {
		reg.MustAdd(complexity.Workflow(complexity.Options{DB: pool}))
		reg.MustAdd(architecture.Workflow(architecture.Options{DB: pool}))
	})}
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func (b *testBundle) apply(t *testing.T, vars map[string]string) {
	t.Helper()
	_, err := rollout.Apply(b.Ctx, b.Pool, env(vars))
	require.NoError(t, err)
}

// snapshot is every setting Apply may touch, as one JSON text.
func (b *testBundle) snapshot(t *testing.T) string {
	t.Helper()
	var s string
	require.NoError(t, b.Pool.QueryRow(b.Ctx, `
		SELECT jsonb_build_object(
		         'settings', (SELECT jsonb_agg(to_jsonb(w) ORDER BY workflow, position) FROM qflow.workflow_settings w),
		         'rollouts', (SELECT jsonb_agg(jsonb_build_object('w', workflow, 'e', enabled, 'c', canary_percent) ORDER BY workflow) FROM qflow.rollouts))::text`).Scan(&s))
	return s
}

// startRuns inserts n runs of the workflow with one statement and returns how many got
// workflow mode.
func (b *testBundle) startRuns(t *testing.T, workflow string, n int) int64 {
	t.Helper()
	var workflowMode int64
	require.NoError(t, b.Pool.QueryRow(b.Ctx, `
		WITH r AS (INSERT INTO qflow.runs (workflow, input) SELECT $1, '{}' FROM generate_series(1, $2) RETURNING mode)
		SELECT count(*) FILTER (WHERE mode = 'workflow') FROM r`, workflow, n).Scan(&workflowMode))
	return workflowMode
}

func TestApplySetsEveryVariable(t *testing.T) {
	t.Parallel()
	b := setup(t)

	vars := map[string]string{
		"PGFLOW_COMPLEXITY_TRAINING_ENABLED":        "true",
		"COMPLEXITY_TRAINING_CANARY_PERCENT":        "50",
		"COMPLEXITY_WORKFLOW_TIMEOUT_MS":            "600000",
		"COMPLEXITY_WORKFLOW_RETRIES":               "5",
		"COMPLEXITY_WORKFLOW_RETRY_DELAY_MS":        "70000",
		"COMPLEXITY_WORKFLOW_CONCURRENCY":           "2",
		"COMPLEXITY_DATA_COLLECTION_TIMEOUT_MS":     "61000",
		"COMPLEXITY_FEATURE_ENGINEERING_TIMEOUT_MS": "31000",
		"COMPLEXITY_MODEL_TRAINING_TIMEOUT_MS":      "181000",
		"COMPLEXITY_MODEL_EVALUATION_TIMEOUT_MS":    "32000",
		"COMPLEXITY_MODEL_DEPLOYMENT_TIMEOUT_MS":    "62000",

		"PGFLOW_ARCHITECTURE_LEARNING_ENABLED":      "TRUE",
		"ARCHITECTURE_WORKFLOW_TIMEOUT_MS":          "900000",
		"ARCHITECTURE_WORKFLOW_RETRIES":             "0",
		"ARCHITECTURE_WORKFLOW_RETRY_DELAY_MS":      "250",
		"ARCHITECTURE_WORKFLOW_CONCURRENCY":         "3",
		"ARCHITECTURE_PATTERN_DISCOVERY_TIMEOUT_MS": "63000",
		"ARCHITECTURE_PATTERN_ANALYSIS_TIMEOUT_MS":  "33000",
		"ARCHITECTURE_MODEL_TRAINING_TIMEOUT_MS":    "183000",
		"ARCHITECTURE_MODEL_VALIDATION_TIMEOUT_MS":  "34000",
		"ARCHITECTURE_MODEL_DEPLOYMENT_TIMEOUT_MS":  "64000",
	}
	require.ElementsMatch(t, rollout.Variables(), keys(vars), "the test sets every variable Apply reads")
	b.apply(t, vars)

	type row struct {
		step                               string
		timeout, attempts, base, cap, conc int64
	}
	steps := func(workflow string) []row {
		rows, err := b.Pool.Query(b.Ctx, `SELECT step, timeout_ms, max_attempts, retry_base_ms, retry_max_ms, coalesce(max_concurrency, 0)
		                                    FROM qflow.workflow_settings WHERE workflow = $1 ORDER BY position`, workflow)
		require.NoError(t, err)
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			require.NoError(t, rows.Scan(&r.step, &r.timeout, &r.attempts, &r.base, &r.cap, &r.conc))
			out = append(out, r)
		}
		require.NoError(t, rows.Err())
		return out
	}
	// Retries 5 → 6 attempts; a 70 s base lifts the 60 s cap; concurrency goes to training only.
	// The seed has no timeout variables for the steps added since (data_fingerprint,
	// model_selection): they keep the definition's.
	require.Equal(t, []row{
		{"data_fingerprint", 30000, 6, 70000, 70000, 5},
		{"data_collection", 61000, 6, 70000, 70000, 5},
		{"feature_engineering", 31000, 6, 70000, 70000, 3},
		{"model_training", 181000, 6, 70000, 70000, 2},
		{"model_selection", 30000, 6, 70000, 70000, 2},
		{"model_evaluation", 32000, 6, 70000, 70000, 2},
		{"model_deployment", 62000, 6, 70000, 70000, 1},
	}, steps(complexity.Name))
	require.Equal(t, []row{
		{"pattern_discovery", 63000, 1, 250, 60000, 2},
		{"pattern_analysis", 33000, 1, 250, 60000, 3},
		{"model_training", 183000, 1, 250, 60000, 3},
		{"model_validation", 34000, 1, 250, 60000, 2},
		{"model_deployment", 64000, 1, 250, 60000, 1},
	}, steps(architecture.Name))
	require.EqualValues(t, 600000, b.Count(t, "SELECT timeout_ms FROM qflow.workflows WHERE name = $1", complexity.Name))
	require.EqualValues(t, 900000, b.Count(t, "SELECT timeout_ms FROM qflow.workflows WHERE name = $1", architecture.Name))
	require.EqualValues(t, 50, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = $1 AND enabled", complexity.Name))
	require.EqualValues(t, 100, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = $1 AND enabled", architecture.Name))

	// A new run's deadline follows the new workflow timeout.
	require.EqualValues(t, 600, b.Count(t, `INSERT INTO qflow.runs (workflow) VALUES ($1)
	                                       RETURNING round(extract(epoch FROM deadline - created_at))::bigint`, complexity.Name))

	// The settings survive a restart: registering the same definitions again is a no-op.
	before := b.snapshot(t)
	reg := pipelines.NewRegistry()
	reg.MustAdd(complexity.Workflow(complexity.Options{DB: b.Pool}))
	reg.MustAdd(architecture.Workflow(architecture.Options{DB: b.Pool}))
	_, err := reg.Sync(b.Ctx, b.Pool)
	require.NoError(t, err)
	require.Equal(t, before, b.snapshot(t))
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestApplyWithoutVariablesChangesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// An operator configured the fleet with SQL; a host starting without variables keeps it.
	b.Exec(t, "UPDATE qflow.rollouts SET enabled = true, canary_percent = 40 WHERE workflow = $1", complexity.Name)
	b.Exec(t, "UPDATE qflow.steps SET timeout_ms = 99000 WHERE workflow = $1 AND name = 'model_training'", complexity.Name)
	before := b.snapshot(t)
	b.apply(t, map[string]string{"UNRELATED": "1", "COMPLEXITY_WORKFLOW_TIMEOUT_MS": "  "})
	require.Equal(t, before, b.snapshot(t))

	// One variable changes one thing.
	b.apply(t, map[string]string{"COMPLEXITY_MODEL_EVALUATION_TIMEOUT_MS": "45000"})
	require.EqualValues(t, 45000, b.Count(t, "SELECT timeout_ms FROM qflow.steps WHERE workflow = $1 AND name = 'model_evaluation'", complexity.Name))
	require.EqualValues(t, 99000, b.Count(t, "SELECT timeout_ms FROM qflow.steps WHERE workflow = $1 AND name = 'model_training'", complexity.Name))
	require.EqualValues(t, 40, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = $1 AND enabled", complexity.Name))
}

func TestApplyRejectsInvalidValues(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := b.snapshot(t)

	cases := []struct{ name, value, want string }{
		{"COMPLEXITY_TRAINING_CANARY_PERCENT", "150", `invalid COMPLEXITY_TRAINING_CANARY_PERCENT="150": a percentage must be between 0 and 100`},
		{"COMPLEXITY_TRAINING_CANARY_PERCENT", "-1", `invalid COMPLEXITY_TRAINING_CANARY_PERCENT="-1": a percentage must be between 0 and 100`},
		{"COMPLEXITY_TRAINING_CANARY_PERCENT", "ten", `invalid COMPLEXITY_TRAINING_CANARY_PERCENT="ten": not a whole number`},
		{"PGFLOW_COMPLEXITY_TRAINING_ENABLED", "maybe", `invalid PGFLOW_COMPLEXITY_TRAINING_ENABLED="maybe": want true or false`},
		{"PGFLOW_ARCHITECTURE_LEARNING_ENABLED", "yes please", `invalid PGFLOW_ARCHITECTURE_LEARNING_ENABLED="yes please": want true or false`},
		{"COMPLEXITY_WORKFLOW_TIMEOUT_MS", "-300000", `invalid COMPLEXITY_WORKFLOW_TIMEOUT_MS="-300000": a timeout must be a positive number`},
		{"COMPLEXITY_WORKFLOW_TIMEOUT_MS", "0", `invalid COMPLEXITY_WORKFLOW_TIMEOUT_MS="0": a timeout must be a positive number`},
		{"ARCHITECTURE_MODEL_TRAINING_TIMEOUT_MS", "3m", `invalid ARCHITECTURE_MODEL_TRAINING_TIMEOUT_MS="3m": not a whole number`},
		{"ARCHITECTURE_WORKFLOW_RETRIES", "-2", `invalid ARCHITECTURE_WORKFLOW_RETRIES="-2": retries must be between 0 and 999`},
		{"COMPLEXITY_WORKFLOW_RETRY_DELAY_MS", "1.5", `invalid COMPLEXITY_WORKFLOW_RETRY_DELAY_MS="1.5": not a whole number`},
		{"ARCHITECTURE_WORKFLOW_CONCURRENCY", "0", `invalid ARCHITECTURE_WORKFLOW_CONCURRENCY="0": a concurrency limit must be between 1 and 1000000`},
	}
	for _, c := range cases {
		// A valid variable next to the bad one is not applied either: nothing is written.
		_, err := rollout.Apply(b.Ctx, b.Pool, env(map[string]string{c.name: c.value, "COMPLEXITY_WORKFLOW_RETRIES": "7"}))
		require.Error(t, err, c.name+"="+c.value)
		require.Contains(t, err.Error(), c.want)
	}
	require.Equal(t, before, b.snapshot(t))

	// Every bad variable is named at once.
	_, err := rollout.Apply(b.Ctx, b.Pool, env(map[string]string{"COMPLEXITY_TRAINING_CANARY_PERCENT": "101", "ARCHITECTURE_WORKFLOW_TIMEOUT_MS": "x"}))
	require.ErrorContains(t, err, "COMPLEXITY_TRAINING_CANARY_PERCENT")
	require.ErrorContains(t, err, "ARCHITECTURE_WORKFLOW_TIMEOUT_MS")
}

func TestSeedDefaultsAndNeverConfiguredWorkflows(t *testing.T) {
	t.Parallel()
	b := setup(t)

	// The migration gives both pipelines the seeds' defaults: new mode off.
	require.EqualValues(t, 10, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = $1 AND NOT enabled", complexity.Name))
	require.EqualValues(t, 100, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = $1 AND NOT enabled", architecture.Name))
	require.Zero(t, b.startRuns(t, complexity.Name, 50), "disabled until enabled: every run legacy")

	// Without a row, a variable creates one with the seed's default for the other column.
	b.Exec(t, "DELETE FROM qflow.rollouts")
	b.apply(t, map[string]string{"PGFLOW_ARCHITECTURE_LEARNING_ENABLED": "true", "COMPLEXITY_TRAINING_CANARY_PERCENT": "30"})
	require.EqualValues(t, 100, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = $1 AND enabled", architecture.Name))
	require.EqualValues(t, 30, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = $1 AND NOT enabled", complexity.Name))
	require.EqualValues(t, 100, b.startRuns(t, architecture.Name, 100), "a direct migration: every run in workflow mode")

	b.Exec(t, "DELETE FROM qflow.rollouts WHERE workflow = $1", complexity.Name)
	b.apply(t, map[string]string{"PGFLOW_COMPLEXITY_TRAINING_ENABLED": "true"})
	require.EqualValues(t, 10, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = $1 AND enabled", complexity.Name))
}

func TestCanarySplitIsExactAndStable(t *testing.T) {
	t.Parallel()
	b := setup(t)

	b.apply(t, map[string]string{"PGFLOW_COMPLEXITY_TRAINING_ENABLED": "true", "COMPLEXITY_TRAINING_CANARY_PERCENT": "10"})
	got := b.startRuns(t, complexity.Name, 1000)
	require.InDelta(t, 100, got, 30, "10%% of 1,000 runs within ±3 points")

	// SQL changes the split for new runs without a restart; runs keep the mode they started with.
	b.Exec(t, "UPDATE qflow.rollouts SET canary_percent = 50 WHERE workflow = $1", complexity.Name)
	require.InDelta(t, 500, b.startRuns(t, complexity.Name, 1000), 30)
	require.EqualValues(t, got, b.Count(t, "SELECT count(*) FROM (SELECT mode FROM qflow.runs ORDER BY id LIMIT 1000) r WHERE mode = 'workflow'"))
	// The choice is a function of the run id: the same id always gets the same mode.
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE id > 1000 AND mode <> qflow.run_mode(workflow, id)"))

	for _, pct := range []int{0, 25, 90, 100} {
		b.apply(t, map[string]string{"COMPLEXITY_TRAINING_CANARY_PERCENT": strconv.Itoa(pct)})
		require.InDelta(t, pct*10, b.startRuns(t, complexity.Name, 1000), 30, "canary %d%%", pct)
	}
}

func TestRollbackSendsEveryNewRunToLegacy(t *testing.T) {
	t.Parallel()
	b := setup(t)

	b.apply(t, map[string]string{"PGFLOW_COMPLEXITY_TRAINING_ENABLED": "true", "COMPLEXITY_TRAINING_CANARY_PERCENT": "100"})
	require.EqualValues(t, 200, b.startRuns(t, complexity.Name, 200))

	b.apply(t, map[string]string{"PGFLOW_COMPLEXITY_TRAINING_ENABLED": "false"})
	require.Zero(t, b.startRuns(t, complexity.Name, 200), "rolled back: every new run legacy")
	require.EqualValues(t, 100, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = $1", complexity.Name), "the percentage is kept for later")
	require.EqualValues(t, 200, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE mode = 'workflow'"), "earlier runs keep their mode")
	require.EqualValues(t, 200, b.Count(t, "SELECT count(*) FROM river.river_job WHERE kind = 'qflow_legacy'"))

	// A host without the variable does not undo the rollback; SQL does, at once.
	b.apply(t, map[string]string{})
	require.Zero(t, b.startRuns(t, complexity.Name, 10))
	b.Exec(t, "UPDATE qflow.rollouts SET enabled = true WHERE workflow = $1", complexity.Name)
	require.EqualValues(t, 10, b.startRuns(t, complexity.Name, 10))
}
