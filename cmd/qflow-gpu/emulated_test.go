//go:build cudaemu

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/quantumflow/qflow/internal/dbtest"
)

// qflow-gpu end to end without a GPU: the binary built with -tags cudaemu
// trains on the CUDA emulator, through the same CUDA backend, kernel sources
// and start-up path as on a GPU. Run by `make test-cudaemu`.

var bin struct{ gpu, cpu string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qflow-gpu-bin")
	if err != nil {
		panic(err)
	}
	bin.gpu, bin.cpu = filepath.Join(dir, "qflow-gpu"), filepath.Join(dir, "qflow")
	for _, b := range [][]string{{"-tags", "cudaemu", "-o", bin.gpu, "."}, {"-o", bin.cpu, "../qflow"}} {
		if out, err := exec.Command("go", append([]string{"build"}, b...)...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %v: %v\n%s", b, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type testBundle struct {
	ctx  context.Context
	url  string
	pool *pgxpool.Pool
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	url := dbtest.URL(t)
	return &testBundle{ctx: ctx, url: url, pool: dbtest.PoolFor(t, url, 4)}
}

func (b *testBundle) command(binary string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(b.ctx, binary, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+b.url)
	return cmd
}

// worker starts a worker process; the test stops it (or kills it at the end).
func (b *testBundle) worker(t *testing.T, binary, id string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := b.command(binary, append([]string{"worker", "--id", id}, args...)...)
	log := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker %s log:\n%s", id, log.String())
		}
	})
	b.waitFor(t, "worker "+id+" registered", "SELECT count(*) FROM qflow.workers WHERE id = $1", id)
	return cmd, log
}

