package chaos

import (
	"context"
	"time"
)

// shortPlan is the fault plan of the short mode: every kind but the slower network faults at
// least once, at fixed shares of the load's duration.
var shortPlan = []struct {
	at   float64
	kind string
}{
	{0.08, FaultDuplicate},
	{0.12, FaultLimitData},
	{0.20, FaultKill},
	{0.26, FaultBlackHole},
	{0.44, FaultTerminate},
	{0.50, FaultRestartFast},
	{0.58, FaultTerm},
	{0.66, FaultReset},
	{0.74, FaultRestartImmediate},
	{0.82, FaultKill},
	{0.90, FaultLate},
}

// fullCycle is the order faults take in the full mode, a few seconds apart, round and round.
var fullCycle = []string{FaultKill, FaultDuplicate, FaultBlackHole, FaultTerminate, FaultLatency, FaultTerm,
	FaultLate, FaultReset, FaultKill, FaultLimitData, FaultRestartFast, FaultDuplicate, FaultDown, FaultKill,
	FaultBandwidth, FaultTerminate, FaultLate, FaultBlackHole, FaultTerm, FaultRestartImmediate}

// inject runs the fault plan until ctx ends.
func (c *chaos) inject(ctx context.Context) {
	start := time.Now()
	wait := func(until time.Time) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(until)):
			return true
		}
	}
	if c.cfg.Short {
		for _, f := range shortPlan {
			if !wait(start.Add(time.Duration(f.at * float64(c.cfg.Duration)))) {
				return
			}
			c.fault(ctx, f.kind)
		}
		<-ctx.Done()
		return
	}
	for i := 0; ; i++ {
		if !wait(time.Now().Add(3*time.Second + time.Duration(c.intn(5000))*time.Millisecond)) {
			return
		}
		c.fault(ctx, fullCycle[i%len(fullCycle)])
	}
}

func (c *chaos) fault(ctx context.Context, kind string) {
	// A fault that has begun runs to its end, whatever the load's deadline: cut short, a
	// Postgres restart left the server down between its stop and its start, and a killed
	// worker's replacement was reported as never announcing itself.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	defer func() {
		c.mu.Lock()
		c.lastFault = time.Now()
		c.mu.Unlock()
	}()
	switch kind {
	case FaultKill:
		c.killWorker(ctx)
	case FaultTerm:
		c.termWorker(ctx)
	case FaultTerminate:
		c.terminateBackends(ctx)
	case FaultRestartFast, FaultRestartImmediate:
		c.restartPostgres(ctx, kind)
	case FaultDuplicate, FaultLate:
		// Both at once: the stale calls are cheap and the short plan runs each twice this way.
		c.duplicateCompletion(ctx)
		c.lateCompletion(ctx)
	case FaultLatency, FaultBandwidth, FaultLimitData, FaultReset, FaultDown, FaultBlackHole:
		c.netFault(ctx, kind)
	}
}

// killWorker SIGKILLs a worker mid-step, the busiest, and starts a new one in its slot a
// second later. The moment of the kill is read from the database's clock, which the attempts'
// times are on, to measure recovery from it.
func (c *chaos) killWorker(ctx context.Context) {
	slot, _, _ := c.busiestSlot(ctx)
	p := c.fleet.kill(slot)
	at := time.Now()
	var long, running int
	// Read after the kill, a few milliseconds after it; only if the server cannot be reached
	// does the local clock stand in.
	err := retrySQL(ctx, func(ctx context.Context) error {
		return c.admin.QueryRow(ctx, `SELECT clock_timestamp(), count(*) FILTER (WHERE s.timeout_ms > $2), count(*)
		                                FROM qflow.step_runs sr
		                                JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
		                               WHERE sr.status = 'running' AND sr.worker = $1`,
			p.id, shortTimeoutMax.Milliseconds()).Scan(&at, &long, &running)
	})
	if err != nil {
		c.logf("SIGKILL %s: reading the database's clock: %v (the local clock stands in)", p.id, err)
	}
	c.mu.Lock()
	c.kills = append(c.kills, kill{at: at, victim: p.id})
	c.mu.Unlock()
	c.countFault(FaultKill, 1)
	c.logf("SIGKILL %s with %d steps running, %d of them long", p.id, running, long)
	time.Sleep(time.Second)
	if err := c.fleet.start(ctx, slot); err != nil {
		c.violation("restarting after SIGKILL: %v", err)
	}
}

