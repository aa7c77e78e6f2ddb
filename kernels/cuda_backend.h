// The CUDA backend: the same ModelGraph the CPU backend runs, on one NVIDIA GPU, with bf16 activations and fp32
// accumulation. Plain C++: no CUDA header is needed to use it (link mwb_cuda; MWB_HAVE_CUDA is then defined).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/runtime/backend.h"
#include "engine/runtime/generation.h"
#include "engine/runtime/sampler.h"
#include "kernels/cuda_planning.h"

namespace mwb {

struct CudaOptions {
    int device = 0;
    // Upper bound on the activation workspace; 0 sizes it from max_batch_tokens. When the bound is smaller,
    // fewer rows run per micro-batch (prompts run in more pieces).
    size_t max_workspace_bytes = 0;
    int64_t max_batch_tokens = 1024;  // rows per micro-batch; longer prompts run in pieces through the KV cache
    // W8A16 / W4A16: bf16/fp16/fp32 weights quantised to int8 / int4 on load (a scale per row per 128 columns);
    // FP8 weights stay FP8.
    cuda::WeightQuantisation quantisation = cuda::WeightQuantisation::None;
    bool cuda_graphs = true;          // capture decode steps as CUDA graphs
    size_t cached_adapters = 8;       // LoRA adapters kept on the device, the least recently used dropped first
};

class CudaBackend : public Backend {
public:
    // Runs the batch and samples each chunk's next token on the GPU: the host receives only the token ids (and,
    // when an observer is given, the routing trace copied after the step). `sampling` has one entry per chunk;
    // repetition_penalty is not applied here (generate_on_gpu falls back to host sampling for it).
    virtual Result<std::vector<int32_t>> forward_sampled(const ForwardBatch& batch, std::span<const SamplingParams> sampling,
                                                         ForwardObserver* observer) = 0;
    virtual const ModelGraph& model() const = 0;
    virtual std::string device_name() const = 0;
    // Bytes this backend holds on the device (weights, cache, workspace) and the device's total.
    virtual size_t device_bytes_reserved() const = 0;
    virtual size_t device_bytes_total() const = 0;
    // Under weight-only quantisation, the matrix that lost the most (0 and no name without quantisation).
    virtual const cuda::QuantisationError& worst_quantisation_error() const = 0;
};

// Uploads the weights (converted to bf16, FP8 kept with its block scales, int8 / int4 when quantised). Fails with the
// bytes needed and free when the GPU cannot hold them; nothing stays allocated after a failure.
Result<std::unique_ptr<CudaBackend>> make_cuda_backend(std::shared_ptr<const ModelGraph> graph, const CudaOptions& options = {});

// generate() with the next token chosen on the GPU: one host synchronisation per token (the sampled id).
Result<GenerationResult> generate_on_gpu(CudaBackend& backend, const GenerationRequest& request, const TokenCallback& on_token = {},
                                         ForwardObserver* observer = nullptr, const std::atomic<bool>* cancel = nullptr);

// Decode throughput of `batch` sequences stepping together (greedy), after a batched prefill of random prompts.
// Reserves the cache (batch slots of prompt + generated tokens) and runs a short warm-up first, so CUDA-graph
// capture stays out of the timings.
struct BatchedDecodeReport {
    int64_t batch = 0;
    int64_t prompt_tokens = 0;     // per sequence
    int64_t generated_tokens = 0;  // per sequence
    double prefill_s = 0;
    double decode_s = 0;
    double prefill_tokens_per_s = 0;  // all sequences
    double decode_tokens_per_s = 0;   // all sequences
    size_t peak_device_bytes = 0;     // used on the device while decoding (all processes), from cudaMemGetInfo
};
Result<BatchedDecodeReport> benchmark_batched_decode(CudaBackend& backend, int64_t batch, int64_t prompt_tokens,
                                                     int64_t generated_tokens, uint64_t seed);

}  // namespace mwb
