package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Config says how a chaos run goes. Zero values take the defaults in brackets.
type Config struct {
	// Duration is how long load and faults last [5m; 25s with Short].
	Duration time.Duration
	// Short is the mode `go test` runs: lighter load and a fixed plan with each fault once or twice.
	Short bool
	// Workers is how many worker processes run [3].
	Workers int
	// Seed makes the load and the choice of faults repeatable [from the clock].
	Seed int64
	// Binary is the qflow binary to run; empty builds ./cmd/qflow into the work directory.
	Binary string
	// ServerURL is a Postgres server (its maintenance database) to use instead of a private
	// cluster. Postgres restarts are then skipped: that server is not ours to restart.
	ServerURL string
	// Toxiproxy is the toxiproxy server binary the workers connect through [$QFLOW_TOXIPROXY,
	// else what `make toxiproxy` builds].
	Toxiproxy string
	// Log receives progress lines [discarded].
	Log io.Writer
}

// Fault kinds, as the report names them.
const (
	FaultKill             = "sigkill"
	FaultTerm             = "sigterm"
	FaultTerminate        = "terminate_backend"
	FaultRestartFast      = "pg_restart_fast"
	FaultRestartImmediate = "pg_restart_immediate"
	FaultDuplicate        = "duplicate_completion"
	FaultLate             = "late_completion"
	FaultHang             = "hang"
	FaultPanic            = "panic"
	// Network faults between one worker and Postgres (network.go).
	FaultLatency   = "net_latency"
	FaultBandwidth = "net_bandwidth"
	FaultLimitData = "net_limit_data"
	FaultReset     = "net_reset"
	FaultDown      = "net_down"
	FaultBlackHole = "net_blackhole"
)

var faultOrder = []string{FaultKill, FaultTerm, FaultTerminate, FaultRestartFast, FaultRestartImmediate,
	FaultDuplicate, FaultLate, FaultHang, FaultPanic,
	FaultLatency, FaultBandwidth, FaultLimitData, FaultReset, FaultDown, FaultBlackHole}

// Report is what a chaos run found.
type Report struct {
	// Runs is how many runs the loaders inserted.
	Runs int
	// Faults counts injected faults by kind (hang and panic: attempts that hung or panicked).
	Faults map[string]int
	// Outcomes counts runs by final status; ByWorkflow by workflow, then by final status.
	Outcomes   map[string]int
	ByWorkflow map[string]map[string]int
	// Elements counts the element rows of map steps.
	Elements int
	// FaultSpent counts runs that should have succeeded and failed because faults spent their
	// retry budget, every attempt they lost given up by the sweep (their worker's session
	// ended, or it was cut off past the lease): allowed, and reported. FaultSpentNetwork counts
	// those of them that lost an attempt while its worker was under a network fault.
	FaultSpent, FaultSpentNetwork int
	// The invariants of the summary line, and the retry budget. FailedByNetwork counts runs that
	// should have succeeded and failed for another reason during a network fault.
	// MapViolations counts map steps whose row disagrees with their element rows (maps.go).
	Lost, Duplicated, LimitViolations, Stuck, FailedByNetwork, OverBudget, MapViolations int
	// LimitPeak is the highest overlap of attempts seen on a concurrency-limited step, and its limit.
	LimitPeak, Limit int
	// KillRecoveryShort and KillRecoveryLong hold, for each attempt a SIGKILLed worker was
	// running whose step ran again, the time from the kill until the step's next attempt
	// started, both read on the database's clock: for steps with a timeout up to a minute, and
	// for longer ones (the long step's three minutes).
	KillRecoveryShort, KillRecoveryLong []time.Duration
	// KilledAttempts counts the attempts SIGKILLed workers were running; KilledNotRetried
	// those whose step never ran again (its run had ended, or the death spent its last attempt).
	KilledAttempts, KilledNotRetried int
	// Died counts the attempts the sweep gave up because their worker's database session had
	// ended, DiedAtKill those of them at a SIGKILL: the rest belonged to live workers whose
	// liveness session pg_terminate_backend or a Postgres restart cut, and were retried all the
	// same. DiedLong and DiedLongAtKill count the long steps among them. LeaseExpired counts the
	// attempts it gave up because the lease ran out, LeaseExpiredLive those of them whose
	// worker was alive and connected all along (not killed, not cut off by a network fault or a
	// Postgres restart): an invariant.
	Died, DiedAtKill, DiedLong, DiedLongAtKill, LeaseExpired, LeaseExpiredLive int
	// DiedNetwork and LeaseExpiredNetwork count the attempts of live workers (given up before
	// any SIGKILL of theirs) that were given up while their worker was under a network fault.
	DiedNetwork, LeaseExpiredNetwork int
	// LeaseExpiries describe the first few lease expiries, to look into.
	LeaseExpiries []string
	// LeaseWaits counts attempts a SIGKILLed worker was running that waited for their lease:
	// they ended as lease expired, or, for long steps, the next attempt started past the lease.
	LeaseWaits int
	// RestartRecovery holds, by restart kind, the time from the restart until the first step
	// completed after it; RestartDowntime the time the restart command took.
	RestartRecovery, RestartDowntime map[string][]time.Duration
	// BlackHoleFirstRetry is how long a worker started against a database behind a black hole
	// took to log its first "database unavailable; retrying"; BlackHoleGaveUp how long until it
	// exited, when that came before the load's end.
	BlackHoleFirstRetry, BlackHoleGaveUp time.Duration
	// Settle is how long the runs took to end once the load stopped, SettleAfterFault once the
	// last fault was over; Elapsed the whole run.
	Settle, SettleAfterFault, Elapsed time.Duration
	// Violations describe the failed checks, one line each.
	Violations []string
	// LogDir holds the workers' logs; it is kept when a check failed.
	LogDir string
}

