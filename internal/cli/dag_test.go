package cli

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDAGMarksMapStepsCachedStepsAndConditions(t *testing.T) {
	t.Parallel()
	b := setup(t)

	code, out, stderr := b.qflow("dag", "probe_map")
	require.Zero(t, code, stderr)
	require.Equal(t, strings.Join([]string{
		"flowchart LR",
		`    split["split [cpu]"]`,
		`    square[["square [cpu]<br/>map over split.items"]]`,
		`    total["total [cpu]"]`,
		"    split --> square", "    square --> total", "",
	}, "\n"), out)
	_, out, _ = b.qflow("dag", "probe_map", "--format", "dot")
	require.Contains(t, out, `"square" [label="square [cpu]\nmap over split.items", shape=box3d];`)

	_, out, _ = b.qflow("dag", "probe_cached")
	require.Contains(t, out, `    load[("load [cpu]<br/>cached 1h on input.key")]`)
	require.Contains(t, out, `    use["use [cpu]"]`)
	_, out, _ = b.qflow("dag", "probe_cached", "--format", "dot")
	require.Contains(t, out, `"load" [label="load [cpu]\ncached 1h on input.key", shape=cylinder];`)

	_, out, _ = b.qflow("dag", "probe_branch")
	require.Contains(t, out, `    big["big [cpu]<br/>if input.size = #quot;big#quot;"]`)
	_, out, _ = b.qflow("dag", "probe_branch", "--format", "dot")
	require.Contains(t, out, `"big" [label="big [cpu]\nif input.size = \"big\""];`)
}

func TestDAGOfARunShowsEachStepsStateInIt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	branch := b.Start(t, "probe_branch", `{"size": "big"}`)
	b.succeed(t, branch, "check", `{"size": "big"}`)
	mapped := b.Start(t, "probe_map", `{"n": 3}`)
	b.succeed(t, mapped, "split", `{"items": [1, 2, 3]}`)
	b.succeed(t, mapped, "square[1]", `4`)

	code, out, stderr := b.qflow("dag", strconv.FormatInt(branch, 10))
	require.Zero(t, code, stderr)
	require.Contains(t, out, fmt.Sprintf("    %%%% run %d of probe_branch v1: running\n", branch))
	require.Contains(t, out, `    check["check [cpu]<br/>succeeded, attempt 1/3"]:::succeeded`)
	require.Contains(t, out, `    small["small [cpu]<br/>if input.size = #quot;small#quot;<br/>skipped"]:::skipped`)
	require.Contains(t, out, `    big["big [cpu]<br/>if input.size = #quot;big#quot;<br/>queued, attempt 1/3"]:::queued`)
	require.Contains(t, out, "    check -.-> small\n", "the edge into the skipped branch is dotted")
	require.Contains(t, out, "    check --> big\n")
	require.Contains(t, out, "    classDef skipped fill:#f7f8fa,stroke:#7b8794,stroke-dasharray:5 4\n")

	_, out, _ = b.qflow("dag", strconv.FormatInt(mapped, 10), "--format", "dot")
	require.Contains(t, out, `"square" [label="square [cpu]\nmap over split.items ×3\nrunning: 1/3 succeeded, 2 queued", shape=box3d, style="filled", fillcolor="#e3efff", color="#1b5fc1"];`)

	code, _, stderr = b.qflow("dag", "99")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "run 99 does not exist")
}
