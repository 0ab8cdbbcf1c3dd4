package complexity_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/complexity"
	"github.com/quantumflow/qflow/pipelines/ml"
)

func TestTheDefinitionMapsTrainingOverTheConfigsAndCachesDataAndFeatures(t *testing.T) {
	t.Parallel()
	wf := complexity.Workflow(complexity.Options{})
	var names []string
	steps := map[string]int{}
	for i, s := range wf.Steps {
		names = append(names, s.Name)
		steps[s.Name] = i
	}
	require.Equal(t, []string{"data_fingerprint", "data_collection", "feature_engineering", "model_training", "model_selection",
		"model_evaluation", "model_deployment"}, names)

	training := wf.Steps[steps[complexity.StepModelTraining]]
	require.Equal(t, "feature_engineering.configs", training.Map)
	require.Equal(t, complexity.MaxSweep, training.MaxItems)
	require.Equal(t, "gpu", training.WorkerClass)

	collect, features := wf.Steps[steps[complexity.StepDataCollection]], wf.Steps[steps[complexity.StepFeatureEngineering]]
	require.Equal(t, []string{"input.days_back", "input.min_rows", "input.max_rows", "data_fingerprint"}, collect.CacheKey)
	require.Equal(t, []string{"data_collection", "input.held_out", "input.sweep", "input.epochs", "input.batch_size", "input.seed"}, features.CacheKey)
	for _, s := range []string{complexity.StepDataCollection, complexity.StepFeatureEngineering} {
		ttl := time.Duration(wf.Steps[steps[s]].CacheTTLMS) * time.Millisecond
		require.Positive(t, ttl, s)
		require.LessOrEqual(t, ttl, ml.ArtifactRetention/2, "%s: the artifacts a reused output names outlive its reuse", s)
	}
	for _, s := range wf.Steps {
		if s.Name != complexity.StepDataCollection && s.Name != complexity.StepFeatureEngineering {
			require.Zero(t, s.CacheTTLMS, "%s is not cached", s.Name)
		}
	}

	// Every key names a field of the run input, or a step that comes earlier.
	var fields map[string]any
	raw, err := json.Marshal(complexity.DefaultParams())
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &fields))
	for _, s := range []string{complexity.StepDataCollection, complexity.StepFeatureEngineering} {
		for _, k := range wf.Steps[steps[s]].CacheKey {
			if field, ok := strings.CutPrefix(k, "input."); ok {
				require.Contains(t, fields, field, "%s: %s", s, k)
				continue
			}
			dep, ok := steps[k]
			require.True(t, ok, "%s: %s", s, k)
			require.Less(t, dep, steps[s], "%s: %s", s, k)
		}
	}

	def, err := wf.Definition()
	require.NoError(t, err)
	require.Contains(t, string(def), `"map":"feature_engineering.configs","max_items":64`)
}

