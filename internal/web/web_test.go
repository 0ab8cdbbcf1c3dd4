package web_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/worker"
)

var (
	runRowRE   = regexp.MustCompile(`<tr data-run="(\d+)" data-status="([a-z_]+)">`)
	dagNodeRE  = regexp.MustCompile(`<g class="node s-[a-z_]+[a-z ]*" data-step="([a-z0-9_]+)" data-status="([a-z_]+)"`)
	attemptsRE = regexp.MustCompile(`<tr class="attempt" data-attempt="(\d+)" data-status="([a-z_]+)">`)
)

// listedRuns returns the run ids of a runs table, in page order, with their statuses.
func listedRuns(body string) ([]int64, []string) {
	var ids []int64
	var statuses []string
	for _, m := range runRowRE.FindAllStringSubmatch(body, -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		ids = append(ids, id)
		statuses = append(statuses, m[2])
	}
	return ids, statuses
}

// nodeStatuses returns the status of every DAG node of a page.
func nodeStatuses(body string) map[string]string {
	out := map[string]string{}
	for _, m := range dagNodeRE.FindAllStringSubmatch(body, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// stepSection returns the steps-table rows of one step (its row and its attempts).
func stepSection(t *testing.T, body, step string) string {
	t.Helper()
	start := strings.Index(body, `<tbody class="step" data-step="`+step+`"`)
	require.GreaterOrEqual(t, start, 0, "step %s in the steps table", step)
	end := strings.Index(body[start:], "</tbody>")
	require.Greater(t, end, 0)
	return body[start : start+end]
}

func TestIndexListsRunsNewestFirstWithFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// No worker: the runs stay live, which is all the list needs.
	chain1 := b.Start(t, "probe_chain", "{}")
	diamond := b.Start(t, "probe_diamond", "{}")
	chain2 := b.Start(t, "probe_chain", `{"seed": 2}`)
	b.Exec(t, "SELECT qflow.cancel_run($1)", chain1)

	code, body := b.get(t, "/")
	require.Equal(t, http.StatusOK, code)
	ids, statuses := listedRuns(body)
	require.Equal(t, []int64{chain2, diamond, chain1}, ids, "newest first")
	require.Equal(t, []string{"running", "running", "cancelled"}, statuses)
	require.Contains(t, body, `<tr data-workflow="probe_chain">`)
	require.Contains(t, body, `<a class="strong" href="/workflows/probe_diamond">probe_diamond</a>`)
	require.Contains(t, body, fmt.Sprintf(`href="/runs/%d"`, chain2))
	require.Contains(t, body, `<meta http-equiv="refresh" content="2">`, "live runs on the page: it refreshes")
	require.NotContains(t, body, "read replica", "the primary is current: only a replica's staleness is shown")

	for _, c := range []struct {
		query string
		want  []int64
	}{
		{"?workflow=probe_chain", []int64{chain2, chain1}},
		{"?workflow=probe_diamond&status=running", []int64{diamond}},
		{"?status=cancelled", []int64{chain1}},
		{"?mode=workflow&limit=2", []int64{chain2, diamond}},
		{"?mode=legacy", nil},
		{"?workflow=nothing_here", nil},
	} {
		code, body := b.get(t, "/"+c.query)
		require.Equal(t, http.StatusOK, code, c.query)
		ids, _ := listedRuns(body)
		require.Equal(t, c.want, ids, c.query)
		if c.want == nil {
			require.Contains(t, body, "No run matches", c.query)
		}
	}
	_, body = b.get(t, "/?status=cancelled")
	require.NotContains(t, body, `http-equiv="refresh"`, "nothing live shown, nothing to refresh")
	require.Contains(t, body, `<option value="cancelled" selected>`, "the form shows the filter in force")

	for _, bad := range []string{"?status=exploded", "?mode=turbo", "?limit=0", "?limit=abc", "?limit=100000"} {
		code, body := b.get(t, "/"+bad)
		require.Equal(t, http.StatusBadRequest, code, bad)
		require.Contains(t, body, "400 · Bad Request", bad)
	}
}

func TestRunPageDrawsTheDAGWithStepsAndAttempts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "web-test-worker"})
	ok := b.Start(t, "probe_diamond", `{"fail": {"b": 1}}`)
	failed := b.Start(t, "probe_diamond", `{"fatal": ["c"], "sleep_ms": {"b": 1000}}`)
	b.WaitRuns(t, 30*time.Second)

	code, body := b.get(t, fmt.Sprintf("/runs/%d", ok))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, fmt.Sprintf("Run #%d", ok))
	require.Equal(t, map[string]string{"a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "succeeded"}, nodeStatuses(body))
	require.Equal(t, 4, strings.Count(body, `<path class="edge done"`), "four edges, all travelled")
	require.Contains(t, body, `data-from="a" data-to="b"`)
	require.Contains(t, body, "attempt 2/3", "b's node shows its retry")
	attempts := attemptsRE.FindAllStringSubmatch(stepSection(t, body, "b"), -1)
	require.Len(t, attempts, 2)
	require.Equal(t, []string{"1", "failed"}, attempts[0][1:])
	require.Equal(t, []string{"2", "succeeded"}, attempts[1][1:])
	require.Contains(t, stepSection(t, body, "b"), "fails attempt 1 of its first 1 by request")
	require.Contains(t, stepSection(t, body, "b"), "web-test-worker")
	require.Contains(t, body, "&#34;value&#34;: 13", "the output, indented: d = 13")
	require.NotContains(t, body, `http-equiv="refresh"`, "a finished run does not refresh")

	code, body = b.get(t, fmt.Sprintf("/runs/%d", failed))
	require.Equal(t, http.StatusOK, code)
	nodes := nodeStatuses(body)
	require.Equal(t, "succeeded", nodes["a"])
	require.Equal(t, "failed", nodes["c"])
	require.Equal(t, "cancelled", nodes["b"], "the failure cancelled b, still sleeping")
	require.Equal(t, "cancelled", nodes["d"])
	require.Contains(t, body, `<span class="badge s-failed">failed</span>`)
	require.Contains(t, body, `id="run-error"`)
	require.Contains(t, body, "step c is fatal by request")
	require.Contains(t, body, "No output: the run has not succeeded.")

	_, body = b.get(t, "/")
	ids, statuses := listedRuns(body)
	require.Equal(t, []int64{failed, ok}, ids)
	require.Equal(t, []string{"failed", "succeeded"}, statuses)
}

func TestRunPageOfALegacyRunShowsTheDefinition(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.Exec(t, "INSERT INTO qflow.rollouts (workflow, enabled) VALUES ('probe_chain', false)")
	run := b.Start(t, "probe_chain", "{}")

	code, body := b.get(t, fmt.Sprintf("/runs/%d", run))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "Legacy mode runs the whole chain as one job")
	require.Equal(t, map[string]string{"a": "untracked", "b": "untracked", "c": "untracked", "d": "untracked", "e": "untracked"}, nodeStatuses(body))
	require.NotContains(t, body, `id="steps"`, "no step rows, no steps table")
	require.Contains(t, body, `<meta http-equiv="refresh" content="2">`, "a pending run refreshes")
}

func TestRunPageRefusesBadAndUnknownIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for path, want := range map[string]int{
		"/runs/abc":           http.StatusBadRequest,
		"/runs/0":             http.StatusBadRequest,
		"/runs/-4":            http.StatusBadRequest,
		"/runs/1e3":           http.StatusBadRequest,
		"/runs/424242":        http.StatusNotFound,
		"/workflows/nope":     http.StatusNotFound,
		"/workflows/Bad-Name": http.StatusNotFound,
		"/no/such/page":       http.StatusNotFound,
	} {
		code, body := b.get(t, path)
		require.Equal(t, want, code, path)
		require.Contains(t, body, fmt.Sprintf(`data-status-code="%d"`, want), path)
		require.Contains(t, body, `href="/static/style.css"`, "error pages look like the rest")
	}
	_, body := b.get(t, "/runs/424242")
	require.Contains(t, body, "Run 424242 does not exist.")

	resp, err := http.Post(b.srv.URL+"/", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "the view is read-only")

	code, css := b.get(t, "/static/style.css")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, css, "svg.dag")
}

func TestWorkflowPageShowsDefinitionAndStats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Three runs of the last hour with exact durations (100 and 300 ms succeeded, 1 s failed),
	// and one of two days ago that only the 7-day window sees.
	for _, r := range []struct {
		status string
		ageMS  int
		ms     int
	}{{"succeeded", 60_000, 100}, {"succeeded", 120_000, 300}, {"failed", 180_000, 1000}, {"succeeded", 48 * 3_600_000, 5000}} {
		id := b.Start(t, "probe_diamond", "{}")
		b.Exec(t, `UPDATE qflow.runs SET status = $2, remaining_steps = 0,
		               created_at = now() - $3::bigint * interval '1 millisecond', started_at = now() - $3::bigint * interval '1 millisecond',
		               finished_at = now() - ($3::bigint - $4::bigint) * interval '1 millisecond'
		         WHERE id = $1`, id, r.status, r.ageMS, r.ms)
		b.Exec(t, `INSERT INTO qflow.step_attempts (run_id, step, attempt, status, started_at, finished_at)
		           VALUES ($1, 'a', 1, 'failed', now() - interval '1 minute', now() - interval '1 minute' + interval '40 ms'),
		                  ($1, 'a', 2, 'succeeded', now() - interval '1 minute', now() - interval '1 minute' + interval '20 ms')`, id)
	}

	code, body := b.get(t, "/workflows/probe_diamond")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<h1>probe_diamond <span class="version">v1</span></h1>`)
	require.Equal(t, map[string]string{"a": "definition", "b": "definition", "c": "definition", "d": "definition"}, nodeStatuses(body))
	def := body[strings.Index(body, `id="definition"`):]
	require.Regexp(t, `<tr data-step="d">\s*<td class="strong">d</td>\s*<td>b, c</td>\s*<td>cpu</td>\s*<td class="num">3</td>\s*<td class="num">100 ms</td>\s*<td class="num">2.00 s</td>\s*<td class="num">5.00 s</td>`, def)
	require.Contains(t, def, "— (root)")

	stats := body[strings.Index(body, `id="workflow-stats"`):]
	require.Regexp(t, `<span class="v">3</span><span class="k">runs</span>`, stats)
	require.Contains(t, stats, `<span class="v">66.7%</span><span class="k">success rate</span>`)
	require.Contains(t, stats, `<span class="v bad">33.3%</span><span class="k">error rate</span>`)
	require.Contains(t, stats, `<span class="v">300 ms</span><span class="k">p50 duration</span>`)
	require.Contains(t, stats, `<span class="v">930 ms</span><span class="k">p95 duration</span>`, "0.9 of the way from 300 to 1000")
	stepA := stats[strings.Index(stats, `<tr data-step="a">`):]
	require.Regexp(t, `^<tr data-step="a">\s*<td class="strong">a</td>\s*<td class="num">3</td>\s*<td class="num">6</td>\s*<td class="num">3</td>`, stepA)
	require.Contains(t, stepA[:strings.Index(stepA, "</tr>")], "50.0%")

	_, body = b.get(t, "/workflows/probe_diamond?window=7d")
	require.Contains(t, body, `<a href="/workflows/probe_diamond?window=7d" class="active">7 days</a>`)
	require.Regexp(t, `<span class="v">4</span><span class="k">runs</span>`, body)
	ids, _ := listedRuns(body)
	require.Len(t, ids, 4, "recent runs")

	code, body = b.get(t, "/workflows/probe_diamond?window=2y")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "Unknown stats window")

	_, body = b.get(t, "/")
	row := body[strings.Index(body, `<tr data-workflow="probe_diamond">`):]
	require.Regexp(t, `^<tr data-workflow="probe_diamond">[\s\S]*?<td class="num">3</td>\s*<td class="num">66.7%</td>\s*<td class="num">930 ms</td>`, row,
		"the index shows the 24-hour stats")
}

func TestRunPageShowsTheRunningStepsProgress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run := b.Start(t, "probe_chain", "{}")
	// A worker "trainer" runs step a and reports how far it got, as a worker's progress loop does.
	b.Exec(t, `SELECT * FROM qflow.claim_steps(jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1)), 'trainer')`, run)
	b.Exec(t, `SELECT qflow.report_progress('trainer', jsonb_build_array(jsonb_build_object('run_id', $1::bigint, 'step', 'a', 'attempt', 1,
	               'progress', '{"done": 12, "total": 48, "unit": "epoch", "metrics": {"loss": 0.5}, "eta_ms": 81000}'::jsonb)))`, run)

	code, body := b.get(t, fmt.Sprintf("/runs/%d", run))
	require.Equal(t, http.StatusOK, code)
	a := stepSection(t, body, "a")
	require.Contains(t, a, `<progress value="12" max="48"></progress>`)
	require.Contains(t, a, "epoch 12/48 (25%) · loss 0.5 · ETA 1m21s")
	require.NotContains(t, stepSection(t, body, "b"), "<progress", "a waiting step shows none")
}
