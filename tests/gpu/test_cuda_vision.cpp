// The DeepSeek-VL vision tower on CUDA: its kernels (LayerNorm with bias, both GELUs, the unmasked softmax)
// against hand-computed values, and CudaVisionEncoder against the dsvl-tiny fixture's image_features and the CPU
// VisionEncoder; bad input and a full GPU are errors. Also the features' way into the language model on the CUDA
// backend (embedding overrides) against the CPU backend.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/io/dtype.h"
#include "engine/runtime/generation.h"
#include "engine/vision/vision_encoder.h"
#include "kernels/cuda_backend.h"
#include "kernels/cuda_vision_encoder.h"
#include "kernels/kernels.h"
#include "kernels/vision_kernels.h"
#include "tests/gpu/cuda_test_support.h"
#include "tests/support/fixture.h"

using namespace mwb;
using namespace mwb::cuda;
using namespace mwb::testing;

namespace {

// One bf16 rounding of the result: half a unit in the last place of 8 significant bits is 2⁻⁹ relative; 2⁻⁸
// leaves room for the fp32 arithmetic before it.
constexpr float kBf16Relative = 1.0f / 256.0f;

void expect_close(const std::vector<float>& values, const std::vector<float>& expected, const char* what) {
    QCOMPARE(values.size(), expected.size());
    for (size_t i = 0; i < values.size(); ++i)
        QVERIFY2(std::fabs(values[i] - expected[i]) <= kBf16Relative * std::fabs(expected[i]) + 1e-7f,
                 qPrintable(QString("%1[%2] = %3, expected %4").arg(what).arg(i).arg(values[i], 0, 'g', 8).arg(expected[i], 0, 'g', 8)));
}

void expect_error_mentions(const Error& error, std::initializer_list<const char*> parts) {
    for (const char* part : parts)
        QVERIFY2(error.message.find(part) != std::string::npos, qPrintable(QString::fromStdString(error.message) + " lacks: " + part));
}

size_t free_device_bytes() {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) qFatal("cudaMemGetInfo failed");
    return free_bytes;
}

struct Agreement {
    double worst_row_cosine = 1, relative = 0, worst_abs = 0, reference_peak = 0;
};

// Row by row (one image token each) and over the whole [tokens, width] matrix.
Agreement compare_features(const std::vector<float>& features, const std::vector<float>& reference, int64_t width) {
    Agreement a;
    for (size_t row = 0; row * size_t(width) < reference.size(); ++row)
        a.worst_row_cosine = std::min(a.worst_row_cosine, cosine(features.data() + row * width, reference.data() + row * width, size_t(width)));
    a.relative = relative_error(features, reference);
    for (size_t i = 0; i < reference.size(); ++i) {
        a.worst_abs = std::max(a.worst_abs, double(std::fabs(features[i] - reference[i])));
        a.reference_peak = std::max(a.reference_peak, double(std::fabs(reference[i])));
    }
    return a;
}

// The bf16 path against float32 numbers. bf16 keeps 8 significant bits (2⁻⁹ relative per rounding); the tower
// rounds its activations at every GEMM input (normed rows, q/k/v, probabilities, fc1's output, the aligner's inner
// rows), about ten roundings deep, and cuBLAS sums in another order. Measured on dsvl-tiny (emulated): cosine
// ≥ 0.99997 per row, 0.5% relative error, max abs error 0.4% of the largest feature. The bounds leave at least 4×
// margin: per row cosine ≥ 0.999 (the fixtures README's bf16 bar), 2% relative error over the matrix, and no value
// off by more than 3% of the largest feature.
void expect_bf16_agreement(const Agreement& a, const char* against) {
    qInfo("%s: worst row cosine %.6f, relative error %.3g, max abs error %.3g (largest |feature| %.3g)", against, a.worst_row_cosine,
          a.relative, a.worst_abs, a.reference_peak);
    QVERIFY2(a.worst_row_cosine >= 0.999, qPrintable(QString("%1: a row's cosine is %2").arg(against).arg(a.worst_row_cosine)));
    QVERIFY2(a.relative <= 0.02, qPrintable(QString("%1: relative error %2").arg(against).arg(a.relative)));
    QVERIFY2(a.worst_abs <= 0.03 * a.reference_peak, qPrintable(QString("%1: max abs error %2").arg(against).arg(a.worst_abs)));
}

}  // namespace

class CudaVisionTest : public QObject {
    Q_OBJECT

    Fixture fixture_;

