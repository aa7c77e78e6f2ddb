#include "engine/train/memory_plan.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>

namespace mwb::train {

namespace {

std::string gib(int64_t bytes) {
    char text[32];
    if (bytes >= (int64_t(1) << 30)) std::snprintf(text, sizeof(text), "%.2f GiB", double(bytes) / double(int64_t(1) << 30));
    else std::snprintf(text, sizeof(text), "%.1f MiB", double(bytes) / double(1 << 20));
    return text;
}

// Floats the backward pass keeps for one decoder layer over `t` tokens (LoraModel's LayerTape).
int64_t layer_floats(const ModelConfig& c, const DecoderLayer& layer, int64_t t) {
    const int64_t hidden = c.hidden_size, heads = c.num_heads;
    int64_t floats = 4 * t * hidden + 2 * t;  // residual input and middle, both normed inputs; norm factors
    floats += heads * t * t;                  // attention probabilities
    if (const auto* mla = std::get_if<MlaWeights>(&layer.attention)) {
        const MlaConfig& m = *c.mla;
        const int64_t qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
        floats += t * heads * qk;  // q
        if (mla->q_a_proj) floats += 2 * t * mla->q_a_proj->out_features + t;  // q_a output, normed, factors
        floats += t * (m.kv_lora_rank + m.qk_rope_head_dim) + t * m.kv_lora_rank + t + t * m.qk_rope_head_dim;
        floats += t * heads * (m.qk_nope_head_dim + m.v_head_dim);  // expanded keys and values
        floats += t * heads * m.v_head_dim;                         // attended
    } else {
        floats += t * heads * c.head_dim * 2 + 2 * t * c.num_kv_heads * c.head_dim;  // q, attended, k, v
    }
    if (const auto* mlp = std::get_if<MlpWeights>(&layer.feed_forward)) {
        floats += 3 * t * mlp->gate_proj.out_features;
    } else {
        const auto& moe = std::get<MoeWeights>(layer.feed_forward);
        const int64_t k = moe.config.experts_per_token;
        floats += t * moe.config.n_routed_experts + 2 * t * k;                        // scores, choices, weights
        floats += t * k * (2 * hidden + 3 * moe.config.moe_intermediate_size);        // each chosen expert's input and output
        if (moe.shared) floats += 3 * t * moe.shared->gate_proj.out_features;
    }
    return floats;
}

}  // namespace

int64_t TrainingMemoryPlan::total(bool checkpointing) const {
    return frozen_weight_bytes + adapter_bytes + (checkpointing ? checkpointed_activation_bytes : activation_bytes) + logits_bytes +
           workspace_bytes;
}

TrainingMemoryPlan plan_training_memory(const ModelGraph& graph, const LoraAdapter& adapter, int64_t tokens, TrainingDevice device) {
    const ModelConfig& c = graph.config;
    const bool gpu = device == TrainingDevice::Cuda;
    TrainingMemoryPlan plan;
    plan.device = device;
    const int64_t weight_bytes = gpu ? 2 : 4;
    auto matrix = [](const LinearWeight& w) { return w.out_features * w.in_features; };
    for (const auto& [name, weight] : linear_modules(graph)) plan.frozen_weight_bytes += weight_bytes * matrix(*weight);
    const bool tied = graph.lm_head.weight.data == graph.embed_tokens.weight.data;
    plan.frozen_weight_bytes += weight_bytes * matrix(graph.lm_head);
    if (gpu) {
        if (!tied) plan.frozen_weight_bytes += 2 * matrix(graph.embed_tokens);  // the GPU gathers rows from its own table
        for (const DecoderLayer& layer : graph.layers)
            if (const auto* moe = std::get_if<MoeWeights>(&layer.feed_forward)) plan.frozen_weight_bytes += 4 * matrix(moe->router);
        plan.workspace_bytes = int64_t(32) << 20;  // kernels/cuda_planning.h's kCublasWorkspaceBytes
    }
    plan.adapter_parameters = adapter.parameter_count();
    plan.adapter_bytes = (gpu ? 8 : 16) * plan.adapter_parameters;
    int64_t all = 0, largest = 0;
    for (const DecoderLayer& layer : graph.layers) {
        const int64_t floats = layer_floats(c, layer, tokens);
        all += floats;
        largest = std::max(largest, floats);
    }
    const int64_t final_norm = 2 * tokens * c.hidden_size + tokens;
    // On the GPU one layer's backward temporaries come on top, bounded by that layer's saved tensors.
    const int64_t backward = gpu ? largest : 0;
    plan.activation_bytes = 4 * (all + final_norm + backward);
    plan.checkpointed_activation_bytes = 4 * (int64_t(graph.layers.size()) * tokens * c.hidden_size + largest + final_norm + backward);
    plan.logits_bytes = (gpu ? 10 : 8) * tokens * c.vocab_size;
    return plan;
}

std::string describe(const TrainingMemoryPlan& plan) {
    std::string text;
    const bool gpu = plan.device == TrainingDevice::Cuda;
    text += std::string(gpu ? "frozen weights (bf16 on the GPU):  " : "frozen weights (float32 copies):  ") + gib(plan.frozen_weight_bytes) + "\n";
    text += "adapter (" + std::to_string(plan.adapter_parameters) +
            (gpu ? " parameters with gradients; AdamW moments in host memory): " : " parameters with gradients and AdamW moments): ") +
            gib(plan.adapter_bytes) + "\n";
    text += "activations per row:              " + gib(plan.activation_bytes) + " (" + gib(plan.checkpointed_activation_bytes) +
            " with gradient checkpointing)\n";
    text += "logits and their gradient:        " + gib(plan.logits_bytes) + "\n";
    if (gpu) text += "cuBLAS workspace:                 " + gib(plan.workspace_bytes) + "\n";
    text += "total:                            " + gib(plan.total(false)) + " (" + gib(plan.total(true)) + " with checkpointing)\n";
    return text;
}

}  // namespace mwb::train
