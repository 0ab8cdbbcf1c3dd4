// The baseline: the five-hop chain a user would write with River alone, each job inserting its
// successor with InsertTx and completing itself with JobCompleteTx in one transaction, the
// same durability an engine step gets. Its hops per second are what the engine is compared to.

package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/quantumflow/qflow/migrations"
)

// chainArgs is one hop of the hand-rolled River chain a user would write without an engine.
type chainArgs struct {
	Chain int64 `json:"chain"`
	Hop   int   `json:"hop"`
}

// Kind is the River job kind of a hop.
func (chainArgs) Kind() string { return "bench_chain_hop" }

// chainWorker runs the hops of the chain.
type chainWorker struct {
	river.WorkerDefaults[chainArgs]
	pool *pgxpool.Pool
}

// Work inserts the next hop (or, after hop 5, the first hop of a new chain, keeping the load
// constant) and completes this job, in one transaction: the same durability a step gets.
func (cw *chainWorker) Work(ctx context.Context, job *river.Job[chainArgs]) error {
	return pgx.BeginFunc(ctx, cw.pool, func(tx pgx.Tx) error {
		client := river.ClientFromContext[pgx.Tx](ctx)
		next := chainArgs{Chain: job.Args.Chain, Hop: job.Args.Hop + 1}
		if next.Hop > 5 {
			next = chainArgs{Chain: job.Args.Chain + 1_000_000, Hop: 1}
		}
		if _, err := client.InsertTx(ctx, tx, next, nil); err != nil {
			return err
		}
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}

// riverChain measures completed hops per second of the River chain with k chains in flight.
func (b *bench) riverChain(ctx context.Context, k int) (float64, error) {
	if err := b.reset(ctx); err != nil {
		return 0, err
	}
	wpool, err := b.workerPool(ctx)
	if err != nil {
		return 0, err
	}
	defer wpool.Close()
	workers := river.NewWorkers()
	river.AddWorker(workers, &chainWorker{pool: wpool})
	client, err := river.NewClient(riverpgxv5.New(wpool), &river.Config{
		Schema: migrations.RiverSchema, Logger: quietLogger(), Workers: workers,
		FetchCooldown: 2 * time.Millisecond, FetchPollInterval: 100 * time.Millisecond,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: b.o.workers}},
	})
	if err != nil {
		return 0, err
	}
	params := make([]river.InsertManyParams, k)
	for i := range params {
		params[i] = river.InsertManyParams{Args: chainArgs{Chain: int64(i), Hop: 1}}
	}
	if _, err := client.InsertMany(ctx, params); err != nil {
		return 0, err
	}
	if err := client.Start(ctx); err != nil {
		return 0, err
	}
	defer client.Stop(context.Background()) //nolint:errcheck
	return b.window(ctx, b.count("SELECT count(*) FROM river.river_job WHERE kind = 'bench_chain_hop' AND state = 'completed'"))
}
