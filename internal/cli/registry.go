package cli

import (
	"github.com/quantumflow/qflow/kernels"
	"github.com/quantumflow/qflow/pipelines"
	"github.com/quantumflow/qflow/pipelines/probe"
)

// Options choose how the built-in workflows run in this binary.
type Options struct {
	// Backend trains models; nil means the pure-Go CPU backend.
	Backend kernels.Backend
}

// NewRegistry returns the workflows built into qflow.
func NewRegistry(opts Options) *pipelines.Registry {
	reg := pipelines.NewRegistry()
	probe.Register(reg)
	return reg
}
