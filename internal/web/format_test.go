package web

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
)

func TestDurationsReadTheWayAPersonSaysThem(t *testing.T) {
	t.Parallel()
	for ms, want := range map[float64]string{
		0: "0 ms", 85: "85 ms", 999.4: "999 ms", 1240: "1.24 s", 12_345: "12.3 s",
		185_000: "3m 05s", 3_600_000: "1h 00m", 7_530_000: "2h 05m", -1: "—",
	} {
		require.Equal(t, want, fmtMS(ms), "%v ms", ms)
	}
}

func TestTimesAreUTCAndMissingOnesADash(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("CET", 3600))
	ts := pgtype.Timestamptz{Time: at, Valid: true}
	require.Equal(t, "2026-03-04 04:06:07", when(ts))
	require.Equal(t, "04:06:07.890", clock(ts))
	require.Equal(t, "—", when(pgtype.Timestamptz{}))
	require.Equal(t, "—", clockPtr(nil))
	require.Equal(t, "1 min ago", ago(ts, at.Add(90*time.Second)))
	require.Equal(t, "3 d ago", ago(ts, at.Add(75*time.Hour)))
	require.Equal(t, "a long error…", short("a  long\n error message", 13))
}
