package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/migrations"
	"github.com/quantumflow/qflow/pipelines"
)

// Config configures a Worker. Zero values take the defaults in brackets.
type Config struct {
	// Pool carries the worker's transactions: claims, results, River's fetches and
	// completions. It may go through PgBouncer in transaction pooling mode (with PollOnly).
	Pool *pgxpool.Pool
	// Direct reaches Postgres itself, for what needs a session of its own and would not
	// survive a pooler that hands each transaction another server connection: the liveness
	// lock and the cancel LISTEN (on a connection of their own, opened with Direct's
	// settings), the sweep's, the scheduler's and the metrics reporter's locks. A worker keeps
	// two to four such sessions [Pool].
	Direct *pgxpool.Pool
	// Read is where the metrics reporter reads runs, queues and live workers, e.g. a streaming
	// replica, to keep that load off the primary; its clock is the replica's (qflow.staleness)
	// [the reporter's connection of Direct].
	Read     *pgxpool.Pool
	Registry *pipelines.Registry
	// Classes are the worker classes (River queues) this process serves [cpu].
	Classes []string
	// MaxWorkers is how many steps of each class run at once in this process [10].
	MaxWorkers int
	// ID names this process in qflow.workers and in step attempts [host:pid].
	ID     string
	Logger *slog.Logger
	// FetchCooldown bounds how often River fetches after a wake-up; it bounds hop latency [2ms].
	FetchCooldown time.Duration
	// FetchPollInterval is how often River polls without a wake-up; it bounds how late a
	// retry whose backoff has passed may start, and with PollOnly how late any queued step
	// does [100ms].
	FetchPollInterval time.Duration
	// PollOnly makes River find new jobs by polling every FetchPollInterval instead of being
	// woken by notifications (River's Config.PollOnly), for a Pool through a pooler in
	// transaction mode, which carries no LISTEN. Hops taken by eager dispatch need no wake-up
	// and are as fast either way [false].
	PollOnly bool
	// SweepInterval is how often each worker tries to run qflow.sweep; one of those trying at
	// a time does (see liveness.go) [500ms].
	SweepInterval time.Duration
	// ScheduleInterval is how often each worker tries a scheduler pass (one at a time across
	// the fleet does); a fire starts within about this of its due time [250ms].
	ScheduleInterval time.Duration
	// ProgressInterval is how often the running steps' latest progress reports are written [2s].
	ProgressInterval time.Duration
	// HeartbeatInterval is how often the process refreshes its qflow.workers row [5s].
	HeartbeatInterval time.Duration
	// Metrics receives step outcomes; nil records nothing. A *Metrics also makes this process
	// compete to report the fleet's database-derived metrics (runs, queues, workers).
	Metrics Observer
	// ReportInterval is how often the metrics reporter reads the database [5s].
	ReportInterval time.Duration
	// DisableEagerDispatch makes every step go through its queue: a finished step's slot no
	// longer takes the successor it made ready (see sql/schema/0550_finish_steps.sql) [false].
	DisableEagerDispatch bool
	// AfterSync runs once the registry's definitions are registered, before the worker
	// starts taking steps: settings that apply on top of definitions (environment, rollouts).
	AfterSync func(ctx context.Context) error
}

// Observer is told what the worker does; *Metrics (metrics.go) implements it.
type Observer interface {
	// StepStarted is called as a step's handler starts; dispatch says how the step reached
	// this worker (DispatchQueue, DispatchEager or DispatchLegacy).
	StepStarted(workflow, step, dispatch string)
	StepFinished(workflow, step, outcome string, d time.Duration)
}

// How a step attempt reached the worker that runs it, as metrics name it.
const (
	// DispatchQueue: a River job of the step's queue, fetched by the worker.
	DispatchQueue = "queue"
	// DispatchEager: handed to the slot whose result made it ready (eager dispatch).
	DispatchEager = "eager"
	// DispatchLegacy: one step of a legacy-mode run, all run by one job.
	DispatchLegacy = "legacy"
)

type nopObserver struct{}

func (nopObserver) StepStarted(string, string, string)                 {}
func (nopObserver) StepFinished(string, string, string, time.Duration) {}

// Worker is one worker process's River client with QuantumFlow's workers registered.
type Worker struct {
	cfg     Config
	client  *river.Client[pgx.Tx]
	queries *gen.Queries
	log     *slog.Logger

	// claims and results batch the database calls of concurrent steps.
	claims  *batcher[StepArgs, *claimed]
	results *batcher[finishReq, finished]
	// recording ends at the worker's hard stop, the one thing that ends the retries of a
	// legacy run's result (legacy.go), as the results batcher's stop ends a step result's.
	recording     context.Context
	stopRecording context.CancelFunc
	// stopping is set when shutdown begins: slots take no more steps with their results.
	stopping atomic.Bool

	// cancels holds the running handlers' contexts, for the engine's cancel notifications.
	cancels cancels
	live    *liveness
	// progress holds the running steps' latest progress reports until they are written.
	progress progressBook

	heartbeatDone chan struct{}
	cancelBeat    context.CancelFunc
	reporterDone  chan struct{}
	liveDone      chan struct{}
	sweepDone     chan struct{}
	progressDone  chan struct{}
	scheduleDone  chan struct{}
}

