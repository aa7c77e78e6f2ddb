// What training needs in memory, before it starts: the frozen weights as the CPU trainer holds them (float32
// copies), the adapter with its gradients and AdamW moments, the activations the backward pass keeps (all of
// every layer, or with gradient checkpointing only each layer's input plus one layer at a time), and the logits
// with their gradient. The CPU trainer runs one row at a time, so activations are per row, not per batch.
#pragma once

#include <cstdint>
#include <string>

#include "engine/train/lora_adapter.h"

namespace mwb::train {

struct TrainingMemoryPlan {
    int64_t frozen_weight_bytes = 0;
    int64_t adapter_parameters = 0;
    int64_t adapter_bytes = 0;                 // parameters, gradients and two AdamW moments, float32
    int64_t activation_bytes = 0;              // every layer's saved tensors
    int64_t checkpointed_activation_bytes = 0; // layer inputs, plus the largest layer's saved tensors
    int64_t logits_bytes = 0;                  // logits and their gradient
    int64_t total(bool checkpointing) const;
};

TrainingMemoryPlan plan_training_memory(const ModelGraph& graph, const LoraAdapter& adapter, int64_t tokens);
std::string describe(const TrainingMemoryPlan& plan);

}  // namespace mwb::train
