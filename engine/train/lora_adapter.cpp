#include "engine/train/lora_adapter.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "engine/core/text_file.h"
#include "engine/io/safetensors.h"

namespace mwb::train {

namespace {

bool matches(const std::string& module, const std::vector<std::string>& targets) {
    for (const std::string& target : targets) {
        if (module == target) return true;
        if (module.size() > target.size() && module.compare(module.size() - target.size(), target.size(), target) == 0 &&
            module[module.size() - target.size() - 1] == '.')
            return true;
    }
    return false;
}

void add_mlp(std::map<std::string, const LinearWeight*>& out, const std::string& prefix, const MlpWeights& mlp) {
    out[prefix + ".gate_proj"] = &mlp.gate_proj;
    out[prefix + ".up_proj"] = &mlp.up_proj;
    out[prefix + ".down_proj"] = &mlp.down_proj;
}

}  // namespace

double LoraConfig::scale() const { return rslora ? alpha / std::sqrt(double(rank)) : alpha / double(rank); }

std::string peft_key(const std::string& module, char matrix) {
    return "base_model.model." + module + ".lora_" + std::string(1, matrix) + ".weight";
}

std::map<std::string, const LinearWeight*> linear_modules(const ModelGraph& graph) {
    std::map<std::string, const LinearWeight*> out;
    for (size_t l = 0; l < graph.layers.size(); ++l) {
        const std::string layer = "model.layers." + std::to_string(l);
        const DecoderLayer& decoder = graph.layers[l];
        if (const auto* mla = std::get_if<MlaWeights>(&decoder.attention)) {
            const std::string p = layer + ".self_attn";
            if (mla->q_proj) out[p + ".q_proj"] = &*mla->q_proj;
            if (mla->q_a_proj) out[p + ".q_a_proj"] = &*mla->q_a_proj;
            if (mla->q_b_proj) out[p + ".q_b_proj"] = &*mla->q_b_proj;
            out[p + ".kv_a_proj_with_mqa"] = &mla->kv_a_proj;
            out[p + ".kv_b_proj"] = &mla->kv_b_proj;
            out[p + ".o_proj"] = &mla->o_proj;
        } else {
            const auto& gqa = std::get<GqaWeights>(decoder.attention);
            const std::string p = layer + ".self_attn";
            out[p + ".q_proj"] = &gqa.q_proj;
            out[p + ".k_proj"] = &gqa.k_proj;
            out[p + ".v_proj"] = &gqa.v_proj;
            out[p + ".o_proj"] = &gqa.o_proj;
        }
        if (const auto* mlp = std::get_if<MlpWeights>(&decoder.feed_forward)) {
            add_mlp(out, layer + ".mlp", *mlp);
        } else {
            const auto& moe = std::get<MoeWeights>(decoder.feed_forward);
            for (size_t e = 0; e < moe.experts.size(); ++e) add_mlp(out, layer + ".mlp.experts." + std::to_string(e), moe.experts[e]);
            if (moe.shared) add_mlp(out, layer + ".mlp.shared_experts", *moe.shared);
        }
    }
    return out;
}

Result<LoraAdapter> LoraAdapter::create(const ModelGraph& graph, LoraConfig config, uint64_t seed) {
    if (config.rank <= 0) return make_error("the LoRA rank must be positive, got " + std::to_string(config.rank));
    if (!(config.alpha > 0)) return make_error("lora_alpha must be positive");
    if (!(config.dropout >= 0 && config.dropout < 1)) return make_error("LoRA dropout must be in [0, 1)");
    if (config.target_modules.empty()) return make_error("no target modules: name the linear layers the adapter trains (e.g. q_a_proj,o_proj)");
    LoraAdapter adapter;
    adapter.config_ = std::move(config);
    std::mt19937_64 random(seed);
    for (const auto& [name, weight] : linear_modules(graph)) {
        if (!matches(name, adapter.config_.target_modules)) continue;
        LoraModule module{name, weight->in_features, weight->out_features, {}, {}};
        const float bound = 1.0f / std::sqrt(float(module.in_features));
        std::uniform_real_distribution<float> uniform(-bound, bound);
        module.a.resize(size_t(adapter.config_.rank * module.in_features));
        for (float& value : module.a) value = uniform(random);
        module.b.assign(size_t(module.out_features * adapter.config_.rank), 0.0f);
        adapter.modules_.push_back(std::move(module));
    }
    if (adapter.modules_.empty()) {
        std::string known;
        for (const auto& [name, weight] : linear_modules(graph)) {
            const std::string leaf = name.substr(name.rfind('.') + 1);
            if (known.find(leaf) == std::string::npos) known += (known.empty() ? "" : ", ") + leaf;
        }
        return make_error("no linear layer of this model matches the target modules; it has " + known);
    }
    adapter.reindex();
    return adapter;
}

Result<LoraConfig> read_lora_config(const std::string& directory) {
    const std::string config_path = directory + "/adapter_config.json";
    auto text = read_text_file(config_path);
    if (!text) return text.error();
    LoraConfig config;
    try {
        const nlohmann::json json = nlohmann::json::parse(*text);
        if (json.value("peft_type", std::string("LORA")) != "LORA")
            return make_error(config_path + ": peft_type is " + json.value("peft_type", std::string()) + ", only LORA adapters are supported");
        if (json.value("use_dora", false)) return make_error(config_path + ": DoRA adapters are not supported");
        config.rank = json.at("r").get<int64_t>();
        config.alpha = json.at("lora_alpha").get<double>();
        config.dropout = json.value("lora_dropout", 0.0);
        config.rslora = json.value("use_rslora", false);
        const nlohmann::json& targets = json.at("target_modules");
        if (targets.is_string()) config.target_modules = {targets.get<std::string>()};
        else config.target_modules = targets.get<std::vector<std::string>>();
        if (json.contains("rank_pattern") && !json["rank_pattern"].empty())
            return make_error(config_path + ": per-module ranks (rank_pattern) are not supported");
    } catch (const nlohmann::json::exception& error) {
        return make_error(config_path + " is not a PEFT LoRA config: " + error.what());
    }
    if (config.rank <= 0) return make_error(config_path + ": r must be positive");
    return config;
}

Result<LoraAdapter> LoraAdapter::load(const std::string& directory, const ModelGraph& graph) {
    auto config = read_lora_config(directory);
    if (!config) return config.error();
    LoraAdapter adapter;
    adapter.config_ = std::move(config.value());

    auto weights = TensorStore::open_file(directory + "/adapter_model.safetensors");
    if (!weights) return weights.error();
    const auto modules = linear_modules(graph);
    for (const auto& [key, tensor] : weights->tensors()) {
        // "base_model.model.<module>.lora_A[.default].weight"
        const std::string prefix = "base_model.model.";
        const size_t lora = key.find(".lora_");
        if (key.rfind(prefix, 0) != 0 || lora == std::string::npos || key.size() < lora + 7)
            return make_error("adapter_model.safetensors: " + key + " is not a LoRA weight with PEFT's key names");
        if (key[lora + 6] != 'A') continue;  // B is read with its A
        const std::string name = key.substr(prefix.size(), lora - prefix.size());
        auto found = modules.find(name);
        if (found == modules.end()) return make_error("the adapter has weights for " + name + ", which this model does not have");
        const std::string suffix = key.substr(lora + 7);  // ".weight" or ".default.weight"
        const std::string b_key = key.substr(0, lora) + ".lora_B" + suffix;
        LoraModule module{name, found->second->in_features, found->second->out_features, {}, {}};
        auto a = weights->read_float(key, {adapter.config_.rank, module.in_features});
        if (!a) return a.error();
        if (!weights->contains(b_key)) return make_error("adapter_model.safetensors has " + key + " but no " + b_key);
        auto b = weights->read_float(b_key, {module.out_features, adapter.config_.rank});
        if (!b) return b.error();
        module.a = std::move(a.value());
        module.b = std::move(b.value());
        adapter.modules_.push_back(std::move(module));
    }
    if (adapter.modules_.empty()) return make_error(directory + "/adapter_model.safetensors holds no LoRA weights");
    adapter.reindex();
    return adapter;
}

Status LoraAdapter::save(const std::string& directory, const std::string& base_model) const {
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    if (error) return make_error("cannot create " + directory + ": " + error.message());
    std::vector<TensorToWrite> tensors;
    for (const LoraModule& m : modules_) {
        tensors.push_back(tensor_f32(peft_key(m.name, 'A'), {config_.rank, m.in_features}, m.a));
        tensors.push_back(tensor_f32(peft_key(m.name, 'B'), {m.out_features, config_.rank}, m.b));
    }
    MWB_TRY(write_safetensors(directory + "/adapter_model.safetensors", tensors, {{"format", "pt"}}));
    // The fields PEFT writes for a LoRA adapter and vLLM reads.
    const nlohmann::json config = {
        {"peft_type", "LORA"},           {"task_type", "CAUSAL_LM"},          {"base_model_name_or_path", base_model},
        {"r", config_.rank},             {"lora_alpha", config_.alpha},       {"lora_dropout", config_.dropout},
        {"target_modules", config_.target_modules},  {"bias", "none"},                    {"use_rslora", config_.rslora},
        {"use_dora", false},             {"fan_in_fan_out", false},           {"init_lora_weights", true},
        {"inference_mode", true},        {"modules_to_save", nullptr},        {"rank_pattern", nlohmann::json::object()},
        {"alpha_pattern", nlohmann::json::object()}, {"layers_to_transform", nullptr}, {"layers_pattern", nullptr},
        {"revision", nullptr}};
    return write_text_file_atomically(directory + "/adapter_config.json", config.dump(2) + "\n");
}

const LoraModule* LoraAdapter::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &modules_[it->second];
}

int64_t LoraAdapter::parameter_count() const {
    int64_t count = 0;
    for (const LoraModule& m : modules_) count += int64_t(m.a.size() + m.b.size());
    return count;
}

LowRankDeltas LoraAdapter::deltas(const ModelGraph& graph) const {
    LowRankDeltas deltas;
    const auto modules = linear_modules(graph);
    for (const LoraModule& m : modules_) {
        auto weight = modules.find(m.name);
        if (weight == modules.end()) continue;
        deltas[weight->second] = LowRankDelta{config_.rank, float(config_.scale()), m.a, m.b};
    }
    return deltas;
}

void LoraAdapter::reindex() {
    index_.clear();
    for (size_t i = 0; i < modules_.size(); ++i) index_[modules_[i].name] = i;
}

}  // namespace mwb::train
