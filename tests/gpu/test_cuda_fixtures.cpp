// Every fixture model on the CUDA backend against the Hugging Face reference (bf16 tolerances of the fixtures
// README): per-position cosine of the logits ≥ 0.999, top-1 agreement ≥ 98%, router indices equal wherever the
// reference's k-th vs (k+1)-th selection score margin (and its group margin) exceeds 1e-2, the greedy
// continuation equal for the first 8 tokens unless the reference itself is a near-tie there (margin reported).
// Also: CUDA graphs vs eager give the same tokens, logits vs GPU sampling agree, W8A16 stays close, attention
// snapshots match.
#include <QtTest>

#include <algorithm>
#include <functional>

#include "engine/model/model_graph.h"
#include "engine/observe/forward_capture.h"
#include "kernels/cuda_backend.h"
#include "tests/gpu/cuda_test_support.h"
#include "tests/support/fixture.h"

using namespace mwb;
using namespace mwb::testing;

namespace {

std::unique_ptr<CudaBackend> cuda_backend(const Fixture& f, CudaOptions options = {}) {
    auto backend = make_cuda_backend(f.graph, options);
    if (!backend) qFatal("%s", backend.error().message.c_str());
    return std::move(backend.value());
}

// Smallest gap between a kept and a dropped choice of the reference routing: the k-th vs (k+1)-th selection
// score, and for group-limited routing the kept vs dropped group score.
float routing_margin(const MoeConfig& m, const float* logits, const float* bias) {
    const int64_t n = m.n_routed_experts, k = m.experts_per_token;
    std::vector<int32_t> experts(static_cast<size_t>(k));
    std::vector<float> weights(static_cast<size_t>(k)), selection(static_cast<size_t>(n));
    route_token(m, logits, bias, experts.data(), weights.data(), selection.data());
    std::vector<float> sorted = selection;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    float margin = sorted[size_t(k - 1)] - sorted[size_t(k)];
    if (m.topk_method != TopkMethod::Greedy && m.n_group > 1) {
        std::vector<float> scores(static_cast<size_t>(n)), groups;
        for (int64_t e = 0; e < n; ++e)
            scores[size_t(e)] = (m.scoring == ScoringFunction::Sigmoid ? 1.0f / (1.0f + std::exp(-logits[e])) : logits[e]) +
                                (bias ? bias[e] : 0.0f);
        if (m.scoring == ScoringFunction::Softmax) {  // softmax is monotone per token, but group sums need the real scores
            const float peak = *std::max_element(scores.begin(), scores.end());
            float total = 0;
            for (auto& s : scores) total += s = std::exp(s - peak);
            for (auto& s : scores) s /= total;
        }
        const int64_t size = n / m.n_group;
        for (int64_t g = 0; g < m.n_group; ++g) {
            std::vector<float> members(scores.begin() + g * size, scores.begin() + (g + 1) * size);
            std::sort(members.begin(), members.end(), std::greater<>());
            groups.push_back(m.topk_method == TopkMethod::NoAuxTc ? members[0] + (size > 1 ? members[1] : 0.0f) : members[0]);
        }
        std::sort(groups.begin(), groups.end(), std::greater<>());
        margin = std::min(margin, groups[size_t(m.topk_group - 1)] - groups[size_t(m.topk_group)]);
    }
    return margin;
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
            const auto reference = f.floats(prefix + "logits");
            QCOMPARE(logits->size(), reference.size());
            for (int64_t t = 0; t < count; ++t) {
                const float* got = logits->data() + t * vocab;
                const float* want = reference.data() + t * vocab;
                const double c = cosine(got, want, size_t(vocab));
                QVERIFY2(c >= 0.999, qPrintable(QString("prompt %1 position %2: cosine %3").arg(p).arg(t).arg(c)));
                agreeing += argmax(got, size_t(vocab)) == argmax(want, size_t(vocab));
                ++positions;
            }

            for (int64_t layer : f.graph->moe_layers()) {
                const auto& moe = std::get<MoeWeights>(f.graph->layers[size_t(layer)].feed_forward);
                const std::string name = prefix + "router." + std::to_string(layer);
                auto indices = f.reference.read_int64(name + ".indices");
                QVERIFY(indices.ok());
                const auto router_logits = f.floats(name + ".logits");
                std::vector<float> bias;
                if (moe.score_bias) {
                    bias.resize(size_t(moe.config.n_routed_experts));
                    convert_to_float(moe.score_bias->weight.dtype, moe.score_bias->weight.data, bias.data(), bias.size());
                }
                QVERIFY(capture.routing().count(layer));
                const auto& routing = capture.routing().at(layer);
                const int64_t k = moe.config.experts_per_token, n = moe.config.n_routed_experts;
                int64_t checked = 0;
                for (int64_t t = 0; t < count; ++t) {
                    const float margin = routing_margin(moe.config, router_logits.data() + t * n, bias.empty() ? nullptr : bias.data());
                    if (margin <= 1e-2f) continue;
                    ++checked;
                    for (int64_t j = 0; j < k; ++j)
                        QVERIFY2(routing.indices[size_t(t * k + j)] == (*indices)[size_t(t * k + j)],
                                 qPrintable(QString("prompt %1 layer %2 position %3 (margin %4)").arg(p).arg(layer).arg(t).arg(margin)));
                }
                QVERIFY(checked > 0);
            }
        }
        const double agreement = double(agreeing) / double(positions);
        QVERIFY2(agreement >= 0.98, qPrintable(QString("top-1 agreement %1").arg(agreement)));
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
                // A divergence is accepted only at a near-tie of the float32 reference, measured on the CPU backend.
                std::vector<int32_t> context = prompt;
                for (int64_t j = 0; j < i; ++j) context.push_back(int32_t((*expected)[size_t(j)]));
                QVERIFY(cpu->reserve_cache(1, int64_t(context.size())).ok());
                auto logits = cpu->forward({context, {{0, 0, int64_t(context.size())}}, false}, nullptr);
                QVERIFY(logits.ok());
                const float margin = (*logits)[size_t(want)] - (*logits)[size_t(got)];
                QVERIFY2(margin < 2e-2f, qPrintable(QString("prompt %1 token %2: got %3, reference %4 ahead by %5")
                                                        .arg(p).arg(i).arg(got).arg(want).arg(margin)));
                qInfo("prompt %d token %lld: near-tie (margin %g), continuation not compared further", p, (long long)i, double(margin));
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
        options.weight_only_int8 = true;
        auto backend = cuda_backend(f, options);
        const auto prompt = f.prompt(0);
        const int64_t count = int64_t(prompt.size()), vocab = f.graph->config.vocab_size;
        QVERIFY(backend->reserve_cache(1, count).ok());
        auto logits = backend->forward({prompt, {{0, 0, count}}, true}, nullptr);
        QVERIFY(logits.ok());
        const auto reference = f.floats("p0.logits");
        for (int64_t t = 0; t < count; ++t) {
            const double c = cosine(logits->data() + t * vocab, reference.data() + t * vocab, size_t(vocab));
            QVERIFY2(c >= 0.99, qPrintable(QString("W8A16 position %1: cosine %2").arg(t).arg(c)));
        }
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
        for (const auto& [layer, attention] : capture.attention()) {
            std::string name = "p0.attn.";
            name += std::to_string(layer);
            const auto reference = f.floats(name);
            QCOMPARE(attention.probabilities.size(), reference.size());
            float worst = 0;
            for (size_t i = 0; i < reference.size(); ++i) worst = std::max(worst, std::fabs(attention.probabilities[i] - reference[i]));
            QVERIFY2(worst <= 2e-2f, qPrintable(QString("layer %1: max error %2").arg(layer).arg(worst)));
        }
        QCOMPARE(int64_t(capture.hidden().size()), f.graph->config.num_layers + 1);
    }
};

QTEST_APPLESS_MAIN(CudaFixturesTest)
#include "test_cuda_fixtures.moc"