// OK reports whether every check passed.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Summary is the one-line result.
func (r *Report) Summary() string {
	total := 0
	for _, n := range r.Faults {
		total += n
	}
	return fmt.Sprintf("chaos: runs=%d faults=%d lost=%d duplicated=%d limit_violations=%d stuck=%d lease_expired_live=%d failed_by_network=%d map_violations=%d",
		r.Runs, total, r.Lost, r.Duplicated, r.LimitViolations, r.Stuck, r.LeaseExpiredLive, r.FailedByNetwork, r.MapViolations)
}

// Write prints the summary line and the details.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintln(w, r.Summary())
	var faults []string
	for _, k := range faultOrder {
		faults = append(faults, fmt.Sprintf("%s=%d", k, r.Faults[k]))
	}
	fmt.Fprintf(w, "chaos: faults: %s\n", strings.Join(faults, " "))
	var outcomes []string
	for _, k := range []string{"succeeded", "failed", "cancelled", "timed_out", "running", "pending"} {
		if r.Outcomes[k] > 0 {
			outcomes = append(outcomes, fmt.Sprintf("%s=%d", k, r.Outcomes[k]))
		}
	}
	fmt.Fprintf(w, "chaos: outcomes: %s (failed because faults spent the retry budget: %d, %d of them with a network fault)\n",
		strings.Join(outcomes, " "), r.FaultSpent, r.FaultSpentNetwork)
	var workflows []string
	for _, wf := range sortedKeys(r.ByWorkflow) {
		var byStatus []string
		for _, st := range sortedKeys(r.ByWorkflow[wf]) {
			byStatus = append(byStatus, fmt.Sprintf("%s=%d", st, r.ByWorkflow[wf][st]))
		}
		workflows = append(workflows, fmt.Sprintf("%s (%s)", wf, strings.Join(byStatus, " ")))
	}
	fmt.Fprintf(w, "chaos: runs by workflow: %s; map elements: %d\n", strings.Join(workflows, ", "), r.Elements)
	fmt.Fprintf(w, "chaos: recovery after sigkill, from the kill to the next attempt's start: short steps %s of %d, long steps %s of %d; %d of %d killed attempts not retried\n",
		spread(r.KillRecoveryShort), len(r.KillRecoveryShort), spread(r.KillRecoveryLong), len(r.KillRecoveryLong), r.KilledNotRetried, r.KilledAttempts)
	fmt.Fprintf(w, "chaos: attempts given up by the sweep: died=%d (at a sigkill: %d; of live workers whose session was cut: %d, long steps %d, under a network fault %d) lease_expired=%d (of live workers under a network fault: %d; of live, connected workers: %d)\n",
		r.Died, r.DiedAtKill, r.Died-r.DiedAtKill, r.DiedLong-r.DiedLongAtKill, r.DiedNetwork, r.LeaseExpired, r.LeaseExpiredNetwork, r.LeaseExpiredLive)
	for _, e := range r.LeaseExpiries {
		fmt.Fprintf(w, "chaos: lease expired: %s\n", e)
	}
	fmt.Fprintf(w, "chaos: a worker starting under a black hole: first retry logged after %s, gave up after %s\n",
		orNA(r.BlackHoleFirstRetry), orNA(r.BlackHoleGaveUp))
	for _, k := range []string{FaultRestartFast, FaultRestartImmediate} {
		if len(r.RestartDowntime[k]) > 0 {
			fmt.Fprintf(w, "chaos: recovery after %s: first step completed %s after the restart began (restart took %s)\n",
				k, spread(r.RestartRecovery[k]), spread(r.RestartDowntime[k]))
		}
	}
	fmt.Fprintf(w, "chaos: checks: over_budget=%d lease_waits=%d limit_peak=%d/%d settle=%s (%s after the last fault) elapsed=%s\n",
		r.OverBudget, r.LeaseWaits, r.LimitPeak, r.Limit, r.Settle.Round(100*time.Millisecond),
		r.SettleAfterFault.Round(100*time.Millisecond), r.Elapsed.Round(time.Second))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "chaos: violation: %s\n", v)
	}
	if !r.OK() && r.LogDir != "" {
		fmt.Fprintf(w, "chaos: worker logs kept in %s\n", r.LogDir)
	}
}

