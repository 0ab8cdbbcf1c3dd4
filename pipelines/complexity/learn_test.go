package complexity

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/ml"
)

// These tests check the learning problem itself, without a database: the generated labels
// follow the documented function, and the seed network learns it far better than the mean.

func TestGeneratedLabelsFollowTheHiddenFunction(t *testing.T) {
	t.Parallel()
	recs := Generate(GenerateOptions{Rows: 20000, Days: 10, Now: time.Unix(1e9, 0), Unlabelled: 0.1, Seed: 3})
	var unlabelled int
	var sse, sum, sumSq float64
	var n int
	for _, r := range recs {
		if r.ObservedComplexity < 0 {
			unlabelled++
			continue
		}
		d := r.ObservedComplexity - HiddenComplexity(r.TaskType, r.ContextLength, r.OutputTokens, r.UsesTools, r.UsesVision)
		sse += d * d
		sum += r.ObservedComplexity
		sumSq += r.ObservedComplexity * r.ObservedComplexity
		n++
	}
	require.InDelta(t, 0.1, float64(unlabelled)/float64(len(recs)), 0.01)
	noise := math.Sqrt(sse / float64(n))
	require.InDelta(t, LabelNoise, noise, 0.005, "label noise is the documented sigma (less a little for clamping)")
	variance := sumSq/float64(n) - (sum/float64(n))*(sum/float64(n))
	require.Greater(t, variance, 0.04, "labels spread over [0, 1], so the mean is a poor predictor")
	t.Logf("label sd %.4f, noise sd %.4f", math.Sqrt(variance), noise)

	again := Generate(GenerateOptions{Rows: 20000, Days: 10, Now: time.Unix(1e9, 0), Unlabelled: 0.1, Seed: 3})
	require.Equal(t, recs, again, "the same options give the same records")
}

func TestSeedNetworkBeatsTheBaseline(t *testing.T) {
	t.Parallel()
	recs := Generate(GenerateOptions{Rows: 3000, Days: 10, Now: time.Unix(1e9, 0), Seed: 5})
	trainIdx, heldIdx := ml.Split(len(recs), 0.2, 1)
	train, held := pick(recs, trainIdx), pick(recs, heldIdx)
	spec := FitSpec(train, []string{"chat", "classification", "code_generation", "extraction", "reasoning", "summarization", "translation"})
	x := withTarget(spec.Encode(train), train)
	d := x.Cols - 1
	prm := DefaultParams()
	prm.Epochs = 30
	start := time.Now()
	model, stats, err := ml.NewTrainer(nil).Train(context.Background(), trainConfig(d, prm), x.Columns(0, d), x.Columns(d, d+1), nil)
	require.NoError(t, err)
	hx := spec.Encode(held)
	pred, err := predict(model, hx.Columns(0, hx.Cols))
	require.NoError(t, err)
	truth := make([]float64, len(held))
	var mean float64
	for _, r := range train {
		mean += r.ObservedComplexity / float64(len(train))
	}
	base := make([]float64, len(held))
	for i, r := range held {
		truth[i], base[i] = r.ObservedComplexity, mean
	}
	got := ml.RegressionMetrics(pred, truth, 0.1)
	baseline := ml.RegressionMetrics(base, truth, 0.1)
	t.Logf("model %+v, baseline %+v, %d samples/s, %s", got, baseline, int(stats.SamplesPerSec), time.Since(start))
	require.Less(t, got.MSE, baseline.MSE/5)
	require.Greater(t, got.R2, 0.8)
	require.Greater(t, got.Accuracy, baseline.Accuracy+0.3)
}
