package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/quantumflow/qflow/gen"
)

// Metrics exports what workers do as Prometheus metrics. Step metrics are observed by each
// process as it runs steps. Run, queue and worker metrics come from the database, read every
// few seconds by one worker of the fleet (the holder of an advisory lock, the "reporter"),
// so that a scrape never queries Postgres, a run is counted once fleet-wide however it
// finished (worker, sweeper or psql), and N workers do not run N identical queries.
// Label values come only from definitions (workflow, step and class names) and fixed sets.
type Metrics struct {
	stepDuration *prometheus.HistogramVec
	steps        *prometheus.CounterVec
	started      *prometheus.CounterVec
	inFlight     *prometheus.GaugeVec
	runDuration  *prometheus.HistogramVec
	runs         *prometheus.CounterVec
	queueDepth   *prometheus.GaugeVec
	queueAge     *prometheus.GaugeVec
	workers      *prometheus.GaugeVec
	reporter     prometheus.Gauge

	// ReportLag is how old a finished run must be before the reporter counts it [5s]: its
	// finish time is its transaction's start, and the transaction may commit a little later.
	ReportLag time.Duration
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	m := &Metrics{
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "qflow_step_duration_seconds", Help: "Duration of step attempts executed by this process, by outcome.", Buckets: buckets,
		}, []string{"workflow", "step", "outcome"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qflow_steps_total", Help: "Step attempts finished by this process, by outcome (succeeded, failed, retried, timed_out, cancelled); outcome cached: steps whose output came from the cache, counted by the fleet's reporter when their run finishes.",
		}, []string{"workflow", "step", "outcome"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qflow_steps_started_total", Help: "Step attempts started by this process, by how they reached it (queue: a job fetched from the step's queue; eager: handed on by the result of the step before it; legacy: a step of a legacy-mode run).",
		}, []string{"workflow", "step", "dispatch"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qflow_steps_in_flight", Help: "Step handlers running in this process.",
		}, []string{"workflow", "step"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "qflow_run_duration_seconds", Help: "Duration of finished runs, from start to finish (reported by one worker of the fleet).", Buckets: buckets,
		}, []string{"workflow", "mode", "status"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qflow_runs_total", Help: "Finished runs by final status (reported by one worker of the fleet).",
		}, []string{"workflow", "mode", "status"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qflow_queue_depth", Help: "Steps due and waiting for a worker, per queue (worker class), from the database.",
		}, []string{"queue"}),
		queueAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qflow_queue_oldest_age_seconds", Help: "Age of the oldest step waiting for a worker, per queue, from the database.",
		}, []string{"queue"}),
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "qflow_workers", Help: "Live worker processes seen in qflow.workers, per worker class.",
		}, []string{"class"}),
		reporter: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "qflow_metrics_reporter", Help: "1 when this process is the one reporting database-derived metrics.",
		}),
		ReportLag: 5 * time.Second,
	}
	for _, c := range []prometheus.Collector{m.stepDuration, m.steps, m.started, m.inFlight, m.runDuration, m.runs, m.queueDepth, m.queueAge, m.workers, m.reporter} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}

// StepStarted implements Observer.
func (m *Metrics) StepStarted(workflow, step, dispatch string) {
	m.started.WithLabelValues(workflow, step, dispatch).Inc()
	m.inFlight.WithLabelValues(workflow, step).Inc()
}

// StepFinished implements Observer.
func (m *Metrics) StepFinished(workflow, step, outcome string, d time.Duration) {
	m.inFlight.WithLabelValues(workflow, step).Dec()
	m.steps.WithLabelValues(workflow, step, outcome).Inc()
	m.stepDuration.WithLabelValues(workflow, step, outcome).Observe(d.Seconds())
}

// reporterState is what the reporter remembers between reads.
type reporterState struct {
	conn      *pgxpool.Conn // holds the advisory lock while this process reports
	afterTime time.Time
	afterID   int64
}

