package ml

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestARowsPartDependsOnItsKeyAlone(t *testing.T) {
	t.Parallel()
	h := NewHoldout("id", 0.2)
	var counts [3]int
	folds := make([]int, 5)
	for id := 1; id <= 20000; id++ {
		key := strconv.Itoa(id)
		part := h.PartOf(key)
		counts[part]++
		require.Equal(t, part, h.PartOf(key), "the same key, the same part")
		if part != HeldOut {
			folds[Fold(key, 5)]++
		}
	}
	// Consecutive ids spread like random draws: 20% held out, a tenth of the rest validates.
	require.InDelta(t, 4000, counts[HeldOut], 150)
	require.InDelta(t, 1600, counts[Validate], 120)
	for k, n := range folds {
		require.InDelta(t, 3200, n, 150, "fold %d", k)
	}

	// A larger share holds out a superset: every row held out at 0.2 is held out at 0.3.
	wider := NewHoldout("id", 0.3)
	for id := 1; id <= 5000; id++ {
		key := strconv.Itoa(id)
		if h.Contains(key) {
			require.True(t, wider.Contains(key), key)
		}
	}
	// Pinned: the hash must never change, or stored models' holdouts would lose their meaning.
	var first []int
	for id := 1; len(first) < 8; id++ {
		if h.Contains(strconv.Itoa(id)) {
			first = append(first, id)
		}
	}
	require.Equal(t, []int{10, 12, 19, 22, 28, 34, 37, 43}, first)
}

func TestHoldoutsCompareOnlyUnderOneSchemeAndKey(t *testing.T) {
	t.Parallel()
	h := NewHoldout("id", 0.2)
	require.True(t, h.Comparable(NewHoldout("id", 0.05)))
	require.False(t, h.Comparable(NewHoldout("path", 0.2)), "other keys")
	require.False(t, h.Comparable(Holdout{Of: "id", Share: 0.2, Scheme: 0}), "another scheme")
	require.False(t, h.Comparable(Holdout{Of: "id", Scheme: HoldoutScheme}), "no share: nothing held out")
}
