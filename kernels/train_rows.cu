// Moving and combining the LoRA trainer's fp32 rows on the GPU: fp32 → bf16 for the frozen weights' GEMMs,
// residual adds, strided column copies (MLA's latent and rope key inside kv_a), the sum over heads of MLA's
// shared rope key, the routed experts' gathers, weighted scatters and router-weight dot products, bias rows, and
// PEFT's lora_dropout with the CPU trainer's mask.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/train_kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void to_bf16_kernel(const float* x, int64_t count, bf16* out) {
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (i < count) out[i] = __float2bfloat16(x[i]);
}

__global__ void add_into_kernel(float* x, const float* y, int64_t count) {
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (i < count) x[i] += y[i];
}

// One block per row.
__global__ void copy_columns_kernel(const float* in, int64_t in_stride, int64_t width, float* out, int64_t out_stride, bool accumulate) {
    const float* source = in + int64_t(blockIdx.x) * in_stride;
    float* target = out + int64_t(blockIdx.x) * out_stride;
    for (int64_t i = threadIdx.x; i < width; i += kThreads) target[i] = accumulate ? target[i] + source[i] : source[i];
}

// Heads summed in head order, as the CPU sums its per-head copies.
__global__ void sum_heads_kernel(const float* per_head, int64_t heads, int64_t count, float* out) {
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (i >= count) return;
    float total = 0.0f;
    for (int64_t h = 0; h < heads; ++h) total += per_head[h * count + i];
    out[i] = total;
}

// One block per gathered row.
__global__ void gather_rows_kernel(const float* in, int64_t width, const int32_t* rows, const float* scales, float* out) {
    const int64_t i = blockIdx.x;
    const float scale = scales ? scales[i] : 1.0f;
    const float* source = in + int64_t(rows[i]) * width;
    float* target = out + i * width;
    for (int64_t j = threadIdx.x; j < width; j += kThreads) target[j] = scales ? scale * source[j] : source[j];
}

// One block per row; the rows of one call are distinct targets (a token meets an expert once).
__global__ void scatter_add_rows_kernel(const float* in, int64_t width, const int32_t* rows, const float* scales, float* out) {
    const int64_t i = blockIdx.x;
    const float scale = scales ? scales[i] : 1.0f;
    const float* source = in + i * width;
    float* target = out + int64_t(rows[i]) * width;
    for (int64_t j = threadIdx.x; j < width; j += kThreads) target[j] += scales ? scale * source[j] : source[j];
}

// One block per pair, summed by a block reduction.
__global__ void row_dots_kernel(const float* a, const int32_t* a_rows, const float* b, int64_t width, float* out, const int32_t* out_index) {
    __shared__ float scratch[32];
    const int64_t i = blockIdx.x;
    const float* x = a + int64_t(a_rows[i]) * width;
    const float* y = b + i * width;
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < width; j += kThreads) sum += x[j] * y[j];
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) out[out_index[i]] = sum;
}

__global__ void add_bias_rows_kernel(float* y, int64_t count, int64_t width, const float* bias) {
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (i < count) y[i] += bias[i % width];
}

// The CPU trainer's lora_dropout mask (LoraModel's `kept`): element i of module `module`'s input is kept when a
// splitmix64-style hash of the row's seed, the module and i, as a double in [0, 1), is at least the rate.
__device__ __forceinline__ bool kept(uint64_t seed, int64_t module, int64_t i, double rate) {
    uint64_t z = seed ^ (uint64_t(module + 1) * 0x9e3779b97f4a7c15ull) ^ (uint64_t(i) * 0xbf58476d1ce4e5b9ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return double(z >> 11) * 0x1.0p-53 >= rate;
}

__global__ void lora_dropout_kernel(const float* x, int64_t count, uint64_t seed, int64_t module, double rate, float keep_scale, float* out) {
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (i < count) out[i] = kept(seed, module, i, rate) ? x[i] * keep_scale : 0.0f;
}

__global__ void lora_dropout_backward_add_kernel(const float* d, int64_t count, uint64_t seed, int64_t module, double rate, float keep_scale,
                                                 float* dx) {
    const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
    if (i < count && kept(seed, module, i, rate)) dx[i] += d[i] * keep_scale;
}

}  // namespace

void to_bf16(const float* x, int64_t count, bf16* out, cudaStream_t stream) {
    if (count > 0) MWB_LAUNCH(to_bf16_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(x, count, out);
}

void add_into(float* x, const float* y, int64_t count, cudaStream_t stream) {
    if (count > 0) MWB_LAUNCH(add_into_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(x, y, count);
}

void copy_columns(const float* in, int64_t in_stride, int64_t rows, int64_t width, float* out, int64_t out_stride, bool accumulate,
                  cudaStream_t stream) {
    if (rows > 0 && width > 0)
        MWB_LAUNCH(copy_columns_kernel, unsigned(rows), kThreads, 0, stream)(in, in_stride, width, out, out_stride, accumulate);
}

void sum_heads(const float* per_head, int64_t heads, int64_t count, float* out, cudaStream_t stream) {
    if (count > 0) MWB_LAUNCH(sum_heads_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(per_head, heads, count, out);
}

void gather_rows_fp32(const float* in, int64_t width, const int32_t* rows, const float* scales, int64_t count, float* out, cudaStream_t stream) {
    if (count > 0) MWB_LAUNCH(gather_rows_kernel, unsigned(count), kThreads, 0, stream)(in, width, rows, scales, out);
}

void scatter_add_rows(const float* in, int64_t width, const int32_t* rows, const float* scales, int64_t count, float* out, cudaStream_t stream) {
    if (count > 0) MWB_LAUNCH(scatter_add_rows_kernel, unsigned(count), kThreads, 0, stream)(in, width, rows, scales, out);
}

void row_dots(const float* a, const int32_t* a_rows, const float* b, int64_t width, int64_t count, float* out, const int32_t* out_index,
              cudaStream_t stream) {
    if (count > 0) MWB_LAUNCH(row_dots_kernel, unsigned(count), kThreads, 0, stream)(a, a_rows, b, width, out, out_index);
}

void add_bias_rows(float* y, int64_t rows, int64_t width, const float* bias, cudaStream_t stream) {
    const int64_t count = rows * width;
    if (count > 0) MWB_LAUNCH(add_bias_rows_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(y, count, width, bias);
}

void lora_dropout(const float* x, int64_t count, uint64_t seed, int64_t module, double rate, float* out, cudaStream_t stream) {
    if (count > 0)
        MWB_LAUNCH(lora_dropout_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(x, count, seed, module, rate,
                                                                                          float(1.0 / (1.0 - rate)), out);
}

void lora_dropout_backward_add(const float* d, int64_t count, uint64_t seed, int64_t module, double rate, float* dx, cudaStream_t stream) {
    if (count > 0)
        MWB_LAUNCH(lora_dropout_backward_add_kernel, blocks_for(count, kThreads), kThreads, 0, stream)(d, count, seed, module, rate,
                                                                                                       float(1.0 / (1.0 - rate)), dx);
}

}  // namespace mwb::cuda
