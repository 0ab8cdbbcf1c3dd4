package probe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
)

// FuzzHandleInput runs the probe handler on arbitrary run input. Whatever the bytes, it
// returns an output or an error (a permanent one for input it cannot read), and panics only
// where the input asks for a panic: the worker must never meet an input that breaks a handler
// by accident.
//
//	go test ./pipelines/probe -run '^$' -fuzz FuzzHandleInput -fuzztime 60s
func FuzzHandleInput(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"seed": 4}`, `{"sleep_ms": 1}`, `{"sleep_ms": {"b": 2}}`, `{"sleep_ms": "x"}`, `{"sleep_ms": -5}`,
		`{"fail": {"b": 2}}`, `{"fatal": ["b"]}`, `{"panic": {"b": 1}}`, `{"hang": ["a"], "hang_ms": 1}`, `{"hang": ["b"], "hang_ms": 2}`,
		`{"seed": 9223372036854775807}`, `{"seed": 1.5}`, `[]`, `null`, `{"fail": {"b": -1}}`,
	} {
		f.Add([]byte(seed), 1, []byte(`{"a": {"step": "a", "value": 3}}`))
	}
	f.Add([]byte(`{}`), 2, []byte(`{"a": {"value": "x"}}`))
	f.Add([]byte(`{}`), 1, []byte(`{"a": null}`))
	f.Fuzz(func(t *testing.T, run []byte, attempt int, deps []byte) {
		var p probe.Params
		if json.Unmarshal(run, &p) == nil && slices.Contains(p.Hang, "b") && (p.HangMS == 0 || p.HangMS > 10) {
			return // deaf to cancellation by design: it would sleep hang_ms (a minute by default)
		}
		in := pipelines.Input{RunID: 1, Step: "b", Attempt: attempt, Run: run}
		var raw map[string]json.RawMessage
		if json.Unmarshal(deps, &raw) == nil {
			in.Deps = raw
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancel()
		out, err := handle(ctx, in)
		if p, ok := err.(panicked); ok {
			if !strings.Contains(string(p), "panics on attempt") {
				t.Fatalf("the handler panicked unasked: %s", p)
			}
			return
		}
		if err != nil {
			return
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("output does not encode: %v", err)
		}
		if o, ok := out.(probe.Output); !ok || o.Step != "b" {
			t.Fatalf("output %#v is not the probe's", out)
		}
	})
}

type panicked string

func (p panicked) Error() string { return string(p) }

// handle calls the handler, turning a panic into a panicked error.
func handle(ctx context.Context, in pipelines.Input) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicked(fmt.Sprint(r))
		}
	}()
	return probe.Handle(ctx, in)
}
