package web

import (
	"fmt"
	"strings"

	"github.com/quantumflow/qflow/gen"
)

// nodeState is what a run says about one step, for its node in the DAG.
type nodeState struct {
	Status               string
	Attempt, MaxAttempts int32
	DurationMS           int64
	HasDuration          bool
}

// dag is a laid-out DAG ready for the SVG template.
type dag struct {
	Width, Height float64
	Nodes         []dagNode
	Arrows        []dagArrow
}

type dagNode struct {
	Placed
	// Status is the step's status in a run; "definition" on a workflow's page, "untracked"
	// for a step a legacy run keeps no row for.
	Status string
	Label  string // the node's second line: the status, or the step's worker class
	Detail string // the node's last line: attempts and duration, or the step's settings
}

type dagArrow struct {
	Arrow
	Done bool // the dependency succeeded: data flowed along this edge
}

// buildDAG lays out a definition and dresses each node with its run state; states nil means
// the definition itself is drawn.
func buildDAG(steps []gen.UIVersionStepsRow, states map[string]nodeState) (dag, error) {
	in := make([]LayoutStep, len(steps))
	for i, s := range steps {
		in[i] = LayoutStep{Name: s.Name, DependsOn: s.DependsOn}
	}
	g, err := Layout(in)
	if err != nil {
		return dag{}, err
	}
	d := dag{Width: g.Width, Height: g.Height}
	status := map[string]string{}
	for i, p := range g.Nodes {
		n := dagNode{Placed: p}
		switch st, ok := states[p.Name]; {
		case states == nil:
			s := steps[i]
			n.Status = "definition"
			n.Label = "class " + s.WorkerClass
			if s.MaxConcurrency != nil {
				n.Label += fmt.Sprintf(" · ≤%d at once", *s.MaxConcurrency)
			}
			n.Detail = fmt.Sprintf("%d attempts · %s timeout", s.MaxAttempts, fmtMS(float64(s.TimeoutMs)))
		case !ok:
			n.Status = "untracked"
			n.Label = "untracked"
			n.Detail = "inside the legacy job"
		default:
			n.Status = st.Status
			n.Label = strings.ReplaceAll(st.Status, "_", " ")
			n.Detail = fmt.Sprintf("attempt %d/%d", st.Attempt, st.MaxAttempts)
			if st.Attempt == 0 {
				n.Detail = fmt.Sprintf("not attempted (%d allowed)", st.MaxAttempts)
			}
			if st.HasDuration {
				n.Detail += " · " + fmtMS(float64(st.DurationMS))
			}
		}
		status[p.Name] = n.Status
		d.Nodes = append(d.Nodes, n)
	}
	for _, a := range g.Arrows {
		d.Arrows = append(d.Arrows, dagArrow{Arrow: a, Done: status[a.From] == "succeeded"})
	}
	return d, nil
}
