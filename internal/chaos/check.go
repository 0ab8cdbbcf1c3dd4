package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/quantumflow/qflow/pipelines/probe"
)

// runBound is the latest a run r may end after its creation: every step of it using all its
// attempts, each followed by the step's longest retry delay and a sweep (1 s); plus $1
// milliseconds of slack. An attempt ends when its handler returns, at its timeout (within the
// lease grace, 2 s, and the second a handler deaf to cancellation is given), or, its worker
// dead, at the first sweep after the death, whichever comes first. The loaders never ask a
// handler to work longer than $2 milliseconds (maxWorkMS), so an attempt of a step whose timeout
// is longer (the long step) is allowed that much, not its timeout: a run whose long step waited
// for its lease after a death, rather than for the sweep to notice it, ends past its bound.
// A map step counts once: its elements run side by side, each with the step's attempts, so its
// slowest element is bound as one step is; their wait for a worker slot is the slack's.
const runBound = `((SELECT sum(s.max_attempts * (least(s.timeout_ms, $2::bigint) + 2000 + 1000 + s.retry_max_ms + 1000))
                      FROM qflow.steps s WHERE s.workflow = r.workflow AND s.version = r.version) + $1::bigint)
                  * interval '1 millisecond'`

// liveJobStates are the River job states in which a job may still run.
const liveJobStates = `('available', 'running', 'scheduled', 'retryable', 'pending')`

// maxListed caps the violations listed per check; the counts are complete.
const maxListed = 10

