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
	Steps      []struct {
		Step        string   `json:"step"`
		Status      string   `json:"status"`
		WorkerClass string   `json:"worker_class"`
		Attempt     int      `json:"attempt"`
		MaxAttempts int      `json:"max_attempts"`
		DurationMS  *float64 `json:"duration_ms"`
		Error       *string  `json:"error"`
		// Progress is the running attempt's latest report, if it made any.
		Progress *pipelines.Progress `json:"progress"`
	} `json:"steps"`
}

func (s runStatusDoc) terminal() bool {
	switch s.Status {
	case "succeeded", "failed", "cancelled", "timed_out":
		return true
	}
	return false
}

func (s runStatusDoc) progressLine() string {
	done := 0
	var parts []string
	for _, st := range s.Steps {
		if st.Status == "succeeded" || st.Status == "skipped" {
			done++
		}
		part := st.Step + ":" + st.Status
		if st.Status == "running" && st.Progress != nil {
			part += "(" + st.Progress.String() + ")"
		}
		parts = append(parts, part)
	}
	if len(s.Steps) == 0 {
		return fmt.Sprintf("run %d %s %s (%s mode)", s.ID, s.Workflow, s.Status, s.Mode)
	}
	return fmt.Sprintf("run %d %s %s %d/%d  %s", s.ID, s.Workflow, s.Status, done, len(s.Steps), strings.Join(parts, " "))
}

func printStatus(w io.Writer, s runStatusDoc) {
	fmt.Fprintf(w, "run %d  %s v%d  mode=%s  status=%s", s.ID, s.Workflow, s.Version, s.Mode, s.Status)
	if s.DurationMS != nil {
		fmt.Fprintf(w, "  %s", fmtMS(*s.DurationMS))
	}
	fmt.Fprintln(w)
	if len(s.Steps) > 0 {
		fmt.Fprintf(w, "  %-24s %-10s %-6s %-8s %10s  %s\n", "STEP", "STATUS", "CLASS", "ATTEMPT", "DURATION", "ERROR")
	}
	for _, st := range s.Steps {
		d := ""
		if st.DurationMS != nil {
			d = fmtMS(*st.DurationMS)
		}
		e := ""
		if st.Error != nil {
			e = oneLine(*st.Error, 80)
		}
		fmt.Fprintf(w, "  %-24s %-10s %-6s %3d/%-4d %10s  %s\n", st.Step, st.Status, st.WorkerClass, st.Attempt, st.MaxAttempts, d, e)
		if st.Status == "running" && st.Progress != nil {
			fmt.Fprintf(w, "  %-24s %s %s\n", "", progressBar(st.Progress.Fraction(), 30), st.Progress)
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
		raw, err := q.RunStatus(ctx, id)
		if err != nil {
			return err
		}
		var st runStatusDoc
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("decoding status: %w", err)
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

func renderDAG(name string, steps []gen.WorkflowDAGRow, format string) string {
	var b strings.Builder
	label := func(s gen.WorkflowDAGRow) string {
		l := s.Name + " [" + s.WorkerClass
		if s.MaxConcurrency != nil {
			l += fmt.Sprintf(", max %d", *s.MaxConcurrency)
		}
		return l + "]"
	}
	if format == "dot" {
		fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n", name)
		for _, s := range steps {
			fmt.Fprintf(&b, "  %q [label=%q];\n", s.Name, label(s))
		}
		for _, s := range steps {
			for _, d := range s.DependsOn {
				fmt.Fprintf(&b, "  %q -> %q;\n", d, s.Name)
			}
		}
		b.WriteString("}\n")
		return b.String()
	}
	b.WriteString("flowchart LR\n")
	for _, s := range steps {
		fmt.Fprintf(&b, "    %s[\"%s\"]\n", s.Name, label(s))
	}
	for _, s := range steps {
		for _, d := range s.DependsOn {
			fmt.Fprintf(&b, "    %s --> %s\n", d, s.Name)
		}
	}
	return b.String()
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
