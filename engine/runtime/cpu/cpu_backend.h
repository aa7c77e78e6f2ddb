// The CPU backend: float32 compute over memory-mapped weights, threaded; the reference for every GPU kernel.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine/runtime/backend.h"
#include "engine/runtime/cpu/thread_pool.h"

namespace mwb::cpu {

// Where each row of a batch belongs.
struct RowLayout {
    std::vector<int64_t> slot, position;
    std::vector<int64_t> chunk_first_row;  // per chunk
};

class CpuBackend final : public Backend {
public:
    CpuBackend(std::shared_ptr<const ModelGraph> graph, int threads);

    std::string name() const override { return "cpu"; }
    Status reserve_cache(int64_t slots, int64_t max_tokens) override;
    int64_t cache_slots() const override { return slots_; }
    int64_t cache_capacity() const override { return capacity_; }
    Result<std::vector<float>> forward(const ForwardBatch& batch, ForwardObserver* observer) override;
    MemoryReport memory() const override;

private:
    const std::vector<float>& small(const TensorView& tensor) const;  // pre-decoded norms, biases
    // linear() plus the part of the request's adapter for this weight, when it has one.
    void project(const LinearWeight& weight, const float* bias, const float* x, int64_t rows, float* y);
    float* cache_row(int64_t layer, int64_t slot, int64_t position);

    void mla_attention(int64_t layer, const MlaWeights& w, const float* h, const ForwardBatch& batch, const RowLayout& rows,
                       float* out, ForwardObserver* observer);
    void gqa_attention(int64_t layer, const GqaWeights& w, const float* h, const ForwardBatch& batch, const RowLayout& rows,
                       float* out, ForwardObserver* observer);
    void mlp(const MlpWeights& w, const float* h, int64_t rows, float* out);
    void moe(int64_t layer, const MoeWeights& w, const float* h, const RowLayout& rows, float* out, ForwardObserver* observer);

    std::shared_ptr<const ModelGraph> graph_;
    const ModelConfig& config_;
    ThreadPool pool_;
    std::unordered_map<const void*, std::vector<float>> small_weights_;
    int64_t cache_width_ = 0;  // floats per token per layer
    int64_t slots_ = 0, capacity_ = 0;
    std::vector<std::vector<float>> cache_;  // per layer: [slot][position][cache_width_]
    const LowRankDeltas* adapter_ = nullptr;  // the batch being run's adapter (forward() is not reentrant)
};

}  // namespace mwb::cpu
