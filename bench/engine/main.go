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
	"os/exec"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/quantumflow/qflow/migrations"
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
		out, err := exec.Command(".ci/postgres.sh", "start").Output()
		if err != nil {
			return fmt.Errorf("starting Postgres (run from the repository root): %w", err)
		}
		o.serverURL = strings.TrimSpace(string(out))
	}
	dbURL, drop, err := freshDatabase(ctx, o.serverURL, "qflow_bench")
	if err != nil {
		return err
	}
	if !o.keepDB {
		defer drop()
	}
	pool, err := newPool(ctx, dbURL, int32(o.workers+10))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.Migrate(ctx, pool); err != nil {
		return err
	}

	b := &bench{o: o, pool: pool, url: dbURL, clock: newHopClock()}
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
	if o.bulk > 0 && o.systems["engine"] {
		if err := b.bulk(ctx, &res); err != nil {
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
