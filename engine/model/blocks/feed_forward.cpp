#include "engine/model/blocks/feed_forward.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>

namespace mwb {

Result<MlpWeights> load_mlp(const WeightLoader& loader, const std::string& prefix, int64_t hidden, int64_t intermediate) {
    auto gate = loader.linear(prefix + ".gate_proj", intermediate, hidden);
    if (!gate) return gate.error();
    auto up = loader.linear(prefix + ".up_proj", intermediate, hidden);
    if (!up) return up.error();
    auto down = loader.linear(prefix + ".down_proj", hidden, intermediate);
    if (!down) return down.error();
    return MlpWeights{*gate, *up, *down};
}

Result<MoeWeights> load_moe(const WeightLoader& loader, const ModelConfig& config, const std::string& prefix) {
    const MoeConfig& moe = *config.moe;
    MoeWeights w;
    w.config = moe;
    auto router = loader.linear(prefix + ".gate", moe.n_routed_experts, config.hidden_size);
    if (!router) return router.error();
    w.router = *router;
    if (moe.topk_method == TopkMethod::NoAuxTc) {
        auto bias = loader.vector(prefix + ".gate.e_score_correction_bias", moe.n_routed_experts);
        if (!bias) return bias.error();
        w.score_bias = *bias;
    }
    for (int64_t e = 0; e < moe.n_routed_experts; ++e) {
        auto expert = load_mlp(loader, prefix + ".experts." + std::to_string(e), config.hidden_size, moe.moe_intermediate_size);
        if (!expert) return expert.error();
        w.experts.push_back(*expert);
    }
    if (moe.n_shared_experts > 0) {
        auto shared = load_mlp(loader, prefix + ".shared_experts", config.hidden_size,
                               moe.moe_intermediate_size * moe.n_shared_experts);
        if (!shared) return shared.error();
        w.shared = *shared;
    }
    return w;
}

namespace {

// Indices of the k largest values, largest first; ties keep the lower index (torch.topk on CPU agrees).
std::vector<int32_t> top_indices(const std::vector<float>& values, int64_t k) {
    std::vector<int32_t> order(values.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
        return values[size_t(a)] > values[size_t(b)] || (values[size_t(a)] == values[size_t(b)] && a < b);
    });
    order.resize(size_t(k));
    return order;
}

}  // namespace

void weigh_experts(const MoeConfig& config, const float* scores, const int32_t* experts, float* weights) {
    const int64_t k = config.experts_per_token;
    float total = 0;
    for (int64_t i = 0; i < k; ++i) total += scores[experts[i]];
    for (int64_t i = 0; i < k; ++i) {
        float weight = scores[experts[i]];
        if (config.norm_topk_prob && k > 1) weight /= (total + 1e-20f);
        weights[i] = weight * float(config.routed_scaling_factor);
    }
}

void route_token(const MoeConfig& config, const float* logits, const float* score_bias, int32_t* experts,
                 float* weights, float* scores_out, float* selection_scores) {
    const int64_t n = config.n_routed_experts, k = config.experts_per_token;
    std::vector<float> scores(static_cast<size_t>(n));
    if (config.scoring == ScoringFunction::Sigmoid) {
        for (int64_t e = 0; e < n; ++e) scores[size_t(e)] = 1.0f / (1.0f + std::exp(-logits[e]));
    } else {
        const float peak = *std::max_element(logits, logits + n);
        float total = 0;
        for (int64_t e = 0; e < n; ++e) total += scores[size_t(e)] = std::exp(logits[e] - peak);
        for (auto& s : scores) s /= total;
    }
    if (scores_out) std::copy(scores.begin(), scores.end(), scores_out);
    std::vector<float> choice = scores;
    if (score_bias)
        for (int64_t e = 0; e < n; ++e) choice[size_t(e)] += score_bias[e];

    if (config.topk_method != TopkMethod::Greedy && config.n_group > 1) {
        const int64_t group_size = n / config.n_group;
        std::vector<float> group_scores(size_t(config.n_group));
        for (int64_t g = 0; g < config.n_group; ++g) {
            const float* begin = choice.data() + g * group_size;
            if (config.topk_method == TopkMethod::NoAuxTc) {
                // V3 ranks groups by the sum of their two best biased scores.
                std::vector<float> group(begin, begin + group_size);
                std::partial_sort(group.begin(), group.begin() + std::min<int64_t>(2, group_size), group.end(), std::greater<>());
                group_scores[size_t(g)] = group[0] + (group_size > 1 ? group[1] : 0.0f);
            } else {
                group_scores[size_t(g)] = *std::max_element(begin, begin + group_size);
            }
        }
        std::vector<bool> keep(size_t(config.n_group), false);
        for (int32_t g : top_indices(group_scores, config.topk_group)) keep[size_t(g)] = true;
        // The reference masks the other groups with 0.0, not -inf.
        for (int64_t e = 0; e < n; ++e)
            if (!keep[size_t(e / group_size)]) choice[size_t(e)] = 0.0f;
    }
    if (selection_scores) std::copy(choice.begin(), choice.end(), selection_scores);

    std::vector<int32_t> chosen = top_indices(choice, k);
    std::sort(chosen.begin(), chosen.end());
    std::copy(chosen.begin(), chosen.end(), experts);
    weigh_experts(config, scores.data(), experts, weights);
}

}  // namespace mwb
