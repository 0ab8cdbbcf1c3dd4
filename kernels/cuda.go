//go:build cuda || cudaemu

package kernels

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The kernels, compiled from *.cu by `make kernels` (nvcc 11.8, PTX ISA 7.8
// for compute_80): the driver JIT-compiles them for the GPU at hand when the
// backend starts, so a -tags cuda build needs no CUDA compiler.
//
//go:embed *.ptx
var ptxFiles embed.FS

// CUDA is the Backend on an NVIDIA GPU, running our own kernels (*.cu).
//
// Weights, gradients, Adam state and the training data stay in device
// memory: operations only queue kernels, and only Download (and Upload,
// Alloc, Free) waits for the device. One OS thread owns the CUDA context
// (a context is bound to a thread): every method hands its work to that
// thread through a queue, so a CUDA backend is safe for concurrent use, and
// concurrent Train calls interleave on one in-order stream. Operations that
// return no data do not wait for the owner thread either: they return once
// their shapes are checked, and the host runs ahead of the GPU.
//
// A kernel that fails to launch or run leaves the context unusable (CUDA
// errors of a running kernel are sticky), so the first such error is kept
// and returned by every later call; Close the backend and make a new one.
//
// Building it needs cuda.h and libcuda (the cuda build tag, gorgonia.org/cu);
// running it needs an NVIDIA driver and GPU. See the README, "GPU worker". Built with
// the cudaemu tag instead, it runs on the CUDA emulator (cuda_emu.go): the
// same backend and kernel sources, executed on the host CPU.
type CUDA struct {
	info CUDADevice
	sms  int // multiprocessors, for launch sizes

	queue  chan func()
	closed chan struct{} // closed when the owner thread has exited
	once   sync.Once
	failed atomic.Pointer[error]

	// Owned by the context thread.
	drv     driver
	kernels map[string]ptxEntry // every loaded kernel, from its PTX
	rows    deviceBuffer        // GatherRows' row indices
	last    []int32             // the indices rows holds, to skip re-sending them
	split   deviceBuffer        // split-K partial products of MatMul
}

// CUDADevice describes a GPU as the driver reports it.
type CUDADevice struct {
	// Index is the device ordinal (CUDA_VISIBLE_DEVICES order).
	Index int `json:"index"`
	// Name is the marketing name, e.g. "NVIDIA H200".
	Name string `json:"name"`
	// ComputeCapability is "major.minor", e.g. "9.0".
	ComputeCapability string `json:"compute_capability"`
	// MemoryBytes is the device's total memory.
	MemoryBytes int64 `json:"memory_bytes"`
	// Multiprocessors is the number of SMs.
	Multiprocessors int `json:"multiprocessors"`
	// Driver is the CUDA version the driver supports, e.g. 13000 for 13.0.
	Driver int `json:"cuda_driver_version"`
}

var _ Backend = (*CUDA)(nil)

// queueDepth bounds how far the host runs ahead of the owner thread; the
// driver's own launch queue bounds how far it runs ahead of the GPU.
const queueDepth = 1024

// CUDADevices lists the GPUs the driver sees. It fails when the driver has
// none (or is unusable), which qflow-gpu reports before starting.
func CUDADevices() ([]CUDADevice, error) {
	drv := newDriver()
	n, err := drv.deviceCount()
	if err != nil {
		return nil, fmt.Errorf("counting CUDA devices: %w", err)
	}
	var out []CUDADevice
	for i := 0; i < n; i++ {
		d, err := drv.describe(i)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// NewCUDA creates a context on GPU index (0 is the first visible one),
// starts the thread that owns it and loads the kernels, which the driver
// JIT-compiles for the GPU (cached by the driver after the first start).
func NewCUDA(index int) (*CUDA, error) {
	drv := newDriver()
	info, err := drv.describe(index)
	if err != nil {
		return nil, err
	}
	c := &CUDA{
		drv:    drv,
		info:   info,
		sms:    max(info.Multiprocessors, 1),
		queue:  make(chan func(), queueDepth),
		closed: make(chan struct{}),
	}
	started := make(chan error, 1)
	go c.own(started)
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting CUDA on device %d (%s): %w", index, info.Name, err)
	}
	return c, nil
}

// own is the context thread: it creates the context, loads the modules and
// then runs queued work until Close sends nil. The goroutine never unlocks
// its OS thread, so the thread exits with it and no other goroutine ever
// runs on a thread with our context current.
func (c *CUDA) own(started chan<- error) {
	runtime.LockOSThread()
	defer close(c.closed)
	if err := c.start(); err != nil {
		c.stop()
		started <- err
		return
	}
	started <- nil
	for f := range c.queue {
		if f == nil {
			c.stop()
			return
		}
		f()
	}
}

func (c *CUDA) start() error {
	if err := c.drv.open(c.info.Index); err != nil {
		return err
	}
	c.kernels = map[string]ptxEntry{}
	names, err := fs.Glob(ptxFiles, "*.ptx")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		src, err := ptxFiles.ReadFile(name)
		if err != nil {
			return err
		}
		entries := ptxEntries(string(src))
		if err := c.drv.loadModule(name, string(src), entries); err != nil {
			return err
		}
		for k, e := range entries {
			c.kernels[k] = e
		}
	}
	for _, k := range kernelNames {
		if _, ok := c.kernels[k]; !ok {
			return fmt.Errorf("kernel %s is in no PTX file (run make kernels)", k)
		}
	}
	return nil
}

// stop releases what start made; destroying the context frees every
// allocation in it.
func (c *CUDA) stop() { c.drv.close() }

// ptxEntry is what a module's PTX declares about one kernel.
type ptxEntry struct {
	// params are the sizes in bytes of its parameters, in order.
	params []int
	// maxThreads is its launch bound (.maxntid), 0 when it has none.
	maxThreads int
}

// ptxEntries reads the kernels a PTX module defines:
//
//	.visible .entry adam(
//		.param .u64 adam_param_0,
//		.param .f32 adam_param_5,
//		...
//	)
//	.maxntid 256, 1, 1
func ptxEntries(ptx string) map[string]ptxEntry {
	out := map[string]ptxEntry{}
	kernel, inParams := "", false
	for _, line := range strings.Split(ptx, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, ".visible .entry "); ok {
			kernel, _, _ = strings.Cut(rest, "(")
			out[kernel], inParams = ptxEntry{}, true
			continue
		}
		if kernel == "" {
			continue
		}
		e := out[kernel]
		switch {
		case inParams && strings.HasPrefix(line, ".param "):
			// ".param .u64 adam_param_0,": the type's width in bits
			size := 0
			if f := strings.Fields(line); len(f) >= 2 && len(f[1]) > 2 {
				size, _ = strconv.Atoi(f[1][2:])
			}
			e.params = append(e.params, size/8)
		case inParams && strings.HasPrefix(line, ")"):
			inParams = false
		case inParams:
		case strings.HasPrefix(line, ".maxntid "):
			var x, y, z int
			if n, _ := fmt.Sscanf(line, ".maxntid %d, %d, %d", &x, &y, &z); n == 3 {
				e.maxThreads = x * y * z
			}
		case !strings.HasPrefix(line, "."):
			kernel = "" // the body: the performance directives come before it
			continue
		}
		out[kernel] = e
	}
	return out
}

