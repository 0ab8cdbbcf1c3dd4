// Tiled single-precision matrix multiply for the CUDA backend (no cuBLAS):
// C = alpha·op(A)·op(B) + beta·C over row-major matrices, op(X) = X or Xᵀ.
// `make kernels` compiles this file to matmul.ptx, which is committed and
// embedded by cuda.go; see doc.go for the Backend contract.
//
// Each block computes a BM×BN tile of C, walking K in steps of BK. The
// op(A) and op(B) slices of a step are staged in shared memory, both laid
// out k-major (As[p][i], Bs[p][j]) so the inner loop reads a thread's TM
// rows and TN columns as float4 runs. Each of the 256 threads keeps a
// TM×TN block of sums in registers, so one step costs TM+TN shared loads
// for TM·TN multiply-adds. The next step's tiles are fetched from global
// memory into registers while the current one is multiplied (two shared
// buffers, one barrier per step). Loads past the edges of A and B read as
// zero and stores past the edges of C are skipped, so any shape works.
//
// For outputs too small to fill the GPU, gridDim.z > 1 splits K: slice z
// multiplies k in [z·kSplit, (z+1)·kSplit) and writes its partial tile to
// `partial` (gridDim.z × M × N); sgemm_splitk_reduce then adds the slices
// in order, so results are deterministic for a given launch configuration.
//
// Indices are 32-bit: the backend caps a tensor (and the split-K workspace)
// at 2^31 elements, so every offset fits an int. Sizes arrive as 64-bit
// parameters because the Go launcher passes every argument in 8 bytes.

#define THREADS 256
// Shared rows are padded by 4 floats: stores of transposed loads then hit
// distinct banks, and rows stay 16-byte aligned for float4 reads.
#define PAD 4

template <int BM, int BN, int BK, int TM, int TN, bool TA, bool TB>
__device__ __forceinline__ void sgemm_tile(int M, int N, int K, float alpha, const float *__restrict__ A,
                                           const float *__restrict__ B, float beta, float *__restrict__ C,
                                           int kSplit, float *__restrict__ partial) {
    static_assert((BM / TM) * (BN / TN) == THREADS, "one thread per TM×TN block");
    static_assert((BM * BK) % THREADS == 0 && (BK * BN) % THREADS == 0, "whole tiles per thread");
    constexpr int LA = BM * BK / THREADS; // A elements each thread stages per step
    constexpr int LB = BK * BN / THREADS;

    __shared__ __align__(16) float As[2][BK][BM + PAD];
    __shared__ __align__(16) float Bs[2][BK][BN + PAD];

    const int tid = threadIdx.x;
    const int tx = tid % (BN / TN);
    const int ty = tid / (BN / TN);
    const int row0 = blockIdx.y * BM;
    const int col0 = blockIdx.x * BN;
    const int kBegin = blockIdx.z * kSplit;
    const int kEnd = min(K, kBegin + kSplit);

    float ra[LA], rb[LB];

    // Stage element e of the A and B tiles at k offset k0. The mapping puts
    // consecutive threads on consecutive addresses of whichever dimension is
    // contiguous in memory, so global loads coalesce for every transpose.
    auto fetch = [&](int k0) {
#pragma unroll
        for (int r = 0; r < LA; r++) {
            const int e = tid + r * THREADS;
            int i, p;
            if (TA) { // A is K×M: (i, p) at A[p·M + i]
                i = e % BM;
                p = e / BM;
            } else { // A is M×K: (i, p) at A[i·K + p]
                p = e % BK;
                i = e / BK;
            }
            const int gi = row0 + i, gp = k0 + p;
            float v = 0.0f;
            if (gi < M && gp < kEnd) v = TA ? A[gp * M + gi] : A[gi * K + gp];
            ra[r] = v;
        }
#pragma unroll
        for (int r = 0; r < LB; r++) {
            const int e = tid + r * THREADS;
            int j, p;
            if (TB) { // B is N×K: (p, j) at B[j·K + p]
                p = e % BK;
                j = e / BK;
            } else { // B is K×N: (p, j) at B[p·N + j]
                j = e % BN;
                p = e / BN;
            }
            const int gj = col0 + j, gp = k0 + p;
            float v = 0.0f;
            if (gj < N && gp < kEnd) v = TB ? B[gj * K + gp] : B[gp * N + gj];
            rb[r] = v;
        }
    };
    auto stage = [&](int buf) {
#pragma unroll
        for (int r = 0; r < LA; r++) {
            const int e = tid + r * THREADS;
            if (TA) As[buf][e / BM][e % BM] = ra[r];
            else As[buf][e % BK][e / BK] = ra[r];
        }
#pragma unroll
        for (int r = 0; r < LB; r++) {
            const int e = tid + r * THREADS;
            if (TB) Bs[buf][e % BK][e / BK] = rb[r];
            else Bs[buf][e / BN][e % BN] = rb[r];
        }
    };

    // A thread's TN columns: with float4 reads, runs of 4 columns, the runs
    // BN/(TN/4) apart, so the 8 lanes of a shared-memory phase read 128
    // consecutive bytes (no bank conflicts); otherwise TN adjacent columns.
    auto colOf = [&](int j) -> int {
        constexpr int runs = TN % 4 == 0 ? TN / 4 : 1;
        if (TN % 4 == 0) return (j / 4) * (BN / runs) + tx * 4 + j % 4;
        return tx * TN + j;
    };

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

    int buf = 0;
    if (kBegin < kEnd) {
        fetch(kBegin);
        stage(0);
    }
    __syncthreads();
    for (int k0 = kBegin; k0 < kEnd; k0 += BK) {
        const bool more = k0 + BK < kEnd;
        if (more) fetch(k0 + BK);
#pragma unroll
        for (int p = 0; p < BK; p++) {
            float a[TM], b[TN];
            if (TM % 4 == 0) {
#pragma unroll
                for (int i = 0; i < TM; i += 4)
                    *reinterpret_cast<float4 *>(&a[i]) = *reinterpret_cast<const float4 *>(&As[buf][p][ty * TM + i]);
            } else {
#pragma unroll
                for (int i = 0; i < TM; i++) a[i] = As[buf][p][ty * TM + i];
            }
            if (TN % 4 == 0) {
#pragma unroll
                for (int j = 0; j < TN; j += 4)
                    *reinterpret_cast<float4 *>(&b[j]) = *reinterpret_cast<const float4 *>(&Bs[buf][p][colOf(j)]);
            } else {
#pragma unroll
                for (int j = 0; j < TN; j++) b[j] = Bs[buf][p][colOf(j)];
            }
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] += a[i] * b[j];
        }
        if (more) stage(buf ^ 1);
        __syncthreads();
        buf ^= 1;
    }

    float *out = partial ? partial + blockIdx.z * M * N : C;
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int gi = row0 + ty * TM + i;
        if (gi >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const int gj = col0 + colOf(j);
            if (gj >= N) continue;
            if (partial) {
                out[gi * N + gj] = acc[i][j];
            } else {
                // beta == 0 must not read C: it may hold NaN (sgemm contract).
                float v = alpha * acc[i][j];
                if (beta != 0.0f) v += beta * C[gi * N + gj];
                C[gi * N + gj] = v;
            }
        }
    }
}

