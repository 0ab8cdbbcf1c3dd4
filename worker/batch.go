package worker

import (
	"context"
	"sync"
	"time"
)

// batcher groups concurrent requests into batches: each flusher takes the first waiting
// request, adds whatever else is already waiting (up to max), and handles them in one call.
// Under light load a batch holds one request and nothing waits for company; under heavy load
// requests pile up while a batch is in flight and the next call takes them all, which is what
// turns one transaction per step into one transaction per batch (group commit).
type batcher[Req, Resp any] struct {
	reqs     chan batchItem[Req, Resp]
	max      int
	flush    func(ctx context.Context, reqs []Req) ([]Resp, error)
	flushers int

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

type batchItem[Req, Resp any] struct {
	req   Req
	reply chan batchReply[Resp]
}

type batchReply[Resp any] struct {
	resp Resp
	err  error
}

// drainPatience bounds the handling of the requests still waiting when stop is called.
const drainPatience = 30 * time.Second

func newBatcher[Req, Resp any](max, flushers int, flush func(context.Context, []Req) ([]Resp, error)) *batcher[Req, Resp] {
	return &batcher[Req, Resp]{reqs: make(chan batchItem[Req, Resp], max*flushers), max: max, flush: flush, flushers: flushers}
}

// start runs the flushers until stop. Their context is independent of any job's, so results
// can still be recorded while the worker shuts down.
func (b *batcher[Req, Resp]) start(ctx context.Context) {
	ctx, b.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for range b.flushers {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.loop(ctx)
		}()
	}
}

// stop ends the flushers once every request already sent is handled: a flush under way is
// cancelled, the requests still waiting are tried for drainPatience.
func (b *batcher[Req, Resp]) stop() {
	if b.cancel != nil {
		b.cancel()
		b.wg.Wait()
	}
}

func (b *batcher[Req, Resp]) loop(ctx context.Context) {
	items := make([]batchItem[Req, Resp], 0, b.max)
	reqs := make([]Req, 0, b.max)
	for {
		var first batchItem[Req, Resp]
		select {
		case first = <-b.reqs:
		case <-ctx.Done():
			b.drain(ctx, reqs)
			return
		}
		items = append(items[:0], first)
	gather:
		for len(items) < b.max {
			select {
			case it := <-b.reqs:
				items = append(items, it)
			default:
				break gather
			}
		}
		b.handle(ctx, items, reqs[:0])
	}
}

// drain handles what is left so no caller waits forever, for drainPatience at most: a flush
// retries while the database is away, and a stop must not wait for it.
func (b *batcher[Req, Resp]) drain(ctx context.Context, reqs []Req) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainPatience)
	defer cancel()
	for {
		select {
		case it := <-b.reqs:
			b.handle(ctx, []batchItem[Req, Resp]{it}, reqs[:0])
		default:
			return
		}
	}
}

func (b *batcher[Req, Resp]) handle(ctx context.Context, items []batchItem[Req, Resp], reqs []Req) {
	for _, it := range items {
		reqs = append(reqs, it.req)
	}
	resps, err := b.flush(ctx, reqs)
	for i, it := range items {
		var r batchReply[Resp]
		if err != nil {
			r.err = err
		} else {
			r.resp = resps[i]
		}
		it.reply <- r
	}
}

// do sends one request and waits for its batch's answer. ctx bounds only the wait to enqueue;
// once queued, the request is handled even if ctx ends, so a result is never half-recorded.
func (b *batcher[Req, Resp]) do(ctx context.Context, req Req) (Resp, error) {
	reply := make(chan batchReply[Resp], 1)
	select {
	case b.reqs <- batchItem[Req, Resp]{req: req, reply: reply}:
	case <-ctx.Done():
		var zero Resp
		return zero, ctx.Err()
	}
	r := <-reply
	return r.resp, r.err
}
