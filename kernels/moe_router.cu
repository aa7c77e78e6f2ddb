// The MoE router on the GPU, one warp per token, reproducing route_token() of engine/model/blocks/feed_forward.h:
// softmax or sigmoid scores; the correction bias only for the choice; group-limited choice (groups ranked by their
// best score, or by their two best for noaux_tc) with the other groups masked to 0.0; top-k with ties going to the
// lower index; experts sorted by id; weights optionally normalised, then scaled.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;

// Warp-wide (value, index) maximum; ties go to the lower index.
__device__ __forceinline__ void warp_argmax(float& value, int& index) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float other_value = __shfl_xor_sync(0xffffffffu, value, offset);
        const int other_index = __shfl_xor_sync(0xffffffffu, index, offset);
        if (other_value > value || (other_value == value && other_index < index)) {
            value = other_value;
            index = other_index;
        }
    }
}

__global__ void route_kernel(const float* logits, int64_t rows, RouterParams p, int32_t* experts_out, float* weights_out) {
    float* shared = dynamic_shared_memory<float>();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + warp;
    if (row >= rows) return;
    const int n = int(p.experts), k = int(p.top_k);
    float* score = shared + warp * (2 * n + 64);
    float* choice = score + n;
    int* chosen = reinterpret_cast<int*>(choice + n);  // k ≤ 32
    int* kept_group = chosen + 32;                      // groups ≤ 32
    const float* in = logits + row * n;

    if (p.sigmoid) {
        for (int e = lane; e < n; e += 32) score[e] = 1.0f / (1.0f + expf(-in[e]));
    } else {
        float peak = -INFINITY;
        for (int e = lane; e < n; e += 32) peak = fmaxf(peak, in[e]);
        peak = warp_max(peak);
        float total = 0.0f;
        for (int e = lane; e < n; e += 32) total += score[e] = expf(in[e] - peak);
        total = warp_sum(total);
        for (int e = lane; e < n; e += 32) score[e] /= total;
    }
    for (int e = lane; e < n; e += 32) choice[e] = score[e] + (p.bias ? p.bias[e] : 0.0f);
    __syncwarp();

    if (p.group_limited && p.groups > 1) {
        const int groups = int(p.groups), group_size = n / groups;
        float group_score = -INFINITY;
        if (lane < groups) {
            float best = -INFINITY, second = -INFINITY;
            for (int e = lane * group_size; e < (lane + 1) * group_size; ++e) {
                const float v = choice[e];
                if (v > best) {
                    second = best;
                    best = v;
                } else if (v > second) {
                    second = v;
                }
            }
            group_score = p.group_by_top_two ? best + (group_size > 1 ? second : 0.0f) : best;
            kept_group[lane] = 0;
        }
        for (int round = 0; round < int(p.top_groups); ++round) {
            float value = group_score;
            int index = lane < groups ? lane : 1 << 30;
            warp_argmax(value, index);
            if (lane == index) {
                kept_group[lane] = 1;
                group_score = -INFINITY;
            }
        }
        __syncwarp();
        for (int e = lane; e < n; e += 32)
            if (!kept_group[e / group_size]) choice[e] = 0.0f;
        __syncwarp();
    }

    for (int round = 0; round < k; ++round) {
        float value = -INFINITY;
        int index = 1 << 30;
        for (int e = lane; e < n; e += 32)
            if (choice[e] > value) {  // ascending scan keeps the lower index on ties
                value = choice[e];
                index = e;
            }
        warp_argmax(value, index);
        if (lane == 0) {
            chosen[round] = index;
            choice[index] = -INFINITY;
        }
        __syncwarp();
    }

    // Sort by expert id: each lane places its choice by rank; then the weights in that order.
    int mine = 0, rank = 0;
    if (lane < k) {
        mine = chosen[lane];
        for (int j = 0; j < k; ++j) rank += chosen[j] < mine;
    }
    __syncwarp();
    if (lane < k) chosen[rank] = mine;
    __syncwarp();
    if (lane < k) {
        const int sorted_expert = chosen[lane];
        float total = 0.0f;
        for (int j = 0; j < k; ++j) total += score[chosen[j]];
        float weight = score[sorted_expert];
        if (p.normalise && k > 1) weight /= (total + 1e-20f);
        experts_out[row * k + lane] = sorted_expert;
        weights_out[row * k + lane] = weight * p.scaling;
    }
}

}  // namespace

void route_tokens(const float* logits, int64_t rows, const RouterParams& router, int32_t* experts, float* weights,
                  cudaStream_t stream) {
    if (rows <= 0) return;
    const size_t shared = size_t(kWarpsPerBlock) * size_t(2 * router.experts + 64) * sizeof(float);
    MWB_LAUNCH(route_kernel, blocks_for(rows, kWarpsPerBlock), kWarpsPerBlock * 32, shared, stream)(logits, rows, router, experts, weights);
}

}  // namespace mwb::cuda
