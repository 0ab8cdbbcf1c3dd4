//go:build cuda || cudaemu

package main

import (
	"sync"

	"github.com/quantumflow/qflow/kernels"
)

// The CUDA backend, in binaries built with -tags cuda (they need a GPU to
// start; see the README, "GPU worker"). One backend serves every network: it is made
// before the first timing starts, so context creation and the kernels' JIT
// compilation are not in the figures.
func init() {
	gpu := sync.OnceValues(func() (*kernels.CUDA, error) { return kernels.NewCUDA(0) })
	registerBackend("cuda", func() (kernels.Backend, error) {
		be, err := gpu()
		if err != nil {
			return nil, err
		}
		return be, nil
	})
}
