// Grouped-query attention glue: the q/k/v biases of Qwen2 and the K/V cache write from the fused qkv rows.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

__global__ void add_bias_kernel(bf16* y, int64_t y_stride, const float* bias, int64_t width) {
    bf16* row = y + int64_t(blockIdx.x) * y_stride;
    for (int64_t i = threadIdx.x; i < width; i += blockDim.x) row[i] = __float2bfloat16(__bfloat162float(row[i]) + bias[i]);
}

__global__ void gqa_write_cache_kernel(const bf16* qkv, int64_t qkv_stride, int64_t heads, int64_t kv_heads, int64_t dim,
                                       const int32_t* slots, const int32_t* positions, bf16* cache, int64_t capacity) {
    const int64_t row = blockIdx.x, width = 2 * kv_heads * dim;
    const bf16* source = qkv + row * qkv_stride + heads * dim;  // k then v, contiguous
    bf16* target = cache + (int64_t(slots[row]) * capacity + positions[row]) * width;
    for (int64_t i = int64_t(threadIdx.x) * 8; i < width; i += int64_t(blockDim.x) * 8)
        *reinterpret_cast<uint4*>(target + i) = *reinterpret_cast<const uint4*>(source + i);
}

}  // namespace

void add_bias(bf16* y, int64_t y_stride, const float* bias, int64_t rows, int64_t width, cudaStream_t stream) {
    if (rows > 0) MWB_LAUNCH(add_bias_kernel, unsigned(rows), 256, 0, stream)(y, y_stride, bias, width);
}

void gqa_write_cache(const bf16* qkv, int64_t qkv_stride, int64_t rows, int64_t heads, int64_t kv_heads, int64_t dim,
                     const int32_t* slots, const int32_t* positions, bf16* cache, int64_t capacity, cudaStream_t stream) {
    if (rows > 0)
        MWB_LAUNCH(gqa_write_cache_kernel, unsigned(rows), 128, 0, stream)(qkv, qkv_stride, heads, kv_heads, dim, slots, positions,
                                                                  cache, capacity);
}

}  // namespace mwb::cuda
