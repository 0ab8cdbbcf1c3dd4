package ml_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/ml"
)

// mseRule is a rule in MSE, lower winning, whose active model scores score on this run's
// held-out data, or cannot be scored there when usable is false.
func mseRule(score float64, usable bool, scoreErr error) ml.Rule[float64] {
	return ml.Rule[float64]{
		Beats: func(a, b float64) bool { return a < b },
		Score: func(*ml.StoredModel) (float64, bool, error) { return score, usable, scoreErr },
		Deployed: func(metrics json.RawMessage) (float64, error) {
			return strconv.ParseFloat(string(metrics), 64)
		},
		HeldOut: "records", Own: "MSE",
		Below: func(m, b float64) string { return fmt.Sprintf("%g does not beat baseline %g", m, b) },
		First: func(m, b float64) string { return fmt.Sprintf("first: %g beats baseline %g", m, b) },
		Versus: func(m, a float64, verdict string, v int32, how string) string {
			return fmt.Sprintf("%g %s v%d's %g (%s)", m, verdict, v, a, how)
		},
	}
}

func TestRuleActivatesOnlyWhatBeatsTheBaselineAndTheActiveModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	active := &ml.StoredModel{ID: 7, Version: 3, Metrics: json.RawMessage(`0.4`)}
	type decision struct {
		activate bool
		reason   string
	}
	judge := func(r ml.Rule[float64], candidate, baseline float64, active *ml.StoredModel) decision {
		t.Helper()
		ok, reason, err := r.Judge(candidate, baseline)(ctx, active)
		require.NoError(t, err)
		return decision{ok, reason}
	}

	// The baseline first: losing to it loses, whatever is active.
	require.Equal(t, decision{false, "0.5 does not beat baseline 0.5"}, judge(mseRule(0.9, true, nil), 0.5, 0.5, active))
	require.Equal(t, decision{false, "0.6 does not beat baseline 0.5"}, judge(mseRule(0.9, true, nil), 0.6, 0.5, nil))
	// Then the first model of a name wins.
	require.Equal(t, decision{true, "first: 0.1 beats baseline 0.5"}, judge(mseRule(0, true, nil), 0.1, 0.5, nil))
	// Then the active model, scored on this run's held-out data: a tie keeps it.
	require.Equal(t, decision{true, "0.1 beats v3's 0.2 (both scored on this run's held-out records)"}, judge(mseRule(0.2, true, nil), 0.1, 0.5, active))
	require.Equal(t, decision{false, "0.2 does not beat v3's 0.2 (both scored on this run's held-out records)"}, judge(mseRule(0.2, true, nil), 0.2, 0.5, active))
	// Or, when its features cannot be applied, the score it was deployed with.
	require.Equal(t, decision{true, "0.3 beats v3's 0.4 (active model's features differ; its own held-out MSE)"}, judge(mseRule(0, false, nil), 0.3, 0.5, active))
	require.Equal(t, decision{false, "0.45 does not beat v3's 0.4 (active model's features differ; its own held-out MSE)"}, judge(mseRule(0, false, nil), 0.45, 0.5, active))
}

func TestRuleFailsWhenTheActiveModelCannotBeScored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boom := errors.New("boom")
	_, _, err := mseRule(0, true, boom).Judge(0.1, 0.5)(ctx, &ml.StoredModel{Version: 2})
	require.ErrorIs(t, err, boom)
	require.EqualError(t, err, "scoring active model v2: boom")

	_, _, err = mseRule(0, false, nil).Judge(0.1, 0.5)(ctx, &ml.StoredModel{Version: 4, Metrics: json.RawMessage(`"x"`)})
	require.ErrorContains(t, err, "active model v4 has neither a usable feature spec nor metrics: ")
}
