// The CUDA emulator's device side: what our kernels (*.cu) use of the CUDA
// C++ language, for a host C++17 compiler. cuda_emu.cc includes this, then
// the kernel sources unchanged.
//
// Each block runs alone; its threads are fibers on one OS thread, switched
// at __syncthreads and warp shuffles, so __shared__ variables can be plain
// statics. Floating point is the host's IEEE single and double arithmetic
// with contraction off, so the _rn intrinsics are the plain operators.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace emu {

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

// The launch and thread the device code is running in (cuda_emu.cc).
struct Thread {
    dim3 idx;
    unsigned flat; // linear index in the block, x fastest
};
extern dim3 grid_dim, block_dim, block_idx;
extern Thread *current;

void syncthreads();
void shuffle_barrier();
extern uint64_t *shuffle_slots; // one per thread of the block

// shfl_xor returns v of the lane whose index is this lane's xor o. The
// whole warp must call it (our kernels pass the full mask).
template <class T> T shfl_xor(unsigned mask, T v, int o) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of at most 8 bytes");
    if (mask != 0xffffffffu) {
        extern void device_error(const char *);
        device_error("__shfl_xor_sync with a partial mask is not emulated");
    }
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    shuffle_slots[current->flat] = bits;
    shuffle_barrier();
    const unsigned lane = current->flat % 32, partner = current->flat - lane + (lane ^ (unsigned)o);
    bits = shuffle_slots[partner];
    shuffle_barrier(); // nobody overwrites a slot before its reader has read it
    T out;
    std::memcpy(&out, &bits, sizeof out);
    return out;
}

} // namespace emu

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// One block runs at a time, so a block's shared memory can be static storage.
#define __shared__ static

#define threadIdx (emu::current->idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

// float4 without CUDA's 16-byte alignment: the kernels read float4 runs out
// of register arrays, which the host compiler places on a 4-byte boundary.
struct float4 {
    float x, y, z, w;
};

inline void __syncthreads() { emu::syncthreads(); }
template <class T> inline T __shfl_xor_sync(unsigned mask, T v, int o) { return emu::shfl_xor(mask, v, o); }

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }

using std::exp;
using std::log;
template <class T> inline T min(T a, T b) { return b < a ? b : a; }
template <class T> inline T max(T a, T b) { return a < b ? b : a; }
