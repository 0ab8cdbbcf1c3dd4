package schema_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
	"github.com/quantumflow/qflow/migrations"
)

// adapterProbeArgs are the args of the test's own job kind. River's client decodes what the
// adapter wrote into them, as the worker decodes qflow_step jobs into worker.StepArgs; a kind
// and queue of the test's own keep qflow's workers out of the picture.
type adapterProbeArgs struct {
	Label string `json:"label"`
	N     int    `json:"n"`
}

func (adapterProbeArgs) Kind() string { return "adapter_probe" }

const adapterProbeQueue = "adapter_probe"

// The states a job waits in before it runs: cancelling a step finalizes its job from these.
const waitingStates = "{available,scheduled,retryable,pending}"

// TestRiverAdapter runs River's own client, at the version go.mod links, on jobs written by
// the adapter (qflow.river_insert_jobs, qflow.river_finalize_jobs). The adapter writes
// River's table and channel by hand, so a River upgrade that changes either fails here
// instead of leaving jobs that no worker fetches.
func TestRiverAdapter(t *testing.T) {
	t.Parallel()

	// worked is what the probe worker was handed, as River decoded it.
	type worked struct {
		id          int64
		args        adapterProbeArgs
		attempt     int
		attemptedAt time.Time
		workedAt    time.Time
	}

	type testBundle struct {
		ctx    context.Context
		pool   *pgxpool.Pool
		client *river.Client[pgx.Tx]
		worked chan worked
	}

	// setup builds, but does not start, a River client working adapter_probe jobs on its own
	// queue of a fresh database.
	setup := func(t *testing.T, queue river.QueueConfig) *testBundle {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		b := &testBundle{ctx: ctx, pool: dbtest.Pool(t), worked: make(chan worked, 16)}

		workers := river.NewWorkers()
		river.AddWorker(workers, river.WorkFunc(func(_ context.Context, job *river.Job[adapterProbeArgs]) error {
			b.worked <- worked{id: job.ID, args: job.Args, attempt: job.Attempt, attemptedAt: *job.AttemptedAt, workedAt: time.Now()}
			return nil
		}))
		client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
			// The client's own poll must not be shorter than the queue's: it is the fallback.
			FetchPollInterval: queue.FetchPollInterval,
			// Warnings and errors only: River logs a notification payload it cannot decode.
			Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
			Queues:   map[string]river.QueueConfig{adapterProbeQueue: queue},
			Schema:   migrations.RiverSchema,
			TestOnly: true,
			Workers:  workers,
		})
		require.NoError(t, err)
		b.client = client
		return b
	}

	start := func(t *testing.T, b *testBundle) {
		t.Helper()
		require.NoError(t, b.client.Start(b.ctx))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, b.client.Stop(ctx))
		})
	}

	// insert writes one job per args through the adapter, the way qflow's dispatch does, at
	// scheduledAt when it is set (a NULL element is now) and already running for attemptedBy
	// when that is set. It returns the jobs' ids in the order of args.
	insert := func(t *testing.T, b *testBundle, scheduledAt []*time.Time, attemptedBy string, args ...adapterProbeArgs) []int64 {
		t.Helper()
		docs := make([]string, len(args))
		queues := make([]string, len(args))
		priorities := make([]int16, len(args))
		for i, a := range args {
			doc, err := json.Marshal(a)
			require.NoError(t, err)
			docs[i], queues[i], priorities[i] = string(doc), adapterProbeQueue, 1
		}
		var by *string
		if attemptedBy != "" {
			by = &attemptedBy
		}
		rows, err := b.pool.Query(b.ctx,
			"SELECT id, args FROM qflow.river_insert_jobs('adapter_probe', $1::text[]::jsonb[], $2, $3, $4, $5)",
			docs, queues, priorities, scheduledAt, by)
		require.NoError(t, err)
		defer rows.Close()
		var ids []int64
		for rows.Next() {
			var (
				id  int64
				doc []byte
			)
			require.NoError(t, rows.Scan(&id, &doc))
			require.JSONEq(t, docs[len(ids)], string(doc), "args returned for job %d", id)
			ids = append(ids, id)
		}
		require.NoError(t, rows.Err())
		require.Len(t, ids, len(args))
		return ids
	}

	finalize := func(t *testing.T, b *testBundle, ids []int64, state, from string) int {
		t.Helper()
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT qflow.river_finalize_jobs($1, $2, $3)", ids, state, from).Scan(&n))
		return n
	}

	// waitWorked returns the next job the worker was handed. The limit is a hang check, far
	// above the milliseconds a fetch takes.
	waitWorked := func(t *testing.T, b *testBundle, limit time.Duration) worked {
		t.Helper()
		select {
		case w := <-b.worked:
			return w
		case <-time.After(limit):
			require.FailNow(t, "no job worked", "waited %s", limit)
			return worked{}
		}
	}

	// requireNothingWorked checks that the worker is handed nothing more for a while.
	requireNothingWorked := func(t *testing.T, b *testBundle, wait time.Duration) {
		t.Helper()
		select {
		case w := <-b.worked:
			require.FailNow(t, "unexpected job worked", "job %d %+v", w.id, w.args)
		case <-time.After(wait):
		}
	}

	// waitState waits until River's client reports the job in state: River completes a worked
	// job asynchronously, in batches.
	waitState := func(t *testing.T, b *testBundle, id int64, state rivertype.JobState) *rivertype.JobRow {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			job, err := b.client.JobGet(b.ctx, id)
			require.NoError(t, err)
			if job.State == state {
				return job
			}
			if time.Now().After(deadline) {
				require.FailNow(t, "job not in state", "job %d is %s, not %s", id, job.State, state)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	t.Run("AvailableJobsAreWorkedAndCompletedOnTheInsertNotification", func(t *testing.T) {
		t.Parallel()
		// Polling once a minute: within the few seconds waited below, only the adapter's
		// notification on River's insert channel can make the client fetch.
		b := setup(t, river.QueueConfig{MaxWorkers: 10, FetchPollInterval: time.Minute})
		start(t, b)

		// The primer proves the client's first fetch is behind us (it ran, or was woken to run
		// again), so the jobs after it can only be fetched on their own notification.
		primer := insert(t, b, nil, "", adapterProbeArgs{Label: "primer"})
		require.Equal(t, primer[0], waitWorked(t, b, 5*time.Second).id)
		waitState(t, b, primer[0], rivertype.JobStateCompleted)
		time.Sleep(3 * river.FetchCooldownDefault) // any debounced trailing fetch is spent

		want := map[int64]adapterProbeArgs{}
		args := []adapterProbeArgs{{Label: `"quoted" \ ünïcødé ✓ <&>`, N: 42}, {Label: "second", N: -7}}
		for i, id := range insert(t, b, nil, "", args...) {
			want[id] = args[i]
		}
		got := map[int64]adapterProbeArgs{}
		for range want {
			w := waitWorked(t, b, 5*time.Second)
			require.Equal(t, 1, w.attempt)
			got[w.id] = w.args
		}
		require.Equal(t, want, got)

		for id := range want {
			job := waitState(t, b, id, rivertype.JobStateCompleted)
			require.NotNil(t, job.FinalizedAt)
			require.Equal(t, []string{b.client.ID()}, job.AttemptedBy)
			require.Equal(t, 1, job.Attempt)
			require.Equal(t, 1, job.MaxAttempts, "retries are qflow's: a job gets one River attempt")
			require.Equal(t, adapterProbeQueue, job.Queue)
			require.Equal(t, "adapter_probe", job.Kind)
		}
	})

	t.Run("ScheduledJobIsNotWorkedBeforeItsTime", func(t *testing.T) {
		t.Parallel()
		// A frequent poll: nothing wakes the client when a scheduled time comes, its poll does.
		b := setup(t, river.QueueConfig{MaxWorkers: 10, FetchPollInterval: 100 * time.Millisecond})
		start(t, b)

		// Postgres keeps microseconds.
		at := time.Now().Add(1500 * time.Millisecond).Truncate(time.Microsecond)
		ids := insert(t, b, []*time.Time{nil, &at}, "", adapterProbeArgs{Label: "now"}, adapterProbeArgs{Label: "later"})

		// The job due now runs while the later one waits: the client is fetching meanwhile.
		now := waitWorked(t, b, 5*time.Second)
		require.Equal(t, ids[0], now.id)
		later, err := b.client.JobGet(b.ctx, ids[1])
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateAvailable, later.State)
		require.WithinDuration(t, at, later.ScheduledAt, 0)

		w := waitWorked(t, b, time.Until(at)+5*time.Second)
		require.Equal(t, ids[1], w.id)
		require.False(t, w.workedAt.Before(at), "worked at %s, before %s", w.workedAt, at)
		require.False(t, w.attemptedAt.Before(at), "River attempted it at %s, before %s", w.attemptedAt, at)
		waitState(t, b, ids[1], rivertype.JobStateCompleted)
	})

	t.Run("CancelledJobIsNeverWorked", func(t *testing.T) {
		t.Parallel()
		// One worker: River fetches one job at a time, lowest id first among equals, so the
		// doomed job (inserted first) would be the first worked were it still available.
		b := setup(t, river.QueueConfig{MaxWorkers: 1, FetchPollInterval: 100 * time.Millisecond})
		ids := insert(t, b, nil, "", adapterProbeArgs{Label: "doomed"}, adapterProbeArgs{Label: "witness"})
		require.Equal(t, 1, finalize(t, b, ids[:1], "cancelled", waitingStates))

		start(t, b)
		require.Equal(t, ids[1], waitWorked(t, b, 5*time.Second).id)
		waitState(t, b, ids[1], rivertype.JobStateCompleted)
		requireNothingWorked(t, b, 300*time.Millisecond)

		job, err := b.client.JobGet(b.ctx, ids[0])
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCancelled, job.State)
		require.NotNil(t, job.FinalizedAt)
		require.Zero(t, job.Attempt)
		require.Nil(t, job.AttemptedAt)
	})

	t.Run("JobInsertedRunningIsNotFetched", func(t *testing.T) {
		t.Parallel()
		b := setup(t, river.QueueConfig{MaxWorkers: 10, FetchPollInterval: 100 * time.Millisecond})
		start(t, b)

		running := insert(t, b, nil, "eager-worker", adapterProbeArgs{Label: "eager"})
		// The witness, inserted after it, is fetched: the client has fetched since the
		// running job was written, and passed it over.
		witness := insert(t, b, nil, "", adapterProbeArgs{Label: "witness"})
		require.Equal(t, witness[0], waitWorked(t, b, 5*time.Second).id)
		requireNothingWorked(t, b, 500*time.Millisecond) // several polls

		job, err := b.client.JobGet(b.ctx, running[0])
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateRunning, job.State)
		require.Equal(t, []string{"eager-worker"}, job.AttemptedBy)
		require.Equal(t, 1, job.Attempt)
		require.NotNil(t, job.AttemptedAt)
		require.Nil(t, job.FinalizedAt)
	})

	t.Run("FinalizeCompletesARunningJob", func(t *testing.T) {
		t.Parallel()
		b := setup(t, river.QueueConfig{MaxWorkers: 10, FetchPollInterval: 100 * time.Millisecond})
		start(t, b)

		running := insert(t, b, nil, "eager-worker", adapterProbeArgs{Label: "eager"})
		require.Equal(t, 1, finalize(t, b, running, "completed", "{running}"))

		job, err := b.client.JobGet(b.ctx, running[0])
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, job.State)
		require.NotNil(t, job.FinalizedAt)
		requireNothingWorked(t, b, 200*time.Millisecond)
	})

	t.Run("FinalizeLeavesJobsOutsideFromUnchanged", func(t *testing.T) {
		t.Parallel()
		b := setup(t, river.QueueConfig{MaxWorkers: 10, FetchPollInterval: 100 * time.Millisecond})
		start(t, b)

		running := insert(t, b, nil, "eager-worker", adapterProbeArgs{Label: "eager"})
		done := insert(t, b, nil, "", adapterProbeArgs{Label: "done"})
		require.Equal(t, done[0], waitWorked(t, b, 5*time.Second).id)
		before := waitState(t, b, done[0], rivertype.JobStateCompleted)

		// A running job is not waiting: a late cancel of its step leaves it to its worker.
		require.Zero(t, finalize(t, b, running, "cancelled", waitingStates))
		// A job River completed is final: neither a cancel nor a second completion moves it.
		require.Zero(t, finalize(t, b, done, "cancelled", waitingStates))
		require.Zero(t, finalize(t, b, done, "completed", "{running}"))

		job, err := b.client.JobGet(b.ctx, running[0])
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateRunning, job.State)
		require.Nil(t, job.FinalizedAt)

		after, err := b.client.JobGet(b.ctx, done[0])
		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, after.State)
		require.Equal(t, before.FinalizedAt, after.FinalizedAt)
	})
}
