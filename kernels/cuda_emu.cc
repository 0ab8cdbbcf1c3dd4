//go:build cudaemu && !cuda

// The CUDA emulator's host side: device memory, contexts and kernel launches
// for emuDriver (cuda_emu.go). It compiles our kernel sources, unchanged,
// against cuda_emu.h and runs them on the calling thread.
//
// A launch runs its blocks one after another. The threads of a block are
// fibers (ucontext) that run until they reach __syncthreads or a warp
// shuffle; a barrier opens when every thread of its block (or warp) is
// waiting at it. A barrier that can never open (some threads exited, or wait
// elsewhere) fails the launch instead of hanging, like a device assert, and
// threads run in a shuffled order so a missing barrier shows up as a wrong
// result. Kernels without barriers run their threads as plain calls.
//
// Pointer arguments must be null or inside a live allocation of the
// launching context, copies must stay inside one allocation, and a kernel
// that writes or reads past the end of an allocation faults: checks a GPU
// does not make (or makes late, as a sticky "illegal address") but an
// emulator can.

// IEEE arithmetic as written: no fused multiply-adds (cgo does not allow the flag).
#pragma GCC optimize("fp-contract=off")

#include "cuda_emu.h"

#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "elementwise.cu"
#include "loss.cu"
#include "matmul.cu"

// Kernels that break the rules on purpose, for the emulator's own tests
// (cuda_emu_test.go): proof that it catches what it says it catches.
extern "C" __global__ void emu_test_divergent_sync(float *out) {
    if (threadIdx.x % 64 < 32) __syncthreads(); // half the block never arrives
    out[threadIdx.x] = 1.0f;
}

// emu_test_reverse reverses a block's values through shared memory; with
// sync 0 a thread may read a slot before its owner has written it.
extern "C" __global__ void emu_test_reverse(const float *in, float *out, long long sync) {
    __shared__ float s[1024];
    s[threadIdx.x] = in[threadIdx.x];
    if (sync) __syncthreads();
    out[threadIdx.x] = s[blockDim.x - 1 - threadIdx.x];
}

// emu_test_warp_sum writes each warp's sum of its thread indices.
extern "C" __global__ void emu_test_warp_sum(float *out) {
    out[global_index()] = (float)warp_sum((double)threadIdx.x);
}

