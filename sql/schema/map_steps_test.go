package schema_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

// mapper registers split→square→total with square mapped over split's items, after letting the
// test adjust square.
func (b *testBundle) mapper(t *testing.T, adjust func(*pipelines.Step)) {
	t.Helper()
	b.register(t, "mapper", map[string][]string{"split": nil, "square": {"split"}, "total": {"square"}},
		func(w *pipelines.Workflow) {
			for i := range w.Steps {
				if w.Steps[i].Name == "square" {
					w.Steps[i].Map = "split.items"
					if adjust != nil {
						adjust(&w.Steps[i])
					}
				}
			}
		})
}

// splitInto starts a mapper run and completes split with the given items.
func (b *testBundle) splitInto(t *testing.T, items string) int64 {
	t.Helper()
	run := b.start(t, "mapper", `{}`)
	require.True(t, b.complete(t, run, "split", b.claim(t, run, "split"), `{"items": `+items+`}`))
	return run
}

// element is the step row name of a map step's element.
func element(step string, i int) string { return fmt.Sprintf("%s[%d]", step, i) }

func TestAMapStepRunsOneTaskPerElementAndOutputsTheirResultsInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, nil)
	run := b.splitInto(t, `[3, 1, 2]`)

	require.Equal(t, "running", b.stepStatus(t, run, "square"), "the map step runs while its elements do")
	require.Equal(t, 3, b.stepInt(t, run, "square", "tasks"))
	for i := range 3 {
		require.Equal(t, "queued", b.stepStatus(t, run, element("square", i)))
		require.Equal(t, "available", b.jobState(t, run, element("square", i)), "each element has its own River job")
	}
	require.Zero(t, b.count(t, "SELECT count(*) FROM river.river_job j JOIN qflow.step_runs sr ON sr.job_id = j.id WHERE sr.run_id = $1 AND sr.step = 'square'", run),
		"the map step itself has no job")

	// Each element's claim gives its element, and the dependency outputs without the array.
	var item, deps string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT item::text, deps::text FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', 'square[0]', 'attempt', 1)), 'w')`, run).Scan(&item, &deps))
	require.Equal(t, "3", item)
	require.JSONEq(t, `{"split": {}}`, deps, "the array the element was cut from is not sent with every element")

	// Elements finish in any order; the output is in element order.
	for _, i := range []int{2, 1} {
		a := b.claim(t, run, element("square", i))
		require.True(t, b.complete(t, run, element("square", i), a, fmt.Sprint(10+i)))
		require.Equal(t, "running", b.stepStatus(t, run, "square"))
	}
	require.True(t, b.complete(t, run, "square[0]", 1, `9`))
	require.Equal(t, "succeeded", b.stepStatus(t, run, "square"))
	require.JSONEq(t, `[9, 11, 12]`, b.scalar(t, "SELECT output::text FROM qflow.step_runs WHERE run_id = $1 AND step = 'square'", run).(string))

	attempt := b.stepInt(t, run, "total", "attempt")
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT deps::text FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', 'total', 'attempt', $2::integer)), 'w')`, run, attempt).Scan(&deps))
	require.JSONEq(t, `{"square": [9, 11, 12]}`, deps)
	require.True(t, b.complete(t, run, "total", attempt, `{"sum": 32}`))
	require.Equal(t, "succeeded", b.runStatus(t, run))

	doc := b.statusDoc(t, run)
	steps := doc["steps"].([]any)
	require.Len(t, steps, 3, "status lists the definition's steps; the map step summarises its elements")
	m := steps[1].(map[string]any)["map"].(map[string]any)
	require.EqualValues(t, 3, m["elements"])
	require.Equal(t, map[string]any{"succeeded": float64(3)}, m["by_status"])
	require.EqualValues(t, 3, b.scalar(t, "SELECT steps_total FROM qflow.run_overview WHERE id = $1", run))
}

func TestAMapOfNoElementsSucceedsAtOnceAndOneOfOneRunsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, nil)

	empty := b.splitInto(t, `[]`)
	require.Equal(t, "succeeded", b.stepStatus(t, empty, "square"))
	require.JSONEq(t, `[]`, b.scalar(t, "SELECT output::text FROM qflow.step_runs WHERE run_id = $1 AND step = 'square'", empty).(string))
	require.Equal(t, "queued", b.stepStatus(t, empty, "total"), "its successor goes on at once")

	one := b.splitInto(t, `["x"]`)
	b.runStep(t, one, "square[0]")
	require.Equal(t, "succeeded", b.stepStatus(t, one, "square"))
	require.JSONEq(t, `[{"ok": true}]`, b.scalar(t, "SELECT output::text FROM qflow.step_runs WHERE run_id = $1 AND step = 'square'", one).(string))
}

