// Scaling: the steady load served by 1, 2, 4 ... separate `qflow worker` processes on the one
// database, as a deployment would scale out, to see what each added process buys.

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// scaling measures the engine at the first level of -in-flight with each number of
// -processes worker processes.
func (b *bench) scaling(ctx context.Context, res *Result) error {
	o := b.o
	bin, cleanup, err := buildQflow()
	if err != nil {
		return err
	}
	defer cleanup()
	for _, n := range o.processes {
		var samples []float64
		for rep := 0; rep < o.reps; rep++ {
			rate, err := b.processes(ctx, bin, n, o.inFlight[0])
			if err != nil {
				return err
			}
			samples = append(samples, rate)
		}
		p := ScalePoint{Processes: n, StepsPerSec: median(samples)}
		res.WorkersScaling = append(res.WorkersScaling, p)
		res.Samples[fmt.Sprintf("processes_%d", n)] = samples
		fmt.Printf("%d worker process(es): %.0f steps/s\n", n, p.StepsPerSec)
	}
	return nil
}

// processes measures steady load served by n qflow worker processes.
func (b *bench) processes(ctx context.Context, bin string, n, k int) (float64, error) {
	if err := b.reset(ctx); err != nil {
		return 0, err
	}
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Signal(os.Interrupt)
		}
		for _, c := range cmds {
			_ = c.Wait()
		}
	}()
	for i := 0; i < n; i++ {
		c := exec.Command(bin, "worker", "--id", fmt.Sprintf("bench-%d", i), "--max-workers", fmt.Sprint(b.o.workers), "--metrics-addr", "")
		c.Env = append(os.Environ(), "DATABASE_URL="+b.url)
		if err := c.Start(); err != nil {
			return 0, err
		}
		cmds = append(cmds, c)
	}
	for {
		var live int
		if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM qflow.workers WHERE id LIKE 'bench-%'").Scan(&live); err != nil {
			return 0, err
		}
		if live >= n {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return b.underLoad(ctx, k, "workflow", b.count(stepsDone))
}

// buildQflow builds the qflow binary for the process-scaling scenario.
func buildQflow() (string, func(), error) {
	dir, err := os.MkdirTemp("", "qflow-bench")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "qflow")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/qflow").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building qflow: %w\n%s", err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}