// One kernel per tile shape and transpose pair; the host picks the shape
// from the output size (see cuda_matmul.go). Large: 128×128 tiles with 8×8
// per thread, for outputs that fill the GPU. Medium: 64×64 with 4×4.
// Small: 32×32 with 2×2 and a deeper K step, for skinny outputs.
#define SGEMM(name, BM, BN, BK, TM, TN, TA, TB)                                                              \
    extern "C" __global__ void __launch_bounds__(THREADS)                                                    \
        name(long long M, long long N, long long K, float alpha, const float *__restrict__ A,               \
             const float *__restrict__ B, float beta, float *__restrict__ C, long long kSplit,              \
             float *__restrict__ partial) {                                                                  \
        sgemm_tile<BM, BN, BK, TM, TN, TA, TB>((int)M, (int)N, (int)K, alpha, A, B, beta, C, (int)kSplit,   \
                                               partial);                                                     \
    }

SGEMM(sgemm_large_nn, 128, 128, 8, 8, 8, false, false)
SGEMM(sgemm_large_nt, 128, 128, 8, 8, 8, false, true)
SGEMM(sgemm_large_tn, 128, 128, 8, 8, 8, true, false)
SGEMM(sgemm_large_tt, 128, 128, 8, 8, 8, true, true)
SGEMM(sgemm_medium_nn, 64, 64, 16, 4, 4, false, false)
SGEMM(sgemm_medium_nt, 64, 64, 16, 4, 4, false, true)
SGEMM(sgemm_medium_tn, 64, 64, 16, 4, 4, true, false)
SGEMM(sgemm_medium_tt, 64, 64, 16, 4, 4, true, true)
SGEMM(sgemm_small_nn, 32, 32, 32, 2, 2, false, false)
SGEMM(sgemm_small_nt, 32, 32, 32, 2, 2, false, true)
SGEMM(sgemm_small_tn, 32, 32, 32, 2, 2, true, false)
SGEMM(sgemm_small_tt, 32, 32, 32, 2, 2, true, true)

// sgemm_splitk_reduce finishes a split-K multiply: C = alpha·Σ_z partial[z] + beta·C,
// summing the slices in ascending z.
extern "C" __global__ void sgemm_splitk_reduce(long long M, long long N, long long splits, float alpha,
                                               const float *__restrict__ partial, float beta,
                                               float *__restrict__ C) {
    const long long n = M * N;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (long long z = 0; z < splits; z++) s += partial[z * n + e];
        float v = alpha * s;
        if (beta != 0.0f) v += beta * C[e];
        C[e] = v;
    }
}