// spread describes durations as p50 and max.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("p50 %s max %s", s[len(s)/2].Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond))
}

func orNA(d time.Duration) string {
	if d == 0 {
		return "n/a"
	}
	return d.Round(10 * time.Millisecond).String()
}

// chaos is one run: its processes, connections and what it saw.
type chaos struct {
	cfg     Config
	root    string // the repository
	dir     string // binary, worker logs
	bin     string
	cluster *cluster // nil on a given server
	server  string   // the server's maintenance database
	dbName  string
	logins  logins
	admin   *pgxpool.Pool // superuser: faults and checks
	worker  *pgxpool.Pool // the worker login: stale completions
	net     *network      // between the workers and Postgres
	fleet   *fleet

	mu       sync.Mutex
	rng      *rand.Rand
	report   *Report
	acked    map[string]bool // idempotency keys whose insert was confirmed
	kills    []kill
	restarts []restart
	outages  []outage
	hangs    int
	lastHang time.Time
	started  time.Time
	// lastFault is when the latest fault was over.
	lastFault time.Time
}

// logins are the users the workers and loaders connect as, and their URLs.
type logins struct {
	admin, worker, trigger          string // database URLs
	workerName, triggerName, secret string
}

// kill is a SIGKILL: when (on the database's clock) and which worker.
type kill struct {
	at     time.Time
	victim string
}

type restart struct {
	kind       string
	start, end time.Time
}

type stepRef struct {
	run     int64
	step    string
	attempt int32
}

