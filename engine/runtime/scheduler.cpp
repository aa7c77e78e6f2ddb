#include "engine/runtime/scheduler.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <span>
#include <utility>

#include "engine/runtime/sampler.h"

namespace mwb {

namespace {

// Buckets from 1 ms to 60 s: a token on a GPU, a first token behind a long queue on a CPU.
std::vector<double> latency_buckets() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace

struct Scheduler::Active {
    Active(int64_t id_, ScheduledRequest request_, RequestEvents events_)
        : id(id_), request(std::move(request_)), events(std::move(events_)), sampler(request.sampling), context(request.prompt) {}

    int64_t prompt_length() const { return int64_t(request.prompt.size()); }
    bool decoding() const { return prefilled == prompt_length(); }

    int64_t id;
    ScheduledRequest request;
    RequestEvents events;
    Sampler sampler;
    Stopwatch since_submit;
    double admitted_s = 0, first_token_s = 0, last_token_s = 0;
    int64_t slot = -1;
    int64_t prefilled = 0;          // prompt tokens in the cache
    std::vector<int32_t> context;   // prompt and generated tokens
    std::vector<int32_t> generated;
};

// Counts, per MoE layer, the tokens each routed expert received. The forward pass counts on the scheduler's
// thread while stats() may read from another, so the counters are atomic: nothing is copied per step.
class Scheduler::RoutingCounter final : public ForwardObserver {
public:
    explicit RoutingCounter(const ModelConfig& config) : row_of_layer_(size_t(config.num_layers), -1) {
        if (!config.moe) return;
        for (int64_t l = 0; l < config.num_layers; ++l)
            if (config.is_moe_layer(l)) {
                row_of_layer_[size_t(l)] = int64_t(layers_.size());
                layers_.push_back(l);
            }
        experts_ = config.moe->n_routed_experts;
        counts_ = std::vector<std::atomic<int64_t>>(layers_.size() * size_t(experts_));
    }
    void on_routing(int64_t, int64_t, int64_t layer, std::span<const int32_t> experts, std::span<const float>,
                    std::span<const float>) override {
        if (layer < 0 || size_t(layer) >= row_of_layer_.size() || row_of_layer_[size_t(layer)] < 0) return;
        const size_t row = size_t(row_of_layer_[size_t(layer)] * experts_);
        for (int32_t e : experts)
            if (e >= 0 && e < experts_) counts_[row + size_t(e)].fetch_add(1, std::memory_order_relaxed);
    }
    const std::vector<int64_t>& layers() const { return layers_; }
    std::vector<std::vector<int64_t>> counts() const {
        std::vector<std::vector<int64_t>> out(layers_.size(), std::vector<int64_t>(size_t(experts_)));
        for (size_t r = 0; r < out.size(); ++r)
            for (int64_t e = 0; e < experts_; ++e) out[r][size_t(e)] = counts_[r * size_t(experts_) + size_t(e)].load(std::memory_order_relaxed);
        return out;
    }

private:
    std::vector<int64_t> row_of_layer_;  // per layer: its row, or -1 for a dense layer
    std::vector<int64_t> layers_;
    int64_t experts_ = 0;
    std::vector<std::atomic<int64_t>> counts_;  // [MoE layer][expert]
};

Result<std::unique_ptr<Scheduler>> Scheduler::start(Backend& backend, const ModelConfig& config, const SchedulerOptions& options) {
    if (options.max_running < 1 || options.max_queue < 0 || options.context < 2 || options.prefill_chunk < 1)
        return make_error("the scheduler needs at least one slot, a context of 2 tokens or more, a queue of 0 or more, "
                          "and a prefill chunk of 1 token or more");
    if (options.step_tokens < options.max_running + options.prefill_chunk)
        return make_error("a step's token budget (" + std::to_string(options.step_tokens) + ") must hold a decode token of every slot (" +
                          std::to_string(options.max_running) + ") and a prompt chunk (" + std::to_string(options.prefill_chunk) + ")");
    MWB_TRY(backend.reserve_cache(options.max_running, options.context));
    std::unique_ptr<Scheduler> scheduler(new Scheduler(backend, config, options));
    scheduler->thread_ = std::thread([s = scheduler.get()] { s->run(); });
    return scheduler;
}

Scheduler::Scheduler(Backend& backend, const ModelConfig& config, const SchedulerOptions& options)
    : backend_(backend), options_(options), hidden_size_(config.hidden_size), routing_(std::make_unique<RoutingCounter>(config)) {
    for (int64_t s = options.max_running - 1; s >= 0; --s) free_slots_.push_back(s);
    stats_.slot_count = options.max_running;
    stats_.context_tokens = options.context;
    stats_.time_to_first_token = LatencyHistogram(latency_buckets());
    stats_.inter_token = LatencyHistogram(latency_buckets());
    stats_.moe_layers = routing_->layers();
}

Scheduler::~Scheduler() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

Submission Scheduler::submit(ScheduledRequest request, RequestEvents events) {
    Submission answer;
    if (request.prompt.empty()) {
        answer.message = "the prompt is empty";
        return answer;
    }
    if (int64_t(request.prompt.size()) >= options_.context) {
        answer.message = "the prompt has " + std::to_string(request.prompt.size()) + " tokens; the context is " +
                         std::to_string(options_.context) + " tokens, and the reply needs at least one";
        return answer;
    }
    if (request.max_new_tokens < 1) {
        answer.message = "max_new_tokens must be at least 1";
        return answer;
    }
    if (Status fits = check_embedding_overrides(request.prompt_embeddings, int64_t(request.prompt.size()), hidden_size_); !fits) {
        answer.message = fits.error().message;
        return answer;
    }
    {
        std::lock_guard lock(mutex_);
        if (stopping_) {
            answer.status = SubmitStatus::Stopped;
            answer.message = "the server is shutting down";
            return answer;
        }
        // Requests not yet admitted take the free slots first, then the queue.
        if (int64_t(waiting_.size()) >= int64_t(free_slots_.size()) + options_.max_queue) {
            answer.status = SubmitStatus::QueueFull;
            answer.message = "all " + std::to_string(options_.max_running) + " slots are busy and " + std::to_string(waiting_.size()) +
                             " requests are waiting (the queue holds " + std::to_string(options_.max_queue) + "); try again later";
            return answer;
        }
        answer.status = SubmitStatus::Accepted;
        answer.id = next_id_++;
        waiting_.push_back(std::make_unique<Active>(answer.id, std::move(request), std::move(events)));
        stats_.waiting = int64_t(waiting_.size());
    }
    wake_.notify_all();
    return answer;
}

void Scheduler::cancel(int64_t id) {
    {
        std::lock_guard lock(mutex_);
        cancelled_.insert(id);
    }
    wake_.notify_all();
}

SchedulerStats Scheduler::stats() const {
    std::lock_guard lock(mutex_);
    SchedulerStats stats = stats_;
    stats.expert_tokens = routing_->counts();
    return stats;
}

void Scheduler::run() {
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !waiting_.empty() || !running_.empty() || !cancelled_.empty(); });
            if (stopping_) break;
        }
        step();
    }
    // Whoever waits on a request hears that it ended.
    std::deque<std::unique_ptr<Active>> left;
    {
        std::lock_guard lock(mutex_);
        left.swap(waiting_);
    }
    for (auto& request : left) finish(std::move(request), FinishReason::Cancelled);
    auto running = std::move(running_);
    for (auto& request : running) finish(std::move(request), FinishReason::Cancelled);
}