namespace emu {

dim3 grid_dim, block_dim, block_idx;
Thread *current;
uint64_t *shuffle_slots;

namespace {

// A kernel error: thrown by device code, caught where the thread started.
struct DeviceError {
    std::string what;
};

// Kernel is one entry of the launch table: the function, a way to call it
// with 8-byte arguments, and its signature.
struct Kernel {
    const char *name;
    void (*fn)();
    void (*invoke)(void (*fn)(), const uint64_t *args);
    std::vector<int> sizes;     // parameter sizes in bytes
    std::vector<bool> pointers; // which parameters are pointers
    bool barriers;              // whether it uses __syncthreads or shuffles
};

// An argument is read from the low bytes of its 8, as the driver reads a
// parameter of that size from a little-endian host's buffer.
template <class T> T decode(uint64_t bits) {
    T v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

template <class... A, size_t... I> void call(void (*fn)(A...), const uint64_t *args, std::index_sequence<I...>) {
    fn(decode<A>(args[I])...);
}

template <class... A> Kernel entry(const char *name, void (*fn)(A...), bool barriers) {
    Kernel k{name, reinterpret_cast<void (*)()>(fn), nullptr, {int(sizeof(A))...}, {std::is_pointer_v<A>...}, barriers};
    k.invoke = [](void (*f)(), const uint64_t *args) {
        call(reinterpret_cast<void (*)(A...)>(f), args, std::index_sequence_for<A...>{});
    };
    return k;
}

#define KERNEL(name, barriers) entry(#name, name, barriers)
const std::vector<Kernel> &table() {
    static const std::vector<Kernel> t = {
        KERNEL(gather_rows, false),
        KERNEL(bias_act, false),
        KERNEL(softmax_rows, true),
        KERNEL(act_backward, true),
        KERNEL(softmax_backward_rows, true),
        KERNEL(dropout, false),
        KERNEL(adam, false),
        KERNEL(mse_loss, true),
        KERNEL(xent_loss, true),
        KERNEL(sgemm_splitk_reduce, false),
        KERNEL(sgemm_large_nn, true),
        KERNEL(sgemm_large_nt, true),
        KERNEL(sgemm_large_tn, true),
        KERNEL(sgemm_large_tt, true),
        KERNEL(sgemm_medium_nn, true),
        KERNEL(sgemm_medium_nt, true),
        KERNEL(sgemm_medium_tn, true),
        KERNEL(sgemm_medium_tt, true),
        KERNEL(sgemm_small_nn, true),
        KERNEL(sgemm_small_nt, true),
        KERNEL(sgemm_small_tn, true),
        KERNEL(sgemm_small_tt, true),
        KERNEL(emu_test_divergent_sync, true),
        KERNEL(emu_test_reverse, true),
        KERNEL(emu_test_warp_sum, true),
    };
    return t;
}
#undef KERNEL

const Kernel *find_kernel(const char *name) {
    for (const Kernel &k : table())
        if (std::strcmp(k.name, name) == 0) return &k;
    return nullptr;
}

// Device memory: host mappings owned by a context. Each allocation ends
// where its mapping's last page ends and is followed by an inaccessible
// page, so a kernel writing past the end of a tensor faults at once (the
// process dies with the launch on its stack) instead of corrupting another.
struct Allocation {
    int64_t bytes;
    int ctx;
    void *map;
    size_t map_bytes;
};
constexpr size_t page = 4096;
std::mutex mu; // guards everything below; launches hold it too
std::map<uintptr_t, Allocation> allocations;
int64_t total_bytes = 1ll << 30, used_bytes = 0;
int next_ctx = 1;

// owner returns the allocation holding [p, p+bytes) in ctx, or null.
const Allocation *owner(int ctx, uintptr_t p, int64_t bytes) {
    auto it = allocations.upper_bound(p);
    if (it == allocations.begin()) return nullptr;
    --it;
    if (it->second.ctx != ctx || bytes < 0 || p + bytes > it->first + it->second.bytes) return nullptr;
    return &it->second;
}

void set_error(char *err, size_t len, const std::string &msg) { std::snprintf(err, len, "%s", msg.c_str()); }

// Fibers of the running block. On x86-64 a switch is six pushes and pops
// (emu_switch below); elsewhere it is ucontext, whose switches also save the
// signal mask with a system call each, a hundred times slower.
constexpr size_t stack_bytes = 64 << 10;
enum class State { ready, at_sync, at_shuffle, done };
struct Fiber {
    Thread thread;
    State state;
    char *stack = nullptr; // stack_bytes above a guard page
#if defined(__x86_64__)
    void *sp; // saved stack pointer, the callee-saved registers pushed below it
#else
    ucontext_t ctx;
#endif
};
std::vector<Fiber> fibers;
std::vector<uint64_t> slots;
const Kernel *running;
const uint64_t *running_args;
bool fibered; // whether the running block's threads are fibers
std::string launch_error;

void fiber_main() {
    try {
        running->invoke(running->fn, running_args);
    } catch (const DeviceError &e) {
        if (launch_error.empty()) launch_error = e.what;
    }
    fibers[current->flat].state = State::done;
}

#if defined(__x86_64__)
} // namespace
} // namespace emu

// emu_switch(save, next) saves the callee-saved registers and the stack
// pointer in *save and continues where next was saved (System V ABI).
extern "C" void qflow_emu_switch(void **save, void *next);
asm(R"(
    .text
    .p2align 4
    .globl qflow_emu_switch
    .hidden qflow_emu_switch
    .type qflow_emu_switch, @function
qflow_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size qflow_emu_switch, .-qflow_emu_switch
)");

namespace emu {
namespace {

void *scheduler_sp;

[[noreturn]] void fiber_entry() {
    fiber_main();
    qflow_emu_switch(&fibers[current->flat].sp, scheduler_sp);
    __builtin_unreachable(); // a finished fiber is never resumed
}

void start_fiber(Fiber &f) {
    // A stack as emu_switch leaves it: six registers, then the return
    // address, fiber_entry, whose own frame starts 16-byte aligned.
    void **top = reinterpret_cast<void **>(uintptr_t(f.stack + stack_bytes) & ~uintptr_t(15));
    top[-1] = nullptr; // fiber_entry's return address: it never returns
    top[-2] = reinterpret_cast<void *>(fiber_entry);
    for (int r = 3; r <= 8; r++) top[-r] = nullptr;
    f.sp = &top[-8];
}
void resume(Fiber &f) { qflow_emu_switch(&scheduler_sp, f.sp); }
void suspend(Fiber &f) { qflow_emu_switch(&f.sp, scheduler_sp); }
#else
ucontext_t scheduler;

void start_fiber(Fiber &f) {
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = stack_bytes;
    f.ctx.uc_link = &scheduler; // fiber_main returns to the scheduler
    makecontext(&f.ctx, fiber_main, 0);
}
void resume(Fiber &f) { swapcontext(&scheduler, &f.ctx); }
void suspend(Fiber &f) { swapcontext(&f.ctx, &scheduler); }
#endif

void wait_at(State s) {
    if (!fibered)
        throw DeviceError{std::string(running->name) +
                          " synchronizes, but the emulator's table lists it as a kernel without barriers"};
    Fiber &f = fibers[current->flat];
    f.state = s;
    suspend(f);
}

std::string where() {
    char buf[96];
    std::snprintf(buf, sizeof buf, "block (%u,%u,%u)", block_idx.x, block_idx.y, block_idx.z);
    return buf;
}

uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// run_block runs the current block's threads to completion.
void run_block(unsigned n, uint64_t seed) {
    const dim3 b = block_dim;
    // A shuffled order: threads must not depend on running in index order.
    std::vector<unsigned> order(n);
    for (unsigned i = 0; i < n; i++) order[i] = i;
    for (unsigned i = n; i > 1; i--) std::swap(order[i - 1], order[mix(seed + i) % i]);

    for (unsigned i = 0; i < n; i++) {
        Fiber &f = fibers[i];
        f.thread.flat = i;
        f.thread.idx = dim3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
        f.state = State::ready;
    }
    if (!fibered) {
        for (unsigned i : order) {
            current = &fibers[i].thread;
            running->invoke(running->fn, running_args);
        }
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        Fiber &f = fibers[i];
        if (f.stack == nullptr) {
            void *m = mmap(nullptr, stack_bytes + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) throw DeviceError{"emulator: no memory for a thread stack"};
            mprotect(m, 4096, PROT_NONE); // an overflow faults instead of corrupting a neighbour
            f.stack = static_cast<char *>(m) + 4096;
        }
        start_fiber(f);
    }
    for (;;) {
        for (unsigned i : order) {
            if (fibers[i].state != State::ready) continue;
            current = &fibers[i].thread;
            resume(fibers[i]);
        }
        if (!launch_error.empty()) throw DeviceError{launch_error};
        unsigned done = 0, at_sync = 0, at_shuffle = 0;
        for (unsigned i = 0; i < n; i++) {
            done += fibers[i].state == State::done;
            at_sync += fibers[i].state == State::at_sync;
            at_shuffle += fibers[i].state == State::at_shuffle;
        }
        if (done == n) return;
        if (at_sync == n) {
            for (unsigned i = 0; i < n; i++) fibers[i].state = State::ready;
            continue;
        }
        bool released = false;
        for (unsigned w = 0; w * 32 < n; w++) {
            const unsigned lo = w * 32, hi = std::min(n, lo + 32);
            unsigned waiting = 0;
            for (unsigned i = lo; i < hi; i++) waiting += fibers[i].state == State::at_shuffle;
            if (waiting == 32) {
                for (unsigned i = lo; i < hi; i++) fibers[i].state = State::ready;
                released = true;
            }
        }
        if (released) continue;
        char msg[256];
        std::snprintf(msg, sizeof msg,
                      "%s: barrier divergence in %s: of %u threads %u wait at __syncthreads, %u at a warp "
                      "shuffle and %u have exited",
                      running->name, where().c_str(), n, at_sync, at_shuffle, done);
        throw DeviceError{msg};
    }
}

uint64_t launches; // seeds each launch's thread orders

} // namespace

void syncthreads() { wait_at(State::at_sync); }
void shuffle_barrier() { wait_at(State::at_shuffle); }
void device_error(const char *msg) { throw DeviceError{std::string(running->name) + ": " + msg}; }

} // namespace emu

using namespace emu;

extern "C" {

// emu_kernel_signature writes the sizes of kernel name's parameters to
// sizes (room for max) and returns their count, or -1 for an unknown kernel.
int emu_kernel_signature(const char *name, int *sizes, int max) {
    const Kernel *k = find_kernel(name);
    if (k == nullptr) return -1;
    for (size_t i = 0; i < k->sizes.size() && int(i) < max; i++) sizes[i] = k->sizes[i];
    return int(k->sizes.size());
}

int emu_kernel_count() { return int(table().size()); }
const char *emu_kernel_name(int i) { return table()[i].name; }

void emu_set_total_bytes(int64_t bytes) {
    std::lock_guard<std::mutex> l(mu);
    total_bytes = bytes;
}

void emu_mem_info(int64_t *free_bytes, int64_t *total) {
    std::lock_guard<std::mutex> l(mu);
    *free_bytes = total_bytes - used_bytes;
    *total = total_bytes;
}

int emu_context_create() {
    std::lock_guard<std::mutex> l(mu);
    return next_ctx++;
}

void emu_context_destroy(int ctx) {
    std::lock_guard<std::mutex> l(mu);
    for (auto it = allocations.begin(); it != allocations.end();) {
        if (it->second.ctx != ctx) {
            ++it;
            continue;
        }
        used_bytes -= it->second.bytes;
        munmap(it->second.map, it->second.map_bytes);
        it = allocations.erase(it);
    }
}

// emu_alloc returns 0 when the device is out of memory, as cuMemAlloc fails.
uintptr_t emu_alloc(int ctx, int64_t bytes) {
    std::lock_guard<std::mutex> l(mu);
    if (bytes <= 0 || bytes > total_bytes - used_bytes) return 0;
    // A guard page on each side; the allocation is 16-byte aligned (cuMemAlloc
    // gives 256, which none of our kernels relies on) and ends within 15 bytes
    // of the guard above it.
    const size_t span = (size_t(bytes) + 15) / 16 * 16, data = (span + page - 1) / page * page;
    void *m = mmap(nullptr, data + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 0;
    char *base = static_cast<char *>(m) + page;
    if (mprotect(base, data, PROT_READ | PROT_WRITE) != 0) {
        munmap(m, data + 2 * page);
        return 0;
    }
    char *p = base + data - span;
    // Fresh device memory holds garbage: NaN bits make a kernel that reads before writing fail its test.
    std::memset(p, 0xff, bytes);
    allocations[uintptr_t(p)] = Allocation{bytes, ctx, m, data + 2 * page};
    used_bytes += bytes;
    return uintptr_t(p);
}

int emu_free(int ctx, uintptr_t p) {
    std::lock_guard<std::mutex> l(mu);
    auto it = allocations.find(p);
    if (it == allocations.end() || it->second.ctx != ctx) return -1;
    used_bytes -= it->second.bytes;
    munmap(it->second.map, it->second.map_bytes);
    allocations.erase(it);
    return 0;
}

// emu_check returns 0 when [p, p+bytes) lies in one allocation of ctx.
int emu_check(int ctx, uintptr_t p, int64_t bytes) {
    std::lock_guard<std::mutex> l(mu);
    return owner(ctx, p, bytes) ? 0 : -1;
}

// emu_launch runs kernel name over grid×block with args (8 bytes each) and
// returns 0, or -1 with a message in err.
int emu_launch(int ctx, const char *name, const unsigned *grid, const unsigned *block, const uint64_t *args,
               int nargs, char *err, size_t errlen) {
    std::lock_guard<std::mutex> l(mu);
    const Kernel *k = find_kernel(name);
    if (k == nullptr) {
        set_error(err, errlen, std::string("no kernel ") + name + " in the emulator");
        return -1;
    }
    if (nargs != int(k->sizes.size())) {
        set_error(err, errlen, std::string(name) + ": " + std::to_string(nargs) + " arguments for " +
                                   std::to_string(k->sizes.size()) + " parameters");
        return -1;
    }
    const unsigned long threads = (unsigned long)block[0] * block[1] * block[2];
    if (threads == 0 || threads > 1024 || block[2] > 64 || grid[0] == 0 || grid[1] == 0 || grid[2] == 0 ||
        grid[0] > 0x7fffffffu || grid[1] > 65535 || grid[2] > 65535) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "%s: invalid launch grid (%u,%u,%u) block (%u,%u,%u)", name, grid[0], grid[1],
                      grid[2], block[0], block[1], block[2]);
        set_error(err, errlen, msg);
        return -1;
    }
    for (int i = 0; i < nargs; i++) {
        if (!k->pointers[i] || args[i] == 0 || owner(ctx, args[i], 0)) continue;
        char msg[160];
        std::snprintf(msg, sizeof msg, "%s: argument %d is 0x%llx, which is not device memory of this context", name,
                      i, (unsigned long long)args[i]);
        set_error(err, errlen, msg);
        return -1;
    }

    running = k;
    running_args = args;
    fibered = k->barriers;
    launch_error.clear();
    grid_dim = dim3{grid[0], grid[1], grid[2]};
    block_dim = dim3{block[0], block[1], block[2]};
    if (fibers.size() < threads) fibers.resize(1024);
    slots.assign(threads, 0);
    shuffle_slots = slots.data();
    const uint64_t seed = mix(++launches);
    try {
        for (unsigned z = 0; z < grid[2]; z++)
            for (unsigned y = 0; y < grid[1]; y++)
                for (unsigned x = 0; x < grid[0]; x++) {
                    block_idx = dim3{x, y, z};
                    run_block(unsigned(threads), seed + x + 7919ull * y + 104729ull * z);
                }
    } catch (const DeviceError &e) {
        set_error(err, errlen, e.what);
        current = nullptr;
        return -1;
    }
    current = nullptr;
    return 0;
}

} // extern "C"
