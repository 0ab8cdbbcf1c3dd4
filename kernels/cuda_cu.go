//go:build cuda

package kernels

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// cudaDriver is the NVIDIA driver, through gorgonia.org/cu's root package.
type cudaDriver struct {
	ctx  cu.CUContext
	mods []cu.Module
	fn   map[string]cu.Function
}

func newDriver() driver { return &cudaDriver{} }

func (d *cudaDriver) deviceCount() (int, error) { return cu.NumDevices() }

func (d *cudaDriver) describe(index int) (CUDADevice, error) {
	dev, err := cu.GetDevice(index)
	if err != nil {
		return CUDADevice{}, fmt.Errorf("CUDA device %d: %w", index, err)
	}
	info := CUDADevice{Index: index, Driver: cu.Version()}
	if info.Name, err = dev.Name(); err != nil {
		return info, fmt.Errorf("CUDA device %d: name: %w", index, err)
	}
	if info.MemoryBytes, err = dev.TotalMem(); err != nil {
		return info, fmt.Errorf("CUDA device %d: memory: %w", index, err)
	}
	var major, minor int
	attrs := map[cu.DeviceAttribute]*int{
		cu.ComputeCapabilityMajor: &major,
		cu.ComputeCapabilityMinor: &minor,
		cu.MultiprocessorCount:    &info.Multiprocessors,
	}
	for a, dst := range attrs {
		if *dst, err = dev.Attribute(a); err != nil {
			return info, fmt.Errorf("CUDA device %d: attribute %d: %w", index, a, err)
		}
	}
	info.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	return info, nil
}

func (d *cudaDriver) open(index int) error {
	dev, err := cu.GetDevice(index)
	if err != nil {
		return err
	}
	// cuCtxCreate makes the new context current on this thread.
	if d.ctx, err = dev.MakeContext(cu.SchedAuto); err != nil {
		return fmt.Errorf("creating context: %w", err)
	}
	d.fn = map[string]cu.Function{}
	return nil
}

func (d *cudaDriver) loadModule(name, ptx string, entries map[string]ptxEntry) error {
	// The driver JIT-compiles the PTX for this GPU here.
	mod, err := cu.LoadData(ptx)
	if err != nil {
		return fmt.Errorf("loading %s: %w", name, err)
	}
	d.mods = append(d.mods, mod)
	for k := range entries {
		if d.fn[k], err = mod.Function(k); err != nil {
			return fmt.Errorf("%s: kernel %s: %w", name, k, err)
		}
	}
	return nil
}

func (d *cudaDriver) close() {
	if d.ctx != (cu.CUContext{}) {
		_ = d.ctx.Destroy()
	}
}

func (d *cudaDriver) memInfo() (free, total int64, err error) { return cu.MemInfo() }

func (d *cudaDriver) alloc(bytes int64) (devicePtr, error) {
	p, err := cu.MemAlloc(bytes)
	return devicePtr(p), err
}

func (d *cudaDriver) free(p devicePtr) error { return cu.MemFree(cu.DevicePtr(p)) }

func (d *cudaDriver) zeroAsync(p devicePtr, words int64) error {
	return cu.MemsetD32Async(cu.DevicePtr(p), 0, words, cu.NoStream)
}

func (d *cudaDriver) upload(dst devicePtr, src unsafe.Pointer, bytes int64) error {
	return cu.MemcpyHtoD(cu.DevicePtr(dst), src, bytes)
}

func (d *cudaDriver) uploadAsync(dst devicePtr, src unsafe.Pointer, bytes int64) error {
	return cu.MemcpyHtoDAsync(cu.DevicePtr(dst), src, bytes, cu.NoStream)
}

func (d *cudaDriver) download(dst unsafe.Pointer, src devicePtr, bytes int64) error {
	return cu.MemcpyDtoH(dst, cu.DevicePtr(src), bytes)
}

func (d *cudaDriver) copyAsync(dst, src devicePtr, bytes int64) error {
	return cu.MemcpyDtoDAsync(cu.DevicePtr(dst), cu.DevicePtr(src), bytes, cu.NoStream)
}

func (d *cudaDriver) launch(kernel string, grid, block [3]int, args []uint64) error {
	fn, ok := d.fn[kernel]
	if !ok {
		return fmt.Errorf("kernel %s is not loaded", kernel)
	}
	params := make([]unsafe.Pointer, len(args))
	for i := range args {
		params[i] = unsafe.Pointer(&args[i])
	}
	return fn.Launch(grid[0], grid[1], grid[2], block[0], block[1], block[2], 0, cu.NoStream, params)
}
