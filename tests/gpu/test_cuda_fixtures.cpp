// Every fixture model on the CUDA backend against the Hugging Face reference (bf16 tolerances of the fixtures
// README). Router indices equal wherever the reference's k-th vs (k+1)-th selection score margin (and its group
// margin) exceeds kRouterTie = 2e-2: bf16 activations move dsv3-tiny's sigmoid selection scores by up to ~1e-2
// by its third layer (a flip at a margin of 0.0105 was measured on the CPU emulator, whose only error is the bf16
// storage), so the 1e-2 first planned is too tight for a bf16 path. Where a bf16 run does route a token differently at such a near-tie, that
// position has taken another branch of the model: in these tiny random models one other expert moves the logits
// far (cosine ~0.95), so the position is reported with its margin and left out of the logits checks. At every
// other position: cosine of the logits ≥ 0.999, and the top-1 token equal to the reference's unless the
// reference's own lead is within the bf16 logit error (kLogitTie, ~1.5% of the logit range here; the positions
// are reported). The greedy continuation equals the reference for the first 8 tokens unless it reaches such a
// near-tie (logits or routing, margin reported). Also: CUDA graphs vs eager give the same tokens, logits vs GPU
// sampling agree, W8A16 stays close, W8A16 / W4A16 accuracy is reported, attention snapshots match for the rows
// upstream of any routing branch.
#include <QtTest>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "engine/model/model_graph.h"
#include "engine/observe/forward_capture.h"
#include "kernels/cuda_backend.h"
#include "tests/gpu/cuda_test_support.h"
#include "tests/gpu/routing_branches.h"
#include "tests/support/fixture.h"

using namespace mwb;
using namespace mwb::testing;

namespace {

// The reference's routing of every MoE layer: from the fixture's prompt tensors, or from a float32 CPU run.
Routings reference_routing(const Fixture& f, int prompt) {
    Routings routings;
    for (int64_t layer : f.graph->moe_layers()) {
        const std::string name = prompt_key(prompt, ".router.") + std::to_string(layer);
        const auto& moe = std::get<MoeWeights>(f.graph->layers[size_t(layer)].feed_forward).config;
        ForwardCapture::Routing& r = routings[layer];
        r.top_k = moe.experts_per_token;
        r.experts = moe.n_routed_experts;
        r.indices = f.integers(name + ".indices");
        r.logits = f.floats(name + ".logits");
    }
    return routings;
}

}  // namespace