// check reads the tables and records every broken invariant.
func (c *chaos) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r := c.report
	slackMS := c.slack().Milliseconds()

	// Every confirmed insert is there, and nothing else was.
	keys := sortedKeys(c.acked)
	var found, total int
	if err := c.admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE idempotency_key = ANY($1)), count(*) FROM qflow.runs`, keys).Scan(&found, &total); err != nil {
		return fmt.Errorf("counting runs: %w", err)
	}
	if found != len(keys) {
		r.Lost += len(keys) - found
		c.violation("lost: %d of %d confirmed runs are missing", len(keys)-found, len(keys))
	}
	r.Runs = total

	if err := c.checkStuck(ctx, slackMS); err != nil {
		return err
	}
	if err := c.checkRuns(ctx); err != nil {
		return err
	}
	if err := c.checkAttempts(ctx); err != nil {
		return err
	}
	if err := c.checkMaps(ctx); err != nil {
		return err
	}
	if err := c.checkLimits(ctx); err != nil {
		return err
	}
	return c.measureRecovery(ctx)
}

// rows runs a query of one or more columns and calls each for every row.
func (c *chaos) rows(ctx context.Context, sql string, args []any, each func(pgx.Rows) error) error {
	rows, err := c.admin.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// listed counts a violation under an invariant, listing the first few.
func (c *chaos) listed(counter *int, listedSoFar *int, format string, args ...any) {
	*counter++
	*listedSoFar++
	if *listedSoFar <= maxListed {
		c.violation(format, args...)
	}
}

// checkStuck: every run ended within its bound, and an ended run keeps nothing live.
func (c *chaos) checkStuck(ctx context.Context, slackMS int64) error {
	r := c.report
	n := 0
	checks := []struct {
		what, sql string
		args      []any
	}{
		{"run still %s: %s", `SELECT r.status, r.id::text FROM qflow.runs r WHERE r.status IN ('pending', 'running') ORDER BY r.id`, nil},
		{"run ended %s past its bound: %s", `SELECT (r.finished_at - r.created_at - ` + runBound + `)::text, r.id::text FROM qflow.runs r
		   WHERE r.finished_at IS NOT NULL AND r.finished_at > r.created_at + ` + runBound + ` ORDER BY r.id`, []any{slackMS, maxWorkMS}},
		{"step left %s in ended run/step %s", `SELECT sr.status, sr.run_id || '/' || sr.step FROM qflow.step_runs sr JOIN qflow.runs r ON r.id = sr.run_id
		   WHERE r.status NOT IN ('pending', 'running') AND sr.status IN ('waiting', 'ready', 'queued', 'running') ORDER BY 2`, nil},
		{"attempt left %s in ended run/step/attempt %s", `SELECT a.status, a.run_id || '/' || a.step || '/' || a.attempt FROM qflow.step_attempts a JOIN qflow.runs r ON r.id = a.run_id
		   WHERE r.status NOT IN ('pending', 'running') AND a.status = 'running' ORDER BY 2`, nil},
		{"River job %s for ended run: job/run %s", `SELECT j.state::text, j.id || '/' || r.id FROM river.river_job j JOIN qflow.runs r ON r.id = (j.args ->> 'run_id')::bigint
		   WHERE j.kind IN ('qflow_step', 'qflow_legacy') AND j.state IN ` + liveJobStates + ` AND r.status NOT IN ('pending', 'running') ORDER BY j.id`, nil},
	}
	for _, ch := range checks {
		err := c.rows(ctx, ch.sql, ch.args, func(row pgx.Rows) error {
			var a, b string
			if err := row.Scan(&a, &b); err != nil {
				return err
			}
			c.listed(&r.Stuck, &n, "stuck: "+ch.what, a, b)
			return nil
		})
		if err != nil {
			return fmt.Errorf("checking for stuck work: %w", err)
		}
	}
	return nil
}

// probeInput is the part of a run's input that decides how it must end.
type probeInput struct {
	Seed  int64          `json:"seed"`
	Fail  map[string]int `json:"fail"`
	Panic map[string]int `json:"panic"`
	Fatal []string       `json:"fatal"`
	Hang  []string       `json:"hang"`
	Chaos struct {
		Cancel bool `json:"cancel"`
	} `json:"chaos"`
	// probe_map's: how many elements, and the element (by value) that fails once or for good.
	N         *int   `json:"n"`
	FailItem  *int64 `json:"fail_item"`
	FatalItem *int64 `json:"fatal_item"`
	// probe_branch's: the branch to take.
	Size string `json:"size"`
}

// dag is one workflow version's steps in topological order with their dependencies.
type dag struct {
	workflow    string
	order       []string
	deps        map[string][]string
	maxAttempts map[string]int
}

func (c *chaos) dags(ctx context.Context) (map[string]*dag, error) {
	out := map[string]*dag{}
	err := c.rows(ctx, `SELECT s.workflow || '@' || s.version, s.workflow, s.name, s.max_attempts,
	                           coalesce((SELECT array_agg(d.depends_on ORDER BY d.depends_on) FROM qflow.step_deps d
	                                      WHERE d.workflow = s.workflow AND d.version = s.version AND d.step = s.name), '{}')
	                      FROM qflow.steps s ORDER BY 1, s.position`, nil, func(row pgx.Rows) error {
		var key, workflow, name string
		var attempts int
		var deps []string
		if err := row.Scan(&key, &workflow, &name, &attempts, &deps); err != nil {
			return err
		}
		d := out[key]
		if d == nil {
			d = &dag{workflow: workflow, deps: map[string][]string{}, maxAttempts: map[string]int{}}
			out[key] = d
		}
		d.order = append(d.order, name)
		d.deps[name] = deps
		d.maxAttempts[name] = attempts
		return nil
	})
	return out, err
}

// values computes what the probe handler outputs at every step for a seed.
func (d *dag) values(seed int64) map[string]int64 {
	v := map[string]int64{}
	for _, s := range d.order {
		if len(d.deps[s]) == 0 {
			v[s] = 1 + 2*seed
			continue
		}
		var sum int64
		for _, dep := range d.deps[s] {
			sum += v[dep]
		}
		v[s] = 1 + 2*sum
	}
	return v
}

// mustFail says why a run's input makes it fail, or "" when it must succeed. A probe_map
// element that fails once is retried like any step; one that is fatal fails its map step.
func (d *dag) mustFail(in probeInput) string {
	if k := in.FatalItem; d.workflow == probe.Map && k != nil && *k >= 1 && *k <= int64(in.items()) {
		return "fatal " + element("square", int(*k-1))
	}
	for _, s := range d.order {
		switch {
		case slices.Contains(in.Fatal, s):
			return "fatal " + s
		case slices.Contains(in.Hang, s):
			return "hang " + s
		case in.Fail[s]+in.Panic[s] >= d.maxAttempts[s]:
			return "fail " + s
		}
	}
	return ""
}

// runAttempts is what a run's attempts tell about its end.
type runAttempts struct {
	// faulted: the sweep gave up an attempt, its worker's session having ended or its lease
	// having run out; faultedNetwork: one of them while its worker was under a network fault.
	faulted, faultedNetwork bool
	// unexplained describes the first attempt that failed for a reason neither its input nor
	// the sweep gives (a network error that reached a step, say); unexplainedNetwork: it
	// failed while its worker was under a network fault.
	unexplained        string
	unexplainedNetwork bool
	// released: an attempt was given back at a worker's shutdown, so the attempt numbers the
	// probe input counts moved on without spending the budget.
	released bool
	// failures counts each step's failed and timed-out attempts: the retry budget spent. A
	// claim lost in a Postgres crash (claims commit without waiting for the WAL flush) is
	// queued again under the next attempt number without a failure, so the attempt numbers
	// the probe input counts can move past the budget without spending it.
	failures map[string]int
}

// checkRuns: each run ended as its input says, with the outputs the handlers compute: in any
// ended run, every succeeded step row (a map's elements included) has its output, and a step
// the input skips (a branch not taken) never ran; a succeeded run has every row its input
// makes, each succeeded or skipped as it says, and the output of its leaves.
func (c *chaos) checkRuns(ctx context.Context) error {
	r := c.report
	dags, err := c.dags(ctx)
	if err != nil {
		return fmt.Errorf("reading definitions: %w", err)
	}
	attempts := map[int64]*runAttempts{}
	attemptsOf := func(id int64) *runAttempts {
		if attempts[id] == nil {
			attempts[id] = &runAttempts{}
		}
		return attempts[id]
	}
	err = c.rows(ctx, `SELECT run_id FROM qflow.step_attempts WHERE status = 'cancelled' AND error LIKE 'worker % shut down'`, nil,
		func(row pgx.Rows) error {
			var id int64
			if err := row.Scan(&id); err != nil {
				return err
			}
			attemptsOf(id).released = true
			return nil
		})
	if err != nil {
		return fmt.Errorf("reading released attempts: %w", err)
	}
	// The attempts that failed for a reason their input did not ask for.
	err = c.rows(ctx, `SELECT run_id, step, attempt, coalesce(worker, ''), started_at, coalesce(finished_at, now()), error,
	                          coalesce(error LIKE $1 OR error LIKE $2, false)
	                     FROM qflow.step_attempts
	                    WHERE status IN ('failed', 'timed_out') AND coalesce(error, '') NOT LIKE '%by request%'
	                    ORDER BY run_id, step, attempt`, []any{diedLike, leaseLike}, func(row pgx.Rows) error {
		var s stepRef
		var worker string
		var from, to time.Time
		var why *string
		var swept bool
		if err := row.Scan(&s.run, &s.step, &s.attempt, &worker, &from, &to, &why, &swept); err != nil {
			return err
		}
		a := attemptsOf(s.run)
		network := c.underNetworkFault(worker, from, to)
		switch {
		case swept:
			a.faulted = true
			a.faultedNetwork = a.faultedNetwork || network
		case a.unexplained == "":
			a.unexplained = fmt.Sprintf("step %s attempt %d on %s: %s", s.step, s.attempt, worker, deref(why))
			a.unexplainedNetwork = network
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading attempts: %w", err)
	}
	err = c.rows(ctx, `SELECT run_id, step, count(*) FROM qflow.step_attempts
	                    WHERE status IN ('failed', 'timed_out') GROUP BY run_id, step`, nil, func(row pgx.Rows) error {
		var id int64
		var step string
		var n int
		if err := row.Scan(&id, &step, &n); err != nil {
			return err
		}
		a := attemptsOf(id)
		if a.failures == nil {
			a.failures = map[string]int{}
		}
		a.failures[step] = n
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading failed attempts: %w", err)
	}
	steps := map[int64]map[string]stepRow{}
	err = c.rows(ctx, `SELECT run_id, step, status, output FROM qflow.step_runs`, nil, func(row pgx.Rows) error {
		var id int64
		var name string
		var s stepRow
		if err := row.Scan(&id, &name, &s.status, &s.output); err != nil {
			return err
		}
		if steps[id] == nil {
			steps[id] = map[string]stepRow{}
		}
		steps[id][name] = s
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading steps: %w", err)
	}

	lost, byNetwork := 0, 0
	err = c.rows(ctx, `SELECT id, workflow, workflow || '@' || version, status, coalesce(error, ''), input, output FROM qflow.runs ORDER BY id`, nil,
		func(row pgx.Rows) error {
			var id int64
			var workflow, key, status, runErr string
			var rawIn, rawOut json.RawMessage
			if err := row.Scan(&id, &workflow, &key, &status, &runErr, &rawIn, &rawOut); err != nil {
				return err
			}
			r.Outcomes[status]++
			if r.ByWorkflow[workflow] == nil {
				r.ByWorkflow[workflow] = map[string]int{}
			}
			r.ByWorkflow[workflow][status]++
			var in probeInput
			if err := json.Unmarshal(rawIn, &in); err != nil {
				c.listed(&r.Lost, &lost, "lost: run %d has an input the loaders did not write: %s", id, rawIn)
				return nil
			}
			d := dags[key]
			if d == nil {
				c.listed(&r.Lost, &lost, "lost: run %d of unknown workflow %s", id, key)
				return nil
			}
			a := attemptsOf(id)
			why := d.mustFail(in)
			w := d.expect(workflow, in)
			if status != "pending" && status != "running" {
				c.checkSteps(id, w, steps[id], &lost)
			}
			switch status {
			case "pending", "running":
				// counted as stuck
			case "cancelled":
				if !in.Chaos.Cancel || runErr != "cancelled by request" {
					c.listed(&r.Lost, &lost, "lost: run %d was cancelled (%s) and nobody asked", id, runErr)
				}
			case "timed_out":
				c.listed(&r.Lost, &lost, "lost: run %d timed out: %s", id, runErr)
			case "failed":
				switch {
				case why != "":
				case a.unexplainedNetwork:
					c.listed(&r.FailedByNetwork, &byNetwork, "failed by network: run %d failed (%s), its %s, during a network fault", id, runErr, a.unexplained)
				case a.unexplained != "":
					c.listed(&r.Lost, &lost, "lost: run %d failed with no fault to blame: %s (%s)", id, runErr, a.unexplained)
				case a.faulted:
					r.FaultSpent++
					if a.faultedNetwork {
						r.FaultSpentNetwork++
					}
				default:
					c.listed(&r.Lost, &lost, "lost: run %d failed with no fault to blame: %s", id, runErr)
				}
			case "succeeded":
				// A "fail" input may still succeed when its step's attempt numbers moved on
				// without spending the budget (a release at shutdown, a claim lost in a crash).
				failStep, isFail := strings.CutPrefix(why, "fail ")
				if why != "" && !(isFail && (a.released || a.failures[failStep] < d.maxAttempts[failStep])) {
					c.listed(&r.Lost, &lost, "lost: run %d succeeded although its input says %s", id, why)
				}
				for _, s := range w.order {
					wantStatus := "succeeded"
					if w.steps[s].skipped {
						wantStatus = "skipped"
					}
					if sr, ok := steps[id][s]; !ok || sr.status != wantStatus {
						c.listed(&r.Lost, &lost, "lost: step %s of succeeded run %d is %s, want %s", s, id, orNone(sr.status), wantStatus)
					}
				}
				if !sameJSON(rawOut, w.output) {
					c.listed(&r.Lost, &lost, "lost: run %d output %s, want %s", id, rawOut, jsonText(w.output))
				}
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("checking runs: %w", err)
	}
	return nil
}

// stepRow is a step row's end, as checkRuns reads it.
type stepRow struct {
	status string
	output json.RawMessage
}

// checkSteps checks the step rows of an ended run against what its input makes of them: a row
// the input does not make (an element past n), a succeeded row with another output, a row the
// input skips that did anything but get skipped or cancelled (with its run), and a row skipped
// although the input runs it.
func (c *chaos) checkSteps(run int64, w *want, rows map[string]stepRow, lost *int) {
	r := c.report
	for _, s := range sortedKeys(rows) {
		sr := rows[s]
		ws, ok := w.steps[s]
		switch {
		case !ok:
			c.listed(&r.Lost, lost, "lost: run %d has a step row %s (%s) its input does not make", run, s, sr.status)
		case ws.skipped && sr.status != "skipped" && sr.status != "cancelled":
			c.listed(&r.Lost, lost, "lost: step %s of run %d is %s although its input skips it", s, run, sr.status)
		case !ws.skipped && sr.status == "skipped":
			c.listed(&r.Lost, lost, "lost: step %s of run %d was skipped although its input runs it", s, run)
		case sr.status == "succeeded" && !sameJSON(sr.output, ws.output):
			c.listed(&r.Lost, lost, "lost: step %s of run %d output %s, want %s", s, run, sr.output, jsonText(ws.output))
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "missing"
	}
	return s
}

func (d *dag) isDependency(step string) bool {
	for _, deps := range d.deps {
		if slices.Contains(deps, step) {
			return true
		}
	}
	return false
}

// checkAttempts: no step or map element succeeded twice or made more counted attempts than its
// budget, and the hangs and panics the inputs asked for happened.
//
// A map element's definition is its map step's (def_step): joined on the row's own name, as
// these checks once were, an element ("square[3]") matched no step and its attempts went
// unchecked. So do the lease checks of measureRecovery, and the faults that look for busy
// workers.
func (c *chaos) checkAttempts(ctx context.Context) error {
	r := c.report
	n, m := 0, 0
	err := c.rows(ctx, `SELECT a.run_id, a.step, count(*) FILTER (WHERE a.status = 'succeeded'),
	                           count(*) FILTER (WHERE a.status IN ('succeeded', 'failed', 'timed_out') AND a.attempt >= sr.first_attempt),
	                           s.max_attempts
	                      FROM qflow.step_attempts a
	                      JOIN qflow.step_runs sr ON sr.run_id = a.run_id AND sr.step = a.step
	                      JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
	                     GROUP BY a.run_id, a.step, s.max_attempts
	                    HAVING count(*) FILTER (WHERE a.status = 'succeeded') > 1
	                        OR count(*) FILTER (WHERE a.status IN ('succeeded', 'failed', 'timed_out') AND a.attempt >= sr.first_attempt) > s.max_attempts
	                     ORDER BY 1, 2`, nil, func(row pgx.Rows) error {
		var run int64
		var step string
		var succeeded, counted, budget int
		if err := row.Scan(&run, &step, &succeeded, &counted, &budget); err != nil {
			return err
		}
		if succeeded > 1 {
			c.listed(&r.Duplicated, &n, "duplicated: step %s of run %d succeeded %d times", step, run, succeeded)
		}
		if counted > budget {
			c.listed(&r.OverBudget, &m, "over budget: step %s of run %d made %d attempts, max_attempts %d", step, run, counted, budget)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking attempts: %w", err)
	}
	// Every succeeded step of any run has exactly the one succeeded attempt behind it, but a
	// map step's own row (tasks set): no worker runs it, its elements have the attempts, and it
	// succeeds when they all have (checkMaps).
	lost := 0
	err = c.rows(ctx, `SELECT sr.run_id, sr.step FROM qflow.step_runs sr
	                    WHERE sr.status = 'succeeded' AND sr.tasks IS NULL
	                      AND NOT EXISTS (SELECT 1 FROM qflow.step_attempts a WHERE a.run_id = sr.run_id AND a.step = sr.step
	                                         AND a.attempt = sr.attempt AND a.status = 'succeeded')`, nil, func(row pgx.Rows) error {
		var run int64
		var step string
		if err := row.Scan(&run, &step); err != nil {
			return err
		}
		c.listed(&r.Lost, &lost, "lost: step %s of run %d succeeded without a succeeded attempt", step, run)
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking attempts: %w", err)
	}
	// A skipped step never ran (a branch not taken, or after skipped dependencies).
	err = c.rows(ctx, `SELECT sr.run_id, sr.step, count(*) FROM qflow.step_runs sr
	                     JOIN qflow.step_attempts a ON a.run_id = sr.run_id AND a.step = sr.step
	                    WHERE sr.status = 'skipped' GROUP BY 1, 2 ORDER BY 1, 2`, nil, func(row pgx.Rows) error {
		var run int64
		var step string
		var attempts int
		if err := row.Scan(&run, &step, &attempts); err != nil {
			return err
		}
		c.listed(&r.Lost, &lost, "lost: step %s of run %d was skipped, yet made %d attempts", step, run, attempts)
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking skipped steps: %w", err)
	}
	var hangs, panics int
	err = c.admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE a.status = 'timed_out' AND r.input -> 'hang' ? a.step),
	                                    count(*) FILTER (WHERE a.error LIKE 'handler panicked%')
	                               FROM qflow.step_attempts a JOIN qflow.runs r ON r.id = a.run_id`).Scan(&hangs, &panics)
	if err != nil {
		return fmt.Errorf("counting hangs and panics: %w", err)
	}
	c.countFault(FaultHang, hangs)
	c.countFault(FaultPanic, panics)
	return nil
}

