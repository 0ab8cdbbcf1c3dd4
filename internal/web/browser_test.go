package web_test

import (
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines/architecture"
	"github.com/quantumflow/qflow/worker"
)

// The browser test renders real pages in headless Chromium: the DOM it builds must show each
// step's state, and the screenshots it saves are for a person to look at.
//
// Chromium comes from Debian (internal/web/testdata/install-chromium.sh, run by `make test-ui`).
// Without it the test skips, unless QFLOW_REQUIRE_CHROMIUM is set, as `make test` does: then
// a missing browser is a failure, not a silent pass.

// chromium returns the browser's path, or skips (or fails) the test when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if v := os.Getenv("QFLOW_REQUIRE_CHROMIUM"); v != "" && v != "0" {
		t.Fatal("chromium is not installed and QFLOW_REQUIRE_CHROMIUM is set: run internal/web/testdata/install-chromium.sh")
	}
	t.Skip("chromium is not installed: run internal/web/testdata/install-chromium.sh (or `make test-ui`) to run the browser test")
	return ""
}

// browse runs headless Chromium once with extra arguments on url and returns its stdout.
func browse(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1",
		"--user-data-dir=" + t.TempDir(),
	}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium %v: %s", extra, stderr.String())
	return string(out)
}

// limitedBuffer keeps the last 4 KiB of Chromium's chatter for a failure message.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > 4096 {
		l.b = l.b[len(l.b)-4096:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

var (
	svgNodeRE = regexp.MustCompile(`<g [^>]*class="node [^"]*"[^>]*>`)
	stepAttr  = regexp.MustCompile(`data-step="([^"]+)"`)
	statAttr  = regexp.MustCompile(`data-status="([^"]+)"`)
)

// domNodeStatuses reads the DAG node states from a DOM as Chromium serialised it.
func domNodeStatuses(dom string) map[string]string {
	out := map[string]string{}
	for _, tag := range svgNodeRE.FindAllString(dom, -1) {
		step, status := stepAttr.FindStringSubmatch(tag), statAttr.FindStringSubmatch(tag)
		if step != nil && status != nil {
			out[step[1]] = status[1]
		}
	}
	return out
}

// screenshotDir is QFLOW_SCREENSHOT_DIR, else a fresh folder under the system temp dir that
// outlives the test, so a person can open the pictures afterwards.
func screenshotDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("QFLOW_SCREENSHOT_DIR"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		abs, err := filepath.Abs(dir)
		require.NoError(t, err)
		return abs
	}
	dir, err := os.MkdirTemp("", "qflow-ui-screenshots-")
	require.NoError(t, err)
	return dir
}

func TestBrowserShowsStepStatesAndTakesScreenshots(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "web-test-worker"})
	ok := b.Start(t, "probe_diamond", `{"fail": {"b": 1}, "sleep_ms": 40}`)
	failed := b.Start(t, "probe_diamond", `{"fatal": ["c"], "sleep_ms": {"b": 1000}}`)
	chain := b.Start(t, "probe_chain", `{"seed": 1, "sleep_ms": 20}`)
	b.WaitRuns(t, 30*time.Second)

	dom := browse(t, bin, fmt.Sprintf("%s/runs/%d", b.srv.URL, ok), "--dump-dom")
	require.Equal(t, map[string]string{"a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "succeeded"}, domNodeStatuses(dom))
	require.Regexp(t, `data-attempt="1" data-status="failed"`, dom, "b's failed first attempt is listed")

	dom = browse(t, bin, fmt.Sprintf("%s/runs/%d", b.srv.URL, failed), "--dump-dom")
	nodes := domNodeStatuses(dom)
	require.Equal(t, "succeeded", nodes["a"])
	require.Equal(t, "failed", nodes["c"])
	require.Equal(t, "cancelled", nodes["d"])
	require.Contains(t, dom, "step c is fatal by request")

	dom = browse(t, bin, b.srv.URL+"/", "--dump-dom")
	require.Regexp(t, fmt.Sprintf(`data-run="%d" data-status="failed"`, failed), dom)
	require.Regexp(t, fmt.Sprintf(`data-run="%d" data-status="succeeded"`, chain), dom)

	dir := screenshotDir(t)
	for name, path := range map[string]string{
		"run-succeeded.png": fmt.Sprintf("/runs/%d", ok),
		"run-failed.png":    fmt.Sprintf("/runs/%d", failed),
		"run-chain.png":     fmt.Sprintf("/runs/%d", chain),
		"index.png":         "/",
		"workflow.png":      "/workflows/probe_diamond",
	} {
		img := screenshot(t, bin, b.srv.URL+path, filepath.Join(dir, name))
		if name != "index.png" {
			// These pages are taller than the window, so the bottom of the picture shows a
			// card (a blank band taller than the gap between cards means a cut picture).
			require.False(t, blankBottom(img, 40), "%s: the bottom of the window is blank", name)
		}
	}
	t.Logf("screenshots of the succeeded run %d, the failed run %d, a chain run, the index and a workflow page: %s", ok, failed, dir)
}

// Screenshot size: what a laptop shows of a page.
const shotWidth, shotHeight = 1280, 900

// screenshot saves a shotWidth×shotHeight picture of url to file and returns it.
//
// New headless Chromium sometimes applies --window-size after it paints, and then draws the
// page for a viewport 137 px shorter (the height of a browser's toolbars), leaving the bottom
// of the picture blank. So the window is made taller than the picture and the picture is
// cut from its top: the width, which drives the layout, is exact either way.
func screenshot(t *testing.T, bin, url, file string) image.Image {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "raw.png")
	browse(t, bin, url, "--screenshot="+raw, fmt.Sprintf("--window-size=%d,%d", shotWidth, shotHeight+200))
	f, err := os.Open(raw)
	require.NoError(t, err, "screenshot of %s", url)
	full, err := png.Decode(f)
	f.Close()
	require.NoError(t, err, "screenshot of %s", url)
	require.Equal(t, shotWidth, full.Bounds().Dx(), url)
	require.GreaterOrEqual(t, full.Bounds().Dy(), shotHeight, url)
	img := image.NewRGBA(image.Rect(0, 0, shotWidth, shotHeight))
	draw.Draw(img, img.Bounds(), full, full.Bounds().Min, draw.Src)
	out, err := os.Create(file)
	require.NoError(t, err)
	require.NoError(t, png.Encode(out, img))
	require.NoError(t, out.Close())
	return img
}

