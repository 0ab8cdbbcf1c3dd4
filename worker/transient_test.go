package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/worker"
)

func TestStartUpWaitsOutADroppedConnectionButNotABadRequest(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// The server went away mid-start (a restart): tried again until it answers.
	calls := 0
	err := worker.WaitOut(context.Background(), log, "starting", func(context.Context) error {
		calls++
		if calls < 3 {
			return fmt.Errorf("starting River client: %w", io.ErrUnexpectedEOF)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, calls)

	// Anything else is the caller's to see at once.
	calls = 0
	bad := errors.New("database schema is at version 12 but this binary needs 17")
	err = worker.WaitOut(context.Background(), log, "starting", func(context.Context) error {
		calls++
		return bad
	})
	require.ErrorIs(t, err, bad)
	require.Equal(t, 1, calls)
}
