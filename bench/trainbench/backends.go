package main

import (
	"fmt"
	"sort"

	"github.com/quantumflow/qflow/kernels"
)

// backendFactories holds every backend this binary can benchmark. The CPU
// one is always here; a file behind a build tag (backend_cuda.go with
// //go:build cuda) adds its own from an init function, so the benchmark
// code never changes when a backend is added.
var backendFactories = map[string]func() (kernels.Backend, error){
	"cpu": func() (kernels.Backend, error) { return kernels.NewCPU(), nil },
}

// registerBackend is what a build-tagged backend file calls from init.
func registerBackend(name string, factory func() (kernels.Backend, error)) {
	if _, dup := backendFactories[name]; dup {
		panic(fmt.Sprintf("trainbench: backend %q registered twice", name))
	}
	backendFactories[name] = factory
}

var _ = registerBackend // used by build-tagged files only

func backendNames() []string {
	names := make([]string, 0, len(backendFactories))
	for n := range backendFactories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
