package ml_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/ml"
)

func TestChainRunsStepsInOrderWithTheSharedRetries(t *testing.T) {
	t.Parallel()
	h := func(context.Context, pipelines.Input) (any, error) { return nil, nil }
	w := ml.Chain("demo", "a demo", ml.Step("a", "cpu", 5, 60000, h), ml.Step("b", "gpu", 1, 180000, h),
		ml.Step("c", "cpu", 2, 30000, h))

	require.Equal(t, "demo", w.Name)
	require.Equal(t, "a demo", w.Description)
	require.EqualValues(t, 300000, w.TimeoutMS)
	require.Len(t, w.Steps, 3)
	require.Nil(t, w.Steps[0].DependsOn, "the first step is the root")
	require.Equal(t, []string{"a"}, w.Steps[1].DependsOn)
	require.Equal(t, []string{"b"}, w.Steps[2].DependsOn)
	for _, s := range w.Steps {
		require.Equal(t, 4, s.MaxAttempts, s.Name)
		require.EqualValues(t, 5000, s.RetryBaseMS, s.Name)
		require.EqualValues(t, 60000, s.RetryMaxMS, s.Name)
		require.NotNil(t, s.Handler, s.Name)
	}
	require.Equal(t, "gpu", w.Steps[1].WorkerClass)
	require.Equal(t, 1, w.Steps[1].MaxConcurrency)
	require.EqualValues(t, 180000, w.Steps[1].TimeoutMS)
	require.Equal(t, map[string]any{"gpu": true, "single_worker": true}, w.Steps[1].ResourceHints, "training holds its worker alone")
	require.Nil(t, w.Steps[0].ResourceHints)
}
