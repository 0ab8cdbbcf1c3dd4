package chaos

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	"github.com/quantumflow/qflow/pipelines/probe"
)

// want is what the probe handlers make of a run's input: every step row the run has when it
// succeeds, map elements included, and the run's output.
type want struct {
	steps map[string]wantStep
	// order lists the steps in the order they are checked and reported.
	order  []string
	output any
}

// wantStep is a step row's end in a run that succeeds: succeeded with output, or skipped
// (its condition false, or every dependency skipped).
type wantStep struct {
	skipped bool
	output  any
}

func (w *want) add(step string, s wantStep) {
	w.steps[step] = s
	w.order = append(w.order, step)
}

// expect computes want for a run of workflow (of definition d) from its input. probe_map and
// probe_branch have handlers of their own (pipelines/probe); every other probe step outputs
// {"step", "value"} from the seed and its dependencies (dag.values).
func (d *dag) expect(workflow string, in probeInput) *want {
	w := &want{steps: map[string]wantStep{}}
	values := d.values(in.Seed)
	valueOf := func(step string) map[string]any { return map[string]any{"step": step, "value": values[step]} }
	switch workflow {
	case probe.Map:
		n := in.items()
		items, squares := make([]int64, n), make([]int64, n)
		var sum int64
		for i := range n {
			items[i], squares[i] = int64(i+1), int64((i+1)*(i+1))
			sum += squares[i]
		}
		w.add("split", wantStep{output: map[string]any{"items": items}})
		w.add("square", wantStep{output: squares})
		for i, sq := range squares {
			w.add(element("square", i), wantStep{output: sq})
		}
		w.add("total", wantStep{output: map[string]any{"sum": sum}})
		w.output = map[string]any{"total": map[string]any{"sum": sum}}
	case probe.Branch:
		w.add("check", wantStep{output: valueOf("check")})
		for _, branch := range []string{"big", "small"} {
			if in.Size == branch {
				w.add(branch, wantStep{output: valueOf(branch)})
			} else {
				w.add(branch, wantStep{skipped: true})
			}
		}
		// finish runs after whichever branch ran, and is skipped with both.
		switch in.Size {
		case "big", "small":
			path := map[string]any{"path": in.Size}
			w.add("finish", wantStep{output: path})
			w.output = map[string]any{"finish": path}
		default:
			w.add("finish", wantStep{skipped: true})
			w.output = map[string]any{}
		}
	default:
		out := map[string]any{}
		for _, s := range d.order {
			w.add(s, wantStep{output: valueOf(s)})
			if !d.isDependency(s) {
				out[s] = valueOf(s)
			}
		}
		w.output = out
	}
	return w
}

// items is how many elements a probe_map run's split makes (pipelines/probe: 3 by default).
func (in probeInput) items() int {
	if in.N == nil {
		return 3
	}
	return *in.N
}

// element names a map step's element row.
func element(step string, index int) string {
	return step + "[" + strconv.Itoa(index) + "]"
}

// sameJSON says whether a stored value is the wanted one, whatever its spacing and key order.
func sameJSON(got json.RawMessage, w any) bool {
	wantRaw, err := json.Marshal(w)
	if err != nil {
		return false
	}
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal(wantRaw, &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// jsonText is a wanted value as the violations print it.
func jsonText(w any) string {
	raw, err := json.Marshal(w)
	if err != nil {
		return fmt.Sprint(w)
	}
	return string(raw)
}
