package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// transient reports whether err is worth retrying: the connection failed or dropped, or
// Postgres is restarting, shutting down, out of connections, or chose this transaction as a
// deadlock or serialization victim.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "53", "57": // connection exception, insufficient resources, operator intervention
			return true
		}
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return pgconn.SafeToRetry(err) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		isConnectError(err)
}

// startPatience is how long a starting worker waits out a database that drops or refuses its
// connections (a restart takes seconds); a database still away after that is an error.
const startPatience = 30 * time.Second

// WaitOut calls f until it succeeds, fails with an error that is not transient, or transient
// errors have lasted startPatience (or ctx ends), logging each retry. Start-up uses it, so
// that a worker coming up while Postgres restarts starts a moment later instead of exiting.
func WaitOut(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	deadline := time.Now().Add(startPatience)
	delay := 100 * time.Millisecond
	for {
		err := f(ctx)
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		log.Warn("database unavailable; retrying", "while", what, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
