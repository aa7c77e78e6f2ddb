// DeepSeek V2 and V3 share their layer wiring: MLA attention, then a dense MLP for the first
// first_k_dense_replace layers and a mixture of experts with shared experts after that.
#pragma once

#include "engine/model/model_graph.h"

namespace mwb {

Result<ModelGraph> build_deepseek_layers(const ModelConfig& config, std::shared_ptr<const TensorStore> store);

}  // namespace mwb
