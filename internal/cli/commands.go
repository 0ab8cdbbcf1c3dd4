package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/migrations"
	"github.com/quantumflow/qflow/pipelines/rollout"
	"github.com/quantumflow/qflow/worker"
)

func runMigrate(ctx context.Context, env Env, args []string) error {
	fs := newFlags("migrate", env)
	prefix := fs.String("role-prefix", orDefault(env.Getenv("QFLOW_ROLE_PREFIX"), migrations.DefaultRolePrefix),
		"create the roles <prefix>_admin, _worker, _trigger and _reader (env QFLOW_ROLE_PREFIX)")
	withRoles := fs.Bool("roles", !slices.Contains([]string{"off", "false", "0", "no"}, strings.ToLower(env.Getenv("QFLOW_ROLES"))),
		"create and grant the roles (--roles=false or QFLOW_ROLES=off when the migrating user may not)")
	db := dbFlags(fs, env, true, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	roles, err := migrations.RolesWithPrefix(*prefix)
	if err != nil {
		return err
	}
	pool, err := db.session(ctx, env, 4, "qflow migrate (its lock)")
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.Migrate(ctx, pool); err != nil {
		return err
	}
	versions, err := env.Registry.Sync(ctx, pool)
	if err != nil {
		return err
	}
	if _, err := rollout.Apply(ctx, pool, env.Getenv); err != nil {
		return err
	}
	if *withRoles {
		if err := migrations.EnsureRoles(ctx, pool, roles); err != nil {
			return fmt.Errorf("creating roles %s_*: %s (run migrate as a superuser, or skip roles with --roles=false)", *prefix, describe(err))
		}
	}
	latest, _ := migrations.Latest()
	fmt.Fprintf(env.Stdout, "migrated: river schema %q, qflow schema version %d\n", migrations.RiverSchema, latest)
	for _, w := range env.Registry.Workflows() {
		fmt.Fprintf(env.Stdout, "registered %s v%d\n", w.Name, versions[w.Name])
	}
	if *withRoles {
		fmt.Fprintf(env.Stdout, "roles: %s (owner), %s, %s, %s\n", roles.Admin, roles.Worker, roles.Trigger, roles.Reader)
	}
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func runWorker(ctx context.Context, env Env, args []string) error {
	fs := newFlags("worker", env)
	defaultClasses := "cpu"
	if len(env.OnlyClasses) > 0 {
		defaultClasses = strings.Join(env.OnlyClasses, ",")
	}
	classes := fs.String("classes", defaultClasses, "comma-separated worker classes (River queues) to serve")
	maxWorkers := fs.Int("max-workers", 10, "steps of each class run at once in this process")
	shutdown := fs.Duration("shutdown-timeout", 30*time.Second, "how long running steps may finish after SIGTERM before they are cancelled and released")
	id := fs.String("id", "", "worker name in qflow.workers (default host:pid)")
	metricsAddr := fs.String("metrics-addr", "127.0.0.1:9464", `serve Prometheus metrics on this address at /metrics ("" disables)`)
	eager := fs.Bool("eager-dispatch", true, "a slot whose step finished runs the successor it made ready, without a trip through the queue")
	progress := fs.Duration("progress-interval", 2*time.Second, "how often running steps' latest progress reports are written")
	poll := fs.Duration("fetch-poll-interval", 100*time.Millisecond, "how often River looks for jobs without a wake-up: with --pgbouncer, how late a queued step may start")
	db := dbFlags(fs, env, true, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *progress <= 0 {
		return fmt.Errorf("--progress-interval must be positive, got %s", *progress)
	}
	if *poll <= 0 {
		return fmt.Errorf("--fetch-poll-interval must be positive, got %s", *poll)
	}
	var cls []string
	for _, c := range strings.Split(*classes, ",") {
		if c = strings.TrimSpace(c); c != "" {
			cls = append(cls, c)
		}
	}
	if len(cls) == 0 {
		return errors.New("--classes names no class")
	}
	for _, c := range cls {
		if len(env.OnlyClasses) > 0 && !slices.Contains(env.OnlyClasses, c) {
			return fmt.Errorf("this binary serves only the %s class(es), not %q", strings.Join(env.OnlyClasses, ","), c)
		}
	}
	if *maxWorkers < 1 {
		return fmt.Errorf("--max-workers must be at least 1, got %d", *maxWorkers)
	}
	// River needs a few connections of its own (listener, producers, leader, completer). A
	// database in the middle of a restart is waited out for a while. The sessions (the
	// sweep's, the scheduler's and the reporter's locks) and the reporter's reads get small
	// pools of their own where the settings send them elsewhere.
	var pool, direct, read *pgxpool.Pool
	err := worker.WaitOut(ctx, logger(env), "connecting", func(ctx context.Context) error {
		var err error
		pool, err = db.primary(ctx, env, int32(*maxWorkers*len(cls)+8))
		return err
	})
	if err != nil {
		return err
	}
	defer pool.Close()
	if *db.pgbouncer || *db.direct != "" {
		err := worker.WaitOut(ctx, logger(env), "connecting directly", func(ctx context.Context) error {
			var err error
			direct, err = db.session(ctx, env, 3, "qflow worker (its liveness lock, LISTEN, sweep, scheduler and reporter locks)")
			return err
		})
		if err != nil {
			return err
		}
		defer direct.Close()
	}
	if *db.read != "" {
		err := worker.WaitOut(ctx, logger(env), "connecting to the read replica", func(ctx context.Context) error {
			var err error
			read, err = db.reader(ctx, env, 2)
			return err
		})
		if err != nil {
			return err
		}
		defer read.Close()
	}

	var metrics *worker.Metrics
	if *metricsAddr != "" {
		if metrics, err = worker.NewMetrics(prometheus.DefaultRegisterer); err != nil {
			return err
		}
		addr, err := worker.ServeMetrics(ctx, *metricsAddr)
		if err != nil {
			return fmt.Errorf("%w (choose another with --metrics-addr, or \"\" to disable)", err)
		}
		logger(env).Info("serving metrics", "url", "http://"+addr.String()+"/metrics")
	}
	cfg := worker.Config{Pool: pool, Direct: direct, Read: read, Registry: env.Registry, Classes: cls, MaxWorkers: *maxWorkers, ID: *id, Logger: logger(env),
		DisableEagerDispatch: !*eager, ProgressInterval: *progress, PollOnly: *db.pgbouncer, FetchPollInterval: *poll,
		// The environment's settings go on top of the definitions Start registers.
		AfterSync: func(ctx context.Context) error {
			_, err := rollout.Apply(ctx, pool, env.Getenv)
			return err
		}}
	if metrics != nil {
		cfg.Metrics = metrics
	}
	w, err := worker.New(cfg)
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), *shutdown)
	defer cancel()
	return w.Stop(stopCtx)
}

func runStart(ctx context.Context, env Env, args []string) error {
	fs := newFlags("start", env)
	input := fs.String("input", "{}", "run input, a JSON object")
	wait := fs.Bool("wait", false, "wait for the run to finish, showing live progress")
	key := fs.String("idempotency-key", "", "a key that makes repeating this start a no-op")
	priority := fs.Int("priority", 2, "1 (first) to 4 (last)")
	db := dbFlags(fs, env, false, false)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: qflow start <workflow> [--input JSON] [--wait]")
	}
	if !json.Valid([]byte(*input)) {
		return fmt.Errorf("--input is not valid JSON: %s", *input)
	}
	pool, err := db.primary(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	var keyArg *string
	if *key != "" {
		keyArg = key
	}
	id, err := gen.New(pool).StartRun(ctx, gen.StartRunParams{Workflow: pos[0], Input: json.RawMessage(*input), IdempotencyKey: keyArg, Priority: int16(*priority)})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "run %d started\n", id)
	if !*wait {
		return nil
	}
	return watch(ctx, env, gen.New(pool), id)
}

