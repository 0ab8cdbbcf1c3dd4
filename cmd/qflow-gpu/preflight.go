//go:build cuda

package main

// Must stay imported in the cuda build: its init reports a missing GPU
// before gorgonia.org/cu's runs (the emulator build has neither).
import _ "github.com/quantumflow/qflow/cmd/qflow-gpu/internal/preflight"
