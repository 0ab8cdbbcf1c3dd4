package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/migrations"
)

// SchemaError says that the database was migrated by another release than this binary: the
// procedures a worker calls would be missing or different, so it refuses to start.
type SchemaError struct {
	// Have is the database's schema version (0: never migrated), Want this binary's.
	Have, Want int
}

func (e *SchemaError) Error() string {
	switch {
	case e.Have == 0:
		return fmt.Sprintf("database has no QuantumFlow schema but this binary needs version %d: run `qflow migrate` with this binary", e.Want)
	case e.Have < e.Want:
		return fmt.Sprintf("database schema is at version %d but this binary needs %d: run `qflow migrate` with this binary", e.Have, e.Want)
	default:
		return fmt.Sprintf("database schema is at version %d, newer than this binary's %d: upgrade this binary (run the release that migrated the database)", e.Have, e.Want)
	}
}

// CheckSchema compares the schema version of the database with the one this binary was built
// for (the number of its embedded migrations) and returns a *SchemaError unless they are equal.
func CheckSchema(ctx context.Context, db gen.DBTX) error {
	want, err := migrations.Latest()
	if err != nil {
		return err
	}
	have, err := gen.New(db).SchemaVersion(ctx)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") { // undefined table, undefined schema
		return &SchemaError{Have: 0, Want: want}
	}
	if err != nil {
		return fmt.Errorf("reading the database's schema version: %w", err)
	}
	if int(have) != want {
		return &SchemaError{Have: int(have), Want: want}
	}
	return nil
}
