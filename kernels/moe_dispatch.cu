// MoE dispatch on the device, without a host round trip: the token-expert assignments grouped by expert (counts,
// offsets, active experts, placement) in one block, the gather of token rows into expert order, and the weighted
// combine back into token order (plus the shared experts' output).
#include <cstdint>

#include "kernels/device_math.cuh"
#include "kernels/kernels.h"

namespace mwb::cuda {

namespace {

constexpr int kDispatchThreads = 1024;

__global__ void __launch_bounds__(kDispatchThreads) dispatch_kernel(const int32_t* experts, int64_t assignments, int64_t top_k,
                                                                    int n_experts, int32_t* offsets, int32_t* active,
                                                                    int32_t* row_of_assignment, int32_t* token_of_row) {
    int* counts = dynamic_shared_memory<int>();  // [n_experts] counts, then [n_experts] next free row
    int* cursor = counts + n_experts;
    for (int e = threadIdx.x; e < n_experts; e += blockDim.x) counts[e] = 0;
    __syncthreads();
    for (int64_t a = threadIdx.x; a < assignments; a += blockDim.x) atomicAdd(&counts[experts[a]], 1);
    __syncthreads();
    for (int e = threadIdx.x; e < n_experts; e += blockDim.x) {
        int before = 0, active_before = 0;
        for (int j = 0; j < e; ++j) {
            before += counts[j];
            active_before += counts[j] > 0;
        }
        offsets[e] = before;
        cursor[e] = before;
        if (counts[e] > 0) active[active_before] = e;
        if (e == n_experts - 1) {
            offsets[n_experts] = before + counts[e];
            active[n_experts] = active_before + (counts[e] > 0);
        }
    }
    __syncthreads();
    for (int64_t a = threadIdx.x; a < assignments; a += blockDim.x) {
        const int row = atomicAdd(&cursor[experts[a]], 1);
        row_of_assignment[a] = row;
        token_of_row[row] = int32_t(a / top_k);
    }
}

__global__ void combine_kernel(const bf16* expert_out, const int32_t* row_of_assignment, const float* weights, int64_t top_k,
                               int64_t hidden, const bf16* shared, bf16* delta) {
    const int64_t token = blockIdx.x;
    for (int64_t i = int64_t(threadIdx.x) * 8; i < hidden; i += int64_t(blockDim.x) * 8) {
        float sum[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (shared) load_bf16x8(shared + token * hidden + i, sum);
        for (int64_t j = 0; j < top_k; ++j) {
            const float weight = weights[token * top_k + j];
            float values[8];
            load_bf16x8(expert_out + int64_t(row_of_assignment[token * top_k + j]) * hidden + i, values);
#pragma unroll
            for (int v = 0; v < 8; ++v) sum[v] += weight * values[v];
        }
        store_bf16x8(delta + token * hidden + i, sum);
    }
}

}  // namespace

void dispatch_by_expert(const int32_t* experts, int64_t rows, int64_t top_k, int64_t n_experts, int32_t* offsets,
                        int32_t* active, int32_t* row_of_assignment, int32_t* token_of_row, cudaStream_t stream) {
    if (rows <= 0) return;
    const size_t shared = size_t(2 * n_experts) * sizeof(int);
    MWB_LAUNCH(dispatch_kernel, 1, kDispatchThreads, shared, stream)(experts, rows * top_k, top_k, int(n_experts), offsets, active,
                                                             row_of_assignment, token_of_row);
}

void gather_dispatched(const bf16* h, int64_t hidden, const int32_t* token_of_row, int64_t dispatched_rows, bf16* out,
                       cudaStream_t stream) {
    gather_rows(h, hidden, token_of_row, dispatched_rows, out, stream);
}

void combine_experts(const bf16* expert_out, const int32_t* row_of_assignment, const float* weights, int64_t rows,
                     int64_t top_k, int64_t hidden, const bf16* shared, bf16* delta, cudaStream_t stream) {
    if (rows > 0)
        MWB_LAUNCH(combine_kernel, unsigned(rows), 128, 0, stream)(expert_out, row_of_assignment, weights, top_k, hidden, shared, delta);
}

}  // namespace mwb::cuda
