package ml

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
)

// Rand returns the generator every seeded choice of the pipelines draws from: PCG, whose
// output for a seed is fixed, so a seed means the same draws on every machine and release.
func Rand(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15^stream))
}

// HoldoutScheme is the version of the hash that assigns rows to the holdout, the validation
// share and the cross-validation folds. It never changes meaning: a model records it with its
// Holdout, and one recorded under another scheme is treated as having seen every row.
const HoldoutScheme = 1

// ValidationShare is the share of the training side that a training does not fit but
// measures after every epoch, for the loss curve. The holdout is never used for that.
const ValidationShare = 0.1

// Holdout is the set of rows no model of a pipeline trains on: a row belongs to it when a hash
// of the row's identity (its key) falls below Share. Neither a run's seed nor its data window
// moves a row across, so a model's holdout rows are unseen by every other model of the same
// Holdout, and models with different shares both left out the rows under the smaller share.
type Holdout struct {
	// Of says what the key of a row is ("ml.task_executions.id", "import path").
	Of     string  `json:"of"`
	Share  float64 `json:"share"`
	Scheme int     `json:"scheme"`
}

// NewHoldout is the holdout of share under this build's scheme.
func NewHoldout(of string, share float64) Holdout {
	return Holdout{Of: of, Share: share, Scheme: HoldoutScheme}
}

// Contains reports whether the row with key is held out.
func (h Holdout) Contains(key string) bool { return unit("holdout", key) < h.Share }

// Comparable reports whether h and other assign rows by the same keys and hash, so that the
// rows both hold out are known to be unseen by both models.
func (h Holdout) Comparable(other Holdout) bool {
	return h.Scheme == HoldoutScheme && other.Scheme == HoldoutScheme && h.Of == other.Of && other.Share > 0
}

// Part is where a row goes.
type Part int

// The parts of a pipeline's rows.
const (
	// Train rows are fitted.
	Train Part = iota
	// Validate rows are the training side's ValidationShare, measured after every epoch.
	Validate
	// HeldOut rows are the holdout's.
	HeldOut
)

// PartOf says where the row with key goes: the holdout first, then a hash independent of the
// holdout's picks the validation rows among the rest.
func (h Holdout) PartOf(key string) Part {
	switch {
	case h.Contains(key):
		return HeldOut
	case unit("validation", key) < ValidationShare:
		return Validate
	}
	return Train
}

// Fold is the cross-validation fold (0..k-1) of the row with key, independent of the
// holdout's and the validation's hashes, so the folds of the training side are even.
func Fold(key string, k int) int { return int(hash("fold", key) % uint64(k)) }

// hash is FNV-1a over the purpose and the key, then the splitmix64 finalizer, whose avalanche
// FNV lacks on short keys that differ in their last characters (ids 1, 2, 3...).
func hash(purpose, key string) uint64 {
	h := fnv.New64a()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(purpose)))
	h.Write(n[:])
	h.Write([]byte(purpose))
	h.Write([]byte(key))
	z := h.Sum64()
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps the hash of a key to [0, 1) with 53 bits.
func unit(purpose, key string) float64 { return float64(hash(purpose, key)>>11) / (1 << 53) }
