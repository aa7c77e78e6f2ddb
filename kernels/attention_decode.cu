// Flash-decoding over the KV cache for one new token per row, shared by the absorbed MLA decode (keys are the
// 576-wide latent+rope rows, values their first 512 columns, all heads share them) and GQA decode (a group of heads
// per KV head). Each block walks one key range in tiles with an online softmax; a second kernel merges the ranges.
#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 64;        // keys scored per step
constexpr int kMaxHeads = 8;     // heads per block

template <int kColumns>  // value columns per thread: value_dim ≤ kColumns · kThreads
__global__ void __launch_bounds__(kThreads) decode_partial_kernel(DecodeAttention a) {
    float* shared = dynamic_shared_memory<float>();
    const int heads_here = int(a.heads_per_block);
    float* q = shared;                                   // [heads_here][key_dim]
    float* scores = q + heads_here * a.key_dim;          // [heads_here][kTile]
    float* running_max = scores + heads_here * kTile;    // [heads_here]
    float* running_sum = running_max + kMaxHeads;
    float* correction = running_sum + kMaxHeads;

    const int64_t row = blockIdx.x, head_block = blockIdx.y, split = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t first_head = head_block * heads_here, kv_head = first_head / a.heads_per_kv;
    const int64_t keys = int64_t(a.positions[row]) + 1;
    const int64_t per_split = (keys + a.splits - 1) / a.splits;
    const int64_t begin = split * per_split, end = keys < begin + per_split ? keys : begin + per_split;

    for (int64_t i = threadIdx.x; i < heads_here * a.key_dim; i += kThreads) {
        const int64_t h = i / a.key_dim, d = i % a.key_dim;
        q[i] = __bfloat162float(a.q[row * a.q_row_stride + (first_head + h) * a.q_head_stride + d]);
    }
    if (threadIdx.x < kMaxHeads) {
        running_max[threadIdx.x] = -INFINITY;
        running_sum[threadIdx.x] = 0.0f;
    }
    const bf16* cache_rows = a.cache + int64_t(a.cache_slots[row]) * a.capacity * a.cache_row_stride;
    const bf16* key_base = cache_rows + a.key_offset + kv_head * a.kv_head_stride;
    const bf16* value_base = cache_rows + a.value_offset + kv_head * a.kv_head_stride;
    float accumulator[kColumns][kMaxHeads];
#pragma unroll
    for (int c = 0; c < kColumns; ++c)
#pragma unroll
        for (int h = 0; h < kMaxHeads; ++h) accumulator[c][h] = 0.0f;
    __syncthreads();

    const int64_t key_vectors = a.key_dim / 8;
    for (int64_t tile = begin; tile < end; tile += kTile) {
        const int count = end - tile < kTile ? int(end - tile) : kTile;
        for (int k = warp; k < count; k += kWarps) {
            const bf16* key = key_base + (tile + k) * a.cache_row_stride;
            float partial[kMaxHeads];
#pragma unroll
            for (int h = 0; h < kMaxHeads; ++h) partial[h] = 0.0f;
            for (int64_t v = lane; v < key_vectors; v += 32) {
                float values[8];
                load_bf16x8(key + v * 8, values);
#pragma unroll
                for (int h = 0; h < kMaxHeads; ++h) {
                    if (h >= heads_here) break;
                    const float* qh = q + h * a.key_dim + v * 8;
#pragma unroll
                    for (int j = 0; j < 8; ++j) partial[h] += qh[j] * values[j];
                }
            }
#pragma unroll
            for (int h = 0; h < kMaxHeads; ++h) {
                if (h >= heads_here) break;
                const float total = warp_sum(partial[h]);
                if (lane == 0) scores[h * kTile + k] = total * a.scale;
            }
        }
        __syncthreads();
        if (warp < heads_here) {
            float* s = scores + warp * kTile;
            float tile_max = -INFINITY;
            for (int k = lane; k < count; k += 32) tile_max = fmaxf(tile_max, s[k]);
            tile_max = warp_max(tile_max);
            const float previous = running_max[warp], updated = fmaxf(previous, tile_max);
            float sum = 0.0f;
            for (int k = lane; k < count; k += 32) sum += s[k] = __expf(s[k] - updated);
            sum = warp_sum(sum);
            if (lane == 0) {
                const float scale_old = previous == -INFINITY ? 0.0f : __expf(previous - updated);
                correction[warp] = scale_old;
                running_sum[warp] = running_sum[warp] * scale_old + sum;
                running_max[warp] = updated;
            }
        }
        __syncthreads();
#pragma unroll
        for (int c = 0; c < kColumns; ++c) {
            const int64_t column = threadIdx.x + int64_t(c) * kThreads;
            if (column >= a.value_dim) break;
#pragma unroll
            for (int h = 0; h < kMaxHeads; ++h)
                if (h < heads_here) accumulator[c][h] *= correction[h];
            for (int k = 0; k < count; ++k) {
                const float v = __bfloat162float(value_base[(tile + k) * a.cache_row_stride + column]);
#pragma unroll
                for (int h = 0; h < kMaxHeads; ++h)
                    if (h < heads_here) accumulator[c][h] += scores[h * kTile + k] * v;
            }
        }
        __syncthreads();
    }

    const int64_t block = (row * gridDim.y + head_block) * a.splits + split;
    float* out = a.partials + block * heads_here * (a.value_dim + 2);
#pragma unroll
    for (int c = 0; c < kColumns; ++c) {
        const int64_t column = threadIdx.x + int64_t(c) * kThreads;
        if (column >= a.value_dim) break;
#pragma unroll
        for (int h = 0; h < kMaxHeads; ++h)
            if (h < heads_here) out[h * (a.value_dim + 2) + column] = accumulator[c][h];
    }
    if (int(threadIdx.x) < heads_here) {
        out[threadIdx.x * (a.value_dim + 2) + a.value_dim] = running_max[threadIdx.x];
        out[threadIdx.x * (a.value_dim + 2) + a.value_dim + 1] = running_sum[threadIdx.x];
    }
}

