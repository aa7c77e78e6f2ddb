// Split-KV decode attention over the KV cache for one new token per row, shared by the absorbed MLA decode (keys
// are the 576-wide latent+rope rows, values their first 512 columns, all heads share them) and GQA decode (a group
// of heads per KV head). A block serves up to 16 heads that read one KV head over one key range: their queries
// form one 16-row tensor-core tile, so Q·Kᵀ and P·V are warp matrix products (bf16 in, fp32 accumulate) and each
// key is read once for all of them. The scores of up to kSubrange keys are held in shared memory for an exact
// softmax; a longer range rescales its running output between subranges. A second kernel merges the ranges.
#include <cstdint>
#include <mma.h>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

namespace wmma = nvcuda::wmma;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 16;  // keys, head rows and value columns of one matrix tile
static_assert(kTile == kDecodeKeyTile && kTile == kDecodeHeadRows);
constexpr int kSubrange = 256;                                      // keys scored at once
constexpr int kMaxValueTiles = kMaxDecodeValueDim / (kTile * kWarps);  // value tiles per warp

using ScoreTile = wmma::fragment<wmma::accumulator, kTile, kTile, kTile, float>;

// The first key of the tile that nominally starts at `nominal`: a tile that would run past the sequence is moved
// back to end at its last key, so that it reads only rows the sequence has written (its columns before `nominal`
// are masked). Sequences shorter than a tile read a few rows past their end (zeroed when the cache was reserved).
__device__ __forceinline__ int64_t tile_start(int64_t nominal, int64_t keys) {
    const int64_t last_full = keys > kTile ? keys - kTile : 0;
    return nominal < last_full ? nominal : last_full;
}

