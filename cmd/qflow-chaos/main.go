// Command qflow-chaos runs QuantumFlow workers under load while injecting faults and checks
// the tables afterwards (see internal/chaos). It exits 1 when an invariant fails.
//
//	go run ./cmd/qflow-chaos -bin bin/qflow            # the full mode, several minutes
//	go run ./cmd/qflow-chaos -short                    # what `make test` runs
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/quantumflow/qflow/internal/chaos"
)

func main() {
	var cfg chaos.Config
	flag.DurationVar(&cfg.Duration, "duration", 0, "how long load and faults last (default 5m, 25s with -short)")
	flag.BoolVar(&cfg.Short, "short", false, "the short mode: lighter load, each fault once or twice")
	flag.IntVar(&cfg.Workers, "workers", 3, "worker processes")
	flag.Int64Var(&cfg.Seed, "seed", 0, "seed of the load and the faults (default from the clock)")
	flag.StringVar(&cfg.Binary, "bin", "", "the qflow binary to run (default: build ./cmd/qflow)")
	flag.StringVar(&cfg.ServerURL, "server", os.Getenv("QFLOW_CHAOS_SERVER_URL"),
		"a Postgres server to use instead of a private cluster (Postgres restarts are then skipped)")
	flag.StringVar(&cfg.Toxiproxy, "toxiproxy", os.Getenv("QFLOW_TOXIPROXY"),
		"the toxiproxy server the workers connect through (default: what `make toxiproxy` builds)")
	quiet := flag.Bool("q", false, "no progress lines")
	flag.Parse()
	if !*quiet {
		cfg.Log = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	report.Write(os.Stdout)
	if !report.OK() {
		os.Exit(1)
	}
}
