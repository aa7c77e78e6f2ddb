// Continuous batching: many requests share one backend. A thread of its own runs steps; each step batches
// the next token of every decoding request with prompt chunks of new ones, within a token budget. Requests
// join and leave between steps, each with its own sampling, seed, stop tokens, length, adapter and
// cancellation, and each reports its own timings.
//
// A request's tokens do not depend on what else runs: its prompt is cut into chunks at fixed positions
// (multiples of `prefill_chunk`), it samples with its own seeded sampler, and on the CPU backend every op
// computes a row the same way whatever the batch holds. So on the CPU a request gives the same tokens alone
// or batched; on CUDA bf16 GEMMs choose their kernels by batch size, so a near-tie may go the other way.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/observe/latency_histogram.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/generation.h"

namespace mwb {

struct SchedulerOptions {
    int64_t max_running = 8;     // KV-cache slots: requests decoding at once
    int64_t max_queue = 64;      // requests waiting for a slot; more are refused
    int64_t context = 4096;      // tokens per slot (prompt + generated)
    int64_t step_tokens = 512;   // token budget of one step: decode tokens first, then prompt chunks
    int64_t prefill_chunk = 256; // prompts enter the cache in chunks of this many tokens
};

struct ScheduledRequest {
    std::vector<int32_t> prompt;
    SamplingParams sampling;
    int64_t max_new_tokens = 128;
    std::vector<int32_t> stop_tokens;
    const LowRankDeltas* adapter = nullptr;  // must outlive the request
    // Prompt rows that take given embeddings (an image's features; rows index the prompt), used as each row's
    // chunk enters the cache.
    EmbeddingOverrides prompt_embeddings{};
};

// What the owner of a request says after each token.
enum class TokenVerdict { Continue, Stop, Cancel };  // Stop: the text reached one of its stop strings

struct RequestOutcome {
    std::vector<int32_t> tokens;
    FinishReason finish = FinishReason::Length;
    GenerationTimings timings;  // time_to_first_token_s counts from submission, the queue included
    double queued_s = 0;
    std::optional<Error> error;  // the backend failed; the request ended without finishing
};

// Called on the scheduler's thread; keep them short. on_finish comes exactly once for every accepted request.
struct RequestEvents {
    std::function<TokenVerdict(int32_t token)> on_token;
    std::function<void(const RequestOutcome&)> on_finish;
};

enum class SubmitStatus { Accepted, QueueFull, Invalid, Stopped };

struct Submission {
    SubmitStatus status = SubmitStatus::Invalid;
    int64_t id = -1;
    std::string message;  // why it was refused
    bool accepted() const { return status == SubmitStatus::Accepted; }
};

struct SchedulerStats {
    int64_t running = 0, waiting = 0;
    int64_t slot_count = 0, context_tokens = 0;
    int64_t cached_tokens = 0;  // KV-cache positions in use
    int64_t finished = 0, failed = 0;
    int64_t prompt_tokens = 0, generated_tokens = 0;
    int64_t steps = 0;
    LatencyHistogram time_to_first_token{{}};
    LatencyHistogram inter_token{{}};
    std::vector<int64_t> moe_layers;                 // layers with routed experts
    std::vector<std::vector<int64_t>> expert_tokens; // per MoE layer: tokens routed to each expert

    // KV-cache positions in use over all positions (1 = full).
    double kv_cache_usage() const {
        const double capacity = double(slot_count) * double(context_tokens);
        return capacity > 0 ? double(cached_tokens) / capacity : 0;
    }
};

class Scheduler {
public:
    // Reserves `max_running` × `context` of the backend's KV cache and starts the thread.
    static Result<std::unique_ptr<Scheduler>> start(Backend& backend, const ModelConfig& config, const SchedulerOptions& options);
    ~Scheduler();  // cancels everything, ends the thread
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    Submission submit(ScheduledRequest request, RequestEvents events);
    void cancel(int64_t id);  // a waiting request leaves the queue, a running one frees its slot at the next step
    SchedulerStats stats() const;
    const SchedulerOptions& options() const { return options_; }

private:
    struct Active;
    class RoutingCounter;
    Scheduler(Backend& backend, const ModelConfig& config, const SchedulerOptions& options);

    void run();
    void admit_and_drop_cancelled(std::vector<std::unique_ptr<Active>>& finished_now);
    bool step();  // false when there was nothing to do
    void finish(std::unique_ptr<Active> request, FinishReason reason, std::optional<Error> error = std::nullopt);

    Backend& backend_;
    SchedulerOptions options_;
    int64_t hidden_size_ = 0;
    std::unique_ptr<RoutingCounter> routing_;

    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    int64_t next_id_ = 1;
    std::deque<std::unique_ptr<Active>> waiting_;
    std::set<int64_t> cancelled_;
    SchedulerStats stats_;

    // The scheduler thread's own state.
    std::vector<std::unique_ptr<Active>> running_;
    std::vector<int64_t> free_slots_;
    size_t adapter_turn_ = 0;
    std::thread thread_;
};

}  // namespace mwb
