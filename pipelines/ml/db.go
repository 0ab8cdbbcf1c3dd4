package ml

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantumflow/qflow/gen"
)

// DB is what the ML steps need of Postgres: queries and transactions. A *pgxpool.Pool is one.
type DB interface {
	gen.DBTX
	Begin(ctx context.Context) (pgx.Tx, error)
}

// LazyPool returns a DB that opens a pool of at most maxConns connections on the URL in the
// environment variable named by variable when it is first used, and again after a failed
// attempt. Step handlers get no database handle from the engine, and a binary builds its
// workflows before it connects; this lets them share the worker's DATABASE_URL. Errors never
// echo the URL: it may hold a password.
func LazyPool(getenv func(string) string, variable string, maxConns int32) DB {
	return &lazyPool{getenv: getenv, variable: variable, maxConns: maxConns}
}

type lazyPool struct {
	getenv   func(string) string
	variable string
	maxConns int32

	mu   sync.Mutex
	pool *pgxpool.Pool
}

func (l *lazyPool) get(ctx context.Context) (*pgxpool.Pool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pool != nil {
		return l.pool, nil
	}
	url := l.getenv(l.variable)
	if url == "" {
		return nil, fmt.Errorf("ml pipelines: %s is not set, so their steps cannot reach Postgres", l.variable)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("ml pipelines: %s is not a valid Postgres connection string", l.variable)
	}
	if l.maxConns > 0 {
		cfg.MaxConns = l.maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), cfg)
	if err != nil {
		return nil, fmt.Errorf("ml pipelines: opening a pool on %s: %w", l.variable, err)
	}
	l.pool = pool
	return pool, nil
}

func (l *lazyPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	p, err := l.get(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return p.Exec(ctx, sql, args...)
}

func (l *lazyPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	p, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return p.Query(ctx, sql, args...)
}

func (l *lazyPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	p, err := l.get(ctx)
	if err != nil {
		return errRow{err}
	}
	return p.QueryRow(ctx, sql, args...)
}

func (l *lazyPool) Begin(ctx context.Context) (pgx.Tx, error) {
	p, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return p.Begin(ctx)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// IsNoRows reports whether err says a query found no row.
func IsNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
