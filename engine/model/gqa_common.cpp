#include "engine/model/gqa_common.h"

#include <cstdint>

namespace mwb {

Result<ModelGraph> build_gqa_decoder(const ModelConfig& config, std::shared_ptr<const TensorStore> store) {
    RopeTable rope = make_rope_table(config.rope, config.head_dim, RopeLayout::NeoX, config.max_position_embeddings);
    return build_decoder_stack(config, store, std::move(rope),
                               [&](const WeightLoader& loader, int64_t, const std::string& prefix, DecoderLayer& decoder) -> Status {
        auto attention = load_gqa(loader, config, prefix + ".self_attn");
        if (!attention) return attention.error();
        auto mlp = load_mlp(loader, prefix + ".mlp", config.hidden_size, config.intermediate_size);
        if (!mlp) return mlp.error();
        decoder.attention = *attention;
        decoder.feed_forward = *mlp;
        return {};
    });
}

}  // namespace mwb
