package web_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/web"
)

func steps(deps map[string][]string, order ...string) []web.LayoutStep {
	out := make([]web.LayoutStep, len(order))
	for i, n := range order {
		out[i] = web.LayoutStep{Name: n, DependsOn: deps[n]}
	}
	return out
}

func byName(g web.Graph) map[string]web.Placed {
	m := map[string]web.Placed{}
	for _, n := range g.Nodes {
		m[n.Name] = n
	}
	return m
}

// requireClean checks what every drawing must satisfy: no two boxes overlap, every box lies
// inside the canvas, every arrow points right, and layers are columns.
func requireClean(t *testing.T, g web.Graph) {
	t.Helper()
	for i, a := range g.Nodes {
		require.GreaterOrEqual(t, a.X, 0.0)
		require.GreaterOrEqual(t, a.Y, 0.0)
		require.LessOrEqual(t, a.X+a.W, g.Width, "%s inside the canvas", a.Name)
		require.LessOrEqual(t, a.Y+a.H, g.Height, "%s inside the canvas", a.Name)
		for _, b := range g.Nodes[i+1:] {
			overlap := a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
			require.False(t, overlap, "%s and %s overlap", a.Name, b.Name)
			if a.Layer == b.Layer {
				require.Equal(t, a.X, b.X, "one layer, one column")
			}
		}
	}
	nodes := byName(g)
	for _, e := range g.Arrows {
		require.Less(t, nodes[e.From].X+nodes[e.From].W, nodes[e.To].X, "%s → %s points right", e.From, e.To)
		require.Less(t, nodes[e.From].Layer, nodes[e.To].Layer)
		require.NotEmpty(t, e.Path)
	}
}

func TestLayoutChainIsOneRow(t *testing.T) {
	t.Parallel()
	g, err := web.Layout(steps(map[string][]string{"b": {"a"}, "c": {"b"}, "d": {"c"}, "e": {"d"}}, "a", "b", "c", "d", "e"))
	require.NoError(t, err)
	requireClean(t, g)
	require.Equal(t, 5, g.Layers)
	for i, n := range g.Nodes {
		require.Equal(t, i, n.Layer, n.Name)
		require.Equal(t, 0, n.Slot, n.Name)
		require.Equal(t, g.Nodes[0].Y, n.Y, "a chain is one row")
	}
	require.Len(t, g.Arrows, 4)
	require.Equal(t, web.Arrow{From: "a", To: "b", Path: g.Arrows[0].Path}, g.Arrows[0])
}

func TestLayoutDiamondCentresTheSingleNodes(t *testing.T) {
	t.Parallel()
	g, err := web.Layout(steps(map[string][]string{"b": {"a"}, "c": {"a"}, "d": {"b", "c"}}, "a", "b", "c", "d"))
	require.NoError(t, err)
	requireClean(t, g)
	n := byName(g)
	require.Equal(t, []int{0, 1, 1, 2}, []int{n["a"].Layer, n["b"].Layer, n["c"].Layer, n["d"].Layer})
	require.Less(t, n["b"].Y, n["c"].Y, "input order breaks the tie")
	mid := (n["b"].Y + n["c"].Y) / 2
	require.Equal(t, mid, n["a"].Y, "a lone node sits level with the middle of the widest layer")
	require.Equal(t, mid, n["d"].Y)
	require.Len(t, g.Arrows, 4)
}

func TestLayoutLayerIsTheLongestPathFromARoot(t *testing.T) {
	t.Parallel()
	// c depends on a directly and through b; x is a second root that feeds only c.
	g, err := web.Layout(steps(map[string][]string{"b": {"a"}, "c": {"a", "b", "x"}}, "a", "x", "b", "c"))
	require.NoError(t, err)
	requireClean(t, g)
	n := byName(g)
	require.Equal(t, 0, n["a"].Layer)
	require.Equal(t, 0, n["x"].Layer)
	require.Equal(t, 1, n["b"].Layer)
	require.Equal(t, 2, n["c"].Layer, "the longest path a→b→c wins over a→c")
	require.Equal(t, 3, g.Layers)
}

func TestLayoutOrdersLayersToAvoidCrossings(t *testing.T) {
	t.Parallel()
	// Listed so that a naive order crosses: p feeds y, q feeds x, but x comes first.
	g, err := web.Layout(steps(map[string][]string{"x": {"q"}, "y": {"p"}}, "p", "q", "x", "y"))
	require.NoError(t, err)
	requireClean(t, g)
	n := byName(g)
	require.Equal(t, n["p"].Slot < n["q"].Slot, n["y"].Slot < n["x"].Slot, "the two edges do not cross")
}

func TestLayoutRandomDAGsNeverOverlap(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		size := 1 + r.IntN(14)
		names := make([]string, size)
		deps := map[string][]string{}
		for i := range names {
			names[i] = fmt.Sprintf("s%d", i)
			for j := range i { // edges only from earlier steps: a DAG
				if r.IntN(4) == 0 {
					deps[names[i]] = append(deps[names[i]], names[j])
				}
			}
		}
		g, err := web.Layout(steps(deps, names...))
		require.NoError(t, err, "trial %d", trial)
		require.Len(t, g.Nodes, size)
		requireClean(t, g)
		// Layer = longest path: one more than the deepest dependency, 0 for a root.
		n := byName(g)
		for _, name := range names {
			want := 0
			for _, d := range deps[name] {
				want = max(want, n[d].Layer+1)
			}
			require.Equal(t, want, n[name].Layer, "trial %d, step %s", trial, name)
		}
	}
}

func TestLayoutRefusesBrokenGraphs(t *testing.T) {
	t.Parallel()
	_, err := web.Layout(steps(map[string][]string{"a": {"b"}, "b": {"a"}}, "a", "b"))
	require.ErrorContains(t, err, "cycle")
	_, err = web.Layout(steps(map[string][]string{"a": {"ghost"}}, "a"))
	require.ErrorContains(t, err, `unknown step "ghost"`)
	_, err = web.Layout([]web.LayoutStep{{Name: "a"}, {Name: "a"}})
	require.ErrorContains(t, err, `duplicate step "a"`)
	g, err := web.Layout(nil)
	require.NoError(t, err)
	require.Empty(t, g.Nodes)
}
