package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quantumflow/qflow/pipelines/probe"
)

// runSpec is one run a loader inserts.
type runSpec struct {
	workflow string
	input    map[string]any
	key      string
	// cancel: the loader cancels the run this long after inserting it.
	cancel time.Duration
}

// probeSteps are the probe workflows' steps, to aim failures at.
var probeSteps = map[string][]string{
	"probe_chain":   {"a", "b", "c", "d", "e"},
	"probe_diamond": {"a", "b", "c", "d"},
	"probe_limited": {"a", "b", "c"},
}

// hangMS is how long a hanging step sleeps, deaf to cancellation: past its 5 s timeout and
// the second the worker then waits, so that it is abandoned.
const hangMS = 7000

// The long step stands for a training step on a scarce GPU: probe_limited's c, given a timeout
// of minutes at setup (configureLongStep), where every other probe step has 5 s. Long runs ask
// it to work a few seconds, long enough that SIGKILLs often land on it and short enough that a
// run ends in a few seconds unless the engine waits for a lease instead of noticing the death.
const (
	longWorkflow  = "probe_limited"
	longStep      = "c"
	longTimeout   = 3 * time.Minute
	longWorkMinMS = 2000
	longWorkMaxMS = 5000
)

// shortTimeoutMax is the longest timeout of a step the report counts as short.
const shortTimeoutMax = time.Minute

// maxWorkMS is the longest the loaders ask any handler to work, hanging or not.
const maxWorkMS = max(hangMS, longWorkMaxMS)

// nextRun draws a run: plain runs with short sleeps, a share of each behaviour the engine
// must survive, 3% long runs (a few seconds in the long step: with a dozen worker slots that
// keeps two or three of them busy with long steps, the rest free for the load), 12% map runs
// and 10% branch runs.
func (c *chaos) nextRun(key string) runSpec {
	wf := "probe_chain"
	if c.intn(2) == 0 {
		wf = "probe_diamond"
	}
	in := map[string]any{"seed": c.intn(10), "sleep_ms": c.intn(60)}
	spec := runSpec{workflow: wf, input: in, key: key}
	step := func() string { s := probeSteps[spec.workflow]; return s[c.intn(len(s))] }
	switch r := c.intn(1000); {
	case r < 100:
		spec.workflow = "probe_limited"
		in["sleep_ms"] = map[string]int{"b": 80 + c.intn(80)}
	case r < 250:
		in["fail"] = map[string]int{step(): 1} // a retry, then success
	case r < 330:
		in["panic"] = map[string]int{step(): 1} // a panic, then success
	case r < 370:
		in["fail"] = map[string]int{step(): 3} // every attempt fails: the run fails
	case r < 410:
		in["fatal"] = []string{step()}
	case r < 470:
		in["chaos"] = map[string]bool{"cancel": true}
		in["sleep_ms"] = 100
		spec.cancel = time.Duration(c.intn(500)) * time.Millisecond
	case r < 500 && c.mayHang():
		in["hang"] = []string{step()}
		in["hang_ms"] = hangMS
	case r >= 500 && r < 530:
		spec.workflow = longWorkflow
		in["sleep_ms"] = map[string]int{longStep: longWorkMinMS + c.intn(longWorkMaxMS-longWorkMinMS+1)}
	case r >= 530 && r < 650:
		return c.mapRun(key)
	case r >= 650 && r < 750:
		return c.branchRun(key)
	}
	return spec
}

// mapMaxN is the most elements a map run asks for: more than the dozen worker slots, so
// that a map's elements queue behind each other and behind the rest of the load.
const mapMaxN = 20

// mapRun draws a probe_map run of 0 to mapMaxN elements (0: the empty map, which succeeds
// at once): half of them working a few milliseconds per element, and a share with an element
// that fails once (retried), one that fails for good (the run fails and its other elements
// are stopped), or cancelled while its elements run.
func (c *chaos) mapRun(key string) runSpec {
	n := c.intn(mapMaxN + 1)
	in := map[string]any{"n": n}
	spec := runSpec{workflow: probe.Map, input: in, key: key}
	if c.intn(2) == 0 {
		in["sleep_ms"] = map[string]int{"square": c.intn(30)}
	}
	if n == 0 {
		return spec
	}
	switch r := c.intn(100); {
	case r < 25:
		in["fail_item"] = 1 + c.intn(n)
	case r < 30:
		in["fatal_item"] = 1 + c.intn(n)
	case r < 35:
		in["chaos"] = map[string]bool{"cancel": true}
		in["sleep_ms"] = map[string]int{"square": 100}
		spec.cancel = time.Duration(c.intn(500)) * time.Millisecond
	}
	return spec
}

