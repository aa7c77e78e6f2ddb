// The continuous-batching scheduler on the CPU backend: requests batched together give exactly the tokens
// each gives alone (through the plain generation loop), image features enter with their prompt's chunks, the
// queue is bounded, cancellation frees slots, and the counters add up to what was submitted.
#include <QtTest>

#include <condition_variable>
#include <cstdint>
#include <future>
#include <mutex>

#include "engine/model/model_graph.h"
#include "engine/runtime/generation.h"
#include "engine/runtime/scheduler.h"
#include "engine/train/lora_adapter.h"
#include "engine/vision/image_prompt.h"

using namespace mwb;

namespace {

std::shared_ptr<const ModelGraph> load(const char* name) {
    auto graph = load_model_graph(std::string(MWB_TEST_DATA) + "/models/" + name);
    if (!graph) qFatal("%s", graph.error().message.c_str());
    return std::make_shared<const ModelGraph>(std::move(graph.value()));
}

// Prompts of different lengths (1 to 23 tokens) from a fixed recipe.
std::vector<std::vector<int32_t>> prompts(int64_t vocab, int count) {
    std::vector<std::vector<int32_t>> out;
    for (int i = 0; i < count; ++i) {
        std::vector<int32_t> prompt;
        for (int t = 0; t <= (i * 7) % 23; ++t) prompt.push_back(int32_t((i * 131 + t * 17 + 3) % vocab));
        out.push_back(prompt);
    }
    return out;
}

ScheduledRequest request_for(const std::vector<int32_t>& prompt, int index) {
    ScheduledRequest r;
    r.prompt = prompt;
    r.max_new_tokens = 6 + index % 5;
    // Half greedy, half sampled with their own seeds: both must be independent of the company they keep.
    r.sampling.temperature = index % 2 ? 0.9 : 0.0;
    r.sampling.top_k = index % 3 ? 0 : 20;
    r.sampling.seed = uint64_t(1000 + index);
    return r;
}

// What each request gives alone, through generate() on a backend of its own.
std::vector<int32_t> alone(std::shared_ptr<const ModelGraph> graph, const ScheduledRequest& r) {
    auto backend = make_cpu_backend(graph, 2);
    if (auto status = backend->reserve_cache(1, 64); !status) qFatal("%s", status.error().message.c_str());
    GenerationRequest g;
    g.prompt = r.prompt;
    g.sampling = r.sampling;
    g.max_new_tokens = r.max_new_tokens;
    auto result = generate(*backend, g);
    if (!result) qFatal("%s", result.error().message.c_str());
    return result->tokens;
}

// Collects each request's outcome; wait() returns once `expected` requests have finished.
class Outcomes {
public:
    RequestEvents events_for(int index) {
        return {{}, [this, index](const RequestOutcome& outcome) {
                    std::lock_guard lock(mutex_);
                    outcomes_[index] = outcome;
                    done_.notify_all();
                }};
    }
    std::map<int, RequestOutcome> wait(size_t expected) {
        std::unique_lock lock(mutex_);
        done_.wait(lock, [&] { return outcomes_.size() >= expected; });
        return outcomes_;
    }

private:
    std::mutex mutex_;
    std::condition_variable done_;
    std::map<int, RequestOutcome> outcomes_;
};

// A gate an on_token callback waits at until the test opens it.
class Gate {
public:
    void open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }
    void wait() {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return open_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    bool open_ = false;
};

}  // namespace