func TestTenThousandElementsStartInTheCallThatMadeTheMapReady(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, nil)
	run := b.start(t, "mapper", `{}`)
	a := b.claim(t, run, "split")
	// One finish_steps call, as a worker sends it, records split and starts every element.
	require.Equal(t, "completed", b.scalar(t, `SELECT outcome FROM qflow.finish_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', 'split', 'attempt', $2::integer, 'result', 'complete',
	    'output', jsonb_build_object('items', (SELECT jsonb_agg(i) FROM generate_series(1, 10000) i)))))`, run, a))
	require.Equal(t, 10000, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND task IS NOT NULL AND status = 'queued'", run))
	require.Equal(t, 10000, b.count(t, `SELECT count(*) FROM river.river_job j JOIN qflow.step_runs sr ON sr.job_id = j.id
	                                     WHERE sr.run_id = $1 AND sr.task IS NOT NULL AND j.state = 'available'`, run))

	// Run by a fleet with 500 slots: each call claims, or completes, up to 500 elements (each
	// squaring its element), as busy workers batch them.
	for lo := 0; lo < 10000; lo += 500 {
		require.Equal(t, 500, b.count(t, `SELECT count(*) FROM qflow.claim_steps(
		    (SELECT jsonb_agg(jsonb_build_object('run_id', run_id, 'step', step, 'attempt', attempt))
		       FROM qflow.step_runs WHERE run_id = $1 AND task >= $2 AND task < $2 + 500), 'w')`, run, lo))
		require.Equal(t, 500, b.count(t, `SELECT count(*) FROM qflow.finish_steps(
		    (SELECT jsonb_agg(jsonb_build_object('run_id', run_id, 'step', step, 'attempt', attempt, 'result', 'complete',
		                                         'output', to_jsonb((item::text)::bigint * (item::text)::bigint)))
		       FROM qflow.step_runs WHERE run_id = $1 AND task >= $2 AND task < $2 + 500)) WHERE outcome = 'completed'`, run, lo))
	}
	require.Equal(t, "succeeded", b.stepStatus(t, run, "square"))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM qflow.step_runs
	                                 WHERE run_id = $1 AND step = 'square'
	                                   AND output = (SELECT jsonb_agg(i * i ORDER BY i) FROM generate_series(1, 10000) i)`, run),
		"the output is every element's, in element order")
}

func TestAnElementThatFailsOnceIsRetriedAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, func(s *pipelines.Step) { s.RetryBaseMS = 0; s.RetryMaxMS = 0 })
	run := b.splitInto(t, `[1, 2, 3]`)

	b.runStep(t, run, "square[0]")
	a := b.claim(t, run, "square[1]")
	require.Equal(t, "retry", b.fail(t, run, "square[1]", a, false))
	require.Equal(t, "queued", b.stepStatus(t, run, "square[1]"))
	require.Equal(t, 2, b.stepInt(t, run, "square[1]", "attempt"))
	require.Equal(t, 1, b.stepInt(t, run, "square[0]", "attempt"), "its siblings are untouched")
	require.Equal(t, "running", b.stepStatus(t, run, "square"))

	b.runStep(t, run, "square[1]")
	b.runStep(t, run, "square[2]")
	require.Equal(t, "succeeded", b.stepStatus(t, run, "square"))
}

func TestAnElementOutOfRetriesFailsTheRunAndRetryRunRerunsOnlyTheUnfinishedElements(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, nil)
	run := b.splitInto(t, `[1, 2, 3]`)

	b.runStep(t, run, "square[0]")
	a := b.claim(t, run, "square[1]")
	require.Equal(t, "failed", b.fail(t, run, "square[1]", a, true))

	require.Equal(t, "failed", b.runStatus(t, run))
	require.Contains(t, b.scalar(t, "SELECT error FROM qflow.runs WHERE id = $1", run), "step square failed: element 1 failed permanently: boom")
	require.Equal(t, "failed", b.stepStatus(t, run, "square"))
	require.Equal(t, "cancelled", b.stepStatus(t, run, "square[2]"), "the run's other work is cancelled")
	require.Equal(t, "cancelled", b.jobState(t, run, "square[2]"))
	require.Equal(t, "succeeded", b.stepStatus(t, run, "square[0]"))

	b.exec(t, "SELECT qflow.retry_run($1)", run)
	require.Equal(t, "running", b.runStatus(t, run))
	require.Equal(t, "running", b.stepStatus(t, run, "square"))
	require.Equal(t, 2, b.stepInt(t, run, "square", "remaining_tasks"))
	require.Equal(t, "succeeded", b.stepStatus(t, run, "square[0]"), "a succeeded element keeps its output")
	require.Equal(t, 1, b.stepInt(t, run, "square[0]", "attempt"))
	for _, i := range []int{1, 2} {
		require.Equal(t, "queued", b.stepStatus(t, run, element("square", i)))
	}
	b.runStep(t, run, "square[1]")
	b.runStep(t, run, "square[2]")
	require.Equal(t, "succeeded", b.stepStatus(t, run, "square"))
	b.runStep(t, run, "total")
	require.Equal(t, "succeeded", b.runStatus(t, run))
	require.EqualValues(t, 0, b.scalar(t, "SELECT remaining_steps FROM qflow.runs WHERE id = $1", run))
}

func TestAnElementOutOfRetriesSkipsAMapStepThatAllowsIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, func(s *pipelines.Step) { s.OnFailure = "skip" })
	run := b.splitInto(t, `[1, 2, 3]`)

	a := b.claim(t, run, "square[1]")
	b.claim(t, run, "square[2]")
	require.Equal(t, "skipped", b.fail(t, run, "square[1]", a, true))
	require.Equal(t, "skipped", b.stepStatus(t, run, "square"))
	require.Equal(t, "cancelled", b.stepStatus(t, run, "square[0]"))
	require.Equal(t, "cancelled", b.stepStatus(t, run, "square[2]"))
	require.Equal(t, "cancelled", b.scalar(t, "SELECT status FROM qflow.step_attempts WHERE run_id = $1 AND step = 'square[2]'", run),
		"a running element's attempt ends with its step")
	require.Equal(t, "skipped", b.stepStatus(t, run, "total"), "the skip cascades")
	require.Equal(t, "succeeded", b.runStatus(t, run))
}

func TestMapElementsCountAgainstTheStepsConcurrencyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, func(s *pipelines.Step) { s.MaxConcurrency = 2 })
	busy := func(run int64) int {
		return b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND task IS NOT NULL AND status IN ('queued', 'running')", run)
	}
	run := b.splitInto(t, `[1, 2, 3, 4, 5]`)
	other := b.splitInto(t, `[1, 2]`)
	require.Equal(t, 2, busy(run))
	require.Equal(t, 0, busy(other), "the limit is fleet-wide, across runs")

	for done := 0; done < 7; done++ {
		var next string
		var nextRun int64
		require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT run_id, step FROM qflow.step_runs
		    WHERE run_id IN ($1, $2) AND task IS NOT NULL AND status = 'queued' ORDER BY run_id, task LIMIT 1`, run, other).Scan(&nextRun, &next))
		b.runStep(t, nextRun, next)
		require.LessOrEqual(t, busy(run)+busy(other), 2)
	}
	require.Equal(t, "succeeded", b.stepStatus(t, run, "square"))
	require.Equal(t, "succeeded", b.stepStatus(t, other, "square"))
}

