package worker

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines"
)

// progressBook keeps the latest progress report of each running attempt until the next write
// (qflow.report_progress, sql/schema/0560_report_progress.sql): a handler may report as often
// as it likes, the database sees at most one write per worker per ProgressInterval.
type progressBook struct {
	mu      sync.Mutex
	pending map[StepArgs]pipelines.Progress
}

// reporter is the pipelines.ProgressReporter of one attempt.
type reporter struct {
	book *progressBook
	a    StepArgs
}

func (r reporter) ReportProgress(p pipelines.Progress) {
	r.book.mu.Lock()
	defer r.book.mu.Unlock()
	if r.book.pending == nil {
		r.book.pending = map[StepArgs]pipelines.Progress{}
	}
	r.book.pending[r.a] = p
}

// forget drops an ended attempt's unwritten report: it would be refused as stale anyway.
func (b *progressBook) forget(a StepArgs) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, a)
}

func (b *progressBook) take() map[StepArgs]pipelines.Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pending
	b.pending = nil
	return p
}

// progressEntry is one report as qflow.report_progress takes it.
type progressEntry struct {
	RunID    int64              `json:"run_id"`
	Step     string             `json:"step"`
	Attempt  int32              `json:"attempt"`
	Progress pipelines.Progress `json:"progress"`
}

// progressLoop writes the pending reports every ProgressInterval until ctx ends.
func (w *Worker) progressLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(w.cfg.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pending := w.progress.take()
		if len(pending) == 0 {
			continue
		}
		entries := make([]progressEntry, 0, len(pending))
		for a, p := range pending {
			entries = append(entries, progressEntry{RunID: a.RunID, Step: a.Step, Attempt: a.Attempt, Progress: p})
		}
		reports, err := json.Marshal(entries)
		if err != nil {
			w.log.Warn("encoding progress", "err", err)
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = w.queries.ReportProgress(wctx, gen.ReportProgressParams{Worker: w.cfg.ID, Reports: reports})
		cancel()
		if err != nil && ctx.Err() == nil {
			// Progress is advisory: the next report replaces this one.
			w.log.Warn("writing progress", "err", err)
		}
	}
}
