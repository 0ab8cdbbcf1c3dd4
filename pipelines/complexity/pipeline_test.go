package complexity_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/complexity"
	"github.com/quantumflow/qflow/pipelines/ml"
	"github.com/quantumflow/qflow/worker"
)

type testBundle struct {
	*enginetest.Env
}

// setup makes a database with rows generated task executions and a worker for both classes;
// change, if given, alters the workflow first.
func setup(t *testing.T, rows int, change ...func(pipelines.Workflow) pipelines.Workflow) *testBundle {
	t.Helper()
	env := enginetest.New(t, nil)
	wf := complexity.Workflow(complexity.Options{DB: env.Pool, Trainer: ml.NewTrainer(nil)})
	for _, c := range change {
		wf = c(wf)
	}
	env.Registry.MustAdd(wf)
	_, err := env.Registry.Sync(env.Ctx, env.Pool)
	require.NoError(t, err)
	recs := complexity.Generate(complexity.GenerateOptions{Rows: rows, Days: 20, Now: time.Now(), Unlabelled: 0.1, Seed: 11})
	n, err := complexity.Insert(env.Ctx, env.Pool, recs)
	require.NoError(t, err)
	require.EqualValues(t, rows, n)
	env.StartWorker(t, worker.Config{ID: "ml-worker", Classes: []string{"cpu", "gpu"}, FetchPollInterval: 50 * time.Millisecond})
	return &testBundle{Env: env}
}

// small keeps training quick: about 1,100 training rows for 30 epochs.
const small = `{"epochs": 30, "seed": 7, "min_rows": 50}`

func (b *testBundle) output(t *testing.T, r enginetest.Run) complexity.DeployOutput {
	t.Helper()
	require.Equal(t, "succeeded", r.Status, "run %d: %s", r.ID, r.Error)
	var out map[string]complexity.DeployOutput
	require.NoError(t, json.Unmarshal(r.Output, &out))
	return out[complexity.StepModelDeployment]
}

// run starts a run in workflow mode, waits for it and returns its output.
func (b *testBundle) run(t *testing.T, input string) complexity.DeployOutput {
	t.Helper()
	return b.output(t, b.Wait(t, b.StartMode(t, complexity.Name, "workflow", input), 2*time.Minute))
}

// stored reads what ml.models holds of a model: its metrics with what deployment added.
func (b *testBundle) stored(t *testing.T, model int64) enginetest.Stored[complexity.Metrics] {
	t.Helper()
	return enginetest.LoadStored[complexity.Metrics](t, b.Env, model)
}

