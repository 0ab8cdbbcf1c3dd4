// Package cli implements the qflow command line: migrate, worker, start, status, list,
// cancel, retry, dag, seed-data, models and ui. cmd/qflow is a thin main around Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quantumflow/qflow/pipelines"
)

// Env is what a command sees of the outside world, so tests can run commands in-process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Registry holds the workflows this binary knows; nil means NewRegistry(Options{}).
	Registry *pipelines.Registry
	// OnlyClasses, when set, are the only worker classes `worker` may serve, and its default
	// (qflow-gpu serves gpu and nothing else).
	OnlyClasses []string
}

type command struct {
	name, usage string
	run         func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	return []command{
		{"migrate", "create or upgrade River's and QuantumFlow's schemas, register workflows, create roles [--role-prefix qflow] [--roles=false]", runMigrate},
		{"worker", "run step workers until SIGTERM (--classes cpu,gpu)", runWorker},
		{"start", "start a run: start <workflow> [--input JSON] [--wait]", runStart},
		{"status", "show a run: status <id> [--json] [--watch]", runStatus},
		{"list", "list workflows with their runs by status", runList},
		{"cancel", "cancel a run: cancel <id>", runCancel},
		{"retry", "re-run the failed steps of a run: retry <id>", runRetry},
		{"rerun", "fork a finished run from a step, reusing every output before it: rerun <id> --from <step> [--wait]", runRerun},
		{"schedule", "list, add or remove schedules: schedule list | add <name> <workflow> \"<cron>\" [--input JSON] [--time-zone TZ] [--missed run_once|skip] | remove <name>", runSchedule},
		{"dag", "print a workflow's DAG, or a run's with its step states: dag <workflow | run id> [--format mermaid|dot]", runDAG},
		{"seed-data", "generate task executions for complexity_training: seed-data [--rows N] [--if-empty]", runSeedData},
		{"models", "the model registry: models [name [version]] (figures with intervals, decisions, loss curves)", runModels},
		{"ui", "serve the read-only web view: ui [--addr 127.0.0.1:8080]", runUI},
	}
}

// Main runs the command named by args[0] and returns the process exit code.
func Main(args []string, env Env) int {
	if env.Registry == nil {
		env.Registry = NewRegistry(Options{})
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		return 2
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := c.run(ctx, env, args[1:]); err != nil {
			var exit exitError
			if errors.As(err, &exit) {
				return int(exit)
			}
			if errors.Is(err, flag.ErrHelp) {
				return 2
			}
			fmt.Fprintf(env.Stderr, "qflow %s: %s\n", c.name, describe(err))
			return 1
		}
		return 0
	}
	fmt.Fprintf(env.Stderr, "qflow: unknown command %q\n\n", args[0])
	usage(env.Stderr)
	return 2
}

// exitError ends a command with a status code and no message (the command printed enough).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: qflow <command> [flags]   (database from DATABASE_URL)")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.usage)
	}
}

// describe shows a Postgres error the way psql would: message, then hint.
func describe(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		s := pgErr.Message
		if pgErr.Hint != "" {
			s += " (hint: " + pgErr.Hint + ")"
		}
		return s
	}
	return err.Error()
}

func newFlags(name string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet("qflow "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parseInterspersed lets flags follow positional arguments (qflow start probe_chain --wait).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func logger(env Env) *slog.Logger {
	level := slog.LevelInfo
	if strings.EqualFold(env.Getenv("QFLOW_LOG_LEVEL"), "debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
}