func (b *testBundle) waitFor(t *testing.T, what, sql string, args ...any) {
	t.Helper()
	for {
		var n int
		require.NoError(t, b.pool.QueryRow(b.ctx, sql, args...).Scan(&n), "waiting for %s", what)
		if n > 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(body)
}

func TestGPUWorkerTrainsOnItsDeviceAndServesOnlyTheGPUClass(t *testing.T) {
	t.Parallel()
	b := setup(t)
	out, err := b.command(bin.cpu, "seed-data", "--rows", "1500", "--seed", "3").CombinedOutput()
	require.NoError(t, err, string(out))

	// `qflow-gpu device`: the backend starts and the device is printed.
	out, err = b.command(bin.gpu, "device").Output()
	require.NoError(t, err)
	require.JSONEq(t, `{"index": 0, "name": "QuantumFlow CUDA emulator (host CPU)", "compute_capability": "8.0",
		"memory_bytes": 4294967296, "multiprocessors": 132, "cuda_driver_version": 0, "memory_free_bytes": 4294967296}`, string(out))

	// Only the gpu class, said before anything starts.
	out, err = b.command(bin.gpu, "worker", "--classes", "cpu,gpu", "--metrics-addr", "").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), `this binary serves only the gpu class(es), not "cpu"`)

	addr := freeAddr(t)
	gpu, gpuLog := b.worker(t, bin.gpu, "gpu-emu", "--metrics-addr", addr)
	b.worker(t, bin.cpu, "cpu-1", "--classes", "cpu", "--metrics-addr", "")
	require.Contains(t, gpuLog.String(), `msg="gpu ready" device="QuantumFlow CUDA emulator (host CPU)" index=0 compute_capability=8.0 multiprocessors=132`)

	// The device, on the worker's metrics endpoint.
	metrics := scrape(t, addr)
	require.Contains(t, metrics, `qflow_gpu_info{compute_capability="8.0",cuda_driver="0",device="QuantumFlow CUDA emulator (host CPU)",index="0"} 1`)
	require.Contains(t, metrics, `qflow_gpu_memory_bytes{device="QuantumFlow CUDA emulator (host CPU)",index="0",kind="total"} 4.294967296e+09`)
	free := regexp.MustCompile(`qflow_gpu_memory_bytes\{device="[^"]+",index="0",kind="free"\} (\S+)`).FindStringSubmatch(metrics)
	require.NotNil(t, free, metrics)
	f, err := strconv.ParseFloat(free[1], 64)
	require.NoError(t, err)
	require.Positive(t, f)
	require.LessOrEqual(t, f, 4294967296.0)

	var run int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `INSERT INTO qflow.runs (workflow, mode, input)
		VALUES ('complexity_training', 'workflow', '{"epochs": 20, "seed": 7, "min_rows": 50}') RETURNING id`).Scan(&run))
	b.waitFor(t, "the run to finish", "SELECT count(*) FROM qflow.runs WHERE id = $1 AND status NOT IN ('pending', 'running')", run)
	var status string
	var errText *string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT status, error FROM qflow.runs WHERE id = $1", run).Scan(&status, &errText))
	require.Equal(t, "succeeded", status, "run error: %v", errText)

	// The training step ran on the GPU worker, on the CUDA backend; every other step on the CPU worker.
	rows, err := b.pool.Query(b.ctx, "SELECT step, worker FROM qflow.step_attempts WHERE run_id = $1 AND status = 'succeeded'", run)
	require.NoError(t, err)
	workers := map[string]string{}
	for rows.Next() {
		var step, worker string
		require.NoError(t, rows.Scan(&step, &worker))
		workers[step] = worker
	}
	require.NoError(t, rows.Err())
	require.Len(t, workers, 7, "the seven steps, training as the one element of its map (no sweep)")
	for step, worker := range workers {
		want := "cpu-1"
		if step == "model_training[0]" {
			want = "gpu-emu"
		}
		require.Equal(t, want, worker, "step %s", step)
	}
	var backend string
	var first, final float64
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT output -> 'training' ->> 'backend', (output -> 'training' ->> 'first_epoch_loss')::float8,
		(output -> 'training' ->> 'final_epoch_loss')::float8 FROM qflow.step_runs WHERE run_id = $1 AND step = 'model_training[0]'`, run).Scan(&backend, &first, &final))
	require.Equal(t, "cuda", backend)
	require.Less(t, final, first/2, "the loss fell")

	// SIGTERM stops it cleanly.
	require.NoError(t, gpu.Process.Signal(syscall.SIGTERM))
	require.NoError(t, gpu.Wait(), gpuLog.String())
}

func TestAPreemptedGPUWorkersTrainingResumesOnAnother(t *testing.T) {
	t.Parallel()
	b := setup(t)
	out, err := b.command(bin.cpu, "seed-data", "--rows", "1500", "--seed", "3").CombinedOutput()
	require.NoError(t, err, string(out))
	b.worker(t, bin.cpu, "cpu-1", "--classes", "cpu", "--metrics-addr", "")
	// A spot worker: its notice leaves no time for a step to finish, so SIGTERM cancels them.
	spot, spotLog := b.worker(t, bin.gpu, "gpu-spot", "--metrics-addr", "", "--shutdown-timeout", "100ms")

	const input = `{"epochs": 60, "seed": 7, "min_rows": 50, "checkpoint_every": 1}`
	var run int64
	require.NoError(t, b.pool.QueryRow(b.ctx, `INSERT INTO qflow.runs (workflow, mode, input)
		VALUES ('complexity_training', 'workflow', $1) RETURNING id`, input).Scan(&run))
	const checkpoint = `FROM ml.artifacts WHERE run_id = $1 AND name = 'checkpoint_model_training_0'`
	b.waitFor(t, "epoch 3's checkpoint", "SELECT count(*) "+checkpoint+" AND (meta ->> 'epoch')::int >= 3", run)

	// Preempted: the training saves its last completed epoch and the worker releases the step.
	require.NoError(t, spot.Process.Signal(syscall.SIGTERM))
	require.NoError(t, spot.Wait(), spotLog.String())
	var saved int
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT (meta ->> 'epoch')::int "+checkpoint, run).Scan(&saved))
	require.Less(t, saved, 60, "the training was interrupted")
	var status string
	require.NoError(t, b.pool.QueryRow(b.ctx, "SELECT status FROM qflow.step_runs WHERE run_id = $1 AND step = 'model_training[0]'", run).Scan(&status))
	require.NotEqual(t, "succeeded", status)

	// Another GPU worker takes the step over from the saved epoch.
	b.worker(t, bin.gpu, "gpu-2", "--metrics-addr", "")
	b.waitFor(t, "the run to finish", "SELECT count(*) FROM qflow.runs WHERE id = $1 AND status NOT IN ('pending', 'running')", run)
	var resumed int
	require.NoError(t, b.pool.QueryRow(b.ctx, `SELECT r.status, (s.output -> 'training' ->> 'resumed_from_epoch')::int
		FROM qflow.runs r JOIN qflow.step_runs s ON s.run_id = r.id AND s.step = 'model_training[0]' WHERE r.id = $1`, run).Scan(&status, &resumed))
	require.Equal(t, "succeeded", status)
	require.Equal(t, saved, resumed)
	t.Logf("preempted after epoch %d of 60, resumed there on another worker", saved)
}