    std::unique_ptr<CudaVisionEncoder> load_encoder() {
        auto encoder = CudaVisionEncoder::load(fixture_.graph);
        if (!encoder) qFatal("%s", encoder.error().message.c_str());
        return std::move(encoder.value());
    }

private slots:
    void initTestCase() {
        require_cuda_device();
        fixture_ = load_fixture("dsvl-tiny");
    }

    void row_softmax_sees_every_key() {
        // Two rows of three keys: exp(scores) ∝ 1, 2, 3 and equal scores.
        const float ln2 = std::log(2.0f), ln3 = std::log(3.0f);
        DeviceArray<float> scores(std::vector<float>{0.0f, ln2, ln3, 5.0f, 5.0f, 5.0f});
        DeviceArray<uint16_t> probabilities(6);
        row_softmax(scores.get(), as_bf16(probabilities), 2, 3, nullptr);
        expect_close(from_bf16(probabilities.download()), {1 / 6.0f, 2 / 6.0f, 3 / 6.0f, 1 / 3.0f, 1 / 3.0f, 1 / 3.0f}, "small");

        // One row wider than a block: 2, then 298 ones, then 3 (the last key, which a causal mask would hide).
        const int64_t keys = 300;
        std::vector<float> wide(size_t(keys), 0.0f);
        wide.front() = ln2, wide.back() = ln3;
        DeviceArray<float> wide_scores(wide);
        DeviceArray<uint16_t> wide_probabilities{size_t(keys)};
        row_softmax(wide_scores.get(), as_bf16(wide_probabilities), 1, keys, nullptr);
        std::vector<float> expected(size_t(keys), 1 / 303.0f);
        expected.front() = 2 / 303.0f, expected.back() = 3 / 303.0f;
        expect_close(from_bf16(wide_probabilities.download()), expected, "wide");
    }

