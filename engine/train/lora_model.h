// A model with a LoRA adapter on the CPU in float32: the loss of a token row, and the gradient of every adapter
// matrix by a hand-written backward pass through each op (embedding, RMSNorm, MLA with and without q_lora,
// RoPE, the MoE router's weights, experts and shared experts, GQA with q/k/v biases, the dense MLP, lm_head,
// cross-entropy). The frozen weights are kept as float32 copies: CPU training is meant for small models and as
// the reference of the GPU trainer.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/cpu/thread_pool.h"
#include "engine/train/lora_adapter.h"

namespace mwb::train {

// The gradient of each adapter matrix, in the order of the adapter's modules.
struct LoraGradients {
    std::vector<std::vector<float>> a, b;

    static LoraGradients zeros_like(const LoraAdapter& adapter);
    void zero();
    double squared_norm() const;
    void scale(float factor);
};

// transformers' label convention: position t predicts labels[t + 1]; -100 is ignored.
constexpr int64_t kIgnoredLabel = -100;
int64_t counted_labels(std::span<const int64_t> labels);

// What the trainer needs of a model with a LoRA adapter, on the CPU (LoraModel) or a GPU (CudaLoraModel of
// kernels/cuda_lora_model.h).
class TrainableModel {
public:
    virtual ~TrainableModel() = default;

    // The summed cross-entropy of a row's counted labels. With `gradients`, adds the gradient of
    // `gradient_scale` × that sum (1 / the batch's counted labels gives transformers' mean loss).
    // `logits`, when given, receives the row's logits [tokens, vocab]. `routing`, when given, records the experts
    // every token chose in every MoE layer if it is empty, and imposes them if not (the loss is then smooth in
    // the adapter: no choice flips, which finite-difference checks need).
    virtual Result<double> row_loss(const LoraAdapter& adapter, std::span<const int32_t> ids, std::span<const int64_t> labels,
                                    float gradient_scale, LoraGradients* gradients, std::vector<float>* logits = nullptr,
                                    std::vector<int32_t>* routing = nullptr) = 0;

    virtual const ModelGraph& graph() const = 0;
    // Gradient checkpointing: keep each layer's input only and recompute the layer in the backward pass (about
    // a third more compute for activations of one layer instead of all; the gradients are identical).
    virtual void set_gradient_checkpointing(bool enabled) = 0;
    // The adapter's dropout (its config's rate) draws its masks from this seed; 0 turns dropout off (evaluation).
    virtual void set_dropout_seed(uint64_t seed) = 0;
};

class LoraModel final : public TrainableModel {
public:
    static Result<LoraModel> create(std::shared_ptr<const ModelGraph> graph, int threads = 0);

    Result<double> row_loss(const LoraAdapter& adapter, std::span<const int32_t> ids, std::span<const int64_t> labels,
                            float gradient_scale, LoraGradients* gradients, std::vector<float>* logits = nullptr,
                            std::vector<int32_t>* routing = nullptr) override;
    const ModelGraph& graph() const override { return *graph_; }
    void set_gradient_checkpointing(bool enabled) override { checkpointing_ = enabled; }
    void set_dropout_seed(uint64_t seed) override { dropout_seed_ = seed; }

private:
    LoraModel(std::shared_ptr<const ModelGraph> graph, int threads);
    struct Tape;
    struct LayerTape;
    class Context;

    std::shared_ptr<const ModelGraph> graph_;
    std::unique_ptr<ThreadPool> pool_;
    std::unordered_map<const void*, std::vector<float>> frozen_;  // float32 copies by weight
    bool checkpointing_ = false;
    uint64_t dropout_seed_ = 0;
    const std::vector<float>& frozen(const LinearWeight& weight);
    const std::vector<float>& frozen(const VectorWeight& weight);
    const std::vector<float>& frozen(const TensorView& tensor);
};

}  // namespace mwb::train
