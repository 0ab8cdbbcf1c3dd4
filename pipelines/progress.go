package pipelines

import (
	"context"
	"time"
)

// Progress is what a running step says about how far it got: training reports epochs, its
// last loss and its speed. It is shown by qflow.status(), qflow.step_overview, `qflow status
// --watch`, `qflow start --wait` and the web view.
type Progress struct {
	// Done and Total count units of work (Total 0: unknown).
	Done  int64 `json:"done"`
	Total int64 `json:"total,omitempty"`
	// Unit names them: "epoch", "file", ...
	Unit string `json:"unit,omitempty"`
	// Message is a short line for people ("loss 0.0123").
	Message string `json:"message,omitempty"`
	// Metrics are numbers worth plotting: "loss", "samples_per_sec", ...
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// ETA is the handler's estimate of the time left (0: none).
	ETA time.Duration `json:"-"`
}

// ProgressReporter takes a step's progress reports. The worker installs one in each handler's
// context; it keeps the latest report and writes it at a bounded rate, so a handler may report
// as often as it likes.
type ProgressReporter interface {
	ReportProgress(p Progress)
}

type progressKey struct{}

// WithProgress returns ctx with r as the reporter ReportProgress uses.
func WithProgress(ctx context.Context, r ProgressReporter) context.Context {
	return context.WithValue(ctx, progressKey{}, r)
}

// ReportProgress reports the step's progress to the reporter in ctx, if any (in a test or a
// legacy-mode run there may be none, and the report goes nowhere).
func ReportProgress(ctx context.Context, p Progress) {
	if r, ok := ctx.Value(progressKey{}).(ProgressReporter); ok {
		r.ReportProgress(p)
	}
}
