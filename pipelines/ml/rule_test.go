package ml_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/ml"
)

// ruleBundle is a candidate's holdout of 400 rows with a known truth, and predictions of it.
type ruleBundle struct {
	holdout ml.Holdout
	keys    []string
	truth   []float64
	// asked records the rows the active model was asked to predict.
	asked []int
}

func setupRule(t *testing.T) *ruleBundle {
	t.Helper()
	b := &ruleBundle{holdout: ml.NewHoldout("id", 0.2)}
	r := ml.Rand(4, 4)
	for id := 1; len(b.keys) < 400; id++ {
		if key := strconv.Itoa(id); b.holdout.Contains(key) {
			b.keys = append(b.keys, key)
			b.truth = append(b.truth, r.Float64())
		}
	}
	return b
}

// noisy is the truth plus Gaussian noise of sd sigma, drawn from seed.
func (b *ruleBundle) noisy(sigma float64, seed uint64) []float64 {
	r := ml.Rand(seed, 5)
	out := make([]float64, len(b.truth))
	for i, y := range b.truth {
		out[i] = y + sigma*r.NormFloat64()
	}
	return out
}

func (b *ruleBundle) constant(v float64) []float64 {
	out := make([]float64, len(b.truth))
	for i := range out {
		out[i] = v
	}
	return out
}

// rule is an MSE rule whose active model predicts active (for the rows asked), or fails with err.
func (b *ruleBundle) rule(active []float64, err error) ml.Rule[float64] {
	return ml.Rule[float64]{
		Metric:  "MSE",
		Score:   func(pred []float64, idx []int) float64 { return ml.MSE(pred, b.truth, idx) },
		Gain:    func(c, o float64) float64 { return (o - c) / o },
		MinGain: 0.02, Relative: true, Digits: 4, Holdout: b.holdout, Keys: b.keys, Unit: "records",
		Active: func(_ *ml.StoredModel, idx []int) ([]float64, error) {
			b.asked = idx
			if err != nil {
				return nil, err
			}
			out := make([]float64, len(idx))
			for j, i := range idx {
				out[j] = active[i]
			}
			return out, nil
		},
	}
}

func (b *ruleBundle) judge(t *testing.T, r ml.Rule[float64], candidate []float64, active *ml.StoredModel) ml.Decision {
	t.Helper()
	d, err := r.Judge(candidate, b.constant(0.5))(context.Background(), active)
	require.NoError(t, err)
	return d
}

func activeV(version int32, h *ml.Holdout) *ml.StoredModel {
	return &ml.StoredModel{Version: version, Holdout: h}
}

func TestAnEqualCandidateStaysAndAClearlyBetterOneReplaces(t *testing.T) {
	t.Parallel()
	b := setupRule(t)
	champion := b.noisy(0.10, 1)
	active := activeV(3, &b.holdout)

	equal := b.judge(t, b.rule(champion, nil), champion, active)
	require.False(t, equal.Activated)
	require.True(t, equal.Baseline.Wins)
	require.Equal(t, ml.Estimate{}, equal.Active.Gain, "the same predictions gain nothing on every resample")
	require.Equal(t, 400, equal.Active.Rows)
	require.Regexp(t, `^does not beat active v3 by more than \+2\.0%: MSE 0\.\d{4} \[0\.\d{4}, 0\.\d{4}\] vs 0\.\d{4} \[.*\] on 400 held-out records neither trained on, gain \+0\.0% \[\+0\.0%, \+0\.0%\]$`, equal.Reason)

	better := b.judge(t, b.rule(champion, nil), b.noisy(0.05, 2), active)
	require.True(t, better.Activated)
	require.Greater(t, better.Active.Gain.Lo, 0.5, "a quarter of the MSE")
	require.Contains(t, better.Reason, "beats active v3 by more than +2.0%")

	// One per cent better on these rows is within the noise of 400 of them: the interval
	// reaches below the 2% asked, so the champion stays.
	slightly := b.judge(t, b.rule(champion, nil), b.noisy(0.0995, 1), active)
	require.False(t, slightly.Activated)
	require.Greater(t, slightly.Active.Gain.Value, 0.0)
	require.Less(t, slightly.Active.Gain.Lo, 0.02)
}

func TestACandidateMustBeatTheBaselineFirst(t *testing.T) {
	t.Parallel()
	b := setupRule(t)
	worse := b.judge(t, b.rule(nil, nil), b.noisy(0.5, 3), nil)
	require.False(t, worse.Activated)
	require.False(t, worse.Baseline.Wins)
	require.Nil(t, worse.Active)
	require.Contains(t, worse.Reason, "not reliably better than the baseline: MSE ")

	first := b.judge(t, b.rule(nil, nil), b.noisy(0.1, 3), nil)
	require.True(t, first.Activated)
	require.Contains(t, first.Reason, "no active model; beats the baseline: MSE ")
}

func TestTheActiveModelIsScoredOnlyOnRowsItHeldOutToo(t *testing.T) {
	t.Parallel()
	b := setupRule(t)
	narrower := ml.NewHoldout("id", 0.1)
	d := b.judge(t, b.rule(b.noisy(0.1, 1), nil), b.noisy(0.1, 1), activeV(2, &narrower))
	require.NotEmpty(t, b.asked)
	for _, i := range b.asked {
		require.True(t, narrower.Contains(b.keys[i]), "row %s trained the active model", b.keys[i])
	}
	want := 0
	for _, k := range b.keys {
		if narrower.Contains(k) {
			want++
		}
	}
	require.Equal(t, want, d.Active.Rows)
	require.InDelta(t, 200, want, 30, "half of a 0.2 holdout is in the 0.1 one")

	// Too few rows in common: the champion stays.
	tiny := ml.NewHoldout("id", 0.01)
	d = b.judge(t, b.rule(nil, nil), b.noisy(0.01, 1), activeV(2, &tiny))
	require.False(t, d.Activated)
	require.Regexp(t, `^stays a candidate: only \d+ held-out records are unseen by active v2, at least 30 are needed to compare$`, d.Reason)
}

func TestAnActiveModelThatCannotBeComparedIsReplaced(t *testing.T) {
	t.Parallel()
	b := setupRule(t)
	candidate := b.noisy(0.1, 1)

	d := b.judge(t, b.rule(nil, nil), candidate, activeV(1, nil))
	require.True(t, d.Activated)
	require.Contains(t, d.Reason, "replaces active v1, which records no holdout comparable with this one, so any row may have trained it; beats the baseline: ")

	other := ml.NewHoldout("path", 0.2)
	require.True(t, b.judge(t, b.rule(nil, nil), candidate, activeV(1, &other)).Activated)

	cannot := fmt.Errorf("encodes features of version 1 (%w)", ml.ErrCannotScore)
	d = b.judge(t, b.rule(nil, cannot), candidate, activeV(4, &b.holdout))
	require.True(t, d.Activated)
	require.Contains(t, d.Reason, "replaces active v4, which encodes features of version 1 (cannot score today's data); beats the baseline: ")

	// Any other failure to score it fails the deployment, to be retried.
	boom := errors.New("boom")
	_, err := b.rule(nil, boom).Judge(candidate, b.constant(0.5))(context.Background(), activeV(4, &b.holdout))
	require.ErrorIs(t, err, boom)
	require.EqualError(t, err, "scoring active model v4: boom")
}
