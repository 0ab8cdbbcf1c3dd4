package worker

import (
	"errors"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// transient reports whether err is worth retrying: the connection failed or Postgres is
// restarting, shutting down, out of connections, or chose this transaction as a deadlock or
// serialization victim.
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
	return pgconn.SafeToRetry(err) || errors.Is(err, net.ErrClosed) || isConnectError(err)
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
