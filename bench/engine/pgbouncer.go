// PgBouncer: the engine with its worker's pooled traffic (claims, results, River's fetches and
// completions) through a real PgBouncer in transaction pooling mode, River polling and the
// worker's sessions straight to the database, as `qflow worker --pgbouncer` runs, against the
// same worker connected directly, listening or polling, interleaved within each repetition.
// Direct and polling apart from direct and listening is what polling costs; through PgBouncer
// apart from direct and polling is what PgBouncer costs. Each is measured by steady-load
// steps/s at the first in-flight level, idle trigger latency (a run's INSERT committed → its
// first handler starts: a wake-up), idle hop latency with eager dispatch (a hop is one
// transaction and needs no wake-up) and without it (every hop through the queue: woken by a
// notification, or found by the next poll).

package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/quantumflow/qflow/internal/dbserver"
)

// PgBouncerResult compares the engine through PgBouncer with the engine connected directly.
type PgBouncerResult struct {
	InFlight int `json:"in_flight"`
	// PollIntervalMS is how often a polling River client looks for jobs (the worker's
	// default FetchPollInterval, which the bench keeps).
	PollIntervalMS float64        `json:"poll_interval_ms"`
	Direct         PgBouncerPoint `json:"direct"`
	DirectPolling  PgBouncerPoint `json:"direct_polling"`
	PgBouncer      PgBouncerPoint `json:"pgbouncer"`
	// Ratio is PgBouncer's steps/s over Direct's.
	Ratio float64 `json:"ratio_pgbouncer_vs_direct"`
}

// PgBouncerPoint is one way of connecting, measured.
type PgBouncerPoint struct {
	StepsPerSec float64 `json:"steps_per_sec"`
	// TriggerMS is idle trigger latency; HopMS idle hop latency with eager dispatch,
	// QueuedHopMS without it.
	TriggerMS   Percentiles `json:"trigger_latency_ms"`
	HopMS       Percentiles `json:"hop_latency_ms"`
	QueuedHopMS Percentiles `json:"queued_hop_latency_ms"`
}

// queuedHops is how many hops the through-the-queue latency measures per repetition: each
// waits for a wake-up, up to a poll interval when polling.
const queuedHops = 100

// pgbouncer measures the three ways of connecting -reps times, in a rotating order, and
// records the medians.
func (b *bench) pgbouncer(ctx context.Context, res *Result) error {
	o := b.o
	dir, err := os.MkdirTemp("", "qflow-bench-pgbouncer")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pgb, err := dbserver.StartPgBouncer(ctx, o.serverURL, dir)
	if err != nil {
		return fmt.Errorf("starting PgBouncer: %w", err)
	}
	defer pgb.Stop(context.WithoutCancel(ctx))
	polling, pooled := *b, *b
	polling.poll, pooled.via = true, pgb
	p := &PgBouncerResult{InFlight: o.inFlight[0], PollIntervalMS: 100}
	ways := []struct {
		name  string
		b     *bench
		point *PgBouncerPoint
	}{{"direct, listening", b, &p.Direct}, {"direct, polling", &polling, &p.DirectPolling}, {"through PgBouncer", &pooled, &p.PgBouncer}}
	samples := make([]struct {
		rate                   []float64
		trigger, hop, queueHop []Percentiles
	}, len(ways))
	for rep := 0; rep < o.reps; rep++ {
		for i := range ways {
			w := (i + rep) % len(ways)
			x := ways[w]
			rate, err := x.b.engine(ctx, p.InFlight, "workflow")
			if err != nil {
				return err
			}
			hop, trigger, err := x.b.idleLatency(ctx, "workflow", o.idleHops)
			if err != nil {
				return err
			}
			qhop, _, err := x.b.idleLatency(ctx, "queued", queuedHops)
			if err != nil {
				return err
			}
			s := &samples[w]
			s.rate, s.trigger = append(s.rate, rate), append(s.trigger, trigger)
			s.hop, s.queueHop = append(s.hop, hop), append(s.queueHop, qhop)
			fmt.Printf("pgbouncer rep %d: %-18s %6.0f steps/s at %d in flight; idle trigger p50 %.2f ms p99 %.2f ms; hop p50 %.2f ms p99 %.2f ms; through the queue p50 %.2f ms p99 %.2f ms\n",
				rep+1, x.name, rate, p.InFlight, trigger.P50, trigger.P99, hop.P50, hop.P99, qhop.P50, qhop.P99)
		}
	}
	for i, w := range ways {
		s := samples[i]
		*w.point = PgBouncerPoint{StepsPerSec: median(s.rate), TriggerMS: medianPercentiles(s.trigger),
			HopMS: medianPercentiles(s.hop), QueuedHopMS: medianPercentiles(s.queueHop)}
		res.Samples[fmt.Sprintf("%s_k%d", strings.NewReplacer(", ", "_", " ", "_").Replace(w.name), p.InFlight)] = s.rate
	}
	p.Ratio = round(p.PgBouncer.StepsPerSec / p.Direct.StepsPerSec)
	res.PgBouncer = p
	fmt.Printf("through PgBouncer: %.0f steps/s against %.0f direct (ratio %.2f; %.0f direct and polling)\n",
		p.PgBouncer.StepsPerSec, p.Direct.StepsPerSec, p.Ratio, p.DirectPolling.StepsPerSec)
	return nil
}

// markdown adds the comparison to the report.
func (p *PgBouncerResult) markdown(md *strings.Builder) {
	fmt.Fprintf(md, "\nThrough PgBouncer (transaction pooling; River polls every %.0f ms; the worker's sessions direct), %d runs in flight; ms:\n\n", p.PollIntervalMS, p.InFlight)
	md.WriteString("| | steps/s | idle trigger p50 / p99 | idle hop p50 / p99 | idle hop through the queue (no eager dispatch) p50 / p99 |\n|---|---:|---:|---:|---:|\n")
	for _, r := range []struct {
		name string
		p    PgBouncerPoint
	}{{"direct, woken by notifications", p.Direct}, {"direct, polling", p.DirectPolling}, {"through PgBouncer (polling)", p.PgBouncer}} {
		fmt.Fprintf(md, "| %s | %.0f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f |\n", r.name, r.p.StepsPerSec,
			r.p.TriggerMS.P50, r.p.TriggerMS.P99, r.p.HopMS.P50, r.p.HopMS.P99, r.p.QueuedHopMS.P50, r.p.QueuedHopMS.P99)
	}
}
