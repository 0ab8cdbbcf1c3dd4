//go:build cudaemu && !cuda

package kernels

// #cgo CXXFLAGS: -std=c++17 -O2 -fno-strict-aliasing -Wall -Wno-sign-compare -Wno-unknown-pragmas
// #include <stdint.h>
// #include <stdlib.h>
// int emu_kernel_signature(const char *name, int *sizes, int max);
// int emu_kernel_count(void);
// const char *emu_kernel_name(int i);
// void emu_set_total_bytes(int64_t bytes);
// void emu_mem_info(int64_t *free_bytes, int64_t *total);
// int emu_context_create(void);
// void emu_context_destroy(int ctx);
// uintptr_t emu_alloc(int ctx, int64_t bytes);
// int emu_free(int ctx, uintptr_t p);
// int emu_check(int ctx, uintptr_t p, int64_t bytes);
// static void *emu_pointer(uintptr_t p) { return (void *)p; }
// int emu_launch(int ctx, const char *name, const unsigned *grid, const unsigned *block,
//                const uint64_t *args, int nargs, char *err, size_t errlen);
import "C"

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"unsafe"
)

// The kernel sources cuda_emu.cc compiles. Embedding them is what makes the
// go command rebuild the emulator when a .cu file changes: it hashes
// embedded files, not the headers a C++ file includes.
//
//go:embed *.cu *.cuh
var emuSources embed.FS

// The emulated device. It reports the H200's multiprocessor count by
// default, so the backend plans the launches (tile shapes, split-K) it will
// make on that GPU; QFLOW_CUDAEMU_SMS sets another.
const (
	emuName   = "QuantumFlow CUDA emulator (host CPU)"
	emuSMs    = 132
	emuMemory = 4 << 30
)

// emuDriver is the driver of the CUDA emulator (cuda_emu.h, cuda_emu.cc):
// one device whose memory is host memory and whose launches run the kernel
// sources on the calling thread, block after block, checking what a GPU
// would not (pointer arguments, copy bounds, barrier divergence). It is for
// testing the CUDA backend without a GPU: `go test -tags cudaemu ./kernels`.
// It says nothing about speed, and the host's exp and log are not the GPU's.
type emuDriver struct {
	ctx C.int
}

func newDriver() driver { return &emuDriver{} }

func (d *emuDriver) deviceCount() (int, error) { return 1, nil }

func (d *emuDriver) describe(index int) (CUDADevice, error) {
	if index != 0 {
		return CUDADevice{}, fmt.Errorf("CUDA device %d: the emulator has one device, 0", index)
	}
	sms := emuSMs
	if s := os.Getenv("QFLOW_CUDAEMU_SMS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return CUDADevice{}, fmt.Errorf("QFLOW_CUDAEMU_SMS=%q: want a positive number of multiprocessors", s)
		}
		sms = n
	}
	return CUDADevice{Index: 0, Name: emuName, ComputeCapability: "8.0", MemoryBytes: emuMemory, Multiprocessors: sms}, nil
}

func (d *emuDriver) open(index int) error {
	if _, err := d.describe(index); err != nil {
		return err
	}
	C.emu_set_total_bytes(emuMemory)
	d.ctx = C.emu_context_create()
	return nil
}

// loadModule checks the PTX against the emulator's build of the same
// sources: every kernel present, with parameters of the same sizes. A
// mismatch means the committed PTX is stale.
func (d *emuDriver) loadModule(name, _ string, entries map[string]ptxEntry) error {
	for k, e := range entries {
		ck := C.CString(k)
		sizes := make([]C.int, 32)
		n := C.emu_kernel_signature(ck, &sizes[0], C.int(len(sizes)))
		C.free(unsafe.Pointer(ck))
		if n < 0 {
			return fmt.Errorf("%s: kernel %s is not in the emulator's build of the sources (stale PTX?)", name, k)
		}
		got := make([]int, int(n))
		for i := range got {
			got[i] = int(sizes[i])
		}
		if !slices.Equal(got, e.params) {
			return fmt.Errorf("%s: kernel %s takes parameters of %v bytes in the PTX and %v in its source (stale PTX?)", name, k, e.params, got)
		}
	}
	return nil
}

