// Prompt in, tokens out: prefill through the KV cache, then one decoded token at a time, with streaming,
// cancellation, stop tokens and timings.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/observe/timings.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/sampler.h"

namespace mwb {

struct GenerationRequest {
    std::vector<int32_t> prompt;
    SamplingParams sampling;
    int64_t max_new_tokens = 128;
    std::vector<int32_t> stop_tokens;  // usually the EOS ids
    int64_t slot = 0;                  // KV-cache slot to use
    const LowRankDeltas* adapter = nullptr;  // a LoRA adapter applied unmerged, or none
    // Prompt rows that take given embeddings (an image's features; rows index the prompt). The prefill uses
    // them; the decoded tokens after it are plain text.
    EmbeddingOverrides prompt_embeddings;
};

enum class FinishReason { Stop, Length, ContextFull, Cancelled };
std::string finish_reason_name(FinishReason reason);

struct GenerationResult {
    std::vector<int32_t> tokens;  // generated, the stop token included when one ended it
    FinishReason finish = FinishReason::Length;
    GenerationTimings timings;
};

// Why a generation ends after it sampled `token` (nullopt: it goes on), in one order for the plain loop and the
// scheduler: a stop token or the caller's stop string, then the caller's cancel, then the length, then the
// context (`context_tokens` counts prompt and generated tokens; the next position must fit `capacity`).
std::optional<FinishReason> finish_after_token(int32_t token, std::span<const int32_t> stop_tokens, bool caller_stops, bool caller_cancels,
                                               int64_t generated, int64_t max_new_tokens, int64_t context_tokens, int64_t capacity);

// Called for each generated token; return false to stop after it.
using TokenCallback = std::function<bool(int32_t token)>;

// One forward pass over `batch` and the choice of the next token; `context` is every token so far.
using NextTokenStep = std::function<Result<int32_t>(const ForwardBatch& batch, std::span<const int32_t> context)>;

// The generation loop — prompt, then one token at a time through the KV cache, stop tokens, length, context,
// cancellation, timings — over any way of stepping.
Result<GenerationResult> generate_with(const Backend& backend, const GenerationRequest& request, const NextTokenStep& step,
                                       const TokenCallback& on_token = {}, const std::atomic<bool>* cancel = nullptr);

// Steps with the backend's logits and a host-side Sampler.
Result<GenerationResult> generate(Backend& backend, const GenerationRequest& request, const TokenCallback& on_token = {},
                                  ForwardObserver* observer = nullptr, const std::atomic<bool>* cancel = nullptr);

}  // namespace mwb
