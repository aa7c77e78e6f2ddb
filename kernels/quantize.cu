// Weight-only int8 (W8A16) quantisation on load, and the dequantisation of 8-bit rows to bf16 ahead of a
// tensor-core GEMM. Both 8-bit formats share one layout: a value per weight and an fp32 scale per row per 128
// columns (FP8 block scales are expanded to it on load), so weight = value · scale.
#include <cuda_fp8.h>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

// One warp per (row, column group): symmetric, scale = max|w| / 127.
__global__ void quantize_int8_kernel(const bf16* in, int64_t rows, int64_t cols, int64_t groups, int8_t* out, float* scales) {
    const int lane = threadIdx.x & 31;
    const int64_t task = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    if (task >= rows * groups) return;
    const int64_t row = task / groups, group = task % groups;
    const int64_t begin = group * kScaleGroupColumns;
    const int64_t end = begin + kScaleGroupColumns < cols ? begin + kScaleGroupColumns : cols;
    float largest = 0.0f;
    for (int64_t c = begin + lane; c < end; c += 32) largest = fmaxf(largest, fabsf(__bfloat162float(in[row * cols + c])));
    largest = warp_max(largest);
    const float scale = largest > 0.0f ? largest / 127.0f : 1.0f;
    for (int64_t c = begin + lane; c < end; c += 32)
        out[row * cols + c] = int8_t(__float2int_rn(__bfloat162float(in[row * cols + c]) / scale));
    if (lane == 0) scales[row * groups + group] = scale;
}

__global__ void dequantize_kernel(DeviceMatrix w, int64_t row_begin, int64_t row_count, bf16* out) {
    const int64_t groups = (w.cols + kScaleGroupColumns - 1) / kScaleGroupColumns;
    const int64_t task = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (task >= row_count * w.cols) return;
    const int64_t row = row_begin + task / w.cols, col = task % w.cols;
    const uint8_t raw = static_cast<const uint8_t*>(w.values)[row * w.cols + col];
    float value;
    if (w.format == WeightFormat::FP8) {
        __nv_fp8_e4m3 f;
        f.__x = raw;
        value = float(f);
    } else {
        value = float(int8_t(raw));
    }
    out[task] = __float2bfloat16(value * w.scales[row * groups + col / kScaleGroupColumns]);
}

}  // namespace

void quantize_int8(const bf16* in, int64_t rows, int64_t cols, int8_t* out, float* scales, cudaStream_t stream) {
    const int64_t groups = (cols + kScaleGroupColumns - 1) / kScaleGroupColumns;
    const int64_t threads = rows * groups * 32;
    if (threads > 0) MWB_LAUNCH(quantize_int8_kernel, blocks_for(threads, 256), 256, 0, stream)(in, rows, cols, groups, out, scales);
}

void dequantize_rows(const DeviceMatrix& weight, int64_t row_begin, int64_t row_count, bf16* out, cudaStream_t stream) {
    const int64_t count = row_count * weight.cols;
    if (count > 0) MWB_LAUNCH(dequantize_kernel, blocks_for(count, 256), 256, 0, stream)(weight, row_begin, row_count, out);
}

}  // namespace mwb::cuda
