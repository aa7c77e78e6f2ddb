// Feed-forward blocks: the dense SwiGLU MLP and the mixture of experts with its router and shared experts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/model/blocks/linear.h"

namespace mwb {

struct MlpWeights {
    LinearWeight gate_proj, up_proj, down_proj;  // down(silu(gate(x)) · up(x))
};

struct MoeWeights {
    MoeConfig config;
    LinearWeight router;                   // [experts, hidden]
    std::optional<VectorWeight> score_bias;  // e_score_correction_bias (noaux_tc)
    std::vector<MlpWeights> experts;
    std::optional<MlpWeights> shared;      // n_shared_experts fused into one MLP
};

Result<MlpWeights> load_mlp(const WeightLoader& loader, const std::string& prefix, int64_t hidden, int64_t intermediate);
Result<MoeWeights> load_moe(const WeightLoader& loader, const ModelConfig& config, const std::string& prefix);

// Chooses a token's experts from its router logits, exactly as the reference implementations do
// (softmax or sigmoid scores, optional bias for the choice only, group-limited selection, normalisation and
// routed_scaling_factor). Writes top_k experts sorted by expert id and their weights. `score_bias` may be null.
// `scores` and `selection_scores`, when not null, receive the activated scores and the scores the choice was
// made on (biased, other groups masked), n_routed_experts values each.
void route_token(const MoeConfig& config, const float* logits, const float* score_bias, int32_t* experts,
                 float* weights, float* scores = nullptr, float* selection_scores = nullptr);
// The weights route_token gives `experts` (top_k of them) from a token's scores (after the sigmoid or softmax):
// normalised over the chosen when the config says so, times routed_scaling_factor. Training uses it to weigh
// experts chosen before (imposed or replayed).
void weigh_experts(const MoeConfig& config, const float* scores, const int32_t* experts, float* weights);

}  // namespace mwb