// kernelNames are the kernels the backend launches; start checks they loaded.
var kernelNames = []string{
	"gather_rows", "bias_act", "softmax_rows", "act_backward", "softmax_backward_rows",
	"dropout", "adam", "mse_loss", "xent_loss", "sgemm_splitk_reduce",
	"sgemm_large_nn", "sgemm_large_nt", "sgemm_large_tn", "sgemm_large_tt",
	"sgemm_medium_nn", "sgemm_medium_nt", "sgemm_medium_tn", "sgemm_medium_tt",
	"sgemm_small_nn", "sgemm_small_nt", "sgemm_small_tn", "sgemm_small_tt",
}

// Close runs the work queued before it, then destroys the context (which
// frees every tensor) and stops the owner thread. Later calls fail with an
// error; Close itself may be called again.
func (c *CUDA) Close() error {
	c.once.Do(func() {
		select {
		case c.queue <- nil:
		case <-c.closed:
		}
	})
	<-c.closed
	return nil
}

// Device describes the GPU this backend runs on.
func (c *CUDA) Device() CUDADevice { return c.info }

// MemInfo returns the device's free and total memory in bytes.
func (c *CUDA) MemInfo() (free, total int64, err error) {
	err = c.call("memory info", func() error {
		var err error
		free, total, err = c.drv.memInfo()
		return err
	})
	return free, total, err
}

