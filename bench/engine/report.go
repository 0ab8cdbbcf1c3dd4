// The results: their JSON contract, the markdown table and the chart (plot.go) written beside
// it, and the statistics they are made of (medians over repetitions, latency percentiles).

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Result is what one bench run reports; field names are part of the results' contract.
type Result struct {
	Commit               string      `json:"commit"`
	Machine              string      `json:"machine"`
	Date                 string      `json:"date"`
	Workers              int         `json:"workers_per_process"`
	Reps                 int         `json:"repetitions"`
	EngineStepsPerSec    float64     `json:"engine_steps_per_sec"`
	RiverChainHopsPerSec float64     `json:"river_chain_hops_per_sec"`
	RatioEngineVsRiver   float64     `json:"ratio_engine_vs_river_chain"`
	LegacyStepsPerSec    float64     `json:"legacy_steps_per_sec"`
	HopLatencyIdleMS     Percentiles `json:"hop_latency_idle_ms"`
	// TriggerLatencyIdleMS is from an INSERT's commit to its run's first handler, idle.
	TriggerLatencyIdleMS Percentiles `json:"trigger_latency_idle_ms"`
	HopLatencyLoadMS     Percentiles `json:"hop_latency_load_ms"`
	EngineHistory        float64     `json:"engine_steps_per_sec_100k_history"`
	// EngineHistoryBaseline is the empty-table rate measured alternately with EngineHistory.
	EngineHistoryBaseline float64 `json:"engine_steps_per_sec_history_baseline"`
	RatioHistory          float64 `json:"ratio_history"`
	HistoryRuns           int     `json:"history_runs"`
	// PruneRunsPerSec is how fast qflow.prune_runs deleted PrunedRuns finished runs of the history.
	PruneRunsPerSec float64              `json:"prune_runs_per_sec"`
	PrunedRuns      int                  `json:"pruned_runs"`
	WorkersScaling  []ScalePoint         `json:"workers_scaling"`
	Bulk            *BulkResult          `json:"bulk_trigger,omitempty"`
	Map             *MapResult           `json:"map,omitempty"`
	PgBouncer       *PgBouncerResult     `json:"pgbouncer,omitempty"`
	ByInFlight      []LoadPoint          `json:"by_in_flight"`
	Samples         map[string][]float64 `json:"samples"`
}

// ScalePoint is the engine's throughput with a number of worker processes.
type ScalePoint struct {
	Processes   int     `json:"processes"`
	StepsPerSec float64 `json:"steps_per_sec"`
}

// BulkResult is the time from one INSERT ... SELECT of many runs until all of them finished
// (medians of the repetitions), against the steady load measured just before each.
type BulkResult struct {
	Runs        int     `json:"runs"`
	Seconds     float64 `json:"seconds"`
	StepsPerSec float64 `json:"steps_per_sec"`
	// InsertSeconds is the INSERT itself; DrainSeconds from its commit until the last run finished.
	InsertSeconds     float64 `json:"insert_seconds"`
	DrainSeconds      float64 `json:"drain_seconds"`
	SteadyInFlight    int     `json:"steady_in_flight"`
	SteadyStepsPerSec float64 `json:"steady_steps_per_sec"`
	// Ratio is the median of each repetition's bulk steps/s over its own steady measurement.
	Ratio float64 `json:"ratio"`
}

// Percentiles of a latency distribution in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	N   int     `json:"n"`
}

// LoadPoint is the steady-load throughput of each system at one number of runs in flight.
type LoadPoint struct {
	InFlight          int     `json:"in_flight"`
	EngineStepsPerSec float64 `json:"engine_steps_per_sec"`
	// EngineQueuedStepsPerSec is the engine with eager dispatch off: every step through its queue.
	EngineQueuedStepsPerSec float64 `json:"engine_no_eager_steps_per_sec"`
	RiverChainHopsPerSec    float64 `json:"river_chain_hops_per_sec"`
	LegacyStepsPerSec       float64 `json:"legacy_steps_per_sec"`
	Ratio                   float64 `json:"ratio_engine_vs_river_chain"`
}

// percentiles of xs, in the unit of xs, rounded to hundredths.
func percentiles(xs []float64) Percentiles {
	s := slices.Clone(xs)
	slices.Sort(s)
	at := func(q float64) float64 { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return Percentiles{P50: round(at(0.50)), P95: round(at(0.95)), P99: round(at(0.99)), N: len(s)}
}

// medianPercentiles is the median of each percentile over repetitions.
func medianPercentiles(ps []Percentiles) Percentiles {
	var p50, p95, p99 []float64
	for _, p := range ps {
		p50, p95, p99 = append(p50, p.P50), append(p95, p.P95), append(p99, p.P99)
	}
	return Percentiles{P50: median(p50), P95: median(p95), P99: median(p99), N: ps[0].N}
}

// median of xs, rounded to hundredths; of an even count, the upper of the middle two.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return round(s[len(s)/2])
}

