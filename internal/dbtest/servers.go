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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := dbserver.StartPgBouncer(ctx, ServerURL(t), t.TempDir())
	if err != nil {
		t.Fatalf("starting PgBouncer: %v", err)
	}
	t.Cleanup(func() { p.Stop(context.Background()) })
	return p
}

// Cluster starts a Postgres cluster of the test's own; URLOn(t, c.URL) makes a database there.
func Cluster(t testing.TB) *dbserver.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := dbserver.StartCluster(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("starting a Postgres cluster: %v", err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

// Standby starts a streaming replica of primary (pg_basebackup, hot standby). It has every
// database of the primary, under the same names, as of its last replayed transaction.
func Standby(t testing.TB, primary *dbserver.Cluster) *dbserver.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := primary.StartStandby(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("starting a standby: %v", err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}
