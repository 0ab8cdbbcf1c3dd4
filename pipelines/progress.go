package pipelines

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
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
	// ETA is the handler's estimate of the time left (0: none); eta_ms in JSON.
	ETA time.Duration `json:"-"`
}

type progressJSON struct {
	Done    int64              `json:"done"`
	Total   int64              `json:"total,omitempty"`
	Unit    string             `json:"unit,omitempty"`
	Message string             `json:"message,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	ETAMS   int64              `json:"eta_ms,omitempty"`
}

// MarshalJSON writes p as qflow.report_progress stores it (the ETA as eta_ms).
func (p Progress) MarshalJSON() ([]byte, error) {
	return json.Marshal(progressJSON{p.Done, p.Total, p.Unit, p.Message, p.Metrics, p.ETA.Milliseconds()})
}

// UnmarshalJSON reads a stored progress report.
func (p *Progress) UnmarshalJSON(b []byte) error {
	var j progressJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*p = Progress{Done: j.Done, Total: j.Total, Unit: j.Unit, Message: j.Message, Metrics: j.Metrics,
		ETA: time.Duration(j.ETAMS) * time.Millisecond}
	return nil
}

// Fraction is Done/Total in [0, 1], or -1 when the total is unknown.
func (p Progress) Fraction() float64 {
	if p.Total <= 0 {
		return -1
	}
	return min(1, max(0, float64(p.Done)/float64(p.Total)))
}

// String is the report in one line for people: "epoch 12/50 (24%) · loss 0.0123 ·
// samples_per_sec 5400 · ETA 1m20s · <message>".
func (p Progress) String() string {
	unit := p.Unit
	if unit == "" {
		unit = "done"
	}
	parts := []string{fmt.Sprintf("%s %d", unit, p.Done)}
	if f := p.Fraction(); f >= 0 {
		parts[0] = fmt.Sprintf("%s %d/%d (%.0f%%)", unit, p.Done, p.Total, 100*f)
	}
	names := make([]string, 0, len(p.Metrics))
	for k := range p.Metrics {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %.4g", k, p.Metrics[k]))
	}
	if p.ETA > 0 {
		parts = append(parts, "ETA "+p.ETA.Round(time.Second).String())
	}
	if p.Message != "" {
		parts = append(parts, p.Message)
	}
	return strings.Join(parts, " · ")
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