    void layer_norm_matches_hand_computed_values() {
        // x = [0.5, 1.5, 2.5, 3.5] + delta 0.5 = [1, 2, 3, 4]: mean 2.5, variance 1.25; with eps 0.25,
        // 1/sqrt(1.5) = 0.8164966, so normalised [-1.2247449, -0.4082483, 0.4082483, 1.2247449].
        DeviceArray<float> x(std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f});
        DeviceArray<uint16_t> delta(to_bf16({0.5f, 0.5f, 0.5f, 0.5f}));
        DeviceArray<float> weight(std::vector<float>{1.0f, 1.0f, 2.0f, 0.5f}), bias(std::vector<float>{0.0f, 1.0f, 0.0f, -1.0f});
        DeviceArray<uint16_t> out(4);
        add_layer_norm(x.get(), as_bf16(delta), weight.get(), bias.get(), 1, 4, 0.25f, as_bf16(out), nullptr);
        expect_close(from_bf16(out.download()), {-1.2247449f, 0.5917517f, 0.8164966f, -0.3876276f}, "normed");
        QCOMPARE(x.download(), (std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f}));  // the residual add stays in x

        // Two rows wider than a block, no delta: ±1 alternating (mean 0, variance 1) and ±3 + 10 (mean 10,
        // variance 9); with eps 0 both normalise to ±1, then ·2 + 0.5.
        const int64_t width = 1000;
        std::vector<float> rows(size_t(2 * width));
        std::vector<float> expected(rows.size());
        for (int64_t i = 0; i < width; ++i) {
            const float sign = i % 2 ? -1.0f : 1.0f;
            rows[size_t(i)] = sign, rows[size_t(width + i)] = 10.0f + 3.0f * sign;
            expected[size_t(i)] = expected[size_t(width + i)] = 2.0f * sign + 0.5f;
        }
        DeviceArray<float> wide(rows);
        DeviceArray<float> wide_weight(std::vector<float>(size_t(width), 2.0f)), wide_bias(std::vector<float>(size_t(width), 0.5f));
        DeviceArray<uint16_t> wide_out(rows.size());
        add_layer_norm(wide.get(), nullptr, wide_weight.get(), wide_bias.get(), 2, width, 0.0f, as_bf16(wide_out), nullptr);
        expect_close(from_bf16(wide_out.download()), expected, "wide");
        QCOMPARE(wide.download(), rows);
    }

    void add_rows_adds_a_table_or_one_row_to_every_row() {
        DeviceArray<float> x(std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f});
        DeviceArray<float> table(std::vector<float>{0.5f, 0.25f, 0.125f, -1.0f, -2.0f, -3.0f});
        add_rows(x.get(), table.get(), 3, 2, 3, nullptr);
        QCOMPARE(x.download(), (std::vector<float>{1.5f, 2.25f, 3.125f, 3.0f, 3.0f, 3.0f}));
        add_rows(x.get(), table.get(), 0, 2, 3, nullptr);  // the first row, as a bias
        QCOMPARE(x.download(), (std::vector<float>{2.0f, 2.5f, 3.25f, 3.5f, 3.25f, 3.125f}));
    }

    void gelus_match_hand_computed_values() {
        // 0.5·x·(1 + erf(x/√2)) and 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); they differ by 45% at −4 and
        // 10% at −3, far beyond bf16's rounding, so the test tells them apart.
        const std::vector<float> x = {-4.0f, -3.0f, -2.5f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 2.0f, 3.0f};
        const std::vector<float> erf_gelu = {-0.000126685f, -0.004049694f, -0.01552416f, -0.1586553f, -0.1542688f,
                                             0.0f,          0.3457312f,    0.8413447f,   1.9545f,     2.99595f};
        const std::vector<float> tanh_gelu = {-7.024595e-05f, -0.003637392f, -0.01508427f, -0.158808f, -0.154286f,
                                              0.0f,           0.345714f,     0.841192f,    1.954598f,  2.996363f};
        DeviceArray<uint16_t> in(to_bf16(x)), out(x.size());
        gelu(as_bf16(in), as_bf16(out), int64_t(x.size()), Gelu::Tanh, nullptr);
        expect_close(from_bf16(out.download()), tanh_gelu, "tanh, out of place");
        QCOMPARE(from_bf16(in.download()), x);
        gelu(as_bf16(in), as_bf16(in), int64_t(x.size()), Gelu::Erf, nullptr);
        expect_close(from_bf16(in.download()), erf_gelu, "erf, in place");
    }

    void describes_the_image_as_the_cpu_encoder_does() {
        auto cpu = VisionEncoder::load(fixture_.graph, 1);
        QVERIFY(cpu.ok());
        const auto encoder = load_encoder();
        QCOMPARE(encoder->image_size(), cpu->image_size());
        QCOMPARE(encoder->tokens_per_image(), cpu->tokens_per_image());
        QCOMPARE(encoder->feature_width(), cpu->feature_width());
        QCOMPARE(encoder->image_token_id(), cpu->image_token_id());
    }

    void image_features_match_the_reference_and_the_cpu_encoder() {
        const std::vector<float> pixels = fixture_.floats("pixel_values");
        const auto encoder = load_encoder();
        auto features = encoder->encode(pixels);
        QVERIFY2(features.ok(), features.ok() ? "" : features.error().message.c_str());
        const std::vector<float> reference = fixture_.floats("image_features");
        QCOMPARE(features->size(), size_t(encoder->tokens_per_image() * encoder->feature_width()));
        expect_bf16_agreement(compare_features(*features, reference, encoder->feature_width()), "vs reference image_features");

        auto cpu = VisionEncoder::load(fixture_.graph, 2);
        QVERIFY(cpu.ok());
        auto cpu_features = cpu->encode(pixels);
        QVERIFY(cpu_features.ok());
        expect_bf16_agreement(compare_features(*features, *cpu_features, encoder->feature_width()), "vs the CPU VisionEncoder");

        // The workspace carries nothing from one image to the next.
        auto again = encoder->encode(pixels);
        QVERIFY(again.ok());
        QCOMPARE(*again, *features);
    }

    // dsvl-tiny's language model has head_dim 24, which the CUDA decode attention does not take (multiples of 16;
    // real DeepSeek-VL models have 128), so the features' path into a language model is checked on llama-tiny, the
    // same architecture: rows given in place of token embeddings (three runs, one straddling micro-batches) against
    // the CPU backend, whose own overrides test_vision checks against the fixture.
    void embedding_overrides_match_the_cpu_backend() {
        Fixture text = load_fixture("llama-tiny");
        const std::vector<int32_t> ids = text.prompt(0);
        const int64_t count = int64_t(ids.size()), hidden = text.graph->config.hidden_size, vocab = text.graph->config.vocab_size;
        EmbeddingOverrides overrides;
        overrides.rows = {1, 2, 3, 6, 7, 8, 9, 10, 11, count - 2};
        std::mt19937 random(5);
        std::normal_distribution<float> normal(0.0f, 0.5f);
        overrides.values.resize(overrides.rows.size() * size_t(hidden));
        for (float& v : overrides.values) v = normal(random);
        const ForwardBatch batch{ids, {{0, 0, count}}, true, nullptr, overrides};

        auto cpu = make_cpu_backend(text.graph, 2);
        QVERIFY(cpu->reserve_cache(1, count).ok());
        auto reference = cpu->forward(batch, nullptr);
        QVERIFY(reference.ok());
        auto plain = cpu->forward({ids, {{0, 0, count}}, true}, nullptr);
        QVERIFY(plain.ok());
        for (int64_t rows : {int64_t(1024), int64_t(8)}) {
            CudaOptions options;
            options.max_batch_tokens = rows;
            auto backend = make_cuda_backend(text.graph, options);
            QVERIFY2(backend.ok(), backend.ok() ? "" : backend.error().message.c_str());
            QVERIFY((*backend)->reserve_cache(1, count).ok());
            auto logits = (*backend)->forward(batch, nullptr);
            QVERIFY2(logits.ok(), logits.ok() ? "" : logits.error().message.c_str());
            QCOMPARE(logits->size(), reference->size());
            for (int64_t t = 0; t < count; ++t) {
                const double c = cosine(logits->data() + t * vocab, reference->data() + t * vocab, size_t(vocab));
                QVERIFY2(c >= 0.999, qPrintable(QString("%1-row micro-batches, position %2: cosine %3").arg(rows).arg(t).arg(c)));
            }
            const double error = relative_error(*logits, *reference), effect = relative_error(*plain, *reference);
            qInfo("%lld-row micro-batches: relative error %.2e; the overrides move the logits by %.2e", (long long)rows, error, effect);
            QVERIFY(effect > 10 * error);
        }

        // Through generation: the prompt's overrides in the prefill, then plain decoding.
        GenerationRequest request;
        request.prompt = ids;
        request.prompt_embeddings = overrides;
        request.sampling.temperature = 0;
        request.max_new_tokens = 6;
        QVERIFY(cpu->reserve_cache(1, count + 6).ok());
        auto expected = generate(*cpu, request);
        QVERIFY(expected.ok());
        auto backend = make_cuda_backend(text.graph);
        QVERIFY(backend.ok());
        QVERIFY((*backend)->reserve_cache(1, count + 6).ok());
        auto result = generate_on_gpu(**backend, request);
        QVERIFY2(result.ok(), result.ok() ? "" : result.error().message.c_str());
        QCOMPARE(result->tokens, expected->tokens);

        EmbeddingOverrides outside = overrides;
        outside.rows.back() = count;
        auto refused = (*backend)->forward({ids, {{0, 0, count}}, false, nullptr, outside}, nullptr);
        QVERIFY(!refused.ok());
        expect_error_mentions(refused.error(), {"embedding override row", "outside the"});
    }

    void wrong_pixel_count_is_an_error() {
        const auto encoder = load_encoder();
        auto features = encoder->encode(std::vector<float>(3 * 32 * 32));
        QVERIFY(!features.ok());
        expect_error_mentions(features.error(), {"3×64×64", "12288", "3072"});
    }

    void text_models_have_no_vision_tower() {
        auto graph = load_model_graph(kFixtureModels + "llama-tiny");
        QVERIFY(graph.ok());
        auto encoder = CudaVisionEncoder::load(std::make_shared<const ModelGraph>(std::move(graph.value())));
        QVERIFY(!encoder.ok());
        expect_error_mentions(encoder.error(), {"llama", "deepseek_vl"});
    }

    void a_full_gpu_fails_the_load_cleanly_and_a_second_load_works() {
        // Leave 4 MiB free: the tiny tower's weights fit, its 32 MiB cuBLAS workspace does not.
        const size_t baseline = free_device_bytes(), keep = size_t(4) << 20;
        QVERIFY(baseline > keep);
        void* hog = nullptr;
        QCOMPARE(cudaMalloc(&hog, baseline - keep), cudaSuccess);
        auto failed = CudaVisionEncoder::load(fixture_.graph);
        QVERIFY(!failed.ok());
        expect_error_mentions(failed.error(), {"out of GPU memory", "needs", "free"});
        QCOMPARE(cudaFree(hog), cudaSuccess);
        // Nothing stays allocated (up to a GPU driver's 2 MiB allocation granularity; exact under the emulator).
        QVERIFY(free_device_bytes() + (size_t(2) << 20) >= baseline);
        QVERIFY(CudaVisionEncoder::load(fixture_.graph).ok());
    }
};

QTEST_APPLESS_MAIN(CudaVisionTest)
#include "test_cuda_vision.moc"