// Name implements Backend.
func (c *CUDA) Name() string { return "cuda" }

var errCUDAClosed = errors.New("cuda backend is closed")

// failure is the sticky error of an earlier asynchronous operation.
func (c *CUDA) failure() error {
	if p := c.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (c *CUDA) fail(err error) {
	err = fmt.Errorf("cuda: an earlier operation failed, the context is unusable: %w", err)
	c.failed.CompareAndSwap(nil, &err)
}

// enqueue runs f on the context thread after the work queued before it and
// returns without waiting; f's error becomes the backend's sticky failure.
func (c *CUDA) enqueue(op string, f func() error) error {
	if err := c.failure(); err != nil {
		return err
	}
	job := func() {
		if c.failure() != nil {
			return // the context is broken; do not queue more work on it
		}
		if err := f(); err != nil {
			c.fail(fmt.Errorf("%s: %w", op, err))
		}
	}
	select {
	case c.queue <- job:
		return nil
	case <-c.closed:
		return fmt.Errorf("%s: %w", op, errCUDAClosed)
	}
}

// call runs f on the context thread and waits for it.
func (c *CUDA) call(op string, f func() error) error {
	if err := c.failure(); err != nil {
		return err
	}
	done := make(chan error, 1)
	job := func() { done <- f() }
	select {
	case c.queue <- job:
	case <-c.closed:
		return fmt.Errorf("%s: %w", op, errCUDAClosed)
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return c.failure()
	case <-c.closed:
		return fmt.Errorf("%s: %w", op, errCUDAClosed)
	}
}

// launch queues kernel name on the context thread's stream. Every argument
// travels in 8 bytes (the encodings below), of which the driver reads as
// many as the PTX declares for that parameter.
func (c *CUDA) launch(name string, grid, block [3]int, args ...uint64) error {
	// The driver reads as many arguments as the kernel declares, whatever
	// the slice holds: a miscount would read garbage.
	k, ok := c.kernels[name]
	if !ok {
		return fmt.Errorf("launching %s: no such kernel", name)
	}
	if len(args) != len(k.params) {
		return fmt.Errorf("launching %s: %d arguments for %d parameters", name, len(args), len(k.params))
	}
	// A launch over the kernel's bound fails on the GPU; say which one.
	if threads := block[0] * block[1] * block[2]; k.maxThreads > 0 && threads > k.maxThreads {
		return fmt.Errorf("launching %s: %d threads per block, its launch bound is %d", name, threads, k.maxThreads)
	}
	if err := c.drv.launch(name, grid, block, args); err != nil {
		return fmt.Errorf("launching %s: %w", name, err)
	}
	return nil
}

// Kernel argument encodings: a float32 travels in the low 32 bits, which
// is where a 4-byte parameter is read from on a little-endian host.
func f32(x float32) uint64     { return uint64(math.Float32bits(x)) }
func f64(x float64) uint64     { return math.Float64bits(x) }
func i64(x int) uint64         { return uint64(int64(x)) }
func ptr(t *cudaTensor) uint64 { return uint64(t.ptr) }
func optPtr(t *cudaTensor) uint64 {
	if t == nil {
		return 0
	}
	return uint64(t.ptr)
}

// elementwise is the launch shape of the grid-stride kernels: 256 threads,
// and enough blocks to fill the GPU a few times over, but no more than n needs.
func (c *CUDA) elementwise(n int) (grid, block [3]int) {
	blocks := min((n+255)/256, 8*c.sms)
	return [3]int{max(blocks, 1), 1, 1}, [3]int{256, 1, 1}
}

// rowWarps is the launch shape of the warp-per-row kernels.
func (c *CUDA) rowWarps(rows int) (grid, block [3]int) {
	const warpsPerBlock = 8
	blocks := min((rows+warpsPerBlock-1)/warpsPerBlock, 8*c.sms)
	return [3]int{max(blocks, 1), 1, 1}, [3]int{32 * warpsPerBlock, 1, 1}
}

// deviceBuffer is scratch memory that grows to the largest request.
type deviceBuffer struct {
	ptr   devicePtr
	bytes int64
}

// ensure returns a buffer of at least n bytes and whether it is new.
// Growing frees the old buffer; cuMemFree synchronizes with the device
// first, so kernels still queued on the old one finish before it goes.
// Growth is rare (the largest batch or matrix sets the size), so that
// synchronization is too.
func (b *deviceBuffer) ensure(drv driver, n int64) (devicePtr, bool, error) {
	if n <= b.bytes {
		return b.ptr, false, nil
	}
	if b.ptr != 0 {
		if err := drv.free(b.ptr); err != nil {
			return 0, false, err
		}
		b.ptr, b.bytes = 0, 0
	}
	n = max(n, 1<<16)
	p, err := drv.alloc(n)
	if err != nil {
		return 0, false, fmt.Errorf("allocating %d bytes of scratch: %w", n, err)
	}
	b.ptr, b.bytes = p, n
	return p, true, nil
}

// cudaTensor is a rows×cols float32 matrix in device memory.
type cudaTensor struct {
	rows, cols int
	ptr        devicePtr
	owner      *CUDA
	freed      atomic.Bool
}

func (t *cudaTensor) Rows() int { return t.rows }
func (t *cudaTensor) Cols() int { return t.cols }

func (t *cudaTensor) n() int       { return t.rows * t.cols }
func (t *cudaTensor) bytes() int64 { return int64(t.n()) * 4 }

// tensor unwraps a handle, rejecting nil, foreign and freed tensors with the
// op and operand named.
func (c *CUDA) tensor(op, name string, t Tensor) (*cudaTensor, error) {
	ct, ok := t.(*cudaTensor)
	if !ok || ct == nil || ct.owner != c {
		return nil, fmt.Errorf("%s: %s is %T, not a tensor of this cuda backend", op, name, t)
	}
	if ct.freed.Load() {
		return nil, fmt.Errorf("%s: %s: %w", op, name, errFreed)
	}
	return ct, nil
}

func (c *CUDA) optTensor(op, name string, t Tensor) (*cudaTensor, error) {
	if t == nil {
		return nil, nil
	}
	return c.tensor(op, name, t)
}

// Alloc implements Backend.
func (c *CUDA) Alloc(rows, cols int) (Tensor, error) {
	if rows <= 0 || cols <= 0 || rows > maxElements/cols {
		return nil, fmt.Errorf("cuda alloc: invalid shape %dx%d", rows, cols)
	}
	t := &cudaTensor{rows: rows, cols: cols, owner: c}
	err := c.call("cuda alloc", func() error {
		p, err := c.drv.alloc(t.bytes())
		if err != nil {
			return fmt.Errorf("%dx%d: %w", rows, cols, err)
		}
		// Queued on the stream, so it is done before any later kernel runs.
		if err := c.drv.zeroAsync(p, int64(t.n())); err != nil {
			_ = c.drv.free(p)
			return err
		}
		t.ptr = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Free implements Backend.
func (c *CUDA) Free(t Tensor) error {
	ct, err := c.tensor("cuda free", "t", t)
	if err != nil {
		return err
	}
	if !ct.freed.CompareAndSwap(false, true) {
		return fmt.Errorf("cuda free: t: %w", errFreed)
	}
	return c.call("cuda free", func() error { return c.drv.free(ct.ptr) })
}

// Upload implements Backend. It waits for the copy, so src may be reused.
func (c *CUDA) Upload(dst Tensor, src []float32) error {
	d, err := c.tensor("upload", "dst", dst)
	if err != nil {
		return err
	}
	if len(src) != d.n() {
		return fmt.Errorf("upload: %d values for a %dx%d tensor", len(src), d.rows, d.cols)
	}
	return c.call("upload", func() error {
		return c.drv.upload(d.ptr, unsafe.Pointer(&src[0]), d.bytes())
	})
}

// Download implements Backend: the copy runs after all queued work, so this
// is where the host waits for the GPU.
func (c *CUDA) Download(dst []float32, src Tensor) error {
	s, err := c.tensor("download", "src", src)
	if err != nil {
		return err
	}
	if len(dst) != s.n() {
		return fmt.Errorf("download: %d-value buffer for a %dx%d tensor", len(dst), s.rows, s.cols)
	}
	return c.call("download", func() error {
		return c.drv.download(unsafe.Pointer(&dst[0]), s.ptr, s.bytes())
	})
}
