// Embedding lookup into the fp32 residual stream, and row gathers of bf16 activations.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

__global__ void embed_kernel(const bf16* table, const int32_t* tokens, int64_t hidden, float* x) {
    const int64_t row = blockIdx.x;
    const bf16* source = table + int64_t(tokens[row]) * hidden;
    float* target = x + row * hidden;
    for (int64_t i = int64_t(threadIdx.x) * 8; i < hidden; i += int64_t(blockDim.x) * 8) {
        float values[8];
        load_bf16x8(source + i, values);
        *reinterpret_cast<float4*>(target + i) = make_float4(values[0], values[1], values[2], values[3]);
        *reinterpret_cast<float4*>(target + i + 4) = make_float4(values[4], values[5], values[6], values[7]);
    }
}

__global__ void gather_kernel(const bf16* in, int64_t width, const int32_t* rows, bf16* out) {
    const bf16* source = in + int64_t(rows[blockIdx.x]) * width;
    bf16* target = out + int64_t(blockIdx.x) * width;
    for (int64_t i = int64_t(threadIdx.x) * 8; i < width; i += int64_t(blockDim.x) * 8)
        *reinterpret_cast<uint4*>(target + i) = *reinterpret_cast<const uint4*>(source + i);
}

}  // namespace

void embed_tokens(const bf16* table, const int32_t* tokens, int64_t rows, int64_t hidden, float* x, cudaStream_t stream) {
    if (rows > 0) MWB_LAUNCH(embed_kernel, unsigned(rows), 256, 0, stream)(table, tokens, hidden, x);
}

void gather_rows(const bf16* in, int64_t width, const int32_t* rows, int64_t count, bf16* out, cudaStream_t stream) {
    if (count > 0) MWB_LAUNCH(gather_kernel, unsigned(count), 256, 0, stream)(in, width, rows, out);
}

}  // namespace mwb::cuda