func TestAMapOverSomethingThatIsNotAnArrayOrTooLongFailsTheRunSayingWhy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, func(s *pipelines.Step) { s.MaxItems = 3 })

	run := b.splitInto(t, `5`)
	require.Equal(t, "failed", b.runStatus(t, run))
	require.Equal(t, "step square failed: map over split.items: expected an array, got number",
		b.scalar(t, "SELECT error FROM qflow.runs WHERE id = $1", run))

	run = b.splitInto(t, `[1, 2, 3, 4]`)
	require.Equal(t, "failed", b.runStatus(t, run))
	require.Equal(t, "step square failed: map over split.items: 4 elements, more than the step's max_items (3)",
		b.scalar(t, "SELECT error FROM qflow.runs WHERE id = $1", run))
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND task IS NOT NULL", run))
}

func TestAMapOverARunInputFieldStartsWithTheRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.register(t, "sweep", map[string][]string{"train": nil, "pick": {"train"}}, func(w *pipelines.Workflow) {
		w.Steps[1].Map = "input.configs" // steps are sorted by name: pick, train
	})
	run := b.start(t, "sweep", `{"configs": [{"lr": 0.1}, {"lr": 0.01}]}`)
	require.Equal(t, "running", b.stepStatus(t, run, "train"))
	var item string
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT item::text FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object(
	    'run_id', $1::bigint, 'step', 'train[1]', 'attempt', 1)), 'w')`, run).Scan(&item))
	require.JSONEq(t, `{"lr": 0.01}`, item)
}

func TestMapDefinitionsAreCheckedAtRegistration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name string
		step map[string]any
		want string
	}{
		{"unknown source", map[string]any{"map": "other.items"}, `map or cache_key reads "other", which is neither "input" nor a dependency of the step`},
		{"the input itself", map[string]any{"map": "input"}, `the run input is an object; map over one of its fields`},
		{"bad path", map[string]any{"map": "split..items"}, `map must name an array`},
		{"not a string", map[string]any{"map": []string{"split"}}, `map must name an array`},
		{"max_items without map", map[string]any{"max_items": 5}, `max_items bounds the elements of a map step; the step has no "map"`},
		{"max_items out of range", map[string]any{"map": "split.items", "max_items": 0}, `"max_items" must be a whole number between 1 and 1000000`},
		{"cache_key without lifetime", map[string]any{"cache_key": []string{"input.k"}}, `the step has no "cache_ttl_ms"`},
		{"empty cache_key", map[string]any{"cache_ttl_ms": 1000, "cache_key": []string{}}, `cache_key must be a non-empty array of paths`},
		{"cache_key source", map[string]any{"cache_ttl_ms": 1000, "cache_key": []string{"nope"}}, `map or cache_key reads "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step := map[string]any{"name": "square", "depends_on": []string{"split"}}
			for k, v := range tc.step {
				step[k] = v
			}
			def, err := json.Marshal(map[string]any{"name": "bad_map", "steps": []any{map[string]any{"name": "split"}, step}})
			require.NoError(t, err)
			err = b.execErr("SELECT qflow.register_workflow($1)", def)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestChangingWhatAStepMapsOverMakesANewVersion(t *testing.T) {
	t.Parallel()
	b := setup(t)
	v1 := b.register(t, "remap", map[string][]string{"split": nil, "square": {"split"}}, nil)
	v2 := b.register(t, "remap", map[string][]string{"split": nil, "square": {"split"}}, func(w *pipelines.Workflow) {
		w.Steps[1].Map = "split.items"
	})
	require.Equal(t, v1+1, v2, "runs in flight keep the shape they started with")
}