class SchedulerTest : public QObject {
    Q_OBJECT

private slots:
    void batched_requests_give_the_tokens_they_give_alone_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("prefill_chunk");
        QTest::newRow("dsv3-tiny, whole prompts") << "dsv3-tiny" << 64;
        QTest::newRow("dsv2-tiny, whole prompts") << "dsv2-tiny" << 64;
        QTest::newRow("qwen2-tiny, whole prompts") << "qwen2-tiny" << 64;
        QTest::newRow("llama-tiny, whole prompts") << "llama-tiny" << 64;
    }
    void batched_requests_give_the_tokens_they_give_alone() {
        QFETCH(QString, model);
        QFETCH(int, prefill_chunk);
        auto graph = load(model.toLatin1().constData());
        const auto all = prompts(graph->config.vocab_size, 12);

        auto backend = make_cpu_backend(graph, 2);
        // 12 requests through 5 slots: some wait in the queue and join as others leave
        const SchedulerOptions options{
            .max_running = 5, .max_queue = 16, .context = 64, .step_tokens = 5 + prefill_chunk, .prefill_chunk = prefill_chunk};
        auto scheduler = Scheduler::start(*backend, graph->config, options);
        QVERIFY2(scheduler, scheduler ? "" : scheduler.error().message.c_str());
        Outcomes outcomes;
        for (int i = 0; i < int(all.size()); ++i) {
            const Submission s = (*scheduler)->submit(request_for(all[size_t(i)], i), outcomes.events_for(i));
            QVERIFY2(s.accepted(), s.message.c_str());
        }
        const auto done = outcomes.wait(all.size());
        for (int i = 0; i < int(all.size()); ++i) {
            const RequestOutcome& outcome = done.at(i);
            QVERIFY(!outcome.error);
            QCOMPARE(outcome.tokens, alone(graph, request_for(all[size_t(i)], i)));
            QCOMPARE(outcome.finish, FinishReason::Length);
        }
    }

    // The ground the equality above stands on, bit for bit: a chunk's logits do not depend on the chunks
    // beside it in the batch (the row count of every linear layer changes with them).
    void a_chunk_gets_the_same_logits_in_any_batch_data() {
        QTest::addColumn<QString>("model");
        QTest::newRow("dsv3-tiny") << "dsv3-tiny";
        QTest::newRow("qwen2-tiny") << "qwen2-tiny";
    }
    void a_chunk_gets_the_same_logits_in_any_batch() {
        QFETCH(QString, model);
        auto graph = load(model.toLatin1().constData());
        const auto all = prompts(graph->config.vocab_size, 6);
        auto forward = [&](const std::vector<size_t>& which) {
            auto backend = make_cpu_backend(graph, 2);
            if (auto status = backend->reserve_cache(6, 32); !status) qFatal("%s", status.error().message.c_str());
            ForwardBatch batch;
            for (size_t i : which) {
                batch.tokens.insert(batch.tokens.end(), all[i].begin(), all[i].end());
                batch.chunks.push_back({int64_t(i), 0, int64_t(all[i].size())});
            }
            auto logits = backend->forward(batch, nullptr);
            if (!logits) qFatal("%s", logits.error().message.c_str());
            return logits.value();
        };
        const auto together = forward({0, 1, 2, 3, 4, 5});
        const size_t vocab = size_t(graph->config.vocab_size);
        for (size_t i = 0; i < 6; ++i) {
            const auto single = forward({i});
            QVERIFY2(std::equal(single.begin(), single.end(), together.begin() + long(i * vocab)), qPrintable(QString("chunk %1").arg(i)));
        }
    }

    // Small chunks cut prompts at fixed positions, so the split does not depend on the other requests.
    void chunked_prefill_gives_the_same_tokens_alone_and_batched() {
        auto graph = load("dsv3-tiny");
        const auto all = prompts(graph->config.vocab_size, 8);
        auto run = [&](std::vector<int> which) {
            auto backend = make_cpu_backend(graph, 2);
            // Room for two chunks beside the decode tokens, so chunks of several prompts mix.
            const SchedulerOptions options{.max_running = 4, .context = 64, .step_tokens = 12, .prefill_chunk = 5};
            auto scheduler = Scheduler::start(*backend, graph->config, options);
            if (!scheduler) qFatal("%s", scheduler.error().message.c_str());
            Outcomes outcomes;
            for (int i : which) (*scheduler)->submit(request_for(all[size_t(i)], i), outcomes.events_for(i));
            return outcomes.wait(which.size());
        };
        const auto together = run({0, 1, 2, 3, 4, 5, 6, 7});
        for (int i = 0; i < 8; ++i) QCOMPARE(together.at(i).tokens, run({i}).at(i).tokens);
    }

    // Requests with a LoRA adapter and without one share the scheduler (they take turns by step): each gives
    // what it gives alone through generate() with the same adapter, or none.
    void requests_with_and_without_an_adapter_match_their_lone_runs() {
        auto graph = load("dsv3-tiny");
        auto adapter = train::LoraAdapter::load(std::string(MWB_TEST_DATA) + "/lora/dsv3-tiny-lora/adapter_final", *graph);
        QVERIFY2(adapter, adapter ? "" : adapter.error().message.c_str());
        const LowRankDeltas deltas = adapter->deltas(*graph);
        const auto all = prompts(graph->config.vocab_size, 6);
        auto lone = [&](int i) {
            auto backend = make_cpu_backend(graph, 2);
            if (auto status = backend->reserve_cache(1, 64); !status) qFatal("%s", status.error().message.c_str());
            const ScheduledRequest r = request_for(all[size_t(i)], i);
            GenerationRequest g;
            g.prompt = r.prompt;
            g.sampling = r.sampling;
            g.max_new_tokens = r.max_new_tokens;
            g.adapter = i % 2 ? &deltas : nullptr;
            auto result = generate(*backend, g);
            if (!result) qFatal("%s", result.error().message.c_str());
            return result->tokens;
        };
        auto backend = make_cpu_backend(graph, 2);
        const SchedulerOptions options{.max_running = 4, .context = 64, .step_tokens = 36, .prefill_chunk = 32};
        auto scheduler = Scheduler::start(*backend, graph->config, options);
        QVERIFY(scheduler);
        Outcomes outcomes;
        for (int i = 0; i < 6; ++i) {
            ScheduledRequest r = request_for(all[size_t(i)], i);
            r.adapter = i % 2 ? &deltas : nullptr;
            QVERIFY((*scheduler)->submit(r, outcomes.events_for(i)).accepted());
        }
        const auto done = outcomes.wait(6);
        bool adapter_changed_something = false;
        for (int i = 0; i < 6; ++i) {
            QCOMPARE(done.at(i).tokens, lone(i));
            if (i % 2) adapter_changed_something |= done.at(i).tokens != alone(graph, request_for(all[size_t(i)], i));
        }
        QVERIFY(adapter_changed_something);  // the adapter took part, not only the base model
    }

    // An image question (dsvl-tiny: the reference's image features in place of its 16 image tokens) cut into
    // chunks of 5 that split the image, beside text requests: the fixture's greedy tokens, as generate() gives
    // them; overrides outside the prompt are refused.
    void image_requests_take_their_features_chunk_by_chunk() {
        auto graph = load("dsvl-tiny");
        auto reference = TensorStore::open_file(std::string(MWB_TEST_DATA) + "/models/dsvl-tiny/reference.safetensors");
        QVERIFY(reference.ok());
        const auto ids = reference->read_int64("input_ids");
        const auto greedy = reference->read_int64("greedy");
        const auto features = reference->read_float("image_features", {});
        QVERIFY(ids.ok() && greedy.ok() && features.ok());
        ScheduledRequest image;
        image.prompt.assign(ids->begin(), ids->end());
        auto overrides = image_embedding_overrides(image.prompt, 511, *features, graph->config.hidden_size);
        QVERIFY(overrides.ok());
        image.prompt_embeddings = std::move(overrides.value());
        image.max_new_tokens = int64_t(greedy->size());
        image.sampling.temperature = 0;

        auto backend = make_cpu_backend(graph, 2);
        const SchedulerOptions options{.max_running = 3, .context = 64, .step_tokens = 13, .prefill_chunk = 5};
        auto scheduler = Scheduler::start(*backend, graph->config, options);
        QVERIFY(scheduler);
        Outcomes outcomes;
        const auto text = prompts(graph->config.vocab_size, 2);
        QVERIFY((*scheduler)->submit(request_for(text[1], 1), outcomes.events_for(1)).accepted());
        QVERIFY((*scheduler)->submit(image, outcomes.events_for(0)).accepted());
        QVERIFY((*scheduler)->submit(request_for(text[0], 2), outcomes.events_for(2)).accepted());
        const auto done = outcomes.wait(3);
        QCOMPARE(std::vector<int64_t>(done.at(0).tokens.begin(), done.at(0).tokens.end()), *greedy);
        QCOMPARE(done.at(1).tokens, alone(graph, request_for(text[1], 1)));

        ScheduledRequest outside = image;
        outside.prompt.resize(10);
        const Submission refused = (*scheduler)->submit(outside, {});
        QCOMPARE(refused.status, SubmitStatus::Invalid);
        QVERIFY2(QString::fromStdString(refused.message).contains("outside the 10 tokens"), refused.message.c_str());
    }

    void a_full_queue_refuses_and_cancel_frees_the_slot() {
        auto graph = load("dsv3-tiny");
        auto backend = make_cpu_backend(graph, 1);
        const SchedulerOptions options{.max_running = 1, .max_queue = 1, .context = 64, .step_tokens = 17, .prefill_chunk = 16};
        auto scheduler = Scheduler::start(*backend, graph->config, options);
        QVERIFY(scheduler);
        Scheduler& s = **scheduler;

        // The first request holds the only slot: its first token waits at the gate.
        Gate gate;
        std::promise<void> first_token;
        Outcomes outcomes;
        ScheduledRequest blocking = request_for({1, 2, 3}, 0);
        blocking.max_new_tokens = 50;
        RequestEvents events = outcomes.events_for(0);
        bool told = false;
        events.on_token = [&](int32_t) {
            if (!told) {
                told = true;
                first_token.set_value();
                gate.wait();
            }
            return TokenVerdict::Continue;
        };
        const Submission first = s.submit(blocking, events);
        QVERIFY(first.accepted());
        first_token.get_future().wait();

        const Submission queued = s.submit(request_for({4, 5}, 1), outcomes.events_for(1));
        QVERIFY(queued.accepted());
        const Submission refused = s.submit(request_for({6}, 2), outcomes.events_for(2));
        QCOMPARE(refused.status, SubmitStatus::QueueFull);
        QVERIFY(QString::fromStdString(refused.message).contains("queue"));
        QCOMPARE(s.stats().waiting, 1);

        s.cancel(first.id);
        gate.open();
        const auto done = outcomes.wait(2);
        QCOMPARE(done.at(0).finish, FinishReason::Cancelled);
        QVERIFY(done.at(0).tokens.size() < 50);
        QCOMPARE(done.at(1).finish, FinishReason::Length);  // it got the freed slot
        QCOMPARE(done.at(1).tokens, alone(graph, request_for({4, 5}, 1)));
        QCOMPARE(s.stats().running, 0);
        QCOMPARE(s.stats().waiting, 0);
    }

    void bad_requests_are_refused_with_reasons() {
        auto graph = load("dsv3-tiny");
        auto backend = make_cpu_backend(graph, 1);
        SchedulerOptions options{.max_running = 2, .context = 16, .step_tokens = 10, .prefill_chunk = 8};
        auto scheduler = Scheduler::start(*backend, graph->config, options);
        QVERIFY(scheduler);
        QCOMPARE((*scheduler)->submit({}, {}).status, SubmitStatus::Invalid);
        ScheduledRequest too_long = request_for(std::vector<int32_t>(16, 1), 0);
        const Submission refused = (*scheduler)->submit(too_long, {});
        QCOMPARE(refused.status, SubmitStatus::Invalid);
        QVERIFY(QString::fromStdString(refused.message).contains("16 tokens"));

        options.step_tokens = 9;  // no room for a chunk beside two decode tokens
        auto other = make_cpu_backend(graph, 1);
        QVERIFY(!Scheduler::start(*other, graph->config, options));
    }

    void stop_verdicts_stop_and_the_counters_add_up() {
        auto graph = load("dsv3-tiny");
        auto backend = make_cpu_backend(graph, 2);
        const SchedulerOptions options{.max_running = 3, .context = 64, .step_tokens = 40, .prefill_chunk = 32};
        auto scheduler = Scheduler::start(*backend, graph->config, options);
        QVERIFY(scheduler);
        const auto all = prompts(graph->config.vocab_size, 5);
        Outcomes outcomes;
        int64_t prompt_tokens = 0;
        for (int i = 0; i < 5; ++i) {
            RequestEvents events = outcomes.events_for(i);
            if (i == 4) {
                // The caller's stop (a stop string in the text) after the third token.
                auto count = std::make_shared<int>(0);
                events.on_token = [count](int32_t) { return ++*count == 3 ? TokenVerdict::Stop : TokenVerdict::Continue; };
            }
            QVERIFY((*scheduler)->submit(request_for(all[size_t(i)], i), events).accepted());
            prompt_tokens += int64_t(all[size_t(i)].size());
        }
        const auto done = outcomes.wait(5);
        QCOMPARE(done.at(4).finish, FinishReason::Stop);
        QCOMPARE(done.at(4).tokens.size(), size_t(3));
        int64_t generated = 0;
        for (const auto& [i, outcome] : done) {
            generated += int64_t(outcome.tokens.size());
            QVERIFY(outcome.timings.time_to_first_token_s >= outcome.queued_s);
        }

        const SchedulerStats stats = (*scheduler)->stats();
        QCOMPARE(stats.finished, 5);
        QCOMPARE(stats.prompt_tokens, prompt_tokens);
        QCOMPARE(stats.generated_tokens, generated);
        QCOMPARE(stats.time_to_first_token.count(), 5);
        QCOMPARE(stats.inter_token.count(), generated - 5);
        QCOMPARE(stats.cached_tokens, 0);
        // Every token that went through the model was routed to k experts in each MoE layer; a request's last
        // token is sampled but never fed back.
        const int64_t forwarded = prompt_tokens + generated - 5;
        const int64_t k = graph->config.moe->experts_per_token;
        QVERIFY(!stats.moe_layers.empty());
        for (const auto& layer : stats.expert_tokens) {
            int64_t sum = 0;
            for (int64_t n : layer) sum += n;
            QCOMPARE(sum, forwarded * k);
        }
    }
};

QTEST_GUILESS_MAIN(SchedulerTest)
#include "test_scheduler.moc"
