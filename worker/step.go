package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

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
	// OutcomeCached: the output came from the cache; nothing ran (counted by the reporter).
	OutcomeCached = "cached"
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
	claim, err := w.claims.do(ctx, a)
	if err != nil {
		return fmt.Errorf("claiming step %s of run %d: %w", a.Step, a.RunID, err)
	}
	if claim == nil {
		// Cancelled run, superseded attempt or a second delivery: nothing to do.
		w.log.Debug("stale step job dropped", "run_id", a.RunID, "step", a.Step, "attempt", a.Attempt)
		return nil
	}
	// With eager dispatch the result of one step may hand this slot the next step of its run
	// (already claimed for this worker, with its own River job): run it here, and so on.
	jobID, dispatch := job.ID, DispatchQueue
	for claim != nil {
		next, err := w.runStep(ctx, a, jobID, claim, dispatch)
		if err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		a, jobID, claim, dispatch = next.args, next.jobID, &next.claimed, DispatchEager
	}
	return nil
}

// runStep executes one claimed attempt and records its result; it returns the step the
// result handed this slot, if any.
func (w *Worker) runStep(ctx context.Context, a StepArgs, jobID int64, claim *claimed, dispatch string) (*continuation, error) {
	res := w.execute(ctx, *claim, a, dispatch)
	// Not cancelled with the job: a worker that is shutting down must still report.
	done, err := w.results.do(context.WithoutCancel(ctx), finishReq{args: a, jobID: jobID, res: &res, take: w.takesMore(ctx)})
	res.sqlOutcome = done.outcome
	w.cfg.Metrics.StepFinished(claim.Workflow, DefinitionStep(a.Step), res.outcome(), res.elapsed)
	if res.err != nil && !res.released {
		w.log.Info("step attempt failed", "run_id", a.RunID, "step", a.Step, "attempt", a.Attempt,
			"err", res.err, "permanent", res.permanent, "timed_out", res.timedOut, "outcome", res.outcome())
	}
	if err != nil {
		return nil, fmt.Errorf("recording step %s of run %d attempt %d: %w", a.Step, a.RunID, a.Attempt, err)
	}
	return done.next, nil
}

