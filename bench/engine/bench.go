// What every scenario shares: a benchmark database, the reset that makes each measurement
// start from the same state, the feeder that keeps runs in flight and the measurement window.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantumflow/qflow/internal/dbserver"
	"github.com/quantumflow/qflow/migrations"
	"github.com/quantumflow/qflow/worker"
)

// bench is one benchmark database and the settings and clock the scenarios measure it with.
type bench struct {
	o    options
	pool *pgxpool.Pool
	url  string
	// historyMax is the last id of the preloaded history, which reset keeps.
	historyMax int64
	loadHops   []float64
	clock      *hopClock
	// via, when set, is a PgBouncer the measured worker's pooled traffic goes through
	// (pgbouncer.go); its sessions still go to the database directly. poll makes its River
	// client poll for jobs instead of listening, as it must through PgBouncer.
	via  *dbserver.PgBouncer
	poll bool
}

// quietLogger discards the logs of the workers and clients under measurement, which would
// drown the figures the bench prints.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

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

// underLoad keeps k runs of mode in flight with feed while window measures counter.
func (b *bench) underLoad(ctx context.Context, k int, mode string, counter func(context.Context) (int64, error)) (float64, error) {
	feedCtx, stop := context.WithCancel(ctx)
	defer stop()
	feedErr := make(chan error, 1)
	go func() { feedErr <- b.feed(feedCtx, k, mode) }()
	rate, err := b.window(ctx, counter)
	stop()
	if ferr := <-feedErr; ferr != nil && !errors.Is(ferr, context.Canceled) {
		return 0, ferr
	}
	return rate, err
}

// count returns a counter for window that reads query, one count, on b.pool.
func (b *bench) count(query string) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		var n int64
		err := b.pool.QueryRow(ctx, query).Scan(&n)
		return n, err
	}
}

// stepsDone counts the steps that succeeded: the engine's throughput, whatever runs them.
const stepsDone = "SELECT count(*) FROM qflow.step_runs WHERE status = 'succeeded'"

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

// newBench creates database name afresh on the -server, migrates it and returns a bench on it.
// cleanup closes the bench's pool and, unless keep, drops the database.
func newBench(ctx context.Context, o options, name string, keep bool) (b *bench, cleanup func(), err error) {
	url, err := dbserver.Create(ctx, o.serverURL, name, "")
	if err != nil {
		return nil, nil, err
	}
	drop := func() {
		if !keep {
			_ = dbserver.Drop(context.Background(), o.serverURL, name)
		}
	}
	pool, err := dbserver.Open(ctx, url, int32(o.workers+10))
	if err != nil {
		drop()
		return nil, nil, err
	}
	cleanup = func() { pool.Close(); drop() }
	if err := migrations.Migrate(ctx, pool); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("migrating %s: %w", name, err)
	}
	return &bench{o: o, pool: pool, url: url, clock: newHopClock()}, cleanup, nil
}

// workerConns opens what a measured worker connects with: a pool of its own (workerPool), or
// with b.via one through PgBouncer and a few sessions straight to the database, as `qflow
// worker --pgbouncer` has them. config sets them in cfg; close closes them.
func (b *bench) workerConns(ctx context.Context) (wc workerConns, err error) {
	wc.poll = b.poll || b.via != nil
	if b.via == nil {
		wc.pool, err = b.workerPool(ctx)
		return wc, err
	}
	pooled, err := dbserver.DatabaseOn(b.via.URL, b.url)
	if err != nil {
		return wc, err
	}
	if wc.pool, err = dbserver.OpenPooled(ctx, pooled, int32(b.o.workers+8)); err != nil {
		return wc, err
	}
	if wc.direct, err = dbserver.Open(ctx, b.url, 3); err != nil {
		wc.pool.Close()
		return wc, err
	}
	return wc, nil
}

type workerConns struct {
	pool, direct *pgxpool.Pool
	poll         bool
}

func (wc workerConns) config(cfg worker.Config) worker.Config {
	cfg.Pool, cfg.Direct, cfg.PollOnly = wc.pool, wc.direct, wc.poll
	return cfg
}

func (wc workerConns) close() {
	wc.pool.Close()
	if wc.direct != nil {
		wc.direct.Close()
	}
}

// workerPool opens the pool for the worker (or River client) a measurement runs, apart from
// b.pool, which the feeder and the counters use: one connection for each of its -workers and
// a few to spare.
func (b *bench) workerPool(ctx context.Context) (*pgxpool.Pool, error) {
	return dbserver.Open(ctx, b.url, int32(b.o.workers+8))
}
