// cuBLAS for the tensor-core GEMMs: linear layers y = x·Wᵀ (bf16 in, fp32 accumulation, bf16 or fp32 out) and the
// head-batched products of attention. One handle bound to the backend's stream and a fixed workspace, so calls
// are legal inside CUDA-graph capture.
#pragma once

#include <cstdint>

#include <cublas_v2.h>

#include "engine/core/result.h"
#include "kernels/kernels.h"

namespace mwb::cuda {

class Blas {
public:
    Blas() = default;
    Blas(const Blas&) = delete;
    Blas& operator=(const Blas&) = delete;
    ~Blas();

    Status initialise(cudaStream_t stream);
    Status set_workspace(void* workspace, size_t workspace_bytes);

    // y[rows][out] (row stride y_stride) = alpha · x[rows][in] (row stride x_stride) · W[out][in]ᵀ, or y += that when
    // accumulating.
    Status linear(const bf16* x, int64_t x_stride, int64_t rows, const bf16* w, int64_t out, int64_t in, void* y, bool y_fp32,
                  int64_t y_stride, float alpha = 1.0f, bool accumulate = false);

    // cuBLAS's own column-major strided-batched product C_i = alpha · op(A_i) · op(B_i) (+ C_i when accumulating),
    // bf16 operands.
    struct Batched {
        bool transpose_a = false, transpose_b = false, accumulate = false;
        int64_t m = 0, n = 0, k = 0;
        float alpha = 1.0f;
        const bf16* a = nullptr;
        int64_t lda = 0, stride_a = 0;
        const bf16* b = nullptr;
        int64_t ldb = 0, stride_b = 0;
        void* c = nullptr;
        bool c_fp32 = false;
        int64_t ldc = 0, stride_c = 0;
        int64_t batch = 1;
    };
    Status batched(const Batched& product);

    // Row-major fp32 products, as the trainer's float32 math wants them: C_i [m][n] = alpha · op(A_i) · op(B_i)
    // (+ C_i when accumulating), op(A_i) [m][k] stored as [m][k] (or [k][m] transposed), op(B_i) [k][n] stored as
    // [k][n] (or [n][k] transposed); lda/ldb/ldc are the stored row lengths. Full fp32 (no TF32).
    struct RowMajorFp32 {
        bool transpose_a = false, transpose_b = false, accumulate = false;
        int64_t m = 0, n = 0, k = 0;
        float alpha = 1.0f;
        const float* a = nullptr;
        int64_t lda = 0, stride_a = 0;
        const float* b = nullptr;
        int64_t ldb = 0, stride_b = 0;
        float* c = nullptr;
        int64_t ldc = 0, stride_c = 0;
        int64_t batch = 1;
    };
    Status product_fp32(const RowMajorFp32& product);

private:
    cublasHandle_t handle_ = nullptr;
};

}  // namespace mwb::cuda
