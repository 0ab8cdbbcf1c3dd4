// Command trainbench trains the same MLPs on the same synthetic data with
// every available kernels backend and reports training throughput.
//
//	go run ./bench/trainbench -out bench/results/train.json
//
// Two networks: "seed" is the complexity pipeline's network (10 → 64 ReLU,
// dropout 0.2 → 32 ReLU, dropout 0.1 → 1 sigmoid, MSE, batch 32), whose
// time goes to per-batch overhead; "wide" (256 → 1024 ReLU → 1024 ReLU →
// 10 softmax, cross-entropy, batch 1024) is bound by matrix multiplies.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/quantumflow/qflow/kernels"
)

type network struct {
	name    string
	config  func() kernels.Config
	data    func(r *rand.Rand, n int) (x, y []float32)
	samples *int
	epochs  *int
}

type result struct {
	Backend       string  `json:"backend"`
	Network       string  `json:"network"`
	Architecture  string  `json:"architecture"`
	Samples       int     `json:"samples"`
	Epochs        int     `json:"epochs"`
	BatchSize     int     `json:"batch_size"`
	Seconds       float64 `json:"seconds"`
	SamplesPerSec float64 `json:"samples_per_sec"`
	FirstLoss     float64 `json:"first_epoch_loss"`
	FinalLoss     float64 `json:"final_epoch_loss"`
}

type report struct {
	StartedAt  time.Time `json:"started_at"`
	GoVersion  string    `json:"go_version"`
	GOOS       string    `json:"goos"`
	GOARCH     string    `json:"goarch"`
	NumCPU     int       `json:"num_cpu"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	Results    []result  `json:"results"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "trainbench:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("out", "bench/results/train.json", "where to write the JSON report")
	backends := flag.String("backends", strings.Join(backendNames(), ","), "comma-separated backends to run")
	networks := flag.String("networks", "seed,wide", "comma-separated networks to run (seed, wide)")
	seed := flag.Uint64("seed", 1, "seed for data, weights, shuffling and dropout")
	nets := []network{
		{name: "seed", config: seedConfig, data: seedData,
			samples: flag.Int("seed-samples", 20000, "training samples for the seed network"),
			epochs:  flag.Int("seed-epochs", 3, "epochs for the seed network")},
		{name: "wide", config: wideConfig, data: wideData,
			samples: flag.Int("wide-samples", 4096, "training samples for the wide network"),
			epochs:  flag.Int("wide-epochs", 1, "epochs for the wide network")},
	}
	flag.Parse()

	rep := report{
		StartedAt: time.Now().UTC(), GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
	}
	wantNets := set(*networks)
	for _, name := range strings.Split(*backends, ",") {
		name = strings.TrimSpace(name)
		factory, ok := backendFactories[name]
		if !ok {
			return fmt.Errorf("unknown backend %q (this binary has %s)", name, strings.Join(backendNames(), ", "))
		}
		for _, n := range nets {
			if !wantNets[n.name] {
				continue
			}
			be, err := factory()
			if err != nil {
				return fmt.Errorf("starting backend %s: %w", name, err)
			}
			res, err := bench(be, n, *seed)
			if err != nil {
				return fmt.Errorf("%s on %s: %w", n.name, name, err)
			}
			fmt.Printf("%-6s %-5s %-28s %7d samples x %d epochs  %8.2fs  %10.0f samples/s  loss %.4f -> %.4f\n",
				res.Backend, res.Network, res.Architecture, res.Samples, res.Epochs, res.Seconds, res.SamplesPerSec, res.FirstLoss, res.FinalLoss)
			rep.Results = append(rep.Results, res)
		}
	}
	if len(rep.Results) == 0 {
		return fmt.Errorf("nothing ran: networks %q matched none of seed, wide", *networks)
	}

	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("creating report folder: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the architecture strings contain ">"
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("encoding report: %w", err)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	fmt.Println("wrote", *out)
	return nil
}

// bench times one Train call; data generation is outside the timing, the
// normalization and upload inside, as they are in the pipeline.
func bench(be kernels.Backend, n network, seed uint64) (result, error) {
	if *n.samples <= 0 || *n.epochs <= 0 {
		return result{}, fmt.Errorf("samples (%d) and epochs (%d) must be positive", *n.samples, *n.epochs)
	}
	x, y := n.data(rand.New(rand.NewPCG(seed, 0x7261696e)), *n.samples)
	cfg := n.config()
	cfg.Epochs, cfg.Seed, cfg.Backend = *n.epochs, seed, be
	start := time.Now()
	_, losses, err := kernels.Train(context.Background(), cfg, x, y)
	elapsed := time.Since(start).Seconds()
	if err != nil {
		return result{}, err
	}
	return result{
		Backend: be.Name(), Network: n.name, Architecture: describe(cfg),
		Samples: *n.samples, Epochs: cfg.Epochs, BatchSize: cfg.BatchSize,
		Seconds: elapsed, SamplesPerSec: float64(*n.samples*cfg.Epochs) / elapsed,
		FirstLoss: losses[0], FinalLoss: losses[len(losses)-1],
	}, nil
}

func seedConfig() kernels.Config { return kernels.SeedNetwork(10) }

func wideConfig() kernels.Config {
	return kernels.Config{
		Inputs: 256,
		Layers: []kernels.LayerConfig{
			{Units: 1024, Activation: kernels.ReLU},
			{Units: 1024, Activation: kernels.ReLU},
			{Units: 10, Activation: kernels.Softmax},
		},
		Loss:      kernels.SoftmaxCrossEntropy,
		Adam:      kernels.DefaultAdam(),
		BatchSize: 1024,
	}
}

// seedData imitates task features: ten features and a score in (0, 1)
// that depends on them nonlinearly.
func seedData(r *rand.Rand, n int) (x, y []float32) {
	x, y = make([]float32, 0, n*10), make([]float32, 0, n)
	f := make([]float64, 10)
	for i := 0; i < n; i++ {
		for j := range f {
			f[j] = r.NormFloat64()
			x = append(x, float32(f[j]))
		}
		z := 0.8*f[0] - 0.6*f[1] + 0.5*f[2]*f[3] + 0.7*math.Abs(f[4]) - 0.4*f[6]
		y = append(y, float32(1/(1+math.Exp(-z))))
	}
	return x, y
}

// wideData labels Gaussian inputs by the argmax of a random linear teacher,
// so the classifier has something learnable.
func wideData(r *rand.Rand, n int) (x, y []float32) {
	const in, classes = 256, 10
	teacher := make([]float64, in*classes)
	for i := range teacher {
		teacher[i] = r.NormFloat64()
	}
	x, y = make([]float32, 0, n*in), make([]float32, n*classes)
	for i := 0; i < n; i++ {
		row := x[len(x) : len(x)+in]
		for j := 0; j < in; j++ {
			x = append(x, float32(r.NormFloat64()))
		}
		best, bestScore := 0, math.Inf(-1)
		for c := 0; c < classes; c++ {
			var s float64
			for j, v := range row {
				s += float64(v) * teacher[j*classes+c]
			}
			if s > bestScore {
				best, bestScore = c, s
			}
		}
		y[i*classes+best] = 1
	}
	return x, y
}

func describe(cfg kernels.Config) string {
	parts := []string{fmt.Sprint(cfg.Inputs)}
	for _, l := range cfg.Layers {
		p := fmt.Sprintf("%d %s", l.Units, l.Activation)
		if l.Dropout > 0 {
			p += fmt.Sprintf(" d%.1f", l.Dropout)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " > ")
}

func set(list string) map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		m[strings.TrimSpace(s)] = true
	}
	return m
}
