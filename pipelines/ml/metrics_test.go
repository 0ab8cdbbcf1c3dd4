package ml

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRegressionMetrics(t *testing.T) {
	t.Parallel()
	truth := []float64{0.1, 0.3, 0.5, 0.9}
	// Errors 0, 0.05, -0.2, -0.15: two within 0.1.
	got := RegressionMetrics([]float64{0.1, 0.35, 0.3, 0.75}, truth, 0.1)
	require.InDelta(t, (0+0.0025+0.04+0.0225)/4, got.MSE.Value, 1e-12)
	require.InDelta(t, 0.5, got.Accuracy.Value, 1e-12)
	// mean 0.45; SST = 0.1225+0.0225+0.0025+0.2025 = 0.35
	require.InDelta(t, 1-0.065/0.35, got.R2.Value, 1e-12)
	// Four rows: resamples range from all-exact (MSE 0) to all the worst row (0.04).
	require.Less(t, got.MSE.Lo, got.MSE.Value)
	require.Greater(t, got.MSE.Hi, got.MSE.Value)
	require.GreaterOrEqual(t, got.MSE.Lo, 0.0)
	require.LessOrEqual(t, got.MSE.Hi, 0.04)

	mean := RegressionMetrics([]float64{0.45, 0.45, 0.45, 0.45}, truth, 0.1)
	require.InDelta(t, 0, mean.R2.Value, 1e-12, "predicting the mean scores R² 0")
	require.Equal(t, Regression{}, RegressionMetrics(nil, nil, 0.1))
}

func TestBootstrapIntervalsCoverTheTruthAsOftenAsTheyClaim(t *testing.T) {
	t.Parallel()
	// The mean of 200 draws of N(0, 1), many times over: its 95% interval should hold 0 about
	// 95 times in 100 (the percentile bootstrap runs a little narrow on small samples).
	r := Rand(1, 2)
	covered, width := 0, 0.0
	const trials = 200
	x := make([]float64, 200)
	for trial := 0; trial < trials; trial++ {
		for i := range x {
			x[i] = r.NormFloat64()
		}
		e := Bootstrap(len(x), func(idx []int) []float64 {
			var s float64
			for _, i := range idx {
				s += x[i]
			}
			return []float64{s / float64(len(idx))}
		})[0]
		if e.Lo <= 0 && 0 <= e.Hi {
			covered++
		}
		width += (e.Hi - e.Lo) / trials
	}
	require.InDelta(t, 0.95, float64(covered)/trials, 0.04)
	require.InDelta(t, 2*1.96/math.Sqrt(200), width, 0.01, "about ±1.96 standard errors")

	// The same rows give the same interval; NaNs of some resamples are left out.
	nan := func(idx []int) []float64 {
		if idx[0] == 0 {
			return []float64{math.NaN()}
		}
		return []float64{float64(idx[0])}
	}
	a, b := Bootstrap(10, nan), Bootstrap(10, nan)
	require.Equal(t, a[0].Lo, b[0].Lo)
	require.Equal(t, a[0].Hi, b[0].Hi)
	require.True(t, math.IsNaN(a[0].Value), "the value over all rows starts at row 0")
	require.Equal(t, 1.0, a[0].Lo)
	require.Equal(t, 9.0, a[0].Hi)
}

func TestEstimatesReadOldBareNumbers(t *testing.T) {
	t.Parallel()
	var e Estimate
	require.NoError(t, json.Unmarshal([]byte(`0.25`), &e))
	require.False(t, e.HasInterval())
	require.Equal(t, "0.250 (no interval)", e.Format("%.3f"))
	require.NoError(t, json.Unmarshal([]byte(`{"value": 0.25, "lo": 0.2, "hi": 0.3}`), &e))
	require.True(t, e.HasInterval())
	require.Equal(t, "0.250 [0.200, 0.300]", e.Format("%.3f"))
	raw, err := json.Marshal(e)
	require.NoError(t, err)
	require.JSONEq(t, `{"value": 0.25, "lo": 0.2, "hi": 0.3}`, string(raw))
}

