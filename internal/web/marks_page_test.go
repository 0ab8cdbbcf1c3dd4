package web_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// dagNode returns the SVG group of one step's node.
func dagNode(t *testing.T, body, step string) string {
	t.Helper()
	start := regexp.MustCompile(`<g class="node [^"]*" data-step="` + step + `"`).FindStringIndex(body)
	require.NotNil(t, start, "node %s", step)
	end := strings.Index(body[start[0]:], "\n  </g>")
	require.Greater(t, end, 0)
	return body[start[0] : start[0]+end]
}

func TestRunPageCountsAMapsElementsByStateInItsNode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run := b.Start(t, "probe_map", `{"n": 5}`)
	b.succeed(t, run, "split", `{"items": [1, 2, 3, 4, 5]}`)
	b.succeed(t, run, "square[0]", `1`)
	b.succeed(t, run, "square[1]", `4`)
	b.claim(t, run, "square[2]")

	body := b.page(t, fmt.Sprintf("/runs/%d", run))
	square := dagNode(t, body, "square")
	require.Contains(t, square, `<g class="node s-running map" data-step="square" data-status="running"`)
	require.Contains(t, square, `<rect class="stack"`, "drawn as a stack of boxes")
	require.Contains(t, square, `<text class="count" x="188" y="23" text-anchor="end">×5</text>`)
	require.Contains(t, square, `<text class="status" x="18" y="40">running · 2/5</text>`)
	require.Contains(t, square, `<text class="detail" x="18" y="55">1 running · 2 queued</text>`)
	require.Contains(t, square, `<g class="elements" data-elements="succeeded:2 running:1 queued:2">`)
	require.Contains(t, square, `<title>square: running · 2/5 (1 running · 2 queued); map over split.items; 2/5 elements succeeded, 1 running, 2 queued</title>`)
	require.NotContains(t, dagNode(t, body, "split"), "elements", "an ordinary step has no bar")
	require.Contains(t, stepSection(t, body, "square"), `<span class="muted elements-text">2/5 elements</span>`)
	require.Contains(t, body, `<span class="key key-map"><i></i>map step, its elements by state</span>`)
	require.NotContains(t, body, `square[0]`, "the steps are the definition's: a 10,000-element map is one row, not 10,000")
}

func TestRunPageMarksACacheHitAndASkippedBranch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.Start(t, "probe_cached", `{"key": "k"}`)
	b.succeed(t, first, "load", `{"key": "k", "computed_by": 1}`)
	hit := b.Start(t, "probe_cached", `{"key": "k"}`)
	branch := b.Start(t, "probe_branch", `{"size": "big"}`)
	b.succeed(t, branch, "check", `{"size": "big"}`)

	body := b.page(t, fmt.Sprintf("/runs/%d", hit))
	load := dagNode(t, body, "load")
	require.Contains(t, load, `data-status="succeeded" data-layer="0" data-mark="cached"`)
	require.Contains(t, load, `<text x="28" y="12.5" text-anchor="middle">cached</text>`)
	require.Contains(t, load, `<text class="detail" x="18" y="58">output from the cache</text>`)
	require.Contains(t, stepSection(t, body, "load"), `<b class="mark">cached</b>`)
	require.NotContains(t, dagNode(t, b.page(t, fmt.Sprintf("/runs/%d", first)), "load"), "data-mark", "the run that computed it is no hit")

	body = b.page(t, fmt.Sprintf("/runs/%d", branch))
	require.Equal(t, map[string]string{"check": "succeeded", "small": "skipped", "big": "queued", "finish": "waiting"}, nodeStatuses(body))
	require.Contains(t, dagNode(t, body, "small"), `<text class="detail" x="18" y="58">not met: input.size = "small"</text>`)
	require.Regexp(t, `<path class="edge skipped" d="[^"]*" data-from="check" data-to="small"`, body, "the arrow into the skipped branch is dashed")
	require.Regexp(t, `<path class="edge done" d="[^"]*" data-from="check" data-to="big"`, body)
}

func TestRunPageOfAForkedRunLinksItsSourceAndMarksReusedSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	src := b.Start(t, "probe_map", `{"n": 2}`)
	b.succeed(t, src, "split", `{"items": [1, 2]}`)
	b.succeed(t, src, "square[0]", `1`)
	b.succeed(t, src, "square[1]", `4`)
	b.succeed(t, src, "total", `{"sum": 5}`)
	fork := b.rerunFrom(t, src, "total")

	body := b.page(t, fmt.Sprintf("/runs/%d", fork))
	require.Contains(t, body, fmt.Sprintf(`<div id="forked"><dt>forked from</dt><dd><a href="/runs/%d">run #%d</a> at step <code>total</code></dd></div>`, src, src))
	for _, step := range []string{"split", "square"} {
		node := dagNode(t, body, step)
		require.Contains(t, node, `data-status="succeeded"`)
		require.Contains(t, node, `data-mark="reused"`, step)
		require.Contains(t, node, fmt.Sprintf(`<text class="detail" x="18" y="58">reused from run #%d</text>`, src))
		require.Contains(t, stepSection(t, body, step), `<b class="mark reused">reused</b>`)
	}
	require.NotContains(t, dagNode(t, body, "total"), "data-mark")
	require.Contains(t, body, `<span class="key"><b class="mark reused">reused</b> taken from the source run</span>`)

	require.NotContains(t, b.page(t, fmt.Sprintf("/runs/%d", src)), `id="forked"`)
}

func TestWorkflowPageMarksMapCachedAndConditionalSteps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	square := dagNode(t, b.page(t, "/workflows/probe_map"), "square")
	require.Contains(t, square, `<g class="node s-definition map" data-step="square"`)
	require.Contains(t, square, `<text class="detail" x="18" y="58">map over split.items</text>`)
	require.Contains(t, square, "<title>square: class cpu (map over split.items); 3 attempts · 5.00 s timeout</title>")

	load := dagNode(t, b.page(t, "/workflows/probe_cached"), "load")
	require.Contains(t, load, `data-mark="cached"`)
	require.Contains(t, load, `<text class="detail" x="18" y="58">cached 1h on input.key</text>`)

	big := dagNode(t, b.page(t, "/workflows/probe_branch"), "big")
	require.Contains(t, big, `<text class="detail" x="18" y="58">if input.size = "big"</text>`)
}
