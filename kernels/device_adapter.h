// A LoRA adapter on the device, applied unmerged over the uploaded base weights: y += scale·(x·Aᵀ)·Bᵀ for each
// adapted projection, into its rows of the stacked matrix the base weight went into (q_a over kv_a, q over k over
// v, gate over up, one expert of a layer's experts). kv_b_proj is the exception: the absorbed MLA decode multiplies
// by kv_b itself, so an adapter on it gets its own copy of kv_b with the update folded in (W + scale·B·A, in bf16).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/blocks/low_rank.h"
#include "engine/model/model_graph.h"
#include "kernels/blas.h"
#include "kernels/device_weights.h"

namespace mwb::cuda {

struct LowRankTerm {
    const bf16* a = nullptr;  // [rank, in]
    const bf16* b = nullptr;  // [out, rank]
    int64_t rank = 0, in = 0, out = 0;
    int64_t row_offset = 0;  // the first of its output rows in the stacked matrix
    float scale = 1.0f;
};

class DeviceAdapter {
public:
    // Uploads `deltas` of `graph` against the device copy `model` of the same graph. `max_rows` sizes the scratch
    // of x·Aᵀ (the rows of the largest micro-batch). Fails, naming the layer, for a delta on a weight the CUDA
    // backend cannot adapt (the router, the embedding, lm_head) or of the wrong shape.
    static Result<std::unique_ptr<DeviceAdapter>> upload(const ModelGraph& graph, const DeviceModel& model, const LowRankDeltas& deltas,
                                                         int64_t max_rows, Blas& blas, cudaStream_t stream);

    // The terms on a device matrix of the model (for routed experts, of one expert), or null when none.
    const std::vector<LowRankTerm>* terms(const DeviceMatrix& matrix, int64_t expert = -1) const;
    // Whether any term acts on the matrix (for experts: on any expert), which rules out the fused kernels.
    bool adapts(const DeviceMatrix& matrix) const { return adapted_.count(&matrix) != 0; }
    bool adapts(const DeviceMlp& mlp) const { return adapts(mlp.gate_up.matrix) || adapts(mlp.down.matrix); }
    // kv_b of an attention layer as this adapter changes it (the base one when it does not).
    const bf16* kv_b(const DeviceMla& attention) const;

    // y[rows][row_offset + i] += scale · (x·Aᵀ)·Bᵀ for each term on `matrix`.
    Status apply(Blas& blas, const DeviceMatrix& matrix, int64_t expert, const bf16* x, int64_t x_stride, int64_t rows, bf16* y,
                 int64_t y_stride) const;

    size_t bytes() const { return memory_.bytes(); }

private:
    DeviceAdapter() = default;

    DeviceMemory memory_;
    std::map<std::pair<const DeviceMatrix*, int64_t>, std::vector<LowRankTerm>> terms_;
    std::set<const DeviceMatrix*> adapted_;
    std::map<const DeviceMla*, const bf16*> kv_b_;
    bf16* scratch_ = nullptr;  // [max_rows, max rank]
    int64_t max_rows_ = 0;
};

}  // namespace mwb::cuda
