package schema_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
)

func TestRegisterWorkflowRejectsBadDefinitions(t *testing.T) {
	t.Parallel()
	b := setup(t)

	cases := []struct{ name, doc, want string }{
		{"not an object", `[1]`, "must be a JSON object"},
		{"bad name", `{"name":"Bad Name","steps":[{"name":"a"}]}`, "workflow name 'Bad Name' is invalid"},
		{"no steps", `{"name":"w","steps":[]}`, `"steps" must be a non-empty array`},
		{"unknown field", `{"name":"w","stepz":[]}`, `unknown field "stepz"`},
		{"unknown step field", `{"name":"w","steps":[{"name":"a","retries":3}]}`, `unknown field "retries"`},
		{"duplicate step", `{"name":"w","steps":[{"name":"a"},{"name":"a"}]}`, `duplicate step name "a"`},
		{"unknown dependency", `{"name":"w","steps":[{"name":"a","depends_on":["x"]}]}`, `unknown dependency "x"`},
		{"self dependency", `{"name":"w","steps":[{"name":"a","depends_on":["a"]}]}`, "cannot depend on itself"},
		{"cycle", `{"name":"w","steps":[{"name":"a","depends_on":["c"]},{"name":"b","depends_on":["a"]},{"name":"c","depends_on":["b"]},{"name":"d"}]}`, "dependency cycle among steps a, b, c"},
		{"negative timeout", `{"name":"w","steps":[{"name":"a","timeout_ms":-5}]}`, `"timeout_ms" must be a whole number between 1 and`},
		{"zero attempts", `{"name":"w","steps":[{"name":"a","max_attempts":0}]}`, `"max_attempts" must be a whole number between 1 and 1000, got 0`},
		{"fractional number", `{"name":"w","steps":[{"name":"a","retry_base_ms":1.5}]}`, `"retry_base_ms" must be a whole number`},
		{"string number", `{"name":"w","steps":[{"name":"a","timeout_ms":"5"}]}`, `"timeout_ms" must be a number`},
		{"retry max below base", `{"name":"w","steps":[{"name":"a","retry_base_ms":500,"retry_max_ms":100}]}`, `"retry_max_ms" must not be below "retry_base_ms"`},
		{"bad on_failure", `{"name":"w","steps":[{"name":"a","on_failure":"ignore"}]}`, `on_failure must be "fail" or "skip"`},
		{"bad workflow timeout", `{"name":"w","timeout_ms":0,"steps":[{"name":"a"}]}`, `workflow w: "timeout_ms" must be a whole number`},
	}
	for _, c := range cases {
		err := b.execErr("SELECT qflow.register_workflow($1)", c.doc)
		require.Error(t, err, c.name)
		require.Contains(t, err.Error(), c.want, c.name)
	}
	require.Zero(t, b.count(t, "SELECT count(*) FROM qflow.workflows"), "a rejected definition leaves nothing behind")
}

func TestRegisterWorkflowVersionsOnlyOnShapeChange(t *testing.T) {
	t.Parallel()
	b := setup(t)

	require.Equal(t, 1, b.register(t, "w", map[string][]string{"a": nil, "b": {"a"}}, nil))
	require.Equal(t, 1, b.register(t, "w", map[string][]string{"a": nil, "b": {"a"}}, nil), "same document: same version")

	// An operator tunes a setting; re-registering the same document (a worker restart) keeps it.
	b.exec(t, "UPDATE qflow.steps SET timeout_ms = 777 WHERE workflow = 'w' AND name = 'b'")
	require.Equal(t, 1, b.register(t, "w", map[string][]string{"a": nil, "b": {"a"}}, nil))
	require.Equal(t, 777, b.count(t, "SELECT timeout_ms FROM qflow.steps WHERE workflow = 'w' AND name = 'b'"))

	// New settings in code, same shape: updated in place.
	require.Equal(t, 1, b.register(t, "w", map[string][]string{"a": nil, "b": {"a"}}, func(w *pipelines.Workflow) { w.Steps[1].TimeoutMS = 1234 }))
	require.Equal(t, 1234, b.count(t, "SELECT timeout_ms FROM qflow.steps WHERE workflow = 'w' AND name = 'b'"))

	// A new edge or step is a new version; runs keep the version they started on.
	run := b.start(t, "w", "{}")
	require.Equal(t, 2, b.register(t, "w", map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}}, nil))
	require.Equal(t, 1, b.count(t, "SELECT version FROM qflow.runs WHERE id = $1", run))
	require.Equal(t, 2, b.count(t, "SELECT version FROM qflow.runs WHERE id = $1", b.start(t, "w", "{}")))
	require.Equal(t, 3, b.count(t, "SELECT count(*) FROM qflow.step_runs WHERE run_id = (SELECT max(id) FROM qflow.runs)"))
}
