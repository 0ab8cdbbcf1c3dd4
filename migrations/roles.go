package migrations

import (
	"context"
	"fmt"
	"regexp"

	"github.com/quantumflow/qflow/gen"
)

// DefaultRolePrefix starts the names of the roles `qflow migrate` creates: qflow_admin,
// qflow_worker, qflow_trigger, qflow_reader.
const DefaultRolePrefix = "qflow"

// Roles names the four group roles of a QuantumFlow database (see sql/schema/0910_ensure_roles.sql
// for what each may do). They are NOLOGIN roles: an operator grants them to login users.
type Roles struct {
	// Admin owns the schemas: migrations, definitions, everything.
	Admin string
	// Worker is what `qflow worker` needs and no more.
	Worker string
	// Trigger inserts runs and calls start_run, cancel_run and retry_run.
	Trigger string
	// Reader reads views, tables and the status functions of schema qflow.
	Reader string
}

var rolePrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,54}$`)

// RolesWithPrefix returns <prefix>_admin, <prefix>_worker, <prefix>_trigger and <prefix>_reader.
func RolesWithPrefix(prefix string) (Roles, error) {
	if !rolePrefix.MatchString(prefix) || len(prefix) >= 3 && prefix[:3] == "pg_" {
		return Roles{}, fmt.Errorf("role prefix %q is invalid: use 1-55 lower-case letters, digits and _, not starting with pg_", prefix)
	}
	return Roles{Admin: prefix + "_admin", Worker: prefix + "_worker", Trigger: prefix + "_trigger", Reader: prefix + "_reader"}, nil
}

// EnsureRoles creates the roles where missing, makes Admin the owner of the schemas qflow,
// ml and river and of everything in them, and grants each role what it needs in the
// database db is connected to. It is idempotent. The caller must be a superuser, or own the
// schemas and have CREATEROLE (or find the roles already there).
func EnsureRoles(ctx context.Context, db gen.DBTX, r Roles) error {
	err := gen.New(db).EnsureRoles(ctx, gen.EnsureRolesParams{AdminRole: r.Admin, WorkerRole: r.Worker, TriggerRole: r.Trigger, ReaderRole: r.Reader})
	if err != nil {
		return fmt.Errorf("creating and granting roles %s, %s, %s, %s: %w", r.Admin, r.Worker, r.Trigger, r.Reader, err)
	}
	return nil
}
