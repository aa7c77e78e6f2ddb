// The model a LoRA run trains on: the CPU trainer (train::LoraModel) or, in a CUDA build, the GPU one
// (CudaLoraModel). Header-only and Qt-free, so that `mwb train` and the app's training worker choose alike.
#pragma once

#include <memory>

#include "engine/core/result.h"
#include "engine/model/model_graph.h"
#include "engine/train/lora_model.h"
#ifdef MWB_HAVE_CUDA
#include "kernels/cuda_lora_model.h"
#endif

namespace mwb::app {

inline Result<std::unique_ptr<train::TrainableModel>> make_trainable_model(std::shared_ptr<const ModelGraph> graph, bool cuda, int threads) {
    if (cuda) {
#ifdef MWB_HAVE_CUDA
        auto model = CudaLoraModel::create(std::move(graph));
        if (!model) return model.error();
        return std::unique_ptr<train::TrainableModel>(std::move(model.value()));
#else
        return make_error("this build has no CUDA backend (nvcc was not found when it was configured); train on the CPU");
#endif
    }
    auto model = train::LoraModel::create(std::move(graph), threads);
    if (!model) return model.error();
    return std::unique_ptr<train::TrainableModel>(std::make_unique<train::LoraModel>(std::move(model.value())));
}

}  // namespace mwb::app
