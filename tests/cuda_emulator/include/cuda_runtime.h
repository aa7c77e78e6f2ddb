// The CUDA runtime as the CPU emulator provides it, for tests only: the calls and types the CUDA backend and its
// tests use, and the device built-ins its kernels use, so kernels/*.cu compile as C++ and run on the CPU.
// A CUDA thread is a fiber; blocks run one after another on the calling thread. See tests/cuda_emulator/README.md.
#pragma once

#define MWB_CUDA_EMULATOR 1

#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

// Qualifiers. Shared memory is a function-local static: one block runs at a time, so it is per block.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

// Vector types, with the alignment the device requires of them (UBSan's alignment check then stands in for the
// misaligned-address fault).
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// The running thread's coordinates, set by the emulator before it resumes a fiber. Plain globals: kernels run
// only under the emulator's context lock, one block at a time.
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;
constexpr int warpSize = 32;

// Runtime ---------------------------------------------------------------------------------------------------------
enum cudaError_t : int {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureWrongThread = 908,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind : int {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaStreamCaptureMode : int {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};

constexpr unsigned cudaStreamDefault = 0x00;
constexpr unsigned cudaStreamNonBlocking = 0x01;

struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUgraph_st;
using cudaGraph_t = CUgraph_st*;
struct CUgraphExec_st;
using cudaGraphExec_t = CUgraphExec_st*;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int multiProcessorCount;
};

const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetLastError();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);

cudaError_t cudaMalloc(void** pointer, size_t bytes);
cudaError_t cudaFree(void* pointer);
cudaError_t cudaMallocHost(void** pointer, size_t bytes);
cudaError_t cudaFreeHost(void* pointer);
template <class T>
cudaError_t cudaMalloc(T** pointer, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}
template <class T>
cudaError_t cudaMallocHost(T** pointer, size_t bytes) {
    return cudaMallocHost(reinterpret_cast<void**>(pointer), bytes);
}
cudaError_t cudaMemcpy(void* target, const void* source, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* target, const void* source, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemsetAsync(void* target, int value, size_t bytes, cudaStream_t stream = nullptr);

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

// Device built-ins ----------------------------------------------------------------------------------------------
void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);

namespace mwb_emulator {

// The warp-synchronous exchange behind __shfl_xor_sync and __syncwarp: every lane of the warp arrives, then each
// reads the value of lane (its lane ^ lane_mask).
uint64_t warp_exchange(unsigned mask, uint64_t bits, int lane_mask, int width);
void* dynamic_shared_memory();
// Fails the running kernel with `message` (a rule of the device broken, such as a misaligned matrix load).
[[noreturn]] void device_fault(const char* message);

// Checks the launch configuration as the runtime does (an invalid one sets cudaErrorInvalidConfiguration and
// enqueues nothing), then enqueues `body` on `stream`, to run once per thread of every block.
void launch(const char* kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream, std::function<void()> body);

// kernel<<<grid, block, shared, stream>>>(args...) spelled MWB_LAUNCH(kernel, grid, block, shared, stream)(args...):
// the arguments are converted to the parameter types and copied at launch, as the runtime does.
template <class... Params>
class Launch {
public:
    Launch(void (*kernel)(Params...), const char* name, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream)
        : kernel_(kernel), name_(name), grid_(grid), block_(block), shared_bytes_(shared_bytes), stream_(stream) {}

    template <class... Args>
    void operator()(Args&&... args) const {
        static_assert(sizeof...(Args) == sizeof...(Params), "wrong number of kernel arguments");
        std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
        auto* kernel = kernel_;
        launch(name_, grid_, block_, shared_bytes_, stream_, [kernel, values] { std::apply(kernel, values); });
    }

private:
    void (*kernel_)(Params...);
    const char* name_;
    dim3 grid_, block_;
    size_t shared_bytes_;
    cudaStream_t stream_;
};

}  // namespace mwb_emulator

#define MWB_LAUNCH(kernel, grid, block, shared_bytes, stream) \
    ::mwb_emulator::Launch(kernel, #kernel, grid, block, shared_bytes, stream)

template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize) {
    static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>);
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    bits = mwb_emulator::warp_exchange(mask, bits, lane_mask, width);
    T result;
    std::memcpy(&result, &bits, sizeof(T));
    return result;
}

// One block runs at a time on one host thread, so a plain read-modify-write is atomic.
template <class T>
T atomicAdd(T* address, T value) {
    const T old = *address;
    *address = old + value;
    return old;
}

// Intrinsics: the fast-math forms computed exactly (the device's are within a few ulp).
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline int __float2int_rn(float x) { return int(nearbyintf(x)); }
inline unsigned __float_as_uint(float x) {
    unsigned bits;
    std::memcpy(&bits, &x, sizeof bits);
    return bits;
}
inline float __uint_as_float(unsigned bits) {
    float x;
    std::memcpy(&x, &bits, sizeof x);
    return x;
}
