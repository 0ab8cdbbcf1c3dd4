//go:build cuda || cudaemu

// Command qflow-gpu is QuantumFlow's GPU worker: the qflow CLI with training
// on the CUDA backend, whose `worker` serves the gpu worker class and no
// other. It refuses to start without a usable GPU; machines without one
// serve the gpu class with `qflow worker --classes gpu`, on the CPU.
//
// Build with `make build-gpu` (the cuda tag; needs cuda.h and libcuda, see
// the README, "GPU worker"). Built with the cudaemu tag instead it trains on the CUDA
// emulator (kernels/cuda_emu.go), which is how its tests run it without a
// GPU; that build is for tests, not for serving.
//
// QFLOW_GPU_DEVICE picks the GPU (default 0, in CUDA_VISIBLE_DEVICES
// order). At start it logs the device and exports it as qflow_gpu_info and
// qflow_gpu_memory_bytes on the metrics endpoint. `qflow-gpu device` starts
// the backend (context, kernels), prints the device as JSON and exits 0:
// the check that this machine can serve the gpu class.
package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantumflow/qflow/internal/cli"
	"github.com/quantumflow/qflow/kernels"
)

func main() {
	os.Exit(run())
}

func run() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	gpu, err := openGPU(os.Getenv("QFLOW_GPU_DEVICE"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "qflow-gpu: no usable GPU: %v\n", err)
		fmt.Fprintln(os.Stderr, "qflow-gpu serves only the gpu worker class; without a GPU run `qflow worker --classes gpu` (CPU training).")
		return 1
	}
	defer gpu.Close()

	d := gpu.Device()
	free, total, err := gpu.MemInfo()
	if err != nil {
		fmt.Fprintf(os.Stderr, "qflow-gpu: reading memory of GPU %d (%s): %v\n", d.Index, d.Name, err)
		return 1
	}
	log.Info("gpu ready", "device", d.Name, "index", d.Index, "compute_capability", d.ComputeCapability,
		"multiprocessors", d.Multiprocessors, "memory_total_bytes", total, "memory_free_bytes", free,
		"cuda_driver_version", d.Driver)
	if len(os.Args) == 2 && os.Args[1] == "device" {
		out, _ := json.Marshal(struct {
			kernels.CUDADevice
			MemoryFreeBytes int64 `json:"memory_free_bytes"`
		}{d, free})
		fmt.Println(string(out))
		return 0
	}
	if err := registerGPUMetrics(prometheus.DefaultRegisterer, gpu); err != nil {
		fmt.Fprintf(os.Stderr, "qflow-gpu: registering GPU metrics: %v\n", err)
		return 1
	}

	return cli.Main(os.Args[1:], cli.Env{
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		Getenv:      os.Getenv,
		Registry:    cli.NewRegistry(cli.Options{Backend: gpu}),
		OnlyClasses: []string{"gpu"},
	})
}

// openGPU starts the CUDA backend on the GPU named by index ("" means 0):
// a context, its owner thread and the kernels, so a broken driver or a GPU
// that cannot run our PTX stops the worker here rather than at its first job.
func openGPU(index string) (*kernels.CUDA, error) {
	i := 0
	if index != "" {
		var err error
		if i, err = strconv.Atoi(index); err != nil || i < 0 {
			return nil, fmt.Errorf("QFLOW_GPU_DEVICE=%q is not a device index", index)
		}
	}
	devices, err := kernels.CUDADevices()
	if err != nil {
		return nil, err
	}
	if len(devices) == 0 {
		return nil, fmt.Errorf("the CUDA driver reports no devices")
	}
	if i >= len(devices) {
		return nil, fmt.Errorf("QFLOW_GPU_DEVICE=%d, but the driver reports %d device(s) (0 is %s)", i, len(devices), devices[0].Name)
	}
	return kernels.NewCUDA(i)
}