func TestStatsAndMetricsCountAMapStepOnceAndItsElementsAsWhatRan(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, nil)
	run := b.splitInto(t, `[1, 2, 3]`)
	a := b.claim(t, run, "square[0]")
	require.Equal(t, "retry", b.fail(t, run, "square[0]", a, false))
	b.exec(t, "UPDATE qflow.step_runs SET next_attempt_at = now() WHERE run_id = $1", run)
	for i := range 3 {
		b.runStep(t, run, element("square", i))
	}
	b.runStep(t, run, "total")

	var steps, retries int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT step_runs, retries FROM qflow.step_stats WHERE workflow = 'mapper' AND step = 'square'").Scan(&steps, &retries))
	require.Equal(t, 3, steps, "one row for the map step; its elements are its step runs")
	require.Equal(t, 1, retries)
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.step_stats WHERE step LIKE 'square[%'"))

	var doc map[string]any
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.metrics($1)", run).Scan(&doc))
	require.EqualValues(t, 3, doc["steps_total"])
	require.EqualValues(t, 5, doc["tasks_succeeded"], "split, three elements, total")
	require.EqualValues(t, 1, doc["retries"])
	require.Len(t, doc["step_duration_ms"], 3)
}

func TestAResultAddressedToAMapStepsOwnRowIsStale(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.mapper(t, nil)
	run := b.splitInto(t, `[1, 2, 3]`)
	// The map step's row shows running with attempt 1, but nothing claimed it: its elements run.
	require.Equal(t, "stale", b.report(t, run, "square", 1, map[string]any{"result": "complete", "output": []int{1}}))
	require.Equal(t, "stale", b.fail(t, run, "square", 1, false))
	require.Equal(t, "stale", b.report(t, run, "square", 1, map[string]any{"result": "release", "error": "shutting down"}))
	require.Equal(t, "running", b.stepStatus(t, run, "square"))
	require.Equal(t, 3, b.stepInt(t, run, "square", "remaining_tasks"))
	require.Equal(t, "waiting", b.stepStatus(t, run, "total"))
}
