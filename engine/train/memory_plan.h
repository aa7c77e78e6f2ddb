// What training needs in memory, before it starts: the frozen weights as the trainer holds them (float32 copies on
// the CPU; bf16 on the GPU, with the embedding table, fp32 routers and the cuBLAS workspace), the adapter with its
// gradients (and, on the CPU, its AdamW moments, which the GPU trainer keeps in host memory), the activations the
// backward pass keeps (all of every layer, or with gradient checkpointing only each layer's input plus one layer
// at a time; on the GPU also one layer's backward temporaries), and the logits with their gradient. The trainers
// run one row at a time, so activations are per row, not per batch.
#pragma once

#include <cstdint>
#include <string>

#include "engine/train/lora_adapter.h"

namespace mwb::train {

enum class TrainingDevice { Cpu, Cuda };

struct TrainingMemoryPlan {
    TrainingDevice device = TrainingDevice::Cpu;
    int64_t frozen_weight_bytes = 0;
    int64_t adapter_parameters = 0;
    int64_t adapter_bytes = 0;                 // float32: parameters and gradients, and on the CPU two AdamW moments
    int64_t activation_bytes = 0;              // every layer's saved tensors
    int64_t checkpointed_activation_bytes = 0; // layer inputs, plus the largest layer's saved tensors
    int64_t logits_bytes = 0;                  // logits and their gradient (on the GPU also its bf16 copy)
    int64_t workspace_bytes = 0;               // the GPU's cuBLAS workspace
    int64_t total(bool checkpointing) const;
};

TrainingMemoryPlan plan_training_memory(const ModelGraph& graph, const LoraAdapter& adapter, int64_t tokens,
                                        TrainingDevice device = TrainingDevice::Cpu);
std::string describe(const TrainingMemoryPlan& plan);

}  // namespace mwb::train
