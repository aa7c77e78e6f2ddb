// Launchers of the vision tower's kernels (vision.cu): what SigLIP and the DeepSeek-VL aligner need beyond the
// language model's kernels (kernels.h). Same conventions: plain pointers and a stream, row-major, activations
// bf16, the residual stream and statistics fp32. The GEMMs run in cuBLAS (blas.h); bias adds on bf16 rows are
// kernels.h's add_bias, the attention softmax its row_softmax.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/kernels.h"

namespace mwb::cuda {

// x += delta (when not null), then out = (x − mean) / sqrt(var + eps) · weight + bias per row of x [rows, width]:
// the residual add fused with the pre-norm LayerNorm that follows it; out is [rows, width] contiguous.
void add_layer_norm(float* x, const bf16* delta, const float* weight, const float* bias, int64_t rows, int64_t width, float eps,
                    bf16* out, cudaStream_t stream);

enum class Gelu {
    Tanh,  // torch's approximate="tanh" (SigLIP's gelu_pytorch_tanh)
    Erf,   // exact, nn.GELU() (the aligner)
};
// out[i] = gelu(in[i]); in == out is allowed.
void gelu(const bf16* in, bf16* out, int64_t count, Gelu kind, cudaStream_t stream);

// x[r][i] += addend[r · addend_stride + i] for x [rows, width]; addend_stride 0 adds one row to every row (a bias).
void add_rows(float* x, const float* addend, int64_t addend_stride, int64_t rows, int64_t width, cudaStream_t stream);

}  // namespace mwb::cuda
