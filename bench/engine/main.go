// Command engine measures QuantumFlow's step throughput and hop latency against a hand-rolled
// River chain and the legacy single-job mode, all in one process run on one Postgres, so the
// ratios compare like with like on a noisy machine. It writes results as JSON (latest and a
// dated copy) and a markdown table.
//
//	go run ./bench/engine -out bench/results
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"time"

	"github.com/quantumflow/qflow/internal/dbserver"
)

func main() {
	o := parseFlags()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(context.Background(), o); err != nil {
		pprof.StopCPUProfile()
		log.Fatal(err)
	}
}

// run measures the scenarios one after another on one database, in the order the results
// list them, and writes the results.
func run(ctx context.Context, o options) error {
	if o.serverURL == "" {
		url, err := dbserver.Local()
		if err != nil {
			return fmt.Errorf("starting Postgres: %w", err)
		}
		o.serverURL = url
	}
	b, cleanup, err := newBench(ctx, o, "qflow_bench", o.keepDB)
	if err != nil {
		return err
	}
	defer cleanup()
	res := Result{
		Commit: gitCommit(), Machine: machine(), Date: time.Now().UTC().Format(time.RFC3339),
		Workers: o.workers, Reps: o.reps, Samples: map[string][]float64{},
	}

	if err := b.steadyLoad(ctx, &res); err != nil {
		return err
	}
	if err := b.latency(ctx, &res); err != nil {
		return err
	}
	if len(o.processes) > 0 && o.systems["engine"] {
		if err := b.scaling(ctx, &res); err != nil {
			return err
		}
	}
	if o.maps > 0 && o.systems["engine"] {
		if err := b.maps(ctx, &res); err != nil {
			return fmt.Errorf("map steps: %w", err)
		}
	}
	if o.bulk > 0 && o.systems["engine"] {
		if err := b.bulk(ctx, &res); err != nil {
			return err
		}
	}
	if o.pgbouncer && o.systems["engine"] {
		if err := b.pgbouncer(ctx, &res); err != nil {
			return err
		}
	}
	if o.history > 0 && o.systems["engine"] {
		if err := b.history(ctx, &res); err != nil {
			return err
		}
	}
	return write(o.out, res)
}
