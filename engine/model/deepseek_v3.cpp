// DeepSeek-V3 / V3.1 / R1: MLA with q_lora, sigmoid scores with e_score_correction_bias and group-limited
// (noaux_tc) routing, shared experts, the first layers dense.
#include "engine/model/deepseek_common.h"

namespace mwb {

Result<ModelGraph> build_deepseek_v3(const ModelConfig& config, std::shared_ptr<const TensorStore> store) {
    if (!config.mla) return make_error("deepseek_v3 needs the MLA keys (kv_lora_rank, qk_rope_head_dim, ...) in config.json");
    return build_deepseek_layers(config, std::move(store));
}

}  // namespace mwb
