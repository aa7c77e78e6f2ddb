// Turns logits into the next token: repetition penalty, temperature, top-k, top-p, min-p, in the order
// transformers applies them; deterministic for a given seed.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace mwb {

struct SamplingParams {
    double temperature = 1.0;  // 0: greedy
    int64_t top_k = 0;         // 0: off
    double top_p = 1.0;        // 1: off
    double min_p = 0.0;        // 0: off
    double repetition_penalty = 1.0;
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplingParams& params);
    // `context` is every token so far (prompt and generated), for the repetition penalty.
    int32_t sample(std::span<const float> logits, std::span<const int32_t> context);

private:
    double uniform();
    SamplingParams params_;
    std::mt19937_64 random_;
    std::vector<float> scores_;
    std::vector<int32_t> order_;
};

}  // namespace mwb
