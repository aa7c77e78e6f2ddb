// The device side of the emulator: every CUDA thread of a block is a fiber on the calling host thread.
// A thread runs until it reaches a barrier (__syncthreads, or a warp-level sync such as a shuffle); the last to
// arrive releases the others. A block ends when all its threads returned; a block where nothing can run while
// threads still wait is a deadlock and fails the launch, as do warp-level syncs after lanes of the warp returned
// (undefined behaviour on a GPU). Dynamic shared memory starts filled with 0xff (NaN as floats) for every block.
#include <cstdint>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <vector>

#include "tests/cuda_emulator/emulator.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define MWB_EMULATOR_ASAN 1
#endif

uint3 threadIdx{};
uint3 blockIdx{};
dim3 blockDim;
dim3 gridDim;

namespace mwb_emulator {

namespace {

#if defined(MWB_EMULATOR_ASAN)
constexpr size_t kStackBytes = size_t(1) << 20;  // ASan's frames are several times larger
#else
constexpr size_t kStackBytes = size_t(256) << 10;
#endif
constexpr size_t kGuardBytes = 4096;

// A fiber stack with a guard page below it, so an overflow faults instead of corrupting memory.
class Stack {
public:
    Stack() {
        region_ = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (region_ == MAP_FAILED) {
            std::fprintf(stderr, "CUDA emulator: out of memory for a fiber stack\n");
            std::abort();
        }
        mprotect(region_, kGuardBytes, PROT_NONE);
    }
    Stack(const Stack&) = delete;
    Stack& operator=(const Stack&) = delete;
    ~Stack() { munmap(region_, kStackBytes + kGuardBytes); }
    void* base() const { return static_cast<char*>(region_) + kGuardBytes; }

private:
    void* region_ = nullptr;
};

class StackPool {
public:
    std::unique_ptr<Stack> acquire() {
        if (free_.empty()) return std::make_unique<Stack>();
        auto stack = std::move(free_.back());
        free_.pop_back();
        return stack;
    }
    void release(std::unique_ptr<Stack> stack) { free_.push_back(std::move(stack)); }

private:
    std::vector<std::unique_ptr<Stack>> free_;
};

thread_local StackPool stack_pool;

// Switching between fibers: a few saved registers and a stack pointer. A kernel like sampling switches tens of
// millions of times, where swapcontext's signal-mask system call would cost minutes.
#if !defined(__x86_64__)
#error "the CUDA emulator switches fibers with x86-64 code"
#endif
extern "C" void mwb_emulator_switch(void** save_stack_pointer, void* load_stack_pointer);
asm(R"(
    .text
    .globl mwb_emulator_switch
    .type mwb_emulator_switch, @function
mwb_emulator_switch:
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
    .size mwb_emulator_switch, .-mwb_emulator_switch
)");

// The stack pointer that mwb_emulator_switch loads to enter `entry` on a fresh stack: six zeroed registers, the
// entry as return address, and a null return address above it, so `entry` starts aligned as if called.
void* initial_stack_pointer(void* base, size_t bytes, void (*entry)()) {
    auto top = (reinterpret_cast<uintptr_t>(base) + bytes) & ~uintptr_t(15);
    auto* slots = reinterpret_cast<uintptr_t*>(top);
    slots[-1] = 0;
    slots[-2] = reinterpret_cast<uintptr_t>(entry);
    for (int i = 3; i <= 8; ++i) slots[-i] = 0;
    return slots - 8;
}

// Unwinds the fiber of a thread that broke a rule; the message is already in Block::failure.
struct KernelFault {};

enum class FiberState { Unstarted, Runnable, Waiting, Done };

struct Fiber {
    void* stack_pointer = nullptr;
    std::unique_ptr<Stack> stack;
    uint3 thread{};
    int warp = 0, lane = 0;
    FiberState state = FiberState::Unstarted;
    void* asan_fake_stack = nullptr;
};

struct Warp {
    int lanes = 0, exited = 0, arrived = 0;
    uint64_t generation = 0;
    uint64_t exchange[2][32] = {};  // double-buffered by generation: a lane can be at most one sync ahead
    std::vector<int> waiting;
};

struct Block {
    const std::function<void()>* body = nullptr;
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    int live = 0, block_arrived = 0, current = -1;
    std::vector<int> block_waiting;
    std::deque<int> runnable;
    std::string failure;
    void* scheduler_stack_pointer = nullptr;
    void* scheduler_fake_stack = nullptr;
    const void* scheduler_stack_bottom = nullptr;
    size_t scheduler_stack_size = 0;
    void* dynamic_shared = nullptr;
};

thread_local Block* running_block = nullptr;

Block& block() {
    if (!running_block) {
        std::fprintf(stderr, "CUDA emulator: a device built-in was called outside a kernel\n");
        std::abort();
    }
    return *running_block;
}

std::string where(const Fiber& f) {
    return "thread (" + std::to_string(f.thread.x) + "," + std::to_string(f.thread.y) + "," + std::to_string(f.thread.z) + ") of block (" +
           std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) + ")";
}

[[noreturn]] void fault(Block& b, const std::string& message) {
    if (b.failure.empty()) b.failure = message + ", " + where(b.fibers[size_t(b.current)]);
    throw KernelFault{};
}

// Fiber → scheduler; returns when the scheduler resumes this fiber.
void wait(Block& b, Fiber& f) {
    f.state = FiberState::Waiting;
#if defined(MWB_EMULATOR_ASAN)
    __sanitizer_start_switch_fiber(&f.asan_fake_stack, b.scheduler_stack_bottom, b.scheduler_stack_size);
#endif
    mwb_emulator_switch(&f.stack_pointer, b.scheduler_stack_pointer);
#if defined(MWB_EMULATOR_ASAN)
    __sanitizer_finish_switch_fiber(f.asan_fake_stack, &b.scheduler_stack_bottom, &b.scheduler_stack_size);
#endif
}

void make_runnable(Block& b, int index) {
    b.fibers[size_t(index)].state = FiberState::Runnable;
    b.runnable.push_back(index);
}

void release_block_barrier(Block& b) {
    for (int index : b.block_waiting) make_runnable(b, index);
    b.block_waiting.clear();
    b.block_arrived = 0;
}

void thread_exit(Block& b, Fiber& f) {
    --b.live;
    Warp& w = b.warps[size_t(f.warp)];
    ++w.exited;
    if (w.arrived > 0 && b.failure.empty())
        b.failure = "lanes of warp " + std::to_string(f.warp) + " returned while others wait at a warp-level sync, " + where(f);
    if (b.block_arrived > 0 && b.block_arrived == b.live) release_block_barrier(b);  // returned threads count as arrived
}

void fiber_main() {
    Block& b = *running_block;
    Fiber& f = b.fibers[size_t(b.current)];
#if defined(MWB_EMULATOR_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &b.scheduler_stack_bottom, &b.scheduler_stack_size);
#endif
    try {
        (*b.body)();
    } catch (const KernelFault&) {
    } catch (const std::exception& error) {
        if (b.failure.empty()) b.failure = std::string("exception: ") + error.what() + ", " + where(f);
    }
    thread_exit(b, f);
    f.state = FiberState::Done;
#if defined(MWB_EMULATOR_ASAN)
    __sanitizer_start_switch_fiber(nullptr, b.scheduler_stack_bottom, b.scheduler_stack_size);
#endif
    void* finished = nullptr;  // never resumed
    mwb_emulator_switch(&finished, b.scheduler_stack_pointer);
}

// Scheduler → fiber `index` (starting it on a pooled stack the first time).
void resume(Block& b, int index) {
    Fiber& f = b.fibers[size_t(index)];
    if (f.state == FiberState::Unstarted) {
        f.stack = stack_pool.acquire();
        f.stack_pointer = initial_stack_pointer(f.stack->base(), kStackBytes, fiber_main);
    }
    f.state = FiberState::Runnable;
    b.current = index;
    threadIdx = f.thread;
#if defined(MWB_EMULATOR_ASAN)
    __sanitizer_start_switch_fiber(&b.scheduler_fake_stack, f.stack->base(), kStackBytes);
#endif
    mwb_emulator_switch(&b.scheduler_stack_pointer, f.stack_pointer);
#if defined(MWB_EMULATOR_ASAN)
    __sanitizer_finish_switch_fiber(b.scheduler_fake_stack, nullptr, nullptr);
#endif
    if (f.state == FiberState::Done) stack_pool.release(std::move(f.stack));
}

std::string run_block(dim3 block_dim, const std::function<void()>& body, void* dynamic_shared) {
    Block b;
    b.body = &body;
    b.dynamic_shared = dynamic_shared;
    const int threads = int(block_dim.x * block_dim.y * block_dim.z);
    b.fibers.resize(size_t(threads));
    b.warps.resize(size_t((threads + 31) / 32));
    for (int t = 0; t < threads; ++t) {
        Fiber& f = b.fibers[size_t(t)];
        f.thread = {unsigned(t) % block_dim.x, (unsigned(t) / block_dim.x) % block_dim.y, unsigned(t) / (block_dim.x * block_dim.y)};
        f.warp = t / 32;
        f.lane = t % 32;
        ++b.warps[size_t(f.warp)].lanes;
    }
    b.live = threads;

    running_block = &b;
    int next = 0;
    while (b.failure.empty()) {
        if (!b.runnable.empty()) {
            const int index = b.runnable.front();
            b.runnable.pop_front();
            resume(b, index);
        } else if (next < threads) {
            resume(b, next++);
        } else {
            break;
        }
    }
    running_block = nullptr;
    if (b.failure.empty() && b.live > 0) {
        int at_block = int(b.block_waiting.size()), at_warp = 0;
        for (const Warp& w : b.warps) at_warp += int(w.waiting.size());
        b.failure = "deadlock in block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," +
                    std::to_string(blockIdx.z) + "): " + std::to_string(at_block) + " threads wait at __syncthreads, " +
                    std::to_string(at_warp) + " at warp-level syncs, and no other thread can run";
    }
    // Threads left waiting after a failure are abandoned; their stacks go back to the pool.
    for (Fiber& f : b.fibers)
        if (f.stack) stack_pool.release(std::move(f.stack));
    return b.failure;
}

}  // namespace

