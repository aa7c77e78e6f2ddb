// Next-token sampling on the GPU, one block per sequence, so a decode step hands the host only the token id.
// Greedy is an argmax (lowest index on ties, as std::max_element). Otherwise the logits are divided by the
// temperature and the kept set {s ≥ τ} is found without sorting: top-k's k-th largest value and top-p's
// cut-off by bisection over the order-preserving integer image of the floats (32 counting / summing passes
// each), min-p as s ≥ max + ln(min_p). The draw walks the kept probabilities in index order with a uniform
// number derived from (seed, position): deterministic for a seed, but a different stream than the CPU sampler.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ uint32_t order_key(float value) {
    const uint32_t bits = __float_as_uint(value);
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

__device__ __forceinline__ float key_value(uint32_t key) {
    return __uint_as_float((key & 0x80000000u) ? key & 0x7fffffffu : ~key);
}

__device__ __forceinline__ uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__device__ void block_argmax(float& value, int& index, float* values, int* indices) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float v = __shfl_xor_sync(0xffffffffu, value, offset);
        const int i = __shfl_xor_sync(0xffffffffu, index, offset);
        if (v > value || (v == value && i < index)) value = v, index = i;
    }
    __syncthreads();
    if (lane == 0) values[warp] = value, indices[warp] = index;
    __syncthreads();
    value = lane < int(blockDim.x >> 5) ? values[lane] : -INFINITY;
    index = lane < int(blockDim.x >> 5) ? indices[lane] : 1 << 30;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float v = __shfl_xor_sync(0xffffffffu, value, offset);
        const int i = __shfl_xor_sync(0xffffffffu, index, offset);
        if (v > value || (v == value && i < index)) value = v, index = i;
    }
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* logits, int64_t vocab, const DeviceSamplingParams* params,
                                                          int32_t* out) {
    __shared__ float scratch[32];
    __shared__ float values[32];
    __shared__ int indices[32];
    __shared__ float prefix[kThreads];
    const int64_t row = blockIdx.x;
    const float* in = logits + row * vocab;
    const DeviceSamplingParams p = params[row];

    float best = -INFINITY;
    int best_index = 1 << 30;
    for (int64_t i = threadIdx.x; i < vocab; i += kThreads)
        if (in[i] > best) best = in[i], best_index = int(i);
    block_argmax(best, best_index, values, indices);
    if (p.temperature <= 0.0f) {
        if (threadIdx.x == 0) out[row] = best_index;
        return;
    }

    const float inverse_temperature = 1.0f / p.temperature;
    const float peak = best * inverse_temperature;
    float threshold = -INFINITY;
    if (p.top_k > 0 && p.top_k < vocab) {
        uint32_t answer = 0;
        for (int bit = 31; bit >= 0; --bit) {
            const uint32_t candidate = answer | (1u << bit);
            float count = 0.0f;
            for (int64_t i = threadIdx.x; i < vocab; i += kThreads) count += order_key(in[i] * inverse_temperature) >= candidate;
            if (block_sum(count, scratch) >= float(p.top_k)) answer = candidate;
        }
        threshold = key_value(answer);
    }
    auto mass_above = [&](float floor) {
        float total = 0.0f;
        for (int64_t i = threadIdx.x; i < vocab; i += kThreads) {
            const float s = in[i] * inverse_temperature;
            if (s >= floor) total += __expf(s - peak);
        }
        return block_sum(total, scratch);
    };
    if (p.top_p < 1.0f) {
        const float wanted = p.top_p * mass_above(threshold);
        uint32_t answer = 0;
        for (int bit = 31; bit >= 0; --bit) {
            const uint32_t candidate = answer | (1u << bit);
            const float floor = fmaxf(threshold, key_value(candidate));
            if (mass_above(floor) >= wanted) answer = candidate;
        }
        threshold = fmaxf(threshold, key_value(answer));
    }
    if (p.min_p > 0.0f) threshold = fmaxf(threshold, peak + __logf(p.min_p));

    // The uniform draw, then the walk in index order: each thread owns a contiguous range of the vocabulary.
    const uint64_t bits = mix(p.seed ^ mix(p.counter));
    const float uniform = float(bits >> 40) * 0x1.0p-24f;
    const int64_t span = (vocab + kThreads - 1) / kThreads;
    const int64_t begin = int64_t(threadIdx.x) * span, end = begin + span < vocab ? begin + span : vocab;
    float own = 0.0f;
    for (int64_t i = begin; i < end; ++i) {
        const float s = in[i] * inverse_temperature;
        if (s >= threshold) own += __expf(s - peak);
    }
    prefix[threadIdx.x] = own;
    __syncthreads();
    for (int offset = 1; offset < kThreads; offset <<= 1) {  // inclusive scan
        const float add = threadIdx.x >= unsigned(offset) ? prefix[threadIdx.x - offset] : 0.0f;
        __syncthreads();
        prefix[threadIdx.x] += add;
        __syncthreads();
    }
    const float target = uniform * prefix[kThreads - 1];
    __shared__ int chosen;
    if (threadIdx.x == 0) chosen = best_index;
    __syncthreads();
    const float before = prefix[threadIdx.x] - own;
    if (own > 0.0f && target >= before && target < prefix[threadIdx.x]) {
        float walked = before;
        int pick = -1, last_kept = -1;
        for (int64_t i = begin; i < end; ++i) {
            const float s = in[i] * inverse_temperature;
            if (s < threshold) continue;
            last_kept = int(i);
            walked += __expf(s - peak);
            if (target < walked) {
                pick = int(i);
                break;
            }
        }
        chosen = pick >= 0 ? pick : last_kept;
    }
    __syncthreads();
    if (threadIdx.x == 0) out[row] = chosen;
}

}  // namespace

void sample_tokens(const float* logits, int64_t rows, int64_t vocab, const DeviceSamplingParams* params, int32_t* out,
                   cudaStream_t stream) {
    if (rows > 0) MWB_LAUNCH(sample_kernel, unsigned(rows), kThreads, 0, stream)(logits, vocab, params, out);
}

}  // namespace mwb::cuda