func TestClassificationMetrics(t *testing.T) {
	t.Parallel()
	truth := []int{0, 0, 0, 1, 1, 2}
	pred := []int{0, 0, 1, 1, 2, 2}
	got := ClassificationMetrics(pred, truth, []string{"a", "b", "c", "d"})
	require.InDelta(t, 4.0/6, got.Accuracy.Value, 1e-12)
	require.Equal(t, [][]int{{2, 1, 0, 0}, {0, 1, 1, 0}, {0, 0, 1, 0}, {0, 0, 0, 0}}, got.Confusion)
	// F1: class 0 p=1 r=2/3 → 0.8; class 1 p=1/2 r=1/2 → 0.5; class 2 p=1/2 r=1 → 2/3;
	// class 3 never occurs and is left out.
	require.InDelta(t, (0.8+0.5+2.0/3)/3, got.MacroF1.Value, 1e-12)
	require.InDelta(t, got.MacroF1.Value, MacroF1(pred, truth, 4, []int{0, 1, 2, 3, 4, 5}), 1e-12)
	// Every class is too small to evaluate on its own: reported, not dropped.
	require.Len(t, got.Classes, 4)
	require.Equal(t, ClassScore{Class: "a", Support: 3, Predicted: 2, TooSmall: true}, got.Classes[0])
	require.Equal(t, ClassScore{Class: "d", TooSmall: true}, got.Classes[3])

	majority := ClassificationMetrics([]int{0, 0, 0, 0, 0, 0}, truth, []string{"a", "b", "c", "d"})
	require.InDelta(t, 0.5, majority.Accuracy.Value, 1e-12)
	require.InDelta(t, (2*0.5*1/(0.5+1))/3, majority.MacroF1.Value, 1e-12, "classes never predicted count as F1 0")
	require.Equal(t, Classification{Accuracy: majority.Accuracy, MacroF1: majority.MacroF1}, majority.Headline())
}

func TestClassesWithEnoughRowsGetTheirOwnIntervals(t *testing.T) {
	t.Parallel()
	// 40 rows of a (36 right), 10 of b (5 right), 3 of c (never right).
	var truth, pred []int
	add := func(class, n, right, wrongAs int) {
		for i := 0; i < n; i++ {
			truth = append(truth, class)
			if i < right {
				pred = append(pred, class)
			} else {
				pred = append(pred, wrongAs)
			}
		}
	}
	add(0, 40, 36, 1)
	add(1, 10, 5, 0)
	add(2, 3, 0, 0)
	got := ClassificationMetrics(pred, truth, []string{"a", "b", "c"})
	a, b, c := got.Classes[0], got.Classes[1], got.Classes[2]
	require.False(t, a.TooSmall)
	require.InDelta(t, 36.0/44, a.Precision.Value, 1e-12)
	require.InDelta(t, 36.0/40, a.Recall.Value, 1e-12)
	require.False(t, b.TooSmall)
	require.InDelta(t, 5.0/9, b.Precision.Value, 1e-12)
	require.Less(t, b.F1.Lo, b.F1.Value)
	require.Greater(t, b.F1.Hi-b.F1.Lo, a.F1.Hi-a.F1.Lo, "the smaller class is known less well")
	require.True(t, c.TooSmall)
	require.Nil(t, c.F1)
	require.Equal(t, 3, c.Support)
}

func TestSampleSpreadsOverTheRows(t *testing.T) {
	t.Parallel()
	pred, truth := make([]float64, 1000), make([]float64, 1000)
	for i := range truth {
		pred[i], truth[i] = float64(i), float64(-i)
	}
	s := SampleOf(pred, truth)
	require.Len(t, s.Predicted, SampleSize)
	require.Equal(t, 0.0, s.Predicted[0])
	require.Equal(t, 997.0, s.Predicted[SampleSize-1])
	for i := range s.Actual {
		require.Equal(t, -s.Predicted[i], s.Actual[i], "pairs stay pairs")
	}
	require.Len(t, SampleOf(pred[:10], truth[:10]).Actual, 10)
}

func TestArgmax(t *testing.T) {
	t.Parallel()
	labels, conf := Argmax([]float32{0.1, 0.7, 0.2, 0.5, 0.5, 0}, 3)
	require.Equal(t, []int{1, 0}, labels, "the first of equals")
	require.InDeltaSlice(t, []float64{0.7, 0.5}, conf, 1e-6)
}