// New builds a worker; Start runs it.
func New(cfg Config) (*Worker, error) {
	if cfg.Pool == nil || cfg.Registry == nil {
		return nil, errors.New("worker: Pool and Registry are required")
	}
	if cfg.Direct == nil {
		cfg.Direct = cfg.Pool
	}
	if len(cfg.Classes) == 0 {
		cfg.Classes = []string{"cpu"}
	}
	if cfg.MaxWorkers <= 0 {
		cfg.MaxWorkers = 10
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FetchCooldown <= 0 {
		cfg.FetchCooldown = 2 * time.Millisecond
	}
	if cfg.FetchPollInterval <= 0 {
		cfg.FetchPollInterval = 100 * time.Millisecond
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 500 * time.Millisecond
	}
	if cfg.ScheduleInterval <= 0 {
		cfg.ScheduleInterval = 250 * time.Millisecond
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 2 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopObserver{}
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = 5 * time.Second
	}

	w := &Worker{cfg: cfg, queries: gen.New(cfg.Pool), log: cfg.Logger.With("worker", cfg.ID)}
	w.recording, w.stopRecording = context.WithCancel(context.Background())
	// Two batches in flight at a time: one is gathered while the other commits.
	w.claims = newBatcher(64, 2, w.claimSteps)
	w.results = newBatcher(64, 2, w.finishSteps)

	workers := river.NewWorkers()
	river.AddWorker(workers, &stepWorker{w: w})
	river.AddWorker(workers, &legacyWorker{w: w})

	queues := map[string]river.QueueConfig{}
	for _, c := range cfg.Classes {
		queues[c] = river.QueueConfig{
			MaxWorkers:        cfg.MaxWorkers,
			FetchCooldown:     cfg.FetchCooldown,
			FetchPollInterval: cfg.FetchPollInterval,
		}
	}

	client, err := river.NewClient(riverpgxv5.New(cfg.Pool), &river.Config{
		ID:                cfg.ID,
		Schema:            migrations.RiverSchema,
		Queues:            queues,
		Workers:           workers,
		Logger:            riverLogger(cfg.Logger),
		FetchCooldown:     cfg.FetchCooldown,
		FetchPollInterval: cfg.FetchPollInterval,
		PollOnly:          cfg.PollOnly,
		// Step timeouts are enforced by the worker itself, per step.
		JobTimeout: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("creating River client: %w", err)
	}
	w.client = client
	return w, nil
}

// ID is the name this process reports in qflow.workers and step attempts.
func (w *Worker) ID() string { return w.cfg.ID }

// Start checks the database's schema version, registers the definitions of the registry,
// announces the worker and starts River.
func (w *Worker) Start(ctx context.Context) error {
	// Everything up to taking steps is idempotent, and retried while the database restarts.
	err := WaitOut(ctx, w.log, "starting", func(ctx context.Context) error {
		if err := CheckSchema(ctx, w.cfg.Pool); err != nil {
			return err
		}
		if _, err := w.cfg.Registry.Sync(ctx, w.cfg.Pool); err != nil {
			return err
		}
		if w.cfg.AfterSync != nil {
			if err := w.cfg.AfterSync(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.claims.start(ctx)
	w.results.start(ctx)
	beatCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancelBeat = cancel
	// No step is taken, and the worker does not announce itself, before the liveness lock is
	// held: the sweep would take the worker for dead and retry its steps.
	w.live = &liveness{w: w, locked: make(chan struct{})}
	w.liveDone = make(chan struct{})
	go func() {
		defer close(w.liveDone)
		w.live.run(beatCtx)
	}()
	select {
	case <-w.live.locked:
	case <-ctx.Done():
		w.stopBackground()
		w.claims.stop()
		w.results.stop()
		return fmt.Errorf("taking the liveness lock: %w", ctx.Err())
	}
	if err := WaitOut(ctx, w.log, "announcing worker", w.heartbeat); err != nil {
		w.stopBackground()
		w.claims.stop()
		w.results.stop()
		return fmt.Errorf("announcing worker: %w", err)
	}
	w.heartbeatDone = make(chan struct{})
	go w.heartbeatLoop(beatCtx)
	w.sweepDone = make(chan struct{})
	go w.sweepLoop(beatCtx, w.sweepDone)
	w.progressDone = make(chan struct{})
	go w.progressLoop(beatCtx, w.progressDone)
	w.scheduleDone = make(chan struct{})
	go w.scheduleLoop(beatCtx, w.scheduleDone)
	if m, ok := w.cfg.Metrics.(*Metrics); ok {
		w.reporterDone = make(chan struct{})
		go func() {
			defer close(w.reporterDone)
			// A worker is live for three missed heartbeats.
			m.runReporter(beatCtx, w.cfg.Direct, w.cfg.Read, w.cfg.ReportInterval, 3*w.cfg.HeartbeatInterval, func(err error) {
				w.log.Warn("metrics reporter", "err", err)
			})
		}()
	}

	// River cancels running jobs when its start context ends; shutdown goes through Stop, so
	// that running steps get their grace period.
	// A River client whose start failed stops what it started and may be started again.
	err = WaitOut(ctx, w.log, "starting River client", func(ctx context.Context) error {
		return w.client.Start(context.WithoutCancel(ctx))
	})
	if err != nil {
		w.stopBackground()
		w.claims.stop()
		w.results.stop()
		return fmt.Errorf("starting River client: %w", err)
	}
	w.log.Info("worker started", "classes", w.cfg.Classes, "max_workers", w.cfg.MaxWorkers)
	return nil
}

// Stop shuts down gracefully: no new steps are fetched, running steps get until ctx ends to
// finish, then their handlers are cancelled and the steps released for another worker.
func (w *Worker) Stop(ctx context.Context) error {
	w.stopping.Store(true)
	err := w.client.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		w.log.Warn("steps still running at shutdown deadline; cancelling and releasing them")
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = w.client.StopAndCancel(cctx)
	}
	// Every Work call has returned, or was given up on: nothing more will be claimed or recorded.
	w.stopRecording()
	w.claims.stop()
	w.results.stop()
	w.stopBackground()
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if rerr := w.queries.RemoveWorker(rctx, w.cfg.ID); rerr != nil {
		w.log.Warn("removing worker row", "err", rerr)
	}
	if err != nil {
		return fmt.Errorf("stopping River client: %w", err)
	}
	w.log.Info("worker stopped")
	return nil
}

// stopBackground ends the heartbeat, liveness, sweep and metrics loops and waits for them.
// The liveness lock goes with its session: a worker that stopped is dead to the sweep, which
// finds nothing of it running.
func (w *Worker) stopBackground() {
	if w.cancelBeat == nil {
		return
	}
	w.cancelBeat()
	for _, done := range []chan struct{}{w.heartbeatDone, w.reporterDone, w.liveDone, w.sweepDone, w.progressDone, w.scheduleDone} {
		if done != nil {
			<-done
		}
	}
}

func (w *Worker) heartbeat(ctx context.Context) error {
	host, _ := os.Hostname()
	return w.queries.HeartbeatWorker(ctx, gen.HeartbeatWorkerParams{
		ID: w.cfg.ID, Host: host, Pid: int32(os.Getpid()), Classes: w.cfg.Classes,
	})
}

func (w *Worker) heartbeatLoop(ctx context.Context) {
	defer close(w.heartbeatDone)
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			bctx, cancel := context.WithTimeout(ctx, dbCallTimeout)
			if err := w.heartbeat(bctx); err != nil && ctx.Err() == nil {
				w.log.Warn("worker heartbeat", "err", err)
			}
			cancel()
		}
	}
}

// riverLogger keeps River's routine chatter (producer counts, leadership, start and stop) out
// of the log unless it is a warning or worse. A job's error is the exception: River logs it at
// INFO ("Job errored; retrying", "Job panicked"), and it is raised to WARN, so a failing job
// shows at the default level.
func riverLogger(l *slog.Logger) *slog.Logger {
	return slog.New(riverHandler{l.Handler()})
}

// riverHandler passes River's records on from WARN up, and those below that carry a job's
// error, raised to WARN.
type riverHandler struct{ slog.Handler }

// Enabled lets INFO through to Handle, which drops it unless it carries a job's error.
func (h riverHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo && h.Handler.Enabled(ctx, max(level, slog.LevelWarn))
}

func (h riverHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		if !carriesError(r) {
			return nil
		}
		r.Level = slog.LevelWarn
	}
	return h.Handler.Handle(ctx, r)
}

func (h riverHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return riverHandler{h.Handler.WithAttrs(attrs)}
}

func (h riverHandler) WithGroup(name string) slog.Handler {
	return riverHandler{h.Handler.WithGroup(name)}
}

// carriesError says whether a record has a non-empty "error" attribute. Matched on the
// attribute rather than the message, which River words as it likes: below WARN, only its
// job executor's reports of a job's error (or of a job stopped by shutdown) carry one.
func carriesError(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" || a.Key == "err" {
			v := a.Value.Resolve()
			found = v.Kind() != slog.KindString || v.String() != ""
		}
		return !found
	})
	return found
}