// checkLimits: at no moment did more attempts of a limited step overlap than its limit. An
// attempt holds its slot from its start to its end as recorded (a dead worker's until the
// sweep gives it up, which is when the slot is handed on); the elements of a limited map step
// each hold one of the step's slots.
func (c *chaos) checkLimits(ctx context.Context) error {
	r := c.report
	n := 0
	return c.rows(ctx, `
		WITH limited AS (
		    SELECT DISTINCT ON (workflow, name) workflow, name, max_concurrency
		      FROM qflow.steps WHERE max_concurrency IS NOT NULL ORDER BY workflow, name, version DESC
		), edges AS (
		    SELECT l.workflow, l.name, l.max_concurrency, e.at, e.delta
		      FROM limited l
		      JOIN qflow.runs r ON r.workflow = l.workflow
		      JOIN qflow.step_attempts a ON a.run_id = r.id AND split_part(a.step, '[', 1) = l.name
		     CROSS JOIN LATERAL (VALUES (a.started_at, 1), (greatest(coalesce(a.finished_at, now()), a.started_at), -1)) e(at, delta)
		), overlap AS (
		    SELECT workflow, name, max_concurrency,
		           sum(delta) OVER (PARTITION BY workflow, name ORDER BY at, delta ROWS UNBOUNDED PRECEDING) AS busy
		      FROM edges
		)
		SELECT workflow || '.' || name, max_concurrency, max(busy), count(*) FILTER (WHERE busy > max_concurrency)
		  FROM overlap GROUP BY 1, 2 ORDER BY 1`, nil, func(row pgx.Rows) error {
		var step string
		var limit, peak, over int
		if err := row.Scan(&step, &limit, &peak, &over); err != nil {
			return err
		}
		if peak > r.LimitPeak || r.Limit == 0 {
			r.LimitPeak, r.Limit = peak, limit
		}
		if over > 0 {
			r.LimitViolations += over
			n++
			if n <= maxListed {
				c.violation("limit: %s ran %d at once (max_concurrency %d), over the limit at %d moments", step, peak, limit, over)
			}
		}
		return nil
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// deathNotice is how long after a worker's death the sweep gives up its attempts: its session
// must have been gone 1.5 s (sql/schema/0650_sweep.sql), then a sweep comes within half a
// second. An attempt whose lease ran out sooner after the kill ends by lease expiry, rightly.
const deathNotice = 2 * time.Second

// abandonMS is how long a worker waits for a handler deaf to its cancelled context before it
// reports the attempt anyway (worker/step.go's abandonAfter).
const abandonMS = 1000

// Errors the sweep gives an attempt up with (sql/schema/0610_sweep_lease.sql).
const (
	diedLike  = "%died: its database session ended%"
	leaseLike = "lease expired%"
)

// measureRecovery turns the faults' records into recovery times, and counts the attempts the
// sweep gave up. For each attempt a killed worker was running (it started before the kill and
// had not finished by then, on the database's clock), until the step's next attempt started;
// one that waited for its lease instead of the sweep noticing the death is a violation. For
// each Postgres restart, until the first step completed after the server was back.
func (c *chaos) measureRecovery(ctx context.Context) error {
	r := c.report
	n := 0
	for _, k := range c.kills {
		err := c.rows(ctx, `SELECT a.run_id, a.step, a.attempt, s.timeout_ms, a.status, coalesce(a.error, ''), r.status,
		                           coalesce(a.error LIKE $3, false), coalesce(a.error LIKE $4, false),
		                           qflow.lease_expiry(a.started_at, s.timeout_ms),
		                           (SELECT min(x.started_at) FROM qflow.step_attempts x
		                             WHERE x.run_id = a.run_id AND x.step = a.step AND x.attempt > a.attempt)
		                      FROM qflow.step_attempts a
		                      JOIN qflow.step_runs sr ON sr.run_id = a.run_id AND sr.step = a.step
		                      JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
		                      JOIN qflow.runs r ON r.id = a.run_id
		                     WHERE a.worker = $1 AND a.started_at <= $2 AND (a.finished_at IS NULL OR a.finished_at >= $2)
		                     ORDER BY 1, 2, 3`, []any{k.victim, k.at, diedLike, leaseLike}, func(row pgx.Rows) error {
			var s stepRef
			var timeoutMS int64
			var status, why, runStatus string
			var died, leaseExpired bool
			var lease time.Time
			var next *time.Time
			if err := row.Scan(&s.run, &s.step, &s.attempt, &timeoutMS, &status, &why, &runStatus, &died, &leaseExpired, &lease, &next); err != nil {
				return err
			}
			r.KilledAttempts++
			long := time.Duration(timeoutMS)*time.Millisecond > shortTimeoutMax
			if died {
				r.DiedAtKill++
				if long {
					r.DiedLongAtKill++
				}
			}
			switch {
			case leaseExpired && lease.After(k.at.Add(deathNotice)):
				c.listed(&r.LeaseWaits, &n, "lease: step %s of run %d attempt %d (timeout %s) ended by lease expiry although its worker %s was SIGKILLed (%s)",
					s.step, s.run, s.attempt, time.Duration(timeoutMS)*time.Millisecond, k.victim, why)
			case long && next != nil && !next.Before(lease):
				c.listed(&r.LeaseWaits, &n, "lease: long step %s of run %d ran again %s after its worker %s was SIGKILLed, past the lease of attempt %d (it ended %s: %s)",
					s.step, s.run, next.Sub(k.at).Round(10*time.Millisecond), k.victim, s.attempt, status, why)
			}
			switch {
			case next == nil:
				r.KilledNotRetried++
				c.logf("killed attempt %d of step %s of run %d not retried (it ended %s: %s; the run %s)", s.attempt, s.step, s.run, status, why, runStatus)
			case long:
				r.KillRecoveryLong = append(r.KillRecoveryLong, next.Sub(k.at))
			default:
				r.KillRecoveryShort = append(r.KillRecoveryShort, next.Sub(k.at))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("measuring recovery after the SIGKILL of %s: %w", k.victim, err)
		}
	}
	err := c.admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE a.error LIKE $1), count(*) FILTER (WHERE a.error LIKE $1 AND s.timeout_ms > $3),
	                                     count(*) FILTER (WHERE a.error LIKE $2)
	                                FROM qflow.step_attempts a
	                                JOIN qflow.step_runs sr ON sr.run_id = a.run_id AND sr.step = a.step
	                                JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step`,
		diedLike, leaseLike, shortTimeoutMax.Milliseconds()).Scan(&r.Died, &r.DiedLong, &r.LeaseExpired)
	if err != nil {
		return fmt.Errorf("counting attempts given up: %w", err)
	}
	// No lease ran out while its worker was alive and connected.
	killedAt := map[string]time.Time{}
	for _, k := range c.kills {
		killedAt[k.victim] = k.at
	}
	n = 0
	err = c.rows(ctx, `SELECT a.run_id, a.step, a.attempt, coalesce(a.worker, ''), a.started_at, a.finished_at, a.error LIKE $2,
	                          a.started_at + (least(s.timeout_ms, $3) + $4) * interval '1 millisecond'
	                     FROM qflow.step_attempts a
	                     JOIN qflow.step_runs sr ON sr.run_id = a.run_id AND sr.step = a.step
	                     JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
	                    WHERE a.error LIKE $1 OR a.error LIKE $2 ORDER BY a.finished_at`,
		[]any{diedLike, leaseLike, maxWorkMS, abandonMS}, func(row pgx.Rows) error {
			var s stepRef
			var worker string
			var from, to, handlerDone time.Time
			var leased bool
			if err := row.Scan(&s.run, &s.step, &s.attempt, &worker, &from, &to, &leased, &handlerDone); err != nil {
				return err
			}
			// Given up while its worker lived: at a SIGKILL it is the lease_waits check's.
			killed, wasKilled := killedAt[worker]
			if wasKilled && !to.Before(killed) {
				return nil
			}
			switch network := c.underNetworkFault(worker, from, to); {
			case network && leased:
				r.LeaseExpiredNetwork++
			case network:
				r.DiedNetwork++
			}
			// By handlerDone the handler has returned or been abandoned, and a connected worker
			// reports at once and sends its result again until the database takes it: only a
			// worker cut off from then until the sweep gave the attempt up could not.
			if leased && !c.cutOffThroughout(worker, handlerDone, to) {
				c.listed(&r.LeaseExpiredLive, &n, "lease: step %s of run %d attempt %d expired although its worker %s was alive and connected (it started at %s, its handler was done by %s, the sweep gave it up at %s)",
					s.step, s.run, s.attempt, worker, from.Format("15:04:05.000"), handlerDone.Format("15:04:05.000"), to.Format("15:04:05.000"))
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("checking lease expiries: %w", err)
	}
	err = c.rows(ctx, `SELECT a.run_id || '/' || a.step || '/' || a.attempt || ' on ' || coalesce(a.worker, '?')
	                          || ' (timeout ' || s.timeout_ms || ' ms): ran ' || (a.finished_at - a.started_at)::text
	                          || ', ' || a.error
	                     FROM qflow.step_attempts a
	                     JOIN qflow.step_runs sr ON sr.run_id = a.run_id AND sr.step = a.step
	                     JOIN qflow.steps s ON s.workflow = sr.workflow AND s.version = sr.version AND s.name = sr.def_step
	                    WHERE a.error LIKE $1 ORDER BY a.finished_at LIMIT $2`, []any{leaseLike, maxListed}, func(row pgx.Rows) error {
		var e string
		if err := row.Scan(&e); err != nil {
			return err
		}
		r.LeaseExpiries = append(r.LeaseExpiries, e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing lease expiries: %w", err)
	}
	for _, rs := range c.restarts {
		var first *time.Time
		err := c.admin.QueryRow(ctx, `SELECT min(finished_at) FROM qflow.step_attempts WHERE status = 'succeeded' AND finished_at >= $1`,
			rs.end).Scan(&first)
		if err != nil {
			return fmt.Errorf("measuring recovery: %w", err)
		}
		if first != nil {
			r.RestartRecovery[rs.kind] = append(r.RestartRecovery[rs.kind], first.Sub(rs.start))
		}
	}
	return nil
}
