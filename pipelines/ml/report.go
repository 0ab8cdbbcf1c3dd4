package ml

import (
	"encoding/json"
	"fmt"
)

// Report is a model's stored metrics as the registry's views show them (the web view's models
// pages, `qflow models`), whatever its pipeline: its figures with their intervals next to the
// baseline's, where they were measured, the loss curve, the predicted-vs-actual sample of a
// regression, the confusion matrix and per-class figures of a classifier, and the deployment
// decision. Models stored before figures had intervals read as figures without one.
type Report struct {
	Figures []Figure
	Evaluation
	// Classes names a classifier's classes; Confusion and PerClass are its held-out ones.
	Classes   []string
	Confusion [][]int
	PerClass  []ClassScore
	// CV is a classifier's cross-validation, nil when it has none.
	CV       *CrossValidation
	Decision *Decision
}

// Figure is one metric of a model and of its baseline, on the same rows.
type Figure struct {
	Name string
	// On says which rows: "holdout", or "5-fold CV" for cross-validated figures.
	On       string
	Model    Estimate
	Baseline *Estimate
	// LowerIsBetter: an error (MSE), not a score.
	LowerIsBetter bool
	// Verb writes the figure's numbers ("%.5f").
	Verb string
}

// Regression reports whether the model is a regression (it has an MSE).
func (r Report) Regression() bool { return len(r.Figures) > 0 && r.Figures[0].Name == "MSE" }

// storedMetrics is the union of the metrics both pipelines store.
type storedMetrics struct {
	MSE      *Estimate `json:"mse"`
	R2       *Estimate `json:"r2"`
	Accuracy *Estimate `json:"accuracy"`
	MacroF1  *Estimate `json:"macro_f1"`
	Baseline struct {
		MSE      *Estimate `json:"mse"`
		R2       *Estimate `json:"r2"`
		Accuracy *Estimate `json:"accuracy"`
		MacroF1  *Estimate `json:"macro_f1"`
	} `json:"baseline"`
	Confusion [][]int          `json:"confusion"`
	Classes   []ClassScore     `json:"classes"`
	Patterns  []string         `json:"patterns"`
	CV        *CrossValidation `json:"cv"`
	Decision  *Decision        `json:"decision"`
	Evaluation
}

// ReadReport decodes a model's stored metrics.
func ReadReport(metrics json.RawMessage) (Report, error) {
	var m storedMetrics
	if err := json.Unmarshal(metrics, &m); err != nil {
		return Report{}, fmt.Errorf("decoding model metrics: %w", err)
	}
	r := Report{Evaluation: m.Evaluation, Classes: m.Patterns, Confusion: m.Confusion, PerClass: m.Classes, CV: m.CV, Decision: m.Decision}
	add := func(name, on, verb string, lower bool, model, baseline *Estimate) {
		if model != nil {
			r.Figures = append(r.Figures, Figure{Name: name, On: on, Model: *model, Baseline: baseline, LowerIsBetter: lower, Verb: verb})
		}
	}
	b := m.Baseline
	if m.MSE != nil {
		add("MSE", "holdout", "%.5f", true, m.MSE, b.MSE)
		add("R²", "holdout", "%.4f", false, m.R2, b.R2)
		add("accuracy (±0.1)", "holdout", "%.4f", false, m.Accuracy, b.Accuracy)
		return r, nil
	}
	add("macro-F1", "holdout", "%.4f", false, m.MacroF1, b.MacroF1)
	add("accuracy", "holdout", "%.4f", false, m.Accuracy, b.Accuracy)
	if cv := m.CV; cv != nil {
		on := fmt.Sprintf("%d-fold CV", cv.Folds)
		add("macro-F1", on, "%.4f", false, &cv.MacroF1, &cv.Baseline.MacroF1)
		add("accuracy", on, "%.4f", false, &cv.Accuracy, &cv.Baseline.Accuracy)
	}
	return r, nil
}
