// The command line: which scenarios to run, how long, how often and against which server.

package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"time"
)

// options are the command line's settings; every scenario reads them.
type options struct {
	out        string
	reps       int
	warmup     time.Duration
	measure    time.Duration
	workers    int
	inFlight   []int
	idleHops   int
	serverURL  string
	keepDB     bool
	systems    map[string]bool
	history    int
	processes  []int
	bulk       int
	maps       int
	pgbouncer  bool
	cpuProfile string
}

// parseFlags reads the command line into options, exiting on a malformed list.
func parseFlags() options {
	var o options
	var inFlight string
	flag.StringVar(&o.out, "out", "bench/results", "folder for latest.json, a dated copy and latest.md")
	flag.IntVar(&o.reps, "reps", 3, "repetitions of each measurement (the median is reported)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before each measurement window")
	flag.DurationVar(&o.measure, "measure", 5*time.Second, "length of each measurement window")
	flag.IntVar(&o.workers, "workers", 50, "steps run at once by the worker process (River MaxWorkers)")
	flag.StringVar(&inFlight, "in-flight", "50,500", "runs (chains) kept in flight, comma-separated")
	flag.IntVar(&o.idleHops, "idle-hops", 600, "hops measured one run at a time for idle latency, per repetition")
	flag.StringVar(&o.serverURL, "server", os.Getenv("QFLOW_BENCH_SERVER_URL"), "Postgres server URL (maintenance database); default: the project's throwaway cluster")
	flag.BoolVar(&o.keepDB, "keep-db", false, "keep the benchmark database afterwards")
	systems := flag.String("systems", "engine,queued,river,legacy", "systems to measure under steady load: engine, queued (the engine without eager dispatch), river, legacy")
	flag.IntVar(&o.history, "history", 100000, "finished runs preloaded for the history scenario (0 skips it)")
	processes := flag.String("processes", "1,2,4", "worker process counts for the scaling scenario (empty skips it)")
	flag.IntVar(&o.bulk, "bulk", 20000, "runs inserted by one INSERT ... SELECT for the bulk scenario (0 skips it)")
	flag.IntVar(&o.maps, "map", 10000, "elements of the map-step scenario: start time and elements/s against chained steps (0 skips it)")
	flag.BoolVar(&o.pgbouncer, "pgbouncer", true, "measure the engine through PgBouncer in transaction pooling mode against direct (Debian's pgbouncer, installed when missing)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the whole run (workers included) to this file")
	flag.Parse()
	for _, p := range strings.Split(*processes, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(p), &n); err == nil && n > 0 {
			o.processes = append(o.processes, n)
		}
	}
	o.systems = map[string]bool{}
	for _, s := range strings.Split(*systems, ",") {
		o.systems[strings.TrimSpace(s)] = true
	}
	for _, s := range strings.Split(inFlight, ",") {
		var k int
		if _, err := fmt.Sscan(strings.TrimSpace(s), &k); err != nil || k < 1 {
			log.Fatalf("bad -in-flight %q", inFlight)
		}
		o.inFlight = append(o.inFlight, k)
	}
	return o
}
