// Small device helpers shared by the kernels: the launch spelling, dynamic shared memory, warp and block
// reductions, 8-wide bf16 loads.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

// Kernels launch as MWB_LAUNCH(kernel, grid, block, shared_bytes, stream)(args...) and take dynamic shared memory
// from dynamic_shared_memory<T>(), so the same sources also build against the CPU emulator of the tests
// (tests/cuda_emulator), which defines MWB_CUDA_EMULATOR and its own MWB_LAUNCH.
#ifndef MWB_CUDA_EMULATOR
#define MWB_LAUNCH(kernel, grid, block, shared_bytes, stream) kernel<<<grid, block, shared_bytes, stream>>>
#endif

namespace mwb::cuda {

#ifdef MWB_CUDA_EMULATOR
template <class T>
T* dynamic_shared_memory() {
    return static_cast<T*>(::mwb_emulator::dynamic_shared_memory());
}
#else
template <class T>
__device__ __forceinline__ T* dynamic_shared_memory() {
    extern __shared__ __align__(128) unsigned char mwb_dynamic_shared[];
    return reinterpret_cast<T*>(mwb_dynamic_shared);
}
#endif

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
    return value;
}

__device__ __forceinline__ float warp_max(float value) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
    return value;
}

// Block-wide reductions for blockDim.x a multiple of 32, at most 1024; `scratch` holds 32 floats. Every
// thread gets the result.
__device__ __forceinline__ float block_sum(float value, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    value = warp_sum(value);
    __syncthreads();
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    value = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(value);
}

__device__ __forceinline__ float block_max(float value, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    value = warp_max(value);
    __syncthreads();
    if (lane == 0) scratch[warp] = value;
    __syncthreads();
    value = lane < warps ? scratch[lane] : -INFINITY;
    return warp_max(value);
}

// Eight consecutive bf16 (16 bytes, aligned) as floats.
__device__ __forceinline__ void load_bf16x8(const __nv_bfloat16* source, float* out) {
    const uint4 raw = *reinterpret_cast<const uint4*>(source);
    const auto* pairs = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(pairs[i]);
        out[2 * i] = f.x;
        out[2 * i + 1] = f.y;
    }
}

__device__ __forceinline__ void store_bf16x8(__nv_bfloat16* target, const float* values) {
    uint4 raw;
    auto* pairs = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) pairs[i] = __floats2bfloat162_rn(values[2 * i], values[2 * i + 1]);
    *reinterpret_cast<uint4*>(target) = raw;
}

inline unsigned blocks_for(int64_t count, int threads) { return unsigned((count + threads - 1) / threads); }

}  // namespace mwb::cuda
