package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/quantumflow/qflow/internal/web"
)

// runUI serves the read-only web view until the context ends (SIGINT, SIGTERM). It binds to
// 127.0.0.1 unless told otherwise: the pages show run inputs and errors, and have no login.
func runUI(ctx context.Context, env Env, args []string) error {
	fs := newFlags("ui", env)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (host:port); another host than 127.0.0.1 exposes the pages to the network")
	db := dbFlags(fs, env, false, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (usage: qflow ui [--addr 127.0.0.1:8080])", fs.Arg(0))
	}
	pool, err := db.reader(ctx, env, 8)
	if err != nil {
		return err
	}
	defer pool.Close()
	log := logger(env)
	handler, err := web.New(web.Config{DB: pool, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (choose another with --addr)", *addr, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	fmt.Fprintf(env.Stdout, "qflow ui: serving http://%s/ (Ctrl-C stops)\n", ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving the web view: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stopping the web view: %w", err)
	}
	return nil
}
