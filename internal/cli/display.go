package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/pipelines"
)

// runStatusDoc is the part of qflow.status(id) the CLI shows.
type runStatusDoc struct {
	ID         int64           `json:"id"`
	Workflow   string          `json:"workflow"`
	Version    int             `json:"version"`
	Mode       string          `json:"mode"`
	Status     string          `json:"status"`
	Error      *string         `json:"error"`
	Output     json.RawMessage `json:"output"`
	DurationMS *float64        `json:"duration_ms"`
	// ForkedFrom and ForkedStep name the run this one re-runs and the step it re-runs from.
	ForkedFrom *int64    `json:"forked_from"`
	ForkedStep *string   `json:"forked_step"`
	Steps      []stepDoc `json:"steps"`
	// Reused holds the steps a forked run took from its source (ForkReused), not in the JSON.
	Reused map[string]bool `json:"-"`
}

// stepDoc is one step of qflow.status(id): a step of the definition, a map step standing for
// all its elements.
type stepDoc struct {
	Step        string   `json:"step"`
	Status      string   `json:"status"`
	WorkerClass string   `json:"worker_class"`
	Attempt     int      `json:"attempt"`
	MaxAttempts int      `json:"max_attempts"`
	DurationMS  *float64 `json:"duration_ms"`
	Error       *string  `json:"error"`
	// Progress is the running attempt's latest report, if it made any.
	Progress *pipelines.Progress `json:"progress"`
	// Cached: the output came from the step cache; the step did not run.
	Cached bool `json:"cached"`
	// Map is set for a map step once its elements exist.
	Map *mapDoc `json:"map"`
}

// mapDoc is what qflow.status says of a map step's elements.
type mapDoc struct {
	Elements int            `json:"elements"`
	ByStatus map[string]int `json:"by_status"`
	// Failed holds the first few failed elements; ByStatus["failed"] counts them all.
	Failed []struct {
		Element int    `json:"element"`
		Error   string `json:"error"`
	} `json:"failed"`
}

// elementStatuses is the order the statuses of a map's elements are listed in after the
// succeeded ones: what needs a look first.
var elementStatuses = []string{"failed", "running", "queued", "ready", "waiting", "cancelled", "skipped"}

