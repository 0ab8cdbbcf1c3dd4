package dbserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Private servers for tests and benchmarks that need more than a database: a cluster of their
// own (to restart it, or to stream a replica from it) or a PgBouncer in front of one. The
// scripts of .ci/ run them, on a free port and in a directory of the caller's, so what a test
// starts is what a developer starts by hand.

// Cluster is a private Postgres cluster run by .ci/postgres.sh on its own port and data
// directory: restarting or replicating it disturbs nobody.
type Cluster struct {
	// URL is the cluster's maintenance database; Port and Data where it listens and lives.
	URL, Port, Data string
	script          string
}

// StartCluster starts a new cluster in dir (under /var/tmp when run as root: the server runs
// as the postgres user, which cannot enter a private temporary directory).
func StartCluster(ctx context.Context, dir string) (*Cluster, error) {
	return startCluster(ctx, dir, "cluster", "start")
}

// StartStandby starts a streaming replica of c in dir (pg_basebackup, hot standby): a read
// replica as Postgres makes one.
func (c *Cluster) StartStandby(ctx context.Context, dir string) (*Cluster, error) {
	return startCluster(ctx, dir, "standby", "standby", c.URL)
}

func startCluster(ctx context.Context, dir, kind string, args ...string) (*Cluster, error) {
	script, port, err := scriptAndPort("postgres.sh")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Port: port, Data: dir + "/pgdata", script: script}
	if os.Geteuid() == 0 {
		c.Data = "/var/tmp/qflow-" + kind + "-" + port
	}
	out, err := c.Run(ctx, args...)
	if err != nil {
		c.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	c.URL = strings.TrimSpace(out)
	return c, nil
}

// Run runs .ci/postgres.sh with args on this cluster (restart, restart-immediate, ...) and
// returns what it printed.
func (c *Cluster) Run(ctx context.Context, args ...string) (string, error) {
	return runScript(ctx, c.script, []string{"QFLOW_PG_PORT=" + c.Port, "QFLOW_PG_DATA=" + c.Data}, args...)
}

// Stop stops the cluster and deletes its data.
func (c *Cluster) Stop(ctx context.Context) {
	_, _ = c.Run(ctx, "stop")
	_ = os.RemoveAll(c.Data)
}

// PgBouncer is a private PgBouncer in transaction pooling mode in front of a server, run by
// .ci/pgbouncer.sh; every database of the server is reachable through it.
type PgBouncer struct {
	// URL is the server's URL with PgBouncer's host and port: DatabaseOn(p.URL, url) reaches
	// the database of url through it.
	URL                 string
	server, script, dir string
	env                 []string
}

// StartPgBouncer starts a PgBouncer in front of server (a URL without a password) whose
// configuration, log and pid file live in dir (under /var/tmp when run as root: PgBouncer
// refuses to run as root and runs as the postgres user).
func StartPgBouncer(ctx context.Context, server, dir string) (*PgBouncer, error) {
	script, port, err := scriptAndPort("pgbouncer.sh")
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		dir = "/var/tmp/qflow-pgbouncer-" + port
	}
	p := &PgBouncer{server: server, script: script, dir: dir, env: []string{"QFLOW_PGB_PORT=" + port, "QFLOW_PGB_DIR=" + dir}}
	out, err := runScript(ctx, script, p.env, "start", server)
	if err != nil {
		p.Stop(context.WithoutCancel(ctx))
		return nil, err
	}
	p.URL = strings.TrimSpace(out)
	return p, nil
}

// Restart kills PgBouncer (SIGKILL, like a crash: every client and server connection through
// it is cut mid-flight) and starts it again on the same port.
func (p *PgBouncer) Restart(ctx context.Context) error {
	_, err := runScript(ctx, p.script, p.env, "restart", p.server)
	return err
}

// Stop stops PgBouncer and deletes its directory.
func (p *PgBouncer) Stop(ctx context.Context) {
	_, _ = runScript(ctx, p.script, p.env, "stop")
	_ = os.RemoveAll(p.dir)
}

func runScript(ctx context.Context, script string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", script, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// scriptAndPort returns the path of .ci/<name> and a TCP port of 127.0.0.1 that nothing
// listens on now, for what the script starts.
func scriptAndPort(name string) (script, port string, err error) {
	if script, err = Script(name); err != nil {
		return "", "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return script, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}
