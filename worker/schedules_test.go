package worker_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/worker"
)

func TestASchedulesFiresStartOneRunEachAcrossTwoWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "w1"})
	b.StartWorker(t, worker.Config{ID: "w2"})
	b.Exec(t, `INSERT INTO qflow.schedules (name, workflow, cron, input) VALUES ('every_second', 'probe_chain', '@every 1s', '{"seed": 2}')`)

	require.Eventually(t, func() bool {
		return b.Count(t, "SELECT count(*) FROM qflow.runs WHERE schedule = 'every_second' AND status = 'succeeded'") >= 4
	}, time.Minute, 50*time.Millisecond)
	b.Exec(t, "UPDATE qflow.schedules SET enabled = false")

	// One run per fire: the fires' keys are distinct and a second apart.
	rows, err := b.Pool.Query(b.Ctx, `SELECT idempotency_key, extract(epoch FROM created_at)::float8 FROM qflow.runs WHERE schedule = 'every_second' ORDER BY id`)
	require.NoError(t, err)
	keys := map[string]bool{}
	var created []float64
	for rows.Next() {
		var k string
		var at float64
		require.NoError(t, rows.Scan(&k, &at))
		require.False(t, keys[k], "fire %s ran twice", k)
		keys[k] = true
		created = append(created, at)
	}
	require.NoError(t, rows.Err())
	require.GreaterOrEqual(t, len(keys), 4)
	// @every 1s falls due on whole seconds (the cron library rounds it down), so a run's
	// created_at past its second is how late its fire was taken.
	var lateMS []float64
	for _, at := range created {
		lateMS = append(lateMS, (at-float64(int64(at)))*1000)
	}
	sort.Float64s(lateMS)
	t.Logf("fires taken after their due time (ms, sorted): %.0f", lateMS)
}

func TestMissedFiresRunOnceOrAreSkipped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Daily at the minute half an hour ago; both schedules were created three days ago and no
	// worker ran since: three fires fell due, the latest 30 minutes ago.
	at := time.Now().UTC().Add(-30 * time.Minute)
	cron := fmt.Sprintf("%d %d * * *", at.Minute(), at.Hour())
	b.Exec(t, `INSERT INTO qflow.schedules (name, workflow, cron, missed) VALUES
	             ('catch_up', 'probe_chain', $1, 'run_once'), ('on_time_only', 'probe_chain', $1, 'skip')`, cron)
	b.Exec(t, "UPDATE qflow.schedules SET created_at = now() - interval '3 days'")
	b.StartWorker(t, worker.Config{ID: "w1"})

	require.Eventually(t, func() bool {
		return b.Count(t, "SELECT count(*) FROM qflow.schedules WHERE last_fire_at > now() - interval '1 hour'") == 2
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 1, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE schedule = 'catch_up'"), "one run for the missed fires")
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.runs WHERE schedule = 'on_time_only'"), "missed fires skipped")
}

func TestAScheduleTheCronLibraryRefusesIsMarkedAndDoesNotFire(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// The insert check reads the shape; the library is stricter (31 February never comes, but
	// a step of 0 is refused).
	b.Exec(t, `INSERT INTO qflow.schedules (name, workflow, cron) VALUES ('broken', 'probe_chain', '*/0 * * * *')`)
	b.StartWorker(t, worker.Config{ID: "w1"})
	require.Eventually(t, func() bool {
		return b.Count(t, "SELECT count(*) FROM qflow.schedules WHERE name = 'broken' AND error IS NOT NULL") == 1
	}, 30*time.Second, 20*time.Millisecond)
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.runs"))
	require.Error(t, worker.CheckSchedule("*/0 * * * *", "UTC"))
	require.NoError(t, worker.CheckSchedule("30 2 * * 1-5", "Europe/Berlin"))
}