func (d *emuDriver) close() {
	if d.ctx != 0 {
		C.emu_context_destroy(d.ctx)
		d.ctx = 0
	}
}

func (d *emuDriver) memInfo() (free, total int64, err error) {
	var f, t C.int64_t
	C.emu_mem_info(&f, &t)
	return int64(f), int64(t), nil
}

var errEmuOutOfMemory = errors.New("out of memory (CUDA_ERROR_OUT_OF_MEMORY, emulated)")

func (d *emuDriver) alloc(bytes int64) (devicePtr, error) {
	p := C.emu_alloc(d.ctx, C.int64_t(bytes))
	if p == 0 {
		return 0, errEmuOutOfMemory
	}
	return devicePtr(p), nil
}

func (d *emuDriver) free(p devicePtr) error {
	if C.emu_free(d.ctx, C.uintptr_t(p)) != 0 {
		return fmt.Errorf("freeing %#x: not an allocation of this context (emulated CUDA_ERROR_INVALID_VALUE)", uintptr(p))
	}
	return nil
}

// device returns [p, p+bytes) as a slice, checking it is device memory.
func (d *emuDriver) device(p devicePtr, bytes int64) ([]byte, error) {
	if C.emu_check(d.ctx, C.uintptr_t(p), C.int64_t(bytes)) != 0 {
		return nil, fmt.Errorf("%d bytes at %#x are not inside one allocation of this context", bytes, uintptr(p))
	}
	// Emulated device memory is C memory: a Go slice over it is fine for cgo.
	return unsafe.Slice((*byte)(C.emu_pointer(C.uintptr_t(p))), bytes), nil
}

func (d *emuDriver) zeroAsync(p devicePtr, words int64) error {
	b, err := d.device(p, words*4)
	if err != nil {
		return err
	}
	clear(b)
	return nil
}

func (d *emuDriver) upload(dst devicePtr, src unsafe.Pointer, bytes int64) error {
	b, err := d.device(dst, bytes)
	if err != nil {
		return err
	}
	copy(b, unsafe.Slice((*byte)(src), bytes))
	return nil
}

func (d *emuDriver) uploadAsync(dst devicePtr, src unsafe.Pointer, bytes int64) error {
	return d.upload(dst, src, bytes)
}

func (d *emuDriver) download(dst unsafe.Pointer, src devicePtr, bytes int64) error {
	b, err := d.device(src, bytes)
	if err != nil {
		return err
	}
	copy(unsafe.Slice((*byte)(dst), bytes), b)
	return nil
}

func (d *emuDriver) copyAsync(dst, src devicePtr, bytes int64) error {
	to, err := d.device(dst, bytes)
	if err != nil {
		return err
	}
	from, err := d.device(src, bytes)
	if err != nil {
		return err
	}
	copy(to, from)
	return nil
}

func (d *emuDriver) launch(kernel string, grid, block [3]int, args []uint64) error {
	var g, b [3]C.uint
	for i := range grid {
		if grid[i] < 0 || block[i] < 0 || grid[i] > 1<<31 || block[i] > 1<<31 {
			return fmt.Errorf("launch grid %v block %v out of range", grid, block)
		}
		g[i], b[i] = C.uint(grid[i]), C.uint(block[i])
	}
	name := C.CString(kernel)
	defer C.free(unsafe.Pointer(name))
	// The arguments go to C in C memory (cgo forbids keeping Go pointers).
	n := max(len(args), 1)
	cargs := (*C.uint64_t)(C.malloc(C.size_t(n * 8)))
	defer C.free(unsafe.Pointer(cargs))
	copy(unsafe.Slice((*uint64)(unsafe.Pointer(cargs)), n), args)
	msg := make([]byte, 512)
	if C.emu_launch(d.ctx, name, &g[0], &b[0], cargs, C.int(len(args)), (*C.char)(unsafe.Pointer(&msg[0])), C.size_t(len(msg))) != 0 {
		return errors.New(C.GoString((*C.char)(unsafe.Pointer(&msg[0]))))
	}
	return nil
}

// emuKernelCount and emuKernelName list the emulator's launch table.
func emuKernelCount() int { return int(C.emu_kernel_count()) }

func emuKernelName(i int) string { return C.GoString(C.emu_kernel_name(C.int(i))) }
