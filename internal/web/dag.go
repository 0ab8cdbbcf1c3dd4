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
	// Cached: the step's output came from the step cache; it did not run.
	Cached bool
	// ReusedFrom is the run a fork took the step's outcome from; 0 when it did not.
	ReusedFrom int64
	// Elements counts a map step's elements by status, once they exist.
	Elements *elementCounts
}

// elementCounts are a map step's elements by status, as qflow.status() gives them.
type elementCounts struct {
	Elements int            `json:"elements"`
	ByStatus map[string]int `json:"by_status"`
}

// elementOrder is the order of a map's bar, and of its counts: done, then what needs a look,
// then what is still to come.
var elementOrder = []string{"succeeded", "failed", "running", "queued", "ready", "waiting", "cancelled", "skipped"}

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
	Short  string // the name, cut to fit beside a badge or count
	Label  string // the node's second line: the status, or the step's worker class
	Detail string // the node's last line: attempts and duration, the step's settings, or a mark
	Title  string // all of it, for a screen reader or a hover
	// Map: a map step, drawn as a stack of boxes.
	Map bool
	// Count is a map step's element count in a run ("×10"); Bar its elements by status.
	Count string
	Bar   []barPart
	// Badge is "cached" (a cache hit, or on a definition a cached step) or "reused" (a
	// forked run took the outcome from its source).
	Badge string
}

// barPart is the share of a map step's elements in one status, placed inside the node.
type barPart struct {
	Status string
	N      int
	X, W   float64
}

// The bar of a map step's elements runs along the bottom of its node, between these margins
// (the template draws it 4 units high).
const (
	barLeft  = 18.0
	barRight = 14.0
)

type dagArrow struct {
	Arrow
	Done    bool // the dependency succeeded and its successor was not skipped: data flowed
	Skipped bool // the step it leads to was skipped
}

// buildDAG lays out a definition and dresses each node with its marks (map, cache,
// condition) and its run state; states nil means the definition itself is drawn.
func buildDAG(steps []gen.UIVersionStepsRow, marks map[string]gen.DAGStepsRow, states map[string]nodeState) (dag, error) {
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
		m := marks[p.Name]
		mapText, cacheText, cond := MapText(m.MapOver), CacheText(m.CacheTtlMs, m.CacheKey), ConditionText(m.Condition)
		ifText := ""
		if cond != "" {
			ifText = "if " + cond
		}
		n.Map = mapText != ""
		// What the title says besides the lines drawn.
		notes := []string{mapText, ifText, cacheText}
		switch st, ok := states[p.Name]; {
		case states == nil:
			s := steps[i]
			n.Status = "definition"
			n.Label = "class " + s.WorkerClass
			if s.MaxConcurrency != nil {
				n.Label += fmt.Sprintf(" · ≤%d at once", *s.MaxConcurrency)
			}
			settings := fmt.Sprintf("%d attempts · %s timeout", s.MaxAttempts, fmtMS(float64(s.TimeoutMs)))
			n.Detail = settings
			notes = append(notes, settings)
			if cacheText != "" {
				n.Badge = "cached"
			}
			// The definition table lists the settings; the node shows what shapes a run.
			for _, mark := range []string{mapText, ifText, cacheText} {
				if mark != "" {
					n.Detail = mark
					break
				}
			}
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
			switch {
			case st.Elements != nil:
				n.Count = fmt.Sprintf("×%d", st.Elements.Elements)
				n.Label += fmt.Sprintf(" · %d/%d", st.Elements.ByStatus["succeeded"], st.Elements.Elements)
				n.Detail = st.Elements.rest()
				n.Bar = st.Elements.bar(p.W - barLeft - barRight)
				notes = append(notes, st.Elements.summary())
			case st.Cached:
				n.Badge = "cached"
				n.Detail = "output from the cache"
			case st.ReusedFrom != 0:
				n.Badge = "reused"
				n.Detail = fmt.Sprintf("reused from run #%d", st.ReusedFrom)
			case st.Status == "skipped" && st.Attempt == 0 && cond != "":
				n.Detail = "not met: " + cond
			case st.Status == "skipped" && st.Attempt == 0:
				n.Detail = "every dependency skipped"
			}
		}
		n.Short = short(p.Name, 20)
		if n.Badge != "" || n.Count != "" {
			n.Short = short(p.Name, 14)
		}
		n.Title = fmt.Sprintf("%s: %s (%s)", p.Name, n.Label, n.Detail)
		for _, note := range notes {
			if note != "" && note != n.Detail {
				n.Title += "; " + note
			}
		}
		n.Detail = short(n.Detail, 30)
		status[p.Name] = n.Status
		d.Nodes = append(d.Nodes, n)
	}
	for _, a := range g.Arrows {
		skipped := status[a.To] == "skipped"
		d.Arrows = append(d.Arrows, dagArrow{Arrow: a, Done: status[a.From] == "succeeded" && !skipped, Skipped: skipped})
	}
	return d, nil
}

// summary counts the elements by status: "7/10 succeeded, 2 running, 1 queued".
func (c elementCounts) summary() string {
	return fmt.Sprintf("%d/%d elements succeeded", c.ByStatus["succeeded"], c.Elements) + c.others(", ")
}

// rest counts the elements not succeeded, "2 running · 1 queued", or says they all did.
func (c elementCounts) rest() string {
	if r := c.others(" · "); r != "" {
		return strings.TrimPrefix(r, " · ")
	}
	return fmt.Sprintf("all %d elements succeeded", c.Elements)
}

func (c elementCounts) others(sep string) string {
	var b strings.Builder
	for _, s := range elementOrder[1:] {
		if n := c.ByStatus[s]; n > 0 {
			fmt.Fprintf(&b, "%s%d %s", sep, n, strings.ReplaceAll(s, "_", " "))
		}
	}
	return b.String()
}

// bar cuts width into one part per status that has elements, in elementOrder.
func (c elementCounts) bar(width float64) []barPart {
	if c.Elements == 0 {
		return nil
	}
	var parts []barPart
	x := barLeft
	for _, s := range elementOrder {
		if n := c.ByStatus[s]; n > 0 {
			w := width * float64(n) / float64(c.Elements)
			parts = append(parts, barPart{Status: s, N: n, X: x, W: w})
			x += w
		}
	}
	return parts
}