// branchSizes are the sizes a branch run asks for: one per branch, and one that takes
// neither (big, small and finish are skipped, and the run succeeds).
var branchSizes = []string{"big", "small", "medium"}

// branchRun draws a probe_branch run, a fifth of them with a retry of check or of the branch
// taken, so that a retried step's successors are decided by their condition all the same.
func (c *chaos) branchRun(key string) runSpec {
	size := branchSizes[c.intn(len(branchSizes))]
	in := map[string]any{"size": size, "seed": c.intn(10), "sleep_ms": c.intn(60)}
	if c.intn(5) == 0 {
		step := "check"
		if size != "medium" && c.intn(2) == 0 {
			step = size
		}
		in["fail"] = map[string]int{step: 1}
	}
	return runSpec{workflow: probe.Branch, input: in, key: key}
}

// mayHang rations hanging runs: each holds a worker slot for three step timeouts.
func (c *chaos) mayHang() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.cfg.Short {
		// Early enough to end before the load does, twice at most.
		if c.hangs >= 2 || now.Sub(c.started) > c.cfg.Duration/2 {
			return false
		}
	} else if now.Sub(c.lastHang) < 10*time.Second {
		return false
	}
	c.hangs++
	c.lastHang = now
	return true
}

const insertRuns = `
INSERT INTO qflow.runs (workflow, input, idempotency_key)
SELECT x.workflow, x.input::jsonb, x.key
  FROM unnest($1::text[], $2::text[], $3::text[]) AS x(workflow, input, key)
    ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, idempotency_key`

// load inserts batches of runs as the trigger login until ctx ends, cancelling the ones
// drawn for it. An insert whose answer a fault swallowed is sent again with the same keys:
// the runs it did insert are kept, the rest inserted now.
func (c *chaos) load(ctx context.Context, n int) {
	pool, err := newPool(ctx, c.logins.trigger, 1)
	if err != nil {
		c.violation("loader %d: %v", n, err)
		return
	}
	defer pool.Close()
	interval := 200 * time.Millisecond
	if c.cfg.Short {
		interval = 250 * time.Millisecond
	}
	type cancelAt struct {
		run int64
		at  time.Time
	}
	var cancels []cancelAt
	for seq := 0; ctx.Err() == nil; {
		batch := make([]runSpec, 1+c.intn(3))
		var wfs, inputs, keys []string
		for i := range batch {
			seq++
			batch[i] = c.nextRun(fmt.Sprintf("chaos-%d-%d", n, seq))
			raw, _ := json.Marshal(batch[i].input)
			wfs, inputs, keys = append(wfs, batch[i].workflow), append(inputs, string(raw)), append(keys, batch[i].key)
		}
		ids := map[string]int64{}
		err := retrySQL(ctx, func(ctx context.Context) error {
			rows, err := pool.Query(ctx, insertRuns, wfs, inputs, keys)
			if err != nil {
				return err
			}
			for rows.Next() {
				var id int64
				var key string
				if err := rows.Scan(&id, &key); err != nil {
					rows.Close()
					return err
				}
				ids[key] = id
			}
			return rows.Err()
		})
		if err != nil {
			if ctx.Err() == nil {
				c.violation("loader %d: inserting runs: %v", n, err)
			}
			break
		}
		c.mu.Lock()
		for _, k := range keys {
			c.acked[k] = true
		}
		c.mu.Unlock()
		for _, s := range batch {
			if id, ok := ids[s.key]; ok && s.input["chaos"] != nil {
				cancels = append(cancels, cancelAt{id, time.Now().Add(s.cancel)})
			}
		}

		// Cancellations that are due; one whose answer was lost is sent again and then
		// reports the run already finished, which the checks accept.
		kept := cancels[:0]
		for _, cl := range cancels {
			if time.Now().Before(cl.at) {
				kept = append(kept, cl)
				continue
			}
			err := retrySQL(ctx, func(ctx context.Context) error {
				_, err := pool.Exec(ctx, "SELECT qflow.cancel_run($1)", cl.run)
				return err
			})
			if err != nil && ctx.Err() == nil {
				c.violation("loader %d: cancelling run %d: %v", n, cl.run, err)
			}
		}
		cancels = kept

		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// retrySQL runs f until it succeeds, fails for a reason other than the database being away
// (restarting, a killed connection), ctx ends or a minute has passed.
func retrySQL(ctx context.Context, f func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := f(ctx)
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// transient: the connection failed or the server is starting, stopping or out of
// connections, rather than the statement being refused.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57":
			return true
		}
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	return true
}
