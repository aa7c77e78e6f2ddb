// Prompt attention around the tensor-core GEMMs (scores = Q·Kᵀ, out = P·V run in cuBLAS): the causal softmax of
// a tile of score rows (and, with every key visible, the unmasked softmax of the vision tower), and the attention
// probabilities the Inspector asks for.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kThreads = 256;

// One block per (head, query row).
__global__ void causal_softmax_kernel(const float* scores, bf16* probabilities, int64_t query_rows, int64_t keys,
                                      int64_t first_position) {
    __shared__ float scratch[32];
    const int64_t row = blockIdx.x;  // head · query_rows + query
    const int64_t visible = first_position + row % query_rows + 1;
    const float* in = scores + row * keys;
    bf16* out = probabilities + row * keys;
    float peak = -INFINITY;
    for (int64_t t = threadIdx.x; t < visible; t += kThreads) peak = fmaxf(peak, in[t]);
    peak = block_max(peak, scratch);
    float total = 0.0f;
    for (int64_t t = threadIdx.x; t < visible; t += kThreads) total += __expf(in[t] - peak);
    const float inverse = 1.0f / block_sum(total, scratch);
    for (int64_t t = threadIdx.x; t < keys; t += kThreads)
        out[t] = __float2bfloat16(t < visible ? __expf(in[t] - peak) * inverse : 0.0f);
}

// One block per (row, head): scores of every visible key, then an in-place softmax.
__global__ void probabilities_kernel(ProbabilityQuery query, const int32_t* positions, int64_t max_keys, float* out) {
    __shared__ float scratch[32];
    const int64_t row = blockIdx.x, head = blockIdx.y;
    const int64_t visible = positions[row] + 1;
    const bf16* q = query.q + row * query.q_row_stride + head * query.q_head_stride;
    const int64_t slot = query.cache_slots ? query.cache_slots[row] : 0;
    const bf16* keys = query.keys + slot * query.capacity * query.key_row_stride + (head / query.heads_per_kv) * query.key_head_stride;
    float* target = out + (row * query.heads + head) * max_keys;
    float peak = -INFINITY;
    for (int64_t t = threadIdx.x; t < visible; t += kThreads) {
        const bf16* k = keys + t * query.key_row_stride;
        float dot = 0.0f;
        for (int64_t i = 0; i < query.dim; ++i) dot += __bfloat162float(q[i]) * __bfloat162float(k[i]);
        target[t] = dot * query.scale;
        peak = fmaxf(peak, target[t]);
    }
    peak = block_max(peak, scratch);
    float total = 0.0f;
    for (int64_t t = threadIdx.x; t < visible; t += kThreads) total += target[t] = __expf(target[t] - peak);
    const float inverse = 1.0f / block_sum(total, scratch);
    for (int64_t t = threadIdx.x; t < max_keys; t += kThreads) target[t] = t < visible ? target[t] * inverse : 0.0f;
}

}  // namespace

void causal_softmax(const float* scores, bf16* probabilities, int64_t heads, int64_t query_rows, int64_t keys,
                    int64_t first_position, cudaStream_t stream) {
    if (heads * query_rows > 0)
        MWB_LAUNCH(causal_softmax_kernel, unsigned(heads * query_rows), kThreads, 0, stream)(scores, probabilities, query_rows, keys,
                                                                                    first_position);
}

void row_softmax(const float* scores, bf16* probabilities, int64_t rows, int64_t keys, cudaStream_t stream) {
    // One query row per "head", positioned so that it sees all of its keys.
    causal_softmax(scores, probabilities, rows, 1, keys, keys - 1, stream);
}

void attention_probabilities(const ProbabilityQuery& query, int64_t rows, const int32_t* positions, int64_t max_keys,
                             float* out, cudaStream_t stream) {
    if (rows > 0)
        MWB_LAUNCH(probabilities_kernel, dim3(unsigned(rows), unsigned(query.heads)), kThreads, 0, stream)(query, positions, max_keys, out);
}

}  // namespace mwb::cuda
