// Memory-bound feed-forward for the decode step: the fused routed + always-on (shared or dense) MLP of
// kernels.h's FusedFeedForward, and the small-batch matrix-vector path of quantised weights (FP8 block-scaled,
// W8A16 int8 or W4A16 int4, dequantised in registers). Each warp streams whole weight rows, eight columns per
// lane and load (16 bytes of bf16, 8 of 8-bit, 4 of int4), and reuses each loaded vector for every input row of
// a chunk.
#include <cstdint>
#include <cuda_fp8.h>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 8;  // input rows that share each loaded weight vector

// One matrix of a stack (an expert's, or the only one), as the loads want it.
struct MatrixView {
    const void* values = nullptr;
    const float* scales = nullptr;
    int64_t cols = 0, groups = 0;
    WeightFormat format = WeightFormat::BF16;
};

__device__ __forceinline__ MatrixView view_of(const DeviceMatrix& m, int64_t index) {
    MatrixView v;
    const size_t values = size_t(m.rows * m.cols);
    const size_t matrix_bytes = m.format == WeightFormat::BF16 ? 2 * values : m.format == WeightFormat::INT4 ? values / 2 : values;
    v.cols = m.cols;
    v.groups = (m.cols + kScaleGroupColumns - 1) / kScaleGroupColumns;
    v.format = m.format;
    v.values = static_cast<const uint8_t*>(m.values) + size_t(index) * matrix_bytes;
    v.scales = m.scales ? m.scales + index * m.rows * v.groups : nullptr;
    return v;
}

template <WeightFormat kFormat>
__device__ __forceinline__ void load_weights(const MatrixView& w, int64_t row, int64_t column, float* out) {
    if constexpr (kFormat == WeightFormat::BF16) {
        load_bf16x8(static_cast<const bf16*>(w.values) + row * w.cols + column, out);
    } else if constexpr (kFormat == WeightFormat::INT4) {
        const uint32_t raw = *reinterpret_cast<const uint32_t*>(static_cast<const uint8_t*>(w.values) + (row * w.cols + column) / 2);
        const float scale = w.scales[row * w.groups + column / kScaleGroupColumns];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const auto pair = uint8_t(raw >> (8 * i));
            out[2 * i] = float(int8_t(uint8_t(pair << 4)) >> 4) * scale;
            out[2 * i + 1] = float(int8_t(pair) >> 4) * scale;
        }
    } else {
        const uint2 raw = *reinterpret_cast<const uint2*>(static_cast<const uint8_t*>(w.values) + row * w.cols + column);
        const float scale = w.scales[row * w.groups + column / kScaleGroupColumns];
        if constexpr (kFormat == WeightFormat::FP8) {
            const auto* pairs = reinterpret_cast<const __nv_fp8x2_storage_t*>(&raw);
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const __half2 h = __half2(__nv_cvt_fp8x2_to_halfraw2(pairs[i], __NV_E4M3));
                const float2 f = __half22float2(h);
                out[2 * i] = f.x * scale;
                out[2 * i + 1] = f.y * scale;
            }
        } else {
            const auto* bytes = reinterpret_cast<const int8_t*>(&raw);
#pragma unroll
            for (int i = 0; i < 8; ++i) out[i] = float(bytes[i]) * scale;
        }
    }
}

// Per-lane partial dot products of kRows weight rows with the first `count` of kTokens input vectors; the caller
// reduces them across the warp. All loads of one step are issued before their use.
template <WeightFormat kFormat, int kRows, int kTokens>
__device__ __forceinline__ void accumulate_rows(const MatrixView& w, const int64_t* rows, const bf16* const* inputs, int count,
                                                float (&sums)[kRows][kTokens]) {
    const int lane = threadIdx.x & 31;
    const int64_t vectors = w.cols / 8;
#pragma unroll 2
    for (int64_t v = lane; v < vectors; v += 32) {
        float weight[kRows][8];
#pragma unroll
        for (int r = 0; r < kRows; ++r) load_weights<kFormat>(w, rows[r], v * 8, weight[r]);
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
            if (t >= count) break;
            float x[8];
            load_bf16x8(inputs[t] + v * 8, x);
#pragma unroll
            for (int r = 0; r < kRows; ++r)
#pragma unroll
                for (int j = 0; j < 8; ++j) sums[r][t] += weight[r][j] * x[j];
        }
    }
}