func runStatus(ctx context.Context, env Env, args []string) error {
	fs := newFlags("status", env)
	asJSON := fs.Bool("json", false, "print qflow.status(id) as JSON")
	follow := fs.Bool("watch", false, "follow the run until it finishes")
	db := dbFlags(fs, env, false, true)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	id, err := runID(pos)
	if err != nil {
		return err
	}
	pool, err := db.reader(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := gen.New(pool)
	if *follow {
		return notOnReplica(ctx, q, watch(ctx, env, q, id))
	}
	if *asJSON {
		raw, err := q.RunStatus(ctx, id)
		if err != nil {
			return notOnReplica(ctx, q, err)
		}
		fmt.Fprintln(env.Stdout, string(raw))
		return nil
	}
	st, err := readStatus(ctx, q, id)
	if err != nil {
		return notOnReplica(ctx, q, err)
	}
	printStatus(env.Stdout, st)
	return nil
}

func runList(ctx context.Context, env Env, args []string) error {
	fs := newFlags("list", env)
	db := dbFlags(fs, env, false, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	pool, err := db.reader(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := gen.New(pool).ListWorkflows(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%-24s %3s  %7s %7s %9s %6s %9s %9s  %s\n", "WORKFLOW", "VER", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "STEPS")
	for _, r := range rows {
		fmt.Fprintf(env.Stdout, "%-24s %3d  %7d %7d %9d %6d %9d %9d  %s\n", r.Name, r.Version, r.Pending, r.Running, r.Succeeded, r.Failed, r.Cancelled, r.TimedOut, strings.Join(r.Steps, " "))
	}
	return nil
}

func runCancel(ctx context.Context, env Env, args []string) error {
	return runOp(ctx, env, "cancel", args, func(q *gen.Queries, id int64) (bool, error) { return q.CancelRun(ctx, id) },
		"run %d cancelled\n", "run %d had already finished; nothing to cancel\n")
}

func runRetry(ctx context.Context, env Env, args []string) error {
	return runOp(ctx, env, "retry", args, func(q *gen.Queries, id int64) (bool, error) { return q.RetryRun(ctx, id) },
		"run %d is running again\n", "run %d was not retried\n")
}

func runOp(ctx context.Context, env Env, name string, args []string, op func(*gen.Queries, int64) (bool, error), yes, no string) error {
	fs := newFlags(name, env)
	db := dbFlags(fs, env, false, false)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	id, err := runID(pos)
	if err != nil {
		return err
	}
	pool, err := db.primary(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	ok, err := op(gen.New(pool), id)
	if err != nil {
		return err
	}
	if ok {
		fmt.Fprintf(env.Stdout, yes, id)
	} else {
		fmt.Fprintf(env.Stdout, no, id)
	}
	return nil
}

// runDAG is `qflow dag <workflow | run id>`: the current version of a workflow, or the
// version a run pinned with each step's state in that run.
func runDAG(ctx context.Context, env Env, args []string) error {
	fs := newFlags("dag", env)
	format := fs.String("format", "mermaid", "mermaid or dot")
	db := dbFlags(fs, env, false, false)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: qflow dag <workflow | run id> [--format mermaid|dot]")
	}
	if *format != "mermaid" && *format != "dot" {
		return fmt.Errorf("--format must be mermaid or dot, got %q", *format)
	}
	pool, err := db.primary(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := gen.New(pool)
	// Workflow names start with a letter, so a number is a run.
	var run *runStatusDoc
	params := gen.DAGStepsParams{Workflow: pos[0]}
	if id, err := strconv.ParseInt(pos[0], 10, 64); err == nil {
		st, err := readStatus(ctx, q, id)
		if err != nil {
			return err
		}
		run = &st
		v := int32(st.Version)
		params = gen.DAGStepsParams{Workflow: st.Workflow, Version: &v}
	}
	steps, err := q.DAGSteps(ctx, params)
	if err != nil {
		return fmt.Errorf("reading the steps of %s: %w", params.Workflow, err)
	}
	if len(steps) == 0 {
		return fmt.Errorf("unknown workflow %q", pos[0])
	}
	fmt.Fprint(env.Stdout, renderDAG(params.Workflow, steps, run, *format))
	return nil
}

func runID(pos []string) (int64, error) {
	if len(pos) != 1 {
		return 0, errors.New("expected one run id")
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("run id must be a positive integer, got %q", pos[0])
	}
	return id, nil
}

// runRerun is `qflow rerun <id> --from <step> [--wait]`: a new run that reuses every output
// not downstream of the step (qflow.rerun_from).
func runRerun(ctx context.Context, env Env, args []string) error {
	fs := newFlags("rerun", env)
	from := fs.String("from", "", "the step to run again, with everything downstream of it")
	wait := fs.Bool("wait", false, "wait for the new run to finish, showing live progress")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	id, err := runID(pos)
	if err != nil {
		return err
	}
	if *from == "" {
		return errors.New("usage: rerun <id> --from <step> [--wait]")
	}
	pool, err := connect(ctx, env, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := gen.New(pool)
	fork, err := q.RerunFrom(ctx, gen.RerunFromParams{RunID: id, Step: *from})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "run %d re-runs run %d from step %s\n", fork, id, *from)
	if *wait {
		return watch(ctx, env, q, fork)
	}
	return nil
}
