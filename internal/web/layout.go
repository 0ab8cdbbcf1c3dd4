package web

import (
	"fmt"
	"slices"
	"sort"
)

// Layout geometry, in SVG user units. Layers run left to right, so a chain of five steps fits
// a laptop screen and a wide fan-out grows downwards, where pages scroll.
const (
	nodeWidth  = 200.0
	nodeHeight = 68.0
	layerGap   = 48.0 // between the right edge of a layer and the left edge of the next
	slotGap    = 22.0 // between nodes of one layer
	margin     = 16.0
)

// LayoutStep is a step as the layout needs it: its name and what it depends on.
type LayoutStep struct {
	Name      string
	DependsOn []string
}

// Placed is a step with its place in the drawing: a W×H box with its top-left corner at (X, Y).
type Placed struct {
	Name       string
	Layer      int // the longest path from a root, in edges
	Slot       int // the position inside the layer, from the top
	X, Y, W, H float64
}

// Arrow is a dependency edge, From before To, drawn as a cubic curve from the right side of
// From to the left side of To.
type Arrow struct {
	From, To string
	Path     string // SVG path data
}

// Graph is a laid-out DAG.
type Graph struct {
	Nodes         []Placed
	Arrows        []Arrow
	Width, Height float64
	Layers        int
}

// Layout places a DAG in layers: a step's layer is the length of the longest path from a
// root to it, so every edge points right. Inside a layer, steps are ordered by the mean slot
// of their dependencies (a few barycentre sweeps, which removes the crossings of the usual
// fan-out/fan-in shapes) and each layer is centred vertically. Input order breaks ties, so
// the same definition always gives the same picture. Unknown dependencies and cycles are
// errors: the database refuses them, so they mean a caller bug.
func Layout(steps []LayoutStep) (Graph, error) {
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		if _, dup := index[s.Name]; dup {
			return Graph{}, fmt.Errorf("laying out: duplicate step %q", s.Name)
		}
		index[s.Name] = i
	}
	succ := make([][]int, len(steps))
	pred := make([][]int, len(steps))
	indeg := make([]int, len(steps))
	for i, s := range steps {
		for _, d := range s.DependsOn {
			j, ok := index[d]
			if !ok {
				return Graph{}, fmt.Errorf("laying out: step %q depends on unknown step %q", s.Name, d)
			}
			succ[j] = append(succ[j], i)
			pred[i] = append(pred[i], j)
			indeg[i]++
		}
	}

	// Longest path from a root, in Kahn's order.
	layer := make([]int, len(steps))
	queue := make([]int, 0, len(steps))
	for i := range steps {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	seen := 0
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		seen++
		for _, j := range succ[i] {
			layer[j] = max(layer[j], layer[i]+1)
			if indeg[j]--; indeg[j] == 0 {
				queue = append(queue, j)
			}
		}
	}
	if seen != len(steps) {
		return Graph{}, fmt.Errorf("laying out: the steps form a cycle")
	}

	layers := 0
	for _, l := range layer {
		layers = max(layers, l+1)
	}
	byLayer := make([][]int, layers)
	for i := range steps {
		byLayer[layer[i]] = append(byLayer[layer[i]], i)
	}
	slot := make([]int, len(steps))
	renumber := func(l int) {
		for s, i := range byLayer[l] {
			slot[i] = s
		}
	}
	for l := range byLayer {
		renumber(l)
	}
	// Barycentre sweeps: down using dependencies, up using successors.
	order := func(l int, neighbours [][]int) {
		bary := make(map[int]float64, len(byLayer[l]))
		for _, i := range byLayer[l] {
			if len(neighbours[i]) == 0 {
				bary[i] = float64(slot[i])
				continue
			}
			sum := 0.0
			for _, j := range neighbours[i] {
				sum += float64(slot[j])
			}
			bary[i] = sum / float64(len(neighbours[i]))
		}
		sort.SliceStable(byLayer[l], func(a, b int) bool { return bary[byLayer[l][a]] < bary[byLayer[l][b]] })
		renumber(l)
	}
	for range 2 {
		for l := 1; l < layers; l++ {
			order(l, pred)
		}
		for l := layers - 2; l >= 0; l-- {
			order(l, succ)
		}
	}

	tallest := 0
	for _, b := range byLayer {
		tallest = max(tallest, len(b))
	}
	g := Graph{
		Layers: layers,
		Width:  2*margin + float64(layers)*nodeWidth + float64(max(layers-1, 0))*layerGap,
		Height: 2*margin + float64(tallest)*nodeHeight + float64(max(tallest-1, 0))*slotGap,
	}
	g.Nodes = make([]Placed, len(steps))
	for l, b := range byLayer {
		offset := float64(tallest-len(b)) * (nodeHeight + slotGap) / 2
		for s, i := range b {
			g.Nodes[i] = Placed{
				Name: steps[i].Name, Layer: l, Slot: s,
				X: margin + float64(l)*(nodeWidth+layerGap),
				Y: margin + offset + float64(s)*(nodeHeight+slotGap),
				W: nodeWidth, H: nodeHeight,
			}
		}
	}
	for i, s := range steps {
		deps := slices.Clone(s.DependsOn)
		slices.Sort(deps)
		for _, d := range deps {
			from, to := g.Nodes[index[d]], g.Nodes[i]
			x1, y1 := from.X+nodeWidth, from.Y+nodeHeight/2
			x2, y2 := to.X, to.Y+nodeHeight/2
			bend := (x2 - x1) / 2
			g.Arrows = append(g.Arrows, Arrow{
				From: d, To: s.Name,
				Path: fmt.Sprintf("M%.1f %.1f C%.1f %.1f %.1f %.1f %.1f %.1f", x1, y1, x1+bend, y1, x2-bend, y2, x2, y2),
			})
		}
	}
	return g, nil
}
