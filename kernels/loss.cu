// Loss kernels of the CUDA backend: mean squared error and softmax
// cross-entropy, each writing the gradient of the batch-mean loss and adding
// the batch's summed loss to a 1×1 accumulator. `make kernels` compiles this
// file to loss.ptx.
//
// Both run as one block of 1024 threads: a training batch is at most a few
// thousand rows, and one block sums the loss in a fixed order with no
// atomics, so the accumulator is deterministic and stays on the device
// until Train reads it once per epoch. Sums are in double like the CPU's.

#include "common.cuh"

// mse_loss: grad = scale·(pred − target) with scale = float32(2/(rows·cols))
// from the host (the CPU's bits), loss += Σ (pred − target)² / cols.
// grad and loss may be null.
extern "C" __global__ void __launch_bounds__(1024) mse_loss(const float *__restrict__ pred, const float *__restrict__ target,
                                    float *__restrict__ grad, float *__restrict__ loss, long long rows,
                                    long long cols, float scale) {
    const long long n = rows * cols;
    double acc = 0.0;
    for (long long e = threadIdx.x; e < n; e += blockDim.x) {
        const float d = __fsub_rn(pred[e], target[e]);
        if (grad != nullptr) grad[e] = __fmul_rn(scale, d);
        acc += (double)d * (double)d;
    }
    if (loss == nullptr) return; // uniform across the block
    const double total = block_sum(acc);
    if (threadIdx.x == 0) loss[0] = __fadd_rn(loss[0], (float)(total / (double)cols));
}

// xent_loss: per row, with lse = max + log Σ exp(z − max) over the logits z,
// loss += Σ target·(lse − z) and grad = (softmax(z)·Σtarget − target)·inv
// with inv = 1/rows. One warp per row; grad and loss may be null.
extern "C" __global__ void __launch_bounds__(1024) xent_loss(const float *__restrict__ logits, const float *__restrict__ target,
                                     float *__restrict__ grad, float *__restrict__ loss, long long rows,
                                     long long cols, double inv) {
    const int lane = threadIdx.x % 32;
    const long long warps = blockDim.x / 32;
    double acc = 0.0;
    for (long long r = threadIdx.x / 32; r < rows; r += warps) {
        const float *z = logits + r * cols;
        const float *t = target + r * cols;
        double m = -INFINITY;
        for (long long j = lane; j < cols; j += 32) {
            const double v = (double)z[j];
            m = (v != v || m != m) ? v + m : (v > m ? v : m);
        }
        m = warp_max_double(m);
        double sum = 0.0, tsum = 0.0;
        for (long long j = lane; j < cols; j += 32) {
            sum += exp((double)z[j] - m);
            tsum += (double)t[j];
        }
        sum = warp_sum(sum);
        tsum = warp_sum(tsum);
        const double lse = m + log(sum);
        for (long long j = lane; j < cols; j += 32) {
            const double v = (double)z[j], tj = (double)t[j];
            acc += tj * (lse - v);
            if (grad != nullptr) grad[r * cols + j] = (float)((exp(v - lse) * tsum - tj) * inv);
        }
    }
    if (loss == nullptr) return; // uniform across the block
    const double total = block_sum(acc);
    if (threadIdx.x == 0) loss[0] = __fadd_rn(loss[0], (float)total);
}
