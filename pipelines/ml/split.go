package ml

import (
	"math/rand/v2"
	"sort"
)

// Rand returns the generator every seeded choice of the pipelines draws from: PCG, whose
// output for a seed is fixed, so a seed means the same split on every machine and release.
func Rand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15^stream))
}

// Permutation returns a seeded random order of 0..n-1 (Fisher-Yates on Rand).
func Permutation(n int, seed uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r := Rand(seed, 1)
	for i := n - 1; i > 0; i-- {
		j := int(r.Uint64() % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// Split puts a seeded random share heldOut of 0..n-1 in the held-out set, at least one row
// on each side when n >= 2; both sets are returned sorted.
func Split(n int, heldOut float64, seed uint64) (train, held []int) {
	p := Permutation(n, seed)
	k := int(float64(n)*heldOut + 0.5)
	if n >= 2 {
		k = min(max(k, 1), n-1)
	}
	held, train = append([]int(nil), p[:k]...), append([]int(nil), p[k:]...)
	sort.Ints(train)
	sort.Ints(held)
	return train, held
}

// StratifiedSplit is Split within each label, so every class with at least two members has
// members on both sides; a class with one member trains.
func StratifiedSplit(labels []int, heldOut float64, seed uint64) (train, held []int) {
	byLabel := map[int][]int{}
	var keys []int
	for i, l := range labels {
		if _, ok := byLabel[l]; !ok {
			keys = append(keys, l)
		}
		byLabel[l] = append(byLabel[l], i)
	}
	sort.Ints(keys)
	for _, l := range keys {
		members := byLabel[l]
		if len(members) < 2 {
			train = append(train, members...)
			continue
		}
		tr, ho := Split(len(members), heldOut, seed+uint64(l)*0x632be59bd9b4e019)
		for _, i := range tr {
			train = append(train, members[i])
		}
		for _, i := range ho {
			held = append(held, members[i])
		}
	}
	sort.Ints(train)
	sort.Ints(held)
	return train, held
}
