// Per-element and per-row kernels of the CUDA backend: minibatch gather,
// bias + activation forward and backward (with the bias gradient), dropout
// and Adam. `make kernels` compiles this file to elementwise.ptx.
//
// Where the CPU backend (cpu.go) rounds in float32, these kernels use the
// IEEE round-to-nearest intrinsics (__fadd_rn, __fmul_rn, ...), which the
// compiler never contracts into fused multiply-adds, so ReLU, identity,
// sigmoid's derivative, dropout and Adam give the CPU's bits. Where the CPU
// computes in float64 (exp, softmax sums, bias-gradient sums), so do these,
// in a different order; results then agree to float32 rounding.
//
// Sizes arrive as 64-bit parameters (the Go launcher passes every argument
// in 8 bytes); tensors hold at most 2^31 elements.

#include "common.cuh"

// Activation codes, as kernels.Activation numbers them.
#define ACT_IDENTITY 0
#define ACT_RELU 1
#define ACT_SIGMOID 2

// gather_rows sets dst row i to src row idx[i]. The host checked the indices.
extern "C" __global__ void gather_rows(float *__restrict__ dst, const float *__restrict__ src,
                                       const int *__restrict__ idx, long long rows, long long cols) {
    const long long n = rows * cols;
    for (long long e = global_index(); e < n; e += global_stride()) {
        // 32-bit division: an index fits, and 64-bit division is a long routine on the GPU.
        const unsigned i = (unsigned)e / (unsigned)cols, j = (unsigned)e - i * (unsigned)cols;
        dst[e] = src[(long long)idx[i] * cols + j];
    }
}

__device__ __forceinline__ float sigmoid(float z) {
    // Evaluated in double on the side where exp cannot overflow, as the CPU does.
    if (z >= 0.0f) return (float)(1.0 / (1.0 + exp(-(double)z)));
    const double e = exp((double)z);
    return (float)(e / (1.0 + e));
}

// bias_act computes y = act(x + bias) for the elementwise activations; y may be x.
extern "C" __global__ void bias_act(long long act, const float *x, const float *__restrict__ bias, float *y,
                                    long long rows, long long cols) {
    const long long n = rows * cols;
    for (long long e = global_index(); e < n; e += global_stride()) {
        const float z = __fadd_rn(x[e], bias[(unsigned)e % (unsigned)cols]);
        float v = z;
        if (act == ACT_RELU) {
            // Go's max(z, 0): NaN stays NaN and -0 becomes +0.
            v = (z > 0.0f || z != z) ? z : 0.0f;
        } else if (act == ACT_SIGMOID) {
            v = sigmoid(z);
        }
        y[e] = v;
    }
}

// softmax_rows computes y = softmax(x + bias) row by row, one warp per row,
// shifting by the row max so exp never overflows; y may be x.
extern "C" __global__ void __launch_bounds__(256) softmax_rows(const float *x, const float *__restrict__ bias, float *y, long long rows,
                                        long long cols) {
    const int lane = threadIdx.x % 32;
    const long long warps = (long long)gridDim.x * (blockDim.x / 32);
    for (long long r = global_index() / 32; r < rows; r += warps) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        float m = -INFINITY;
        for (long long j = lane; j < cols; j += 32) m = nan_max(m, __fadd_rn(xr[j], bias[j]));
        m = warp_max(m);
        double sum = 0.0;
        for (long long j = lane; j < cols; j += 32) {
            const double e = exp((double)__fsub_rn(__fadd_rn(xr[j], bias[j]), m));
            yr[j] = (float)e;
            sum += e;
        }
        const double inv = 1.0 / warp_sum(sum);
        for (long long j = lane; j < cols; j += 32) yr[j] = (float)((double)yr[j] * inv);
    }
}