// One block per (row, head): merges the key ranges' softmax states.
__global__ void decode_combine_kernel(DecodeAttention a) {
    const int64_t row = blockIdx.x, head = blockIdx.y;
    const int64_t heads_here = a.heads_per_block, head_blocks = a.heads / heads_here;
    const int64_t head_block = head / heads_here, inner = head % heads_here, stride = a.value_dim + 2;
    auto state = [&](int64_t split) {
        return a.partials + ((row * head_blocks + head_block) * a.splits + split) * heads_here * stride + inner * stride;
    };
    float peak = -INFINITY;
    for (int64_t s = 0; s < a.splits; ++s) peak = fmaxf(peak, state(s)[a.value_dim]);
    float total = 0.0f;
    for (int64_t s = 0; s < a.splits; ++s) {
        const float* p = state(s);
        if (p[a.value_dim + 1] > 0.0f) total += p[a.value_dim + 1] * __expf(p[a.value_dim] - peak);
    }
    const float inverse = 1.0f / total;
    bf16* out = a.out + row * a.out_row_stride + head * a.out_head_stride;
    for (int64_t column = threadIdx.x; column < a.value_dim; column += blockDim.x) {
        float value = 0.0f;
        for (int64_t s = 0; s < a.splits; ++s) {
            const float* p = state(s);
            if (p[a.value_dim + 1] > 0.0f) value += p[column] * __expf(p[a.value_dim] - peak);
        }
        out[column] = __float2bfloat16(value * inverse);
    }
}

}  // namespace

void decode_attention(const DecodeAttention& a, cudaStream_t stream) {
    if (a.rows <= 0) return;
    const dim3 grid(unsigned(a.rows), unsigned(a.heads / a.heads_per_block), unsigned(a.splits));
    const size_t shared = size_t(a.heads_per_block * a.key_dim + a.heads_per_block * kTile + 3 * kMaxHeads) * sizeof(float);
    if (a.value_dim <= kThreads) MWB_LAUNCH(decode_partial_kernel<1>, grid, kThreads, shared, stream)(a);
    else if (a.value_dim <= 2 * kThreads) MWB_LAUNCH(decode_partial_kernel<2>, grid, kThreads, shared, stream)(a);
    else MWB_LAUNCH(decode_partial_kernel<4>, grid, kThreads, shared, stream)(a);
    MWB_LAUNCH(decode_combine_kernel, dim3(unsigned(a.rows), unsigned(a.heads)), 128, 0, stream)(a);
}

}  // namespace mwb::cuda
