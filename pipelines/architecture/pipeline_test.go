package architecture_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/architecture"
	"github.com/quantumflow/qflow/pipelines/ml"
	"github.com/quantumflow/qflow/worker"
)

type testBundle struct {
	*enginetest.Env
	goroot string
}

// setup makes a database and a worker for both classes; change, if given, alters the workflow
// first.
func setup(t *testing.T, change ...func(pipelines.Workflow) pipelines.Workflow) *testBundle {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	require.NoError(t, err, "the tests scan the standard library's source")
	env := enginetest.New(t, func(reg *pipelines.Registry, pool *pgxpool.Pool) {
		wf := architecture.Workflow(architecture.Options{DB: pool, Trainer: ml.NewTrainer(nil)})
		for _, c := range change {
			wf = c(wf)
		}
		reg.MustAdd(wf)
	})
	env.StartWorker(t, worker.Config{ID: "ml-worker", Classes: []string{"cpu", "gpu"}, FetchPollInterval: 50 * time.Millisecond})
	return &testBundle{Env: env, goroot: strings.TrimSpace(string(out))}
}

// input scans the given directories of the standard library's source.
func (b *testBundle) input(extra string, dirs ...string) string {
	var roots []string
	for _, d := range dirs {
		roots = append(roots, filepath.Join(b.goroot, "src", d))
	}
	raw, _ := json.Marshal(roots)
	return fmt.Sprintf(`{"roots": %s, "seed": 5%s}`, raw, extra)
}

func (b *testBundle) output(t *testing.T, r enginetest.Run) architecture.DeployOutput {
	t.Helper()
	require.Equal(t, "succeeded", r.Status, "run %d: %s", r.ID, r.Error)
	var out map[string]architecture.DeployOutput
	require.NoError(t, json.Unmarshal(r.Output, &out))
	return out[architecture.StepModelDeployment]
}

// stored reads what ml.models holds of a model: its metrics with what deployment added.
func (b *testBundle) stored(t *testing.T, model int64) enginetest.Stored[architecture.Metrics] {
	t.Helper()
	return enginetest.LoadStored[architecture.Metrics](t, b.Env, model)
}

