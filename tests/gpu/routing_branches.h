// Shared by the GPU suites that compare a bf16 CUDA run with a float32 reference: where the run routed a token to
// other experts than the reference, and whether that happened at a near-tie of the reference's routing (see
// test_cuda_fixtures.cpp for how the tolerances were found).
#pragma once

#include <QString>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "engine/model/model_graph.h"
#include "engine/observe/forward_capture.h"
#include "engine/io/dtype.h"
#include "engine/model/blocks/feed_forward.h"
#include "tests/support/fixture.h"

namespace mwb::testing {

constexpr float kRouterTie = 2e-2f;  // a selection-score margin a bf16 run may cross
constexpr float kLogitTie = 5e-2f;   // a logit lead within the bf16 error

// Smallest gap between a kept and a dropped choice of the reference routing: the k-th vs (k+1)-th selection
// score, and for group-limited routing the kept vs dropped group score.
inline float routing_margin(const MoeConfig& m, const float* logits, const float* bias) {
    const int64_t n = m.n_routed_experts, k = m.experts_per_token;
    std::vector<int32_t> experts(static_cast<size_t>(k));
    std::vector<float> weights(static_cast<size_t>(k)), selection(static_cast<size_t>(n));
    route_token(m, logits, bias, experts.data(), weights.data(), nullptr, selection.data());
    std::vector<float> sorted = selection;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    float margin = sorted[size_t(k - 1)] - sorted[size_t(k)];
    if (m.topk_method != TopkMethod::Greedy && m.n_group > 1) {
        std::vector<float> scores(static_cast<size_t>(n)), groups;
        for (int64_t e = 0; e < n; ++e)
            scores[size_t(e)] = (m.scoring == ScoringFunction::Sigmoid ? 1.0f / (1.0f + std::exp(-logits[e])) : logits[e]) +
                                (bias ? bias[e] : 0.0f);
        if (m.scoring == ScoringFunction::Softmax) {  // softmax is monotone per token, but group sums need the real scores
            const float peak = *std::max_element(scores.begin(), scores.end());
            float total = 0;
            for (auto& s : scores) total += s = std::exp(s - peak);
            for (auto& s : scores) s /= total;
        }
        const int64_t size = n / m.n_group;
        for (int64_t g = 0; g < m.n_group; ++g) {
            std::vector<float> members(scores.begin() + g * size, scores.begin() + (g + 1) * size);
            std::sort(members.begin(), members.end(), std::greater<>());
            groups.push_back(m.topk_method == TopkMethod::NoAuxTc ? members[0] + (size > 1 ? members[1] : 0.0f) : members[0]);
        }
        std::sort(groups.begin(), groups.end(), std::greater<>());
        margin = std::min(margin, groups[size_t(m.topk_group - 1)] - groups[size_t(m.topk_group)]);
    }
    return margin;
}

using Routings = std::map<int64_t, ForwardCapture::Routing>;

// Positions where `run` routed a token differently from `reference` in some layer (the model took another branch
// there). A difference at (layer l, position t) must sit at a near-tie of the reference (margin ≤ tie) unless it is
// downstream of an earlier branch, at a lower layer and a position ≤ t, whose outputs it reads; `failure` says
// otherwise.
struct Branches {
    std::set<int64_t> positions;
    int64_t first = std::numeric_limits<int64_t>::max();
    QString report, failure;
};

inline Branches routing_branches(const Fixture& f, const Routings& reference, const Routings& run, float tie) {
    Branches b;
    for (const auto& [layer, want] : reference) {  // ascending layers
        const int64_t upstream_first = b.first;  // earliest branch of the layers below
        const auto& moe = std::get<MoeWeights>(f.graph->layers[size_t(layer)].feed_forward);
        std::vector<float> bias;
        if (moe.score_bias) {
            bias.resize(size_t(moe.config.n_routed_experts));
            convert_to_float(moe.score_bias->weight.dtype, moe.score_bias->weight.data, bias.data(), bias.size());
        }
        if (!run.count(layer) || run.at(layer).indices.size() != want.indices.size()) {
            b.failure = QString("layer %1: the run's routing does not cover the reference's positions").arg(layer);
            return b;
        }
        const auto& got = run.at(layer);
        const int64_t k = want.top_k, n = want.experts, positions = int64_t(want.indices.size()) / k;
        for (int64_t t = 0; t < positions; ++t) {
            if (std::equal(want.indices.begin() + t * k, want.indices.begin() + (t + 1) * k, got.indices.begin() + t * k)) continue;
            b.positions.insert(t);
            b.first = std::min(b.first, t);
            if (t >= upstream_first) continue;  // downstream of a branch below
            const float margin = routing_margin(moe.config, want.logits.data() + t * n, bias.empty() ? nullptr : bias.data());
            if (margin > tie && b.failure.isEmpty())
                b.failure = QString("layer %1 position %2 routed differently with a margin of %3").arg(layer).arg(t).arg(margin);
            b.report += QString(" layer %1 position %2 (margin %3)").arg(layer).arg(t).arg(margin);
        }
    }
    return b;
}

inline Routings routing_of(const ForwardCapture& capture) { return {capture.routing().begin(), capture.routing().end()}; }

}  // namespace mwb::testing
