// Models without a checkpoint: the benchmark's reference shape and small demo models, with random weights
// generated from a seed under the Hugging Face tensor names.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/io/safetensors.h"
#include "engine/model/config.h"
#include "engine/model/model_graph.h"

namespace mwb {

// The reference shape of DESIGN.md: DeepSeek-V3 architecture at V2-Lite scale (hidden 2048, 16 heads,
// q_lora 1536, kv_lora 512, 64 routed experts top-6, 2 shared, moe_intermediate 1408, intermediate 10944,
// first dense 1, n_group 8 / topk_group 4, vocab 129280), with `layers` decoder layers.
ModelConfig reference_shape_v3_16b(int64_t layers);
Result<ModelConfig> named_shape(const std::string& name, int64_t layers);

// Every tensor the config implies, bf16, values ~ U(-a, a) with a scaled to keep activations O(1);
// norms are 1, router biases small. Deterministic for a seed.
std::vector<TensorToWrite> random_weights(const ModelConfig& config, uint64_t seed);

// The model graph over random_weights(), held in memory.
Result<std::shared_ptr<const ModelGraph>> random_model(const ModelConfig& config, uint64_t seed);

}  // namespace mwb
