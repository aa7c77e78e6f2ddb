// LoRA training on one NVIDIA GPU: the forward and hand-written backward pass of engine/train/lora_model.cpp (the
// CPU reference) op for op, with the frozen weights in bf16 on the device and the activations, gradients and
// adapter in fp32. A product with a frozen weight takes its input rounded to bf16 (as autocast does) and sums
// in fp32; the adapter's products, attention, norms, the router and the loss stay fp32. The router's choice runs
// on the host from the device's logits through route_token, so CPU and GPU choose by the same code.
// Plain C++: no CUDA header is needed to use it (link mwb_cuda).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "engine/train/lora_model.h"

namespace mwb {

class CudaLoraModel final : public train::TrainableModel {
public:
    // Uploads the frozen weights to `device`; fails with the bytes needed and free when they do not fit.
    static Result<std::unique_ptr<CudaLoraModel>> create(std::shared_ptr<const ModelGraph> graph, int device = 0);
    ~CudaLoraModel() override;
    CudaLoraModel(const CudaLoraModel&) = delete;
    CudaLoraModel& operator=(const CudaLoraModel&) = delete;

    Result<double> row_loss(const train::LoraAdapter& adapter, std::span<const int32_t> ids, std::span<const int64_t> labels,
                            float gradient_scale, train::LoraGradients* gradients, std::vector<float>* logits = nullptr,
                            std::vector<int32_t>* routing = nullptr) override;
    const ModelGraph& graph() const override;
    void set_gradient_checkpointing(bool enabled) override;
    void set_dropout_seed(uint64_t seed) override;

    // Bytes held on the device: the frozen weights, and the activations of the longest row so far.
    size_t weight_bytes() const;
    size_t activation_bytes() const;

private:
    struct Impl;
    explicit CudaLoraModel(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace mwb
