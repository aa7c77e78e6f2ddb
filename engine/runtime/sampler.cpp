#include "engine/runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

namespace mwb {

Sampler::Sampler(const SamplingParams& params) : params_(params), random_(params.seed) {}

double Sampler::uniform() { return double(random_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> context) {
    const int64_t vocab = int64_t(logits.size());
    scores_.assign(logits.begin(), logits.end());
    if (params_.repetition_penalty != 1.0) {
        const float penalty = float(params_.repetition_penalty);
        std::vector<bool> seen(size_t(vocab), false);
        for (int32_t token : context) {
            if (token < 0 || token >= vocab || seen[size_t(token)]) continue;
            seen[size_t(token)] = true;
            float& s = scores_[size_t(token)];
            s = s < 0 ? s * penalty : s / penalty;
        }
    }
    if (params_.temperature <= 0.0)
        return int32_t(std::max_element(scores_.begin(), scores_.end()) - scores_.begin());

    for (auto& s : scores_) s = float(double(s) / params_.temperature);
    order_.resize(size_t(vocab));
    std::iota(order_.begin(), order_.end(), 0);
    std::stable_sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) { return scores_[size_t(a)] > scores_[size_t(b)]; });
    int64_t kept = vocab;
    if (params_.top_k > 0) kept = std::min(kept, params_.top_k);

    std::vector<double> probabilities(static_cast<size_t>(kept));
    auto normalise = [&] {
        const double peak = scores_[size_t(order_[0])];
        double total = 0;
        for (int64_t i = 0; i < kept; ++i) total += probabilities[size_t(i)] = std::exp(double(scores_[size_t(order_[size_t(i)])]) - peak);
        for (int64_t i = 0; i < kept; ++i) probabilities[size_t(i)] /= total;
    };
    normalise();
    if (params_.top_p < 1.0) {
        double cumulative = 0;
        int64_t needed = 0;
        while (needed < kept) {
            cumulative += probabilities[size_t(needed++)];
            if (cumulative >= params_.top_p) break;
        }
        kept = std::max<int64_t>(1, needed);
        normalise();
    }
    if (params_.min_p > 0.0) {
        const double threshold = params_.min_p * probabilities[0];
        int64_t above = 0;
        while (above < kept && probabilities[size_t(above)] >= threshold) ++above;
        kept = std::max<int64_t>(1, above);
        normalise();
    }
    double draw = uniform(), cumulative = 0;
    for (int64_t i = 0; i < kept; ++i) {
        cumulative += probabilities[size_t(i)];
        if (draw < cumulative) return order_[size_t(i)];
    }
    return order_[size_t(kept - 1)];
}

}  // namespace mwb
