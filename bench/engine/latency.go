// Hop latency: from a step's handler returning to its successor's handler starting, timed by
// the handlers themselves (hops.go), which is the wait a user of a run feels. Idle latency runs
// one run at a time with nothing polling the database, so it shows the path of a hop and not a
// queue; latency under load is what the steady-load scenario timed at its lightest level.

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/quantumflow/qflow/worker"
)

// latency measures idle hop latency -reps times and records the median of each percentile,
// and the percentiles of the hops the steady-load scenario timed.
func (b *bench) latency(ctx context.Context, res *Result) error {
	o := b.o
	var idle, trigger []Percentiles
	for rep := 0; rep < o.reps && o.idleHops > 0; rep++ {
		lat, trig, err := b.idleLatency(ctx, "workflow", o.idleHops)
		if err != nil {
			return err
		}
		idle, trigger = append(idle, lat), append(trigger, trig)
		fmt.Printf("idle hop latency rep %d: p50 %.2f ms  p95 %.2f ms  p99 %.2f ms (n=%d); trigger latency p50 %.2f ms  p99 %.2f ms (n=%d)\n",
			rep+1, lat.P50, lat.P95, lat.P99, lat.N, trig.P50, trig.P99, trig.N)
	}
	if len(idle) > 0 {
		res.HopLatencyIdleMS = medianPercentiles(idle)
		res.TriggerLatencyIdleMS = medianPercentiles(trigger)
	}
	for _, l := range idle {
		res.Samples["hop_latency_idle_p50"] = append(res.Samples["hop_latency_idle_p50"], l.P50)
		res.Samples["hop_latency_idle_p99"] = append(res.Samples["hop_latency_idle_p99"], l.P99)
	}
	lat := res.HopLatencyIdleMS
	fmt.Printf("idle hop latency (median of %d): p50 %.2f ms  p95 %.2f ms  p99 %.2f ms (n=%d each)\n", o.reps, lat.P50, lat.P95, lat.P99, lat.N)
	if len(b.loadHops) > 0 {
		res.HopLatencyLoadMS = percentiles(b.loadHops)
		fmt.Printf("hop latency under load: p50 %.2f ms  p95 %.2f ms  p99 %.2f ms (n=%d)\n",
			res.HopLatencyLoadMS.P50, res.HopLatencyLoadMS.P95, res.HopLatencyLoadMS.P99, res.HopLatencyLoadMS.N)
	}
	return nil
}

// idleLatency runs probe_chain runs one at a time and measures hops hops by the handlers'
// clock (hopClock): from a step's handler returning to its successor's handler starting. It
// also measures each run's trigger latency: from the commit of its INSERT to its first step's
// handler starting. In mode "queued" eager dispatch is off, so every hop goes through the
// queue and a wake-up.
func (b *bench) idleLatency(ctx context.Context, mode string, hops int) (Percentiles, Percentiles, error) {
	if err := b.reset(ctx); err != nil {
		return Percentiles{}, Percentiles{}, err
	}
	committed := map[int64]time.Time{}
	wc, err := b.workerConns(ctx)
	if err != nil {
		return Percentiles{}, Percentiles{}, err
	}
	defer wc.close()
	w, err := worker.New(wc.config(worker.Config{Registry: b.clock.registry(), MaxWorkers: b.o.workers, ID: "bench", Logger: quietLogger(),
		DisableEagerDispatch: mode == "queued"}))
	if err != nil {
		return Percentiles{}, Percentiles{}, err
	}
	if err := w.Start(ctx); err != nil {
		return Percentiles{}, Percentiles{}, err
	}
	defer w.Stop(context.Background()) //nolint:errcheck
	time.Sleep(500 * time.Millisecond)
	// The first runs warm the worker's connections (plpgsql compiles and plans per
	// connection); a long-lived worker is past that, so they are not recorded.
	const warmRuns = 20
	defer b.clock.record(false)
	for runs := -warmRuns; runs*4 < hops; runs++ {
		if runs == 0 {
			b.clock.record(true)
		}
		// The run is inserted in a transaction that also registers the wait for its last step,
		// so that nothing polls the database while its hops are measured.
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			return Percentiles{}, Percentiles{}, err
		}
		var id int64
		if err := tx.QueryRow(ctx, "INSERT INTO qflow.runs (workflow) VALUES ('probe_chain') RETURNING id").Scan(&id); err != nil {
			_ = tx.Rollback(ctx)
			return Percentiles{}, Percentiles{}, err
		}
		done := b.clock.waitFor(id, "e")
		if runs >= 0 {
			committed[id] = time.Now()
		}
		if err := tx.Commit(ctx); err != nil {
			return Percentiles{}, Percentiles{}, err
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			return Percentiles{}, Percentiles{}, fmt.Errorf("idle latency: run %d did not reach its last step within a minute", id)
		}
		time.Sleep(20 * time.Millisecond) // idle between runs; the last result commits meanwhile
	}
	// The last run's last result may still be on its way (a slow machine, or PgBouncer in the
	// path): wait for it, a minute at most, then every run must have succeeded.
	settle, cancel := context.WithTimeout(ctx, time.Minute)
	err = b.waitIdle(settle)
	cancel()
	if err != nil && ctx.Err() != nil {
		return Percentiles{}, Percentiles{}, err
	}
	var unfinished int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.runs WHERE status <> 'succeeded'").Scan(&unfinished); err != nil {
		return Percentiles{}, Percentiles{}, err
	}
	if unfinished > 0 {
		return Percentiles{}, Percentiles{}, fmt.Errorf("idle latency: %d runs did not succeed", unfinished)
	}
	var triggers []float64
	for id, at := range committed {
		if started, ok := b.clock.started(id, "a"); ok {
			triggers = append(triggers, float64(started.Sub(at).Microseconds())/1000)
		}
	}
	return percentiles(b.clock.hops()), percentiles(triggers), nil
}
