package chaos_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/chaos"
	"github.com/quantumflow/qflow/pipelines/probe"
)

// TestChaosShort is `qflow-chaos -short`: real worker processes on a private Postgres
// cluster behind toxiproxy, every kind of fault but the slower network ones, every invariant.
func TestChaosShort(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a Postgres cluster and worker processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var log strings.Builder
	report, err := chaos.Run(ctx, chaos.Config{Short: true, ServerURL: os.Getenv("QFLOW_CHAOS_SERVER_URL"), Log: &log})
	require.NoError(t, err, log.String())
	var out strings.Builder
	report.Write(&out)
	t.Log("\n" + out.String())
	require.True(t, report.OK(), "%s\n%s", out.String(), log.String())
	require.Positive(t, report.Runs)
	for _, kind := range []string{chaos.FaultKill, chaos.FaultTerm, chaos.FaultTerminate, chaos.FaultDuplicate, chaos.FaultLate, chaos.FaultPanic,
		chaos.FaultLimitData, chaos.FaultBlackHole, chaos.FaultReset} {
		require.Positive(t, report.Faults[kind], "no %s fault happened", kind)
	}
	require.Positive(t, report.BlackHoleFirstRetry, "a worker starting under a black hole logged no retry")
	for _, wf := range []string{probe.Map, probe.Branch} {
		require.Positive(t, report.ByWorkflow[wf]["succeeded"], "no %s run succeeded", wf)
	}
	require.Positive(t, report.Elements, "no map step had elements")
}
