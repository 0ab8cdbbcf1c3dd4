package ml

import (
	"context"
	"encoding/json"
	"fmt"
)

// Rule is the deployment rule both ML pipelines apply, over their held-out score S: a
// candidate is activated only if it beats its baseline, and then only if no model is active
// or it beats the active model. Both models are scored on this run's held-out data, the
// active one through its own feature spec, so the comparison is on equal terms; when that
// spec is from an encoding this build cannot apply, the score the active model was deployed
// with stands in. A pipeline says how its scores compare and read; Judge does the rest.
type Rule[S any] struct {
	// Beats reports whether score a beats score b.
	Beats func(a, b S) bool
	// Score scores the active model on this run's held-out data. ok is false, and nothing
	// scored, when the model's feature spec cannot be applied.
	Score func(active *StoredModel) (s S, ok bool, err error)
	// Deployed decodes the score a model was deployed with from its stored metrics.
	Deployed func(metrics json.RawMessage) (S, error)
	// HeldOut names the held-out items ("records") and Own the score a model was deployed
	// with ("MSE"), in decisions that say how the active model was scored.
	HeldOut, Own string
	// Below, First and Versus put the decisions in words: a candidate that does not beat
	// its baseline, the first model of its name, and a candidate against the active model
	// (verdict is "beats" or "does not beat"; how says how the active model was scored).
	Below, First func(candidate, baseline S) string
	Versus       func(candidate, active S, verdict string, version int32, how string) string
}

// Judge returns the Judge through which Deploy applies the rule to a candidate that scored
// candidate on this run's held-out data, where its baseline scored baseline.
func (r Rule[S]) Judge(candidate, baseline S) Judge {
	return func(_ context.Context, active *StoredModel) (bool, string, error) {
		if !r.Beats(candidate, baseline) {
			return false, r.Below(candidate, baseline), nil
		}
		if active == nil {
			return true, r.First(candidate, baseline), nil
		}
		theirs, how, err := r.scoreActive(active)
		if err != nil {
			return false, "", err
		}
		if r.Beats(candidate, theirs) {
			return true, r.Versus(candidate, theirs, "beats", active.Version, how), nil
		}
		return false, r.Versus(candidate, theirs, "does not beat", active.Version, how), nil
	}
}

// scoreActive returns the active model's score and how it was found.
func (r Rule[S]) scoreActive(active *StoredModel) (S, string, error) {
	s, ok, err := r.Score(active)
	if err != nil {
		return s, "", fmt.Errorf("scoring active model v%d: %w", active.Version, err)
	}
	if ok {
		return s, "both scored on this run's held-out " + r.HeldOut, nil
	}
	s, err = r.Deployed(active.Metrics)
	if err != nil {
		return s, "", fmt.Errorf("active model v%d has neither a usable feature spec nor metrics: %w", active.Version, err)
	}
	return s, "active model's features differ; its own held-out " + r.Own, nil
}