func TestBothModesLearnTheSamePatterns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	in := b.input("", "")

	wf := b.Wait(t, b.StartMode(t, architecture.Name, "workflow", in), 3*time.Minute)
	first := b.output(t, wf)
	var disc architecture.DiscoveryOutput
	b.StepOutput(t, wf.ID, architecture.StepPatternDiscovery, &disc)
	t.Logf("discovered %d packages, %d files, %d lines in %.1fs", disc.Packages, disc.Files, disc.Lines, disc.Seconds)
	require.Greater(t, disc.Packages, 300, "the whole standard library and its tools")
	require.Equal(t, 1, b.Count(t, `SELECT count(*) FROM river.river_job WHERE queue = 'gpu' AND args ->> 'step' = 'model_training'
	                                 AND (args ->> 'run_id')::bigint = $1 AND state = 'completed'`, wf.ID))
	require.Less(t, b.Count(t, "SELECT max(octet_length(output::text)) FROM qflow.step_runs WHERE run_id = $1", wf.ID), 8192)

	m := first.Metrics
	t.Logf("held out: accuracy %s macro-F1 %s | majority baseline %s, %s; %d train, %d validation, %d held out",
		m.Accuracy.Format("%.3f"), m.MacroF1.Format("%.3f"), m.Baseline.Accuracy.Format("%.3f"), m.Baseline.MacroF1.Format("%.3f"),
		m.TrainRows, m.ValidationRows, m.HeldOutRows)
	t.Logf("%d-fold cross-validation on %d packages: accuracy %s macro-F1 %s | baseline %s, %s", m.CV.Folds, m.CV.Rows,
		m.CV.Accuracy.Format("%.3f"), m.CV.MacroF1.Format("%.3f"), m.CV.Baseline.Accuracy.Format("%.3f"), m.CV.Baseline.MacroF1.Format("%.3f"))
	for what, e := range map[string]ml.Estimate{"accuracy": m.Accuracy, "macro-F1": m.MacroF1, "cv accuracy": m.CV.Accuracy,
		"cv macro-F1": m.CV.MacroF1, "baseline accuracy": m.Baseline.Accuracy, "cv baseline macro-F1": m.CV.Baseline.MacroF1} {
		enginetest.RequireInterval(t, e, what)
	}
	require.Greater(t, m.Accuracy.Value, m.Baseline.Accuracy.Value+0.1)
	require.Greater(t, m.MacroF1.Value, m.Baseline.MacroF1.Value+0.2)
	require.Greater(t, m.CV.Accuracy.Lo, m.CV.Baseline.Accuracy.Hi, "cross-validated, the classifier beats the majority")
	require.Greater(t, m.CV.MacroF1.Lo, m.CV.Baseline.MacroF1.Hi)
	require.Equal(t, 5, m.CV.Folds)
	require.Equal(t, m.TrainRows+m.ValidationRows, m.CV.Rows, "every training-side package is predicted once, by a model it did not train")
	require.Equal(t, disc.Packages, m.TrainRows+m.ValidationRows+m.HeldOutRows)
	require.Len(t, m.Confusion, len(architecture.Patterns))
	total := 0
	for _, row := range m.Confusion {
		for _, n := range row {
			total += n
		}
	}
	require.Equal(t, m.HeldOutRows, total)
	// Every class is reported, those too small to evaluate as such.
	require.Len(t, m.Classes, len(architecture.Patterns))
	require.Len(t, m.CV.Classes, len(architecture.Patterns))
	for i, c := range m.CV.Classes {
		require.Equal(t, architecture.Patterns[i], c.Class)
		require.Equal(t, c.Support < ml.MinSupport, c.TooSmall, c.Class)
		require.Equal(t, c.TooSmall, c.F1 == nil, c.Class)
		if c.F1 != nil {
			t.Logf("  %-18s %4d packages (cv)  F1 %s", c.Class, c.Support, c.F1.Format("%.3f"))
		} else {
			t.Logf("  %-18s %4d packages (cv)  too small to evaluate", c.Class, c.Support)
		}
	}
	require.Equal(t, ml.StatusActive, first.Model.Status)
	s := b.stored(t, first.Model.ID)
	require.Len(t, s.Metrics.Curve.Train, 150)
	require.Len(t, s.Metrics.Curve.Validation, 150)
	require.True(t, s.Decision.Activated)
	require.Equal(t, "macro-F1", s.Decision.Metric)

	// Deployment labelled every discovered package with the active model.
	require.EqualValues(t, disc.Packages, first.Labelled)
	require.Equal(t, disc.Packages, b.Count(t, "SELECT count(*) FROM ml.package_patterns WHERE model_id = $1", first.Model.ID))
	require.Equal(t, 1, b.Count(t, "SELECT count(*) FROM ml.package_patterns WHERE package = 'net/http' AND rule_pattern = 'network_service'"))

	lg := b.Wait(t, b.StartMode(t, architecture.Name, "legacy", in), 3*time.Minute)
	require.Equal(t, "legacy", lg.Mode)
	second := b.output(t, lg)
	require.Equal(t, m, second.Metrics, "same trees, same seed: the same held-out metrics in both modes")
	require.Equal(t, ml.StatusCandidate, second.Model.Status)
	require.Contains(t, second.Model.Decision, "does not beat active v1 by more than +0.0100: macro-F1 ")
	d := b.stored(t, second.Model.ID).Decision
	require.Equal(t, m.HeldOutRows, d.Active.Rows)
	require.Equal(t, ml.Estimate{}, d.Active.Gain)
}

