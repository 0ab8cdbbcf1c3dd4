package pipelines_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
)

// FuzzWorkflowDefinition reads arbitrary JSON as a Workflow and checks that its Definition,
// the document qflow.register_workflow takes, is valid JSON that reads back as the same
// workflow: what a binary registers is exactly what it was built with. (Whether a definition
// is acceptable is the database's to say: migrations.FuzzRegisterWorkflow.)
//
//	go test ./pipelines -run '^$' -fuzz FuzzWorkflowDefinition -fuzztime 60s
func FuzzWorkflowDefinition(f *testing.F) {
	reg := pipelines.NewRegistry()
	probe.Register(reg)
	for _, w := range reg.Workflows() {
		def, err := w.Definition()
		if err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(def))
	}
	for _, seed := range []string{
		`{"name":"w","steps":[{"name":"a","depends_on":["b"]},{"name":"b","depends_on":["a"]}]}`,
		`{"name":"w","timeout_ms":-1,"steps":[{"name":"a","max_attempts":0,"resource_hints":{"gpu":1.5,"labels":["x"]}}]}`,
		`{"name":"","steps":null}`, `{"steps":[{}]}`, `{"name":"w","steps":[{"name":"a","resource_hints":{"k":"\u00e9\u2028<>&"}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var w pipelines.Workflow
		if err := json.Unmarshal(data, &w); err != nil {
			return
		}
		def, err := w.Definition()
		if err != nil {
			// Only a value JSON cannot hold; a document read from JSON holds none.
			t.Fatalf("encoding a workflow read from JSON: %v", err)
		}
		if !json.Valid(def) {
			t.Fatalf("definition is not JSON: %s", def)
		}
		var again pipelines.Workflow
		if err := json.Unmarshal(def, &again); err != nil {
			t.Fatalf("definition does not read back: %v", err)
		}
		def2, err := again.Definition()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(def, def2) {
			t.Fatalf("definition changed on a round trip:\n%s\n%s", def, def2)
		}
	})
}
