package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/quantumflow/qflow/gen"
)

// LegacyArgs are the arguments of a qflow_legacy job: a whole run in one job, the way the
// queue consumers QuantumFlow replaces worked.
type LegacyArgs struct {
	RunID   int64 `json:"run_id"`
	Attempt int32 `json:"attempt"`
}

// Kind is the River job kind of a legacy run attempt.
func (LegacyArgs) Kind() string { return "qflow_legacy" }

type legacyWorker struct {
	river.WorkerDefaults[LegacyArgs]
	w *Worker
}

// Timeout disables River's job timeout: each step's timeout applies around its handler.
func (*legacyWorker) Timeout(*river.Job[LegacyArgs]) time.Duration { return -1 }

func (lw *legacyWorker) Work(ctx context.Context, job *river.Job[LegacyArgs]) error {
	w := lw.w
	a := job.Args
	var claim gen.LegacyClaimRow
	err := retryDB(ctx, func(ctx context.Context) error {
		var err error
		claim, err = w.queries.LegacyClaim(ctx, gen.LegacyClaimParams{RunID: a.RunID, Attempt: a.Attempt})
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claiming legacy run %d: %w", a.RunID, err)
	}
	steps, err := w.queries.LegacySteps(ctx, gen.LegacyStepsParams{Workflow: claim.Workflow, Version: claim.Version})
	if err != nil {
		return fmt.Errorf("loading steps of %s v%d: %w", claim.Workflow, claim.Version, err)
	}

	// A cancel notification for a legacy run names no step: it stops the whole chain.
	ctx, forget := w.cancels.track(ctx, StepArgs{RunID: a.RunID, Attempt: a.Attempt})
	defer forget()
	output, res := w.runChain(ctx, claim, steps, a)
	if res.released {
		// Shutting down mid-chain: this attempt failed; the chain runs again from the start.
		res.err = errors.New("worker " + w.cfg.ID + " shut down mid-chain")
	}
	return w.finishLegacy(ctx, job, output, res)
}

// runChain executes every step in dependency order within this one job, passing outputs in
// memory. The run's output is the outputs of the steps nothing depends on.
func (w *Worker) runChain(ctx context.Context, claim gen.LegacyClaimRow, steps []gen.LegacyStepsRow, a LegacyArgs) (json.RawMessage, result) {
	outputs := map[string]json.RawMessage{}
	skipped := map[string]bool{}
	needed := map[string]bool{}
	for _, s := range steps {
		for _, d := range s.DependsOn {
			needed[d] = true
		}
	}
	for _, s := range steps {
		deps := make(map[string]json.RawMessage, len(s.DependsOn))
		ran := len(s.DependsOn) == 0
		for _, d := range s.DependsOn {
			deps[d] = outputs[d]
			ran = ran || !skipped[d]
		}
		// Skipped as the step engine would skip it (sql/schema/0515_step_wanted.sql).
		wanted, err := w.conditionHolds(ctx, ran, s.Condition, claim.Input, deps)
		if err != nil {
			// The chain's attempt fails and is retried like any failure of the chain.
			return nil, result{err: fmt.Errorf("step %s: %w", s.Name, err)}
		}
		if !wanted {
			skipped[s.Name] = true
			outputs[s.Name] = json.RawMessage("null")
			continue
		}
		var res result
		if len(s.MapOver) > 0 {
			res = w.runMap(ctx, claim, s, a, deps)
		} else {
			res = w.execute(ctx, claimed{Workflow: claim.Workflow, TimeoutMS: s.TimeoutMs, Input: claim.Input, Deps: mustJSON(deps)},
				StepArgs{RunID: a.RunID, Step: s.Name, Attempt: a.Attempt}, DispatchLegacy)
			w.cfg.Metrics.StepFinished(claim.Workflow, s.Name, res.outcome(), res.elapsed)
		}
		if res.err != nil || res.released {
			if res.err != nil {
				res.err = fmt.Errorf("step %s: %w", s.Name, res.err)
			}
			return nil, res
		}
		outputs[s.Name] = res.output
	}
	leaves := map[string]json.RawMessage{}
	for _, s := range steps {
		if !needed[s.Name] && !skipped[s.Name] {
			leaves[s.Name] = outputs[s.Name]
		}
	}
	return mustJSON(leaves), result{}
}

// runMap runs a map step of a legacy chain: its handler once per element, one after another,
// each given its element (and the dependencies' outputs but the array's), as the step engine
// gives an element task (sql/schema/0518_prepare_steps.sql); its output is theirs in order.
// Postgres reads the array, as it does for the engine.
func (w *Worker) runMap(ctx context.Context, claim gen.LegacyClaimRow, s gen.LegacyStepsRow, a LegacyArgs, deps map[string]json.RawMessage) result {
	from := s.MapOver[0]
	source := claim.Input
	if from != "input" {
		source = deps[from]
	}
	var src gen.MapSourceRow
	err := retryDB(ctx, func(ctx context.Context) error {
		var err error
		src, err = w.queries.MapSource(ctx, gen.MapSourceParams{Source: orNull(source), Path: s.MapOver})
		return err
	})
	if err != nil {
		return result{err: fmt.Errorf("reading what the step maps over: %w", err)}
	}
	where := strings.Join(s.MapOver, ".")
	var items []json.RawMessage
	if src.Kind != "array" || json.Unmarshal(src.Items, &items) != nil {
		return result{err: fmt.Errorf("map over %s: expected an array, got %s", where, src.Kind), permanent: true}
	}
	if len(items) > int(s.MaxItems) {
		return result{err: fmt.Errorf("map over %s: %d elements, more than the step's max_items (%d)", where, len(items), s.MaxItems), permanent: true}
	}
	// Each element gets its element instead of the array (sql/schema/0340_step_input.sql).
	elementDeps := make(map[string]json.RawMessage, len(deps))
	for k, v := range deps {
		switch {
		case k != from:
			elementDeps[k] = v
		case len(s.MapOver) > 1:
			elementDeps[k] = src.Rest
		}
	}
	outputs := make([]json.RawMessage, len(items))
	var elapsed time.Duration
	for i, item := range items {
		res := w.execute(ctx, claimed{Workflow: claim.Workflow, TimeoutMS: s.TimeoutMs, Input: claim.Input, Deps: mustJSON(elementDeps), Item: item},
			StepArgs{RunID: a.RunID, Step: fmt.Sprintf("%s[%d]", s.Name, i), Attempt: a.Attempt}, DispatchLegacy)
		w.cfg.Metrics.StepFinished(claim.Workflow, s.Name, res.outcome(), res.elapsed)
		elapsed += res.elapsed
		if res.err != nil || res.released {
			if res.err != nil {
				res.err = fmt.Errorf("element %d: %w", i, res.err)
			}
			return res
		}
		outputs[i] = res.output
	}
	return result{output: mustJSON(outputs), elapsed: elapsed}
}

// orNull is v, or JSON null for nothing (a dependency that gave no output).
func orNull(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return json.RawMessage("null")
	}
	return v
}

