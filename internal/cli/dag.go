package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/quantumflow/qflow/gen"
	"github.com/quantumflow/qflow/internal/web"
)

// dagNode is a step as `qflow dag` draws it.
type dagNode struct {
	name  string
	lines []string // the label, a line each: name and class, then marks, then the run's state
	// shape: "map" for a map step, "cached" for a cached one, "" for a plain box.
	shape string
	// status is the step's status in the run drawn; "" when the definition is.
	status string
}

type stepColour struct{ status, fill, stroke string }

// stepColours are the status colours of the web view (fill, then stroke), so a DAG pasted into
// a document reads like the run page.
var stepColours = []stepColour{
	{"waiting", "#f2f4f7", "#5f6b78"},
	{"ready", "#fff6d6", "#8a6100"},
	{"queued", "#fff2c2", "#8a6100"},
	{"running", "#e3efff", "#1b5fc1"},
	{"succeeded", "#e2f6e8", "#1c7c3c"},
	{"failed", "#fde8e8", "#c62828"},
	{"cancelled", "#e7ebef", "#4d5966"},
	{"skipped", "#f7f8fa", "#7b8794"},
}

// dagNodes labels each step with what the definition says of it (class, limit, what a map step
// maps over, the cache, the condition, on_failure) and, when run is set, its state in the run.
func dagNodes(steps []gen.DAGStepsRow, run *runStatusDoc) []dagNode {
	states := map[string]stepDoc{}
	if run != nil {
		for _, st := range run.Steps {
			states[st.Step] = st
		}
	}
	nodes := make([]dagNode, 0, len(steps))
	for _, s := range steps {
		st, inRun := states[s.Name]
		first := s.Name + " [" + s.WorkerClass
		if s.MaxConcurrency != nil {
			first += fmt.Sprintf(", max %d", *s.MaxConcurrency)
		}
		n := dagNode{name: s.Name, lines: []string{first + "]"}}
		if l := web.MapText(s.MapOver); l != "" {
			n.shape = "map"
			if inRun && st.Map != nil {
				l += fmt.Sprintf(" ×%d", st.Map.Elements)
			}
			n.lines = append(n.lines, l)
		}
		if l := web.CacheText(s.CacheTtlMs, s.CacheKey); l != "" {
			if n.shape == "" {
				n.shape = "cached"
			}
			n.lines = append(n.lines, l)
		}
		if c := web.ConditionText(s.Condition); c != "" {
			n.lines = append(n.lines, "if "+c)
		}
		if s.OnFailure == "skip" {
			n.lines = append(n.lines, "on failure: skip")
		}
		if inRun {
			n.status = st.Status
			n.lines = append(n.lines, run.stateLine(st))
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// stateLine is a step's state in a run, for its node.
func (s runStatusDoc) stateLine(st stepDoc) string {
	l := strings.ReplaceAll(st.Status, "_", " ")
	switch {
	case st.Map != nil:
		l += ": " + st.Map.summary()
	case st.Cached:
		l += ", cached"
	case s.Reused[st.Step]:
		l += fmt.Sprintf(", reused from run %d", *s.ForkedFrom)
	case st.Attempt > 0:
		l += fmt.Sprintf(", attempt %d/%d", st.Attempt, st.MaxAttempts)
	}
	return l
}

// renderDAG draws a workflow's steps as Mermaid or DOT; with run set, each step is coloured
// by its status in that run and edges into skipped steps are dashed. A map step is a
// subroutine box (Mermaid) or a 3-D box (DOT), a cached one a cylinder.
func renderDAG(name string, steps []gen.DAGStepsRow, run *runStatusDoc, format string) string {
	nodes := dagNodes(steps, run)
	status := map[string]string{}
	for _, n := range nodes {
		status[n.name] = n.status
	}
	var b strings.Builder
	if format == "dot" {
		fmt.Fprintf(&b, "digraph %q {\n  rankdir=LR;\n", name)
		if run != nil {
			fmt.Fprintf(&b, "  // %s\n", run.caption())
		}
		for _, n := range nodes {
			attrs := []string{fmt.Sprintf("label=%q", strings.Join(n.lines, "\n"))}
			switch n.shape {
			case "map":
				attrs = append(attrs, "shape=box3d")
			case "cached":
				attrs = append(attrs, "shape=cylinder")
			}
			if i := slices.IndexFunc(stepColours, func(c stepColour) bool { return c.status == n.status }); i >= 0 {
				style := "filled"
				if n.status == "skipped" {
					style = "filled,dashed"
				}
				attrs = append(attrs, fmt.Sprintf("style=%q, fillcolor=%q, color=%q", style, stepColours[i].fill, stepColours[i].stroke))
			}
			fmt.Fprintf(&b, "  %q [%s];\n", n.name, strings.Join(attrs, ", "))
		}
		for _, s := range steps {
			for _, d := range s.DependsOn {
				if status[s.Name] == "skipped" {
					fmt.Fprintf(&b, "  %q -> %q [style=dashed];\n", d, s.Name)
				} else {
					fmt.Fprintf(&b, "  %q -> %q;\n", d, s.Name)
				}
			}
		}
		b.WriteString("}\n")
		return b.String()
	}
	b.WriteString("flowchart LR\n")
	if run != nil {
		fmt.Fprintf(&b, "    %%%% %s\n", run.caption())
	}
	used := map[string]bool{}
	for _, n := range nodes {
		lines := make([]string, len(n.lines))
		for i, l := range n.lines {
			lines[i] = mermaidEscape.Replace(l)
		}
		label := `"` + strings.Join(lines, "<br/>") + `"`
		switch n.shape {
		case "map":
			label = "[[" + label + "]]"
		case "cached":
			label = "[(" + label + ")]"
		default:
			label = "[" + label + "]"
		}
		class := ""
		if n.status != "" {
			class = ":::" + n.status
			used[n.status] = true
		}
		fmt.Fprintf(&b, "    %s%s%s\n", n.name, label, class)
	}
	for _, s := range steps {
		for _, d := range s.DependsOn {
			arrow := "-->"
			if status[s.Name] == "skipped" {
				arrow = "-.->"
			}
			fmt.Fprintf(&b, "    %s %s %s\n", d, arrow, s.Name)
		}
	}
	for _, c := range stepColours {
		if used[c.status] {
			fmt.Fprintf(&b, "    classDef %s fill:%s,stroke:%s", c.status, c.fill, c.stroke)
			if c.status == "skipped" {
				b.WriteString(",stroke-dasharray:5 4")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// caption names the run a DAG shows, as a comment above it.
func (s runStatusDoc) caption() string {
	c := fmt.Sprintf("run %d of %s v%d: %s", s.ID, s.Workflow, s.Version, strings.ReplaceAll(s.Status, "_", " "))
	if f := s.forkedLine(); f != "" {
		c += ", " + f
	}
	if len(s.Steps) == 0 {
		c += " (legacy mode keeps no step states)"
	}
	return c
}

// mermaidEscape keeps a label's text from being read as Mermaid syntax or HTML.
var mermaidEscape = strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;")