// runReporter competes for the reporter lock, a session lock on a connection of pool, and,
// while holding it, refreshes the database-derived metrics every interval until ctx ends,
// reading them from read (a replica, say), or nil: on the lock's connection.
func (m *Metrics) runReporter(ctx context.Context, pool, read *pgxpool.Pool, interval, staleAfter time.Duration, onErr func(error)) {
	var st reporterState
	defer func() {
		if st.conn != nil {
			st.conn.Release()
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, dbCallTimeout)
		err := m.report(rctx, pool, read, &st, staleAfter)
		cancel()
		if err != nil && ctx.Err() == nil {
			onErr(err)
			m.resign(&st)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Metrics) resign(st *reporterState) {
	if st.conn != nil {
		// Closing the connection releases its session lock for another worker.
		_ = st.conn.Conn().Close(context.Background())
		st.conn.Release()
		st.conn = nil
	}
	m.reporter.Set(0)
	m.queueDepth.Reset()
	m.queueAge.Reset()
	m.workers.Reset()
}

func (m *Metrics) report(ctx context.Context, pool, read *pgxpool.Pool, st *reporterState, staleAfter time.Duration) error {
	if st.conn == nil {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("acquiring reporter connection: %w", err)
		}
		locked, err := gen.New(conn).TryReporterLock(ctx)
		if err != nil {
			conn.Release()
			return fmt.Errorf("taking reporter lock: %w", err)
		}
		if !locked {
			conn.Release()
			return nil
		}
		// Count runs that finish from now on, now as the data read says (a replica's clock is
		// its last replayed commit); history before this process reported was reported by
		// its predecessor (or predates the fleet's metrics).
		now, err := reads(conn, read).Staleness(ctx)
		if err != nil {
			conn.Release()
			return fmt.Errorf("reading the time of the data: %w", err)
		}
		st.conn = conn
		st.afterTime, st.afterID = now.AsOf.Time.Add(-m.ReportLag), 0
		m.reporter.Set(1)
	}
	q := reads(st.conn, read)

	queues, err := q.QueueStats(ctx)
	if err != nil {
		return fmt.Errorf("reading queue stats: %w", err)
	}
	m.queueDepth.Reset()
	m.queueAge.Reset()
	for _, r := range queues {
		m.queueDepth.WithLabelValues(r.Queue).Set(float64(r.Depth))
		m.queueAge.WithLabelValues(r.Queue).Set(r.OldestAgeSeconds)
	}

	live, err := q.LiveWorkers(ctx, staleAfter.Seconds())
	if err != nil {
		return fmt.Errorf("reading live workers: %w", err)
	}
	m.workers.Reset()
	for _, r := range live {
		m.workers.WithLabelValues(r.Class).Set(float64(r.Workers))
	}

	for {
		runs, err := q.FinishedRunsSince(ctx, gen.FinishedRunsSinceParams{AfterTime: pgtype.Timestamptz{Time: st.afterTime, Valid: true}, AfterID: st.afterID, LagSeconds: m.ReportLag.Seconds()})
		if err != nil {
			return fmt.Errorf("reading finished runs: %w", err)
		}
		ids := make([]int64, len(runs))
		for i, r := range runs {
			ids[i] = r.ID
		}
		// Read before the watermark moves: an error leaves these runs to be read again.
		cached, err := q.CachedStepsOfRuns(ctx, ids)
		if err != nil {
			return fmt.Errorf("reading cache hits of finished runs: %w", err)
		}
		for _, c := range cached {
			m.steps.WithLabelValues(c.Workflow, c.Step, OutcomeCached).Add(float64(c.Hits))
		}
		for _, r := range runs {
			m.runs.WithLabelValues(r.Workflow, r.Mode, r.Status).Inc()
			m.runDuration.WithLabelValues(r.Workflow, r.Mode, r.Status).Observe(r.DurationSeconds)
			st.afterTime, st.afterID = r.FinishedAt.Time, r.ID
		}
		if len(runs) < 5000 {
			return nil
		}
	}
}

// reads are the reporter's queries: on read when set, else on the lock's connection.
func reads(conn *pgxpool.Conn, read *pgxpool.Pool) *gen.Queries {
	if read != nil {
		return gen.New(read)
	}
	return gen.New(conn)
}

// ServeMetrics serves the default Prometheus registry on addr at /metrics until ctx ends.
// It binds before returning, so a taken port is reported at start, not later.
func ServeMetrics(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for /metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var once sync.Once
	go func() {
		<-ctx.Done()
		once.Do(func() { _ = srv.Close() })
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			once.Do(func() { _ = srv.Close() })
		}
	}()
	return ln.Addr(), nil
}