// blankBottom says whether the last rows of img are all one colour.
func blankBottom(img image.Image, rows int) bool {
	b := img.Bounds()
	first := img.At(b.Min.X, b.Max.Y-1)
	for y := b.Max.Y - rows; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if img.At(x, y) != first {
				return false
			}
		}
	}
	return true
}

var (
	chromeSeriesRE = regexp.MustCompile(`<path class="series [a-z]+" data-series="([a-z]+)" data-points="(\d+)"`)
	chromeCellRE   = regexp.MustCompile(`<g class="cell (?:hit|miss)" data-count="\d+">`)
)

func TestBrowserShowsTheModelRegistryAndTakesScreenshots(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	b, _ := setupModels(t)

	// The DOM Chromium builds holds the charts: both loss lines, a dot per sampled held-out
	// record, and a full confusion grid.
	dom := browse(t, bin, b.srv.URL+"/models/complexity/2", "--dump-dom")
	require.Equal(t, [][]string{{"training", "30"}, {"validation", "30"}}, submatches(chromeSeriesRE, dom))
	require.Equal(t, b.storedModel(t, "complexity", 2).report.HeldOutRows, strings.Count(dom, `<circle class="point"`))
	require.Contains(t, dom, `data-against="active v1"`)
	dom = browse(t, bin, b.srv.URL+"/models/architecture/1", "--dump-dom")
	require.Len(t, chromeCellRE.FindAllString(dom, -1), 2*len(architecture.Patterns)*len(architecture.Patterns), "held-out and cross-validated")
	dom = browse(t, bin, b.srv.URL+"/models", "--dump-dom")
	require.Contains(t, dom, fmt.Sprintf(`<tr data-version="2" data-status="%s">`, b.storedModel(t, "complexity", 2).status))

	dir := screenshotDir(t)
	for name, path := range map[string]string{
		"models.png":             "/models",
		"model-complexity.png":   "/models/complexity/2",
		"model-architecture.png": "/models/architecture/1",
	} {
		img := screenshot(t, bin, b.srv.URL+path, filepath.Join(dir, name))
		if name != "models.png" {
			require.False(t, blankBottom(img, 40), "%s: the bottom of the window is blank", name)
		}
	}
	t.Logf("screenshots of the models page, a complexity challenger and an architecture classifier: %s", dir)
}

var domElementsRE = regexp.MustCompile(`<g class="elements" data-elements="([^"]+)">`)

func TestBrowserShowsMapElementsCacheHitsSkipsAndForks(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	b := setup(t)
	mapped := b.Start(t, "probe_map", `{"n": 5}`)
	b.succeed(t, mapped, "split", `{"items": [1, 2, 3, 4, 5]}`)
	b.succeed(t, mapped, "square[0]", `1`)
	b.succeed(t, mapped, "square[1]", `4`)
	b.claim(t, mapped, "square[2]")
	branch := b.Start(t, "probe_branch", `{"size": "big"}`)
	b.succeed(t, branch, "check", `{"size": "big"}`)
	b.succeed(t, branch, "big", `{}`)
	b.succeed(t, branch, "finish", `{"path": "big"}`)
	fork := b.rerunFrom(t, branch, "finish")
	cached := b.Start(t, "probe_cached", `{"key": "k"}`)
	b.succeed(t, cached, "load", `{"key": "k", "computed_by": 1}`)
	hit := b.Start(t, "probe_cached", `{"key": "k"}`)

	dom := browse(t, bin, fmt.Sprintf("%s/runs/%d", b.srv.URL, mapped), "--dump-dom")
	require.Equal(t, "running", domNodeStatuses(dom)["square"])
	require.Equal(t, [][]string{{"succeeded:2 running:1 queued:2"}}, submatches(domElementsRE, dom))

	dom = browse(t, bin, fmt.Sprintf("%s/runs/%d", b.srv.URL, fork), "--dump-dom")
	require.Equal(t, map[string]string{"check": "succeeded", "small": "skipped", "big": "succeeded", "finish": "queued"}, domNodeStatuses(dom))
	require.Equal(t, 3, strings.Count(dom, `data-mark="reused"`), "check, small and big came from the source run")
	require.Contains(t, dom, fmt.Sprintf(`<a href="/runs/%d">run #%d</a>`, branch, branch))

	dir := screenshotDir(t)
	for name, path := range map[string]string{
		"run-map.png":      fmt.Sprintf("/runs/%d", mapped),
		"run-fork.png":     fmt.Sprintf("/runs/%d", fork),
		"run-cached.png":   fmt.Sprintf("/runs/%d", hit),
		"workflow-map.png": "/workflows/probe_map",
	} {
		screenshot(t, bin, b.srv.URL+path, filepath.Join(dir, name))
	}
	t.Logf("screenshots of a map half done, a forked branch run, a cache hit and probe_map's definition: %s", dir)
}
