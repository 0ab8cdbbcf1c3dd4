package cli

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/migrations"
)

func TestWorkerCommandRefusesAnOlderSchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	latest, err := migrations.Latest()
	require.NoError(t, err)
	_, err = b.Pool.Exec(b.Ctx, "UPDATE qflow.schema_version SET version = 12")
	require.NoError(t, err)

	code, _, stderr := b.qflow("worker", "--metrics-addr", "")
	require.Equal(t, 1, code)
	require.Equal(t, fmt.Sprintf("qflow worker: database schema is at version 12 but this binary needs %d: run `qflow migrate` with this binary\n", latest), stderr)
}

func TestMigrateRoleOptions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	code, out, stderr := b.qflow("migrate")
	require.Zero(t, code, stderr)
	require.Contains(t, out, "roles: qflow_admin (owner), qflow_worker, qflow_trigger, qflow_reader\n")

	code, out, stderr = b.qflow("migrate", "--roles=false")
	require.Zero(t, code, stderr)
	require.NotContains(t, out, "roles:")

	code, _, stderr = b.qflow("migrate", "--role-prefix", "pg_x")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `role prefix "pg_x" is invalid`)
}
