package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/internal/dbserver"
)

// Connections. Every command reaches Postgres through DATABASE_URL; three settings, each a flag
// whose default comes from the environment, change how:
//
//   - --pgbouncer (QFLOW_PGBOUNCER=on): DATABASE_URL (and the read URL) is PgBouncer in
//     transaction pooling mode, which hands each transaction whichever server connection is
//     free. Statements then go without named prepared statements (pgx's cache_describe mode:
//     each statement parsed where it runs, its description cached by the client, one round
//     trip), and River polls for jobs instead of listening. What needs a session of its own
//     goes to the direct URL: the worker's liveness lock and cancel LISTEN, the sweep's, the
//     scheduler's and the metrics reporter's locks, and `qflow migrate`.
//   - --direct-url (QFLOW_DIRECT_URL): Postgres itself, for those sessions.
//   - --read-url (QFLOW_READ_URL): a streaming replica that `ui`, `status`, `list` and the
//     metrics reporter read instead of the primary; what they show says how stale it is.

// dbSettings are a command's connection settings.
type dbSettings struct {
	pgbouncer    *bool
	direct, read *string // nil where the command takes no such flag
}

// dbFlags adds the connection flags to fs: --pgbouncer always, --direct-url and --read-url
// where the command uses them.
func dbFlags(fs *flag.FlagSet, env Env, direct, read bool) *dbSettings {
	d := &dbSettings{pgbouncer: fs.Bool("pgbouncer", pgbouncerEnv(env),
		"DATABASE_URL is PgBouncer in transaction pooling mode: no named prepared statements, River polls, sessions go to --direct-url (env QFLOW_PGBOUNCER=on)")}
	if direct {
		d.direct = fs.String("direct-url", env.Getenv("QFLOW_DIRECT_URL"),
			"Postgres itself, not a pooler, for what needs a session: liveness lock, LISTEN, sweep, scheduler and reporter locks, migrations (env QFLOW_DIRECT_URL)")
	}
	if read {
		d.read = fs.String("read-url", env.Getenv("QFLOW_READ_URL"),
			"a streaming replica to read from instead of the primary (env QFLOW_READ_URL)")
	}
	return d
}

// pgbouncerEnv is QFLOW_PGBOUNCER, the default of --pgbouncer.
func pgbouncerEnv(env Env) bool {
	return slices.Contains([]string{"on", "true", "1", "yes"}, strings.ToLower(env.Getenv("QFLOW_PGBOUNCER")))
}

// connect opens DATABASE_URL for a command without connection flags (schedule), as
// QFLOW_PGBOUNCER says.
func connect(ctx context.Context, env Env, maxConns int32) (*pgxpool.Pool, error) {
	return open(ctx, "DATABASE_URL", env.Getenv("DATABASE_URL"), maxConns, pgbouncerEnv(env))
}

// primary opens DATABASE_URL.
func (d *dbSettings) primary(ctx context.Context, env Env, maxConns int32) (*pgxpool.Pool, error) {
	return open(ctx, "DATABASE_URL", env.Getenv("DATABASE_URL"), maxConns, *d.pgbouncer)
}

// reader opens the read URL when there is one, else DATABASE_URL.
func (d *dbSettings) reader(ctx context.Context, env Env, maxConns int32) (*pgxpool.Pool, error) {
	if d.read == nil || *d.read == "" {
		return d.primary(ctx, env, maxConns)
	}
	return open(ctx, "the read URL", *d.read, maxConns, *d.pgbouncer)
}

// session opens the direct URL when there is one; else DATABASE_URL, unless that is PgBouncer:
// then what needs a session cannot have one, and the error says so.
func (d *dbSettings) session(ctx context.Context, env Env, maxConns int32, who string) (*pgxpool.Pool, error) {
	if d.direct != nil && *d.direct != "" {
		return open(ctx, "the direct URL", *d.direct, maxConns, false)
	}
	if *d.pgbouncer {
		return nil, fmt.Errorf("%s needs a session of its own, which PgBouncer's transaction pooling does not keep: give Postgres's own URL with --direct-url or QFLOW_DIRECT_URL", who)
	}
	return d.primary(ctx, env, maxConns)
}

// open opens a pool on url, named name in errors, which never echo the URL: it may hold a
// password. pooled says url is PgBouncer in transaction pooling mode.
func open(ctx context.Context, name, url string, maxConns int32, pooled bool) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, fmt.Errorf("%s is not set (e.g. postgres://user@localhost:5432/db)", name)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid Postgres connection string", name)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if pooled {
		dbserver.ForTransactionPooling(cfg.ConnConfig)
	}
	// A host that does not answer (a black hole, no reset) fails a connect in seconds, so
	// start-up retries and logs instead of hanging; a connect_timeout in the URL wins.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", redact(&cfg.ConnConfig.Config), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to %s: %w", redact(&cfg.ConnConfig.Config), err)
	}
	return pool, nil
}

func redact(c *pgconn.Config) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// notOnReplica adds to a "does not exist" read from a replica that the replica may not have
// it yet, and how far behind it is.
func notOnReplica(ctx context.Context, q *gen.Queries, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "P0002" {
		return err
	}
	st, serr := q.Staleness(ctx)
	if serr != nil || !st.Replica {
		return err
	}
	return fmt.Errorf("%s (read from a replica %.1f s behind the primary, as of %s UTC: it may not have it yet)",
		describe(err), st.LagSeconds, st.AsOf.Time.UTC().Format("15:04:05"))
}
