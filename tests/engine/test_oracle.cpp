// The CPU engine against the Hugging Face reference outputs in tests/data/models (../shared/fixtures):
// logits, every hidden state, router choices, attention probabilities, greedy continuation through the
// KV cache, and batched prefill.
#include <QtTest>

#include <cmath>

#include "engine/model/model_graph.h"
#include "engine/observe/forward_capture.h"
#include "engine/runtime/generation.h"

using namespace mwb;

namespace {

const QString kModels = QStringLiteral(MWB_TEST_DATA "/models/");

struct Fixture {
    std::shared_ptr<const ModelGraph> graph;
    TensorStore reference;
    int prompts = 0;
};

Fixture load_fixture(const QString& name) {
    const std::string dir = (kModels + name).toStdString();
    auto graph = load_model_graph(dir);
    if (!graph) qFatal("%s", graph.error().message.c_str());
    auto reference = TensorStore::open_file(dir + "/reference.safetensors");
    if (!reference) qFatal("%s", reference.error().message.c_str());
    Fixture f{std::make_shared<const ModelGraph>(std::move(graph.value())), std::move(reference.value()), 0};
    while (f.reference.contains("p" + std::to_string(f.prompts) + ".input_ids")) ++f.prompts;
    return f;
}

std::vector<int32_t> prompt_of(const Fixture& f, int p) {
    auto ids = f.reference.read_int64("p" + std::to_string(p) + ".input_ids");
    if (!ids) qFatal("%s", ids.error().message.c_str());
    return {ids->begin(), ids->end()};
}

float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
    return worst;
}

std::vector<float> reference_floats(const Fixture& f, const std::string& name) {
    auto values = f.reference.read_float(name, {});
    if (!values) qFatal("%s", values.error().message.c_str());
    return *values;
}

void add_model_rows() {
    QTest::addColumn<QString>("model");
    for (const char* name : {"dsv3-tiny", "dsv2-tiny", "qwen2-tiny", "llama-tiny", "dsv3-fp8-tiny"}) QTest::newRow(name) << QString(name);
}

}  // namespace

class OracleTest : public QObject {
    Q_OBJECT

private slots:
    void forward_matches_reference_data() { add_model_rows(); }
    void forward_matches_reference() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model);
        QVERIFY(f.prompts > 0);
        for (int p = 0; p < f.prompts; ++p) {
            const std::string prefix = "p" + std::to_string(p) + ".";
            const auto prompt = prompt_of(f, p);
            const int64_t count = int64_t(prompt.size());
            auto backend = make_cpu_backend(f.graph, 2);
            QVERIFY(backend->reserve_cache(1, count).ok());
            std::set<int64_t> all_layers;
            for (int64_t l = 0; l < f.graph->config.num_layers; ++l) all_layers.insert(l);
            ForwardCapture capture(count, all_layers);
            auto logits = backend->forward({prompt, {{0, 0, count}}, true}, &capture);
            QVERIFY2(logits.ok(), logits.ok() ? "" : logits.error().message.c_str());

            const float logit_error = max_abs_difference(*logits, reference_floats(f, prefix + "logits"));
            QVERIFY2(logit_error <= 1e-3f, qPrintable(QString("prompt %1 logits max error %2").arg(p).arg(logit_error)));

            for (const auto& [index, values] : capture.hidden()) {
                const float error = max_abs_difference(values, reference_floats(f, prefix + "hidden." + std::to_string(index)));
                QVERIFY2(error <= 1e-3f, qPrintable(QString("prompt %1 hidden.%2 max error %3").arg(p).arg(index).arg(error)));
            }
            QCOMPARE(int64_t(capture.hidden().size()), f.graph->config.num_layers + 1);

            int routed_layers = 0;
            for (const auto& [layer, routing] : capture.routing()) {
                const std::string name = prefix + "router." + std::to_string(layer);
                auto indices = f.reference.read_int64(name + ".indices");
                QVERIFY(indices.ok());
                QCOMPARE(routing.indices, *indices);
                const float error = max_abs_difference(routing.weights, reference_floats(f, name + ".weights"));
                QVERIFY2(error <= 1e-5f, qPrintable(QString("prompt %1 router.%2 weights max error %3").arg(p).arg(layer).arg(error)));
                ++routed_layers;
            }
            QCOMPARE(routed_layers, int(f.graph->moe_layers().size()));

            for (const auto& [layer, attention] : capture.attention()) {
                const std::string name = prefix + "attn." + std::to_string(layer);
                if (!f.reference.contains(name)) continue;
                const float error = max_abs_difference(attention.probabilities, reference_floats(f, name));
                QVERIFY2(error <= 1e-5f, qPrintable(QString("prompt %1 attn.%2 max error %3").arg(p).arg(layer).arg(error)));
            }
        }
    }

    void greedy_with_kv_cache_matches_reference_data() { add_model_rows(); }
    void greedy_with_kv_cache_matches_reference() {
        QFETCH(QString, model);
        Fixture f = load_fixture(model);
        for (int p = 0; p < f.prompts; ++p) {
            const auto prompt = prompt_of(f, p);
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
        Fixture f = load_fixture(model);
        // A fixture with one prompt batches it with a shorter copy of itself.
        const auto first = prompt_of(f, 0);
        const auto second = f.prompts > 1 ? prompt_of(f, 1) : std::vector<int32_t>(first.begin(), first.begin() + 7);
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
