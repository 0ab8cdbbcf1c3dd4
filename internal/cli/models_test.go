package cli

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/pipelines/architecture"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// setupModels is a database whose registry holds real models (enginetest.TrainModels).
func setupModels(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{Env: enginetest.New(t, enginetest.ML)}
	b.TrainModels(t)
	return b
}

func TestModelsListsEveryVersionWithItsFigureAndDecision(t *testing.T) {
	t.Parallel()
	b := setupModels(t)

	code, out, stderr := b.qflow("models")
	require.Zero(t, code, stderr)
	t.Log("\n" + out)
	lines := strings.Split(out, "\n")
	require.Regexp(t, `^MODEL +VERSION +STATUS +BACKEND +RUN +FIGURE +MODEL +BASELINE +GAIN OVER THE ACTIVE ONE$`, lines[0])
	require.Regexp(t, `^architecture +v1 +active +cpu +#3 +macro-F1 holdout +0\.\d{4} \[0\.\d{4}, 0\.\d{4}\] +0\.\d{4} \[`, lines[1])
	require.Regexp(t, `^ {16}decision: no active model; beats the baseline: macro-F1 `, lines[2])
	require.Regexp(t, `^complexity +v2 +(candidate|active) +cpu +#2 +MSE holdout +0\.\d{5} \[0\.\d{5}, 0\.\d{5}\] +0\.\d{5} \[.*\] +[+-]\d+\.\d% \[.*\] over active v1$`, lines[3])
	require.Regexp(t, `^ +decision: (does not beat|beats) active v1 by more than \+2\.0%: MSE `, lines[4])
	require.Regexp(t, `^ +v1 +(active|retired) +cpu +#1 +MSE holdout `, lines[5])
}

func TestModelsOfANameShowTheActiveVersionsEvidence(t *testing.T) {
	t.Parallel()
	b := setupModels(t)

	code, out, stderr := b.qflow("models", "complexity")
	require.Zero(t, code, stderr)
	t.Log("\n" + out)
	require.NotContains(t, out, "architecture")
	active := b.Count(t, "SELECT version FROM ml.models WHERE name = 'complexity' AND status = 'active'")
	require.Contains(t, out, fmt.Sprintf("\ncomplexity v%d  active  backend cpu  run #%d  created ", active, active), "the active version's details")
	require.Regexp(t, `rows: \d+ train, \d+ validation, \d+ held out \(holdout: 20% by hash of ml.task_executions.id\)`, out)
	require.Regexp(t, `(?m)^  against +rows +this model's MSE +theirs +gain +needs more than +verdict$`, out)
	require.Regexp(t, `(?m)^  baseline +\d+ +0\.\d{5} \[.*\] +0\.\d{5} \[.*\] +\+9\d\.\d% \[.*\] +\+0\.0% +wins$`, out)
	require.Regexp(t, `(?m)^  MSE \(lower is better\) +holdout +0\.\d{5} \[0\.\d{5}, 0\.\d{5}\] +baseline 0\.\d{5} \[`, out)
	require.Regexp(t, `loss per epoch \(30 epochs; the model has the weights of epoch \d+, of the lowest validation loss\):`, out)
	require.Regexp(t, `(?m)^  training +[▁▂▃▄▅▆▇█]{30}  0\.\d+ → 0\.\d+ \(lowest 0\.\d+ at epoch \d+\)$`, out)
	require.Regexp(t, `(?m)^  validation +[▁▂▃▄▅▆▇█]{30}  `, out)
	// The scatter: 366 sampled rows fill many cells of the grid.
	require.Regexp(t, `predicted \(up\) against actual \(right\), \d+ held-out rows; / is perfect:\n +1\.00 \|`, out)
	plot := out[strings.Index(out, "predicted (up) against actual"):]
	require.Greater(t, strings.Count(plot, "·")+strings.Count(plot, "•")+strings.Count(plot, "●"), 100)

	// A version by number; the classifier's matrices and classes.
	code, out, stderr = b.qflow("models", "architecture", "1")
	require.Zero(t, code, stderr)
	t.Log("\n" + out)
	require.True(t, strings.HasPrefix(out, "architecture v1  active"), "no list before a version asked for")
	require.Contains(t, out, "confusion matrix, held out (rows true, columns predicted):")
	require.Contains(t, out, "confusion matrix, 5-fold cross-validation on ")
	for i, p := range architecture.Patterns {
		require.Regexp(t, fmt.Sprintf(`(?m)^  %d %s +[.\d]`, i, p), out)
	}
	require.Regexp(t, `(?m)^  class +held out +F1 +cross-validated +F1 \(5-fold\)$`, out)
	require.Regexp(t, regexp.MustCompile(`(?m)^  \w+ +\d+ +too small to evaluate`), out, "small classes are reported as such")
	require.Contains(t, out, fmt.Sprintf("fewer than %d rows: too small to evaluate", ml.MinSupport))

	code, _, stderr = b.qflow("models", "complexity", "9")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "model complexity has no version 9")
	code, _, stderr = b.qflow("models", "nothing")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `there is no model named "nothing"`)
	code, _, stderr = b.qflow("models", "complexity", "x")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `"x" is not a model version`)
}
