// Command engine measures QuantumFlow's step throughput and hop latency against a hand-rolled
// River chain and the legacy single-job mode, all in one process run on one Postgres, so the
// ratios compare like with like on a noisy machine. It writes results as JSON (latest and a
// dated copy) and a markdown table.
//
//	go run ./bench/engine -out bench/results
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/quantumflow/qflow/migrations"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

type options struct {
	out       string
	reps      int
	warmup    time.Duration
	measure   time.Duration
	workers   int
	inFlight  []int
	idleHops  int
	serverURL string
	keepDB    bool
	systems   map[string]bool
	history   int
	processes []int
	bulk      int
}

// Result is what one bench run reports; field names are part of the results' contract.
type Result struct {
	Commit               string      `json:"commit"`
	Machine              string      `json:"machine"`
	Date                 string      `json:"date"`
	Workers              int         `json:"workers_per_process"`
	Reps                 int         `json:"repetitions"`
	EngineStepsPerSec    float64     `json:"engine_steps_per_sec"`
	RiverChainHopsPerSec float64     `json:"river_chain_hops_per_sec"`
	RatioEngineVsRiver   float64     `json:"ratio_engine_vs_river_chain"`
	LegacyStepsPerSec    float64     `json:"legacy_steps_per_sec"`
	HopLatencyIdleMS     Percentiles `json:"hop_latency_idle_ms"`
	HopLatencyLoadMS     Percentiles `json:"hop_latency_load_ms"`
	EngineHistory        float64     `json:"engine_steps_per_sec_100k_history"`
	// EngineHistoryBaseline is the empty-table rate measured alternately with EngineHistory.
	EngineHistoryBaseline float64              `json:"engine_steps_per_sec_history_baseline"`
	RatioHistory          float64              `json:"ratio_history"`
	HistoryRuns           int                  `json:"history_runs"`
	WorkersScaling        []ScalePoint         `json:"workers_scaling"`
	Bulk                  *BulkResult          `json:"bulk_trigger,omitempty"`
	ByInFlight            []LoadPoint          `json:"by_in_flight"`
	Samples               map[string][]float64 `json:"samples"`
}

// ScalePoint is the engine's throughput with a number of worker processes.
type ScalePoint struct {
	Processes   int     `json:"processes"`
	StepsPerSec float64 `json:"steps_per_sec"`
}

// BulkResult is the time from one INSERT ... SELECT of many runs until all of them finished.
type BulkResult struct {
	Runs        int     `json:"runs"`
	Seconds     float64 `json:"seconds"`
	StepsPerSec float64 `json:"steps_per_sec"`
}

// Percentiles of a latency distribution in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	N   int     `json:"n"`
}

// LoadPoint is the steady-load throughput of each system at one number of runs in flight.
type LoadPoint struct {
	InFlight          int     `json:"in_flight"`
	EngineStepsPerSec float64 `json:"engine_steps_per_sec"`
	// EngineQueuedStepsPerSec is the engine with eager dispatch off: every step through its queue.
	EngineQueuedStepsPerSec float64 `json:"engine_no_eager_steps_per_sec"`
	RiverChainHopsPerSec    float64 `json:"river_chain_hops_per_sec"`
	LegacyStepsPerSec       float64 `json:"legacy_steps_per_sec"`
	Ratio                   float64 `json:"ratio_engine_vs_river_chain"`
}

