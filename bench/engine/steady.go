// Steady load: completed steps per second with K runs kept in flight, for the engine, the
// engine with eager dispatch off, the hand-rolled River chain (riverchain.go) and legacy mode,
// interleaved within each repetition so that a noisy machine's drift falls on all of them
// alike. The engine against the River chain is the headline ratio: what the engine costs, or
// saves, over what a user without it would write.

package main

import (
	"context"
	"fmt"

	"github.com/quantumflow/qflow/worker"
)

// steadyLoad measures every system in -systems at each level of -in-flight and records the
// medians, and as the headline figures the level where the engine was fastest.
func (b *bench) steadyLoad(ctx context.Context, res *Result) error {
	o := b.o
	for _, k := range o.inFlight {
		var eng, que, riv, leg []float64
		for rep := 0; rep < o.reps; rep++ {
			var e, q, r, l float64
			var err error
			if o.systems["engine"] {
				if e, err = b.engine(ctx, k, "workflow"); err != nil {
					return err
				}
			}
			if o.systems["queued"] {
				if q, err = b.engine(ctx, k, "queued"); err != nil {
					return err
				}
			}
			if o.systems["river"] {
				if r, err = b.riverChain(ctx, k); err != nil {
					return err
				}
			}
			if o.systems["legacy"] {
				if l, err = b.engine(ctx, k, "legacy"); err != nil {
					return err
				}
			}
			eng, que, riv, leg = append(eng, e), append(que, q), append(riv, r), append(leg, l)
			fmt.Printf("in flight %4d  rep %d: engine %7.0f steps/s  (no eager dispatch %7.0f)  river chain %7.0f hops/s  legacy %7.0f steps/s\n", k, rep+1, e, q, r, l)
		}
		p := LoadPoint{InFlight: k, EngineStepsPerSec: median(eng), EngineQueuedStepsPerSec: median(que),
			RiverChainHopsPerSec: median(riv), LegacyStepsPerSec: median(leg)}
		if p.RiverChainHopsPerSec > 0 { // not measured when -systems leaves the River chain out
			p.Ratio = p.EngineStepsPerSec / p.RiverChainHopsPerSec
		}
		res.ByInFlight = append(res.ByInFlight, p)
		res.Samples[fmt.Sprintf("engine_k%d", k)] = eng
		res.Samples[fmt.Sprintf("engine_no_eager_k%d", k)] = que
		res.Samples[fmt.Sprintf("river_chain_k%d", k)] = riv
		res.Samples[fmt.Sprintf("legacy_k%d", k)] = leg
	}
	best := res.ByInFlight[0]
	for _, p := range res.ByInFlight {
		if p.EngineStepsPerSec > best.EngineStepsPerSec {
			best = p
		}
	}
	res.EngineStepsPerSec, res.RiverChainHopsPerSec, res.LegacyStepsPerSec = best.EngineStepsPerSec, best.RiverChainHopsPerSec, best.LegacyStepsPerSec
	res.RatioEngineVsRiver = best.Ratio
	return nil
}

// engine measures completed steps per second of no-op probe_chain runs with k runs kept in
// flight by a feeder, in workflow or legacy mode.
func (b *bench) engine(ctx context.Context, k int, mode string) (float64, error) {
	if err := b.reset(ctx); err != nil {
		return 0, err
	}
	// Hop latency under load is taken at the first (lightest) level, where it says how long a
	// ready step waits; at heavier levels it mostly measures the queue the load builds.
	timeHops := mode == "workflow" && k == b.o.inFlight[0] && b.historyMax == 0 && b.via == nil && !b.poll
	b.clock.record(timeHops)
	defer b.clock.record(false)
	wc, err := b.workerConns(ctx)
	if err != nil {
		return 0, err
	}
	defer wc.close()
	w, err := worker.New(wc.config(worker.Config{
		Registry: b.clock.registry(), MaxWorkers: b.o.workers, ID: "bench", Logger: quietLogger(),
		DisableEagerDispatch: mode == "queued",
	}))
	if err != nil {
		return 0, err
	}
	if err := w.Start(ctx); err != nil {
		return 0, err
	}
	defer w.Stop(context.Background()) //nolint:errcheck

	runMode := mode
	if mode == "queued" {
		runMode = "workflow"
	}
	// A legacy run is one job calling the five handlers; it leaves no step rows to count.
	done := stepsDone
	if mode == "legacy" {
		done = "SELECT 5 * count(*) FROM qflow.runs WHERE status = 'succeeded'"
	}
	rate, err := b.underLoad(ctx, k, runMode, b.count(done))
	if err == nil && timeHops {
		b.loadHops = append(b.loadHops, b.clock.hops()...)
	}
	return rate, err
}
