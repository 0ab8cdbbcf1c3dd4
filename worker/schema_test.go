package worker_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/migrations"
	"github.com/quantumflow/qflow/worker"
)

func TestWorkerRefusesASchemaOfAnotherRelease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	latest, err := migrations.Latest()
	require.NoError(t, err)
	start := func() error {
		w, err := worker.New(worker.Config{Pool: b.Pool, Registry: b.Registry, ID: "schema-check", Logger: enginetest.DiscardLogger()})
		require.NoError(t, err)
		return w.Start(b.Ctx)
	}

	for _, tc := range []struct {
		version int
		want    string
	}{
		{latest - 3, fmt.Sprintf("database schema is at version %d but this binary needs %d: run `qflow migrate` with this binary", latest-3, latest)},
		{latest + 1, fmt.Sprintf("database schema is at version %d, newer than this binary's %d: upgrade this binary", latest+1, latest)},
	} {
		_, err := b.Pool.Exec(b.Ctx, "UPDATE qflow.schema_version SET version = $1", tc.version)
		require.NoError(t, err)
		err = start()
		require.ErrorContains(t, err, tc.want)
		var schemaErr *worker.SchemaError
		require.ErrorAs(t, err, &schemaErr)
		require.Equal(t, worker.SchemaError{Have: tc.version, Want: latest}, *schemaErr)
	}
	require.Zero(t, b.Count(t, "SELECT count(*) FROM qflow.workers"), "it refused before announcing itself")

	_, err = b.Pool.Exec(b.Ctx, "DROP TABLE qflow.schema_version")
	require.NoError(t, err)
	require.ErrorContains(t, start(), "database has no QuantumFlow schema but this binary needs version")
}
