package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/internal/enginetest"
	"github.com/quantumflow/qflow/worker"
)

type testBundle struct {
	*enginetest.Env
	// env is the commands' environment besides DATABASE_URL.
	env map[string]string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	b := &testBundle{Env: enginetest.New(t, enginetest.Probes)}
	code, _, stderr := b.qflow("migrate")
	require.Zero(t, code, stderr)
	return b
}

// qflow runs a command in-process and returns its exit code and output.
func (b *testBundle) qflow(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Main(args, Env{Stdout: &stdout, Stderr: &stderr, Registry: b.Registry, Getenv: func(k string) string {
		if k == "DATABASE_URL" {
			return b.URL
		}
		return b.env[k]
	}})
	return code, stdout.String(), stderr.String()
}

func TestStartWaitShowsProgressAndResult(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "cli-test"})

	code, out, stderr := b.qflow("start", "probe_diamond", "--input", `{"seed": 1, "sleep_ms": 50}`, "--wait")
	require.Zero(t, code, stderr)
	require.Contains(t, out, "run 1 started")
	require.Contains(t, out, "run 1 probe_diamond running")               // progress lines while it runs
	require.Contains(t, out, "status=succeeded")                          // the final table
	require.Contains(t, out, `output: {"d": {"step": "d", "value": 29}}`) // and the output

	code, out, _ = b.qflow("start", "probe_chain", "--input", `{"fatal": ["a"]}`, "--wait")
	require.Equal(t, 1, code, "a failed run makes --wait fail")
	require.Contains(t, out, "error: step a failed permanently")

	code, out, _ = b.qflow("status", "1")
	require.Zero(t, code)
	require.Regexp(t, `(?m)^  d +succeeded +cpu +1/3`, out)
	code, out, _ = b.qflow("status", "1", "--json")
	require.Zero(t, code)
	require.Contains(t, out, `"status": "succeeded"`)

	code, out, _ = b.qflow("list")
	require.Zero(t, code)
	require.Regexp(t, `probe_chain +1 +0 +0 +0 +1 +0 +0  a b c d e`, out)
	require.Regexp(t, `probe_diamond +1 +0 +0 +1 +0 +0 +0  a b c d`, out)

	code, out, _ = b.qflow("retry", "2")
	require.Zero(t, code)
	require.Contains(t, out, "run 2 is running again")
}

func TestCancelAndErrorsFromTheCLI(t *testing.T) {
	t.Parallel()
	b := setup(t)

	code, out, _ := b.qflow("start", "probe_chain", "--idempotency-key", "k1")
	require.Zero(t, code)
	require.Contains(t, out, "run 1 started")
	code, out, _ = b.qflow("start", "probe_chain", "--idempotency-key", "k1")
	require.Zero(t, code)
	require.Contains(t, out, "run 1 started", "the same key returns the same run")

	code, out, _ = b.qflow("cancel", "1")
	require.Zero(t, code)
	require.Contains(t, out, "run 1 cancelled")
	code, out, _ = b.qflow("cancel", "1")
	require.Zero(t, code)
	require.Contains(t, out, "had already finished")

	code, _, stderr := b.qflow("start", "nope")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `qflow start: qflow: unknown workflow "nope" (hint: SELECT name FROM qflow.list_workflows() shows the registered workflows)`)
	code, _, stderr = b.qflow("start", "probe_chain", "--input", `{"x":`)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--input is not valid JSON")
	code, _, stderr = b.qflow("start", "probe_chain", "--input", `[1]`)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "run input must be a JSON object")
	code, _, stderr = b.qflow("status", "99")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "run 99 does not exist")
	code, _, stderr = b.qflow("retry", "abc")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `run id must be a positive integer, got "abc"`)
	code, _, stderr = b.qflow("bogus")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, `unknown command "bogus"`)
	code, _, stderr = b.qflow("worker", "--classes", "cpu", "--max-workers", "0")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--max-workers must be at least 1")
}

func TestDAGPrintsMermaidAndDot(t *testing.T) {
	t.Parallel()
	b := setup(t)

	code, out, _ := b.qflow("dag", "probe_diamond")
	require.Zero(t, code)
	require.Equal(t, strings.Join([]string{
		"flowchart LR",
		`    a["a [cpu]"]`, `    b["b [cpu]"]`, `    c["c [cpu]"]`, `    d["d [cpu]"]`,
		"    a --> b", "    a --> c", "    b --> d", "    c --> d", "",
	}, "\n"), out)

	code, out, _ = b.qflow("dag", "probe_chain", "--format", "dot")
	require.Zero(t, code)
	require.Contains(t, out, `digraph "probe_chain" {`)
	require.Contains(t, out, `"d" -> "e";`)

	code, _, stderr := b.qflow("dag", "nope")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, `unknown workflow "nope"`)
}

func TestDATABASEURLIsRequiredAndNeverEchoed(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	code := Main([]string{"list"}, Env{Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }})
	require.Equal(t, 1, code)
	require.Contains(t, stderr.String(), "DATABASE_URL is not set")

	stderr.Reset()
	code = Main([]string{"list"}, Env{Stdout: io.Discard, Stderr: &stderr, Getenv: func(k string) string {
		return "postgres://alice:s3cret@127.0.0.1:1/db?connect_timeout=2"
	}})
	require.Equal(t, 1, code)
	require.NotContains(t, stderr.String(), "s3cret")
	require.Contains(t, stderr.String(), "postgres://alice@127.0.0.1:1/db")
}

func TestWatchRedrawsInPlaceOnATerminal(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.StartWorker(t, worker.Config{ID: "cli-test"})
	id := b.Start(t, "probe_chain", `{"sleep_ms": 300}`)

	var out bytes.Buffer
	env := Env{Stdout: &out, Stderr: io.Discard}
	require.NoError(t, watchOn(b.Ctx, env, gen.New(b.Pool), id, true))

	text := out.String()
	// Each new frame first moves the cursor up over the previous one and clears below it.
	require.Contains(t, text, "\x1b[J")
	require.Regexp(t, `\x1b\[\d+A\x1b\[J`, text)
	frames := strings.Split(text, "\x1b[J")
	require.Greater(t, len(frames), 2, "the table was redrawn as steps progressed")
	require.Contains(t, frames[len(frames)-1], "status=succeeded")
	require.NotContains(t, frames[len(frames)-1], "running", "the last frame is the final state only")
}
