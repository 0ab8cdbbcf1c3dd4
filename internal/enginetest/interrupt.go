package enginetest

import (
	"context"
	"sync/atomic"

	"github.com/quantumflow/qflow/pipelines"
)

// InterruptTraining returns wf with a training step changed for a test. The first attempt of
// step to run in this process is cancelled as its progress reports the given epoch done, the
// way a worker that is shutting down cancels a handler before releasing its step, and the
// step's retries come within a tenth of a second rather than the pipelines' seconds. Every
// later attempt, of this run or another, runs undisturbed: one run trains interrupted and
// resumed, the next one through, and the test compares them.
func InterruptTraining(wf pipelines.Workflow, step string, epoch int) pipelines.Workflow {
	var done atomic.Bool
	steps := append([]pipelines.Step(nil), wf.Steps...)
	for i, s := range steps {
		if s.Name != step {
			continue
		}
		handler := s.Handler
		steps[i].RetryBaseMS, steps[i].RetryMaxMS = 20, 100
		steps[i].Handler = func(ctx context.Context, in pipelines.Input) (any, error) {
			if done.Swap(true) {
				return handler(ctx, in)
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			return handler(pipelines.WithProgress(ctx, cancelAt{epoch: int64(epoch), cancel: cancel}), in)
		}
	}
	wf.Steps = steps
	return wf
}

// cancelAt cancels a training when its progress report says the epoch is done.
type cancelAt struct {
	epoch  int64
	cancel context.CancelFunc
}

// ReportProgress implements pipelines.ProgressReporter.
func (c cancelAt) ReportProgress(p pipelines.Progress) {
	if p.Unit == "epoch" && p.Done == c.epoch {
		c.cancel()
	}
}
