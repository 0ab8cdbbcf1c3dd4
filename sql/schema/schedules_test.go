package schema_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSchedulesRefuseBadRowsWithAClearError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	for _, c := range []struct{ sql, err string }{
		{`INSERT INTO qflow.schedules (name, workflow, cron) VALUES ('s', 'nope', '0 3 * * *')`, `unknown workflow "nope"`},
		{`INSERT INTO qflow.schedules (name, workflow, cron) VALUES ('s', 'chain', '0 3 * *')`, `has 4 field(s), not 5`},
		{`INSERT INTO qflow.schedules (name, workflow, cron) VALUES ('s', 'chain', '0 25 * * *')`, `hour 25 is out of range`},
		{`INSERT INTO qflow.schedules (name, workflow, cron) VALUES ('s', 'chain', '0 3 * * x;y')`, `day of week field "x;y" is malformed`},
		{`INSERT INTO qflow.schedules (name, workflow, cron, time_zone) VALUES ('s', 'chain', '@daily', 'Mars/Olympus')`, `unknown time zone "Mars/Olympus"`},
		{`INSERT INTO qflow.schedules (name, workflow, cron, missed) VALUES ('s', 'chain', '@daily', 'twice')`, `schedules_missed_check`},
		{`INSERT INTO qflow.schedules (name, workflow, cron, input) VALUES ('s', 'chain', '@daily', '[1]')`, `schedules_input_check`},
	} {
		require.ErrorContains(t, b.execErr(c.sql), c.err, c.sql)
	}
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.schedules"))
	b.exec(t, `INSERT INTO qflow.schedules (name, workflow, cron, time_zone) VALUES ('nightly', 'chain', '30 2 * * 1-5', 'Europe/Berlin')`)
	b.exec(t, `INSERT INTO qflow.schedules (name, workflow, cron) VALUES ('often', 'chain', '@every 90s')`)
}

func TestEachFireOfAScheduleStartsExactlyOneRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	b.exec(t, `INSERT INTO qflow.schedules (name, workflow, cron, input) VALUES ('hourly', 'chain', '@hourly', '{"n": 3}')`)
	due := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)

	// Two workers take the same fire at once, and one of them again after a lost reply.
	var first, second, third int64
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT coalesce(qflow.fire_schedule('hourly', $1, true), 0)", due).Scan(&first))
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT coalesce(qflow.fire_schedule('hourly', $1, true), 0)", due).Scan(&second))
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT coalesce(qflow.fire_schedule('hourly', $1, true), 0)", due).Scan(&third))
	require.NotZero(t, first)
	require.Zero(t, second)
	require.Zero(t, third)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.runs WHERE schedule = 'hourly'"))

	// Even with its last fire forgotten, the fire's key refuses a second run of it.
	b.exec(t, "UPDATE qflow.schedules SET last_fire_at = NULL")
	b.exec(t, "SELECT qflow.fire_schedule('hourly', $1, true)", due)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.runs WHERE schedule = 'hourly'"))

	doc := b.statusDoc(t, first)
	require.Equal(t, "hourly", doc["schedule"], "status names the schedule")
	require.JSONEq(t, `{"n": 3}`, string(mustJSON(t, doc["input"])))

	// A missed fire skipped is recorded without a run.
	b.exec(t, "SELECT qflow.fire_schedule('hourly', $1, false)", due.Add(time.Hour))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.runs WHERE schedule = 'hourly'"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.schedules WHERE last_fire_at = $1", due.Add(time.Hour)))
}