func main() {
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
	cpuProfile := flag.String("cpuprofile", "", "write a Go CPU profile of the whole run (workers included) to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
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
	if err := run(context.Background(), o); err != nil {
		pprof.StopCPUProfile()
		log.Fatal(err)
	}
}

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

	// Steady load: the three systems interleaved within each repetition.
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
		p.Ratio = p.EngineStepsPerSec / p.RiverChainHopsPerSec
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

	var idle []Percentiles
	for rep := 0; rep < o.reps && o.idleHops > 0; rep++ {
		lat, err := b.idleLatency(ctx)
		if err != nil {
			return err
		}
		idle = append(idle, lat)
		fmt.Printf("idle hop latency rep %d: p50 %.2f ms  p95 %.2f ms  p99 %.2f ms (n=%d)\n", rep+1, lat.P50, lat.P95, lat.P99, lat.N)
	}
	if len(idle) > 0 {
		res.HopLatencyIdleMS = medianPercentiles(idle)
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

	if len(o.processes) > 0 && o.systems["engine"] {
		bin, cleanup, err := buildQflow()
		if err != nil {
			return err
		}
		defer cleanup()
		for _, n := range o.processes {
			var samples []float64
			for rep := 0; rep < o.reps; rep++ {
				rate, err := b.processes(ctx, bin, n, o.inFlight[0])
				if err != nil {
					return err
				}
				samples = append(samples, rate)
			}
			p := ScalePoint{Processes: n, StepsPerSec: median(samples)}
			res.WorkersScaling = append(res.WorkersScaling, p)
			res.Samples[fmt.Sprintf("processes_%d", n)] = samples
			fmt.Printf("%d worker process(es): %.0f steps/s\n", n, p.StepsPerSec)
		}
	}

	if o.bulk > 0 && o.systems["engine"] {
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
	}

	// History: the same load on a second database holding o.history finished runs, its
	// repetitions interleaved with fresh ones on the empty database, so the ratio compares
	// like with like.
	if o.history > 0 && o.systems["engine"] {
		hist, drop, err := b.withHistory(ctx, o.history)
		if err != nil {
			return err
		}
		defer drop()
		k := o.inFlight[0]
		var empty, full []float64
		for rep := 0; rep < o.reps; rep++ {
			// Alternate which goes first, so neither always follows the other.
			first, second := b, hist
			if rep%2 == 1 {
				first, second = hist, b
			}
			r1, err := first.engine(ctx, k, "workflow")
			if err != nil {
				return err
			}
			r2, err := second.engine(ctx, k, "workflow")
			if err != nil {
				return err
			}
			e, h := r1, r2
			if rep%2 == 1 {
				e, h = r2, r1
			}
			empty, full = append(empty, e), append(full, h)
			fmt.Printf("history rep %d: empty tables %7.0f steps/s  %d finished runs %7.0f steps/s\n", rep+1, e, o.history, h)
		}
		res.HistoryRuns = o.history
		res.EngineHistory = median(full)
		res.EngineHistoryBaseline = median(empty)
		res.RatioHistory = round(res.EngineHistory / res.EngineHistoryBaseline)
		res.Samples[fmt.Sprintf("engine_k%d_history", k)] = full
		res.Samples[fmt.Sprintf("engine_k%d_history_baseline", k)] = empty
		fmt.Printf("with %d finished runs in the tables: %.0f steps/s (ratio to empty %.2f)\n", o.history, res.EngineHistory, res.RatioHistory)
	}

	return write(o.out, res)
}

type bench struct {
	o    options
	pool *pgxpool.Pool
	url  string
	// historyMax is the last id of the preloaded history, which reset keeps.
	historyMax int64
	loadHops   []float64
	clock      *hopClock
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// engine measures completed steps per second of no-op probe_chain runs with k runs kept in
// flight by a feeder, in workflow or legacy mode.
func (b *bench) engine(ctx context.Context, k int, mode string) (float64, error) {
	if err := b.reset(ctx); err != nil {
		return 0, err
	}
	// Hop latency under load is taken at the first (lightest) level, where it says how long a
	// ready step waits; at heavier levels it mostly measures the queue the load builds.
	timeHops := mode == "workflow" && k == b.o.inFlight[0] && b.historyMax == 0
	b.clock.record(timeHops)
	defer b.clock.record(false)
	wpool, err := newPool(ctx, b.url, int32(b.o.workers+8))
	if err != nil {
		return 0, err
	}
	defer wpool.Close()
	w, err := worker.New(worker.Config{
		Pool: wpool, Registry: b.clock.registry(), MaxWorkers: b.o.workers, ID: "bench", Logger: quietLogger(),
		DisableEagerDispatch: mode == "queued",
	})
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
	feedCtx, stop := context.WithCancel(ctx)
	defer stop()
	feedErr := make(chan error, 1)
	go func() { feedErr <- b.feed(feedCtx, k, runMode) }()

	rate, err := b.window(ctx, func(ctx context.Context) (int64, error) {
		var n int64
		if mode == "legacy" {
			err := b.pool.QueryRow(ctx, "SELECT 5 * count(*) FROM qflow.runs WHERE status = 'succeeded'").Scan(&n)
			return n, err
		}
		err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.step_runs WHERE status = 'succeeded'").Scan(&n)
		return n, err
	})
	stop()
	if ferr := <-feedErr; ferr != nil && !errors.Is(ferr, context.Canceled) {
		return 0, ferr
	}
	if err == nil && timeHops {
		b.loadHops = append(b.loadHops, b.clock.hops()...)
	}
	return rate, err
}

// feed keeps k runs live by topping up every few milliseconds with one INSERT ... SELECT.
func (b *bench) feed(ctx context.Context, k int, mode string) error {
	for {
		var live int
		if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.runs WHERE status IN ('pending', 'running')").Scan(&live); err != nil {
			return err
		}
		if need := k - live; need > 0 {
			if _, err := b.pool.Exec(ctx, `INSERT INTO qflow.runs (workflow, mode) SELECT 'probe_chain', $2 FROM generate_series(1, $1)`, need, mode); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// window waits out the warm-up, then returns the growth rate of counter over the measurement.
func (b *bench) window(ctx context.Context, counter func(context.Context) (int64, error)) (float64, error) {
	time.Sleep(b.o.warmup)
	c0, err := counter(ctx)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(b.o.measure)
	c1, err := counter(ctx)
	if err != nil {
		return 0, err
	}
	return float64(c1-c0) / time.Since(t0).Seconds(), nil
}

// reset empties the runtime tables between measurements so each starts from the same state.
func (b *bench) reset(ctx context.Context) error {
	if b.historyMax > 0 {
		// Keep the preloaded history; drop what the last measurement made.
		if _, err := b.pool.Exec(ctx, `DELETE FROM qflow.runs WHERE id > $1`, b.historyMax); err != nil {
			return err
		}
		if _, err := b.pool.Exec(ctx, `TRUNCATE river.river_job`); err != nil {
			return err
		}
		// Start as clean as a truncated table does, not with the last measurement's dead rows
		// waiting for autovacuum in the middle of the next one.
		_, err := b.pool.Exec(ctx, `VACUUM ANALYZE qflow.runs, qflow.step_runs, qflow.step_attempts`)
		return err
	}
	_, err := b.pool.Exec(ctx, `TRUNCATE qflow.step_attempts, qflow.step_runs, qflow.runs, river.river_job CASCADE`)
	return err
}

// chainArgs is one hop of the hand-rolled River chain a user would write without an engine.
type chainArgs struct {
	Chain int64 `json:"chain"`
	Hop   int   `json:"hop"`
}

func (chainArgs) Kind() string { return "bench_chain_hop" }

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

func (b *bench) riverChain(ctx context.Context, k int) (float64, error) {
	if err := b.reset(ctx); err != nil {
		return 0, err
	}
	wpool, err := newPool(ctx, b.url, int32(b.o.workers+8))
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
	return b.window(ctx, func(ctx context.Context) (int64, error) {
		var n int64
		err := b.pool.QueryRow(ctx, "SELECT count(*) FROM river.river_job WHERE kind = 'bench_chain_hop' AND state = 'completed'").Scan(&n)
		return n, err
	})
}

// idleLatency runs probe_chain runs one at a time and measures each hop by the handlers'
// clock (hopClock): from a step's handler returning to its successor's handler starting.
func (b *bench) idleLatency(ctx context.Context) (Percentiles, error) {
	if err := b.reset(ctx); err != nil {
		return Percentiles{}, err
	}
	w, err := worker.New(worker.Config{Pool: b.pool, Registry: b.clock.registry(), MaxWorkers: b.o.workers, ID: "bench", Logger: quietLogger()})
	if err != nil {
		return Percentiles{}, err
	}
	if err := w.Start(ctx); err != nil {
		return Percentiles{}, err
	}
	defer w.Stop(context.Background()) //nolint:errcheck
	time.Sleep(500 * time.Millisecond)
	// The first runs warm the worker's connections (plpgsql compiles and plans per
	// connection); a long-lived worker is past that, so they are not recorded.
	const warmRuns = 20
	defer b.clock.record(false)
	for runs := -warmRuns; runs*4 < b.o.idleHops; runs++ {
		if runs == 0 {
			b.clock.record(true)
		}
		// The run is inserted in a transaction that also registers the wait for its last step,
		// so that nothing polls the database while its hops are measured.
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			return Percentiles{}, err
		}
		var id int64
		if err := tx.QueryRow(ctx, "INSERT INTO qflow.runs (workflow) VALUES ('probe_chain') RETURNING id").Scan(&id); err != nil {
			_ = tx.Rollback(ctx)
			return Percentiles{}, err
		}
		done := b.clock.waitFor(id, "e")
		if err := tx.Commit(ctx); err != nil {
			return Percentiles{}, err
		}
		select {
		case <-done:
		case <-time.After(time.Minute):
			return Percentiles{}, fmt.Errorf("idle latency: run %d did not reach its last step within a minute", id)
		}
		time.Sleep(20 * time.Millisecond) // idle between runs; the last result commits meanwhile
	}
	var unfinished int
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.runs WHERE status <> 'succeeded'").Scan(&unfinished); err != nil {
		return Percentiles{}, err
	}
	if unfinished > 0 {
		return Percentiles{}, fmt.Errorf("idle latency: %d runs did not succeed", unfinished)
	}
	return percentiles(b.clock.hops()), nil
}

// withHistory makes a second benchmark database holding n finished runs.
func (b *bench) withHistory(ctx context.Context, n int) (*bench, func(), error) {
	url, drop, err := freshDatabase(ctx, b.o.serverURL, "qflow_bench_history")
	if err != nil {
		return nil, nil, err
	}
	pool, err := newPool(ctx, url, int32(b.o.workers+10))
	if err != nil {
		drop()
		return nil, nil, err
	}
	cleanup := func() { pool.Close(); drop() }
	h := &bench{o: b.o, pool: pool, url: url, clock: newHopClock()}
	if err := migrations.Migrate(ctx, pool); err != nil {
		cleanup()
		return nil, nil, err
	}
	if err := h.preloadHistory(ctx, n); err != nil {
		cleanup()
		return nil, nil, err
	}
	return h, cleanup, nil
}

// preloadHistory writes n finished probe_chain runs, with their steps and attempts, straight
// into the tables (triggers off: this is data, not work), as months of use would leave them,
// and vacuums them as such a database would have been.
func (b *bench) preloadHistory(ctx context.Context, n int) error {
	if err := b.reset(ctx); err != nil {
		return err
	}
	// The definitions must exist before runs reference them.
	if _, err := b.clock.registry().Sync(ctx, b.pool); err != nil {
		return err
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for _, sql := range []string{
		`SET session_replication_role = replica`,
		`INSERT INTO qflow.runs (workflow, version, input, status, mode, priority, deadline, remaining_steps, output, created_at, started_at, finished_at)
		 SELECT 'probe_chain', (SELECT max(version) FROM qflow.workflows WHERE name = 'probe_chain'), '{}', 'succeeded', 'workflow', 2,
		        now(), 0, '{"e": {"step": "e", "value": 31}}', t, t, t + interval '40 milliseconds'
		   FROM (SELECT now() - g * interval '1 second' AS t FROM generate_series(1, ` + fmt.Sprint(n) + `) g) x`,
		`INSERT INTO qflow.step_runs (run_id, step, workflow, version, status, remaining_deps, priority, attempt, output, job_id,
		                              worker, queued_at, started_at, finished_at)
		 SELECT r.id, s.name, r.workflow, r.version, 'succeeded', 0, 2, 1, '{"step": "x", "value": 1}', 0, 'history',
		        r.started_at, r.started_at, r.finished_at
		   FROM qflow.runs r JOIN qflow.steps s ON s.workflow = r.workflow AND s.version = r.version`,
		`INSERT INTO qflow.step_attempts (run_id, step, attempt, job_id, worker, status, started_at, finished_at)
		 SELECT run_id, step, 1, 0, 'history', 'succeeded', started_at, finished_at FROM qflow.step_runs`,
		`SET session_replication_role = origin`,
		`VACUUM ANALYZE qflow.runs, qflow.step_runs, qflow.step_attempts`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("preloading history: %w", err)
		}
	}
	return b.pool.QueryRow(ctx, "SELECT max(id) FROM qflow.runs").Scan(&b.historyMax)
}

// processes measures steady load served by n qflow worker processes.
func (b *bench) processes(ctx context.Context, bin string, n, k int) (float64, error) {
	if err := b.reset(ctx); err != nil {
		return 0, err
	}
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Signal(os.Interrupt)
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	}()
	for i := 0; i < n; i++ {
		c := exec.Command(bin, "worker", "--id", fmt.Sprintf("bench-%d", i), "--max-workers", fmt.Sprint(b.o.workers), "--metrics-addr", "")
		c.Env = append(os.Environ(), "DATABASE_URL="+b.url)
		if err := c.Start(); err != nil {
			return 0, err
		}
		cmds = append(cmds, c)
	}
	for {
		var live int
		if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.workers WHERE id LIKE 'bench-%'").Scan(&live); err != nil {
			return 0, err
		}
		if live >= n {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	feedCtx, stop := context.WithCancel(ctx)
	defer stop()
	feedErr := make(chan error, 1)
	go func() { feedErr <- b.feed(feedCtx, k, "workflow") }()
	rate, err := b.window(ctx, func(ctx context.Context) (int64, error) {
		var c int64
		err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.step_runs WHERE status = 'succeeded'").Scan(&c)
		return c, err
	})
	stop()
	if ferr := <-feedErr; ferr != nil && !errors.Is(ferr, context.Canceled) {
		return 0, ferr
	}
	return rate, err
}

// bulkTrigger inserts n runs with one statement and times them until all finished.
func (b *bench) bulkTrigger(ctx context.Context, n int) (*BulkResult, error) {
	if err := b.reset(ctx); err != nil {
		return nil, err
	}
	reg := pipelines.NewRegistry()
	probe.Register(reg)
	wpool, err := newPool(ctx, b.url, int32(b.o.workers+8))
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
	for {
		var live int
		if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.runs WHERE status IN ('pending', 'running')").Scan(&live); err != nil {
			return nil, err
		}
		if live == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	secs := time.Since(start).Seconds()
	return &BulkResult{Runs: n, Seconds: round(secs), StepsPerSec: round(float64(5*n) / secs)}, nil
}

// buildQflow builds the qflow binary for the process-scaling scenario.
func buildQflow() (string, func(), error) {
	dir, err := os.MkdirTemp("", "qflow-bench")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "qflow")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/qflow").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building qflow: %w\n%s", err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

func percentiles(xs []float64) Percentiles {
	s := slices.Clone(xs)
	slices.Sort(s)
	at := func(q float64) float64 { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return Percentiles{P50: round(at(0.50)), P95: round(at(0.95)), P99: round(at(0.99)), N: len(s)}
}

// medianPercentiles is the median of each percentile over repetitions.
func medianPercentiles(ps []Percentiles) Percentiles {
	var p50, p95, p99 []float64
	for _, p := range ps {
		p50, p95, p99 = append(p50, p.P50), append(p95, p.P95), append(p99, p.P99)
	}
	return Percentiles{P50: median(p50), P95: median(p95), P99: median(p99), N: ps[0].N}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return round(s[len(s)/2])
}

func round(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

func newPool(ctx context.Context, url string, max int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = max
	return pgxpool.NewWithConfig(ctx, cfg)
}

// freshDatabase creates (or recreates) database name on the server and returns its URL.
func freshDatabase(ctx context.Context, server, name string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return "", nil, fmt.Errorf("connecting to %s: %w", server, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	cfg, err := pgx.ParseConfig(server)
	if err != nil {
		return "", nil, err
	}
	url := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	drop := func() {
		c, err := pgx.Connect(context.Background(), server)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	return url, drop, nil
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	dirty := ""
	if st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(st) > 0 {
		dirty = "-dirty"
	}
	return strings.TrimSpace(string(out)) + dirty
}

func machine() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

func write(dir string, res Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("2006-01-02T150405Z")
	for _, name := range []string{"latest.json", "engine-" + stamp + ".json"} {
		if err := os.WriteFile(filepath.Join(dir, name), append(js, '\n'), 0o644); err != nil {
			return err
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Engine benchmark\n\ncommit `%s`, %s, %s; one worker process with %d workers; median of %d repetitions\n\n",
		res.Commit, res.Machine, res.Date, res.Workers, res.Reps)
	md.WriteString("| runs in flight | engine steps/s | engine, no eager dispatch | River chain hops/s | ratio | legacy steps/s |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range res.ByInFlight {
		fmt.Fprintf(&md, "| %d | %.0f | %.0f | %.0f | %.2f | %.0f |\n", p.InFlight, p.EngineStepsPerSec, p.EngineQueuedStepsPerSec, p.RiverChainHopsPerSec, p.Ratio, p.LegacyStepsPerSec)
	}
	fmt.Fprintf(&md, "\nHop latency (a step's handler returns → the next step's handler starts), ms:\n\n| | p50 | p95 | p99 | n |\n|---|---:|---:|---:|---:|\n")
	fmt.Fprintf(&md, "| idle (one run at a time; median of the repetitions, n each) | %.2f | %.2f | %.2f | %d |\n", res.HopLatencyIdleMS.P50, res.HopLatencyIdleMS.P95, res.HopLatencyIdleMS.P99, res.HopLatencyIdleMS.N)
	fmt.Fprintf(&md, "| under load (first in-flight level) | %.2f | %.2f | %.2f | %d |\n", res.HopLatencyLoadMS.P50, res.HopLatencyLoadMS.P95, res.HopLatencyLoadMS.P99, res.HopLatencyLoadMS.N)
	if len(res.WorkersScaling) > 0 {
		md.WriteString("\n| worker processes | engine steps/s |\n|---:|---:|\n")
		for _, p := range res.WorkersScaling {
			fmt.Fprintf(&md, "| %d | %.0f |\n", p.Processes, p.StepsPerSec)
		}
	}
	if res.Bulk != nil {
		fmt.Fprintf(&md, "\nBulk trigger: %d runs from one INSERT ... SELECT finished in %.1f s (%.0f steps/s)\n", res.Bulk.Runs, res.Bulk.Seconds, res.Bulk.StepsPerSec)
	}
	if res.HistoryRuns > 0 {
		fmt.Fprintf(&md, "\nWith %d finished runs in the tables: %.0f steps/s, ratio to empty tables %.2f\n", res.HistoryRuns, res.EngineHistory, res.RatioHistory)
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	if err := plot(filepath.Join(dir, "latest.png"), res); err != nil {
		return fmt.Errorf("plotting: %w", err)
	}
	fmt.Print("\n", md.String())
	return nil
}
