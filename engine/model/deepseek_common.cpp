#include "engine/model/deepseek_common.h"

#include <cstdint>

namespace mwb {

Result<ModelGraph> build_deepseek_layers(const ModelConfig& config, std::shared_ptr<const TensorStore> store) {
    RopeTable rope = make_rope_table(config.rope, config.mla->qk_rope_head_dim, RopeLayout::Interleaved,
                                     config.max_position_embeddings);
    return build_decoder_stack(config, store, std::move(rope),
                               [&](const WeightLoader& loader, int64_t layer, const std::string& prefix, DecoderLayer& decoder) -> Status {
        auto attention = load_mla(loader, config, prefix + ".self_attn");
        if (!attention) return attention.error();
        decoder.attention = *attention;
        if (config.is_moe_layer(layer)) {
            auto moe = load_moe(loader, config, prefix + ".mlp");
            if (!moe) return moe.error();
            decoder.feed_forward = *moe;
        } else {
            auto mlp = load_mlp(loader, prefix + ".mlp", config.hidden_size, config.intermediate_size);
            if (!mlp) return mlp.error();
            decoder.feed_forward = *mlp;
        }
        return {};
    });
}

}  // namespace mwb
