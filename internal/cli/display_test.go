package cli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/gen"
)

func TestStatusShowsTheRunningStepsProgress(t *testing.T) {
	t.Parallel()
	var doc runStatusDoc
	require.NoError(t, json.Unmarshal([]byte(`{"id": 7, "workflow": "complexity_training", "version": 1, "mode": "workflow",
	    "status": "running", "steps": [
	      {"step": "feature_engineering", "status": "succeeded", "worker_class": "cpu", "attempt": 1, "max_attempts": 4},
	      {"step": "model_training", "status": "running", "worker_class": "gpu", "attempt": 2, "max_attempts": 4,
	       "progress": {"done": 12, "total": 48, "unit": "epoch", "metrics": {"loss": 0.01234}, "eta_ms": 81000}}]}`), &doc))

	var table strings.Builder
	printStatus(&table, doc)
	require.Contains(t, table.String(), "[########......................] epoch 12/48 (25%) · loss 0.01234 · ETA 1m21s")
	require.Contains(t, doc.progressLine(), "model_training:running(epoch 12/48 (25%)")
	require.Equal(t, 81*time.Second, doc.Steps[1].Progress.ETA)
	require.Nil(t, doc.Steps[0].Progress)
}

func TestStatusCountsAMapStepsElementsByStateAndListsTheFailedOnes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run := b.Start(t, "probe_map", `{"n": 5}`)
	b.succeed(t, run, "split", `{"items": [1, 2, 3, 4, 5]}`)
	b.succeed(t, run, "square[0]", `1`)
	b.succeed(t, run, "square[1]", `4`)
	b.claim(t, run, "square[2]")
	id := strconv.FormatInt(run, 10)

	code, out, stderr := b.qflow("status", id)
	require.Zero(t, code, stderr)
	require.Regexp(t, `(?m)^  square +running +cpu +1/3 +map 2/5 succeeded, 1 running, 2 queued$`, out)
	require.Regexp(t, `(?m)^  total +waiting +cpu +0/3$`, out)
	st, err := readStatus(b.Ctx, gen.New(b.Pool), run)
	require.NoError(t, err)
	require.Contains(t, st.progressLine(), "square:running(2/5)", "--watch off a terminal counts the elements too")

	b.finish(t, run, "square[2]", 1, map[string]any{"result": "fail", "error": "probe_map: element 3 is fatal by request", "permanent": true})
	code, out, _ = b.qflow("status", id)
	require.Zero(t, code)
	require.Regexp(t, `(?m)^  square +failed +cpu +1/3 +\S+ +map 2/5 succeeded, 1 failed, 2 cancelled$`, out,
		"the map step's own error repeats its element's: only the element's is shown")
	require.Regexp(t, `(?m)^ {27}element 2 failed: probe_map: element 3 is fatal by request$`, out)
	require.Contains(t, out, "error: step square failed: element 2 failed permanently: probe_map: element 3 is fatal by request")
}

func TestStatusMarksACacheHitAndASkippedBranch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.Start(t, "probe_cached", `{"key": "k"}`)
	b.succeed(t, first, "load", `{"key": "k", "computed_by": 1}`)
	// The same key: load's output comes from the cache as the run starts.
	second := b.Start(t, "probe_cached", `{"key": "k"}`)
	branch := b.Start(t, "probe_branch", `{"size": "big"}`)
	b.succeed(t, branch, "check", `{"size": "big"}`)

	code, out, stderr := b.qflow("status", strconv.FormatInt(second, 10))
	require.Zero(t, code, stderr)
	require.Regexp(t, `(?m)^  load +succeeded +cpu +1/3 +\S+ +cached$`, out)
	require.Regexp(t, `(?m)^  use +queued +cpu +1/3$`, out)
	_, out, _ = b.qflow("status", strconv.FormatInt(first, 10))
	require.Regexp(t, `(?m)^  load +succeeded +cpu +1/3 +\S+$`, out, "the run that computed it is not a cache hit")

	_, out, _ = b.qflow("status", strconv.FormatInt(branch, 10))
	require.Regexp(t, `(?m)^  small +skipped +cpu +0/3 +not run: condition not met or every dependency skipped$`, out)
	require.Regexp(t, `(?m)^  big +queued +cpu +1/3$`, out)
}

func TestStatusOfAForkedRunNamesItsSourceAndMarksTheReusedSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	src := b.Start(t, "probe_branch", `{"size": "big"}`)
	b.succeed(t, src, "check", `{"size": "big"}`)
	b.succeed(t, src, "big", `{}`)
	b.succeed(t, src, "finish", `{"path": "big"}`)
	var fork int64
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT qflow.rerun_from($1, 'big')", src).Scan(&fork))

	code, out, stderr := b.qflow("status", strconv.FormatInt(fork, 10))
	require.Zero(t, code, stderr)
	require.Regexp(t, fmt.Sprintf(`(?m)^run %d  probe_branch v1  mode=workflow  status=running  \S+  forked from run %d at step big$`, fork, src), out)
	require.Regexp(t, fmt.Sprintf(`(?m)^  check +succeeded +cpu +0/3 +reused from run %d$`, src), out)
	require.Regexp(t, fmt.Sprintf(`(?m)^  small +skipped +cpu +0/3 +reused from run %d$`, src), out, "skipped in the source, and not downstream of big")
	require.Regexp(t, `(?m)^  big +queued +cpu +1/3$`, out, "big and what follows it run again")
	require.Regexp(t, `(?m)^  finish +waiting +cpu +0/3$`, out)

	// Forked at small, which the input skips again: skipped in the fork itself, not reused.
	require.NoError(t, b.Pool.QueryRow(b.Ctx, "SELECT qflow.rerun_from($1, 'small')", src).Scan(&fork))
	_, out, _ = b.qflow("status", strconv.FormatInt(fork, 10))
	require.Regexp(t, `(?m)^  small +skipped +cpu +0/3 +not run: `, out)
	require.Regexp(t, fmt.Sprintf(`(?m)^  big +succeeded +cpu +0/3 +reused from run %d$`, src), out)

	_, out, _ = b.qflow("status", strconv.FormatInt(src, 10))
	require.NotContains(t, out, "forked")
	require.NotContains(t, out, "reused")
}
