// Helpers shared by the CUDA backend's kernels (elementwise.cu, loss.cu).
#pragma once

// GOLDEN is the splitmix64 increment γ of random.go.
#define GOLDEN 0x9E3779B97F4A7C15ull

// mix64 is random.go's mix64, the splitmix64 finalizer, bit for bit.
__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

__device__ __forceinline__ long long global_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long global_stride() { return (long long)gridDim.x * blockDim.x; }

// nan_max is Go's max for floats: NaN wins, unlike fmaxf.
__device__ __forceinline__ float nan_max(float a, float b) {
    if (a != a || b != b) return a + b;
    return a > b ? a : b;
}

// The warp reductions leave the result in every lane.
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double warp_max_double(double v) {
    for (int o = 16; o > 0; o >>= 1) {
        const double u = __shfl_xor_sync(0xffffffffu, v, o);
        v = (v != v || u != u) ? v + u : (u > v ? u : v);
    }
    return v;
}

// block_sum adds one double per thread over the whole block (at most 1024
// threads) in a fixed order and returns the total to thread 0. Every thread
// of the block must call it.
__device__ __forceinline__ double block_sum(double v) {
    __shared__ double warps[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = warp_sum(v);
    if (lane == 0) warps[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < (blockDim.x + 31) / 32; w++) total += warps[w];
    return total;
}
