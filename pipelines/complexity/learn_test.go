package complexity

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines/ml"
)

// These tests check the learning problem itself, without a database: the generated labels
// follow the documented function and noise, the ceiling is what that noise leaves, and the
// seed network, seeing only what is known when a task is submitted, comes close to it.

// generated makes labelled records with the ids a database would give them.
func generated(rows int, seed uint64) []Record {
	recs := Generate(GenerateOptions{Rows: rows, Days: 10, Now: time.Unix(1e9, 0), Seed: seed})
	for i := range recs {
		recs[i].ID = int64(i + 1)
	}
	return recs
}

func TestGeneratedLabelsFollowTheHiddenFunctionAndItsCeiling(t *testing.T) {
	t.Parallel()
	recs := Generate(GenerateOptions{Rows: 20000, Days: 10, Now: time.Unix(1e9, 0), Unlabelled: 0.1, Seed: 3})
	var labelled []Record
	var sse, sum, sumSq float64
	for _, r := range recs {
		if r.ObservedComplexity < 0 {
			continue
		}
		labelled = append(labelled, r)
		// The best prediction of a clamped label is its mean, not the hidden value itself.
		mean, _ := clampedMoments(HiddenComplexity(r.Task), LabelNoise)
		d := r.ObservedComplexity - mean
		sse += d * d
		sum += r.ObservedComplexity
		sumSq += r.ObservedComplexity * r.ObservedComplexity
	}
	n := float64(len(labelled))
	require.InDelta(t, 0.9, n/float64(len(recs)), 0.01, "a tenth unlabelled")
	ceiling := Ceiling(labelled)
	t.Logf("ceiling %.6f (σ² %.6f), the best predictor's MSE on these labels %.6f", ceiling, LabelNoise*LabelNoise, sse/n)
	require.InEpsilon(t, ceiling, sse/n, 0.05, "the labels' spread around their means is the ceiling")
	require.Less(t, ceiling, LabelNoise*LabelNoise, "clamping at 0 and 1 shrinks the noise of extreme labels")
	variance := sumSq/n - (sum/n)*(sum/n)
	require.Greater(t, variance, 0.04, "labels spread over [0, 1], so the mean is a poor predictor")
	t.Logf("label sd %.4f", math.Sqrt(variance))

	again := Generate(GenerateOptions{Rows: 20000, Days: 10, Now: time.Unix(1e9, 0), Unlabelled: 0.1, Seed: 3})
	require.Equal(t, recs, again, "the same options give the same records")
}

func TestLabelVarianceIsThatOfTheClampedNoise(t *testing.T) {
	t.Parallel()
	σ2 := LabelNoise * LabelNoise
	require.InEpsilon(t, σ2, LabelVariance(0.5), 1e-9, "far from the bounds clamping does nothing")
	// At a bound half the mass sits on it: Var = σ²(1/2 - 1/(2π)).
	require.InEpsilon(t, σ2*(0.5-1/(2*math.Pi)), LabelVariance(0), 1e-9)
	require.InEpsilon(t, LabelVariance(0.03), LabelVariance(0.97), 1e-9, "symmetric about 1/2")

	// Against draws of the clamped noise itself.
	r := ml.Rand(9, 1)
	for _, c := range []float64{0.01, 0.05, 0.5} {
		var s, s2 float64
		const draws = 200000
		for i := 0; i < draws; i++ {
			y := clamp01(c + LabelNoise*r.NormFloat64())
			s += y
			s2 += y * y
		}
		mean, second := clampedMoments(c, LabelNoise)
		require.InDelta(t, s/draws, mean, 3e-4, "mean at %v", c)
		require.InEpsilon(t, s2/draws-(s/draws)*(s/draws), second-mean*mean, 0.02, "variance at %v", c)
	}
}

func TestSeedNetworkOnSubmissionFeaturesComesCloseToTheCeiling(t *testing.T) {
	t.Parallel()
	// The demo's size: with much less data the network overfits the noise sooner (its
	// validation loss turns up within the 50 epochs) and ends further from the ceiling.
	recs := generated(20000, 5)
	h := ml.NewHoldout("ml.task_executions.id", 0.2)
	var parts [3][]Record
	for _, r := range recs {
		parts[h.PartOf(holdoutKey(r.ID))] = append(parts[h.PartOf(holdoutKey(r.ID))], r)
	}
	train, val, held := parts[ml.Train], parts[ml.Validate], parts[ml.HeldOut]
	spec := FitSpec(tasksOf(train), []string{"chat", "classification", "code_generation", "extraction", "reasoning", "summarization", "translation"})
	x, v := withTarget(spec.Encode(tasksOf(train)), train), withTarget(spec.Encode(tasksOf(val)), val)
	d := x.Cols - 1
	prm := DefaultParams()
	cfg := trainConfig(d, prm.runConfig())
	cfg.Validation, cfg.KeepBest = kernels.Data{X: v.Columns(0, d), Y: v.Columns(d, d+1)}, true
	model, stats, err := ml.NewTrainer(nil).Train(context.Background(), cfg, x.Columns(0, d), x.Columns(d, d+1), nil)
	require.NoError(t, err)
	require.Len(t, stats.Curve.Train, prm.Epochs)
	require.Len(t, stats.Curve.Validation, prm.Epochs)
	require.Positive(t, stats.Curve.BestEpoch, "the weights of the epoch of the lowest validation loss")
	for _, v := range stats.Curve.Validation {
		require.GreaterOrEqual(t, v, stats.Curve.Validation[stats.Curve.BestEpoch-1])
	}

	hx := spec.Encode(tasksOf(held))
	pred, err := predict(model, hx.Columns(0, hx.Cols))
	require.NoError(t, err)
	truth := withTarget(hx, held).Column(d)
	got := ml.RegressionMetrics(pred, truth, accuracyTolerance)
	ceiling := Ceiling(held)
	t.Logf("%d train, %d validation, %d held out: MSE %s, R² %s; ceiling %.6f; validation loss %.6f",
		len(train), len(val), len(held), got.MSE.Format("%.6f"), got.R2.Format("%.4f"), ceiling, stats.FinalValidationLoss)
	require.Less(t, got.MSE.Value, 1.1*ceiling, "within 10% of the best possible")
	require.Greater(t, got.MSE.Hi, ceiling, "no model beats the noise: the ceiling is not misstated")
	require.Greater(t, got.R2.Value, 0.95)
	require.InEpsilon(t, got.MSE.Value, stats.FinalValidationLoss, 0.25, "validation and held-out rows are alike")
}
