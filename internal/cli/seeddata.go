package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines/complexity"
)

// runSeedData fills ml.task_executions with generated records whose observed complexity
// follows complexity.HiddenComplexity plus noise, so that what the complexity model learns
// can be measured against a known truth.
func runSeedData(ctx context.Context, env Env, args []string) error {
	fs := newFlags("seed-data", env)
	rows := fs.Int("rows", 20000, "records to generate")
	days := fs.Float64("days", 20, "spread executed_at over the last this many days")
	unlabelled := fs.Float64("unlabelled", 0.1, "share of records without an observed complexity (deployment backfills them)")
	seed := fs.Uint64("seed", 1, "generator seed: the same seed makes the same records")
	ifEmpty := fs.Bool("if-empty", false, "insert only when ml.task_executions is empty")
	db := dbFlags(fs, env, false, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case *rows < 1 || *rows > 10_000_000:
		return fmt.Errorf("--rows must be between 1 and 10000000, got %d", *rows)
	case !(*days > 0 && *days <= 36500):
		return fmt.Errorf("--days must be in (0, 36500], got %v", *days)
	case !(*unlabelled >= 0 && *unlabelled <= 1):
		return fmt.Errorf("--unlabelled must be a share in [0, 1], got %v", *unlabelled)
	}
	pool, err := db.primary(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()

	q := gen.New(pool)
	before, err := q.CountTaskExecutions(ctx)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			return errors.New("ml.task_executions does not exist: run `qflow migrate` first")
		}
		return fmt.Errorf("counting task executions: %w", err)
	}
	if *ifEmpty && before.Total > 0 {
		fmt.Fprintf(env.Stdout, "ml.task_executions already holds %d records (%d labelled); nothing inserted\n", before.Total, before.Labelled)
		ref := complexity.Generate(complexity.GenerateOptions{Rows: ceilingReference, Days: *days, Now: time.Now(), Seed: *seed})
		printCeiling(env, ref, fmt.Sprintf("of %d records generated as seed-data would (if those are seed-data's)", len(ref)))
		return nil
	}
	start := time.Now()
	recs := complexity.Generate(complexity.GenerateOptions{Rows: *rows, Days: *days, Now: start, Unlabelled: *unlabelled, Seed: *seed})
	n, err := complexity.Insert(ctx, pool, recs)
	if err != nil {
		return err
	}
	after, err := q.CountTaskExecutions(ctx)
	if err != nil {
		return fmt.Errorf("counting task executions: %w", err)
	}
	fmt.Fprintf(env.Stdout, "inserted %d task executions over the last %g days in %s; ml.task_executions now holds %d (%d labelled)\n",
		n, *days, time.Since(start).Round(time.Millisecond), after.Total, after.Labelled)
	var labelled []complexity.Record
	for _, r := range recs {
		if r.ObservedComplexity >= 0 {
			labelled = append(labelled, r)
		}
	}
	printCeiling(env, labelled, fmt.Sprintf("of these %d labelled records", len(labelled)))
	return nil
}

// ceilingReference is how many records stand for seed-data's when the table is not filled now.
const ceilingReference = 50000

// printCeiling says how the labels are made, the best MSE any model can reach on them and what
// predicting their mean scores, so a model's held-out MSE can be read against both.
func printCeiling(env Env, labelled []complexity.Record, of string) {
	fmt.Fprintf(env.Stdout, "labels: complexity.HiddenComplexity(task) + N(0, %.2f), clamped to [0, 1]\n", complexity.LabelNoise)
	var sum, sumSq float64
	for _, r := range labelled {
		sum += r.ObservedComplexity
		sumSq += r.ObservedComplexity * r.ObservedComplexity
	}
	n := float64(max(len(labelled), 1))
	fmt.Fprintf(env.Stdout, "ceiling: %.5f is the best possible MSE %s (the clamped noise's variance); predicting their mean scores %.4f\n",
		complexity.Ceiling(labelled), of, sumSq/n-(sum/n)*(sum/n))
}
