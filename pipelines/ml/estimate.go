package ml

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// Confidence is the level of every interval the pipelines report.
const Confidence = 0.95

// Resamples is how many bootstrap resamples an interval is drawn from.
const Resamples = 1000

// bootstrapStream seeds the resamples: they depend on the number of rows alone, so the same
// rows and predictions give the same intervals in every run and mode.
const bootstrapStream = 0xb0075

// Estimate is a metric measured on a sample of rows, with its Confidence interval.
type Estimate struct {
	Value float64 `json:"value"`
	Lo    float64 `json:"lo"`
	Hi    float64 `json:"hi"`
	// point: the estimate came without an interval (a model stored before intervals were).
	point bool
}

// UnmarshalJSON reads an estimate, or a bare number as an estimate without an interval.
func (e *Estimate) UnmarshalJSON(raw []byte) error {
	var v float64
	if err := json.Unmarshal(raw, &v); err == nil {
		*e = Estimate{Value: v, Lo: v, Hi: v, point: true}
		return nil
	}
	type plain Estimate
	var p plain
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("an estimate is {value, lo, hi} or a number: %w", err)
	}
	*e = Estimate(p)
	return nil
}

// HasInterval says whether the estimate came with an interval.
func (e Estimate) HasInterval() bool { return !e.point }

// Format writes the estimate with its interval in verb (a fmt verb for one float, "%.4f").
func (e Estimate) Format(verb string) string {
	if e.point {
		return fmt.Sprintf(verb+" (no interval)", e.Value)
	}
	return fmt.Sprintf(verb+" ["+verb+", "+verb+"]", e.Value, e.Lo, e.Hi)
}

// Bootstrap estimates statistics of n rows. stats computes all of them over the rows idx, a
// list of row indices that may repeat; the values are stats over every row once, and each
// interval is the percentile interval of the values over Resamples resamples of n rows drawn
// with replacement. A statistic that is NaN on a resample (a class the resample lacks) is left
// out of that statistic's interval; with no rows, or no resample where it is defined, the
// interval is the value itself.
func Bootstrap(n int, stats func(idx []int) []float64) []Estimate {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	values := stats(idx)
	draws := make([][]float64, len(values))
	r := Rand(uint64(n), bootstrapStream)
	for b := 0; b < Resamples && n > 0; b++ {
		for i := range idx {
			idx[i] = r.IntN(n)
		}
		for k, v := range stats(idx) {
			if !math.IsNaN(v) {
				draws[k] = append(draws[k], v)
			}
		}
	}
	out := make([]Estimate, len(values))
	for k, v := range values {
		out[k] = Estimate{Value: v, Lo: v, Hi: v}
		if len(draws[k]) > 0 {
			out[k].Lo, out[k].Hi = percentileInterval(draws[k])
		}
	}
	return out
}

// percentileInterval is the central Confidence interval of draws, linearly interpolated
// between order statistics.
func percentileInterval(draws []float64) (lo, hi float64) {
	slices.Sort(draws)
	tail := (1 - Confidence) / 2
	return quantile(draws, tail), quantile(draws, 1-tail)
}

func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(i)
	return sorted[i]*(1-f) + sorted[i+1]*f
}
