#include "kernels/blas.h"

#include <cstdint>
#include <string>

namespace mwb::cuda {

namespace {

Status check(cublasStatus_t status, const char* what) {
    if (status == CUBLAS_STATUS_SUCCESS) return {};
    return make_error(std::string("cuBLAS ") + what + " failed: " + cublasGetStatusString(status));
}

}  // namespace

Blas::~Blas() {
    if (handle_) cublasDestroy(handle_);
}

Status Blas::initialise(cudaStream_t stream) {
    MWB_TRY(check(cublasCreate(&handle_), "handle creation"));
    return check(cublasSetStream(handle_, stream), "stream binding");
}

Status Blas::set_workspace(void* workspace, size_t workspace_bytes) {
    return check(cublasSetWorkspace(handle_, workspace, workspace_bytes), "workspace binding");
}

Status Blas::linear(const bf16* x, int64_t x_stride, int64_t rows, const bf16* w, int64_t out, int64_t in, void* y, bool y_fp32,
                    int64_t y_stride, float alpha, bool accumulate) {
    if (rows <= 0) return {};
    // Row-major y = x·Wᵀ is column-major yᵀ = W·xᵀ with W read transposed from its [out][in] storage.
    const float beta = accumulate ? 1.0f : 0.0f;
    return check(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, int(out), int(rows), int(in), &alpha, w, CUDA_R_16BF, int(in), x,
                              CUDA_R_16BF, int(x_stride), &beta, y, y_fp32 ? CUDA_R_32F : CUDA_R_16BF, int(y_stride),
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "linear GEMM");
}

Status Blas::batched(const Batched& p) {
    if (p.m <= 0 || p.n <= 0 || p.batch <= 0) return {};
    const float beta = p.accumulate ? 1.0f : 0.0f;
    return check(cublasGemmStridedBatchedEx(handle_, p.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            p.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, int(p.m), int(p.n), int(p.k), &p.alpha, p.a,
                                            CUDA_R_16BF, int(p.lda), p.stride_a, p.b, CUDA_R_16BF, int(p.ldb), p.stride_b, &beta,
                                            p.c, p.c_fp32 ? CUDA_R_32F : CUDA_R_16BF, int(p.ldc), p.stride_c, int(p.batch),
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "batched GEMM");
}

Status Blas::product_fp32(const RowMajorFp32& p) {
    if (p.m <= 0 || p.n <= 0 || p.batch <= 0) return {};
    // Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, and a row-major matrix read column-major is its
    // transpose: so B goes first, each with its own flag.
    const float beta = p.accumulate ? 1.0f : 0.0f;
    return check(cublasGemmStridedBatchedEx(handle_, p.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, p.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                            int(p.n), int(p.m), int(p.k), &p.alpha, p.b, CUDA_R_32F, int(p.ldb), p.stride_b, p.a,
                                            CUDA_R_32F, int(p.lda), p.stride_a, &beta, p.c, CUDA_R_32F, int(p.ldc), p.stride_c,
                                            int(p.batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "fp32 GEMM");
}

}  // namespace mwb::cuda
