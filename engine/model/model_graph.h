// A loaded model: its config and every weight, wired into decoder layers of shared blocks.
// Backends execute a ModelGraph; the architecture files only decide how tensors map onto blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "engine/model/blocks/attention.h"
#include "engine/model/blocks/feed_forward.h"
#include "engine/model/blocks/linear.h"
#include "engine/model/blocks/rope.h"
#include "engine/model/config.h"

namespace mwb {

struct DecoderLayer {
    VectorWeight input_norm;
    std::variant<MlaWeights, GqaWeights> attention;
    VectorWeight post_attention_norm;
    std::variant<MlpWeights, MoeWeights> feed_forward;
};

struct ModelGraph {
    ModelConfig config;
    LinearWeight embed_tokens;  // [vocab, hidden]
    std::vector<DecoderLayer> layers;
    VectorWeight final_norm;
    LinearWeight lm_head;  // [vocab, hidden]; the embedding table when tied
    RopeTable rope;
    std::shared_ptr<const TensorStore> store;  // keeps the mapped weights alive

    std::vector<int64_t> moe_layers() const;
};

// One function per architecture file.
Result<ModelGraph> build_deepseek_v3(const ModelConfig& config, std::shared_ptr<const TensorStore> store);
Result<ModelGraph> build_deepseek_v2(const ModelConfig& config, std::shared_ptr<const TensorStore> store);
Result<ModelGraph> build_qwen2(const ModelConfig& config, std::shared_ptr<const TensorStore> store);
Result<ModelGraph> build_llama(const ModelConfig& config, std::shared_ptr<const TensorStore> store);
// The language model of deepseek_vl; the graph's store also holds the vision tower (engine/vision).
Result<ModelGraph> build_deepseek_vl(const ModelConfig& config, std::shared_ptr<const TensorStore> store);

// The architecture registry: builds the graph that config.model_type names.
Result<ModelGraph> build_model_graph(const ModelConfig& config, std::shared_ptr<const TensorStore> store);
// config.json + safetensors of a Hugging Face model directory.
Result<ModelGraph> load_model_graph(const std::string& model_directory);
// The same for a checkpoint that may hold only the decoder stack, saved from a base model (Qwen2Model,
// LlamaModel) as embedding models are: tensor names without "model." and no lm_head. Such a graph is for
// hidden states: the embedding table stands in for the missing head, whose logits are then meaningless.
Result<ModelGraph> load_base_model_graph(const std::string& model_directory);

// Shared by the architecture files: embedding, final norm and lm_head around per-layer blocks.
template <class BuildLayer>
Result<ModelGraph> build_decoder_stack(const ModelConfig& config, std::shared_ptr<const TensorStore> store,
                                       RopeTable rope, BuildLayer build_layer) {
    ModelGraph graph;
    graph.config = config;
    graph.rope = std::move(rope);
    graph.store = store;
    WeightLoader loader(*store, config);
    auto embed = loader.table("model.embed_tokens.weight", config.vocab_size, config.hidden_size);
    if (!embed) return embed.error();
    graph.embed_tokens = *embed;
    for (int64_t layer = 0; layer < config.num_layers; ++layer) {
        const std::string prefix = "model.layers." + std::to_string(layer);
        DecoderLayer decoder;
        auto input_norm = loader.vector(prefix + ".input_layernorm.weight", config.hidden_size);
        if (!input_norm) return input_norm.error();
        auto post_norm = loader.vector(prefix + ".post_attention_layernorm.weight", config.hidden_size);
        if (!post_norm) return post_norm.error();
        decoder.input_norm = *input_norm;
        decoder.post_attention_norm = *post_norm;
        MWB_TRY(build_layer(loader, layer, prefix, decoder));
        graph.layers.push_back(std::move(decoder));
    }
    auto norm = loader.vector("model.norm.weight", config.hidden_size);
    if (!norm) return norm.error();
    graph.final_norm = *norm;
    if (config.tie_word_embeddings && !store->contains("lm_head.weight")) {
        graph.lm_head = graph.embed_tokens;
    } else {
        auto head = loader.table("lm_head.weight", config.vocab_size, config.hidden_size);
        if (!head) return head.error();
        graph.lm_head = *head;
    }
    return graph;
}

}  // namespace mwb
