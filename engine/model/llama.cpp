// Llama (and the R1-Distill-Llama models): GQA without bias, NeoX rope with llama3 scaling, SwiGLU MLP.
#include "engine/model/gqa_common.h"

namespace mwb {

Result<ModelGraph> build_llama(const ModelConfig& config, std::shared_ptr<const TensorStore> store) {
    if (config.mla || config.moe) return make_error("config.json: llama models have no MLA or MoE keys");
    return build_gqa_decoder(config, std::move(store));
}

}  // namespace mwb
