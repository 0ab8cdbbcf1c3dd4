package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

func TestRiverJobErrorsReachTheLogAtWarnAndItsChatterDoesNot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A legacy run's claim fails for good, so its job returns an error to River, which logs it
	// at INFO.
	b.Exec(t, `CREATE FUNCTION public.refuse_claims() RETURNS trigger LANGUAGE plpgsql AS $$
	           BEGIN
	               RAISE EXCEPTION 'claim refused by the test';
	           END $$`)
	b.Exec(t, `CREATE TRIGGER refuse_claims BEFORE UPDATE ON qflow.runs FOR EACH ROW
	           WHEN (OLD.mode = 'legacy' AND OLD.status = 'pending' AND NEW.status = 'running')
	           EXECUTE FUNCTION public.refuse_claims()`)
	logs := &logBuffer{}
	// The worker's own log takes everything; River's goes through the worker's floor.
	b.StartWorker(t, worker.Config{ID: "w1", Logger: logs.logger()})
	run := b.StartMode(t, probe.Chain, "legacy", `{}`)

	r := logs.waitFor(t, func(r map[string]any) bool {
		e, _ := r["error"].(string)
		return r["job_kind"] == "qflow_legacy" && strings.Contains(e, "claim refused by the test")
	}, time.Minute)
	require.Equal(t, "WARN", r["level"], "raised from River's INFO")
	require.Contains(t, r["error"], "claiming legacy run")
	require.Equal(t, "pending", b.Run(t, run).Status)

	for _, r := range logs.records(t) {
		if r["worker"] == nil { // River's own records carry no worker attribute
			require.NotEqual(t, "INFO", r["level"], "River's routine INFO is kept out: %v", r)
			require.NotEqual(t, "DEBUG", r["level"], "River's DEBUG is kept out: %v", r)
		}
	}
	require.NotContains(t, logs.text(), "River client started")
}
