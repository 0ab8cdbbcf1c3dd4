// Bulk trigger: many runs started by one INSERT ... SELECT and timed until the last finished,
// as a batch job would start them: a backlog drained, not a steady stream kept up with. Each
// repetition also measures the steady load at the engine's best in-flight level just before
// its drain, so the ratio compares two rates of the same few minutes of a noisy machine.

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

// bulk times -bulk runs from one INSERT -reps times, each after a steady-load measurement at the
// in-flight level where the engine was fastest, and records the medians.
func (b *bench) bulk(ctx context.Context, res *Result) error {
	o := b.o
	k := o.inFlight[0]
	for _, p := range res.ByInFlight {
		if p.InFlight > 0 && p.EngineStepsPerSec == res.EngineStepsPerSec {
			k = p.InFlight
		}
	}
	var secs, drains, inserts, steady, ratios []float64
	for rep := 0; rep < o.reps; rep++ {
		s, err := b.engine(ctx, k, "workflow")
		if err != nil {
			return err
		}
		bulk, err := b.bulkTrigger(ctx, o.bulk)
		if err != nil {
			return err
		}
		secs, drains, inserts = append(secs, bulk.Seconds), append(drains, bulk.DrainSeconds), append(inserts, bulk.InsertSeconds)
		steady, ratios = append(steady, s), append(ratios, bulk.StepsPerSec/s)
		fmt.Printf("bulk rep %d: %d runs from one INSERT finished in %.1f s (%.0f steps/s; the INSERT %.1f s, from its commit %.0f steps/s); steady at %d in flight just before: %.0f steps/s; ratio %.2f\n",
			rep+1, bulk.Runs, bulk.Seconds, bulk.StepsPerSec, bulk.InsertSeconds, float64(5*o.bulk)/bulk.DrainSeconds, k, s, bulk.StepsPerSec/s)
	}
	med := median(secs)
	res.Bulk = &BulkResult{Runs: o.bulk, Seconds: round(med), StepsPerSec: round(float64(5*o.bulk) / med),
		InsertSeconds: median(inserts), DrainSeconds: median(drains),
		SteadyInFlight: k, SteadyStepsPerSec: median(steady), Ratio: median(ratios)}
	res.Samples["bulk_seconds"] = secs
	res.Samples["bulk_insert_seconds"] = inserts
	res.Samples["bulk_steady_steps_per_sec"] = steady
	res.Samples["bulk_ratio"] = ratios
	return nil
}

// bulkTrigger inserts n runs with one statement and times them until all finished, from the
// INSERT's start and from its commit.
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
	committed := time.Now()
	if err := b.waitIdle(ctx); err != nil {
		return nil, err
	}
	end := time.Now()
	secs := end.Sub(start).Seconds()
	return &BulkResult{Runs: n, Seconds: round(secs), StepsPerSec: round(float64(5*n) / secs),
		InsertSeconds: round(committed.Sub(start).Seconds()), DrainSeconds: round(end.Sub(committed).Seconds())}, nil
}
