// Wall-clock measurements of one generation, in the terms users compare tools by.
#pragma once

#include <chrono>
#include <cstdint>

namespace mwb {

struct GenerationTimings {
    int64_t prompt_tokens = 0;
    int64_t generated_tokens = 0;
    double time_to_first_token_s = 0;  // prompt submitted → first generated token sampled
    double prefill_s = 0;
    double decode_s = 0;               // after the first token

    double prefill_tokens_per_s() const { return prefill_s > 0 ? double(prompt_tokens) / prefill_s : 0; }
    double decode_tokens_per_s() const {
        return decode_s > 0 && generated_tokens > 1 ? double(generated_tokens - 1) / decode_s : 0;
    }
};

class Stopwatch {
public:
    Stopwatch() : start_(std::chrono::steady_clock::now()) {}
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
    void restart() { start_ = std::chrono::steady_clock::now(); }

private:
    std::chrono::steady_clock::time_point start_;
};

}  // namespace mwb