// busiestSlot is the slot of the worker running the most long steps, then the most steps
// (map elements counted as steps of their map step), or a slot at random when none is running
// anything; and how many steps, and long ones, it runs. A map step's own row is running on no
// worker while its elements run: it is left out, or its NULL worker would fail the scan (and
// the query be retried for a minute, then the victim drawn at random).
func (c *chaos) busiestSlot(ctx context.Context) (slot, running, long int) {
	slot = c.intn(c.cfg.Workers)
	err := retrySQL(ctx, func(ctx context.Context) error {
		rows, err := c.admin.Query(ctx, `SELECT sr.worker, count(*), count(*) FILTER (WHERE s.timeout_ms > $1) FROM qflow.step_runs sr
		                                  JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
		                                 WHERE sr.status = 'running' AND sr.tasks IS NULL
		                                 GROUP BY sr.worker ORDER BY 3 DESC, 2 DESC`,
			shortTimeoutMax.Milliseconds())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var n, l int
			if err := rows.Scan(&id, &n, &l); err != nil {
				return err
			}
			if s := c.fleet.slotOf(id); s >= 0 {
				slot, running, long = s, n, l
				break
			}
		}
		return rows.Err()
	})
	if err != nil {
		c.logf("finding the busiest worker: %v (a slot at random instead)", err)
	}
	return slot, running, long
}

// termWorker stops a worker with SIGTERM mid-load: it must finish or release its steps and
// exit cleanly; a new one takes its slot.
func (c *chaos) termWorker(ctx context.Context) {
	slot := c.intn(c.cfg.Workers)
	p, err := c.fleet.term(slot)
	c.countFault(FaultTerm, 1)
	if err != nil {
		c.violation("%v", err)
	}
	c.logf("SIGTERM %s: exited (%v)", p.id, p.err)
	time.Sleep(500 * time.Millisecond)
	if err := c.fleet.start(ctx, slot); err != nil {
		c.violation("restarting after SIGTERM: %v", err)
	}
}

