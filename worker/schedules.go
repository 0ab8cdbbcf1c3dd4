package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/robfig/cron/v3"

	"github.com/quantumflow/qflow/gen"
)

// Schedules (sql/schema/0240_schedules.sql). Every worker tries a scheduler pass each
// ScheduleInterval under a try-lock; the pass computes each enabled schedule's due fires with
// the cron library and takes them with qflow.fire_schedule, whose fire key makes each fire one
// run however many workers take it.

// missedGrace is how late a fire may be taken and still count as on time (a worker restarting,
// Postgres restarting around the due time): a fire due longer ago than this fell while no
// worker ran, and a schedule with missed = 'skip' skips it.
const missedGrace = 15 * time.Second

// maxDueFires bounds the fires a pass counts for one schedule (an every-second schedule after
// a week without workers): only the latest is run in any case.
const maxDueFires = 100_000

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseSchedule reads a schedule's expression in its time zone.
func parseSchedule(expr, zone string) (cron.Schedule, error) {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", zone, err)
	}
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, err
	}
	if spec, ok := s.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return s, nil
}

// dueFire returns the latest fire of s after since and not after now, and how many fell due.
func dueFire(s cron.Schedule, since, now time.Time) (time.Time, int) {
	var latest time.Time
	n := 0
	for t := s.Next(since); !t.After(now) && n < maxDueFires; t = s.Next(t) {
		latest = t
		n++
	}
	return latest, n
}

func (w *Worker) scheduleLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(w.cfg.ScheduleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := w.schedulePass(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("scheduler", "err", err)
		}
	}
}

func (w *Worker) schedulePass(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dbCallTimeout)
	defer cancel()
	// The lock is a session's: on Direct, which reaches Postgres itself when Pool is PgBouncer.
	conn, err := w.cfg.Direct.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring a connection: %w", err)
	}
	defer conn.Release()
	q := gen.New(conn)
	ok, err := q.TrySchedulerLock(ctx)
	if err != nil || !ok {
		return err
	}
	passErr := w.fireDue(ctx, q)
	if err := q.SchedulerUnlock(context.WithoutCancel(ctx)); err != nil {
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
		return fmt.Errorf("releasing the scheduler lock: %w", err)
	}
	return passErr
}

// fireDue takes the due fire of every enabled schedule: one run for the latest fire due, or,
// for a schedule that skips missed fires, none when that fire is older than missedGrace.
func (w *Worker) fireDue(ctx context.Context, q *gen.Queries) error {
	schedules, err := q.DueSchedules(ctx)
	if err != nil {
		return fmt.Errorf("reading schedules: %w", err)
	}
	now := time.Now()
	for _, s := range schedules {
		sched, err := parseSchedule(s.Cron, s.TimeZone)
		if err != nil {
			if !s.Refused {
				w.log.Warn("schedule refused by the cron library", "schedule", s.Name, "cron", s.Cron, "err", err)
				if err := q.RefuseSchedule(ctx, gen.RefuseScheduleParams{Name: s.Name, Error: err.Error()}); err != nil {
					return fmt.Errorf("recording schedule %s's error: %w", s.Name, err)
				}
			}
			continue
		}
		due, n := dueFire(sched, s.Since.Time, now)
		if n == 0 {
			continue
		}
		run := s.Missed != "skip" || now.Sub(due) <= missedGrace
		id, err := q.FireSchedule(ctx, gen.FireScheduleParams{Name: s.Name, Due: pgtype.Timestamptz{Time: due, Valid: true}, Run: run})
		if err != nil {
			return fmt.Errorf("firing schedule %s at %s: %w", s.Name, due.Format(time.RFC3339), err)
		}
		if id != 0 {
			w.log.Info("schedule fired", "schedule", s.Name, "due", due, "run_id", id, "late", now.Sub(due).Round(time.Millisecond), "fires_due", n)
		} else if !run {
			w.log.Info("missed fires skipped", "schedule", s.Name, "latest", due, "fires_due", n)
		}
	}
	return nil
}

// CheckSchedule says whether the workers' cron library reads expr in time zone zone.
func CheckSchedule(expr, zone string) error {
	_, err := parseSchedule(expr, zone)
	return err
}

// NextFire is the first fire of expr in zone after t.
func NextFire(expr, zone string, t time.Time) (time.Time, error) {
	s, err := parseSchedule(expr, zone)
	if err != nil {
		return time.Time{}, err
	}
	return s.Next(t), nil
}
