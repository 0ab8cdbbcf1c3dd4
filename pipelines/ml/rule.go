package ml

import (
	"context"
	"errors"
	"fmt"
)

// MinCompareRows is the fewest held-out rows unseen by both models on which a candidate is
// compared with the active model; with fewer, the active model stays.
const MinCompareRows = 30

// ErrCannotScore is wrapped by a Rule's Active when the active model cannot be applied to
// today's data (its features are of another version): it could not serve either, so the
// candidate replaces it if it beats the baseline.
var ErrCannotScore = errors.New("cannot score today's data")

// Rule is the deployment rule of both ML pipelines, a champion/challenger test over the
// candidate's holdout rows, whose predictions have type P:
//
//  1. The candidate must beat the baseline on its holdout rows: the paired bootstrap interval
//     of its gain must lie above 0.
//  2. Then it is activated when no model is active, or when the active model cannot be
//     compared (it records no comparable Holdout, so it may have trained on any row) or
//     cannot score today's data.
//  3. Otherwise both are scored on the candidate's holdout rows that the active model's
//     holdout holds too, rows neither trained on (at least MinCompareRows of them), and the
//     candidate is activated only when the paired bootstrap interval of its gain over the
//     active model lies above MinGain.
//
// Pairing (both models scored on each resample of the same rows) cancels what the rows have
// in common, so the interval is that of the difference, not of two separate estimates. The
// Decision keeps every estimate with its interval.
type Rule[P any] struct {
	// Metric names the score in decisions ("MSE", "macro-F1").
	Metric string
	// Score is the metric of predictions over the holdout rows idx (indices into the rows of
	// Keys, repeats allowed).
	Score func(pred []P, idx []int) float64
	// Gain is how much better a candidate scoring candidate is than a model scoring other:
	// positive when better.
	Gain func(candidate, other float64) float64
	// MinGain is the least gain over the active model worth a replacement.
	MinGain float64
	// Relative says the gain is a share of the other model's score (written as a percentage),
	// Digits how many decimals a score is written with.
	Relative bool
	Digits   int
	// Holdout is the candidate's; Keys are its holdout rows' keys, in prediction order.
	Holdout Holdout
	Keys    []string
	// Unit names the rows ("records", "packages").
	Unit string
	// Active predicts the active model on the holdout rows idx, one prediction per index;
	// an error wrapping ErrCannotScore means it cannot be applied to today's data.
	Active func(active *StoredModel, idx []int) ([]P, error)
}

// Comparison is one paired comparison of the candidate with another model on the same rows.
type Comparison struct {
	// Against is "baseline" or "active v<N>".
	Against string `json:"against"`
	Rows    int    `json:"rows"`
	// Candidate and Other are both models' scores; Gain the candidate's (Rule.Gain).
	Candidate Estimate `json:"candidate"`
	Other     Estimate `json:"other"`
	Gain      Estimate `json:"gain"`
	MinGain   float64  `json:"min_gain"`
	// Wins: the gain's interval lies above MinGain.
	Wins bool `json:"wins"`
}

// Decision is what deployment decided about a candidate and on what evidence; Deploy stores it
// in the model's metrics under "decision", Reason in ml.models.decision.
type Decision struct {
	Metric string `json:"metric"`
	// RelativeGain, Digits and Unit say how the numbers read (Rule's Relative, Digits, Unit).
	RelativeGain bool        `json:"relative_gain"`
	Digits       int         `json:"digits"`
	Unit         string      `json:"unit"`
	Baseline     Comparison  `json:"baseline"`
	Active       *Comparison `json:"active,omitempty"`
	Activated    bool        `json:"activated"`
	Reason       string      `json:"reason"`
}

// FormatScore writes a score of the decision's metric.
func (d Decision) FormatScore(v float64) string { return fmt.Sprintf("%.*f", d.Digits, v) }

// FormatGain writes a gain: a signed percentage when relative, else signed in the metric's
// digits.
func (d Decision) FormatGain(g float64) string {
	if d.RelativeGain {
		return fmt.Sprintf("%+.1f%%", 100*g)
	}
	return fmt.Sprintf("%+.*f", d.Digits, g)
}

// FormatGainEstimate writes a gain with its interval: "+5.8% [-7.0%, +17.4%]".
func (d Decision) FormatGainEstimate(e Estimate) string {
	return fmt.Sprintf("%s [%s, %s]", d.FormatGain(e.Value), d.FormatGain(e.Lo), d.FormatGain(e.Hi))
}

