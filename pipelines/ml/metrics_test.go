package ml

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegressionMetrics(t *testing.T) {
	t.Parallel()
	truth := []float64{0.1, 0.3, 0.5, 0.9}
	// Errors 0, 0.05, -0.2, -0.15: two within 0.1.
	got := RegressionMetrics([]float64{0.1, 0.35, 0.3, 0.75}, truth, 0.1)
	require.InDelta(t, (0+0.0025+0.04+0.0225)/4, got.MSE, 1e-12)
	require.InDelta(t, 0.5, got.Accuracy, 1e-12)
	// mean 0.45; SST = 0.1225+0.0225+0.0025+0.2025 = 0.35
	require.InDelta(t, 1-0.065/0.35, got.R2, 1e-12)

	mean := RegressionMetrics([]float64{0.45, 0.45, 0.45, 0.45}, truth, 0.1)
	require.InDelta(t, 0, mean.R2, 1e-12, "predicting the mean scores R² 0")
	require.Equal(t, Regression{}, RegressionMetrics(nil, nil, 0.1))
}

func TestClassificationMetrics(t *testing.T) {
	t.Parallel()
	truth := []int{0, 0, 0, 1, 1, 2}
	pred := []int{0, 0, 1, 1, 2, 2}
	got := ClassificationMetrics(pred, truth, 4)
	require.InDelta(t, 4.0/6, got.Accuracy, 1e-12)
	require.Equal(t, [][]int{{2, 1, 0, 0}, {0, 1, 1, 0}, {0, 0, 1, 0}, {0, 0, 0, 0}}, got.Confusion)
	// F1: class 0 p=1 r=2/3 → 0.8; class 1 p=1/2 r=1/2 → 0.5; class 2 p=1/2 r=1 → 2/3;
	// class 3 never occurs and is left out.
	require.InDelta(t, (0.8+0.5+2.0/3)/3, got.MacroF1, 1e-12)

	majority := ClassificationMetrics([]int{0, 0, 0, 0, 0, 0}, truth, 4)
	require.InDelta(t, 0.5, majority.Accuracy, 1e-12)
	require.InDelta(t, (2*0.5*1/(0.5+1))/3, majority.MacroF1, 1e-12, "classes never predicted count as F1 0")
}

func TestArgmax(t *testing.T) {
	t.Parallel()
	labels, conf := Argmax([]float32{0.1, 0.7, 0.2, 0.5, 0.5, 0}, 3)
	require.Equal(t, []int{1, 0}, labels, "the first of equals")
	require.InDeltaSlice(t, []float64{0.7, 0.5}, conf, 1e-6)
}

func TestSplitsAreSeededAndDisjoint(t *testing.T) {
	t.Parallel()
	train, held := Split(1000, 0.2, 42)
	require.Len(t, held, 200)
	require.Len(t, train, 800)
	seen := map[int]bool{}
	for _, i := range append(append([]int(nil), train...), held...) {
		require.False(t, seen[i])
		seen[i] = true
	}
	require.Len(t, seen, 1000)
	t2, h2 := Split(1000, 0.2, 42)
	require.Equal(t, held, h2)
	require.Equal(t, train, t2)
	_, h3 := Split(1000, 0.2, 43)
	require.NotEqual(t, held, h3, "another seed, another split")

	_, held = Split(2, 0.01, 1)
	require.Len(t, held, 1, "at least one row on each side")

	labels := []int{0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2}
	train, held = StratifiedSplit(labels, 0.25, 7)
	count := func(idx []int, l int) int {
		n := 0
		for _, i := range idx {
			if labels[i] == l {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, count(held, 0))
	require.Equal(t, 2, count(held, 1))
	require.Equal(t, 0, count(held, 2), "a class of one trains")
	require.Len(t, train, len(labels)-len(held))
}
