package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPruneRunsDeletesOnlyFinishedRunsPastTheirRetention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	b.register(t, "kept_long", map[string][]string{"a": nil}, nil)
	b.exec(t, "INSERT INTO qflow.retention (workflow, days) VALUES ('kept_long', 365)")

	finished := func(workflow string, age string) int64 {
		run := b.start(t, workflow, "{}")
		b.exec(t, "SELECT qflow.cancel_run($1)", run)
		b.exec(t, "UPDATE qflow.runs SET finished_at = now() - $2::interval, created_at = now() - $2::interval - interval '1 minute' WHERE id = $1", run, age)
		return run
	}
	old := finished("chain", "31 days")
	b.exec(t, `INSERT INTO ml.artifacts (run_id, name, kind, data) VALUES ($1, 'features', 'json', '{}')`, old)
	b.exec(t, `INSERT INTO ml.models (name, version, backend, architecture, weights, normalization, metrics, training_run_id)
	            VALUES ('m', 1, 'cpu', '{}', '\x00', '{}', '{}', $1)`, old)
	recent := finished("chain", "29 days")
	oldButKeptLonger := finished("kept_long", "100 days")
	// A run that started long ago and is still running is never a candidate.
	running := b.start(t, "chain", "{}")
	b.exec(t, "UPDATE qflow.runs SET created_at = now() - interval '90 days', started_at = now() - interval '90 days' WHERE id = $1", running)

	require.Equal(t, 1, b.count(t, "SELECT qflow.prune_runs(500)"))

	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.runs WHERE id = $1", old))
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1", old), "its steps went with it")
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1", old))
	require.Zero(t, b.count(t, "SELECT count(*) FROM ml.artifacts WHERE run_id = $1", old))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM ml.models WHERE name = 'm' AND training_run_id IS NULL"), "the model keeps its weights")
	for _, kept := range []int64{recent, oldButKeptLonger, running} {
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.runs WHERE id = $1", kept))
	}

	// The setting moves the default; a batch takes at most its size.
	b.exec(t, "UPDATE qflow.settings SET value = 7 WHERE key = 'retention_days'")
	extra := []int64{finished("chain", "8 days"), finished("chain", "9 days")}
	require.Equal(t, 1, b.count(t, "SELECT qflow.prune_runs(1)"))
	require.Equal(t, 2, b.count(t, "SELECT qflow.prune_runs(500)"), "the rest: the 29-day run and one of the new ones")
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.runs WHERE id = ANY($1)", extra))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.runs WHERE id = $1", running))
	require.ErrorContains(t, b.execErr("UPDATE qflow.settings SET value = 0 WHERE key = 'retention_days'"), "settings_retention_days_check")
}
