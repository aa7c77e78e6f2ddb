// Memory-bound matrix-vector products for the decode step: the routed experts (grouped by expert, the device's
// dispatch deciding which experts run, so one launch shape serves every step and CUDA graphs replay it) and the
// small-batch path of 8-bit weights (FP8 block-scaled or W8A16 int8, dequantised in registers). Each warp streams
// whole weight rows with 16-byte (bf16) or 8-byte (8-bit) loads and reuses each loaded vector for up to kTokens
// input rows.
#include <cuda_fp8.h>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;
constexpr int kTokens = 4;

struct GemvArgs {
    DeviceMatrix weight;
    int64_t n_experts = 1;
    const bf16* input = nullptr;
    int64_t input_stride = 0;
    const int32_t* token_of_row = nullptr;
    const int32_t* offsets = nullptr;  // null: one matrix, rows [0, dense_rows)
    const int32_t* active = nullptr;
    int64_t dense_rows = 0;
    bf16* out = nullptr;
    float* out_fp32 = nullptr;
    int64_t out_stride = 0;
};

template <WeightFormat kFormat>
__device__ __forceinline__ void load_weights(const void* values, const float* scales, int64_t row, int64_t cols, int64_t groups,
                                             int64_t column, float* out) {
    if constexpr (kFormat == WeightFormat::BF16) {
        load_bf16x8(static_cast<const bf16*>(values) + row * cols + column, out);
    } else {
        const uint2 raw = *reinterpret_cast<const uint2*>(static_cast<const uint8_t*>(values) + row * cols + column);
        const float scale = scales[row * groups + column / kScaleGroupColumns];
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

template <WeightFormat kFormat>
__global__ void __launch_bounds__(kThreads) gemv_kernel(GemvArgs a) {
    int64_t expert = 0, first = 0, last = a.dense_rows;
    if (a.offsets) {
        if (int(blockIdx.x) >= a.active[a.n_experts]) return;
        expert = a.active[blockIdx.x];
        first = a.offsets[expert];
        last = a.offsets[expert + 1];
    }
    const int64_t rows = a.weight.rows, cols = a.weight.cols;
    const int64_t groups = (cols + kScaleGroupColumns - 1) / kScaleGroupColumns;
    const size_t element = kFormat == WeightFormat::BF16 ? 2 : 1;
    const void* values = static_cast<const uint8_t*>(a.weight.values) + size_t(expert) * size_t(rows * cols) * element;
    const float* scales = a.weight.scales ? a.weight.scales + expert * rows * groups : nullptr;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t vectors = cols / 8;

    for (int r = 0; r < kRowsPerWarp; ++r) {
        const int64_t row = int64_t(blockIdx.y) * kRowsPerBlock + warp * kRowsPerWarp + r;
        if (row >= rows) return;
        for (int64_t base = first; base < last; base += kTokens) {
            const int count = last - base < kTokens ? int(last - base) : kTokens;
            const bf16* inputs[kTokens];
#pragma unroll
            for (int t = 0; t < kTokens; ++t) {
                const int64_t dispatched = base + (t < count ? t : 0);
                const int64_t source = a.token_of_row ? a.token_of_row[dispatched] : dispatched;
                inputs[t] = a.input + source * a.input_stride;
            }
            float sum[kTokens] = {};
#pragma unroll 4
            for (int64_t v = lane; v < vectors; v += 32) {
                float w[8];
                load_weights<kFormat>(values, scales, row, cols, groups, v * 8, w);
#pragma unroll
                for (int t = 0; t < kTokens; ++t) {
                    if (t >= count) break;
                    float x[8];
                    load_bf16x8(inputs[t] + v * 8, x);
#pragma unroll
                    for (int j = 0; j < 8; ++j) sum[t] += w[j] * x[j];
                }
            }
#pragma unroll
            for (int t = 0; t < kTokens; ++t) {
                if (t >= count) break;
                const float total = warp_sum(sum[t]);
                if (lane == 0) {
                    if (a.out_fp32) a.out_fp32[(base + t) * a.out_stride + row] = total;
                    else a.out[(base + t) * a.out_stride + row] = __float2bfloat16(total);
                }
            }
        }
    }
}

void launch(const GemvArgs& a, unsigned blocks_x, cudaStream_t stream) {
    const dim3 grid(blocks_x, blocks_for(a.weight.rows, kRowsPerBlock));
    switch (a.weight.format) {
        case WeightFormat::BF16: MWB_LAUNCH(gemv_kernel<WeightFormat::BF16>, grid, kThreads, 0, stream)(a); break;
        case WeightFormat::FP8: MWB_LAUNCH(gemv_kernel<WeightFormat::FP8>, grid, kThreads, 0, stream)(a); break;
        case WeightFormat::INT8: MWB_LAUNCH(gemv_kernel<WeightFormat::INT8>, grid, kThreads, 0, stream)(a); break;
    }
}

}  // namespace

void grouped_expert_gemv(const DeviceMatrix& experts, int64_t n_experts, const bf16* input, int64_t input_stride,
                         const int32_t* token_of_row, const int32_t* offsets, const int32_t* active, int64_t max_active,
                         bf16* out, int64_t out_stride, cudaStream_t stream) {
    if (max_active <= 0) return;
    GemvArgs a;
    a.weight = experts;
    a.n_experts = n_experts;
    a.input = input;
    a.input_stride = input_stride;
    a.token_of_row = token_of_row;
    a.offsets = offsets;
    a.active = active;
    a.out = out;
    a.out_stride = out_stride;
    launch(a, unsigned(max_active), stream);
}

void matrix_gemv(const DeviceMatrix& weight, const bf16* x, int64_t x_stride, int64_t rows, bf16* y, int64_t y_stride,
                 float* y_fp32, cudaStream_t stream) {
    if (rows <= 0) return;
    GemvArgs a;
    a.weight = weight;
    a.input = x;
    a.input_stride = x_stride;
    a.dense_rows = rows;
    a.out = y;
    a.out_fp32 = y_fp32;
    a.out_stride = y_stride;
    launch(a, 1, stream);
}

}  // namespace mwb::cuda