// act_backward computes dz = f'(z) ⊙ dy from the forward output y = f(z)
// and, when dbias is not null, dbias = column sums of dz. A block covers 32
// columns: lane x owns a column, and the 32 rows of the block stride the
// batch, so each warp reads 32 adjacent floats of a row. The column sums
// accumulate in double and are combined across the block's rows in shared
// memory, one block per column range, with no atomics: deterministic.
// dz may be dy. Launch with blockDim (32, 32) and gridDim.x = ceil(cols/32).
extern "C" __global__ void __launch_bounds__(1024) act_backward(long long act, const float *__restrict__ y, const float *dy, float *dz,
                                        float *__restrict__ dbias, long long rows, long long cols) {
    __shared__ double part[32][33];
    const long long j = (long long)blockIdx.x * 32 + threadIdx.x;
    double acc = 0.0;
    if (j < cols) {
        for (long long r = threadIdx.y; r < rows; r += blockDim.y) {
            const long long e = r * cols + j;
            const float g = dy[e];
            float d = g;
            if (act == ACT_RELU) {
                d = y[e] > 0.0f ? g : 0.0f;
            } else if (act == ACT_SIGMOID) {
                const float v = y[e];
                d = __fmul_rn(__fmul_rn(g, v), __fsub_rn(1.0f, v));
            }
            dz[e] = d;
            acc += (double)d;
        }
    }
    if (dbias == nullptr) return; // uniform across the block: no barrier is skipped by some threads only
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < cols) {
        double s = 0.0;
        for (int k = 0; k < 32; k++) s += part[k][threadIdx.x];
        dbias[j] = (float)s;
    }
}

// softmax_backward_rows computes dz = y ⊙ (dy − ⟨y, dy⟩) per row, the
// softmax Jacobian product, one warp per row with the dot product in
// double. dz may be dy. The bias gradient is a following act_backward
// (identity) over dz.
extern "C" __global__ void __launch_bounds__(256) softmax_backward_rows(const float *__restrict__ y, const float *dy, float *dz,
                                                 long long rows, long long cols) {
    const int lane = threadIdx.x % 32;
    const long long warps = (long long)gridDim.x * (blockDim.x / 32);
    for (long long r = global_index() / 32; r < rows; r += warps) {
        const long long base = r * cols;
        double dot = 0.0;
        for (long long j = lane; j < cols; j += 32) dot += (double)y[base + j] * (double)dy[base + j];
        const float d = (float)warp_sum(dot);
        for (long long j = lane; j < cols; j += 32) dz[base + j] = __fmul_rn(y[base + j], __fsub_rn(dy[base + j], d));
    }
}

// dropout computes y = keep ? x·scale : 0 with the mask of kernels.DropoutKeep:
// keep = mix64(key + (i+1)·γ) >> 40 ≥ threshold for flat index i, where the
// host computed key = DropoutStreamKey(seed, step), threshold =
// DropoutThreshold(rate) and scale = float32(1/(1-rate)). Integer arithmetic
// modulo 2^64, so every element's decision is the CPU's. y may be x.
extern "C" __global__ void dropout(const float *x, float *y, long long n, unsigned long long key,
                                   unsigned long long threshold, float scale) {
    for (long long e = global_index(); e < n; e += global_stride()) {
        const unsigned long long h = mix64(key + ((unsigned long long)e + 1ull) * GOLDEN);
        y[e] = (h >> 40) >= threshold ? __fmul_rn(x[e], scale) : 0.0f;
    }
}

// adam applies one bias-corrected Adam update, operation for operation as
// CPU.AdamStep rounds it: m = β1·m + (1-β1)·g, v = β2·v + (1-β2)·g·g,
// w -= lr·(m·c1) / (sqrt(v·c2) + ε), where c1 = 1/(1-β1^t) and c2 =
// 1/(1-β2^t) come from the host. sqrtf is correctly rounded, so it equals
// the CPU's float32(math.Sqrt(float64(x))).
extern "C" __global__ void adam(float *__restrict__ w, const float *__restrict__ g, float *__restrict__ m,
                                float *__restrict__ v, long long n, float lr, float beta1, float beta2, float eps,
                                float c1, float c2) {
    const float ob1 = __fsub_rn(1.0f, beta1), ob2 = __fsub_rn(1.0f, beta2);
    for (long long e = global_index(); e < n; e += global_stride()) {
        const float gi = g[e];
        const float mi = __fadd_rn(__fmul_rn(beta1, m[e]), __fmul_rn(ob1, gi));
        const float vi = __fadd_rn(__fmul_rn(beta2, v[e]), __fmul_rn(__fmul_rn(ob2, gi), gi));
        m[e] = mi;
        v[e] = vi;
        const float vhat = __fsqrt_rn(__fmul_rn(vi, c2));
        w[e] = __fsub_rn(w[e], __fdiv_rn(__fmul_rn(lr, __fmul_rn(mi, c1)), __fadd_rn(vhat, eps)));
    }
}
