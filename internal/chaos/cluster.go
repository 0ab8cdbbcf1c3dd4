package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// cluster is a private Postgres cluster run by .ci/postgres.sh on its own port and data
// directory: restarting it disturbs nobody.
type cluster struct {
	script, port, data, url string
}

func startCluster(ctx context.Context, root, dir string) (*cluster, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &cluster{script: filepath.Join(root, ".ci", "postgres.sh"), port: port, data: filepath.Join(dir, "pgdata")}
	if os.Geteuid() == 0 {
		// The server runs as the postgres user, which cannot enter a private temp directory.
		c.data = "/var/tmp/qflow-chaos-" + port
	}
	out, err := c.run(ctx, "start")
	if err != nil {
		return nil, err
	}
	c.url = strings.TrimSpace(out)
	return c, nil
}

func (c *cluster) run(ctx context.Context, verb string) (string, error) {
	cmd := exec.CommandContext(ctx, c.script, verb)
	cmd.Env = append(os.Environ(), "QFLOW_PG_PORT="+c.port, "QFLOW_PG_DATA="+c.data)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", c.script, verb, err, stderr.String())
	}
	return string(out), nil
}

// restart stops the server (fast: clients are disconnected and a checkpoint is written;
// immediate: like a crash, replayed from the WAL at start) and starts it again.
func (c *cluster) restart(ctx context.Context, immediate bool) error {
	verb := "restart"
	if immediate {
		verb = "restart-immediate"
	}
	_, err := c.run(ctx, verb)
	return err
}

func (c *cluster) stop(ctx context.Context) {
	_, _ = c.run(ctx, "stop")
	os.RemoveAll(c.data)
}

// createDatabase makes the chaos database (afresh) on the server and fills in the admin URL.
func (c *chaos) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.server)
	if err != nil {
		return fmt.Errorf("connecting to the chaos server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+c.dbName+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+c.dbName); err != nil {
		return err
	}
	c.logins.admin, err = withDatabase(c.server, c.dbName)
	return err
}

func (c *chaos) dropDatabase(ctx context.Context) {
	conn, err := pgx.Connect(ctx, c.server)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+c.dbName+" WITH (FORCE)")
	for _, name := range []string{c.logins.workerName, c.logins.triggerName} {
		if name != "" {
			_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+name)
		}
	}
}

// createLogins makes the users workers and loaders connect as, members of the roles
// `qflow migrate` created, so the whole run also proves those roles suffice.
func (c *chaos) createLogins(ctx context.Context) error {
	suffix := ""
	if c.cluster == nil {
		suffix = fmt.Sprintf("_%d", os.Getpid())
	}
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	c.logins.secret = hex.EncodeToString(secret)
	c.logins.workerName, c.logins.triggerName = "chaos_worker"+suffix, "chaos_trigger"+suffix
	conn, err := pgx.Connect(ctx, c.logins.admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for name, group := range map[string]string{c.logins.workerName: "qflow_worker", c.logins.triggerName: "qflow_trigger"} {
		_, err := conn.Exec(ctx, fmt.Sprintf(`DROP ROLE IF EXISTS %s; CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE %s`,
			name, name, c.logins.secret, group))
		if err != nil {
			return fmt.Errorf("creating login %s: %w", name, err)
		}
	}
	if c.logins.worker, err = withUser(c.logins.admin, c.logins.workerName, c.logins.secret); err != nil {
		return err
	}
	c.logins.trigger, err = withUser(c.logins.admin, c.logins.triggerName, c.logins.secret)
	return err
}

func withDatabase(server, db string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("chaos server URL is not a URL: %w", err)
	}
	u.Path = "/" + db
	return u.String(), nil
}

func withUser(dbURL, user, password string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	u.User = url.UserPassword(user, password)
	return u.String(), nil
}

func newPool(ctx context.Context, dbURL string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.RuntimeParams["application_name"] = "qflow-chaos"
	// Connections broken by a fault are noticed on use; a short lifetime replaces the rest.
	cfg.HealthCheckPeriod = time.Second
	return pgxpool.NewWithConfig(ctx, cfg)
}
