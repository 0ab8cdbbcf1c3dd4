// Map steps: the time one statement takes to start a map of -map elements (its element rows
// and River jobs), against starting as many single-step runs with one INSERT; and the rate a
// worker runs map elements, against chained steps of the same handler in the same run.

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

// MapResult compares map elements with runs and chained steps of the same size.
type MapResult struct {
	Elements int `json:"elements"`
	// StartSeconds: the INSERT of one run whose root step maps over the input's elements,
	// committed: every element row and River job made. RunsStartSeconds: one INSERT of as many
	// one-step runs.
	StartSeconds     float64 `json:"start_seconds"`
	RunsStartSeconds float64 `json:"runs_start_seconds"`
	// ElementsPerSec: one map of Elements run to its end by the worker; ChainStepsPerSec:
	// Elements/5 five-step chains from one INSERT, steps per second.
	ElementsPerSec   float64 `json:"elements_per_sec"`
	ChainStepsPerSec float64 `json:"chain_steps_per_sec"`
	Ratio            float64 `json:"ratio_elements_to_chain_steps"`
}

// benchMapWorkflows are a root map over the run input's items and a one-step workflow, both
// with the probe handler.
func benchMapWorkflows() []pipelines.Workflow {
	m := probe.Workflow("bench_map", map[string][]string{"each": nil})
	m.Steps[0].Map = "input.items"
	m.Steps[0].MaxItems = 1000000
	return []pipelines.Workflow{m, probe.Workflow("bench_single", map[string][]string{"one": nil})}
}

func (b *bench) maps(ctx context.Context, res *Result) error {
	n := b.o.maps
	var start, runsStart, elems, chain []float64
	for rep := 0; rep < b.o.reps; rep++ {
		s, r, err := b.mapStart(ctx, n)
		if err != nil {
			return err
		}
		e, c, err := b.mapThroughput(ctx, n)
		if err != nil {
			return err
		}
		start, runsStart, elems, chain = append(start, s), append(runsStart, r), append(elems, e), append(chain, c)
		fmt.Printf("map rep %d: %d elements started in %.3f s (%d one-step runs: %.3f s); %.0f elements/s vs %.0f chained steps/s\n",
			rep+1, n, s, n, r, e, c)
	}
	res.Map = &MapResult{Elements: n, StartSeconds: round(median(start)), RunsStartSeconds: round(median(runsStart)),
		ElementsPerSec: round(median(elems)), ChainStepsPerSec: round(median(chain)), Ratio: round(median(elems) / median(chain))}
	res.Samples["map_start_seconds"] = start
	res.Samples["map_runs_start_seconds"] = runsStart
	res.Samples["map_elements_per_sec"] = elems
	res.Samples["map_chain_steps_per_sec"] = chain
	return nil
}

// mapStart times, with no worker running, the INSERT of one run mapping over n elements and
// the INSERT of n one-step runs.
func (b *bench) mapStart(ctx context.Context, n int) (mapSecs, runsSecs float64, err error) {
	if err := b.reset(ctx); err != nil {
		return 0, 0, err
	}
	if err := b.register(ctx, benchMapWorkflows()...); err != nil {
		return 0, 0, err
	}
	t := time.Now()
	if _, err := b.pool.Exec(ctx, `INSERT INTO qflow.runs (workflow, input)
	                               VALUES ('bench_map', jsonb_build_object('items', (SELECT jsonb_agg(i) FROM generate_series(1, $1::int) i)))`, n); err != nil {
		return 0, 0, err
	}
	mapSecs = time.Since(t).Seconds()
	t = time.Now()
	if _, err := b.pool.Exec(ctx, `INSERT INTO qflow.runs (workflow) SELECT 'bench_single' FROM generate_series(1, $1::int)`, n); err != nil {
		return 0, 0, err
	}
	runsSecs = time.Since(t).Seconds()
	var jobs int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM river.river_job WHERE kind = 'qflow_step'").Scan(&jobs); err != nil {
		return 0, 0, err
	}
	if jobs != 2*n {
		return 0, 0, fmt.Errorf("map start: %d step jobs, want %d", jobs, 2*n)
	}
	return mapSecs, runsSecs, nil
}

// mapThroughput runs one map of n elements, then n/5 five-step chains, each from one INSERT
// to its last run's end, with the same worker settings.
func (b *bench) mapThroughput(ctx context.Context, n int) (elemsPerSec, chainStepsPerSec float64, err error) {
	if err := b.reset(ctx); err != nil {
		return 0, 0, err
	}
	if err := b.register(ctx, benchMapWorkflows()...); err != nil {
		return 0, 0, err
	}
	reg := pipelines.NewRegistry()
	probe.Register(reg)
	for _, w := range benchMapWorkflows() {
		reg.MustAdd(w)
	}
	wpool, err := b.workerPool(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer wpool.Close()
	w, err := worker.New(worker.Config{Pool: wpool, Registry: reg, MaxWorkers: b.o.workers, ID: "bench", Logger: quietLogger()})
	if err != nil {
		return 0, 0, err
	}
	if err := w.Start(ctx); err != nil {
		return 0, 0, err
	}
	defer w.Stop(context.Background()) //nolint:errcheck

	timed := func(sql string, arg int) (float64, error) {
		t := time.Now()
		if _, err := b.pool.Exec(ctx, sql, arg); err != nil {
			return 0, err
		}
		if err := b.waitIdle(ctx); err != nil {
			return 0, err
		}
		return time.Since(t).Seconds(), nil
	}
	secs, err := timed(`INSERT INTO qflow.runs (workflow, input)
	                    VALUES ('bench_map', jsonb_build_object('items', (SELECT jsonb_agg(i) FROM generate_series(1, $1::int) i)))`, n)
	if err != nil {
		return 0, 0, err
	}
	elemsPerSec = float64(n) / secs
	secs, err = timed(`INSERT INTO qflow.runs (workflow) SELECT 'probe_chain' FROM generate_series(1, $1::int)`, n/5)
	if err != nil {
		return 0, 0, err
	}
	chainStepsPerSec = float64(n/5*5) / secs
	var bad int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.runs WHERE status <> 'succeeded'").Scan(&bad); err != nil {
		return 0, 0, err
	}
	if bad > 0 {
		return 0, 0, fmt.Errorf("map throughput: %d runs did not succeed", bad)
	}
	return elemsPerSec, chainStepsPerSec, nil
}

// register puts workflows in the benchmark database, as a worker starting with them would.
func (b *bench) register(ctx context.Context, ws ...pipelines.Workflow) error {
	reg := pipelines.NewRegistry()
	for _, w := range ws {
		if err := reg.Add(w); err != nil {
			return err
		}
	}
	_, err := reg.Sync(ctx, b.pool)
	return err
}

// waitIdle returns when no run is pending or running.
func (b *bench) waitIdle(ctx context.Context) error {
	for {
		var live int
		if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.runs WHERE status IN ('pending', 'running')").Scan(&live); err != nil {
			return err
		}
		if live == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}
