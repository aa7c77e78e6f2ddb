// Multi-head latent attention glue: the compressed cache write (normed latent + rotated shared rope key), the
// per-head keys of the expanded prompt path, and the absorbed decode query [W_UKᵀ q_nope | q_rope].
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

__global__ void mla_write_cache_kernel(const bf16* kv_a, int64_t kv_stride, const float* norm_weight, float eps, int64_t lora,
                                       int64_t rope, const int32_t* slots, const int32_t* positions, bf16* cache,
                                       int64_t capacity) {
    __shared__ float scratch[32];
    const int64_t row = blockIdx.x;
    const bf16* source = kv_a + row * kv_stride;
    bf16* target = cache + (int64_t(slots[row]) * capacity + positions[row]) * (lora + rope);
    float squares = 0.0f;
    for (int64_t i = threadIdx.x; i < lora; i += blockDim.x) {
        const float v = __bfloat162float(source[i]);
        squares += v * v;
    }
    const float inverse = rsqrtf(block_sum(squares, scratch) / float(lora) + eps);
    for (int64_t i = threadIdx.x; i < lora; i += blockDim.x)
        target[i] = __float2bfloat16(norm_weight[i] * (__bfloat162float(source[i]) * inverse));
    for (int64_t i = threadIdx.x; i < rope; i += blockDim.x) target[lora + i] = source[lora + i];
}

__global__ void mla_assemble_keys_kernel(const bf16* expanded, const bf16* cache_rows, int64_t heads, int64_t nope,
                                         int64_t value_dim, int64_t lora, int64_t rope, bf16* keys) {
    const int64_t t = blockIdx.x, qk = nope + rope;
    for (int64_t task = threadIdx.x; task < heads * qk; task += blockDim.x) {
        const int64_t head = task / qk, i = task % qk;
        keys[(t * heads + head) * qk + i] = i < nope ? expanded[(t * heads + head) * (nope + value_dim) + i]
                                                     : cache_rows[t * (lora + rope) + lora + (i - nope)];
    }
}

__global__ void mla_append_query_rope_kernel(const bf16* q, int64_t q_stride, int64_t heads, int64_t nope, int64_t rope,
                                             int64_t lora, bf16* q_cat) {
    const int64_t row = blockIdx.x, qk = nope + rope;
    for (int64_t task = threadIdx.x; task < heads * rope; task += blockDim.x) {
        const int64_t head = task / rope, i = task % rope;
        q_cat[(row * heads + head) * (lora + rope) + lora + i] = q[row * q_stride + head * qk + nope + i];
    }
}

}  // namespace

void mla_write_cache(const bf16* kv_a, int64_t kv_stride, const float* norm_weight, float eps, int64_t rows, int64_t lora,
                     int64_t rope, const int32_t* slots, const int32_t* positions, bf16* cache, int64_t capacity,
                     cudaStream_t stream) {
    if (rows > 0)
        MWB_LAUNCH(mla_write_cache_kernel, unsigned(rows), 256, 0, stream)(kv_a, kv_stride, norm_weight, eps, lora, rope, slots,
                                                                  positions, cache, capacity);
}

void mla_assemble_keys(const bf16* expanded, const bf16* cache_rows, int64_t keys_count, int64_t heads, int64_t nope,
                       int64_t value_dim, int64_t lora, int64_t rope, bf16* keys, cudaStream_t stream) {
    if (keys_count > 0)
        MWB_LAUNCH(mla_assemble_keys_kernel, unsigned(keys_count), 256, 0, stream)(expanded, cache_rows, heads, nope, value_dim, lora,
                                                                          rope, keys);
}

void mla_append_query_rope(const bf16* q, int64_t q_stride, int64_t rows, int64_t heads, int64_t nope, int64_t rope,
                           int64_t lora, bf16* q_cat, cudaStream_t stream) {
    if (rows > 0)
        MWB_LAUNCH(mla_append_query_rope_kernel, unsigned(rows), 128, 0, stream)(q, q_stride, heads, nope, rope, lora, q_cat);
}

}  // namespace mwb::cuda
