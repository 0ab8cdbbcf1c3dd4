package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPgBouncerWithoutADirectURLIsRefusedWithTheReason(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.env = map[string]string{"QFLOW_PGBOUNCER": "on"}
	for _, args := range [][]string{{"worker", "--metrics-addr", ""}, {"migrate"}} {
		code, _, stderr := b.qflow(args...)
		require.Equal(t, 1, code, args)
		require.Contains(t, stderr, "needs a session of its own, which PgBouncer's transaction pooling does not keep: give Postgres's own URL with --direct-url or QFLOW_DIRECT_URL", args)
	}
	// Given one, migrate runs there.
	b.env["QFLOW_DIRECT_URL"] = b.URL
	code, out, stderr := b.qflow("migrate", "--roles=false")
	require.Zero(t, code, stderr)
	require.Contains(t, out, "migrated")
}