// `free_slots_` is also read by submit() for its queue check, so it changes under the lock.
void Scheduler::admit_and_drop_cancelled(std::vector<std::unique_ptr<Active>>& finished_now) {
    std::lock_guard lock(mutex_);
    for (auto it = running_.begin(); it != running_.end();) {
        if (cancelled_.erase((*it)->id)) {
            free_slots_.push_back((*it)->slot);
            finished_now.push_back(std::move(*it));
            it = running_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (cancelled_.erase((*it)->id)) {
            finished_now.push_back(std::move(*it));
            it = waiting_.erase(it);
        } else {
            ++it;
        }
    }
    cancelled_.clear();  // ids of requests that already ended
    while (!waiting_.empty() && !free_slots_.empty()) {
        auto request = std::move(waiting_.front());
        waiting_.pop_front();
        request->slot = free_slots_.back();
        free_slots_.pop_back();
        request->admitted_s = request->since_submit.seconds();
        running_.push_back(std::move(request));
    }
    stats_.waiting = int64_t(waiting_.size());
    stats_.running = int64_t(running_.size());
}

bool Scheduler::step() {
    std::vector<std::unique_ptr<Active>> cancelled;
    admit_and_drop_cancelled(cancelled);
    for (auto& request : cancelled) finish(std::move(request), FinishReason::Cancelled);
    if (running_.empty()) return false;

    // Requests with different adapters run in different steps, taking turns.
    std::vector<const LowRankDeltas*> adapters;
    for (const auto& r : running_)
        if (std::find(adapters.begin(), adapters.end(), r->request.adapter) == adapters.end()) adapters.push_back(r->request.adapter);
    const LowRankDeltas* adapter = adapters[adapter_turn_++ % adapters.size()];

    ForwardBatch batch;
    batch.adapter = adapter;
    std::vector<Active*> members;  // per chunk
    int64_t budget = options_.step_tokens;
    for (auto& r : running_) {
        if (r->request.adapter != adapter || !r->decoding()) continue;
        batch.tokens.push_back(r->context.back());
        batch.chunks.push_back({r->slot, int64_t(r->context.size()) - 1, 1});
        members.push_back(r.get());
        --budget;
    }
    bool chunk_added = false;
    for (auto& r : running_) {
        if (r->request.adapter != adapter || r->decoding()) continue;
        const int64_t count = std::min(options_.prefill_chunk, r->prompt_length() - r->prefilled);
        if (count > budget && chunk_added) break;
        const int64_t first_row = int64_t(batch.tokens.size());
        batch.tokens.insert(batch.tokens.end(), r->request.prompt.begin() + r->prefilled, r->request.prompt.begin() + r->prefilled + count);
        batch.chunks.push_back({r->slot, r->prefilled, count});
        const EmbeddingOverrides& given = r->request.prompt_embeddings;
        for (size_t i = 0; i < given.rows.size(); ++i) {
            const int64_t row = given.rows[i];
            if (row < r->prefilled || row >= r->prefilled + count) continue;
            batch.embedding_overrides.rows.push_back(first_row + row - r->prefilled);
            batch.embedding_overrides.values.insert(batch.embedding_overrides.values.end(), given.values.begin() + int64_t(i) * hidden_size_,
                                                    given.values.begin() + int64_t(i + 1) * hidden_size_);
        }
        members.push_back(r.get());
        budget -= count;
        chunk_added = true;
    }

    auto logits = backend_.forward(batch, routing_.get());
    const int64_t vocab = logits ? int64_t(logits->size() / std::max<size_t>(1, batch.chunks.size())) : 0;
    std::vector<std::pair<Active*, FinishReason>> endings;
    int64_t prompt_tokens = 0, generated_tokens = 0;
    std::vector<double> first_token_latencies, inter_token_latencies;
    for (size_t c = 0; c < members.size(); ++c) {
        Active& r = *members[c];
        if (!logits) {
            endings.emplace_back(&r, FinishReason::Cancelled);
            continue;
        }
        if (!r.decoding()) {
            r.prefilled += batch.chunks[c].token_count;
            prompt_tokens += batch.chunks[c].token_count;
            if (!r.decoding()) continue;  // more prompt to go: these logits are not used
        }
        const int32_t token = r.sampler.sample({logits->data() + int64_t(c) * vocab, size_t(vocab)}, r.context);
        const double now = r.since_submit.seconds();
        r.generated.push_back(token);
        r.context.push_back(token);
        ++generated_tokens;
        if (r.generated.size() == 1) {
            r.first_token_s = now;
            first_token_latencies.push_back(now);
        } else {
            inter_token_latencies.push_back(now - r.last_token_s);
        }
        r.last_token_s = now;
        const TokenVerdict verdict = r.events.on_token ? r.events.on_token(token) : TokenVerdict::Continue;
        if (auto finish = finish_after_token(token, r.request.stop_tokens, verdict == TokenVerdict::Stop, verdict == TokenVerdict::Cancel,
                                             int64_t(r.generated.size()), r.request.max_new_tokens, int64_t(r.context.size()), options_.context))
            endings.emplace_back(&r, *finish);
    }

    std::vector<std::pair<std::unique_ptr<Active>, FinishReason>> leaving;
    {
        std::lock_guard lock(mutex_);
        for (const auto& ending : endings) {
            auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& r) { return r.get() == ending.first; });
            free_slots_.push_back((*it)->slot);
            leaving.emplace_back(std::move(*it), ending.second);
            running_.erase(it);
        }
        ++stats_.steps;
        stats_.running = int64_t(running_.size());
        stats_.prompt_tokens += prompt_tokens;
        stats_.generated_tokens += generated_tokens;
        stats_.cached_tokens = 0;
        for (const auto& r : running_) stats_.cached_tokens += r->decoding() ? int64_t(r->context.size()) - 1 : r->prefilled;
        for (double s : first_token_latencies) stats_.time_to_first_token.observe(s);
        for (double s : inter_token_latencies) stats_.inter_token.observe(s);
    }
    for (auto& [request, reason] : leaving) finish(std::move(request), reason, logits ? std::nullopt : std::optional<Error>(logits.error()));
    return true;
}

void Scheduler::finish(std::unique_ptr<Active> request, FinishReason reason, std::optional<Error> error) {
    RequestOutcome outcome;
    outcome.tokens = std::move(request->generated);
    outcome.finish = reason;
    outcome.error = std::move(error);
    outcome.queued_s = request->admitted_s;
    GenerationTimings& t = outcome.timings;
    t.prompt_tokens = request->prompt_length();
    t.generated_tokens = int64_t(outcome.tokens.size());
    if (!outcome.tokens.empty()) {
        t.time_to_first_token_s = request->first_token_s;
        t.prefill_s = request->first_token_s - request->admitted_s;
        if (outcome.tokens.size() > 1) t.decode_s = request->last_token_s - request->first_token_s;
    }
    {
        std::lock_guard lock(mutex_);
        if (outcome.error) ++stats_.failed;
        else ++stats_.finished;
    }
    if (request->events.on_finish) request->events.on_finish(outcome);
}

}  // namespace mwb