// terminateBackends kills about half of the workers' database connections from the server
// side, as a failover or an administrator would.
func (c *chaos) terminateBackends(ctx context.Context) {
	var n int
	err := retrySQL(ctx, func(ctx context.Context) error {
		return c.admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		                               WHERE datname = current_database() AND usename = $1 AND random() < 0.5`,
			c.logins.workerName).Scan(&n)
	})
	if err != nil {
		c.violation("terminating worker connections: %v", err)
		return
	}
	c.countFault(FaultTerminate, 1)
	c.logf("pg_terminate_backend: %d worker connections", n)
}

// restartPostgres restarts the private cluster under load; on a given server it does nothing.
func (c *chaos) restartPostgres(ctx context.Context, kind string) {
	if c.cluster == nil {
		return
	}
	start := time.Now()
	err := c.cluster.restart(ctx, kind == FaultRestartImmediate)
	end := time.Now()
	if err != nil {
		c.violation("%s: %v", kind, err)
		return
	}
	c.mu.Lock()
	c.restarts = append(c.restarts, restart{kind: kind, start: start, end: end})
	c.report.RestartDowntime[kind] = append(c.report.RestartDowntime[kind], end.Sub(start))
	c.mu.Unlock()
	c.countFault(kind, 1)
	c.logf("%s took %s", kind, end.Sub(start).Round(time.Millisecond))
}

// staleOutput is what a stale completion tries to write; it would show in the output checks.
const staleOutput = `{"step": "stale", "value": -1}`

// duplicateCompletion repeats the completion of a step that already succeeded, in every form
// a worker sends (a completion and a failure, through finish_steps), as the worker login. Each
// must be refused as stale and leave the step as it was.
func (c *chaos) duplicateCompletion(ctx context.Context) {
	var s stepRef
	var job *int64
	var before string
	err := retrySQL(ctx, func(ctx context.Context) error {
		return c.admin.QueryRow(ctx, `SELECT sr.run_id, sr.step, sr.attempt, a.job_id, sr.output::text
		                                FROM qflow.step_runs sr
		                                JOIN qflow.step_attempts a ON a.run_id = sr.run_id AND a.step = sr.step AND a.attempt = sr.attempt
		                               WHERE sr.status = 'succeeded' ORDER BY sr.run_id DESC LIMIT 1`).Scan(&s.run, &s.step, &s.attempt, &job, &before)
	})
	if err != nil {
		c.logf("duplicate completion: no succeeded step yet (%v)", err)
		return
	}
	c.staleCalls(ctx, FaultDuplicate, s, job)
	var after, status string
	err = retrySQL(ctx, func(ctx context.Context) error {
		return c.admin.QueryRow(ctx, "SELECT output::text, status FROM qflow.step_runs WHERE run_id = $1 AND step = $2",
			s.run, s.step).Scan(&after, &status)
	})
	if err == nil && (after != before || status != "succeeded") {
		c.violation("duplicated: a repeated completion of step %s of run %d changed it to %s %s", s.step, s.run, status, after)
		c.mu.Lock()
		c.report.Duplicated++
		c.mu.Unlock()
	}
}

// lateCompletion sends the result of an attempt that is no longer the step's: a running step
// (or map element) gets a completion for its previous attempt (the one a sweep or a retry
// superseded). A map step's own row is left out: no worker ever ran an attempt of it.
func (c *chaos) lateCompletion(ctx context.Context) {
	var s stepRef
	err := retrySQL(ctx, func(ctx context.Context) error {
		return c.admin.QueryRow(ctx, `SELECT run_id, step, attempt - 1 FROM qflow.step_runs WHERE status = 'running' AND tasks IS NULL
		                               ORDER BY attempt DESC, run_id DESC LIMIT 1`).Scan(&s.run, &s.step, &s.attempt)
	})
	if err != nil {
		c.logf("late completion: no running step (%v)", err)
		return
	}
	c.staleCalls(ctx, FaultLate, s, nil)
}

// staleCalls makes the two stale calls and checks that each says so.
func (c *chaos) staleCalls(ctx context.Context, kind string, s stepRef, job *int64) {
	refused := func(what string, ok bool, err error) {
		if err != nil {
			c.violation("%s of step %s of run %d attempt %d (%s): %v", kind, s.step, s.run, s.attempt, what, err)
		} else if !ok {
			c.violation("duplicated: %s of step %s of run %d attempt %d was accepted by %s", kind, s.step, s.run, s.attempt, what)
			c.mu.Lock()
			c.report.Duplicated++
			c.mu.Unlock()
		}
	}
	var outcome string
	err := retrySQL(ctx, func(ctx context.Context) error {
		return c.worker.QueryRow(ctx, `SELECT f.outcome FROM qflow.finish_steps(jsonb_build_array(jsonb_build_object(
		                                  'run_id', $1::bigint, 'step', $2::text, 'attempt', $3::integer,
		                                  'result', 'fail', 'error', 'chaos: stale failure'))) f`,
			s.run, s.step, s.attempt).Scan(&outcome)
	})
	refused("a failure", outcome == "stale", err)
	err = retrySQL(ctx, func(ctx context.Context) error {
		return c.worker.QueryRow(ctx, `SELECT f.outcome FROM qflow.finish_steps(jsonb_build_array(jsonb_build_object(
		                                  'run_id', $1::bigint, 'step', $2::text, 'attempt', $3::integer, 'job_id', $4::bigint,
		                                  'result', 'complete', 'output', $5::jsonb))) f`,
			s.run, s.step, s.attempt, job, staleOutput).Scan(&outcome)
	})
	refused("a completion", outcome == "stale", err)
	c.countFault(kind, 1)
}