__global__ void __launch_bounds__(kThreads) decode_partial_kernel(DecodeAttention a) {
    bf16* q = dynamic_shared_memory<bf16>();                                    // [kTile heads][key_dim]
    auto* scores = reinterpret_cast<float*>(q + kTile * a.key_dim);             // [kTile][kSubrange]
    auto* p = reinterpret_cast<bf16*>(scores + kTile * kSubrange);              // [kTile][kSubrange]
    auto* running_max = reinterpret_cast<float*>(p + kTile * kSubrange);        // [kTile]
    float* running_sum = running_max + kTile;
    float* correction = running_sum + kTile;

    const int64_t row = blockIdx.x, head_block = blockIdx.y, split = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int heads_here = int(a.heads_per_block);
    const int64_t first_head = head_block * heads_here, kv_head = first_head / a.heads_per_kv;
    const int64_t keys = int64_t(a.positions[row]) + 1;
    const int64_t per_split = (keys + a.splits - 1) / a.splits;
    const int64_t begin = split * per_split, end = keys < begin + per_split ? keys : begin + per_split;
    const int64_t block = (row * gridDim.y + head_block) * a.splits + split;
    const int64_t blocks = int64_t(gridDim.x) * gridDim.y * gridDim.z;
    float* partial = a.partials + block * kTile * a.value_dim;  // [kTile][value_dim], then the states after all blocks
    float* state = a.partials + blocks * kTile * a.value_dim + block * kTile * 2;

    // The queries as one tile; rows past this block's heads are zero.
    const int64_t key_vectors = a.key_dim / 8;
    for (int64_t i = threadIdx.x; i < kTile * key_vectors; i += kThreads) {
        const int64_t h = i / key_vectors, d = (i % key_vectors) * 8;
        uint4 raw = {0, 0, 0, 0};
        if (h < heads_here) raw = *reinterpret_cast<const uint4*>(a.q + row * a.q_row_stride + (first_head + h) * a.q_head_stride + d);
        *reinterpret_cast<uint4*>(q + h * a.key_dim + d) = raw;
    }
    if (threadIdx.x < kTile) {
        running_max[threadIdx.x] = -INFINITY;
        running_sum[threadIdx.x] = 0.0f;
    }
    const bf16* cache_rows = a.cache + int64_t(a.cache_slots[row]) * a.capacity * a.cache_row_stride;
    const bf16* key_base = cache_rows + a.key_offset + kv_head * a.kv_head_stride;
    const bf16* value_base = cache_rows + a.value_offset + kv_head * a.kv_head_stride;
    const int key_steps = int(a.key_dim / kTile), value_tiles = int(a.value_dim / kTile);
    ScoreTile out[kMaxValueTiles];
#pragma unroll
    for (int i = 0; i < kMaxValueTiles; ++i) wmma::fill_fragment(out[i], 0.0f);
    __syncthreads();

    for (int64_t sub = begin; sub < end; sub += kSubrange) {
        const int64_t sub_end = end < sub + kSubrange ? end : sub + kSubrange;
        const int tiles = int((sub_end - sub + kTile - 1) / kTile);
        // Scores: warp w takes key tiles w, w + kWarps, ...
        for (int tile = warp; tile < tiles; tile += kWarps) {
            const bf16* key_rows = key_base + tile_start(sub + tile * kTile, keys) * a.cache_row_stride;
            ScoreTile s;
            wmma::fill_fragment(s, 0.0f);
            for (int step = 0; step < key_steps; ++step) {
                wmma::fragment<wmma::matrix_a, kTile, kTile, kTile, bf16, wmma::row_major> query;
                wmma::fragment<wmma::matrix_b, kTile, kTile, kTile, bf16, wmma::col_major> key;
                wmma::load_matrix_sync(query, q + step * kTile, unsigned(a.key_dim));
                wmma::load_matrix_sync(key, key_rows + step * kTile, unsigned(a.cache_row_stride));
                wmma::mma_sync(s, query, key, s);
            }
            wmma::store_matrix_sync(scores + tile * kTile, s, kSubrange, wmma::mem_row_major);
        }
        __syncthreads();
        // Softmax state per head row; masked columns (outside [sub, sub_end), or heads past this block's) get p = 0.
        for (int h = warp; h < kTile; h += kWarps) {
            float* s = scores + h * kSubrange;
            bf16* ph = p + h * kSubrange;
            float tile_max = -INFINITY;
            for (int c = lane; c < tiles * kTile; c += 32) {
                const int64_t nominal = sub + (c / kTile) * kTile, key = tile_start(nominal, keys) + c % kTile;
                s[c] = h < heads_here && key >= nominal && key < sub_end ? s[c] * a.scale : -INFINITY;
                tile_max = fmaxf(tile_max, s[c]);
            }
            tile_max = warp_max(tile_max);
            const float previous = running_max[h], updated = fmaxf(previous, tile_max);
            float sum = 0.0f;
            for (int c = lane; c < tiles * kTile; c += 32) {
                const bf16 e = __float2bfloat16(s[c] == -INFINITY ? 0.0f : __expf(s[c] - updated));
                ph[c] = e;
                sum += __bfloat162float(e);
            }
            sum = warp_sum(sum);
            if (lane == 0) {
                const float scale_old = previous == -INFINITY ? 0.0f : __expf(previous - updated);
                correction[h] = scale_old;
                running_sum[h] = running_sum[h] * scale_old + sum;
                running_max[h] = updated;
            }
        }
        __syncthreads();
        if (sub > begin) {
            // A later subrange raised the maxima: rescale the output rows, through this block's own partial.
#pragma unroll
            for (int i = 0; i < kMaxValueTiles; ++i)
                if (warp + i * kWarps < value_tiles)
                    wmma::store_matrix_sync(partial + (warp + i * kWarps) * kTile, out[i], unsigned(a.value_dim), wmma::mem_row_major);
            __syncthreads();
            for (int64_t i = threadIdx.x; i < kTile * a.value_dim; i += kThreads) partial[i] *= correction[i / a.value_dim];
            __syncthreads();
#pragma unroll
            for (int i = 0; i < kMaxValueTiles; ++i)
                if (warp + i * kWarps < value_tiles)
                    wmma::load_matrix_sync(out[i], partial + (warp + i * kWarps) * kTile, unsigned(a.value_dim), wmma::mem_row_major);
        }
        // Output: warp w owns value tiles w, w + kWarps, ...
        for (int tile = 0; tile < tiles; ++tile) {
            const bf16* value_rows = value_base + tile_start(sub + tile * kTile, keys) * a.cache_row_stride;
            wmma::fragment<wmma::matrix_a, kTile, kTile, kTile, bf16, wmma::row_major> probabilities;
            wmma::load_matrix_sync(probabilities, p + tile * kTile, kSubrange);
#pragma unroll
            for (int i = 0; i < kMaxValueTiles; ++i) {
                if (warp + i * kWarps >= value_tiles) continue;
                wmma::fragment<wmma::matrix_b, kTile, kTile, kTile, bf16, wmma::row_major> value;
                wmma::load_matrix_sync(value, value_rows + (warp + i * kWarps) * kTile, unsigned(a.cache_row_stride));
                wmma::mma_sync(out[i], probabilities, value, out[i]);
            }
        }
        __syncthreads();  // scores and p are rewritten by the next subrange
    }
#pragma unroll
    for (int i = 0; i < kMaxValueTiles; ++i)
        if (warp + i * kWarps < value_tiles)
            wmma::store_matrix_sync(partial + (warp + i * kWarps) * kTile, out[i], unsigned(a.value_dim), wmma::mem_row_major);
    if (threadIdx.x < kTile) {
        state[threadIdx.x * 2] = running_max[threadIdx.x];
        state[threadIdx.x * 2 + 1] = running_sum[threadIdx.x];
    }
}

