// DeepSeek-V2 / V2-Lite / Coder-V2: MLA (q_proj when q_lora_rank is null), softmax scores with greedy or
// group-limited greedy routing, shared experts, the first layers dense.
#include "engine/model/deepseek_common.h"

namespace mwb {

Result<ModelGraph> build_deepseek_v2(const ModelConfig& config, std::shared_ptr<const TensorStore> store) {
    if (!config.mla) return make_error("deepseek_v2 needs the MLA keys (kv_lora_rank, qk_rope_head_dim, ...) in config.json");
    if (config.moe && config.moe->topk_method == TopkMethod::NoAuxTc)
        return make_error("config.json: deepseek_v2 does not use topk_method noaux_tc");
    return build_deepseek_layers(config, std::move(store));
}

}  // namespace mwb
