package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines"
)

// StepArgs are the arguments of a qflow_step job, written by qflow.dispatch.
type StepArgs struct {
	RunID   int64  `json:"run_id"`
	Step    string `json:"step"`
	Attempt int32  `json:"attempt"`
}

// Kind is the River job kind of a step attempt.
func (StepArgs) Kind() string { return "qflow_step" }

// Step outcomes, as metrics and logs name them.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeRetried   = "retried"
	OutcomeTimedOut  = "timed_out"
	OutcomeCancelled = "cancelled"
)

var errStepTimeout = errors.New("step timeout")

// abandonAfter is how long a handler may ignore its cancelled context before the worker stops
// waiting for it and reports the attempt anyway.
const abandonAfter = time.Second

type stepWorker struct {
	river.WorkerDefaults[StepArgs]
	w *Worker
}

// Timeout disables River's job timeout: the step timeout is applied around the handler.
func (*stepWorker) Timeout(*river.Job[StepArgs]) time.Duration { return -1 }

func (sw *stepWorker) Work(ctx context.Context, job *river.Job[StepArgs]) error {
	w := sw.w
	a := job.Args
	log := w.log.With("run_id", a.RunID, "step", a.Step, "attempt", a.Attempt)

	var claim gen.ClaimStepRow
	err := retryDB(ctx, func(ctx context.Context) error {
		var err error
		claim, err = w.queries.ClaimStep(ctx, gen.ClaimStepParams{RunID: a.RunID, Step: a.Step, Attempt: a.Attempt, Worker: w.cfg.ID})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		// Cancelled run, superseded attempt or a second delivery: nothing to do.
		log.Debug("stale step job dropped")
		return nil
	}
	if err != nil {
		return fmt.Errorf("claiming step %s of run %d: %w", a.Step, a.RunID, err)
	}

	res := w.execute(ctx, claim, a)
	err = w.finish(ctx, job, &res)
	w.cfg.Metrics.StepFinished(claim.Workflow, a.Step, res.outcome(), res.elapsed)
	if res.err != nil && !res.released {
		log.Info("step attempt failed", "err", res.err, "permanent", res.permanent, "timed_out", res.timedOut, "outcome", res.outcome())
	}
	return err
}

// result is what one execution of a handler came to.
type result struct {
	output    json.RawMessage
	err       error
	permanent bool
	timedOut  bool
	// released: the worker is shutting down and stopped the handler; not the step's fault.
	released bool
	elapsed  time.Duration
	// decided by the database when the result is recorded: what fail_step did ('retry',
	// 'failed', 'skipped'), or 'stale' when the step was no longer this attempt's (its run
	// was cancelled or timed out meanwhile)
	sqlOutcome string
}

func (r result) outcome() string {
	switch {
	case r.released, r.sqlOutcome == "stale":
		return OutcomeCancelled
	case r.err == nil:
		return OutcomeSucceeded
	case r.sqlOutcome == "retry" && r.timedOut:
		return OutcomeTimedOut
	case r.sqlOutcome == "retry":
		return OutcomeRetried
	case r.timedOut:
		return OutcomeTimedOut
	default:
		return OutcomeFailed
	}
}

// execute runs the step's handler under the step timeout, turning panics, timeouts and
// undecodable outputs into failed attempts.
func (w *Worker) execute(ctx context.Context, claim gen.ClaimStepRow, a StepArgs) result {
	w.cfg.Metrics.StepStarted(claim.Workflow, a.Step)
	handler, ok := w.cfg.Registry.Handler(claim.Workflow, a.Step)
	if !ok {
		return result{err: fmt.Errorf("no handler for step %s of workflow %s in worker %s", a.Step, claim.Workflow, w.cfg.ID), permanent: true}
	}
	var deps map[string]json.RawMessage
	if err := json.Unmarshal(claim.Deps, &deps); err != nil {
		return result{err: fmt.Errorf("decoding dependency outputs: %w", err), permanent: true}
	}
	in := pipelines.Input{RunID: a.RunID, Step: a.Step, Attempt: int(a.Attempt), Run: claim.Input, Deps: deps}

	start := time.Now()
	stepCtx, cancel := context.WithTimeoutCause(ctx, time.Duration(claim.TimeoutMs)*time.Millisecond, errStepTimeout)
	defer cancel()
	res := runHandler(stepCtx, handler, in)
	res.elapsed = time.Since(start)

	if res.err != nil || stepCtx.Err() != nil {
		switch {
		case errors.Is(context.Cause(stepCtx), errStepTimeout):
			res.err = fmt.Errorf("step timed out after %s: %w", time.Duration(claim.TimeoutMs)*time.Millisecond, orErr(res.err, errStepTimeout))
			res.timedOut, res.permanent = true, false
		case ctx.Err() != nil:
			res.released = true
		}
	}
	return res
}

// runHandler calls the handler in its own goroutine so that a handler deaf to cancellation
// cannot hold the worker past its timeout: after abandonAfter the worker reports and moves on.
func runHandler(ctx context.Context, h pipelines.Handler, in pipelines.Input) result {
	done := make(chan result, 1)
	go func() {
		var res result
		defer func() {
			if p := recover(); p != nil {
				res = result{err: fmt.Errorf("handler panicked: %v\n%s", p, debug.Stack())}
			}
			done <- res
		}()
		out, err := h(ctx, in)
		if err != nil {
			res = result{err: err, permanent: pipelines.IsPermanent(err)}
			return
		}
		raw, ok := out.(json.RawMessage)
		if !ok {
			raw, err = json.Marshal(out)
			if err != nil {
				res = result{err: fmt.Errorf("encoding step output: %w", err), permanent: true}
				return
			}
		}
		if !json.Valid(raw) {
			res = result{err: errors.New("step output is not valid JSON"), permanent: true}
			return
		}
		res = result{output: raw}
	}()

	select {
	case res := <-done:
		return res
	case <-ctx.Done():
	}
	select {
	case res := <-done:
		return res
	case <-time.After(abandonAfter):
		return result{err: fmt.Errorf("handler ignored cancellation for %s and was abandoned: %w", abandonAfter, context.Cause(ctx))}
	}
}

// finish records the attempt's result and completes the River job in one transaction.
func (w *Worker) finish(jobCtx context.Context, job *river.Job[StepArgs], res *result) error {
	a := job.Args
	// Not cancelled with the job (a worker shutting down must still report), but keeping
	// its values: JobCompleteTx finds the River client there.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(jobCtx), 30*time.Second)
	defer cancel()
	err := retryDB(ctx, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
			q := w.queries.WithTx(tx)
			var err error
			switch {
			case res.released:
				_, err = q.ReleaseStep(ctx, gen.ReleaseStepParams{RunID: a.RunID, Step: a.Step, Attempt: a.Attempt, Reason: "worker " + w.cfg.ID + " shut down"})
			case res.err == nil:
				var completed bool
				completed, err = q.CompleteStep(ctx, gen.CompleteStepParams{RunID: a.RunID, Step: a.Step, Attempt: a.Attempt, Output: res.output})
				if !completed {
					res.sqlOutcome = "stale"
				}
			default:
				res.sqlOutcome, err = q.FailStep(ctx, gen.FailStepParams{
					RunID: a.RunID, Step: a.Step, Attempt: a.Attempt, Error: res.err.Error(),
					Permanent: res.permanent, TimedOut: res.timedOut,
				})
			}
			if err != nil {
				return err
			}
			_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("recording step %s of run %d attempt %d: %w", a.Step, a.RunID, a.Attempt, err)
	}
	return nil
}

// retryDB retries f while the database is unreachable or restarting, with backoff, until ctx
// ends. Errors from our own procedures (bad input, no rows) are returned at once.
func retryDB(ctx context.Context, f func(context.Context) error) error {
	delay := 50 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func orErr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}
