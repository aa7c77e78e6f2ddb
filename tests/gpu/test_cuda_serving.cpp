// The continuous-batching scheduler on the CUDA backend (dsv3-tiny): requests batched together, prompts and
// decode tokens of several sequences in one step, give the greedy tokens each gives alone. bf16 GEMMs may pick
// other kernels for other batch sizes, so two runs may part where the alone run's top two logits were a
// near-tie (under 0.05 apart); before that point they must agree token for token.
#include <QtTest>

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "cuda_test_support.h"
#include "engine/model/model_graph.h"
#include "engine/runtime/scheduler.h"
#include "kernels/cuda_backend.h"

using namespace mwb;

namespace {

constexpr float kNearTie = 0.05f;

struct GreedyRun {
    std::vector<int32_t> tokens;
    std::vector<float> margins;  // per token: top-1 logit minus top-2
};

// Greedy decoding of one prompt alone, step by step through forward(), with each step's margin.
GreedyRun alone(Backend& backend, const std::vector<int32_t>& prompt, int64_t new_tokens, int64_t vocab) {
    GreedyRun run;
    ForwardBatch batch{prompt, {{0, 0, int64_t(prompt.size())}}, false, nullptr};
    int64_t position = int64_t(prompt.size());
    for (int64_t i = 0; i < new_tokens; ++i) {
        auto logits = backend.forward(batch, nullptr);
        if (!logits) qFatal("%s", logits.error().message.c_str());
        std::vector<float> sorted(logits->begin(), logits->begin() + vocab);
        const int32_t best = int32_t(std::max_element(sorted.begin(), sorted.end()) - sorted.begin());
        std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
        run.tokens.push_back(best);
        run.margins.push_back(sorted[0] - sorted[1]);
        batch = ForwardBatch{{best}, {{0, position++, 1}}, false, nullptr};
    }
    return run;
}

}  // namespace

class CudaServingTest : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { require_cuda_device(); }

    void batched_requests_match_their_lone_runs_up_to_near_ties() {
        auto loaded = load_model_graph(std::string(MWB_TEST_DATA) + "/models/dsv3-tiny");
        QVERIFY(loaded);
        auto graph = std::make_shared<const ModelGraph>(std::move(loaded.value()));
        const int64_t vocab = graph->config.vocab_size;
        std::vector<std::vector<int32_t>> prompts;
        for (int i = 0; i < 6; ++i) {
            std::vector<int32_t> prompt;
            for (int t = 0; t <= 2 + 3 * i; ++t) prompt.push_back(int32_t((i * 97 + t * 13 + 5) % vocab));
            prompts.push_back(prompt);
        }
        constexpr int64_t kNewTokens = 6;

        auto single = make_cuda_backend(graph);
        QVERIFY(single);
        QVERIFY((*single)->reserve_cache(1, 64));
        std::vector<GreedyRun> lone;
        for (const auto& p : prompts) lone.push_back(alone(**single, p, kNewTokens, vocab));

        auto shared = make_cuda_backend(graph);
        QVERIFY(shared);
        SchedulerOptions options;
        options.max_running = 4;  // six requests: two wait and join as others leave
        options.context = 64;
        options.prefill_chunk = 8;  // the longer prompts enter in two chunks beside other requests' decode tokens
        options.step_tokens = 4 + 8;
        auto scheduler = Scheduler::start(**shared, graph->config, options);
        QVERIFY2(scheduler, scheduler ? "" : scheduler.error().message.c_str());
        std::mutex mutex;
        std::condition_variable done;
        std::map<int, RequestOutcome> outcomes;
        for (int i = 0; i < int(prompts.size()); ++i) {
            ScheduledRequest request;
            request.prompt = prompts[size_t(i)];
            request.max_new_tokens = kNewTokens;
            request.sampling.temperature = 0;
            RequestEvents events;
            events.on_finish = [&, i](const RequestOutcome& outcome) {
                std::lock_guard lock(mutex);
                outcomes[i] = outcome;
                done.notify_all();
            };
            QVERIFY((*scheduler)->submit(request, events).accepted());
        }
        {
            std::unique_lock lock(mutex);
            done.wait(lock, [&] { return outcomes.size() == prompts.size(); });
        }
        for (int i = 0; i < int(prompts.size()); ++i) {
            const RequestOutcome& outcome = outcomes.at(i);
            QVERIFY2(!outcome.error, outcome.error ? outcome.error->message.c_str() : "");
            QCOMPARE(outcome.tokens.size(), size_t(kNewTokens));
            for (size_t t = 0; t < outcome.tokens.size(); ++t) {
                if (outcome.tokens[t] == lone[size_t(i)].tokens[t]) continue;
                QVERIFY2(lone[size_t(i)].margins[t] < kNearTie,
                         qPrintable(QString("request %1 token %2: %3 batched, %4 alone, margin %5")
                                        .arg(i).arg(t).arg(outcome.tokens[t]).arg(lone[size_t(i)].tokens[t]).arg(lone[size_t(i)].margins[t])));
                break;  // after a near-tie the two continuations are different texts
            }
        }
    }
};

QTEST_GUILESS_MAIN(CudaServingTest)
#include "test_cuda_serving.moc"
