package cli

import (
	"os"

	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/architecture"
	"github.com/quantumflow/qflow/pipelines/complexity"
	"github.com/quantumflow/qflow/pipelines/ml"
	"github.com/quantumflow/qflow/pipelines/probe"
)

// Options choose how the built-in workflows run in this binary.
type Options struct {
	// Backend trains models; nil means the pure-Go CPU backend.
	Backend kernels.Backend
	// DB is where the ML steps read and write; nil means a pool opened on DATABASE_URL when a
	// step first needs it (the registry is built before any command connects).
	DB ml.DB
}

// NewRegistry returns the workflows built into qflow: the probes and the two ML pipelines,
// whose training steps share one Trainer on opts.Backend.
func NewRegistry(opts Options) *pipelines.Registry {
	reg := pipelines.NewRegistry()
	probe.Register(reg)
	db := opts.DB
	if db == nil {
		db = ml.LazyPool(os.Getenv, "DATABASE_URL", 8)
	}
	trainer := ml.NewTrainer(opts.Backend)
	reg.MustAdd(complexity.Workflow(complexity.Options{DB: db, Trainer: trainer}))
	reg.MustAdd(architecture.Workflow(architecture.Options{DB: db, Trainer: trainer}))
	return reg
}
