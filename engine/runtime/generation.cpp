#include "engine/runtime/generation.h"

#include <algorithm>
#include <cstdint>

namespace mwb {

std::string finish_reason_name(FinishReason reason) {
    switch (reason) {
        case FinishReason::Stop: return "stop";
        case FinishReason::Length: return "length";
        case FinishReason::ContextFull: return "context_full";
        case FinishReason::Cancelled: return "cancelled";
    }
    return "?";
}

std::optional<FinishReason> finish_after_token(int32_t token, std::span<const int32_t> stop_tokens, bool caller_stops, bool caller_cancels,
                                               int64_t generated, int64_t max_new_tokens, int64_t context_tokens, int64_t capacity) {
    if (caller_stops || std::find(stop_tokens.begin(), stop_tokens.end(), token) != stop_tokens.end()) return FinishReason::Stop;
    if (caller_cancels) return FinishReason::Cancelled;
    if (generated >= max_new_tokens) return FinishReason::Length;
    if (context_tokens - 1 >= capacity) return FinishReason::ContextFull;
    return std::nullopt;
}

Result<GenerationResult> generate_with(const Backend& backend, const GenerationRequest& request, const NextTokenStep& step,
                                       const TokenCallback& on_token, const std::atomic<bool>* cancel) {
    if (request.prompt.empty()) return make_error("the prompt is empty");
    if (int64_t(request.prompt.size()) > backend.cache_capacity())
        return make_error("the prompt has " + std::to_string(request.prompt.size()) + " tokens, more than the context of " +
                          std::to_string(backend.cache_capacity()));
    GenerationResult result;
    result.timings.prompt_tokens = int64_t(request.prompt.size());
    std::vector<int32_t> context = request.prompt;
    auto cancelled = [&] { return cancel && cancel->load(std::memory_order_relaxed); };

    Stopwatch clock;
    ForwardBatch batch;
    batch.tokens = request.prompt;
    batch.chunks = {{request.slot, 0, int64_t(request.prompt.size())}};
    batch.adapter = request.adapter;
    batch.embedding_overrides = request.prompt_embeddings;
    auto next = step(batch, context);
    if (!next) return next.error();
    result.timings.prefill_s = clock.seconds();
    batch.embedding_overrides = {};

    Stopwatch decode_clock;
    while (int64_t(result.tokens.size()) < request.max_new_tokens) {
        if (cancelled()) {
            result.finish = FinishReason::Cancelled;
            break;
        }
        const int32_t token = *next;
        result.tokens.push_back(token);
        context.push_back(token);
        if (result.tokens.size() == 1) {
            result.timings.time_to_first_token_s = clock.seconds();
            decode_clock.restart();
        }
        const bool keep_going = !on_token || on_token(token);
        if (auto finish = finish_after_token(token, request.stop_tokens, false, !keep_going, int64_t(result.tokens.size()),
                                             request.max_new_tokens, int64_t(context.size()), backend.cache_capacity())) {
            result.finish = *finish;
            break;
        }
        const int64_t position = int64_t(context.size()) - 1;
        batch.tokens = {token};
        batch.chunks = {{request.slot, position, 1}};
        next = step(batch, context);
        if (!next) return next.error();
    }
    result.timings.generated_tokens = int64_t(result.tokens.size());
    if (result.tokens.size() > 1) result.timings.decode_s = decode_clock.seconds();
    return result;
}

Result<GenerationResult> generate(Backend& backend, const GenerationRequest& request, const TokenCallback& on_token,
                                  ForwardObserver* observer, const std::atomic<bool>* cancel) {
    Sampler sampler(request.sampling);
    auto step = [&](const ForwardBatch& batch, std::span<const int32_t> context) -> Result<int32_t> {
        auto logits = backend.forward(batch, observer);
        if (!logits) return logits.error();
        return sampler.sample(*logits, context);
    };
    return generate_with(backend, request, step, on_token, cancel);
}

}  // namespace mwb
