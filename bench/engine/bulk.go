// Bulk trigger: many runs started by one INSERT ... SELECT and timed until the last finished,
// as a batch job would start them: a backlog drained, not a steady stream kept up with.

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

// bulk times -bulk runs from one INSERT -reps times and records the median.
func (b *bench) bulk(ctx context.Context, res *Result) error {
	o := b.o
	var secs []float64
	for rep := 0; rep < o.reps; rep++ {
		bulk, err := b.bulkTrigger(ctx, o.bulk)
		if err != nil {
			return err
		}
		secs = append(secs, bulk.Seconds)
		fmt.Printf("bulk rep %d: %d runs from one INSERT finished in %.1f s (%.0f steps/s)\n", rep+1, bulk.Runs, bulk.Seconds, bulk.StepsPerSec)
	}
	med := median(secs)
	res.Bulk = &BulkResult{Runs: o.bulk, Seconds: round(med), StepsPerSec: round(float64(5*o.bulk) / med)}
	res.Samples["bulk_seconds"] = secs
	return nil
}

// bulkTrigger inserts n runs with one statement and times them until all finished.
func (b *bench) bulkTrigger(ctx context.Context, n int) (*BulkResult, error) {
	if err := b.reset(ctx); err != nil {
		return nil, err
	}
	reg := pipelines.NewRegistry()
	probe.Register(reg)
	wpool, err := b.workerPool(ctx)
	if err != nil {
		return nil, err
	}
	defer wpool.Close()
	w, err := worker.New(worker.Config{Pool: wpool, Registry: reg, MaxWorkers: b.o.workers, ID: "bench", Logger: quietLogger()})
	if err != nil {
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		return nil, err
	}
	defer w.Stop(context.Background()) //nolint:errcheck
	start := time.Now()
	if _, err := b.pool.Exec(ctx, `INSERT INTO qflow.runs (workflow) SELECT 'probe_chain' FROM generate_series(1, $1)`, n); err != nil {
		return nil, err
	}
	if err := b.waitIdle(ctx); err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	return &BulkResult{Runs: n, Seconds: round(secs), StepsPerSec: round(float64(5*n) / secs)}, nil
}
