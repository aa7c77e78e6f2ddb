// Qwen2 (and the R1-Distill-Qwen models): GQA with q/k/v bias, NeoX rope, SwiGLU MLP.
#include "engine/model/gqa_common.h"

namespace mwb {

Result<ModelGraph> build_qwen2(const ModelConfig& config, std::shared_ptr<const TensorStore> store) {
    return build_gqa_decoder(config, std::move(store));
}

}  // namespace mwb
