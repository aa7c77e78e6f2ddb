// Generation and the batched-decode benchmark on top of CudaBackend::forward_sampled: the engine's generation
// loop with the next token drawn on the GPU.
#include <algorithm>
#include <cstdint>
#include <random>

#include <cuda_runtime.h>

#include "kernels/cuda_backend.h"

namespace mwb {

Result<GenerationResult> generate_on_gpu(CudaBackend& backend, const GenerationRequest& request, const TokenCallback& on_token,
                                         ForwardObserver* observer, const std::atomic<bool>* cancel) {
    // The repetition penalty needs the whole context next to the logits: sample on the host then.
    if (request.sampling.repetition_penalty != 1.0) return generate(backend, request, on_token, observer, cancel);
    const std::vector<SamplingParams> sampling = {request.sampling};
    auto step = [&](const ForwardBatch& batch, std::span<const int32_t>) -> Result<int32_t> {
        auto next = backend.forward_sampled(batch, sampling, observer);
        if (!next) return next.error();
        return next->front();
    };
    return generate_with(backend, request, step, on_token, cancel);
}

namespace {

struct DecodeRun {
    double prefill_s = 0, decode_s = 0;
    size_t peak_bytes = 0;
};

// Prefill of every prompt in one batch, then `steps` greedy decode steps of all sequences together.
Result<DecodeRun> run_batch(CudaBackend& backend, const std::vector<std::vector<int32_t>>& prompts, int64_t steps) {
    const std::vector<SamplingParams> greedy(prompts.size(), SamplingParams{0.0, 0, 1.0, 0.0, 1.0, 0});
    ForwardBatch prefill;
    for (size_t s = 0; s < prompts.size(); ++s) {
        prefill.chunks.push_back({int64_t(s), 0, int64_t(prompts[s].size())});
        prefill.tokens.insert(prefill.tokens.end(), prompts[s].begin(), prompts[s].end());
    }
    DecodeRun run;
    Stopwatch clock;
    auto next = backend.forward_sampled(prefill, greedy, nullptr);
    if (!next) return next.error();
    run.prefill_s = clock.seconds();

    clock.restart();
    for (int64_t step = 0; step < steps; ++step) {
        ForwardBatch decode;
        decode.tokens = *next;
        for (size_t s = 0; s < prompts.size(); ++s) decode.chunks.push_back({int64_t(s), int64_t(prompts[s].size()) + step, 1});
        next = backend.forward_sampled(decode, greedy, nullptr);
        if (!next) return next.error();
        if (step == 0) {
            size_t free_bytes = 0, total_bytes = 0;
            if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) run.peak_bytes = total_bytes - free_bytes;
        }
    }
    run.decode_s = clock.seconds();
    return run;
}

}  // namespace

Result<BatchedDecodeReport> benchmark_batched_decode(CudaBackend& backend, int64_t batch, int64_t prompt_tokens,
                                                     int64_t generated_tokens, uint64_t seed) {
    if (batch < 1 || prompt_tokens < 1 || generated_tokens < 2) return make_error("the benchmark needs batch ≥ 1, prompt ≥ 1, gen ≥ 2");
    MWB_TRY(backend.reserve_cache(batch, prompt_tokens + generated_tokens));
    std::mt19937_64 random(seed);
    const uint64_t vocab = uint64_t(backend.model().config.vocab_size);
    std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
    for (auto& prompt : prompts)
        for (int64_t i = 0; i < prompt_tokens; ++i) prompt.push_back(int32_t(random() % vocab));

    auto warm_up = run_batch(backend, prompts, std::min<int64_t>(3, generated_tokens - 1));
    if (!warm_up) return warm_up.error();
    auto measured = run_batch(backend, prompts, generated_tokens - 1);
    if (!measured) return measured.error();

    BatchedDecodeReport report;
    report.batch = batch;
    report.prompt_tokens = prompt_tokens;
    report.generated_tokens = generated_tokens;
    report.prefill_s = measured->prefill_s;
    report.decode_s = measured->decode_s;
    report.prefill_tokens_per_s = double(batch * prompt_tokens) / measured->prefill_s;
    report.decode_tokens_per_s = double(batch * (generated_tokens - 1)) / measured->decode_s;
    report.peak_device_bytes = measured->peak_bytes;
    return report;
}

}  // namespace mwb
