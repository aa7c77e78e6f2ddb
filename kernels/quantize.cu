// Weight-only quantisation on load (W8A16 int8, W4A16 int4) and the dequantisation of 8-/4-bit rows to bf16 ahead
// of a tensor-core GEMM. All quantised formats share one layout: values, then an fp32 scale per row per 128 columns
// (FP8 block scales are expanded to it on load), so weight = value · scale.
#include <cstdint>
#include <cuda_fp8.h>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

// One thread per (row, column group): symmetric, scale = max|w| / 127 (int8) or / 7 (int4); adds the group's squared
// error and squared norm to error_sums[0] and [1], so the loader can check the result (NaN for non-finite weights).
// A load-time kernel: plain loops, no cross-lane traffic.
template <WeightFormat kFormat>
__global__ void quantize_kernel(const bf16* in, int64_t rows, int64_t cols, int64_t groups, uint8_t* out, float* scales,
                                float* error_sums) {
    const int64_t task = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (task >= rows * groups) return;
    const int64_t row = task / groups, group = task % groups;
    const int64_t begin = group * kScaleGroupColumns;
    const int64_t end = begin + kScaleGroupColumns < cols ? begin + kScaleGroupColumns : cols;
    const bf16* source = in + row * cols;
    float largest = 0.0f;
    for (int64_t c = begin; c < end; ++c) largest = fmaxf(largest, fabsf(__bfloat162float(source[c])));
    const float levels = kFormat == WeightFormat::INT8 ? 127.0f : 7.0f;
    const float scale = largest > 0.0f ? largest / levels : 1.0f;
    float error = 0.0f, norm = 0.0f;
    auto quantise = [&](int64_t c) {
        const float w = __bfloat162float(source[c]);
        const float q = fminf(fmaxf(rintf(w / scale), -levels), levels);
        error += (w - q * scale) * (w - q * scale);
        norm += w * w;
        return int(q);
    };
    if constexpr (kFormat == WeightFormat::INT8) {
        for (int64_t c = begin; c < end; ++c) out[row * cols + c] = uint8_t(int8_t(quantise(c)));
    } else {
        // Column pairs (cols is even): the even column in the low nibble.
        for (int64_t c = begin; c < end; c += 2) {
            const int low = quantise(c), high = quantise(c + 1);
            out[(row * cols + c) / 2] = uint8_t((low & 0xf) | ((high & 0xf) << 4));
        }
    }
    scales[row * groups + group] = scale;
    if (error_sums) {
        atomicAdd(&error_sums[0], error);
        atomicAdd(&error_sums[1], norm);
    }
}

__global__ void dequantize_kernel(DeviceMatrix w, int64_t row_begin, int64_t row_count, bf16* out) {
    const int64_t groups = (w.cols + kScaleGroupColumns - 1) / kScaleGroupColumns;
    const int64_t task = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (task >= row_count * w.cols) return;
    const int64_t row = row_begin + task / w.cols, col = task % w.cols;
    const auto* values = static_cast<const uint8_t*>(w.values);
    float value;
    if (w.format == WeightFormat::FP8) {
        __nv_fp8_e4m3 f;
        f.__x = values[row * w.cols + col];
        value = float(f);
    } else if (w.format == WeightFormat::INT4) {
        const uint8_t pair = values[(row * w.cols + col) / 2];
        value = float(int8_t(uint8_t((col & 1) ? pair & 0xf0 : pair << 4)) >> 4);
    } else {
        value = float(int8_t(values[row * w.cols + col]));
    }
    out[task] = __float2bfloat16(value * w.scales[row * groups + col / kScaleGroupColumns]);
}

}  // namespace

void quantize_weights(const bf16* in, int64_t rows, int64_t cols, WeightFormat format, void* out, float* scales, float* error_sums,
                      cudaStream_t stream) {
    const int64_t groups = (cols + kScaleGroupColumns - 1) / kScaleGroupColumns;
    const int64_t threads = rows * groups;
    if (threads <= 0) return;
    auto* values = static_cast<uint8_t*>(out);
    if (format == WeightFormat::INT4)
        MWB_LAUNCH(quantize_kernel<WeightFormat::INT4>, blocks_for(threads, 256), 256, 0, stream)(in, rows, cols, groups, values, scales, error_sums);
    else
        MWB_LAUNCH(quantize_kernel<WeightFormat::INT8>, blocks_for(threads, 256), 256, 0, stream)(in, rows, cols, groups, values, scales, error_sums);
}

void dequantize_rows(const DeviceMatrix& weight, int64_t row_begin, int64_t row_count, bf16* out, cudaStream_t stream) {
    const int64_t count = row_count * weight.cols;
    if (count > 0) MWB_LAUNCH(dequantize_kernel, blocks_for(count, 256), 256, 0, stream)(weight, row_begin, row_count, out);
}

}  // namespace mwb::cuda
