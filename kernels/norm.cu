// RMSNorm, fused with the residual add that precedes it: one block per row, fp32 statistics.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void add_rms_norm_kernel(float* x, const bf16* delta, const float* weight, int64_t width, float eps, bf16* out,
                                    int64_t out_stride) {
    __shared__ float scratch[32];
    float* row = x + int64_t(blockIdx.x) * width;
    const bf16* add = delta ? delta + int64_t(blockIdx.x) * width : nullptr;
    float squares = 0.0f;
    for (int64_t i = int64_t(threadIdx.x) * 8; i < width; i += kThreads * 8) {
        float values[8];
        const float4 a = *reinterpret_cast<const float4*>(row + i), b = *reinterpret_cast<const float4*>(row + i + 4);
        values[0] = a.x, values[1] = a.y, values[2] = a.z, values[3] = a.w;
        values[4] = b.x, values[5] = b.y, values[6] = b.z, values[7] = b.w;
        if (add) {
            float extra[8];
            load_bf16x8(add + i, extra);
#pragma unroll
            for (int j = 0; j < 8; ++j) values[j] += extra[j];
            *reinterpret_cast<float4*>(row + i) = make_float4(values[0], values[1], values[2], values[3]);
            *reinterpret_cast<float4*>(row + i + 4) = make_float4(values[4], values[5], values[6], values[7]);
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) squares += values[j] * values[j];
    }
    const float inverse = rsqrtf(block_sum(squares, scratch) / float(width) + eps);
    bf16* target = out + int64_t(blockIdx.x) * out_stride;
    for (int64_t i = int64_t(threadIdx.x) * 8; i < width; i += kThreads * 8) {
        float values[8];
        const float4 a = *reinterpret_cast<const float4*>(row + i), b = *reinterpret_cast<const float4*>(row + i + 4);
        values[0] = a.x, values[1] = a.y, values[2] = a.z, values[3] = a.w;
        values[4] = b.x, values[5] = b.y, values[6] = b.z, values[7] = b.w;
#pragma unroll
        for (int j = 0; j < 8; ++j) values[j] = weight[i + j] * (values[j] * inverse);
        store_bf16x8(target + i, values);
    }
}

__global__ void rms_norm_kernel(const bf16* in, int64_t in_stride, const float* weight, int64_t width, float eps, bf16* out,
                                int64_t out_stride) {
    __shared__ float scratch[32];
    const bf16* row = in + int64_t(blockIdx.x) * in_stride;
    float squares = 0.0f;
    for (int64_t i = int64_t(threadIdx.x) * 8; i < width; i += kThreads * 8) {
        float values[8];
        load_bf16x8(row + i, values);
#pragma unroll
        for (int j = 0; j < 8; ++j) squares += values[j] * values[j];
    }
    const float inverse = rsqrtf(block_sum(squares, scratch) / float(width) + eps);
    bf16* target = out + int64_t(blockIdx.x) * out_stride;
    for (int64_t i = int64_t(threadIdx.x) * 8; i < width; i += kThreads * 8) {
        float values[8];
        load_bf16x8(row + i, values);
#pragma unroll
        for (int j = 0; j < 8; ++j) values[j] = weight[i + j] * (values[j] * inverse);
        store_bf16x8(target + i, values);
    }
}

__global__ void add_residual_kernel(float* x, const bf16* delta, int64_t count) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < count) x[i] += __bfloat162float(delta[i]);
}

}  // namespace

void add_rms_norm(float* x, const bf16* delta, const float* weight, int64_t rows, int64_t width, float eps, bf16* out,
                  int64_t out_stride, cudaStream_t stream) {
    if (rows > 0) MWB_LAUNCH(add_rms_norm_kernel, unsigned(rows), kThreads, 0, stream)(x, delta, weight, width, eps, out, out_stride);
}

void rms_norm(const bf16* in, int64_t in_stride, const float* weight, int64_t rows, int64_t width, float eps, bf16* out,
              int64_t out_stride, cudaStream_t stream) {
    if (rows > 0) MWB_LAUNCH(rms_norm_kernel, unsigned(rows), kThreads, 0, stream)(in, in_stride, weight, width, eps, out, out_stride);
}

void add_residual(float* x, const bf16* delta, int64_t count, cudaStream_t stream) {
    if (count > 0) MWB_LAUNCH(add_residual_kernel, blocks_for(count, 256), 256, 0, stream)(x, delta, count);
}

}  // namespace mwb::cuda
