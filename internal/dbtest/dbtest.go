// Package dbtest gives each test its own real Postgres database, cloned from a migrated
// template, so tests run in parallel without seeing each other's runs, limits or sweeps.
//
// The server is QFLOW_TEST_DATABASE_URL, else DATABASE_URL, else the checkout's throwaway
// cluster, which it starts with .ci/postgres.sh (the same one `make test` uses).
package dbtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantumflow/qflow/internal/dbserver"
	"github.com/quantumflow/qflow/migrations"
	"github.com/quantumflow/qflow/sql/schema"
)

var (
	baseOnce sync.Once
	baseURL  string
	baseErr  error
	counter  atomic.Int64
)

// ServerURL returns the URL of the server tests use (its maintenance database).
func ServerURL(t testing.TB) string {
	t.Helper()
	baseOnce.Do(func() {
		for _, k := range []string{"QFLOW_TEST_DATABASE_URL", "DATABASE_URL"} {
			if v := os.Getenv(k); v != "" {
				baseURL = v
				return
			}
		}
		baseURL, baseErr = dbserver.Local()
	})
	if baseErr != nil {
		t.Fatalf("no Postgres for tests: %v (set QFLOW_TEST_DATABASE_URL or run `make test`)", baseErr)
	}
	return baseURL
}

// URL creates a fresh, migrated database for the test, dropped when it ends, and returns its URL.
func URL(t testing.TB) string {
	t.Helper()
	return URLOn(t, ServerURL(t))
}

// URLOn is URL on another server, e.g. a Cluster of the test's own.
func URLOn(t testing.TB, server string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmpl, err := template(ctx, server)
	if err != nil {
		t.Fatalf("preparing template database: %v", err)
	}
	name := fmt.Sprintf("qflow_test_%d_%d", os.Getpid(), counter.Add(1))
	url, err := dbserver.Create(ctx, server, name, tmpl)
	if err != nil {
		t.Fatalf("creating test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dbserver.Drop(ctx, server, name); err != nil {
			t.Logf("dropping test database: %v", err)
		}
	})
	return url
}

// Pool is URL plus a connection pool on it, closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return PoolFor(t, URL(t), 20)
}

// PoolFor opens a pool on url, closed when the test ends.
func PoolFor(t testing.TB, url string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	pool, err := dbserver.Open(context.Background(), url, maxConns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

var (
	tmplMu    sync.Mutex
	tmplNames = map[string]string{}
)

// template returns the name of a database migrated to this checkout's migrations, creating it
// once per server (an advisory lock makes parallel test binaries take turns).
func template(ctx context.Context, server string) (string, error) {
	tmplMu.Lock()
	defer tmplMu.Unlock()
	if n, ok := tmplNames[server]; ok {
		return n, nil
	}
	name, err := migrationsName()
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(7243001)"); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock(7243001)") //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		building := name + "_building"
		url, err := dbserver.Create(ctx, server, building, "")
		if err != nil {
			return "", err
		}
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			return "", err
		}
		if err := pool.Ping(ctx); err != nil {
			pool.Close()
			return "", err
		}
		err = migrations.Migrate(ctx, pool)
		pool.Close()
		if err != nil {
			return "", fmt.Errorf("migrating template: %w", err)
		}
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
			return "", err
		}
	}
	tmplNames[server] = name
	return name, nil
}

// migrationsName hashes what Migrate applies (the migrations and sql/schema), so a changed
// file gets a new template.
func migrationsName() (string, error) {
	h := sha256.New()
	for _, files := range []fs.FS{migrations.Files, schema.Files} {
		err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(files, path)
			if err != nil {
				return err
			}
			h.Write([]byte(path))
			h.Write(b)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return "qflow_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12], nil
}
