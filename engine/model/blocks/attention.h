// Attention blocks: multi-head latent attention (DeepSeek V2/V3) and grouped-query attention (Qwen2, Llama).
#pragma once

#include <optional>
#include <string>

#include "engine/model/blocks/linear.h"

namespace mwb {

struct MlaWeights {
    std::optional<LinearWeight> q_proj;    // when q_lora_rank is null
    std::optional<LinearWeight> q_a_proj;  // [q_lora, hidden]
    std::optional<VectorWeight> q_a_norm;  // [q_lora]
    std::optional<LinearWeight> q_b_proj;  // [heads·(nope+rope), q_lora]
    LinearWeight kv_a_proj;                // [kv_lora + rope, hidden]: the latent and the shared rope key
    VectorWeight kv_a_norm;                // [kv_lora]
    LinearWeight kv_b_proj;                // [heads·(nope+v), kv_lora]: per head W_UK rows then W_UV rows
    LinearWeight o_proj;                   // [hidden, heads·v]
};

struct GqaWeights {
    LinearWeight q_proj, k_proj, v_proj, o_proj;
};

Result<MlaWeights> load_mla(const WeightLoader& loader, const ModelConfig& config, const std::string& prefix);
Result<GqaWeights> load_gqa(const WeightLoader& loader, const ModelConfig& config, const std::string& prefix);

}  // namespace mwb
