// The vision tower's own ops (SigLIP and the DeepSeek-VL aligner): LayerNorm with bias fused with the residual
// add, the two GELUs, and fp32 row adds for the patch embedding's bias and positions and the aligner's output.
// Widths are arbitrary (no vector loads): the tower is small next to the GEMMs around these kernels.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/vision_kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kThreads = 256;

// One block per row; mean first, then the variance around it (not E[x²] − mean², which cancels badly).
__global__ void add_layer_norm_kernel(float* x, const bf16* delta, const float* weight, const float* bias, int64_t width, float eps,
                                      bf16* out) {
    __shared__ float scratch[32];
    float* row = x + int64_t(blockIdx.x) * width;
    const bf16* add = delta ? delta + int64_t(blockIdx.x) * width : nullptr;
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < width; i += kThreads) {
        if (add) row[i] += __bfloat162float(add[i]);
        sum += row[i];
    }
    const float mean = block_sum(sum, scratch) / float(width);
    float squares = 0.0f;
    for (int64_t i = threadIdx.x; i < width; i += kThreads) squares += (row[i] - mean) * (row[i] - mean);
    const float inverse = rsqrtf(block_sum(squares, scratch) / float(width) + eps);
    bf16* target = out + int64_t(blockIdx.x) * width;
    for (int64_t i = threadIdx.x; i < width; i += kThreads) target[i] = __float2bfloat16((row[i] - mean) * inverse * weight[i] + bias[i]);
}

template <Gelu kind>
__global__ void gelu_kernel(const bf16* in, bf16* out, int64_t count) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= count) return;
    const float v = __bfloat162float(in[i]);
    constexpr float kSqrtTwoOverPi = 0.7978845608f, kSqrtHalf = 0.7071067812f;
    const float y = kind == Gelu::Tanh ? 0.5f * v * (1.0f + tanhf(kSqrtTwoOverPi * (v + 0.044715f * v * v * v)))
                                       : 0.5f * v * (1.0f + erff(v * kSqrtHalf));
    out[i] = __float2bfloat16(y);
}

__global__ void add_rows_kernel(float* x, const float* addend, int64_t addend_stride, int64_t width) {
    float* row = x + int64_t(blockIdx.x) * width;
    const float* source = addend + int64_t(blockIdx.x) * addend_stride;
    for (int64_t i = threadIdx.x; i < width; i += kThreads) row[i] += source[i];
}

}  // namespace

void add_layer_norm(float* x, const bf16* delta, const float* weight, const float* bias, int64_t rows, int64_t width, float eps,
                    bf16* out, cudaStream_t stream) {
    if (rows > 0) MWB_LAUNCH(add_layer_norm_kernel, unsigned(rows), kThreads, 0, stream)(x, delta, weight, bias, width, eps, out);
}

void gelu(const bf16* in, bf16* out, int64_t count, Gelu kind, cudaStream_t stream) {
    if (count <= 0) return;
    if (kind == Gelu::Tanh) MWB_LAUNCH(gelu_kernel<Gelu::Tanh>, blocks_for(count, kThreads), kThreads, 0, stream)(in, out, count);
    else MWB_LAUNCH(gelu_kernel<Gelu::Erf>, blocks_for(count, kThreads), kThreads, 0, stream)(in, out, count);
}

void add_rows(float* x, const float* addend, int64_t addend_stride, int64_t rows, int64_t width, cudaStream_t stream) {
    if (rows > 0) MWB_LAUNCH(add_rows_kernel, unsigned(rows), kThreads, 0, stream)(x, addend, addend_stride, width);
}

}  // namespace mwb::cuda