func TestTheFingerprintChangesExactlyWhenTheRecordsDataCollectionReadsDo(t *testing.T) {
	t.Parallel()
	b := setupHandlers(t, 300)
	const input = `{"min_rows": 50}`
	fingerprint := func(input string) complexity.Fingerprint {
		t.Helper()
		raw, err := b.call(t, b.newRun(t), complexity.StepDataFingerprint, input, nil)
		require.NoError(t, err)
		return decode[complexity.Fingerprint](t, raw)
	}
	insert := func(observed float64, ago time.Duration) {
		t.Helper()
		r := complexity.Generate(complexity.GenerateOptions{Rows: 1, Now: time.Now(), Seed: 99})[0]
		r.ObservedComplexity, r.ExecutedAt = observed, time.Now().Add(-ago)
		_, err := complexity.Insert(b.Ctx, b.Pool, []complexity.Record{r})
		require.NoError(t, err)
	}

	first := fingerprint(input)
	require.Equal(t, b.Count(t, "SELECT count(*) FROM ml.task_executions WHERE observed_complexity IS NOT NULL"), first.Rows)
	require.Equal(t, first, fingerprint(input), "nothing changed")
	out := b.chain(t, b.newRun(t), input, complexity.StepDataCollection, nil)
	require.Equal(t, first.Rows, decode[complexity.CollectOutput](t, out[complexity.StepDataCollection]).Rows,
		"data_collection reads the rows fingerprinted")

	// What data_collection does not read changes nothing: an unlabelled record, a labelled one
	// older than the window.
	insert(-1, time.Hour)
	insert(0.5, 40*24*time.Hour)
	require.Equal(t, first, fingerprint(input))

	// A labelled record in the window does.
	insert(0.5, 0)
	second := fingerprint(input)
	require.Equal(t, first.Rows+1, second.Rows)
	require.Greater(t, second.MaxID, first.MaxID)
	require.True(t, second.Newest.After(*first.Newest))
	require.NotEqual(t, first.Checksum, second.Checksum)
	require.Equal(t, time.UTC, second.Newest.Location(), "workers in any time zone agree")

	// So does a record relabelled, which moves nothing else.
	b.Exec(t, `UPDATE ml.task_executions SET observed_complexity = 1 - observed_complexity
	            WHERE id = (SELECT min(id) FROM ml.task_executions WHERE observed_complexity IS NOT NULL AND observed_complexity <> 0.5
	                          AND executed_at > now() - interval '10 days')`)
	third := fingerprint(input)
	require.Equal(t, second.Rows, third.Rows)
	require.Equal(t, second.Newest, third.Newest)
	require.Equal(t, second.MaxID, third.MaxID)
	require.NotEqual(t, second.Checksum, third.Checksum)

	// The window's own fields choose other rows.
	require.Less(t, fingerprint(`{"min_rows": 10, "days_back": 5}`).Rows, third.Rows)
	require.Equal(t, 50, fingerprint(`{"min_rows": 10, "max_rows": 50}`).Rows)
}

func TestALaterRunReadsTheArtifactsOfTheOutputsItReuses(t *testing.T) {
	t.Parallel()
	b := setupHandlers(t, 1500)
	const input = `{"epochs": 5, "seed": 7, "min_rows": 50, "sweep": [{}, {"learning_rate": 0.01}]}`
	first := b.newRun(t)
	earlier := b.chain(t, first, input, complexity.StepFeatureEngineering, nil)

	// The data has not changed, so the engine hands the later run the cached outputs of
	// data_collection and feature_engineering, which name the first run's artifacts.
	later := b.newRun(t)
	fingerprint, err := b.call(t, later, complexity.StepDataFingerprint, input, nil)
	require.NoError(t, err)
	require.JSONEq(t, string(earlier[complexity.StepDataFingerprint]), string(fingerprint))
	out := b.chain(t, later, input, complexity.StepModelDeployment, map[string]json.RawMessage{
		complexity.StepDataFingerprint:    fingerprint,
		complexity.StepDataCollection:     earlier[complexity.StepDataCollection],
		complexity.StepFeatureEngineering: earlier[complexity.StepFeatureEngineering],
	})
	deployed := decode[complexity.DeployOutput](t, out[complexity.StepModelDeployment])
	require.Equal(t, ml.StatusActive, deployed.Model.Status)
	require.Equal(t, 1, b.Count(t, "SELECT count(*) FROM ml.models WHERE training_run_id = $1", later))

	// It wrote its models and nothing the first run had made.
	var written []string
	rows, err := b.Pool.Query(b.Ctx, "SELECT name FROM ml.artifacts WHERE run_id = $1 ORDER BY name", later)
	require.NoError(t, err)
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		written = append(written, name)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"checkpoint_model_training_0", "checkpoint_model_training_1", "model_0", "model_1"}, written)
	sel := decode[complexity.SelectOutput](t, out[complexity.StepModelSelection])
	require.Equal(t, first, sel.Artifacts.Train.Run)
	require.Equal(t, later, sel.Artifacts.Model.Run)

	// An artifact is still read only as its writer's: the id alone, under another run, is not
	// found.
	_, err = b.artifacts.Matrix(b.Ctx, later, sel.Artifacts.Train.ID, nil)
	require.ErrorContains(t, err, "does not exist")
}
