package web_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/web"
)

func TestMarksReadAsAPersonWritesThem(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		`{"input": {"size": "big"}}`:                    `input.size = "big"`,
		`{"check": {"ok": true}, "input": {"n": 1.50}}`: `check.ok = true and input.n = 1.50`,
		`{"input": {"tags": ["a<b"]}}`:                  `input.tags contains ["a<b"]`,
		`{"input": {}}`:                                 `input = {}`,
		`{}`:                                            ``,
		`null`:                                          ``,
	} {
		require.Equal(t, want, web.ConditionText(json.RawMessage(raw)), raw)
	}
	for ms, want := range map[int64]string{3_600_000: "cached 1h", 5_400_000: "cached 1h30m", 1_800_000: "cached 30m", 45_000: "cached 45s", 500: "cached 500ms", 86_400_000: "cached 24h"} {
		require.Equal(t, want, web.CacheText(&ms, nil), ms)
	}
	ttl := int64(3_600_000)
	require.Equal(t, "cached 1h on input.key, load", web.CacheText(&ttl, []string{"input.key", "load"}))
	require.Empty(t, web.CacheText(nil, nil))
	require.Equal(t, "map over split.items", web.MapText([]string{"split", "items"}))
	require.Empty(t, web.MapText(nil))
}