constexpr int kCombineThreads = 128;

// Block (row, head, column range): merges the key ranges' softmax states, one output column per thread.
__global__ void __launch_bounds__(kCombineThreads) decode_combine_kernel(DecodeAttention a) {
    const int64_t row = blockIdx.x, head = blockIdx.y, column = int64_t(blockIdx.z) * kCombineThreads + threadIdx.x;
    const int64_t heads_here = a.heads_per_block, head_blocks = a.heads / heads_here;
    const int64_t head_block = head / heads_here, inner = head % heads_here;
    const int64_t blocks = a.rows * head_blocks * a.splits, first = (row * head_blocks + head_block) * a.splits;
    const float* states = a.partials + blocks * kTile * a.value_dim;
    float peak = -INFINITY;
    for (int64_t s = 0; s < a.splits; ++s) peak = fmaxf(peak, states[(first + s) * kTile * 2 + inner * 2]);
    float total = 0.0f, value = 0.0f;
    for (int64_t s = 0; s < a.splits; ++s) {
        const float* st = states + (first + s) * kTile * 2 + inner * 2;
        if (st[1] <= 0.0f) continue;
        const float weight = __expf(st[0] - peak);
        total += st[1] * weight;
        if (column < a.value_dim) value += a.partials[((first + s) * kTile + inner) * a.value_dim + column] * weight;
    }
    if (column < a.value_dim) a.out[row * a.out_row_stride + head * a.out_head_stride + column] = __float2bfloat16(value / total);
}

}  // namespace

void decode_attention(const DecodeAttention& a, cudaStream_t stream) {
    if (a.rows <= 0) return;
    const dim3 grid(unsigned(a.rows), unsigned(a.heads / a.heads_per_block), unsigned(a.splits));
    const size_t shared = size_t(kTile * a.key_dim) * sizeof(bf16) + size_t(kTile * kSubrange) * (sizeof(float) + sizeof(bf16)) +
                          3 * kTile * sizeof(float);
    MWB_LAUNCH(decode_partial_kernel, grid, kThreads, shared, stream)(a);
    const dim3 combine(unsigned(a.rows), unsigned(a.heads), blocks_for(a.value_dim, kCombineThreads));
    MWB_LAUNCH(decode_combine_kernel, combine, kCombineThreads, 0, stream)(a);
}

}  // namespace mwb::cuda