class CudaFixturesTest : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { require_cuda_device(); }

    void logits_and_routing_match_reference_data() { add_model_rows(); }
    void logits_and_routing_match_reference() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model.toStdString());
        const int64_t vocab = f.graph->config.vocab_size;
        auto backend = cuda_backend(f);
        int64_t positions = 0, agreeing = 0;
        for (int p = 0; p < f.prompts; ++p) {
            const std::string prefix = prompt_key(p, ".");
            const auto prompt = f.prompt(p);
            const int64_t count = int64_t(prompt.size());
            QVERIFY(backend->reserve_cache(1, count).ok());
            ForwardCapture capture(count);
            auto logits = backend->forward({prompt, {{0, 0, count}}, true}, &capture);
            QVERIFY2(logits.ok(), logits.ok() ? "" : logits.error().message.c_str());
            const Branches branches = routing_branches(f, reference_routing(f, p), routing_of(capture), kRouterTie);
            QVERIFY2(branches.failure.isEmpty(), qPrintable(QString("prompt %1: %2").arg(p).arg(branches.failure)));
            if (!branches.positions.empty()) qInfo("prompt %d: routing branched at near-ties:%s", p, qPrintable(branches.report));
            const auto reference = f.floats(prefix + "logits");
            QCOMPARE(logits->size(), reference.size());
            for (int64_t t = 0; t < count; ++t) {
                if (branches.positions.count(t)) continue;
                const float* got = logits->data() + t * vocab;
                const float* want = reference.data() + t * vocab;
                const double c = cosine(got, want, size_t(vocab));
                QVERIFY2(c >= 0.999, qPrintable(QString("prompt %1 position %2: cosine %3").arg(p).arg(t).arg(c)));
                const size_t top = argmax(got, size_t(vocab)), reference_top = argmax(want, size_t(vocab));
                ++positions;
                if (top == reference_top) {
                    ++agreeing;
                    continue;
                }
                const float lead = want[reference_top] - want[top];
                QVERIFY2(lead <= kLogitTie, qPrintable(QString("prompt %1 position %2: top-1 %3, reference %4 ahead by %5")
                                                           .arg(p).arg(t).arg(top).arg(reference_top).arg(lead)));
                qInfo("prompt %d position %lld: top-1 near-tie (reference ahead by %g)", p, (long long)t, double(lead));
            }
        }
        qInfo("top-1 agreement %lld of %lld positions (all others are near-ties of the reference)", (long long)agreeing,
              (long long)positions);
    }

    void greedy_continuation_matches_reference_data() { add_model_rows(); }
    void greedy_continuation_matches_reference() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model.toStdString());
        auto backend = cuda_backend(f);
        auto cpu = make_cpu_backend(f.graph, 2);
        for (int p = 0; p < f.prompts; ++p) {
            const auto prompt = f.prompt(p);
            auto expected = f.reference.read_int64(prompt_key(p, ".greedy"));
            QVERIFY(expected.ok());
            const int64_t compared = 8;
            QVERIFY(backend->reserve_cache(1, int64_t(prompt.size()) + compared).ok());
            GenerationRequest request;
            request.prompt = prompt;
            request.sampling.temperature = 0;
            request.max_new_tokens = compared;
            auto result = generate_on_gpu(*backend, request);
            QVERIFY2(result.ok(), result.ok() ? "" : result.error().message.c_str());
            for (int64_t i = 0; i < compared; ++i) {
                const int32_t want = int32_t((*expected)[size_t(i)]), got = result->tokens[size_t(i)];
                if (got == want) continue;
                // A divergence is accepted only at a near-tie of the float32 reference (measured on the CPU backend):
                // of the next token's logits, or of a routing decision on the way to it.
                std::vector<int32_t> context = prompt;
                for (int64_t j = 0; j < i; ++j) context.push_back(int32_t((*expected)[size_t(j)]));
                const int64_t length = int64_t(context.size());
                const ForwardBatch forced{context, {{0, 0, length}}, false};
                ForwardCapture on_cpu(length), on_gpu(length);
                QVERIFY(cpu->reserve_cache(1, length).ok());
                auto logits = cpu->forward(forced, &on_cpu);
                QVERIFY(logits.ok());
                QVERIFY(backend->forward(forced, &on_gpu).ok());
                const Branches branches = routing_branches(f, routing_of(on_cpu), routing_of(on_gpu), kRouterTie);
                QVERIFY2(branches.failure.isEmpty(), qPrintable(QString("prompt %1 token %2: %3").arg(p).arg(i).arg(branches.failure)));
                const float margin = (*logits)[size_t(want)] - (*logits)[size_t(got)];
                QVERIFY2(margin < kLogitTie || !branches.positions.empty(),
                         qPrintable(QString("prompt %1 token %2: got %3, reference %4 ahead by %5").arg(p).arg(i).arg(got).arg(want).arg(margin)));
                qInfo("prompt %d token %lld: near-tie (logit margin %g; routing branches:%s), continuation not compared further", p,
                      (long long)i, double(margin), branches.positions.empty() ? " none" : qPrintable(branches.report));
                break;
            }
        }
    }

    void graphs_eager_and_host_sampling_agree_data() { add_model_rows(); }
    void graphs_eager_and_host_sampling_agree() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model.toStdString());
        const auto prompt = f.prompt(0);
        GenerationRequest request;
        request.prompt = prompt;
        request.sampling.temperature = 0;
        request.max_new_tokens = 10;
        std::vector<std::vector<int32_t>> runs;
        for (bool graphs : {true, false}) {
            CudaOptions options;
            options.cuda_graphs = graphs;
            auto backend = cuda_backend(f, options);
            QVERIFY(backend->reserve_cache(2, int64_t(prompt.size()) + 10).ok());
            auto on_gpu = generate_on_gpu(*backend, request);
            QVERIFY(on_gpu.ok());
            runs.push_back(on_gpu->tokens);
            auto on_host = generate(*backend, request);  // logits to the host, host argmax
            QVERIFY(on_host.ok());
            runs.push_back(on_host->tokens);
        }
        for (const auto& run : runs) QCOMPARE(run, runs.front());

        // Seeded sampling on the GPU is reproducible.
        auto backend = cuda_backend(f);
        QVERIFY(backend->reserve_cache(1, int64_t(prompt.size()) + 10).ok());
        request.sampling = SamplingParams{0.9, 40, 0.95, 0.02, 1.0, 1234};
        auto first = generate_on_gpu(*backend, request), second = generate_on_gpu(*backend, request);
        QVERIFY(first.ok() && second.ok());
        QCOMPARE(first->tokens, second->tokens);
    }

    void batched_decode_equals_single_sequences_data() { add_model_rows(); }
    void batched_decode_equals_single_sequences() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model.toStdString());
        const auto first = f.prompt(0);
        const auto second = f.prompts > 1 ? f.prompt(1) : std::vector<int32_t>(first.begin(), first.begin() + 7);
        auto backend = cuda_backend(f);
        const int64_t steps = 6, capacity = int64_t(std::max(first.size(), second.size())) + steps;
        QVERIFY(backend->reserve_cache(2, capacity).ok());
        const std::vector<SamplingParams> greedy(2, SamplingParams{0.0, 0, 1.0, 0.0, 1.0, 0});
        ForwardBatch prefill;
        prefill.tokens = first;
        prefill.tokens.insert(prefill.tokens.end(), second.begin(), second.end());
        prefill.chunks = {{0, 0, int64_t(first.size())}, {1, 0, int64_t(second.size())}};
        auto next = backend->forward_sampled(prefill, greedy, nullptr);
        QVERIFY(next.ok());
        std::vector<std::vector<int32_t>> together(2);
        for (int64_t step = 0; step < steps; ++step) {
            together[0].push_back((*next)[0]);
            together[1].push_back((*next)[1]);
            ForwardBatch decode;
            decode.tokens = *next;
            decode.chunks = {{0, int64_t(first.size()) + step, 1}, {1, int64_t(second.size()) + step, 1}};
            next = backend->forward_sampled(decode, greedy, nullptr);
            QVERIFY(next.ok());
        }
        int sequence = 0;
        for (const auto* prompt : {&first, &second}) {
            GenerationRequest request;
            request.prompt = *prompt;
            request.sampling.temperature = 0;
            request.max_new_tokens = steps;
            auto alone = generate_on_gpu(*backend, request);
            QVERIFY(alone.ok());
            QCOMPARE(alone->tokens, together[size_t(sequence++)]);
        }
    }

    void weight_only_int8_stays_close_data() { add_model_rows(); }
    void weight_only_int8_stays_close() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model.toStdString());
        CudaOptions options;
        options.quantisation = cuda::WeightQuantisation::Int8;
        auto backend = cuda_backend(f, options);
        const auto prompt = f.prompt(0);
        const int64_t count = int64_t(prompt.size()), vocab = f.graph->config.vocab_size;
        QVERIFY(backend->reserve_cache(1, count).ok());
        ForwardCapture capture(count);
        auto logits = backend->forward({prompt, {{0, 0, count}}, true}, &capture);
        QVERIFY(logits.ok());
        const Branches branches = routing_branches(f, reference_routing(f, 0), routing_of(capture), kRouterTie);
        QVERIFY2(branches.failure.isEmpty(), qPrintable(branches.failure));
        if (!branches.positions.empty()) qInfo("routing branched at near-ties:%s", qPrintable(branches.report));
        const auto reference = f.floats("p0.logits");
        for (int64_t t = 0; t < count; ++t) {
            if (branches.positions.count(t)) continue;
            const double c = cosine(logits->data() + t * vocab, reference.data() + t * vocab, size_t(vocab));
            QVERIFY2(c >= 0.99, qPrintable(QString("W8A16 position %1: cosine %2").arg(t).arg(c)));
        }
    }

    // W8A16 and W4A16 against the reference, over every position of the first prompt (routing branches included:
    // quantisation moves router scores by more than bf16 does): mean and lowest cosine of the logits, top-1
    // agreement, and how many greedy tokens match before the first difference. The numbers are reported; the bounds
    // only catch a broken path (a random tiny model is harder on 4-bit weights than a trained one).
    void weight_only_quantisation_accuracy_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<int>("bits");
        for (const char* name : {"dsv3-tiny", "dsv2-tiny", "qwen2-tiny", "llama-tiny"})
            for (int bits : {8, 4}) QTest::newRow(qPrintable(QString("%1 int%2").arg(name).arg(bits))) << QString(name) << bits;
    }
    void weight_only_quantisation_accuracy() {
        QFETCH(QString, model);
        QFETCH(int, bits);
        Fixture f = load_fixture(model.toStdString());
        CudaOptions options;
        options.quantisation = bits == 8 ? cuda::WeightQuantisation::Int8 : cuda::WeightQuantisation::Int4;
        auto backend = cuda_backend(f, options);
        const auto prompt = f.prompt(0);
        const int64_t count = int64_t(prompt.size()), vocab = f.graph->config.vocab_size, compared = 8;
        QVERIFY(backend->reserve_cache(1, count + compared).ok());
        auto logits = backend->forward({prompt, {{0, 0, count}}, true}, nullptr);
        QVERIFY(logits.ok());
        const auto reference = f.floats("p0.logits");
        double total = 0, lowest = 1;
        int64_t agree = 0;
        for (int64_t t = 0; t < count; ++t) {
            const double c = cosine(logits->data() + t * vocab, reference.data() + t * vocab, size_t(vocab));
            total += c;
            lowest = std::min(lowest, c);
            agree += argmax(logits->data() + t * vocab, size_t(vocab)) == argmax(reference.data() + t * vocab, size_t(vocab));
        }
        auto expected = f.reference.read_int64(prompt_key(0, ".greedy"));
        QVERIFY(expected.ok());
        GenerationRequest request;
        request.prompt = prompt;
        request.sampling.temperature = 0;
        request.max_new_tokens = compared;
        auto result = generate_on_gpu(*backend, request);
        QVERIFY(result.ok());
        int64_t matched = 0;
        while (matched < compared && result->tokens[size_t(matched)] == int32_t((*expected)[size_t(matched)])) ++matched;
        qInfo("%s int%d: logits cosine mean %.4f, lowest %.4f; top-1 agrees at %lld of %lld positions; greedy matches %lld of %lld; "
              "worst weight error %.3f (%s)",
              qPrintable(model), bits, total / double(count), lowest, (long long)agree, (long long)count, (long long)matched,
              (long long)compared, backend->worst_quantisation_error().relative_error, backend->worst_quantisation_error().matrix.c_str());
        QVERIFY2(total / double(count) >= (bits == 8 ? 0.99 : 0.8), qPrintable(QString::number(total / double(count))));
    }

    void attention_snapshot_matches_reference_data() {
        QTest::addColumn<QString>("model");
        for (const char* name : {"dsv3-tiny", "dsv2-tiny", "qwen2-tiny", "llama-tiny"}) QTest::newRow(name) << QString(name);
    }
    void attention_snapshot_matches_reference() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model.toStdString());
        auto backend = cuda_backend(f);
        const auto prompt = f.prompt(0);
        const int64_t count = int64_t(prompt.size());
        QVERIFY(backend->reserve_cache(1, count).ok());
        ForwardCapture capture(count, {0, f.graph->config.num_layers - 1});
        auto logits = backend->forward({prompt, {{0, 0, count}}, true}, &capture);
        QVERIFY(logits.ok());
        QCOMPARE(capture.attention().size(), size_t(2));
        // Rows at and after a routing branch see other keys and values in the layers above it.
        const Branches branches = routing_branches(f, reference_routing(f, 0), routing_of(capture), kRouterTie);
        QVERIFY2(branches.failure.isEmpty(), qPrintable(branches.failure));
        const int64_t rows = std::min(count, branches.first);
        if (rows < count) qInfo("attention compared for the %lld rows before a routing branch:%s", (long long)rows, qPrintable(branches.report));
        for (const auto& [layer, attention] : capture.attention()) {
            std::string name = "p0.attn.";
            name += std::to_string(layer);
            const auto reference = f.floats(name);
            QCOMPARE(attention.probabilities.size(), reference.size());
            float worst = 0;
            for (size_t i = 0; i < reference.size(); ++i)
                if (int64_t(i / size_t(count)) % count < rows)  // [heads][query][key]
                    worst = std::max(worst, std::fabs(attention.probabilities[i] - reference[i]));
            QVERIFY2(worst <= 2e-2f, qPrintable(QString("layer %1: max error %2").arg(layer).arg(worst)));
        }
        QCOMPARE(int64_t(capture.hidden().size()), f.graph->config.num_layers + 1);
    }
};

QTEST_APPLESS_MAIN(CudaFixturesTest)
#include "test_cuda_fixtures.moc"
