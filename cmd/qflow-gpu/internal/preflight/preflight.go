// Package preflight stops qflow-gpu with a clear message on a machine that
// has no NVIDIA GPU, before gorgonia.org/cu's package initializer calls
// cuInit and exits with the driver's bare error code.
//
// It works by initialization order alone: Go initializes packages in import
// path order among those whose imports are ready (the spec, since Go 1.21),
// this package's path sorts before gorgonia.org/cu, and it imports only
// packages cu imports too, so its init always runs first. (A machine with
// no libcuda.so.1 at all fails earlier still, in the dynamic loader, with a
// message naming the library.)
package preflight

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

func init() {
	if runtime.GOOS != "linux" || gpuNodeExists() {
		return
	}
	fmt.Fprintln(os.Stderr, "qflow-gpu: no NVIDIA GPU is visible (no /dev/nvidia0, /dev/nvidia1, ...), so this worker cannot start.")
	fmt.Fprintln(os.Stderr, "qflow-gpu serves only the gpu worker class; on a machine without a GPU run `qflow worker --classes gpu`,")
	fmt.Fprintln(os.Stderr, "which trains on the CPU. In a container, pass the GPU through (e.g. docker run --gpus all).")
	os.Exit(1)
}

// gpuNodeExists reports whether the NVIDIA driver exposes a GPU device node
// (/dev/nvidiaN; /dev/nvidiactl alone is the driver without a GPU), or the
// WSL2 GPU node /dev/dxg.
func gpuNodeExists() bool {
	if _, err := os.Stat("/dev/dxg"); err == nil {
		return true
	}
	entries, err := os.ReadDir("/dev")
	if err != nil {
		return true // cannot tell: let the driver decide
	}
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "nvidia")
		if ok && n != "" && strings.Trim(n, "0123456789") == "" {
			return true
		}
	}
	return false
}
