package chaos

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// checkMaps: every map step's row agrees with its element rows, in any run, whatever the
// workflow (sql/schema/0150_step_runs.sql states the shape):
//
//   - its row holds no job, worker or lease in any state: no worker runs it, its elements do
//     (while they run, the row is running with none of these by design);
//   - it has exactly `tasks` element rows, indexed 0 to tasks-1, and every element row has an
//     expanded map step;
//   - remaining_tasks is the number of its elements not succeeded;
//   - succeeded, all its elements succeeded and its output is theirs in element order;
//     failed, one of its elements failed.
//
// An element left live in an ended run is the stuck check's, its attempts the budget and
// duplicate checks' (checkAttempts), its output checkRuns'.
func (c *chaos) checkMaps(ctx context.Context) error {
	r := c.report
	n := 0
	err := c.rows(ctx, `
		SELECT m.run_id, m.step, m.status, m.tasks, m.remaining_tasks,
		       m.job_id IS NOT NULL OR m.worker IS NOT NULL OR m.lease_expires_at IS NOT NULL,
		       count(e.step), count(e.step) FILTER (WHERE e.status = 'succeeded'),
		       count(e.step) FILTER (WHERE e.status = 'failed'), coalesce(max(e.task), -1),
		       m.status <> 'succeeded'
		         OR m.output = coalesce(jsonb_agg(e.output ORDER BY e.task) FILTER (WHERE e.step IS NOT NULL), '[]')
		  FROM qflow.step_runs m
		  LEFT JOIN qflow.step_runs e ON e.run_id = m.run_id AND e.def_step = m.step AND e.task IS NOT NULL
		 WHERE m.tasks IS NOT NULL
		 GROUP BY m.run_id, m.step
		 ORDER BY m.run_id, m.step`, nil, func(row pgx.Rows) error {
		var run int64
		var step, status string
		var tasks, remaining, elements, succeeded, failed, last int
		var held, ordered bool
		if err := row.Scan(&run, &step, &status, &tasks, &remaining, &held, &elements, &succeeded, &failed, &last, &ordered); err != nil {
			return err
		}
		r.Elements += elements
		if held {
			c.listed(&r.MapViolations, &n, "map: map step %s of run %d (%s) holds a job, a worker or a lease", step, run, status)
		}
		if elements != tasks || last != tasks-1 {
			c.listed(&r.MapViolations, &n, "map: map step %s of run %d has %d element rows, the last indexed %d, for %d tasks", step, run, elements, last, tasks)
		}
		if remaining != tasks-succeeded {
			c.listed(&r.MapViolations, &n, "map: map step %s of run %d counts %d tasks remaining, but %d of %d elements succeeded", step, run, remaining, succeeded, tasks)
		}
		switch {
		case status == "succeeded" && succeeded != tasks:
			c.listed(&r.MapViolations, &n, "map: map step %s of run %d succeeded with %d of %d elements succeeded", step, run, succeeded, tasks)
		case !ordered:
			c.listed(&r.MapViolations, &n, "map: map step %s of run %d succeeded with an output other than its elements' in order", step, run)
		case status == "failed" && failed == 0:
			c.listed(&r.MapViolations, &n, "map: map step %s of run %d failed with no element failed", step, run)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking map steps: %w", err)
	}
	err = c.rows(ctx, `
		SELECT e.run_id, e.step, coalesce(m.status, 'missing') FROM qflow.step_runs e
		  LEFT JOIN qflow.step_runs m ON m.run_id = e.run_id AND m.step = e.def_step
		 WHERE e.task IS NOT NULL AND m.tasks IS NULL
		 ORDER BY 1, 2`, nil, func(row pgx.Rows) error {
		var run int64
		var step, parent string
		if err := row.Scan(&run, &step, &parent); err != nil {
			return err
		}
		c.listed(&r.MapViolations, &n, "map: element %s of run %d belongs to no expanded map step (its step is %s)", step, run, parent)
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking map elements: %w", err)
	}
	return nil
}
