package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quantumflow/qflow/gen"
)

// Liveness. A worker process is alive while its database session is: it holds, on a
// connection of its own, a session-level advisory lock keyed by its id, which Postgres
// releases the moment that session ends (sql/schema/0332_worker_lock_key.sql). The sweep
// retries the attempts of workers whose lock is free, a second after their death, whatever
// the steps' timeouts. The same connection listens on qflow_cancel for attempts the engine no
// longer wants (a cancelled, failed or timed-out run, a lease given up), and the worker
// cancels those handlers' contexts (sql/schema/0337_notify_cancel.sql).

// errCancelledByEngine is the cause of a handler's context cancelled on the engine's word.
var errCancelledByEngine = errors.New("the engine no longer wants this attempt (run cancelled, failed or timed out, or lease given up)")

// cancels knows the running attempts' contexts, so a notification can cancel one.
type cancels struct {
	mu      sync.Mutex
	running map[StepArgs]map[*int]context.CancelCauseFunc
}

// track returns a context of ctx that a cancel notification for a (run, step, attempt; step
// "" for a legacy run's job) cancels, and the function that forgets it.
func (c *cancels) track(ctx context.Context, a StepArgs) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	token := new(int)
	c.mu.Lock()
	if c.running == nil {
		c.running = map[StepArgs]map[*int]context.CancelCauseFunc{}
	}
	if c.running[a] == nil {
		c.running[a] = map[*int]context.CancelCauseFunc{}
	}
	c.running[a][token] = cancel
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		delete(c.running[a], token)
		if len(c.running[a]) == 0 {
			delete(c.running, a)
		}
		c.mu.Unlock()
		cancel(nil)
	}
}

// tracked lists the attempts with contexts tracked.
func (c *cancels) tracked() []StepArgs {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]StepArgs, 0, len(c.running))
	for a := range c.running {
		out = append(out, a)
	}
	return out
}

// cancel cancels the contexts tracked for a; it reports whether there were any.
func (c *cancels) cancel(a StepArgs) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.running[a] {
		f(errCancelledByEngine)
	}
	return len(c.running[a]) > 0
}

// cancelNotice is the payload of a qflow_cancel notification.
type cancelNotice struct {
	Worker  string  `json:"worker"`
	RunID   int64   `json:"run_id"`
	Step    *string `json:"step"`
	Attempt int32   `json:"attempt"`
}

// liveness holds the worker's liveness lock and listens for cancellations until ctx ends,
// reconnecting when its connection is lost. alive is set while the lock is held.
type liveness struct {
	w     *Worker
	alive atomic.Bool
	// locked is closed once the lock is first held: Start waits for it before taking steps,
	// so that no step is claimed by a worker the sweep would think dead.
	locked     chan struct{}
	lockedOnce sync.Once
}

func (l *liveness) run(ctx context.Context) {
	w := l.w
	// The sweep gives a cut session 1.5 s to come back before it gives up the worker's attempts:
	// the first retries come fast.
	const firstBackoff = 50 * time.Millisecond
	backoff := firstBackoff
	for ctx.Err() == nil {
		err := l.session(ctx)
		if l.alive.Swap(false) {
			backoff = firstBackoff
		}
		if ctx.Err() != nil {
			return
		}
		w.log.Warn("liveness session lost; reconnecting (the sweep gives up this worker's running attempts if it is not back within 1.5 s)", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// session connects, takes the lock, listens, and handles notifications until the connection
// fails or ctx ends.
func (l *liveness) session(ctx context.Context) error {
	w := l.w
	cfg := w.cfg.Direct.Config().ConnConfig.Copy()
	// The server ends this session, and so frees the lock, within about 25 s of this machine
	// going silent (power loss, a cut cable: nothing closes the socket); the defaults are hours.
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["tcp_keepalives_idle"] = "10"
	cfg.RuntimeParams["tcp_keepalives_interval"] = "5"
	cfg.RuntimeParams["tcp_keepalives_count"] = "3"
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(connectCtx, cfg)
	cancel()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.Contains(pgErr.Message, "unsupported startup parameter") {
		// PgBouncer refuses the keepalive settings: this session went to a pooler.
		return fmt.Errorf("connecting: %w (this session must reach Postgres itself, not a pooler: give the worker a direct URL)", err)
	}
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	q := gen.New(conn)
	// The lock of a session of ours that the server has not yet seen end (a dropped
	// connection) is released when it does: wait for it.
	for {
		ok, err := q.TryLockWorker(ctx, w.cfg.ID)
		if err != nil {
			return fmt.Errorf("taking the liveness lock: %w", err)
		}
		if ok {
			break
		}
		w.log.Warn("liveness lock held by an earlier session of this worker; waiting for the server to end it")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if err := q.ListenCancel(ctx); err != nil {
		return fmt.Errorf("listening for cancellations: %w", err)
	}
	l.alive.Store(true)
	l.lockedOnce.Do(func() { close(l.locked) })
	// Notifications sent while this worker was not listening are lost: the attempts they were
	// about are found by asking.
	if err := l.cancelEnded(ctx, q); err != nil {
		return fmt.Errorf("looking for attempts that ended meanwhile: %w", err)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var notice cancelNotice
		if err := json.Unmarshal([]byte(n.Payload), &notice); err != nil {
			w.log.Warn("undecodable cancel notification", "payload", n.Payload, "err", err)
			continue
		}
		if notice.Worker != w.cfg.ID {
			continue
		}
		a := StepArgs{RunID: notice.RunID, Attempt: notice.Attempt}
		if notice.Step != nil {
			a.Step = *notice.Step
		}
		if w.cancels.cancel(a) {
			w.log.Info("attempt cancelled by the engine", "run_id", a.RunID, "step", a.Step, "attempt", a.Attempt)
		}
	}
}

// cancelEnded cancels the running attempts that the database no longer has running on this
// worker.
func (l *liveness) cancelEnded(ctx context.Context, q *gen.Queries) error {
	running := l.w.cancels.tracked()
	if len(running) == 0 {
		return nil
	}
	attempts, err := json.Marshal(running)
	if err != nil {
		return err
	}
	ended, err := q.EndedAttempts(ctx, gen.EndedAttemptsParams{Attempts: attempts, Worker: l.w.cfg.ID})
	if err != nil {
		return err
	}
	for _, e := range ended {
		if l.w.cancels.cancel(StepArgs{RunID: e.RunID, Step: e.Step, Attempt: e.Attempt}) {
			l.w.log.Info("attempt ended while this worker was cut off; cancelled", "run_id", e.RunID, "step", e.Step, "attempt", e.Attempt)
		}
	}
	return nil
}

// sweepLoop runs qflow.sweep every interval on a connection of Direct (the lock is a
// session's), when this worker wins the sweep lock: every worker tries, one sweeps, and a dead
// one is simply not among those trying.
func (w *Worker) sweepLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(w.cfg.SweepInterval)
	defer t.Stop()
	for {
		if err := w.sweepOnce(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) sweepOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := w.cfg.Direct.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring a connection: %w", err)
	}
	defer conn.Release()
	q := gen.New(conn)
	ok, err := q.TrySweepLock(ctx)
	if err != nil || !ok {
		return err
	}
	sweepErr := q.Sweep(ctx)
	if err := q.SweepUnlock(context.WithoutCancel(ctx)); err != nil {
		// A session that cannot say unlock must not go back to the pool holding the lock.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		return fmt.Errorf("releasing the sweep lock: %w", err)
	}
	if sweepErr != nil {
		return fmt.Errorf("sweeping: %w", sweepErr)
	}
	return nil
}
