package worker_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/worker"
)

func TestTheWorkersRowShowsTheLiveProcess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// A row left by an earlier process with the same id, on another host.
	b.Exec(t, `INSERT INTO qflow.workers (id, host, pid, classes, started_at, last_seen_at)
	            VALUES ('same-id', 'old-host', 1, '{cpu}', now() - interval '1 day', now() - interval '1 day')`)
	b.StartWorker(t, worker.Config{ID: "same-id"})
	host, _ := os.Hostname()
	require.Equal(t, 1, b.Count(t, `SELECT count(*) FROM qflow.workers WHERE id = 'same-id' AND host = $1 AND pid = $2
	                                 AND started_at > now() - interval '1 minute'`, host, os.Getpid()))
}
