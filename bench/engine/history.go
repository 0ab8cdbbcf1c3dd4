// History: the steady load on a second database already holding many finished runs, as months
// of use would leave it, alternating with the empty database, to see whether the engine slows
// down as its tables grow.

package main

import (
	"context"
	"fmt"
	"time"
)

// history measures the engine at the first level of -in-flight on a second database holding
// -history finished runs, its repetitions interleaved with fresh ones on the empty database,
// so the ratio compares like with like.
func (b *bench) history(ctx context.Context, res *Result) error {
	o := b.o
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
	return hist.retention(ctx, res)
}

// retention measures how fast qflow.prune_runs deletes finished runs past their retention, in
// the sweep's batches of 500, on the history database with its workflow's retention set to one
// day (the history is spread over the -history seconds before now), for up to ten seconds.
func (b *bench) retention(ctx context.Context, res *Result) error {
	if _, err := b.pool.Exec(ctx, "INSERT INTO qflow.retention (workflow, days) VALUES ('probe_chain', 1)"); err != nil {
		return fmt.Errorf("setting retention: %w", err)
	}
	start := time.Now()
	deleted := 0
	for time.Since(start) < 10*time.Second {
		var n int
		if err := b.pool.QueryRow(ctx, "SELECT qflow.prune_runs(500)").Scan(&n); err != nil {
			return fmt.Errorf("pruning: %w", err)
		}
		deleted += n
		if n < 500 {
			break
		}
	}
	elapsed := time.Since(start)
	res.PrunedRuns = deleted
	res.PruneRunsPerSec = round(float64(deleted) / elapsed.Seconds())
	fmt.Printf("retention: %d finished runs deleted in %.1f s (%.0f runs/s, batches of 500)\n", deleted, elapsed.Seconds(), res.PruneRunsPerSec)
	return nil
}

// withHistory makes a second benchmark database holding n finished runs.
func (b *bench) withHistory(ctx context.Context, n int) (*bench, func(), error) {
	// Dropped afterwards even with -keep-db, as it always was: each run builds it anew.
	h, cleanup, err := newBench(ctx, b.o, "qflow_bench_history", false)
	if err != nil {
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