// Run sets everything up, drives load and faults for cfg.Duration, waits for the runs to end
// and checks the tables. An error means the run could not be carried out; failed checks are
// in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Minute
		if cfg.Short {
			cfg.Duration = 25 * time.Second
		}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 3
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano()
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	c := &chaos{
		cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 7)), acked: map[string]bool{}, started: time.Now(),
		report: &Report{Faults: map[string]int{}, Outcomes: map[string]int{}, ByWorkflow: map[string]map[string]int{},
			RestartRecovery: map[string][]time.Duration{}, RestartDowntime: map[string][]time.Duration{}},
	}
	var err error
	if c.root, err = repoRoot(); err != nil {
		return nil, err
	}
	if c.dir, err = os.MkdirTemp("", "qflow-chaos-"); err != nil {
		return nil, err
	}
	c.logf("seed %d, %d workers, load for %s, work directory %s", cfg.Seed, cfg.Workers, cfg.Duration, c.dir)
	err = c.setup(ctx)
	if err == nil {
		c.drive(ctx)
		c.settle(ctx)
		err = c.check(ctx)
	}
	c.teardown()
	c.report.Elapsed = time.Since(c.started)
	if err == nil && c.report.OK() {
		os.RemoveAll(c.dir)
	} else {
		c.report.LogDir = c.dir
	}
	if err != nil {
		return nil, fmt.Errorf("chaos (logs in %s): %w", c.dir, err)
	}
	return c.report, nil
}

func (c *chaos) logf(format string, args ...any) {
	fmt.Fprintf(c.cfg.Log, "chaos %6.1fs: %s\n", time.Since(c.started).Seconds(), fmt.Sprintf(format, args...))
}

// violation records a failed check.
func (c *chaos) violation(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report.Violations = append(c.report.Violations, fmt.Sprintf(format, args...))
}

func (c *chaos) countFault(kind string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report.Faults[kind] += n
}

// intn is the shared random source (loaders and faults draw from it concurrently).
func (c *chaos) intn(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rng.IntN(n)
}

func (c *chaos) setup(ctx context.Context) error {
	c.bin = c.cfg.Binary
	if c.bin == "" {
		c.bin = filepath.Join(c.dir, "qflow")
		c.logf("building qflow")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "./cmd/qflow")
		cmd.Dir = c.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building qflow: %w\n%s", err, out)
		}
	}
	c.server = c.cfg.ServerURL
	c.dbName = "qflow_chaos"
	if c.server == "" {
		var err error
		if c.cluster, err = startCluster(ctx, c.root, c.dir); err != nil {
			return err
		}
		c.server = c.cluster.url
		c.logf("private cluster on port %s (%s)", c.cluster.port, c.cluster.data)
	} else {
		c.dbName = fmt.Sprintf("qflow_chaos_%d", os.Getpid())
	}
	if err := c.createDatabase(ctx); err != nil {
		return err
	}
	c.logf("migrating")
	cmd := exec.CommandContext(ctx, c.bin, "migrate")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+c.logins.admin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qflow migrate: %w\n%s", err, out)
	}
	if err := c.createLogins(ctx); err != nil {
		return err
	}
	var err error
	if c.admin, err = newPool(ctx, c.logins.admin, 8); err != nil {
		return err
	}
	if c.worker, err = newPool(ctx, c.logins.worker, 2); err != nil {
		return err
	}
	if err := c.configureLongStep(ctx); err != nil {
		return err
	}
	toxiproxyBin, err := toxiproxyBinary(ctx, c.root, c.cfg.Toxiproxy)
	if err != nil {
		return err
	}
	if c.net, err = startNetwork(ctx, toxiproxyBin, c.dir, c.server, c.cfg.Workers); err != nil {
		return err
	}
	c.fleet = &fleet{c: c, procs: make([]*proc, c.cfg.Workers), gens: make([]int, c.cfg.Workers)}
	for i := range c.cfg.Workers {
		if err := c.fleet.start(ctx, i); err != nil {
			return err
		}
	}
	c.logf("%d workers up", c.cfg.Workers)
	return nil
}

// configureLongStep gives the long step its timeout of minutes, as an operator would, before
// any worker starts; the workers' registrations of the same definition leave it alone.
func (c *chaos) configureLongStep(ctx context.Context) error {
	settings := fmt.Sprintf(`{"steps": {%q: {"timeout_ms": %d}}}`, longStep, longTimeout.Milliseconds())
	if _, err := c.admin.Exec(ctx, "SELECT qflow.configure_workflow($1, $2)", longWorkflow, settings); err != nil {
		return fmt.Errorf("configuring the long step %s.%s: %w", longWorkflow, longStep, err)
	}
	return nil
}

