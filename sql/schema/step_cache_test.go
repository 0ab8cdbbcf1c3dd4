package schema_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

// cached registers load→use with load cached for an hour on the given key paths (nil: the
// whole input).
func (b *testBundle) cached(t *testing.T, key []string) {
	t.Helper()
	b.register(t, "cached", map[string][]string{"load": nil, "use": {"load"}}, func(w *pipelines.Workflow) {
		w.Steps[0].CacheTTLMS = 3600000 // steps are sorted by name: load, use
		w.Steps[0].CacheKey = key
	})
}

func (b *testBundle) loadOutput(t *testing.T, run int64) string {
	t.Helper()
	return b.scalar(t, "SELECT output::text FROM qflow.step_runs WHERE run_id = $1 AND step = 'load'", run).(string)
}

func TestACachedStepReusesTheOutputOfTheSameInputWithoutRunning(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cached(t, []string{"input.key"})

	first := b.start(t, "cached", `{"key": "k1", "other": 1}`)
	require.Equal(t, "queued", b.stepStatus(t, first, "load"), "nothing cached yet: it runs")
	require.True(t, b.complete(t, first, "load", b.claim(t, first, "load"), `{"made_by": "first"}`))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_cache WHERE workflow = 'cached' AND step = 'load' AND run_id = $1", first))

	// Same key (the other field is not part of it): load succeeds at start, without a job.
	second := b.start(t, "cached", `{"key": "k1", "other": 2}`)
	require.Equal(t, "succeeded", b.stepStatus(t, second, "load"))
	require.JSONEq(t, `{"made_by": "first"}`, b.loadOutput(t, second))
	require.Equal(t, "cached", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND step = 'load'", second))
	require.Zero(t, b.count(t, "SELECT count(*) FROM river.river_job WHERE args @> jsonb_build_object('run_id', $1::bigint, 'step', 'load')", second))
	require.Equal(t, "queued", b.stepStatus(t, second, "use"), "its successor goes on at once")
	require.Equal(t, true, b.statusDoc(t, second)["steps"].([]any)[0].(map[string]any)["cached"])
	b.runStep(t, second, "use")
	require.Equal(t, "succeeded", b.runStatus(t, second))

	// A hit does not refresh the entry: its age is the output's.
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_cache WHERE workflow = 'cached' AND run_id = $1", first))

	// Another key misses and runs.
	third := b.start(t, "cached", `{"key": "k2"}`)
	require.Equal(t, "queued", b.stepStatus(t, third, "load"))
}

func TestWithoutACacheKeyTheWholeInputIsTheKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cached(t, nil)
	first := b.start(t, "cached", `{"key": "k1", "other": 1}`)
	b.runStep(t, first, "load")
	require.Equal(t, "queued", b.stepStatus(t, b.start(t, "cached", `{"key": "k1", "other": 2}`), "load"), "any change of the input misses")
	require.Equal(t, "succeeded", b.stepStatus(t, b.start(t, "cached", `{"other": 1, "key": "k1"}`), "load"), "the same JSON, however written, hits")
}

func TestACachedStepOnADependencyHitsOnlyWhenTheDependencysOutputIsTheSame(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "fp", map[string][]string{"fingerprint": nil, "collect": {"fingerprint"}}, func(w *pipelines.Workflow) {
		w.Steps[0].CacheTTLMS = 3600000 // collect, fingerprint
		w.Steps[0].CacheKey = []string{"fingerprint.rows"}
	})
	run := func(rows int) int64 {
		id := b.start(t, "fp", `{}`)
		require.True(t, b.complete(t, id, "fingerprint", b.claim(t, id, "fingerprint"), fmt.Sprintf(`{"rows": %d, "at": "now"}`, rows)))
		return id
	}
	first := run(5)
	b.runStep(t, first, "collect")
	require.Equal(t, "succeeded", b.stepStatus(t, run(5), "collect"), "the data did not change: collect is reused")
	require.Equal(t, "queued", b.stepStatus(t, run(6), "collect"), "it did: collect runs")
}

func TestAnExpiredOrInvalidatedEntryMisses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cached(t, []string{"input.key"})
	first := b.start(t, "cached", `{"key": "k"}`)
	b.runStep(t, first, "load")

	// Older than the lifetime: the step runs, and its new output replaces the entry.
	b.exec(t, "UPDATE qflow.step_cache SET created_at = now() - interval '2 hours'")
	second := b.start(t, "cached", `{"key": "k"}`)
	require.Equal(t, "queued", b.stepStatus(t, second, "load"))
	require.True(t, b.complete(t, second, "load", b.claim(t, second, "load"), `{"made_by": "second"}`))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.step_cache WHERE run_id = $1", second))

	// A lifetime shortened since (a setting of the current version) applies at once.
	b.exec(t, "UPDATE qflow.step_cache SET created_at = now() - interval '10 minutes'")
	b.exec(t, "UPDATE qflow.steps SET cache_ttl_ms = 60000 WHERE workflow = 'cached' AND name = 'load'")
	require.Equal(t, "queued", b.stepStatus(t, b.start(t, "cached", `{"key": "k"}`), "load"))
	b.exec(t, "UPDATE qflow.steps SET cache_ttl_ms = 3600000 WHERE workflow = 'cached' AND name = 'load'")
	require.Equal(t, "succeeded", b.stepStatus(t, b.start(t, "cached", `{"key": "k"}`), "load"))

	require.EqualValues(t, 1, b.scalar(t, "SELECT qflow.invalidate_cache('cached', 'load')"))
	require.Equal(t, "queued", b.stepStatus(t, b.start(t, "cached", `{"key": "k"}`), "load"), "invalidated: it runs")

	require.ErrorContains(t, b.execErr("SELECT qflow.invalidate_cache('nope')"), `unknown workflow 'nope'`)
	require.ErrorContains(t, b.execErr("SELECT qflow.invalidate_cache('cached', 'nope')"), `workflow cached has no step 'nope'`)
}

func TestACachedMapStepIsReusedWhole(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, func(s *pipelines.Step) { s.CacheTTLMS = 3600000 })
	first := b.splitInto(t, `[1, 2]`)
	b.runStep(t, first, "square[0]")
	b.runStep(t, first, "square[1]")
	require.Equal(t, "succeeded", b.stepStatus(t, first, "square"))

	second := b.splitInto(t, `[1, 2]`)
	require.Equal(t, "succeeded", b.stepStatus(t, second, "square"), "the same array: the map's output is reused")
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND task IS NOT NULL", second), "no element ran")
	require.Equal(t, "queued", b.stepStatus(t, second, "total"))
}

func TestRetentionKeepsTheRunOfALiveCacheEntry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.cached(t, []string{"input.key"})
	kept := b.start(t, "cached", `{"key": "k"}`)
	b.runStep(t, kept, "load")
	b.runStep(t, kept, "use")
	other := b.start(t, "cached", `{"key": "other"}`)
	b.runStep(t, other, "load")
	b.exec(t, "UPDATE qflow.step_cache SET expires_at = now() - interval '1 second' WHERE run_id = $1", other)
	b.exec(t, "SELECT qflow.cancel_run($1)", other)
	b.exec(t, "UPDATE qflow.runs SET finished_at = now() - interval '400 days', created_at = now() - interval '401 days' WHERE id IN ($1, $2)", kept, other)

	require.EqualValues(t, 1, b.scalar(t, "SELECT qflow.prune_runs(100)"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.runs WHERE id = $1", kept), "its output is still cached")
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.runs WHERE id = $1", other))
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_cache WHERE run_id = $1", other), "the expired entry went")
}
