#include <cstdint>

#include "engine/model/model_graph.h"

namespace mwb {

std::vector<int64_t> ModelGraph::moe_layers() const {
    std::vector<int64_t> layers_with_experts;
    for (int64_t layer = 0; layer < int64_t(layers.size()); ++layer)
        if (std::holds_alternative<MoeWeights>(layers[size_t(layer)].feed_forward)) layers_with_experts.push_back(layer);
    return layers_with_experts;
}

Result<ModelGraph> build_model_graph(const ModelConfig& config, std::shared_ptr<const TensorStore> store) {
    switch (config.architecture) {
        case Architecture::DeepseekV3: return build_deepseek_v3(config, std::move(store));
        case Architecture::DeepseekV2: return build_deepseek_v2(config, std::move(store));
        case Architecture::Qwen2: return build_qwen2(config, std::move(store));
        case Architecture::Llama: return build_llama(config, std::move(store));
        case Architecture::DeepseekVL: return build_deepseek_vl(config, std::move(store));
    }
    return make_error("unknown architecture");
}

Result<ModelGraph> load_model_graph(const std::string& model_directory) {
    auto config = load_model_config(model_directory);
    if (!config) return config.error();
    auto store = TensorStore::open_directory(model_directory);
    if (!store) return store.error();
    return build_model_graph(*config, std::make_shared<const TensorStore>(std::move(store.value())));
}

Result<ModelGraph> load_base_model_graph(const std::string& model_directory) {
    auto config = load_model_config(model_directory);
    if (!config) return config.error();
    auto store = TensorStore::open_directory(model_directory);
    if (!store) return store.error();
    if (!store->contains("model.embed_tokens.weight") && store->contains("embed_tokens.weight")) store->prefix_names("model.");
    if (!store->contains("lm_head.weight")) config->tie_word_embeddings = true;
    return build_model_graph(*config, std::make_shared<const TensorStore>(std::move(store.value())));
}

}  // namespace mwb
