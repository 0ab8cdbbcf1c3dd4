package dbtest

import (
	"context"
	"testing"
	"time"

	"github.com/quantumflow/qflow/internal/dbserver"
)

// Servers of a test's own, stopped when it ends: a PgBouncer, a Postgres cluster, a streaming
// replica of it. Each is what .ci/ starts for a developer, on a free port.

// PgBouncer starts a PgBouncer in transaction pooling mode in front of the tests' server:
// dbserver.DatabaseOn(p.URL, URL(t)) reaches a test's database through it.
func PgBouncer(t testing.TB) *dbserver.PgBouncer {
	t.Helper()
	server := ServerURL(t)
	return started(t, "PgBouncer", func(ctx context.Context) (*dbserver.PgBouncer, error) {
		return dbserver.StartPgBouncer(ctx, server, t.TempDir())
	})
}

// Cluster starts a Postgres cluster of the test's own; URLOn(t, c.URL) makes a database there.
func Cluster(t testing.TB) *dbserver.Cluster {
	t.Helper()
	return started(t, "a Postgres cluster", func(ctx context.Context) (*dbserver.Cluster, error) {
		return dbserver.StartCluster(ctx, t.TempDir())
	})
}

// Standby starts a streaming replica of primary (pg_basebackup, hot standby). It has every
// database of the primary, under the same names, as of its last replayed transaction.
func Standby(t testing.TB, primary *dbserver.Cluster) *dbserver.Cluster {
	t.Helper()
	return started(t, "a standby", func(ctx context.Context) (*dbserver.Cluster, error) {
		return primary.StartStandby(ctx, t.TempDir())
	})
}

// started starts a server with start, failing the test if it cannot, and stops it when the
// test ends.
func started[S interface{ Stop(context.Context) }](t testing.TB, what string, start func(context.Context) (S, error)) S {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := start(ctx)
	if err != nil {
		t.Fatalf("starting %s: %v", what, err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}