func TestBothModesTrainTheSameModel(t *testing.T) {
	t.Parallel()
	b := setup(t, 1500)

	wf := b.Wait(t, b.StartMode(t, complexity.Name, "workflow", small), 2*time.Minute)
	require.Equal(t, "workflow", wf.Mode)
	first := b.output(t, wf)

	// Every step ran as its own attempt (training as the one task of its one configuration),
	// training on the gpu class.
	require.Equal(t, 7, b.Count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND status = 'succeeded'", wf.ID))
	require.Equal(t, 1, b.Count(t, `SELECT count(*) FROM river.river_job WHERE queue = 'gpu' AND args ->> 'step' = 'model_training[0]'
	                                 AND (args ->> 'run_id')::bigint = $1 AND state = 'completed'`, wf.ID))
	require.Equal(t, "cpu", first.Training.Backend)
	// Arrays went by reference: no step output is anywhere near the data's size.
	require.Less(t, b.Count(t, "SELECT max(octet_length(output::text)) FROM qflow.step_runs WHERE run_id = $1", wf.ID), 4096)
	require.Greater(t, b.Count(t, "SELECT sum(octet_length(data)) FROM ml.artifacts WHERE run_id = $1", wf.ID), 100000)

	// The model learned the hidden function far better than the mean, on records of the stable
	// holdout; every figure comes with its interval.
	m := first.Metrics
	t.Logf("workflow mode: MSE %s (baseline %s), R² %s, accuracy %s; %d/%d/%d rows; training %+v",
		m.MSE.Format("%.5f"), m.Baseline.MSE.Format("%.5f"), m.R2.Format("%.3f"), m.Accuracy.Format("%.3f"),
		m.TrainRows, m.ValidationRows, m.HeldOutRows, first.Training)
	for what, e := range map[string]ml.Estimate{"mse": m.MSE, "r2": m.R2, "accuracy": m.Accuracy,
		"baseline mse": m.Baseline.MSE, "baseline accuracy": m.Baseline.Accuracy} {
		enginetest.RequireInterval(t, e, what)
	}
	require.Less(t, m.MSE.Hi, m.Baseline.MSE.Lo/5)
	require.Greater(t, m.R2.Lo, 0.8)
	require.Greater(t, m.Accuracy.Lo, m.Baseline.Accuracy.Hi+0.3)
	require.Equal(t, ml.NewHoldout("ml.task_executions.id", 0.2), m.Holdout)
	labelled := b.Count(t, "SELECT count(*) FROM ml.task_executions WHERE observed_complexity IS NOT NULL")
	require.Equal(t, labelled, m.TrainRows+m.ValidationRows+m.HeldOutRows, "every labelled record in one part")
	require.InDelta(t, 270, m.HeldOutRows, 45)
	require.InDelta(t, 108, m.ValidationRows, 30)
	require.Equal(t, ml.StatusActive, first.Model.Status)
	require.EqualValues(t, 1, first.Model.Version)

	// The registry has the loss curve of every epoch, a sample of held-out predictions against
	// their labels, and the decision with its evidence.
	s := b.stored(t, first.Model.ID)
	require.Len(t, s.Metrics.Curve.Train, 30)
	require.Len(t, s.Metrics.Curve.Validation, 30)
	require.Equal(t, first.Training.FinalLoss, s.Metrics.Curve.Train[29])
	require.Equal(t, first.Training.FinalValidationLoss, s.Metrics.Curve.Validation[29])
	require.Less(t, s.Metrics.Curve.Validation[29], s.Metrics.Curve.Validation[0])
	require.Positive(t, s.Metrics.Curve.BestEpoch, "the model has the weights of its best validation epoch")
	require.Len(t, s.Metrics.Sample.Predicted, m.HeldOutRows)
	require.Len(t, s.Metrics.Sample.Actual, m.HeldOutRows)
	require.True(t, s.Decision.Activated)
	require.True(t, s.Decision.Baseline.Wins)
	require.Nil(t, s.Decision.Active)
	require.Equal(t, m.MSE, s.Decision.Baseline.Candidate, "the decision scores the candidate on its holdout")
	require.Equal(t, first.Model.Decision, s.Decision.Reason)
	require.Contains(t, s.Decision.Reason, "no active model; beats the baseline: MSE ")

	// Deployment backfilled every record, labelled or not, with the active model.
	require.Zero(t, b.Count(t, "SELECT count(*) FROM ml.task_executions WHERE predicted_complexity IS NULL"))
	require.EqualValues(t, 1500, first.Backfilled)
	require.Equal(t, 1500, b.Count(t, "SELECT count(*) FROM ml.task_executions WHERE predicted_by = $1", first.Model.ID))

	// Legacy mode: one job, no step rows, the same model.
	lg := b.Wait(t, b.StartMode(t, complexity.Name, "legacy", small), 2*time.Minute)
	require.Equal(t, "legacy", lg.Mode)
	second := b.output(t, lg)
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1", lg.ID))
	require.Equal(t, m, second.Metrics, "same seed, same data: the same held-out metrics in both modes")
	require.Equal(t, first.Training.FinalLoss, second.Training.FinalLoss)

	var w1, w2 []byte
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT weights FROM ml.models WHERE id = $1", first.Model.ID).Scan(&w1))
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT weights FROM ml.models WHERE id = $1", second.Model.ID).Scan(&w2))
	require.Equal(t, w1, w2, "bit-identical weights")

	// An equal model does not replace the active one: compared on every held-out record (none
	// trained either), it gains exactly nothing.
	require.Equal(t, ml.StatusCandidate, second.Model.Status)
	require.Contains(t, second.Model.Decision, "does not beat active v1 by more than +2.0%: MSE ")
	d := b.stored(t, second.Model.ID).Decision
	require.False(t, d.Activated)
	require.NotNil(t, d.Active)
	require.Equal(t, m.HeldOutRows, d.Active.Rows)
	require.Equal(t, d.Active.Candidate, d.Active.Other)
	require.Equal(t, ml.Estimate{}, d.Active.Gain)
	require.Equal(t, 1, b.Count(t, "SELECT count(*) FROM ml.models WHERE name = 'complexity' AND status = 'active'"))
}

func TestAnInterruptedTrainingResumesToTheModelOfAnUninterruptedOne(t *testing.T) {
	t.Parallel()
	b := setup(t, 1500, func(wf pipelines.Workflow) pipelines.Workflow {
		return enginetest.InterruptTraining(wf, complexity.StepModelTraining, 7)
	})
	const in = `{"epochs": 12, "seed": 7, "min_rows": 50, "checkpoint_every": 5}`

	// The first attempt of model_training stops after epoch 7 and saves it; the retry resumes there.
	interrupted := b.Wait(t, b.StartMode(t, complexity.Name, "workflow", in), 2*time.Minute)
	first := b.output(t, interrupted)
	var training []complexity.TrainOutput
	b.StepOutput(t, interrupted.ID, complexity.StepModelTraining, &training)
	require.Len(t, training, 1, "no sweep: one configuration")
	require.Equal(t, 7, training[0].Training.ResumedFromEpoch)
	require.Equal(t, 1, b.Count(t, `SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'model_training[0]'
	                                 AND attempt = 1 AND status = 'failed' AND error LIKE '%context canceled%'`, interrupted.ID))
	require.Equal(t, 12, b.Count(t, `SELECT (meta ->> 'epoch')::int FROM ml.artifacts WHERE run_id = $1 AND name = 'checkpoint_model_training_0'`, interrupted.ID))

	// A run that trains through ends with the same weights, bit for bit.
	through := b.Wait(t, b.StartMode(t, complexity.Name, "workflow", in), 2*time.Minute)
	second := b.output(t, through)
	b.StepOutput(t, through.ID, complexity.StepModelTraining, &training)
	require.Zero(t, training[0].Training.ResumedFromEpoch)
	require.Equal(t, first.Training.FinalLoss, second.Training.FinalLoss)
	require.Equal(t, first.Metrics, second.Metrics)
	require.Equal(t, b.stored(t, second.Model.ID).Metrics.Curve, b.stored(t, first.Model.ID).Metrics.Curve,
		"the resumed training's loss curve is whole: the checkpoint kept its validation losses")
	var w1, w2 []byte
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT weights FROM ml.models WHERE id = $1", first.Model.ID).Scan(&w1))
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT weights FROM ml.models WHERE id = $1", second.Model.ID).Scan(&w2))
	require.Equal(t, w1, w2, "bit-identical weights")
}

func TestAClearlyBetterCandidateReplacesTheActiveModelAndAWorseOneDoesNot(t *testing.T) {
	t.Parallel()
	b := setup(t, 1500)

	// Two epochs on a quarter of the data: better than the mean, so it is the first champion.
	const weakInput = `{"epochs": 2, "seed": 3, "max_rows": 400, "min_rows": 50}`
	weak := b.run(t, weakInput)
	require.Equal(t, ml.StatusActive, weak.Model.Status)

	good := b.run(t, small)
	t.Logf("weak MSE %s, good MSE %s; %s", weak.Metrics.MSE.Format("%.5f"), good.Metrics.MSE.Format("%.5f"), good.Model.Decision)
	require.Equal(t, ml.StatusActive, good.Model.Status)
	require.Contains(t, good.Model.Decision, "beats active v1 by more than +2.0%: MSE ")
	d := b.stored(t, good.Model.ID).Decision
	require.True(t, d.Active.Wins)
	require.Greater(t, d.Active.Gain.Lo, 0.02)
	// Every held-out record of this run is one v1 held out too (whether or not its window
	// reached it): neither model trained on any, so all are compared.
	require.Greater(t, good.Metrics.HeldOutRows, weak.Metrics.HeldOutRows)
	require.Equal(t, good.Metrics.HeldOutRows, d.Active.Rows)

	again := b.run(t, weakInput)
	require.Equal(t, ml.StatusCandidate, again.Model.Status)
	require.Contains(t, again.Model.Decision, "does not beat active v2")
	require.Less(t, b.stored(t, again.Model.ID).Decision.Active.Gain.Hi, 0.0)
	var activeID int64
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT id FROM ml.models WHERE name = 'complexity' AND status = 'active'").Scan(&activeID))
	require.Equal(t, good.Model.ID, activeID)

	// The database itself refuses a second active model.
	_, err := b.Pool.Exec(b.Ctx, "UPDATE ml.models SET status = 'active', activated_at = now() WHERE id = $1", again.Model.ID)
	require.ErrorContains(t, err, "models_one_active")
}

func TestAnotherSeedOrShareComparesOnRecordsTheActiveModelNeverSaw(t *testing.T) {
	t.Parallel()
	b := setup(t, 1500)
	champion := b.run(t, small)
	require.Equal(t, ml.StatusActive, champion.Model.Status)

	// Another seed used to mean another split, whose held-out records had mostly trained the
	// active model, which then looked better than it is. Now the holdout is the same records
	// whatever the seed: the active model is scored on exactly its own held-out records, with
	// exactly the MSE it was deployed with.
	for _, input := range []string{
		`{"epochs": 30, "seed": 8, "min_rows": 50}`,
		`{"epochs": 30, "seed": 9, "min_rows": 50, "held_out": 0.3}`,
	} {
		challenger := b.run(t, input)
		d := b.stored(t, challenger.Model.ID).Decision
		t.Logf("%s: %s", input, d.Reason)
		require.NotNil(t, d.Active, input)
		require.Equal(t, champion.Metrics.HeldOutRows, d.Active.Rows, input)
		require.Equal(t, champion.Metrics.MSE.Value, d.Active.Other.Value, input)
		require.Greater(t, d.Active.Gain.Hi, 0.0, "%s: a model of the same data and network is not shown worse", input)
	}
}

func TestTooLittleDataFailsPermanently(t *testing.T) {
	t.Parallel()
	b := setup(t, 30)
	labelled := b.Count(t, "SELECT count(*) FROM ml.task_executions WHERE observed_complexity IS NOT NULL")

	for _, mode := range []string{"workflow", "legacy"} {
		r := b.Wait(t, b.StartMode(t, complexity.Name, mode, `{}`), time.Minute)
		require.Equal(t, "failed", r.Status, mode)
		require.Contains(t, r.Error, "permanently", mode)
		require.Contains(t, r.Error, fmt.Sprintf("too little data: %d labelled task executions (observed_complexity set) in the last 30 days, at least 100 needed", labelled), mode)
	}
	// Not retried: one attempt of data_collection in workflow mode, one legacy attempt.
	require.Equal(t, 1, b.Count(t, "SELECT count(*) FROM qflow.step_attempts WHERE step = 'data_collection'"))
	require.Equal(t, 1, b.Count(t, "SELECT max(attempt) FROM qflow.runs WHERE mode = 'legacy'"))
}

func TestBadInputFailsPermanently(t *testing.T) {
	t.Parallel()
	b := setup(t, 30)

	r := b.Wait(t, b.StartMode(t, complexity.Name, "workflow", `{"days_back": -1, "epochs": 0}`), time.Minute)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, "days_back must be between 1 and 36500, got -1")
	require.Contains(t, r.Error, "epochs must be between 1 and 10000, got 0")

	r = b.Wait(t, b.StartMode(t, complexity.Name, "workflow", `{"dayz_back": 3}`), time.Minute)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, `unknown field "dayz_back"`)
}