// round rounds x to hundredths, so the JSON does not carry noise digits.
func round(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

// gitCommit is the checkout's short commit, marked -dirty when tracked files changed.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	dirty := ""
	if st, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); len(st) > 0 {
		dirty = "-dirty"
	}
	return strings.TrimSpace(string(out)) + dirty
}

// machine says what the figures were measured on.
func machine() string {
	return fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

// write writes res as latest.json and a dated copy, latest.md and latest.png in dir, and
// prints the markdown.
func write(dir string, res Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("2006-01-02T150405Z")
	for _, name := range []string{"latest.json", "engine-" + stamp + ".json"} {
		if err := os.WriteFile(filepath.Join(dir, name), append(js, '\n'), 0o644); err != nil {
			return err
		}
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Engine benchmark\n\ncommit `%s`, %s, %s; one worker process with %d workers; median of %d repetitions\n\n",
		res.Commit, res.Machine, res.Date, res.Workers, res.Reps)
	md.WriteString("| runs in flight | engine steps/s | engine, no eager dispatch | River chain hops/s | ratio | legacy steps/s |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range res.ByInFlight {
		fmt.Fprintf(&md, "| %d | %.0f | %.0f | %.0f | %.2f | %.0f |\n", p.InFlight, p.EngineStepsPerSec, p.EngineQueuedStepsPerSec, p.RiverChainHopsPerSec, p.Ratio, p.LegacyStepsPerSec)
	}
	fmt.Fprintf(&md, "\nHop latency (a step's handler returns → the next step's handler starts), ms:\n\n| | p50 | p95 | p99 | n |\n|---|---:|---:|---:|---:|\n")
	fmt.Fprintf(&md, "| idle (one run at a time; median of the repetitions, n each) | %.2f | %.2f | %.2f | %d |\n", res.HopLatencyIdleMS.P50, res.HopLatencyIdleMS.P95, res.HopLatencyIdleMS.P99, res.HopLatencyIdleMS.N)
	fmt.Fprintf(&md, "| under load (first in-flight level) | %.2f | %.2f | %.2f | %d |\n", res.HopLatencyLoadMS.P50, res.HopLatencyLoadMS.P95, res.HopLatencyLoadMS.P99, res.HopLatencyLoadMS.N)
	fmt.Fprintf(&md, "| trigger, idle (an INSERT's commit → its first step's handler starts) | %.2f | %.2f | %.2f | %d |\n", res.TriggerLatencyIdleMS.P50, res.TriggerLatencyIdleMS.P95, res.TriggerLatencyIdleMS.P99, res.TriggerLatencyIdleMS.N)
	if len(res.WorkersScaling) > 0 {
		md.WriteString("\n| worker processes | engine steps/s |\n|---:|---:|\n")
		for _, p := range res.WorkersScaling {
			fmt.Fprintf(&md, "| %d | %.0f |\n", p.Processes, p.StepsPerSec)
		}
	}
	if res.Bulk != nil {
		fmt.Fprintf(&md, "\nBulk trigger: %d runs from one INSERT ... SELECT finished in %.1f s (%.0f steps/s; the INSERT itself %.1f s); steady load at %d in flight, measured before each repetition: %.0f steps/s; bulk/steady %.2f (median of the repetitions' ratios)\n",
			res.Bulk.Runs, res.Bulk.Seconds, res.Bulk.StepsPerSec, res.Bulk.InsertSeconds, res.Bulk.SteadyInFlight, res.Bulk.SteadyStepsPerSec, res.Bulk.Ratio)
	}
	if res.Map != nil {
		fmt.Fprintf(&md, "\nMap steps: one INSERT started a map of %d elements in %.3f s (%d one-step runs from one INSERT: %.3f s); a worker ran them at %.0f elements/s against %.0f steps/s of five-step chains (ratio %.2f)\n",
			res.Map.Elements, res.Map.StartSeconds, res.Map.Elements, res.Map.RunsStartSeconds, res.Map.ElementsPerSec, res.Map.ChainStepsPerSec, res.Map.Ratio)
	}
	if res.HistoryRuns > 0 {
		fmt.Fprintf(&md, "\nWith %d finished runs in the tables: %.0f steps/s, ratio to empty tables %.2f\n", res.HistoryRuns, res.EngineHistory, res.RatioHistory)
		fmt.Fprintf(&md, "\nRetention: %d finished runs deleted at %.0f runs/s (qflow.prune_runs, batches of 500)\n", res.PrunedRuns, res.PruneRunsPerSec)
	}
	if res.PgBouncer != nil {
		res.PgBouncer.markdown(&md)
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	if err := plot(filepath.Join(dir, "latest.png"), res); err != nil {
		return fmt.Errorf("plotting: %w", err)
	}
	fmt.Print("\n", md.String())
	return nil
}
