package ml_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/ml"
)

type demoParams struct {
	Epochs int     `json:"epochs"`
	Share  float64 `json:"share"`
}

func demoParamsOf(input string) (demoParams, error) {
	return ml.DecodeParams(pipelines.Input{Run: json.RawMessage(input)}, demoParams{Epochs: 50, Share: 0.2}, func(p demoParams, check ml.Check) {
		check(p.Epochs >= 1, "epochs must be at least 1, got %d", p.Epochs)
		check(p.Share > 0 && p.Share <= 0.5, "share must be in (0, 0.5], got %v", p.Share)
	})
}

func TestDecodeParamsReportsEveryBrokenRuleAtOnce(t *testing.T) {
	t.Parallel()
	p, err := demoParamsOf(`{"epochs": 3}`)
	require.NoError(t, err)
	require.Equal(t, demoParams{Epochs: 3, Share: 0.2}, p, "unset fields keep their defaults")

	p, err = demoParamsOf(``)
	require.NoError(t, err)
	require.Equal(t, demoParams{Epochs: 50, Share: 0.2}, p, "no input is all defaults")

	_, err = demoParamsOf(`{"epochs": 0, "share": 0.9}`)
	require.EqualError(t, err, "run input: epochs must be at least 1, got 0\nshare must be in (0, 0.5], got 0.9")
	require.True(t, pipelines.IsPermanent(err), "no retry makes an input valid")

	_, err = demoParamsOf(`{"epoch": 3}`)
	require.ErrorContains(t, err, `run input: json: unknown field "epoch"`)
	require.True(t, pipelines.IsPermanent(err))
}