// The same for a format known only at run time (uniform across the warp, so the branch costs nothing).
template <int kRows, int kTokens>
__device__ __forceinline__ void accumulate_rows_any(const MatrixView& w, const int64_t* rows, const bf16* const* inputs, int count,
                                                    float (&sums)[kRows][kTokens]) {
    switch (w.format) {
        case WeightFormat::BF16: accumulate_rows<WeightFormat::BF16>(w, rows, inputs, count, sums); break;
        case WeightFormat::FP8: accumulate_rows<WeightFormat::FP8>(w, rows, inputs, count, sums); break;
        case WeightFormat::INT8: accumulate_rows<WeightFormat::INT8>(w, rows, inputs, count, sums); break;
        case WeightFormat::INT4: accumulate_rows<WeightFormat::INT4>(w, rows, inputs, count, sums); break;
    }
}

// Block x: a group (an active expert, or the always-on MLP after the last expert slot); each warp one row of the
// SwiGLU output for every token of its group.
__global__ void __launch_bounds__(kThreads) gate_up_kernel(FusedFeedForward f) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool routed = int64_t(blockIdx.x) < f.max_active;
    int64_t first = 0, last = f.tokens, index = 0;
    if (routed) {
        if (int(blockIdx.x) >= f.active[f.n_experts]) return;
        index = f.active[blockIdx.x];
        first = f.offsets[index];
        last = f.offsets[index + 1];
    }
    const DeviceMatrix& matrix = routed ? f.experts_gate_up : f.mlp_gate_up;
    const int64_t inner = matrix.rows / 2, j = int64_t(blockIdx.y) * kWarps + warp;
    if (j >= inner) return;
    const MatrixView w = view_of(matrix, index);
    bf16* out = routed ? f.expert_act : f.mlp_act;
    const int64_t rows[2] = {j, j + inner};
    for (int64_t base = first; base < last; base += kChunk) {
        const int count = last - base < kChunk ? int(last - base) : kChunk;
        const bf16* inputs[kChunk];
#pragma unroll
        for (int t = 0; t < kChunk; ++t) {
            const int64_t row = base + (t < count ? t : 0);
            inputs[t] = f.input + (routed ? f.token_of_row[row] : row) * f.input_stride;
        }
        float sums[2][kChunk] = {};
        accumulate_rows_any<2, kChunk>(w, rows, inputs, count, sums);
#pragma unroll
        for (int t = 0; t < kChunk; ++t) {
            if (t >= count) break;
            const float gate = warp_sum(sums[0][t]), up = warp_sum(sums[1][t]);
            if (lane == 0) out[(base + t) * inner + j] = __float2bfloat16(gate / (1.0f + __expf(-gate)) * up);
        }
    }
}

// Weight row r of `w` against input rows [first, last) of `input` (row stride `stride`), in chunks that share each
// loaded weight vector; lane 0 receives each reduced product as on_total(input row, product).
template <class OnTotal>
__device__ __forceinline__ void row_products(const MatrixView& w, int64_t r, const bf16* input, int64_t stride, int64_t first, int64_t last,
                                             OnTotal on_total) {
    const int64_t rows[1] = {r};
    for (int64_t base = first; base < last; base += kChunk) {
        const int count = last - base < kChunk ? int(last - base) : kChunk;
        const bf16* inputs[kChunk];
#pragma unroll
        for (int t = 0; t < kChunk; ++t) inputs[t] = input + (base + (t < count ? t : 0)) * stride;
        float sums[1][kChunk] = {};
        accumulate_rows_any<1, kChunk>(w, rows, inputs, count, sums);
#pragma unroll
        for (int t = 0; t < kChunk; ++t) {
            if (t >= count) break;
            const float total = warp_sum(sums[0][t]);
            if ((threadIdx.x & 31) == 0) on_total(base + t, total);
        }
    }
}

