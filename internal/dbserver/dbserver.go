// Package dbserver makes and drops databases on a Postgres server and opens pools on them. The
// tests (through dbtest, which wraps it for testing.TB) and the benchmarks share it, so both
// find the throwaway cluster, name a database's URL and recreate a database the same way.
package dbserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Local starts (or reuses) the checkout's throwaway cluster with .ci/postgres.sh and returns
// its URL.
func Local() (string, error) {
	script, err := Script("postgres.sh")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(script, "start").Output()
	if err != nil {
		return "", fmt.Errorf("starting the local cluster: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Script returns the path of .ci/<name> of the checkout. It is looked for from the working
// directory upwards, because `go test` runs in the package's directory and `go run` at the
// repository root.
func Script(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		path := filepath.Join(dir, ".ci", name)
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf(".ci/%s not found above the working directory", name)
		}
		dir = parent
	}
}

// URL returns the URL of database name on the server whose URL is server, with the server's
// user and password.
func URL(server, name string) (string, error) {
	cfg, err := pgx.ParseConfig(server)
	if err != nil {
		return "", fmt.Errorf("parsing server URL: %w", err)
	}
	url := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	if cfg.Password != "" {
		url += "&password=" + cfg.Password
	}
	return url, nil
}

// DatabaseOn returns the URL of the database of url on another server: the same database
// through a PgBouncer in front of its server, or on a replica of its server.
func DatabaseOn(server, url string) (string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", fmt.Errorf("parsing database URL: %w", err)
	}
	return URL(server, cfg.Database)
}

// Create creates database name on server, a copy of database template unless template is
// empty, and returns its URL. A database left under that name (by a run that did not get to
// drop it) is dropped first, so the new one always starts from the template.
func Create(ctx context.Context, server, name, template string) (string, error) {
	url, err := URL(server, name)
	if err != nil {
		return "", err
	}
	create := "CREATE DATABASE " + name
	if template != "" {
		create += " TEMPLATE " + template
	}
	if err := run(ctx, server, dropSQL(name), create); err != nil {
		return "", err
	}
	return url, nil
}

// Drop drops database name on server, if it exists, disconnecting whoever is still on it.
func Drop(ctx context.Context, server, name string) error {
	return run(ctx, server, dropSQL(name))
}

// dropSQL drops database name WITH (FORCE), so connections a crashed run left open on it
// cannot keep it alive.
func dropSQL(name string) string { return "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)" }

// run runs statements in order on one connection to server. CREATE and DROP DATABASE cannot
// run in a transaction, so each is its own statement.
func run(ctx context.Context, server string, statements ...string) error {
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		return fmt.Errorf("connecting to the server: %w", err)
	}
	defer conn.Close(ctx)
	for _, sql := range statements {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// Open opens a pool of at most maxConns connections on url.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	return open(ctx, url, maxConns, false)
}

// OpenPooled is Open for a url through a pooler in transaction pooling mode (PgBouncer).
func OpenPooled(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	return open(ctx, url, maxConns, true)
}

// ForTransactionPooling makes cfg fit a pooler in transaction pooling mode, which hands each
// transaction whichever server connection is free: named prepared statements live in one
// server session, so statements go without them, in pgx's cache_describe mode (each one
// parsed where it runs, its description cached by the client: one round trip once
// described). A mode the URL chose (default_query_exec_mode) is kept.
func ForTransactionPooling(cfg *pgx.ConnConfig) {
	if cfg.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
}

func open(ctx context.Context, url string, maxConns int32, pooled bool) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing database URL: %w", err)
	}
	if pooled {
		ForTransactionPooling(cfg.ConnConfig)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening pool: %w", err)
	}
	return pool, nil
}
