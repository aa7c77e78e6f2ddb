// The fused SwiGLU of the dense MLP, the shared experts and the routed experts: [gate | up] → silu(gate) · up.
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

__global__ void swiglu_kernel(const bf16* gate_up, int64_t rows, int64_t inner, bf16* out) {
    const int64_t vectors = inner / 8;
    const int64_t task = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (task >= rows * vectors) return;
    const int64_t row = task / vectors, column = (task % vectors) * 8;
    float gate[8], up[8], result[8];
    load_bf16x8(gate_up + row * 2 * inner + column, gate);
    load_bf16x8(gate_up + row * 2 * inner + inner + column, up);
#pragma unroll
    for (int j = 0; j < 8; ++j) result[j] = gate[j] / (1.0f + __expf(-gate[j])) * up[j];
    store_bf16x8(out + row * inner + column, result);
}

}  // namespace

void swiglu(const bf16* gate_up, int64_t rows, int64_t inner, bf16* out, cudaStream_t stream) {
    const int64_t tasks = rows * (inner / 8);
    if (tasks > 0) MWB_LAUNCH(swiglu_kernel, blocks_for(tasks, 256), 256, 0, stream)(gate_up, rows, inner, out);
}

}  // namespace mwb::cuda
