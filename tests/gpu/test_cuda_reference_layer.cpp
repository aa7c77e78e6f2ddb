// CPU vs CUDA on one random-weight decoder layer of the benchmark's reference shape (hidden 2048, 16 heads, MLA with
// q_lora 1536 / kv_lora 512, 64 routed experts top-6 with sigmoid group-limited routing, 2 shared experts), vocabulary
// cut to 8192 to keep the CPU side short. Stated bf16 tolerances: hidden state after the layer and logits within 2%
// relative L2 error, logits cosine ≥ 0.999 per position, router indices equal where the CPU's selection margin
// exceeds 1e-2; the same after 4 decoded tokens (absorbed MLA over the latent cache, CUDA graphs).
#include <QtTest>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>

#include "engine/model/model_graph.h"
#include "engine/model/random_weights.h"
#include "engine/observe/forward_capture.h"
#include "kernels/cuda_backend.h"
#include "tests/gpu/cuda_test_support.h"

using namespace mwb;
using namespace mwb::testing;

class CudaReferenceLayerTest : public QObject {
    Q_OBJECT

private slots:
    void initTestCase() { require_cuda_device(); }

    void one_mla_moe_layer_agrees_with_the_cpu() {
        ModelConfig config = reference_shape_v3_16b(1);
        config.moe->first_k_dense_replace = 0;  // the one layer is MLA + MoE
        config.vocab_size = 8192;
        auto store = TensorStore::from_memory(random_weights(config, 3));
        QVERIFY(store.ok());
        auto built = build_model_graph(config, std::make_shared<const TensorStore>(std::move(store.value())));
        QVERIFY2(built.ok(), built.ok() ? "" : built.error().message.c_str());
        auto graph = std::make_shared<const ModelGraph>(std::move(built.value()));

        const int64_t prompt_length = 64, decoded = 4, vocab = config.vocab_size;
        std::mt19937 random(17);
        std::vector<int32_t> tokens;
        for (int64_t i = 0; i < prompt_length + decoded; ++i) tokens.push_back(int32_t(random() % uint32_t(vocab)));

        auto cpu = make_cpu_backend(graph, 0);
        auto made = make_cuda_backend(graph);
        QVERIFY2(made.ok(), made.ok() ? "" : made.error().message.c_str());
        auto& cuda = *made.value();
        QVERIFY(cpu->reserve_cache(1, prompt_length + decoded).ok());
        QVERIFY(cuda.reserve_cache(1, prompt_length + decoded).ok());

        // Prompt: every position's logits and hidden states.
        const std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + prompt_length);
        ForwardCapture cpu_capture(prompt_length), cuda_capture(prompt_length);
        auto cpu_logits = cpu->forward({prompt, {{0, 0, prompt_length}}, true}, &cpu_capture);
        auto cuda_logits = cuda.forward({prompt, {{0, 0, prompt_length}}, true}, &cuda_capture);
        QVERIFY(cpu_logits.ok() && cuda_logits.ok());
        for (int64_t index : {int64_t(0), int64_t(1)}) {
            const double error = relative_error(cuda_capture.hidden().at(index), cpu_capture.hidden().at(index));
            QVERIFY2(error < 2e-2, qPrintable(QString("hidden.%1 relative error %2").arg(index).arg(error)));
        }
        const double logit_error = relative_error(*cuda_logits, *cpu_logits);
        QVERIFY2(logit_error < 2e-2, qPrintable(QString("prompt logits relative error %1").arg(logit_error)));
        for (int64_t t = 0; t < prompt_length; ++t)
            QVERIFY(cosine(cuda_logits->data() + t * vocab, cpu_logits->data() + t * vocab, size_t(vocab)) >= 0.999);

        const auto& moe = std::get<MoeWeights>(graph->layers[0].feed_forward);
        std::vector<float> bias(size_t(config.moe->n_routed_experts));
        convert_to_float(moe.score_bias->weight.dtype, moe.score_bias->weight.data, bias.data(), bias.size());
        const auto& cpu_routing = cpu_capture.routing().at(0);
        const auto& cuda_routing = cuda_capture.routing().at(0);
        const int64_t k = config.moe->experts_per_token, n = config.moe->n_routed_experts;
        int64_t checked = 0;
        for (int64_t t = 0; t < prompt_length; ++t) {
            std::vector<int32_t> chosen(static_cast<size_t>(k));
            std::vector<float> weights(static_cast<size_t>(k)), selection(static_cast<size_t>(n));
            route_token(*config.moe, cpu_routing.logits.data() + t * n, bias.data(), chosen.data(), weights.data(), nullptr, selection.data());
            std::sort(selection.begin(), selection.end(), std::greater<>());
            if (selection[size_t(k - 1)] - selection[size_t(k)] <= 1e-2f) continue;
            ++checked;
            for (int64_t j = 0; j < k; ++j) QCOMPARE(cuda_routing.indices[size_t(t * k + j)], cpu_routing.indices[size_t(t * k + j)]);
        }
        qInfo("router indices compared at %lld of %lld positions", (long long)checked, (long long)prompt_length);

        // Decode: one token at a time through each backend's cache.
        for (int64_t i = 0; i < decoded; ++i) {
            const int64_t position = prompt_length + i;
            const ForwardBatch step{{tokens[size_t(position)]}, {{0, position, 1}}, false};
            auto a = cpu->forward(step, nullptr);
            auto b = cuda.forward(step, nullptr);
            QVERIFY(a.ok() && b.ok());
            const double error = relative_error(*b, *a);
            QVERIFY2(error < 2e-2, qPrintable(QString("decode %1 logits relative error %2").arg(i).arg(error)));
            QVERIFY(cosine(b->data(), a->data(), size_t(vocab)) >= 0.999);
        }
    }
};

QTEST_APPLESS_MAIN(CudaReferenceLayerTest)
#include "test_cuda_reference_layer.moc"
