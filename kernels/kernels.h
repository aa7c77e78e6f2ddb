// Launchers of the CUDA kernels, one group per .cu file. Plain pointers and a stream; every launcher enqueues
// work and returns at once. Layouts are row-major; "stride" is the distance between rows in elements.
// Activations are bf16, accumulation fp32, the residual stream fp32.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda_planning.h"

namespace mwb::cuda {

using bf16 = __nv_bfloat16;

// embedding.cu ------------------------------------------------------------------------------------------------
// x[r] = table[tokens[r]] as fp32.
void embed_tokens(const bf16* table, const int32_t* tokens, int64_t rows, int64_t hidden, float* x, cudaStream_t stream);
// out[i] = in[rows[i]].
void gather_rows(const bf16* in, int64_t width, const int32_t* rows, int64_t count, bf16* out, cudaStream_t stream);

// norm.cu -----------------------------------------------------------------------------------------------------
// x += delta (when not null), then out = weight · x / rms(x): the residual add fused with the next norm.
void add_rms_norm(float* x, const bf16* delta, const float* weight, int64_t rows, int64_t width, float eps, bf16* out,
                  int64_t out_stride, cudaStream_t stream);
void rms_norm(const bf16* in, int64_t in_stride, const float* weight, int64_t rows, int64_t width, float eps, bf16* out,
              int64_t out_stride, cudaStream_t stream);
void add_residual(float* x, const bf16* delta, int64_t count, cudaStream_t stream);

// rope.cu -----------------------------------------------------------------------------------------------------
struct RopeParams {
    const float* inverse_frequency = nullptr;  // rotary_dim / 2, device
    int64_t rotary_dim = 0;
    bool interleaved = false;  // pairs (2i, 2i+1) instead of halves (i, i + d/2)
    float attention_factor = 1.0f;
};
// Rotates the first rotary_dim values of each head in place, at each row's position.
void apply_rope(bf16* data, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride, const int32_t* positions,
                const RopeParams& rope, cudaStream_t stream);

// mla_attention.cu --------------------------------------------------------------------------------------------
// cache[slot][position] = [rms_norm(kv_a[:lora]) · norm_weight, kv_a[lora:lora+rope]] (the rope key already rotated).
void mla_write_cache(const bf16* kv_a, int64_t kv_stride, const float* norm_weight, float eps, int64_t rows, int64_t lora,
                     int64_t rope, const int32_t* cache_slots, const int32_t* positions, bf16* cache, int64_t capacity,
                     cudaStream_t stream);
// keys[t][h] = [expanded[t][h][:nope], cache_rows[t][lora:]] for the expanded (prompt) path.
void mla_assemble_keys(const bf16* expanded, const bf16* cache_rows, int64_t keys_count, int64_t heads, int64_t nope,
                       int64_t value_dim, int64_t lora, int64_t rope, bf16* keys, cudaStream_t stream);
// q_cat[r][h][lora:] = q[r][h][nope:] — the rotated query part next to the absorbed latent query.
void mla_append_query_rope(const bf16* q, int64_t q_stride, int64_t rows, int64_t heads, int64_t nope, int64_t rope,
                           int64_t lora, bf16* q_cat, cudaStream_t stream);

// gqa_attention.cu --------------------------------------------------------------------------------------------
void add_bias(bf16* y, int64_t y_stride, const float* bias, int64_t rows, int64_t width, cudaStream_t stream);
// cache[slot][position] = [k (kv_heads·dim) | v (kv_heads·dim)] from the fused qkv rows [q | k | v].
void gqa_write_cache(const bf16* qkv, int64_t qkv_stride, int64_t rows, int64_t heads, int64_t kv_heads, int64_t dim,
                     const int32_t* cache_slots, const int32_t* positions, bf16* cache, int64_t capacity, cudaStream_t stream);

// attention_prefill.cu ----------------------------------------------------------------------------------------
// scores [heads][query_rows][keys] (already scaled) → probabilities, query i seeing keys ≤ first_position + i;
// masked entries become 0.
void causal_softmax(const float* scores, bf16* probabilities, int64_t heads, int64_t query_rows, int64_t keys,
                    int64_t first_position, cudaStream_t stream);
// scores [rows][keys] → probabilities with every key visible (bidirectional attention).
void row_softmax(const float* scores, bf16* probabilities, int64_t rows, int64_t keys, cudaStream_t stream);

// Attention probabilities on demand (the Inspector's snapshot): out[r][h][t] for t ≤ positions[r], zero after.
struct ProbabilityQuery {
    const bf16* q = nullptr;
    int64_t q_row_stride = 0, q_head_stride = 0;
    const bf16* keys = nullptr;  // key t of kv head g: keys + (cache_slot·capacity + t)·key_row_stride + g·key_head_stride
    int64_t key_row_stride = 0, key_head_stride = 0;
    const int32_t* cache_slots = nullptr;  // null: every row reads slot 0 ("slots" is a Qt keyword)
    int64_t capacity = 0;
    int64_t dim = 0, heads = 0, heads_per_kv = 1;
    float scale = 1.0f;
};
void attention_probabilities(const ProbabilityQuery& query, int64_t rows, const int32_t* positions, int64_t max_keys,
                             float* out, cudaStream_t stream);

// attention_decode.cu -----------------------------------------------------------------------------------------
// Flash-decoding for one new token per row over the cache: keys split into `splits` ranges per row, each block
// serving `heads_per_block` (≤ kDecodeHeadRows) heads that share one KV head with tensor-core tiles; partial
// softmax states merged by a second kernel. No [T, T] matrix: memory is O(rows · heads · value_dim · splits).
// Key and value widths are multiples of 16 up to kMaxDecodeKeyDim / kMaxDecodeValueDim, pointers and strides
// 32-byte aligned. The cache is read in tiles of kDecodeKeyTile rows: a sequence shorter than a tile reads rows
// past its end (up to kDecodeKeyTile − 1 past the last slot), which must hold finite values.
struct DecodeAttention {
    const bf16* q = nullptr;  // [rows][heads][key_dim] with strides
    int64_t q_row_stride = 0, q_head_stride = 0;
    const bf16* cache = nullptr;  // one layer: [slots][capacity][cache_row_stride]
    int64_t capacity = 0, cache_row_stride = 0;
    int64_t key_offset = 0, value_offset = 0, kv_head_stride = 0;  // within a cache row
    int64_t key_dim = 0, value_dim = 0;
    int64_t heads = 0, heads_per_kv = 0, heads_per_block = 0;
    float scale = 1.0f;
    const int32_t* cache_slots = nullptr;
    const int32_t* positions = nullptr;  // keys 0..position
    int64_t rows = 0, splits = 1;
    float* partials = nullptr;  // rows·(heads/heads_per_block)·splits blocks × kDecodeHeadRows × (value_dim + 2)
    bf16* out = nullptr;        // [rows][heads][value_dim] with strides
    int64_t out_row_stride = 0, out_head_stride = 0;
};
void decode_attention(const DecodeAttention& attention, cudaStream_t stream);

// moe_router.cu -----------------------------------------------------------------------------------------------
struct RouterParams {
    int64_t experts = 0, top_k = 0, groups = 1, top_groups = 1;
    bool sigmoid = false;       // else softmax
    bool group_limited = false;  // group_limited_greedy or noaux_tc
    bool group_by_top_two = false;  // noaux_tc ranks groups by their two best scores, else by the best
    bool normalise = false;
    float scaling = 1.0f;
    const float* bias = nullptr;  // e_score_correction_bias, for the choice only
};
// One warp per token: exactly route_token() of feed_forward.h (ties to the lower index).
void route_tokens(const float* logits, int64_t rows, const RouterParams& router, int32_t* experts, float* weights,
                  cudaStream_t stream);

// moe_dispatch.cu ---------------------------------------------------------------------------------------------
// Groups the rows·top_k assignments by expert on the device (one block): offsets[experts + 1], the active experts
// (active[experts] holds their count), token_of_row and row_of_assignment as in cuda_planning.h (order within
// an expert may differ from the host's; the combine does not depend on it).
void dispatch_by_expert(const int32_t* experts, int64_t rows, int64_t top_k, int64_t n_experts, int32_t* offsets,
                        int32_t* active, int32_t* row_of_assignment, int32_t* token_of_row, cudaStream_t stream);
void gather_dispatched(const bf16* h, int64_t hidden, const int32_t* token_of_row, int64_t dispatched_rows, bf16* out,
                       cudaStream_t stream);
// delta[t] = Σ_j weights[t][j] · expert_out[row_of_assignment[t·k + j]] (+ shared[t]).
void combine_experts(const bf16* expert_out, const int32_t* row_of_assignment, const float* weights, int64_t rows,
                     int64_t top_k, int64_t hidden, const bf16* shared, bf16* delta, cudaStream_t stream);

// moe_experts.cu ----------------------------------------------------------------------------------------------
// A weight matrix [rows, cols] (or `experts` of them back to back) in a device format.
struct DeviceMatrix {
    const void* values = nullptr;  // bf16, fp8 e4m3, int8 or int4 pairs
    const float* scales = nullptr;  // quantised formats: [rows][ceil(cols/128)] per matrix
    WeightFormat format = WeightFormat::BF16;
    int64_t rows = 0, cols = 0;
};
// Decode-size feed-forward, for at most kFusedFeedForwardTokens rows: the routed experts (grouped by the device's
// dispatch, so each active expert's weights stream once for all of its tokens) and an always-on MLP (the shared
// experts, or a dense MLP) in two launches: gate + up + SwiGLU for every part, then the down projections with the
// routing weights applied and the parts summed per token. Any part may be bf16, FP8, int8 or int4. `max_active` sizes
// the grid; the device's active count decides what runs, so one launch shape serves every step (CUDA graphs).
struct FusedFeedForward {
    int64_t tokens = 0;
    const bf16* input = nullptr;  // [tokens][hidden] with input_stride
    int64_t input_stride = 0;
    // Routed experts; n_experts == 0 for none.
    DeviceMatrix experts_gate_up, experts_down;  // per expert [2·inner, hidden] and [hidden, inner], back to back
    int64_t n_experts = 0, top_k = 0, max_active = 0;
    const int32_t *offsets = nullptr, *active = nullptr, *token_of_row = nullptr, *row_of_assignment = nullptr;
    const float* weights = nullptr;  // [tokens][top_k]
    bf16* expert_act = nullptr;      // [tokens·top_k][inner], in dispatched order
    // Always-on MLP; mlp_gate_up.rows == 0 for none.
    DeviceMatrix mlp_gate_up, mlp_down;  // [2·inner, hidden] and [hidden, inner]
    bf16* mlp_act = nullptr;             // [tokens][inner]
    const bf16* addend = nullptr;        // optional [tokens][hidden] with out_stride, added to the sum
    bf16* out = nullptr;                 // [tokens][hidden] with out_stride
    int64_t out_stride = 0;
};
constexpr int64_t kFusedFeedForwardTokens = kMaxDecodeRows;
void fused_feed_forward(const FusedFeedForward& feed_forward, cudaStream_t stream);
// y[r] = W · x[r] for a few rows, any format (the quantised formats' small-batch path); fp32 output when y_fp32.
void matrix_gemv(const DeviceMatrix& weight, const bf16* x, int64_t x_stride, int64_t rows, bf16* y, int64_t y_stride,
                 float* y_fp32, cudaStream_t stream);

// mlp.cu ------------------------------------------------------------------------------------------------------
// out[r] = silu(gate_up[r][:inner]) · gate_up[r][inner:], the fused SwiGLU of a [gate | up] projection.
void swiglu(const bf16* gate_up, int64_t rows, int64_t inner, bf16* out, cudaStream_t stream);

// quantize.cu -------------------------------------------------------------------------------------------------
// W8A16 / W4A16 on load (format INT8 or INT4): symmetric, one fp32 scale per row per 128 columns. When error_sums
// is given, adds Σ(w − ŵ)² and Σw² over the matrix to error_sums[0] and [1] (NaN where a weight is not finite).
void quantize_weights(const bf16* in, int64_t rows, int64_t cols, WeightFormat format, void* out, float* scales, float* error_sums,
                      cudaStream_t stream);
// Rows [row_begin, row_begin + row_count) of an 8- or 4-bit matrix as bf16 (dequantise, then a tensor-core GEMM).
void dequantize_rows(const DeviceMatrix& weight, int64_t row_begin, int64_t row_count, bf16* out, cudaStream_t stream);

// sampling.cu -------------------------------------------------------------------------------------------------
struct DeviceSamplingParams {
    float temperature = 0.0f;  // ≤ 0: greedy
    int32_t top_k = 0;
    float top_p = 1.0f;
    float min_p = 0.0f;
    uint64_t seed = 0;
    uint64_t counter = 0;  // position of the token drawn: one random stream per (seed, position)
};
// One block per row of logits [rows, vocab]: greedy argmax (lowest index on ties), or temperature / top-k / top-p /
// min-p sampling by threshold search (no sort), deterministic for (seed, counter).
void sample_tokens(const float* logits, int64_t rows, int64_t vocab, const DeviceSamplingParams* params, int32_t* out,
                   cudaStream_t stream);

}  // namespace mwb::cuda
