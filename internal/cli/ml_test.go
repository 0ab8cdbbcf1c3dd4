package cli

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
)

type mlBundle struct {
	*enginetest.Env
	stdout *bytes.Buffer
	stderr *bytes.Buffer
}

// setupML gives the test its own database with nothing registered: the commands under test
// register the ML workflows themselves.
func setupML(t *testing.T) *mlBundle {
	t.Helper()
	return &mlBundle{Env: enginetest.New(t, nil), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
}

// env is the command environment: the test database plus the given variables.
func (b *mlBundle) env(vars map[string]string) Env {
	return Env{
		Stdout: b.stdout, Stderr: b.stderr,
		Getenv: func(k string) string {
			if k == "DATABASE_URL" {
				return b.URL
			}
			return vars[k]
		},
		Registry: NewRegistry(Options{DB: b.Pool}),
	}
}

func TestSeedDataFillsTaskExecutions(t *testing.T) {
	t.Parallel()
	b := setupML(t)

	require.Zero(t, Main([]string{"seed-data", "--rows", "800", "--unlabelled", "0.25", "--seed", "4"}, b.env(nil)), b.stderr.String())
	require.Contains(t, b.stdout.String(), "inserted 800 task executions")
	require.Regexp(t, `ceiling: 0\.001[3-5]\d is the best possible MSE of these \d+ labelled records \(the clamped noise's variance\); predicting their mean scores 0\.0[89]\d\d`, b.stdout.String())
	require.EqualValues(t, 800, b.Count(t, "SELECT count(*) FROM ml.task_executions"))
	require.InDelta(t, 200, b.Count(t, "SELECT count(*) FROM ml.task_executions WHERE observed_complexity IS NULL"), 50)
	require.Zero(t, b.Count(t, "SELECT count(*) FROM ml.task_executions WHERE executed_at < now() - interval '20 days' OR executed_at > now()"))
	require.EqualValues(t, 7, b.Count(t, "SELECT count(DISTINCT task_type) FROM ml.task_executions"))

	b.stdout.Reset()
	require.Zero(t, Main([]string{"seed-data", "--if-empty"}, b.env(nil)))
	require.Contains(t, b.stdout.String(), "already holds 800 records")
	require.Contains(t, b.stdout.String(), "is the best possible MSE of 50000 records generated as seed-data would (if those are seed-data's)")
	require.EqualValues(t, 800, b.Count(t, "SELECT count(*) FROM ml.task_executions"))

	require.Equal(t, 1, Main([]string{"seed-data", "--rows", "0"}, b.env(nil)))
	require.Contains(t, b.stderr.String(), "--rows must be between 1 and 10000000, got 0")
}

func TestWorkerAppliesEnvironmentAtStart(t *testing.T) {
	t.Parallel()
	b := setupML(t)

	// An invalid value stops the worker before it starts, naming the variable.
	err := runWorker(b.Ctx, b.env(map[string]string{"COMPLEXITY_TRAINING_CANARY_PERCENT": "150"}), []string{"--id", "bad", "--metrics-addr", ""})
	require.ErrorContains(t, err, `invalid COMPLEXITY_TRAINING_CANARY_PERCENT="150": a percentage must be between 0 and 100`)
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.workers"))

	ctx, cancel := context.WithCancel(b.Ctx)
	done := make(chan error, 1)
	go func() {
		done <- runWorker(ctx, b.env(map[string]string{
			"PGFLOW_COMPLEXITY_TRAINING_ENABLED":   "true",
			"COMPLEXITY_TRAINING_CANARY_PERCENT":   "50",
			"ARCHITECTURE_WORKFLOW_CONCURRENCY":    "2",
			"COMPLEXITY_MODEL_TRAINING_TIMEOUT_MS": "240000",
		}), []string{"--id", "env-worker", "--classes", "cpu,gpu", "--shutdown-timeout", "5s", "--metrics-addr", ""})
	}()
	deadline := time.Now().Add(time.Minute)
	for b.Count(t, "SELECT count(*) FROM qflow.workers WHERE id = 'env-worker'") == 0 {
		require.True(t, time.Now().Before(deadline), "worker did not start")
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	require.NoError(t, <-done)

	require.EqualValues(t, 50, b.Count(t, "SELECT canary_percent FROM qflow.rollouts WHERE workflow = 'complexity_training' AND enabled"))
	require.EqualValues(t, 2, b.Count(t, "SELECT max_concurrency FROM qflow.workflow_settings WHERE workflow = 'architecture_learning' AND step = 'model_training'"))
	require.EqualValues(t, 240000, b.Count(t, "SELECT timeout_ms FROM qflow.workflow_settings WHERE workflow = 'complexity_training' AND step = 'model_training'"))
	// Untouched: the seed's defaults.
	require.EqualValues(t, 0, b.Count(t, "SELECT count(*) FROM qflow.rollouts WHERE workflow = 'architecture_learning' AND enabled"))
}
