// Qwen2 and Llama share the classic decoder: GQA attention with NeoX rope, a SwiGLU MLP in every layer.
#pragma once

#include "engine/model/model_graph.h"

namespace mwb {

Result<ModelGraph> build_gqa_decoder(const ModelConfig& config, std::shared_ptr<const TensorStore> store);

}  // namespace mwb
