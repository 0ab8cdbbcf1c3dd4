// Package migrations holds QuantumFlow's schema as tern migrations, embedded into the binary,
// and runs them together with River's own migrations.
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/quantumflow/qflow/gen"
)

// Files holds the migrations, embedded.
//
//go:embed *.sql
var Files embed.FS

// RiverSchema is the schema River's tables live in.
const RiverSchema = "river"

// VersionTable is where tern records which of our migrations ran.
const VersionTable = "qflow.schema_version"

// Migrate brings River's schema and ours up to date. It is idempotent and safe to run from
// several processes at once: both migrators serialise on advisory locks.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	riverMigrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: RiverSchema})
	if err != nil {
		return fmt.Errorf("creating River migrator: %w", err)
	}
	if err := gen.New(pool).EnsureRiverSchema(ctx); err != nil {
		return fmt.Errorf("creating schema %s: %w", RiverSchema, err)
	}
	if _, err := riverMigrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("running River migrations: %w", err)
	}

	if err := gen.New(pool).EnsureSchema(ctx); err != nil {
		return fmt.Errorf("creating schema qflow: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquiring a connection for migrations: %w", err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), VersionTable)
	if err != nil {
		return fmt.Errorf("creating tern migrator: %w", err)
	}
	if err := m.LoadMigrations(Files); err != nil {
		return fmt.Errorf("loading migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("running qflow migrations: %w", err)
	}
	// CREATE OR REPLACE FUNCTION forgets SECURITY DEFINER and the fixed search_path, and a
	// new function is callable by PUBLIC: qflow.procedure_access is applied after every run.
	if err := gen.New(pool).SecureProcedures(ctx); err != nil {
		return fmt.Errorf("securing qflow procedures: %w", err)
	}
	return nil
}

// Latest is the number of the newest embedded migration: the schema version this binary expects.
func Latest() (int, error) {
	names, err := migrate.FindMigrations(Files)
	if err != nil {
		return 0, fmt.Errorf("listing migrations: %w", err)
	}
	return len(names), nil
}