// takesMore says whether this slot offers to run a successor with its result: not when eager
// dispatch is off, and not once the worker is stopping (a soft stop waits for running steps
// and must not be handed new ones).
func (w *Worker) takesMore(ctx context.Context) bool {
	return !w.cfg.DisableEagerDispatch && !w.stopping.Load() && ctx.Err() == nil
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
func (w *Worker) execute(ctx context.Context, claim claimed, a StepArgs, dispatch string) result {
	step, task := SplitTask(a.Step)
	w.cfg.Metrics.StepStarted(claim.Workflow, step, dispatch)
	handler, ok := w.cfg.Registry.Handler(claim.Workflow, step)
	if !ok {
		return result{err: fmt.Errorf("no handler for step %s of workflow %s in worker %s", step, claim.Workflow, w.cfg.ID), permanent: true}
	}
	var deps map[string]json.RawMessage
	if err := json.Unmarshal(claim.Deps, &deps); err != nil {
		return result{err: fmt.Errorf("decoding dependency outputs: %w", err), permanent: true}
	}
	in := pipelines.Input{RunID: a.RunID, Step: step, Attempt: int(a.Attempt), Run: claim.Input, Deps: deps,
		Task: task, Item: claim.Item}

	start := time.Now()
	stepCtx, cancel := context.WithTimeoutCause(ctx, time.Duration(claim.TimeoutMS)*time.Millisecond, errStepTimeout)
	defer cancel()
	// A legacy chain is tracked, and reports no progress, as a whole (legacy.go).
	if dispatch != DispatchLegacy {
		var forget func()
		stepCtx, forget = w.cancels.track(stepCtx, a)
		defer forget()
		stepCtx = pipelines.WithProgress(stepCtx, reporter{book: &w.progress, a: a})
		defer w.progress.forget(a)
	}
	res := runHandler(stepCtx, handler, in)
	res.elapsed = time.Since(start)

	if res.err != nil || stepCtx.Err() != nil {
		switch {
		case errors.Is(context.Cause(stepCtx), errCancelledByEngine):
			// The attempt is already over in the database; its result will be found stale.
			res.err = fmt.Errorf("stopped: %w", errCancelledByEngine)
		case errors.Is(context.Cause(stepCtx), errStepTimeout):
			res.err = fmt.Errorf("step timed out after %s: %w", time.Duration(claim.TimeoutMS)*time.Millisecond, orErr(res.err, errStepTimeout))
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

// claimSteps claims a batch of step attempts in one call; a nil entry was stale.
func (w *Worker) claimSteps(ctx context.Context, args []StepArgs) ([]*claimed, error) {
	claims, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("encoding claims: %w", err)
	}
	var rows []gen.ClaimStepsRow
	err = retryDB(ctx, func(ctx context.Context) error {
		rows, err = w.queries.ClaimSteps(ctx, gen.ClaimStepsParams{Claims: claims, Worker: w.cfg.ID})
		return err
	})
	if err != nil {
		return nil, err
	}
	byArgs := make(map[StepArgs]*claimed, len(rows))
	for _, r := range rows {
		byArgs[StepArgs{RunID: r.RunID, Step: r.Step, Attempt: r.Attempt}] = &claimed{
			Workflow: r.Workflow, TimeoutMS: r.TimeoutMs, Input: r.Input, Deps: r.Deps, Item: r.Item,
		}
	}
	out := make([]*claimed, len(args))
	for i, a := range args {
		out[i] = byArgs[a]
	}
	return out, nil
}

// claimed is what a claim hands the executor: the step's workflow, timeout and input (and an
// element of a map step its element).
type claimed struct {
	Workflow  string
	TimeoutMS int64
	Input     json.RawMessage
	Deps      json.RawMessage
	Item      json.RawMessage
}

// SplitTask splits a step row's name into the definition's step and, for an element of a map
// step ("square[3]"), the element's index; -1 for any other step.
func SplitTask(name string) (step string, task int) {
	open := strings.IndexByte(name, '[')
	if open < 0 || !strings.HasSuffix(name, "]") {
		return name, -1
	}
	task, err := strconv.Atoi(name[open+1 : len(name)-1])
	if err != nil || task < 0 {
		return name, -1
	}
	return name[:open], task
}

// DefinitionStep is the definition's step of a step row's name (metrics label steps by it: a
// map step's elements are one series, not one per element).
func DefinitionStep(name string) string {
	step, _ := SplitTask(name)
	return step
}

// finishReq is one attempt's result on its way to the database.
type finishReq struct {
	args  StepArgs
	jobID int64
	res   *result
	// take offers the slot for a successor of the run (eager dispatch).
	take bool
}

// finished is what the database made of one result: the outcome, and the step the slot
// takes next, if it was handed one.
type finished struct {
	outcome string
	next    *continuation
}

// continuation is a step claimed for this worker in the transaction that recorded its
// predecessor's result.
type continuation struct {
	args    StepArgs
	jobID   int64
	claimed claimed
}

// finishEntry is a finishReq as qflow.finish_steps reads it.
type finishEntry struct {
	RunID     int64           `json:"run_id"`
	Step      string          `json:"step"`
	Attempt   int32           `json:"attempt"`
	JobID     int64           `json:"job_id"`
	Result    string          `json:"result"`
	Output    json.RawMessage `json:"output,omitempty"`
	Error     string          `json:"error,omitempty"`
	Permanent bool            `json:"permanent,omitempty"`
	TimedOut  bool            `json:"timed_out,omitempty"`
	Take      bool            `json:"take,omitempty"`
}

// finishSteps records a batch of results and completes their River jobs in one transaction,
// so each step's result and its job's completion commit together or not at all. It returns
// what the database made of each result.
func (w *Worker) finishSteps(ctx context.Context, reqs []finishReq) ([]finished, error) {
	entries := make([]finishEntry, len(reqs))
	for i, r := range reqs {
		e := finishEntry{RunID: r.args.RunID, Step: r.args.Step, Attempt: r.args.Attempt, JobID: r.jobID}
		switch {
		case r.res.released:
			e.Result, e.Error = "release", "worker "+w.cfg.ID+" shut down"
		case r.res.err == nil:
			e.Result, e.Output, e.Take = "complete", r.res.output, r.take
		default:
			e.Result, e.Error, e.Permanent, e.TimedOut = "fail", r.res.err.Error(), r.res.permanent, r.res.timedOut
		}
		entries[i] = e
	}
	results, err := json.Marshal(entries)
	if err != nil {
		return nil, fmt.Errorf("encoding results: %w", err)
	}
	// Sent again until the database takes it, however long that is (each call has its
	// deadline), or the worker stops (ctx ends): given up, the result would leave its step
	// running with nobody running it until the lease, minutes for a long step.
	var rows []gen.FinishStepsRow
	err = retryDB(ctx, func(ctx context.Context) error {
		rows, err = w.queries.FinishSteps(ctx, gen.FinishStepsParams{Results: results, Worker: w.cfg.ID, Classes: w.cfg.Classes})
		return err
	})
	if err != nil {
		return nil, err
	}
	// A duplicated entry gets a row per copy; only one of them carries a continuation.
	byArgs := make(map[StepArgs]finished, len(rows))
	for _, r := range rows {
		f := byArgs[StepArgs{RunID: r.RunID, Step: r.Step, Attempt: r.Attempt}]
		f.outcome = r.Outcome
		if r.NextStep != "" {
			f.next = &continuation{
				args:    StepArgs{RunID: r.RunID, Step: r.NextStep, Attempt: r.NextAttempt},
				jobID:   r.NextJobID,
				claimed: claimed{Workflow: r.NextWorkflow, TimeoutMS: r.NextTimeoutMs, Input: r.NextInput, Deps: r.NextDeps, Item: r.NextItem},
			}
		}
		byArgs[StepArgs{RunID: r.RunID, Step: r.Step, Attempt: r.Attempt}] = f
	}
	out := make([]finished, len(reqs))
	for i, r := range reqs {
		out[i] = byArgs[r.args]
	}
	return out, nil
}

// dbCallTimeout bounds one call of the engine's own (a claim, a batch of results, a legacy
// claim or result): a network that swallows packets without a reset must not hold a worker for
// good. The calls are idempotent, so one that timed out is simply sent again.
const dbCallTimeout = 15 * time.Second

// retryDB retries f while the database is unreachable, restarting or silent (each call gets
// dbCallTimeout), with backoff, until ctx ends. Errors from our own procedures (bad input, no
// rows) are returned at once.
func retryDB(ctx context.Context, f func(context.Context) error) error {
	delay := 50 * time.Millisecond
	for {
		callCtx, cancel := context.WithTimeout(ctx, dbCallTimeout)
		err := f(callCtx)
		timedOut := callCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil || !(transient(err) || timedOut) || ctx.Err() != nil {
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