// FormatScoreEstimate writes a score with its interval.
func (d Decision) FormatScoreEstimate(e Estimate) string {
	return fmt.Sprintf("%s [%s, %s]", d.FormatScore(e.Value), d.FormatScore(e.Lo), d.FormatScore(e.Hi))
}

// Words puts a comparison of the decision in a sentence.
func (d Decision) Words(c Comparison) string {
	neither := " neither trained on"
	if c.Against == "baseline" {
		neither = ""
	}
	return fmt.Sprintf("%s %s vs %s on %d held-out %s%s, gain %s", d.Metric, d.FormatScoreEstimate(c.Candidate),
		d.FormatScoreEstimate(c.Other), c.Rows, d.Unit, neither, d.FormatGainEstimate(c.Gain))
}

// Judge returns the Judge through which Deploy applies the rule to a candidate that predicted
// candidate for the holdout rows, where the baseline predicted baseline.
func (r Rule[P]) Judge(candidate, baseline []P) Judge {
	return func(_ context.Context, active *StoredModel) (Decision, error) {
		all := make([]int, len(r.Keys))
		for i := range all {
			all[i] = i
		}
		d := Decision{Metric: r.Metric, RelativeGain: r.Relative, Digits: r.Digits, Unit: r.Unit,
			Baseline: r.compare("baseline", all, candidate, baseline, 0)}
		vsBaseline := d.Words(d.Baseline)
		switch {
		case !d.Baseline.Wins:
			d.Reason = "not reliably better than the baseline: " + vsBaseline
			return d, nil
		case active == nil:
			d.Activated, d.Reason = true, "no active model; beats the baseline: "+vsBaseline
			return d, nil
		case active.Holdout == nil || !r.Holdout.Comparable(*active.Holdout):
			d.Activated = true
			d.Reason = fmt.Sprintf("replaces active v%d, which records no holdout comparable with this one, so any row may have trained it; beats the baseline: %s",
				active.Version, vsBaseline)
			return d, nil
		}
		var unseen []int
		for _, i := range all {
			if active.Holdout.Contains(r.Keys[i]) {
				unseen = append(unseen, i)
			}
		}
		if len(unseen) < MinCompareRows {
			d.Reason = fmt.Sprintf("stays a candidate: only %d held-out %s are unseen by active v%d, at least %d are needed to compare",
				len(unseen), r.Unit, active.Version, MinCompareRows)
			return d, nil
		}
		theirs, err := r.Active(active, unseen)
		if errors.Is(err, ErrCannotScore) {
			d.Activated = true
			d.Reason = fmt.Sprintf("replaces active v%d, which %v; beats the baseline: %s", active.Version, err, vsBaseline)
			return d, nil
		}
		if err != nil {
			return d, fmt.Errorf("scoring active model v%d: %w", active.Version, err)
		}
		if len(theirs) != len(unseen) {
			return d, fmt.Errorf("scoring active model v%d: %d predictions for %d rows", active.Version, len(theirs), len(unseen))
		}
		full := make([]P, len(r.Keys))
		for j, i := range unseen {
			full[i] = theirs[j]
		}
		c := r.compare(fmt.Sprintf("active v%d", active.Version), unseen, candidate, full, r.MinGain)
		d.Active = &c
		verdict := "does not beat"
		if c.Wins {
			d.Activated, verdict = true, "beats"
		}
		d.Reason = fmt.Sprintf("%s active v%d by more than %s: %s", verdict, active.Version, d.FormatGain(r.MinGain), d.Words(c))
		return d, nil
	}
}

// compare is the paired bootstrap of the candidate's and another model's predictions over the
// holdout rows.
func (r Rule[P]) compare(against string, rows []int, candidate, other []P, minGain float64) Comparison {
	sub := make([]int, len(rows))
	e := Bootstrap(len(rows), func(idx []int) []float64 {
		for j, i := range idx {
			sub[j] = rows[i]
		}
		s := sub[:len(idx)]
		a, b := r.Score(candidate, s), r.Score(other, s)
		return []float64{a, b, r.Gain(a, b)}
	})
	return Comparison{Against: against, Rows: len(rows), Candidate: e[0], Other: e[1], Gain: e[2], MinGain: minGain,
		Wins: e[2].Lo > minGain}
}