func TestASweepTrainsEachConfigurationAsAGpuTaskAndDeploysTheBest(t *testing.T) {
	t.Parallel()
	b := setup(t, 1500)
	const input = `{"epochs": 20, "seed": 7, "min_rows": 50, "sweep": [
		{"learning_rate": 5}, {}, {"hidden_layers": [1], "dropout": [0], "epochs": 1, "learning_rate": 0.0001}]}`
	r := b.Wait(t, b.StartMode(t, complexity.Name, "workflow", input), 2*time.Minute)
	out := b.output(t, r)

	require.Equal(t, 3, b.Count(t, `SELECT count(*) FROM river.river_job WHERE queue = 'gpu' AND kind = 'qflow_step'
	                                 AND args ->> 'step' LIKE 'model_training[%' AND (args ->> 'run_id')::bigint = $1
	                                 AND state = 'completed'`, r.ID), "one gpu task per configuration")
	var sel complexity.SelectOutput
	b.StepOutput(t, r.ID, complexity.StepModelSelection, &sel)
	require.Len(t, sel.Configs, 3)
	require.Equal(t, 1, sel.Chosen, "the seed network beats an absurd learning rate and a one-unit network")
	for i, c := range sel.Configs {
		require.NotNil(t, c.ValidationLoss, "configs[%d]", i)
		if i != sel.Chosen {
			require.Greater(t, *c.ValidationLoss, *sel.Configs[sel.Chosen].ValidationLoss)
		}
	}
	require.Equal(t, sel.Configs[1].Config.HiddenLayers, []int{64, 32})
	require.NotZero(t, out.Model.ID, "evaluation and deployment went on with the chosen model")
}

