package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/worker"
)

// runSchedule is `qflow schedule list|add|remove`: the rows of qflow.schedules, which psql
// can insert just as well.
func runSchedule(ctx context.Context, env Env, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: schedule list | schedule add <name> <workflow> <cron> [--input JSON] [--time-zone TZ] [--missed run_once|skip] | schedule remove <name>")
	}
	switch args[0] {
	case "list":
		return scheduleList(ctx, env)
	case "add":
		return scheduleAdd(ctx, env, args[1:])
	case "remove":
		if len(args) != 2 {
			return errors.New("usage: schedule remove <name>")
		}
		pool, err := connect(ctx, env, 2)
		if err != nil {
			return err
		}
		defer pool.Close()
		n, err := gen.New(pool).RemoveSchedule(ctx, args[1])
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("no schedule named %q", args[1])
		}
		fmt.Fprintf(env.Stdout, "schedule %s removed\n", args[1])
		return nil
	}
	return fmt.Errorf("unknown schedule command %q: list, add or remove", args[0])
}

func scheduleAdd(ctx context.Context, env Env, args []string) error {
	fs := newFlags("schedule add", env)
	input := fs.String("input", "{}", "run input of every fire, a JSON object")
	zone := fs.String("time-zone", "UTC", "time zone the expression is read in")
	missed := fs.String("missed", "run_once", "fires missed while no worker ran: run_once or skip")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 3 {
		return errors.New(`usage: schedule add <name> <workflow> "<cron>" [--input JSON] [--time-zone TZ] [--missed run_once|skip]`)
	}
	// The cron library the workers fire with is the judge of the expression.
	if err := worker.CheckSchedule(pos[2], *zone); err != nil {
		return fmt.Errorf("schedule %s: %w", pos[0], err)
	}
	pool, err := connect(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	err = gen.New(pool).AddSchedule(ctx, gen.AddScheduleParams{Name: pos[0], Workflow: pos[1], Cron: pos[2],
		Input: []byte(*input), TimeZone: *zone, Missed: *missed})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "schedule %s: %s runs %s\n", pos[0], pos[2], pos[1])
	return nil
}

func scheduleList(ctx context.Context, env Env) error {
	pool, err := connect(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := gen.New(pool).ListSchedules(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tWORKFLOW\tCRON\tTIME ZONE\tMISSED\tENABLED\tLAST FIRE\tLAST RUN\tNEXT FIRE")
	for _, r := range rows {
		last, next, run := "-", "-", "-"
		since := time.Now()
		if r.LastFireAt.Valid {
			last = r.LastFireAt.Time.Format(time.RFC3339)
			since = r.LastFireAt.Time
		}
		if r.LastRunID != nil {
			run = fmt.Sprint(*r.LastRunID)
		}
		if s, err := worker.NextFire(r.Cron, r.TimeZone, since); err == nil {
			next = s.Format(time.RFC3339)
		} else {
			next = "refused: " + err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", r.Name, r.Workflow, r.Cron, r.TimeZone, r.Missed, r.Enabled, last, run, next)
	}
	return tw.Flush()
}
