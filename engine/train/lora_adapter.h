// A LoRA adapter as PEFT defines it: for each target linear layer y = x·Wᵀ, two trainable matrices A [r, in] and
// B [out, r] with y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, s = alpha / r (alpha / √r with rsLoRA). Read and written as a PEFT
// adapter directory (adapter_config.json + adapter_model.safetensors with PEFT's key names), so that adapters
// trained here load in PEFT, vLLM and SGLang, and theirs load here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/blocks/low_rank.h"
#include "engine/model/model_graph.h"

namespace mwb::train {

struct LoraConfig {
    std::vector<std::string> target_modules;  // PEFT's matching: a module's name or the end of it after a '.'
    int64_t rank = 8;
    double alpha = 16;
    double dropout = 0;
    bool rslora = false;

    double scale() const;
};

struct LoraModule {
    std::string name;  // the linear layer, e.g. "model.layers.0.self_attn.q_a_proj"
    int64_t in_features = 0, out_features = 0;
    std::vector<float> a;  // [rank, in_features]
    std::vector<float> b;  // [out_features, rank]
};

// Every linear layer of a model by its module name (transformers' naming), with its weight.
std::map<std::string, const LinearWeight*> linear_modules(const ModelGraph& graph);

// adapter_config.json of a PEFT LoRA adapter folder.
Result<LoraConfig> read_lora_config(const std::string& directory);

class LoraAdapter {
public:
    // PEFT's default initialisation: A Kaiming-uniform (bound 1/√in), B zero, from `seed`.
    static Result<LoraAdapter> create(const ModelGraph& graph, LoraConfig config, uint64_t seed);
    // A PEFT adapter directory; its modules must exist in `graph` with matching shapes.
    static Result<LoraAdapter> load(const std::string& directory, const ModelGraph& graph);
    // Writes adapter_config.json and adapter_model.safetensors (atomically each).
    Status save(const std::string& directory, const std::string& base_model) const;

    const LoraConfig& config() const { return config_; }
    std::vector<LoraModule>& modules() { return modules_; }
    const std::vector<LoraModule>& modules() const { return modules_; }
    // The module of a linear layer, or null when the adapter does not target it.
    const LoraModule* find(const std::string& name) const;
    int64_t parameter_count() const;
    // The adapter as the backends apply it unmerged, keyed by the weights of `graph`.
    LowRankDeltas deltas(const ModelGraph& graph) const;

private:
    LoraConfig config_;
    std::vector<LoraModule> modules_;
    std::map<std::string, size_t> index_;
    void reindex();
};

// PEFT's key of a module's matrix in adapter_model.safetensors: "base_model.model.<name>.lora_A.weight".
std::string peft_key(const std::string& module, char matrix);

}  // namespace mwb::train
