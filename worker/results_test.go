package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/worker"
)

// A result that the database does not take, however long (a black hole, a lock, a restart),
// is sent again until it is recorded: given up, it would leave its step running with nobody
// running it until the lease (minutes for a training step), or have the handler run again.
// The result's run is locked for longer than two calls' deadlines, as a partition that
// swallows the calls would hold them.
func TestAResultIsSentAgainUntilTheDatabaseTakesItHoweverLong(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	done, recordNow := make(chan struct{}), make(chan struct{})
	b.add(t, "training", map[string][]string{"a": nil}, func(w *pipelines.Workflow) {
		w.Steps[0].TimeoutMS = 600_000
		w.Steps[0].Handler = func(ctx context.Context, in pipelines.Input) (any, error) {
			if runs.Add(1) == 1 {
				close(done)
				<-recordNow
			}
			return map[string]int{"value": 1}, nil
		}
	})
	b.StartWorker(t, worker.Config{ID: "w1", MaxWorkers: 1})

	run := b.Start(t, "training", `{}`)
	<-done
	tx, err := b.Pool.Begin(b.Ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.WithoutCancel(b.Ctx))
	_, err = tx.Exec(b.Ctx, "SELECT 1 FROM qflow.runs WHERE id = $1 FOR UPDATE", run)
	require.NoError(t, err)
	close(recordNow)
	time.Sleep(32 * time.Second)
	require.NoError(t, tx.Rollback(b.Ctx))

	require.Equal(t, "succeeded", b.Wait(t, run, time.Minute).Status)
	require.Equal(t, int32(1), runs.Load(), "the handler ran again")
	attempts := b.attempts(t, run, "a")
	require.Len(t, attempts, 1)
	require.Equal(t, "succeeded", attempts[0].Status)
}
