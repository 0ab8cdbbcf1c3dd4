package schema_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// requireSQLState checks that err is a Postgres error with the code and a message containing msg.
func requireSQLState(t *testing.T, err error, code, msg string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want SQLSTATE %s, got %v", code, err)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
	require.Contains(t, pgErr.Message, msg)
}

func TestStepGuardsRefuseImpossibleMoves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	run := b.start(t, "chain", "{}")
	b.runStep(t, run, "a")

	// b is queued, c waiting: neither may skip ahead.
	err := b.execErr(`UPDATE qflow.step_runs SET status = 'succeeded', output = '{}', finished_at = now(), attempt = 1
	                   WHERE run_id = $1 AND step = 'c'`, run)
	requireSQLState(t, err, "23514", "step c of run")
	require.ErrorContains(t, err, "cannot go from waiting to succeeded")
	err = b.execErr(`UPDATE qflow.step_runs SET status = 'running', started_at = now(), lease_expires_at = now()
	                   WHERE run_id = $1 AND step = 'c'`, run)
	require.ErrorContains(t, err, "cannot go from waiting to running")
	// A finished step is final.
	err = b.execErr(`UPDATE qflow.step_runs SET status = 'ready', finished_at = NULL WHERE run_id = $1 AND step = 'a'`, run)
	require.ErrorContains(t, err, "cannot go from succeeded to ready")
	// Not a status at all (the CHECK constraint would refuse it too).
	err = b.execErr(`UPDATE qflow.step_runs SET status = 'done' WHERE run_id = $1 AND step = 'c'`, run)
	requireSQLState(t, err, "23514", "cannot go from waiting to done")
	// Step rows start waiting or ready.
	err = b.execErr(`INSERT INTO qflow.step_runs (run_id, step, workflow, version, status, remaining_deps, priority, attempt, job_id,
	                                              started_at, lease_expires_at)
	                 VALUES ($1, 'x', 'chain', 1, 'running', 0, 2, 1, 1, now(), now())`, run)
	require.ErrorContains(t, err, "cannot start as running")
	// A finished attempt is history.
	err = b.execErr(`UPDATE qflow.step_attempts SET status = 'failed' WHERE run_id = $1 AND step = 'a'`, run)
	require.ErrorContains(t, err, "attempt 1 of step a of run")
	require.ErrorContains(t, err, "is succeeded and cannot become failed")

	require.Equal(t, "succeeded", b.stepStatus(t, run, "a"))
	require.Equal(t, "queued", b.stepStatus(t, run, "b"))
	require.Equal(t, "waiting", b.stepStatus(t, run, "c"))
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = $1 AND status IN ('waiting', 'queued')", run))
}

func TestRunGuardsRefuseImpossibleMovesButRetryRunWorks(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)
	run := b.start(t, "chain", "{}")
	require.True(t, b.scalar(t, "SELECT qflow.cancel_run($1)", run).(bool))

	// Reviving a finished run by hand would leave it running with nothing to run.
	err := b.execErr(`UPDATE qflow.runs SET status = 'running', finished_at = NULL, error = NULL WHERE id = $1`, run)
	requireSQLState(t, err, "23514", "cannot go from cancelled to running")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, fmt.Sprintf("SELECT qflow.retry_run(%d) runs it again", run), pgErr.Hint)
	err = b.execErr(`UPDATE qflow.step_runs SET status = 'waiting', finished_at = NULL WHERE run_id = $1 AND step = 'a'`, run)
	require.ErrorContains(t, err, "cannot go from cancelled to waiting")
	err = b.execErr(`UPDATE qflow.runs SET status = 'failed' WHERE id = $1`, run)
	require.ErrorContains(t, err, "cannot go from cancelled to failed")
	err = b.execErr(`UPDATE qflow.runs SET mode = 'legacy' WHERE id = $1`, run)
	require.ErrorContains(t, err, "cannot change mode from workflow to legacy")
	require.Equal(t, "cancelled", b.runStatus(t, run))

	// retry_run is the way back, and the guards let it through.
	require.True(t, b.scalar(t, "SELECT qflow.retry_run($1)", run).(bool))
	require.Equal(t, "running", b.runStatus(t, run))
	require.Equal(t, "queued", b.stepStatus(t, run, "a"))
	// Its permission ended with it: the same UPDATE in a later statement is refused again.
	for _, s := range []string{"a", "b", "c"} {
		b.runStep(t, run, s)
	}
	require.Equal(t, "succeeded", b.runStatus(t, run))
	err = b.execErr(`UPDATE qflow.runs SET status = 'running', finished_at = NULL WHERE id = $1`, run)
	require.ErrorContains(t, err, "cannot go from succeeded to running")
	err = b.execErr(`UPDATE qflow.runs SET status = 'cancelled' WHERE id = $1`, run)
	require.ErrorContains(t, err, "cannot go from succeeded to cancelled")
	// A running run needs a start time: a CHECK, not only the procedures' habit.
	other := b.start(t, "chain", "{}")
	err = b.execErr(`UPDATE qflow.runs SET started_at = NULL WHERE id = $1`, other)
	require.ErrorContains(t, err, "runs_running_has_started")
}

func TestRunInputAboveTheLimitIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.chain(t, nil)

	big := `{"blob": "` + strings.Repeat("x", 1<<20) + `"}`
	err := b.execErr(`INSERT INTO qflow.runs (workflow, input) VALUES ('chain', $1)`, big)
	requireSQLState(t, err, "54000", "qflow: run input is 1048588 bytes, above the limit of 1048576 bytes")
	err = b.execErr(`SELECT qflow.start_run('chain', $1)`, big)
	requireSQLState(t, err, "54000", "above the limit")

	// The limit is a setting.
	b.exec(t, `UPDATE qflow.settings SET value = 64 WHERE key = 'max_input_bytes'`)
	err = b.execErr(`INSERT INTO qflow.runs (workflow, input) VALUES ('chain', $1)`, `{"note": "`+strings.Repeat("y", 60)+`"}`)
	requireSQLState(t, err, "54000", "above the limit of 64 bytes")
	b.start(t, "chain", `{"note": "small"}`)
	err = b.execErr(`UPDATE qflow.settings SET value = 0 WHERE key = 'max_input_bytes'`)
	requireSQLState(t, err, "23514", "settings_check")
	err = b.execErr(`INSERT INTO qflow.settings (key, value) VALUES ('max_runs', 5)`)
	requireSQLState(t, err, "23514", "settings_key_check")

	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM qflow.runs"))
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM river.river_job"))
}