func TestAnInterruptedTrainingResumesToTheClassifierOfAnUninterruptedOne(t *testing.T) {
	t.Parallel()
	b := setup(t, func(wf pipelines.Workflow) pipelines.Workflow {
		return enginetest.InterruptTraining(wf, architecture.StepModelTraining, 13)
	})
	in := b.input(`, "hidden_units": 16, "epochs": 30, "checkpoint_every": 10`, "net", "encoding", "go")

	interrupted := b.Wait(t, b.StartMode(t, architecture.Name, "workflow", in), 3*time.Minute)
	through := b.Wait(t, b.StartMode(t, architecture.Name, "workflow", in), 3*time.Minute)
	var resumed, fresh architecture.TrainOutput
	b.StepOutput(t, interrupted.ID, architecture.StepModelTraining, &resumed)
	b.StepOutput(t, through.ID, architecture.StepModelTraining, &fresh)
	require.Equal(t, 13, resumed.Training.ResumedFromEpoch)
	require.Zero(t, fresh.Training.ResumedFromEpoch)
	require.Equal(t, 2, b.Count(t, "SELECT count(*) FROM qflow.step_attempts WHERE run_id = $1 AND step = 'model_training'", interrupted.ID))
	require.Equal(t, b.output(t, interrupted).Metrics, b.output(t, through).Metrics)
	const models = "FROM ml.models WHERE name = 'architecture' AND training_run_id IN ($1, $2)"
	require.Equal(t, 2, b.Count(t, "SELECT count(*) "+models, interrupted.ID, through.ID))
	require.Equal(t, 1, b.Count(t, "SELECT count(DISTINCT weights) "+models, interrupted.ID, through.ID), "bit-identical weights")
}

func TestWorseClassifierStaysCandidate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	in := b.input("", "net", "encoding", "runtime", "internal", "go", "crypto")

	good := b.output(t, b.Wait(t, b.StartMode(t, architecture.Name, "workflow", in), 3*time.Minute))
	require.Equal(t, ml.StatusActive, good.Model.Status)

	// One epoch at a tiny learning rate: barely moved from its random start, no better than
	// the majority class.
	dead := b.output(t, b.Wait(t, b.StartMode(t, architecture.Name, "workflow", b.input(`, "epochs": 1, "learning_rate": 0.00001`, "net", "encoding", "runtime", "internal", "go", "crypto")), 3*time.Minute))
	t.Logf("good: macro-F1 %s; dead: %s; %s", good.Metrics.MacroF1.Format("%.3f"), dead.Metrics.MacroF1.Format("%.3f"), dead.Model.Decision)
	require.Equal(t, ml.StatusCandidate, dead.Model.Status)
	require.Contains(t, dead.Model.Decision, "not reliably better than the baseline: macro-F1 ")

	// Fifteen epochs: better than the majority, worse than the active model.
	weak := b.output(t, b.Wait(t, b.StartMode(t, architecture.Name, "workflow", b.input(`, "epochs": 15`, "net", "encoding", "runtime", "internal", "go", "crypto")), 3*time.Minute))
	t.Logf("weak: %s; %s", weak.Metrics.MacroF1.Format("%.3f"), weak.Model.Decision)
	require.Equal(t, ml.StatusCandidate, weak.Model.Status)
	require.Contains(t, weak.Model.Decision, "does not beat active v1")
	require.Equal(t, 1, b.Count(t, "SELECT count(*) FROM ml.models WHERE name = 'architecture' AND status = 'active' AND id = $1", good.Model.ID))
}

func TestMissingTreeFailsPermanently(t *testing.T) {
	t.Parallel()
	b := setup(t)

	r := b.Wait(t, b.StartMode(t, architecture.Name, "workflow", `{"roots": ["/nonexistent/src"]}`), time.Minute)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, `step pattern_discovery failed permanently: discovering packages: root "/nonexistent/src" is not a readable directory`)

	r = b.Wait(t, b.StartMode(t, architecture.Name, "legacy", b.input("", "bufio")), time.Minute)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, "too little data: 1 Go packages under")
}