// summary counts the elements by status: "7/10 succeeded, 2 running, 1 queued".
func (m mapDoc) summary() string {
	parts := []string{fmt.Sprintf("%d/%d succeeded", m.ByStatus["succeeded"], m.Elements)}
	for _, s := range elementStatuses {
		if n := m.ByStatus[s]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return strings.Join(parts, ", ")
}

// readStatus reads qflow.status(id) and, for a forked run, which steps it reused.
func readStatus(ctx context.Context, q *gen.Queries, id int64) (runStatusDoc, error) {
	raw, err := q.RunStatus(ctx, id)
	if err != nil {
		return runStatusDoc{}, err
	}
	var st runStatusDoc
	if err := json.Unmarshal(raw, &st); err != nil {
		return runStatusDoc{}, fmt.Errorf("decoding status of run %d: %w", id, err)
	}
	if st.ForkedFrom != nil {
		reused, err := q.ForkReused(ctx, id)
		if err != nil {
			return runStatusDoc{}, fmt.Errorf("reading the steps run %d reused: %w", id, err)
		}
		st.Reused = make(map[string]bool, len(reused))
		for _, s := range reused {
			st.Reused[s] = true
		}
	}
	return st, nil
}

func (s runStatusDoc) terminal() bool {
	switch s.Status {
	case "succeeded", "failed", "cancelled", "timed_out":
		return true
	}
	return false
}

// forkedLine says where a forked run came from; "" for any other run.
func (s runStatusDoc) forkedLine() string {
	if s.ForkedFrom == nil || s.ForkedStep == nil {
		return ""
	}
	return fmt.Sprintf("forked from run %d at step %s", *s.ForkedFrom, *s.ForkedStep)
}

func (s runStatusDoc) progressLine() string {
	done := 0
	var parts []string
	for _, st := range s.Steps {
		if st.Status == "succeeded" || st.Status == "skipped" {
			done++
		}
		part := st.Step + ":" + st.Status
		switch {
		case st.Status == "running" && st.Progress != nil:
			part += "(" + st.Progress.String() + ")"
		case st.Status == "running" && st.Map != nil:
			part += fmt.Sprintf("(%d/%d)", st.Map.ByStatus["succeeded"], st.Map.Elements)
		case st.Cached:
			part += "(cached)"
		case s.Reused[st.Step]:
			part += "(reused)"
		}
		parts = append(parts, part)
	}
	if len(s.Steps) == 0 {
		return fmt.Sprintf("run %d %s %s (%s mode)", s.ID, s.Workflow, s.Status, s.Mode)
	}
	return fmt.Sprintf("run %d %s %s %d/%d  %s", s.ID, s.Workflow, s.Status, done, len(s.Steps), strings.Join(parts, " "))
}

// notes is what the last column says of a step besides its status: how far its map got,
// where its output came from, why it did not run, its error.
func (s runStatusDoc) notes(st stepDoc) string {
	var n []string
	if st.Map != nil {
		n = append(n, "map "+st.Map.summary())
	}
	switch {
	case st.Cached:
		n = append(n, "cached")
	case s.Reused[st.Step]:
		n = append(n, fmt.Sprintf("reused from run %d", *s.ForkedFrom))
	case st.Status == "skipped" && st.Attempt == 0:
		n = append(n, "not run: condition not met or every dependency skipped")
	}
	// A failed map step's error repeats its first failed element's, listed under it.
	if st.Error != nil && (st.Map == nil || len(st.Map.Failed) == 0) {
		n = append(n, oneLine(*st.Error, 80))
	}
	return strings.Join(n, "; ")
}

func printStatus(w io.Writer, s runStatusDoc) {
	fmt.Fprintf(w, "run %d  %s v%d  mode=%s  status=%s", s.ID, s.Workflow, s.Version, s.Mode, s.Status)
	if s.DurationMS != nil {
		fmt.Fprintf(w, "  %s", fmtMS(*s.DurationMS))
	}
	if f := s.forkedLine(); f != "" {
		fmt.Fprintf(w, "  %s", f)
	}
	fmt.Fprintln(w)
	if len(s.Steps) > 0 {
		fmt.Fprintf(w, "  %-24s %-10s %-6s %-8s %10s  %s\n", "STEP", "STATUS", "CLASS", "ATTEMPT", "DURATION", "NOTES")
	}
	for _, st := range s.Steps {
		d := ""
		if st.DurationMS != nil {
			d = fmtMS(*st.DurationMS)
		}
		line := fmt.Sprintf("  %-24s %-10s %-6s %3d/%-4d %10s  %s", st.Step, st.Status, st.WorkerClass, st.Attempt, st.MaxAttempts, d, s.notes(st))
		fmt.Fprintln(w, strings.TrimRight(line, " "))
		if st.Status == "running" && st.Progress != nil {
			fmt.Fprintf(w, "  %-24s %s %s\n", "", progressBar(st.Progress.Fraction(), 30), st.Progress)
		}
		if st.Map != nil {
			for _, f := range st.Map.Failed {
				fmt.Fprintf(w, "  %-24s element %d failed: %s\n", "", f.Element, oneLine(f.Error, 80))
			}
			if more := st.Map.ByStatus["failed"] - len(st.Map.Failed); more > 0 {
				fmt.Fprintf(w, "  %-24s and %d more: SELECT task, error FROM qflow.step_overview WHERE run_id = %d AND def_step = '%s' AND status = 'failed'\n",
					"", more, s.ID, st.Step)
			}
		}
	}
	if s.Error != nil {
		fmt.Fprintf(w, "error: %s\n", *s.Error)
	}
	if len(s.Output) > 0 && string(s.Output) != "null" {
		fmt.Fprintf(w, "output: %s\n", s.Output)
	}
}

// watch follows a run until it finishes: a table redrawn in place on a terminal, a line per
// change otherwise. It fails (exit status 1) unless the run succeeded.
func watch(ctx context.Context, env Env, q *gen.Queries, id int64) error {
	return watchOn(ctx, env, q, id, isTerminal(env.Stdout))
}

// watchOn is watch with the terminal decision made by the caller (tests draw "on a terminal"
// into a buffer).
func watchOn(ctx context.Context, env Env, q *gen.Queries, id int64, tty bool) error {
	var last string
	drawn := 0
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := readStatus(ctx, q, id)
		if err != nil {
			return err
		}
		if tty {
			var b strings.Builder
			printStatus(&b, st)
			if frame := b.String(); frame != last {
				if drawn > 0 {
					fmt.Fprintf(env.Stdout, "\x1b[%dA\x1b[J", drawn)
				}
				fmt.Fprint(env.Stdout, frame)
				drawn = strings.Count(frame, "\n")
				last = frame
			}
		} else if line := st.progressLine(); line != last {
			fmt.Fprintln(env.Stdout, line)
			last = line
		}
		if st.terminal() {
			if !tty {
				printStatus(env.Stdout, st)
			}
			if st.Status != "succeeded" {
				return exitError(1)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws a fraction as [#####.....]; an unknown one as [  ?  ].
func progressBar(f float64, width int) string {
	if f < 0 {
		return "[" + strings.Repeat(" ", (width-1)/2) + "?" + strings.Repeat(" ", width/2) + "]"
	}
	n := int(f*float64(width) + 0.5)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func fmtMS(ms float64) string {
	return (time.Duration(ms) * time.Millisecond).String()
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}
