package enginetest

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/architecture"
	"github.com/quantumflow/qflow/pipelines/complexity"
	"github.com/quantumflow/qflow/pipelines/ml"
	"github.com/quantumflow/qflow/pipelines/probe"
	"github.com/quantumflow/qflow/worker"
)

// ML registers the probe workflows and both ML pipelines, training on a CPU backend: what New
// takes for tests that look at real models (TrainModels).
func ML(reg *pipelines.Registry, pool *pgxpool.Pool) {
	probe.Register(reg)
	reg.MustAdd(complexity.Workflow(complexity.Options{DB: pool, Trainer: ml.NewTrainer(nil)}))
	reg.MustAdd(architecture.Workflow(architecture.Options{DB: pool, Trainer: ml.NewTrainer(nil)}))
}

// Models are the runs TrainModels started, each of which deployed one model version.
type Models struct {
	// Complexity is v1 of "complexity", active; Challenger v2, another seed's model of the same
	// data, compared with it; Architecture v1 of "architecture".
	Complexity, Challenger, Architecture int64
}

// TrainModels trains real models through the engine, in workflow mode, on an Env made with ML: it fills
// ml.task_executions with 2,000 generated records, starts a worker serving both classes and
// runs complexity_training twice (seeds 7 and 8) and architecture_learning once, on a few
// trees of the standard library. It waits for the three runs, which must succeed.
func (e *Env) TrainModels(t testing.TB) Models {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	require.NoError(t, err, "the architecture pipeline scans the standard library's source")
	src := filepath.Join(strings.TrimSpace(string(out)), "src")
	recs := complexity.Generate(complexity.GenerateOptions{Rows: 2000, Days: 20, Now: time.Now(), Unlabelled: 0.1, Seed: 11})
	_, err = complexity.Insert(e.Ctx, e.Pool, recs)
	require.NoError(t, err)
	e.StartWorker(t, worker.Config{ID: "models-worker", Classes: []string{"cpu", "gpu"}, FetchPollInterval: 50 * time.Millisecond})

	var roots []string
	for _, d := range []string{"net", "encoding", "go", "runtime", "crypto"} {
		roots = append(roots, filepath.Join(src, d))
	}
	rootsJSON, err := json.Marshal(roots)
	require.NoError(t, err)
	m := Models{Complexity: e.StartMode(t, complexity.Name, "workflow", `{"epochs": 30, "seed": 7, "min_rows": 50}`)}
	e.requireSucceeded(t, m.Complexity)
	m.Challenger = e.StartMode(t, complexity.Name, "workflow", `{"epochs": 30, "seed": 8, "min_rows": 50}`)
	m.Architecture = e.StartMode(t, architecture.Name, "workflow", `{"roots": `+string(rootsJSON)+`, "epochs": 60, "seed": 5}`)
	e.requireSucceeded(t, m.Challenger)
	e.requireSucceeded(t, m.Architecture)
	return m
}

func (e *Env) requireSucceeded(t testing.TB, run int64) {
	t.Helper()
	r := e.Wait(t, run, 3*time.Minute)
	require.Equal(t, "succeeded", r.Status, "run %d: %s", run, r.Error)
}

// Stored is a model's metrics as ml.models holds them: M is its pipeline's Metrics, to which
// deployment added its Decision.
type Stored[M any] struct {
	Metrics  M
	Decision ml.Decision
}

// LoadStored reads the metrics of a model of ml.models.
func LoadStored[M any](t testing.TB, e *Env, model int64) Stored[M] {
	t.Helper()
	var raw []byte
	require.NoError(t, e.Pool.QueryRow(e.Ctx, "SELECT metrics FROM ml.models WHERE id = $1", model).Scan(&raw))
	var s Stored[M]
	require.NoError(t, json.Unmarshal(raw, &s.Metrics))
	var d struct {
		Decision ml.Decision `json:"decision"`
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	s.Decision = d.Decision
	return s
}

// RequireInterval checks that an estimate came with an interval that holds its value.
func RequireInterval(t testing.TB, e ml.Estimate, what string) {
	t.Helper()
	require.True(t, e.HasInterval(), what)
	require.LessOrEqual(t, e.Lo, e.Value, what)
	require.GreaterOrEqual(t, e.Hi, e.Value, what)
}
