// The CPU engine against the Hugging Face reference outputs in tests/data/models (../shared/fixtures):
// logits, every hidden state, router choices, attention probabilities, greedy continuation through the
// KV cache, and batched prefill.
#include <QtTest>

#include <cstdint>

#include "engine/observe/forward_capture.h"
#include "engine/runtime/generation.h"
#include "tests/support/fixture.h"

using namespace mwb;
using namespace mwb::testing;

class OracleTest : public QObject {
    Q_OBJECT

private slots:
    void forward_matches_reference_data() { add_model_rows(); }
    void forward_matches_reference() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model.toStdString());
        QVERIFY(f.prompts > 0);
        for (int p = 0; p < f.prompts; ++p) {
            const std::string prefix = "p" + std::to_string(p) + ".";
            const auto prompt = f.prompt(p);
            const int64_t count = int64_t(prompt.size());
            auto backend = make_cpu_backend(f.graph, 2);
            QVERIFY(backend->reserve_cache(1, count).ok());
            std::set<int64_t> all_layers;
            for (int64_t l = 0; l < f.graph->config.num_layers; ++l) all_layers.insert(l);
            ForwardCapture capture(count, all_layers);
            auto logits = backend->forward({prompt, {{0, 0, count}}, true}, &capture);
            QVERIFY2(logits.ok(), logits.ok() ? "" : logits.error().message.c_str());

            const float logit_error = max_abs_difference(*logits, f.floats(prefix + "logits"));
            QVERIFY2(logit_error <= 1e-3f, qPrintable(QString("prompt %1 logits max error %2").arg(p).arg(logit_error)));

            for (const auto& [index, values] : capture.hidden()) {
                const float error = max_abs_difference(values, f.floats(prefix + "hidden." + std::to_string(index)));
                QVERIFY2(error <= 1e-3f, qPrintable(QString("prompt %1 hidden.%2 max error %3").arg(p).arg(index).arg(error)));
            }
            QCOMPARE(int64_t(capture.hidden().size()), f.graph->config.num_layers + 1);

            int routed_layers = 0;
            for (const auto& [layer, routing] : capture.routing()) {
                const std::string name = prefix + "router." + std::to_string(layer);
                auto indices = f.reference.read_int64(name + ".indices");
                QVERIFY(indices.ok());
                QCOMPARE(routing.indices, *indices);
                const float error = max_abs_difference(routing.weights, f.floats(name + ".weights"));
                QVERIFY2(error <= 1e-5f, qPrintable(QString("prompt %1 router.%2 weights max error %3").arg(p).arg(layer).arg(error)));
                ++routed_layers;
            }
            QCOMPARE(routed_layers, int(f.graph->moe_layers().size()));

            for (const auto& [layer, attention] : capture.attention()) {
                const std::string name = prefix + "attn." + std::to_string(layer);
                if (!f.reference.contains(name)) continue;
                const float error = max_abs_difference(attention.probabilities, f.floats(name));
                QVERIFY2(error <= 1e-5f, qPrintable(QString("prompt %1 attn.%2 max error %3").arg(p).arg(layer).arg(error)));
            }
        }
    }

    void greedy_with_kv_cache_matches_reference_data() { add_model_rows(); }
    void greedy_with_kv_cache_matches_reference() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model.toStdString());
        for (int p = 0; p < f.prompts; ++p) {
            const auto prompt = f.prompt(p);
            auto expected = f.reference.read_int64("p" + std::to_string(p) + ".greedy");
            QVERIFY(expected.ok());
            auto backend = make_cpu_backend(f.graph, 2);
            QVERIFY(backend->reserve_cache(1, int64_t(prompt.size() + expected->size())).ok());
            GenerationRequest request;
            request.prompt = prompt;
            request.sampling.temperature = 0;
            request.max_new_tokens = int64_t(expected->size());
            auto result = generate(*backend, request);
            QVERIFY(result.ok());
            QCOMPARE(std::vector<int64_t>(result->tokens.begin(), result->tokens.end()), *expected);
        }
    }

    void batched_prefill_equals_separate_runs_data() { add_model_rows(); }
    void batched_prefill_equals_separate_runs() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model.toStdString());
        // A fixture with one prompt batches it with a shorter copy of itself.
        const auto first = f.prompt(0);
        const auto second = f.prompts > 1 ? f.prompt(1) : std::vector<int32_t>(first.begin(), first.begin() + 7);
        auto backend = make_cpu_backend(f.graph, 2);
        const int64_t capacity = int64_t(std::max(first.size(), second.size()));
        QVERIFY(backend->reserve_cache(2, capacity).ok());
        ForwardBatch batch;
        batch.tokens = first;
        batch.tokens.insert(batch.tokens.end(), second.begin(), second.end());
        batch.chunks = {{0, 0, int64_t(first.size())}, {1, 0, int64_t(second.size())}};
        batch.logits_for_all_tokens = true;
        auto together = backend->forward(batch, nullptr);
        QVERIFY(together.ok());

        const int64_t vocab = f.graph->config.vocab_size;
        size_t offset = 0;
        for (const auto* prompt : {&first, &second}) {
            auto single = make_cpu_backend(f.graph, 2);
            QVERIFY(single->reserve_cache(1, int64_t(prompt->size())).ok());
            auto alone = single->forward({*prompt, {{0, 0, int64_t(prompt->size())}}, true}, nullptr);
            QVERIFY(alone.ok());
            std::vector<float> slice(together->begin() + long(offset), together->begin() + long(offset + prompt->size() * size_t(vocab)));
            QVERIFY(max_abs_difference(slice, *alone) <= 1e-5f);
            offset += prompt->size() * size_t(vocab);
        }
    }
};

QTEST_APPLESS_MAIN(OracleTest)
#include "test_oracle.moc"
