package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStatusShowsTheRunningStepsProgress(t *testing.T) {
	t.Parallel()
	var doc runStatusDoc
	require.NoError(t, json.Unmarshal([]byte(`{"id": 7, "workflow": "complexity_training", "version": 1, "mode": "workflow",
	    "status": "running", "steps": [
	      {"step": "feature_engineering", "status": "succeeded", "worker_class": "cpu", "attempt": 1, "max_attempts": 4},
	      {"step": "model_training", "status": "running", "worker_class": "gpu", "attempt": 2, "max_attempts": 4,
	       "progress": {"done": 12, "total": 48, "unit": "epoch", "metrics": {"loss": 0.01234}, "eta_ms": 81000}}]}`), &doc))

	var table strings.Builder
	printStatus(&table, doc)
	require.Contains(t, table.String(), "[########......................] epoch 12/48 (25%) · loss 0.01234 · ETA 1m21s")
	require.Contains(t, doc.progressLine(), "model_training:running(epoch 12/48 (25%)")
	require.Equal(t, 81*time.Second, doc.Steps[1].Progress.ETA)
	require.Nil(t, doc.Steps[0].Progress)
}
