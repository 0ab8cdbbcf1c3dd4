//go:build cuda || cudaemu

package kernels

import "unsafe"

// devicePtr is an address in device memory.
type devicePtr uintptr

// driver is what the CUDA backend needs of a CUDA driver: device queries,
// one context, device memory, copies and kernel launches on one in-order
// stream. cudaDriver (cuda_cu.go, the cuda build tag) is the NVIDIA driver
// through gorgonia.org/cu; emuDriver (cuda_emu.go, the cudaemu tag) runs the
// same kernel sources compiled for the host CPU, so the backend and its
// kernels are tested without a GPU.
//
// Except for the device queries, methods are called only from the backend's
// owner thread, after open and before close. The *Async methods are queued
// on the stream behind the launches before them; the others wait for it.
type driver interface {
	deviceCount() (int, error)
	describe(index int) (CUDADevice, error)

	// open creates a context on device index, current on the calling thread.
	open(index int) error
	// loadModule loads a PTX module; entries are the kernels it defines,
	// with their parameters.
	loadModule(name, ptx string, entries map[string]ptxEntry) error
	// close destroys the context, which frees everything allocated in it.
	close()

	memInfo() (free, total int64, err error)
	alloc(bytes int64) (devicePtr, error)
	free(p devicePtr) error
	zeroAsync(p devicePtr, words int64) error
	upload(dst devicePtr, src unsafe.Pointer, bytes int64) error
	uploadAsync(dst devicePtr, src unsafe.Pointer, bytes int64) error
	download(dst unsafe.Pointer, src devicePtr, bytes int64) error
	copyAsync(dst, src devicePtr, bytes int64) error
	// launch queues kernel with every argument in 8 bytes (see arg encodings).
	launch(kernel string, grid, block [3]int, args []uint64) error
}