// Each warp one output column r: the down projections of every active expert (weighted by each token's routing
// weight) and of the always-on MLP, summed per token in a fixed order (addend, experts ascending, then the MLP).
__global__ void __launch_bounds__(kThreads) down_kernel(FusedFeedForward f, int64_t hidden) {
    __shared__ float totals[kWarps][kFusedFeedForwardTokens];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t r = int64_t(blockIdx.x) * kWarps + warp;
    if (r >= hidden) return;
    float* total_of = totals[warp];
    for (int64_t t = lane; t < f.tokens; t += 32) total_of[t] = f.addend ? __bfloat162float(f.addend[t * f.out_stride + r]) : 0.0f;
    __syncwarp();
    const int groups = f.n_experts > 0 ? f.active[f.n_experts] : 0;
    for (int g = 0; g < groups; ++g) {
        const int64_t expert = f.active[g];
        const MatrixView w = view_of(f.experts_down, expert);
        row_products(w, r, f.expert_act, w.cols, f.offsets[expert], f.offsets[expert + 1], [&](int64_t row, float total) {
            const int64_t token = f.token_of_row[row];
            float weight = 0.0f;
            for (int64_t k = 0; k < f.top_k; ++k)
                if (f.row_of_assignment[token * f.top_k + k] == row) weight = f.weights[token * f.top_k + k];
            total_of[token] += weight * total;
        });
    }
    if (f.mlp_down.rows > 0) {
        const MatrixView w = view_of(f.mlp_down, 0);
        row_products(w, r, f.mlp_act, w.cols, 0, f.tokens, [&](int64_t row, float total) { total_of[row] += total; });
    }
    __syncwarp();
    for (int64_t t = lane; t < f.tokens; t += 32) f.out[t * f.out_stride + r] = __float2bfloat16(total_of[t]);
}

// y[row] = W · x[row] for a few rows: each warp kRowsPerWarp weight rows, all input rows in chunks.
constexpr int kRowsPerWarp = 4;

__global__ void __launch_bounds__(kThreads) gemv_kernel(DeviceMatrix weight, const bf16* x, int64_t x_stride, int64_t input_rows, bf16* y,
                                                        float* y_fp32, int64_t y_stride) {
    const int warp = threadIdx.x >> 5;
    const MatrixView w = view_of(weight, 0);
    for (int i = 0; i < kRowsPerWarp; ++i) {
        const int64_t r = (int64_t(blockIdx.x) * kWarps + warp) * kRowsPerWarp + i;
        if (r >= weight.rows) return;
        row_products(w, r, x, x_stride, 0, input_rows, [&](int64_t row, float total) {
            if (y_fp32) y_fp32[row * y_stride + r] = total;
            else y[row * y_stride + r] = __float2bfloat16(total);
        });
    }
}

}  // namespace

void fused_feed_forward(const FusedFeedForward& feed_forward, cudaStream_t stream) {
    FusedFeedForward f = feed_forward;
    if (f.tokens <= 0) return;
    if (f.n_experts == 0) f.max_active = 0;
    const bool mlp = f.mlp_gate_up.rows > 0;
    const int64_t groups = f.max_active + (mlp ? 1 : 0);
    if (groups == 0) return;
    int64_t inner = mlp ? f.mlp_gate_up.rows / 2 : 0;
    if (f.max_active > 0 && f.experts_gate_up.rows / 2 > inner) inner = f.experts_gate_up.rows / 2;
    const int64_t hidden = f.max_active > 0 ? f.experts_down.rows : f.mlp_down.rows;
    MWB_LAUNCH(gate_up_kernel, dim3(unsigned(groups), blocks_for(inner, kWarps)), kThreads, 0, stream)(f);
    MWB_LAUNCH(down_kernel, blocks_for(hidden, kWarps), kThreads, 0, stream)(f, hidden);
}

void matrix_gemv(const DeviceMatrix& weight, const bf16* x, int64_t x_stride, int64_t rows, bf16* y, int64_t y_stride,
                 float* y_fp32, cudaStream_t stream) {
    if (rows <= 0) return;
    MWB_LAUNCH(gemv_kernel, blocks_for(weight.rows, kWarps * kRowsPerWarp), kThreads, 0, stream)(weight, x, x_stride, rows, y, y_fp32,
                                                                                          y_stride);
}

}  // namespace mwb::cuda
