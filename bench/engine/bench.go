// What every scenario shares: a benchmark database, the reset that makes each measurement
// start from the same state, the feeder that keeps runs in flight and the measurement window.

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
}

// quietLogger discards the workers' logs, which would only slow the measurement down.
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

// newPool opens a pool of at most max connections on url.
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
