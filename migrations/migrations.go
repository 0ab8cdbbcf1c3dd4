package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/sql/schema"
)

// Files holds the migrations, embedded.
//
//go:embed *.sql
var Files embed.FS

// RiverSchema is the schema River's tables live in.
const RiverSchema = "river"

// VersionTable is where tern records which of our migrations ran.
const VersionTable = "qflow.schema_version"

// Migrate brings River's schema and ours up to date (see the package doc). It is idempotent
// and safe to run from several processes at once: they take turns on an advisory lock.
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
	q := gen.New(conn)
	if err := q.LockMigrate(ctx); err != nil {
		return fmt.Errorf("waiting for other migrations: %w", err)
	}
	defer q.UnlockMigrate(context.WithoutCancel(ctx)) //nolint:errcheck // a failed unlock ends with the session

	if err := migrateState(ctx, conn.Conn()); err != nil {
		return err
	}
	return applyCode(ctx, conn.Conn())
}

// migrateState makes a fresh database's tables from sql/schema, or runs the migrations an
// existing database has not run.
func migrateState(ctx context.Context, conn *pgx.Conn) error {
	fresh, err := gen.New(conn).SchemaIsFresh(ctx)
	if err != nil {
		return fmt.Errorf("looking for the schema version: %w", err)
	}
	if !fresh {
		q := gen.New(conn)
		if err := q.ActAsSchemaOwner(ctx, false); err != nil {
			return fmt.Errorf("acting as the owner of schema qflow: %w", err)
		}
		defer q.ActAsSessionUser(context.WithoutCancel(ctx), false) //nolint:errcheck // the session ends with the connection otherwise
		m, err := migrate.NewMigrator(ctx, conn, VersionTable)
		if err != nil {
			return fmt.Errorf("creating tern migrator: %w", err)
		}
		if err := m.LoadMigrations(Files); err != nil {
			return fmt.Errorf("loading migrations: %w", err)
		}
		if err := m.Migrate(ctx); err != nil {
			return fmt.Errorf("running qflow migrations: %w", err)
		}
		return nil
	}
	latest, err := Latest()
	if err != nil {
		return err
	}
	state, err := schema.State()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, f := range state {
			if _, err := tx.Exec(ctx, f.SQL); err != nil {
				return fmt.Errorf("applying sql/schema/%s: %w", f.Name, err)
			}
		}
		if err := gen.New(tx).StampSchemaVersion(ctx, int32(latest)); err != nil {
			return fmt.Errorf("stamping schema version %d: %w", latest, err)
		}
		return nil
	})
}

// applyCode re-creates every code object from sql/schema when the code files differ from
// those applied last, in one transaction, keeping the grants on them that still apply.
func applyCode(ctx context.Context, conn *pgx.Conn) error {
	code, err := schema.Code()
	if err != nil {
		return err
	}
	applied, err := gen.New(conn).AppliedCode(ctx)
	if err != nil {
		return fmt.Errorf("reading the applied code: %w", err)
	}
	if sameCode(code, applied) {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		q := gen.New(tx)
		if err := q.ActAsSchemaOwner(ctx, true); err != nil {
			return fmt.Errorf("acting as the owner of schema qflow: %w", err)
		}
		grants, err := q.CodeGrants(ctx)
		if err != nil {
			return fmt.Errorf("reading grants on code: %w", err)
		}
		drops, err := q.CodeDrops(ctx)
		if err != nil {
			return fmt.Errorf("listing code to replace: %w", err)
		}
		for _, stmt := range drops {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		files, sums := make([]string, len(code)), make([]string, len(code))
		for i, f := range code {
			if _, err := tx.Exec(ctx, f.SQL); err != nil {
				return fmt.Errorf("applying sql/schema/%s: %w", f.Name, err)
			}
			files[i], sums[i] = f.Name, f.SHA256
		}
		if err := q.ActAsSessionUser(ctx, true); err != nil {
			return fmt.Errorf("acting as %s again: %w", conn.Config().User, err)
		}
		for _, g := range grants {
			keep, err := q.KeepCodeGrant(ctx, gen.KeepCodeGrantParams{Kind: g.Kind, Object: g.Object})
			if err != nil {
				return fmt.Errorf("looking up %s %s: %w", g.Kind, g.Object, err)
			}
			if !keep {
				continue
			}
			if _, err := tx.Exec(ctx, g.Stmt); err != nil {
				return fmt.Errorf("%s: %w", g.Stmt, err)
			}
		}
		// CREATE FUNCTION makes a routine callable by PUBLIC and not SECURITY DEFINER:
		// qflow.procedure_access decides both.
		if err := q.SecureProcedures(ctx); err != nil {
			return fmt.Errorf("securing qflow procedures: %w", err)
		}
		if err := q.RecordAppliedCode(ctx, gen.RecordAppliedCodeParams{Files: files, Sums: sums}); err != nil {
			return fmt.Errorf("recording the applied code: %w", err)
		}
		return nil
	})
}

func sameCode(code []schema.File, applied []gen.AppliedCodeRow) bool {
	if len(code) != len(applied) {
		return false
	}
	for i, f := range code {
		if applied[i].File != f.Name || applied[i].Sha256 != f.SHA256 {
			return false
		}
	}
	return true
}

// Latest is the number of the newest embedded migration: the schema version this binary expects.
func Latest() (int, error) {
	names, err := migrate.FindMigrations(Files)
	if err != nil {
		return 0, fmt.Errorf("listing migrations: %w", err)
	}
	return len(names), nil
}
