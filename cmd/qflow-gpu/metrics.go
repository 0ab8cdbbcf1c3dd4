//go:build cuda || cudaemu

package main

import (
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quantumflow/qflow/kernels"
)

// registerGPUMetrics exports the device this worker trains on, so a
// dashboard shows which GPUs serve the gpu class and how full they are.
// Free memory is read from the driver at every scrape.
func registerGPUMetrics(reg prometheus.Registerer, gpu *kernels.CUDA) error {
	d := gpu.Device()
	device := prometheus.Labels{"device": d.Name, "index": strconv.Itoa(d.Index)}
	with := func(extra prometheus.Labels) prometheus.Labels {
		out := prometheus.Labels{}
		for k, v := range device {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}

	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "qflow_gpu_info",
		Help: "The GPU this qflow-gpu worker trains on (always 1).",
		ConstLabels: with(prometheus.Labels{
			"compute_capability": d.ComputeCapability,
			"cuda_driver":        strconv.Itoa(d.Driver),
		}),
	})
	info.Set(1)
	const memoryHelp = "GPU memory of the device this worker trains on, by kind (total, free)."
	total := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "qflow_gpu_memory_bytes", Help: memoryHelp, ConstLabels: with(prometheus.Labels{"kind": "total"}),
	})
	total.Set(float64(d.MemoryBytes))
	free := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "qflow_gpu_memory_bytes", Help: memoryHelp, ConstLabels: with(prometheus.Labels{"kind": "free"}),
	}, func() float64 {
		f, _, err := gpu.MemInfo()
		if err != nil {
			return math.NaN()
		}
		return float64(f)
	})
	for _, c := range []prometheus.Collector{info, total, free} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
