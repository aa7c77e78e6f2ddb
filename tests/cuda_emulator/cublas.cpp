// cuBLAS's column-major GEMMs on the CPU for the emulator (tests only): C = alpha · op(A) · op(B) + beta · C with
// fp32 accumulation, queued on the handle's stream like any device work (so they are captured into graphs too).
// Arguments are checked as cuBLAS checks them, and every operand's extent against its device allocation.
#include <cstdint>
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "tests/cuda_emulator/emulator.h"

struct cublasContext {
    cudaStream_t stream = nullptr;
};

namespace {

size_t element_bytes(cudaDataType type) { return type == CUDA_R_32F ? 4 : 2; }

float load(const void* base, cudaDataType type, size_t index) {
    if (type == CUDA_R_32F) return static_cast<const float*>(base)[index];
    return mwb::bf16_to_float(static_cast<const unsigned short*>(base)[index]);
}

void store(void* base, cudaDataType type, size_t index, float value) {
    if (type == CUDA_R_32F) static_cast<float*>(base)[index] = value;
    else static_cast<unsigned short*>(base)[index] = mwb::float_to_bf16(value);
}

// One operand of a strided batch: `rows` × `columns` as stored (before op), leading dimension `ld`.
struct Operand {
    const void* data;
    cudaDataType type;
    int64_t rows, columns, ld, stride;

    // Bytes from `data` to the end of the last element of the last matrix.
    size_t extent(int64_t batch) const {
        if (rows == 0 || columns == 0 || batch == 0) return 0;
        return size_t((batch - 1) * stride + (columns - 1) * ld + rows) * element_bytes(type);
    }
};

float dot(const float* a, const float* b, int64_t k) {
    float lanes[8] = {};
    int64_t l = 0;
    for (; l + 8 <= k; l += 8)
        for (int j = 0; j < 8; ++j) lanes[j] += a[l + j] * b[l + j];
    float sum = 0.0f;
    for (; l < k; ++l) sum += a[l] * b[l];
    for (float lane : lanes) sum += lane;
    return sum;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasContext();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t bytes) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0) return CUBLAS_STATUS_INVALID_VALUE;  // cuBLAS requires 256-byte alignment
    if (workspace && bytes) {
        if (auto problem = mwb_emulator::check_device_range(workspace, bytes, "the cuBLAS workspace"); !problem.empty()) {
            mwb_emulator::report(problem);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType Atype, int lda, long long strideA,
                                          const void* B, cudaDataType Btype, int ldb, long long strideB, const void* beta, void* C,
                                          cudaDataType Ctype, int ldc, long long strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool a_transposed = transa != CUBLAS_OP_N, b_transposed = transb != CUBLAS_OP_N;
    if (m < 0 || n < 0 || k < 0 || batchCount < 0 || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < std::max(1, a_transposed ? k : m) || ldb < std::max(1, b_transposed ? n : k) || ldc < std::max(1, m)) {
        mwb_emulator::report("cuBLAS GEMM: a leading dimension below the stored rows (lda " + std::to_string(lda) + ", ldb " +
                             std::to_string(ldb) + ", ldc " + std::to_string(ldc) + " for m " + std::to_string(m) + ", n " +
                             std::to_string(n) + ", k " + std::to_string(k) + ")");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    auto emulated = [](cudaDataType type) { return type == CUDA_R_16BF || type == CUDA_R_32F; };
    if (Atype != Btype || !emulated(Atype) || !emulated(Ctype) || computeType != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;

    const float alpha_value = *static_cast<const float*>(alpha), beta_value = *static_cast<const float*>(beta);
    const Operand a{A, Atype, a_transposed ? k : m, a_transposed ? m : k, lda, strideA};
    const Operand b{B, Btype, b_transposed ? n : k, b_transposed ? k : n, ldb, strideB};
    const Operand c{C, Ctype, m, n, ldc, strideC};
    const int64_t batches = batchCount;
    auto work = [=]() -> mwb_emulator::Fault {
        for (auto [operand, name] : {std::pair{&a, "A"}, std::pair{&b, "B"}, std::pair{&c, "C"}})
            if (auto problem = mwb_emulator::check_device_range(operand->data, operand->extent(batches), std::string("operand ") + name);
                !problem.empty())
                return {cudaErrorIllegalAddress, problem};
        // op(A) as rows of length k, op(B) as columns of length k, both in fp32.
        std::vector<float> a_rows(size_t(m) * size_t(k)), b_columns(size_t(n) * size_t(k));
        for (int64_t batch = 0; batch < batches; ++batch) {
            for (int64_t i = 0; i < m; ++i)
                for (int64_t l = 0; l < k; ++l)
                    a_rows[size_t(i * k + l)] = load(A, Atype, size_t(batch * strideA + (a_transposed ? i * lda + l : l * lda + i)));
            for (int64_t j = 0; j < n; ++j)
                for (int64_t l = 0; l < k; ++l)
                    b_columns[size_t(j * k + l)] = load(B, Btype, size_t(batch * strideB + (b_transposed ? l * ldb + j : j * ldb + l)));
            for (int64_t j = 0; j < n; ++j)
                for (int64_t i = 0; i < m; ++i) {
                    const size_t index = size_t(batch * strideC + j * ldc + i);
                    float value = alpha_value * dot(a_rows.data() + i * k, b_columns.data() + j * k, k);
                    if (beta_value != 0.0f) value += beta_value * load(C, Ctype, index);  // beta 0: C is not read
                    store(C, Ctype, index, value);
                }
        }
        return mwb_emulator::Fault{};
    };
    const std::string what = "cuBLAS GEMM " + std::to_string(m) + "×" + std::to_string(n) + "×" + std::to_string(k) + " ×" +
                             std::to_string(batchCount);
    return mwb_emulator::enqueue(handle->stream, what, work) == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype, int ldb,
                            const void* beta, void* C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo) {
    return cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype, ldc,
                                      0, 1, computeType, algo);
}
