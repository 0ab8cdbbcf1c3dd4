package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

func TestProbeBranchTakesTheBranchItsInputNamesInEitherMode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "w1"})
	for _, mode := range []string{"workflow", "legacy"} {
		for size, want := range map[string]string{"big": `{"finish": {"path": "big"}}`, "small": `{"finish": {"path": "small"}}`, "medium": `{}`} {
			run := b.StartMode(t, probe.Branch, mode, fmt.Sprintf(`{"size": %q}`, size))
			r := b.Wait(t, run, time.Minute)
			require.Equal(t, "succeeded", r.Status, "%s %s: %s", mode, size, r.Error)
			jsonEq(t, want, r.Output)
		}
	}
	require.Equal(t, 1, b.Count(t, `SELECT count(*) FROM qflow.step_runs sr JOIN qflow.runs r ON r.id = sr.run_id
	                                 WHERE r.input ->> 'size' = 'medium' AND sr.step = 'finish' AND sr.status = 'skipped'`))
}