func TestARetrainOnUnchangedDataReusesDataCollectionAndFeatures(t *testing.T) {
	t.Parallel()
	b := setup(t, 1500)
	first := b.Wait(t, b.StartMode(t, complexity.Name, "workflow", small), 2*time.Minute)
	b.output(t, first)
	second := b.Wait(t, b.StartMode(t, complexity.Name, "workflow", `{"epochs": 31, "seed": 7, "min_rows": 50}`), 2*time.Minute)
	b.output(t, second)

	cached := func(run int64) []string {
		var steps []string
		require.NoError(t, b.Pool.QueryRow(b.Ctx, `SELECT coalesce(array_agg(step ORDER BY step), '{}') FROM qflow.step_attempts
		                                           WHERE run_id = $1 AND status = 'cached'`, run).Scan(&steps))
		return steps
	}
	require.Empty(t, cached(first.ID))
	// epochs is not in data_collection's key; it is in feature_engineering's (its configs carry it).
	require.Equal(t, []string{complexity.StepDataCollection}, cached(second.ID))

	third := b.Wait(t, b.StartMode(t, complexity.Name, "workflow", small), 2*time.Minute)
	b.output(t, third)
	require.Equal(t, []string{complexity.StepDataCollection, complexity.StepFeatureEngineering}, cached(third.ID),
		"the same input on the same data: both reused")

	// New data in the window changes the fingerprint: everything runs again.
	recs := complexity.Generate(complexity.GenerateOptions{Rows: 5, Days: 1, Now: time.Now(), Seed: 12})
	_, err := complexity.Insert(b.Ctx, b.Pool, recs)
	require.NoError(t, err)
	fourth := b.Wait(t, b.StartMode(t, complexity.Name, "workflow", small), 2*time.Minute)
	b.output(t, fourth)
	require.Empty(t, cached(fourth.ID))
}
