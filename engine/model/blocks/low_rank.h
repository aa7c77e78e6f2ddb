// A low-rank update of linear layers applied unmerged, y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ: how a LoRA adapter acts at
// inference, per request, over an unchanged base model. Keyed by the base layer's weight.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine/model/blocks/linear.h"

namespace mwb {

struct LowRankDelta {
    int64_t rank = 0;
    float scale = 1.0f;
    std::vector<float> a;  // [rank, in_features]
    std::vector<float> b;  // [out_features, rank]
};

using LowRankDeltas = std::unordered_map<const LinearWeight*, LowRankDelta>;

}  // namespace mwb