std::string run_kernel(const char* kernel, dim3 grid, dim3 block_dim, size_t shared_bytes, const std::function<void()>& body) {
    // 128-byte aligned, as kernels declare their dynamic shared memory (wmma needs at least 32).
    struct alignas(128) Line {
        unsigned char bytes[128];
    };
    std::unique_ptr<Line[]> lines(shared_bytes ? new Line[(shared_bytes + 127) / 128] : nullptr);
    auto* shared_memory = reinterpret_cast<unsigned char*>(lines.get());
    gridDim = grid;
    blockDim = block_dim;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                blockIdx = {x, y, z};
                if (shared_memory) std::memset(shared_memory, 0xff, shared_bytes);
                std::string failure = run_block(block_dim, body, shared_memory);
                if (!failure.empty()) return std::string("kernel ") + kernel + ": " + failure;
            }
    return {};
}

void* dynamic_shared_memory() { return block().dynamic_shared; }

uint64_t warp_exchange(unsigned mask, uint64_t bits, int lane_mask, int width) {
    Block& b = block();
    Fiber& f = b.fibers[size_t(b.current)];
    Warp& w = b.warps[size_t(f.warp)];
    const unsigned existing = w.lanes == 32 ? 0xffffffffu : (1u << w.lanes) - 1u;
    if ((mask & existing) != existing) {
        char text[96];
        std::snprintf(text, sizeof text, "a warp-level sync with mask 0x%08x (the emulator runs whole-warp syncs only)", mask);
        fault(b, text);
    }
    if (width != 32) fault(b, "a shuffle narrower than the warp (the emulator runs full-width shuffles only)");
    if (w.exited > 0) fault(b, "a warp-level sync after lanes of warp " + std::to_string(f.warp) + " returned (undefined on a GPU)");

    uint64_t* slots = w.exchange[w.generation & 1];
    slots[f.lane] = bits;
    if (++w.arrived == w.lanes) {
        w.arrived = 0;
        ++w.generation;
        for (int index : w.waiting) make_runnable(b, index);
        w.waiting.clear();
    } else {
        w.waiting.push_back(b.current);
        wait(b, f);
    }
    const int source = f.lane ^ lane_mask;
    return slots[source >= 0 && source < w.lanes ? source : f.lane];
}

void device_fault(const char* message) { fault(block(), message); }

}  // namespace mwb_emulator

void __syncwarp(unsigned mask) { mwb_emulator::warp_exchange(mask, 0, 0, 32); }

void __syncthreads() {
    using namespace mwb_emulator;
    Block& b = block();
    Fiber& f = b.fibers[size_t(b.current)];
    if (++b.block_arrived == b.live) {
        release_block_barrier(b);
        return;
    }
    b.block_waiting.push_back(b.current);
    wait(b, f);
}
