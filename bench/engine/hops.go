package main

import (
	"context"
	"sync"
	"time"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
)

// hopClock measures hop latency where a user feels it: from the moment a step's handler
// returns to the moment the handler of the step it made ready starts, in this process's
// clock. It includes recording the result, dispatching the successor and whatever wake-up,
// fetch and claim lie between them.
type hopClock struct {
	mu      sync.Mutex
	on      bool
	start   map[stepKey]time.Time
	end     map[stepKey]time.Time
	waiters map[stepKey]chan struct{}
}

type stepKey struct {
	run  int64
	step string
}

func newHopClock() *hopClock {
	return &hopClock{start: map[stepKey]time.Time{}, end: map[stepKey]time.Time{}, waiters: map[stepKey]chan struct{}{}}
}

// record turns recording on (and forgets earlier times) or off.
func (c *hopClock) record(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = on
	if on {
		clear(c.start)
		clear(c.end)
	}
}

func (c *hopClock) mark(m map[stepKey]time.Time, k stepKey, t time.Time) {
	c.mu.Lock()
	if c.on {
		m[k] = t
	}
	c.mu.Unlock()
}

// ended closes the channel of whoever waits for step k's handler to return.
func (c *hopClock) ended(k stepKey) {
	c.mu.Lock()
	if ch, ok := c.waiters[k]; ok {
		close(ch)
		delete(c.waiters, k)
	}
	c.mu.Unlock()
}

// started says when the handler of step of run started, if that was recorded.
func (c *hopClock) started(run int64, step string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.start[stepKey{run, step}]
	return t, ok
}

// waitFor returns a channel closed when the handler of step of run returns: the idle
// measurement waits on it instead of polling the database between hops.
func (c *hopClock) waitFor(run int64, step string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	c.waiters[stepKey{run, step}] = ch
	return ch
}

// registry is the probe workflows with every handler timed.
func (c *hopClock) registry() *pipelines.Registry {
	src := pipelines.NewRegistry()
	probe.Register(src)
	reg := pipelines.NewRegistry()
	for _, wf := range src.Workflows() {
		for i := range wf.Steps {
			h := wf.Steps[i].Handler
			wf.Steps[i].Handler = func(ctx context.Context, in pipelines.Input) (any, error) {
				k := stepKey{in.RunID, in.Step}
				c.mark(c.start, k, time.Now())
				out, err := h(ctx, in)
				c.mark(c.end, k, time.Now())
				c.ended(k)
				return out, err
			}
		}
		reg.MustAdd(wf)
	}
	return reg
}

// hops returns, in milliseconds, every recorded hop of probe_chain: a step's handler start
// minus its dependency's handler end, where both were recorded.
func (c *hopClock) hops() []float64 {
	wf, _ := c.registry().Workflow(probe.Chain)
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []float64
	for k, started := range c.start {
		for _, s := range wf.Steps {
			if s.Name != k.step {
				continue
			}
			for _, dep := range s.DependsOn {
				if ended, ok := c.end[stepKey{k.run, dep}]; ok {
					out = append(out, float64(started.Sub(ended).Microseconds())/1000)
				}
			}
		}
	}
	return out
}