// conditionHolds says whether a step of a legacy chain runs: some dependency ran (or it has
// none), and its condition, if any, is contained in {"input": <run input>, <dependency>:
// <output>, ...}, by Postgres's own jsonb containment.
func (w *Worker) conditionHolds(ctx context.Context, ran bool, condition, input json.RawMessage, deps map[string]json.RawMessage) (bool, error) {
	if !ran {
		return false, nil
	}
	if len(condition) == 0 || string(condition) == "null" {
		return true, nil
	}
	doc := map[string]json.RawMessage{"input": input}
	for k, v := range deps {
		doc[k] = v
	}
	var holds bool
	err := retryDB(ctx, func(ctx context.Context) error {
		var err error
		holds, err = w.queries.ConditionHolds(ctx, gen.ConditionHoldsParams{Context: mustJSON(doc), Condition: condition})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("checking the condition: %w", err)
	}
	return holds, nil
}

// finishLegacy records the chain's result and completes its job in one transaction, sent
// again until the database takes it, however long that is, as step results are (finishSteps):
// given up, the result would leave the run running with nobody running it until its deadline.
// A result sent again after a lost reply changes nothing: legacy_complete and legacy_fail find
// the attempt no longer running and return stale, and River completes a finished job no
// further. Only the worker's hard stop ends the retries; the sweep then takes the attempt
// for a dead worker's.
func (w *Worker) finishLegacy(jobCtx context.Context, job *river.Job[LegacyArgs], output json.RawMessage, res result) error {
	a := job.Args
	// Not cancelled with the job (a worker shutting down must still report), but keeping
	// its values: JobCompleteTx finds the River client there.
	ctx, cancel := context.WithCancel(context.WithoutCancel(jobCtx))
	defer cancel()
	stop := context.AfterFunc(w.recording, cancel)
	defer stop()
	err := retryDB(ctx, func(ctx context.Context) error {
		err := pgx.BeginFunc(ctx, w.cfg.Pool, func(tx pgx.Tx) error {
			q := w.queries.WithTx(tx)
			var err error
			if res.err == nil {
				_, err = q.LegacyComplete(ctx, gen.LegacyCompleteParams{RunID: a.RunID, Attempt: a.Attempt, Output: output})
			} else {
				_, err = q.LegacyFail(ctx, gen.LegacyFailParams{RunID: a.RunID, Attempt: a.Attempt, Error: res.err.Error(), Permanent: res.permanent})
			}
			if err != nil {
				return err
			}
			_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
			return err
		})
		// Each failure is seen; retryDB sends the result again while the database is away.
		if err != nil {
			w.log.Warn("recording legacy result failed", "run_id", a.RunID, "attempt", a.Attempt, "err", err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("recording legacy run %d attempt %d: %w", a.RunID, a.Attempt, err)
	}
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding %T: %v", v, err)) // maps of RawMessage always encode
	}
	return b
}