func (c *chaos) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if c.fleet != nil {
		c.fleet.stopAll()
	}
	if c.net != nil {
		c.net.stop()
	}
	for _, p := range []*pgxpool.Pool{c.admin, c.worker} {
		if p != nil {
			p.Close()
		}
	}
	if c.cluster != nil {
		c.cluster.stop(ctx)
		return
	}
	if c.server != "" {
		c.dropDatabase(ctx)
	}
}

// drive runs the loaders and the fault plan for the configured duration.
func (c *chaos) drive(ctx context.Context) {
	loadCtx, stop := context.WithTimeout(ctx, c.cfg.Duration)
	defer stop()
	loaders := 3
	if c.cfg.Short {
		loaders = 2
	}
	var wg sync.WaitGroup
	for i := range loaders {
		wg.Go(func() { c.load(loadCtx, i) })
	}
	wg.Go(func() { c.startUnderBlackHole(loadCtx) })
	c.inject(loadCtx)
	wg.Wait()
	c.mu.Lock()
	c.report.Runs = len(c.acked)
	c.mu.Unlock()
	c.logf("load stopped: %d runs inserted", c.report.Runs)
	// A worker restarted by the last fault may still be coming up; everyone must be serving.
	c.fleet.ensureAll(ctx)
}

// settle waits until every run has ended and no River job is left live for an ended run,
// or until the latest bound of the live runs has passed.
func (c *chaos) settle(ctx context.Context) {
	start := time.Now()
	var until time.Time
	err := retrySQL(ctx, func(ctx context.Context) error {
		return c.admin.QueryRow(ctx, `SELECT coalesce(max(r.created_at + `+runBound+`), now()) FROM qflow.runs r
		                               WHERE r.status IN ('pending', 'running')`, c.slack().Milliseconds(), maxWorkMS).Scan(&until)
	})
	if err != nil {
		c.violation("reading the bound of live runs: %v", err)
		return
	}
	// Jobs orphaned by the last kill are cancelled a lease after their start.
	until = later(until, time.Now().Add(20*time.Second))
	for {
		var live, leftover int
		err := retrySQL(ctx, func(ctx context.Context) error {
			return c.admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM qflow.runs WHERE status IN ('pending', 'running')),
			                                     (SELECT count(*) FROM river.river_job j JOIN qflow.runs r ON r.id = (j.args ->> 'run_id')::bigint
			                                       WHERE j.kind IN ('qflow_step', 'qflow_legacy') AND j.state IN `+liveJobStates+`
			                                         AND r.status NOT IN ('pending', 'running'))`).Scan(&live, &leftover)
		})
		if err == nil && live == 0 && leftover == 0 {
			break
		}
		if time.Now().After(until) || ctx.Err() != nil {
			c.logf("settling gave up with %d live runs and %d leftover jobs", live, leftover)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	end := time.Now()
	c.mu.Lock()
	lastFault := c.lastFault
	c.mu.Unlock()
	if lastFault.IsZero() {
		lastFault = start
	}
	c.report.Settle, c.report.SettleAfterFault = end.Sub(start), end.Sub(lastFault)
	c.logf("settled in %s, %s after the last fault", c.report.Settle.Round(100*time.Millisecond), c.report.SettleAfterFault.Round(100*time.Millisecond))
}

// slack is what a run's bound allows beyond its steps' own timing: worker restarts, Postgres
// restarts, network faults, leader changes and queueing behind the concurrency limit.
func (c *chaos) slack() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := 30 * time.Second
	for _, r := range c.restarts {
		d += r.end.Sub(r.start) + 5*time.Second
	}
	// A run lasts seconds: one network fault on its workers, the longest, is what it may meet.
	var longest time.Duration
	for _, o := range c.outages {
		longest = max(longest, o.end.Sub(o.start)+5*time.Second)
	}
	return d + longest
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// repoRoot finds the checkout from the working directory (go run at the root, go test in
// the package directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ".ci", "postgres.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("chaos: .ci/postgres.sh not found above the working directory (run it inside the checkout)")
		}
		dir = parent
	}
}

// sortedKeys returns a map's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
