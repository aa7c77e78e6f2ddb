// DeepSeek-VL against transformers (tests/data/models/dsvl-tiny): the processor's pixel values from the PNG, the
// aligner's image features, the logits of a prompt with an image and its greedy continuation through the KV
// cache; and the errors for bad images, bad settings and incomplete checkpoints.
#include <QtTest>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "app/vision/image_file.h"
#include "engine/core/text_file.h"
#include "engine/runtime/generation.h"
#include "engine/vision/image_processor.h"
#include "engine/vision/image_prompt.h"
#include "engine/vision/vision_encoder.h"
#include "tests/support/fixture.h"

using namespace mwb;
using namespace mwb::testing;
namespace fs = std::filesystem;

namespace {

const std::string kModel = kFixtureModels + "dsvl-tiny";

// The decoder the CLI and the app use.
RgbImage decode(const std::string& path) {
    auto image = app::read_image_file(QString::fromStdString(path));
    if (!image) qFatal("cannot decode %s: %s", path.c_str(), image.error().message.c_str());
    return std::move(image.value());
}

void expect_error_mentions(const Error& error, std::initializer_list<const char*> parts) {
    for (const char* part : parts)
        QVERIFY2(error.message.find(part) != std::string::npos, qPrintable(QString::fromStdString(error.message) + " lacks: " + part));
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    const size_t at = text.find(from);
    if (at == std::string::npos) qFatal("'%s' not in the text", from.c_str());
    return text.replace(at, from.size(), to);
}

}  // namespace

class VisionTest : public QObject {
    Q_OBJECT

    Fixture fixture_;
    std::vector<int32_t> ids_;

    std::vector<float> features_from_reference_pixels() {
        auto encoder = VisionEncoder::load(fixture_.graph, 2);
        if (!encoder) qFatal("%s", encoder.error().message.c_str());
        auto features = encoder->encode(fixture_.floats("pixel_values"));
        if (!features) qFatal("%s", features.error().message.c_str());
        return *features;
    }

private slots:
    void initTestCase() {
        fixture_ = load_fixture("dsvl-tiny");
        const auto ids = fixture_.integers("input_ids");
        ids_.assign(ids.begin(), ids.end());
    }

    void config_describes_the_language_model_and_the_tower() {
        const ModelConfig& c = fixture_.graph->config;
        QCOMPARE(architecture_name(c.architecture), std::string("deepseek_vl"));
        QVERIFY(c.vision_language.has_value());
        QCOMPARE(architecture_name(c.vision_language->text_architecture), std::string("llama"));
        QCOMPARE(c.hidden_size, int64_t(96));
        QCOMPARE(c.rope.scaling, RopeScaling::Llama3);
        QCOMPARE(c.vision_language->image_token_id, int64_t(511));
        QCOMPARE(c.vision_language->vision.hidden_size, int64_t(64));
        QCOMPARE(c.vision_language->vision.patches_per_image(), int64_t(16));
        QCOMPARE(int64_t(fixture_.graph->layers.size()), int64_t(2));
    }

    void pixel_values_match_the_processor() {
        auto config = load_image_processor_config(kModel);
        QVERIFY2(config.ok(), config.ok() ? "" : config.error().message.c_str());
        QCOMPARE(config->size, int64_t(64));
        const RgbImage image = decode(kModel + "/test_image.png");
        QCOMPARE(image.width, 80);
        QCOMPARE(image.height, 50);
        auto pixels = preprocess_image(image, *config);
        QVERIFY2(pixels.ok(), pixels.ok() ? "" : pixels.error().message.c_str());
        const std::vector<float> expected = fixture_.floats("pixel_values");
        QCOMPARE(pixels->size(), expected.size());
        // In 8-bit levels: one level is 1/255/std of a normalised value.
        const size_t plane = expected.size() / 3;
        double worst = 0;
        int64_t off_by_one = 0;
        for (size_t i = 0; i < expected.size(); ++i) {
            const double levels = std::fabs((*pixels)[i] - expected[i]) * 255.0 * config->image_std[i / plane];
            worst = std::max(worst, levels);
            if (levels > 0.01) ++off_by_one;
        }
        qInfo("pixel values: max error %.3g levels, %lld of %zu values off", worst, static_cast<long long>(off_by_one), expected.size());
        QVERIFY2(worst <= 1.0 + 1e-3, qPrintable(QString("pixel values differ by %1 levels").arg(worst)));
    }

    void image_features_match_the_aligner() {
        const std::vector<float> features = features_from_reference_pixels();
        const float error = max_abs_difference(features, fixture_.floats("image_features"));
        qInfo("image features: max error %g", double(error));
        QVERIFY2(error <= 1e-3f, qPrintable(QString("image features max error %1").arg(error)));
    }

    void logits_with_the_image_match_reference() {
        auto batch = image_prompt_batch(ids_, 511, features_from_reference_pixels(), fixture_.graph->config.hidden_size);
        QVERIFY2(batch.ok(), batch.ok() ? "" : batch.error().message.c_str());
        QCOMPARE(int64_t(batch->embedding_overrides.rows.size()), int64_t(16));
        batch->logits_for_all_tokens = true;
        auto backend = make_cpu_backend(fixture_.graph, 2);
        QVERIFY(backend->reserve_cache(1, int64_t(ids_.size())).ok());
        auto logits = backend->forward(*batch, nullptr);
        QVERIFY2(logits.ok(), logits.ok() ? "" : logits.error().message.c_str());
        const float error = max_abs_difference(*logits, fixture_.floats("logits"));
        qInfo("logits (28 positions): max error %g", double(error));
        QVERIFY2(error <= 1e-3f, qPrintable(QString("logits max error %1").arg(error)));

        // The text before the image is plain text: the language model alone gives the same logits.
        const int64_t vocab = fixture_.graph->config.vocab_size;
        const std::vector<int32_t> text(ids_.begin(), ids_.begin() + 5);
        auto plain = backend->forward({text, {{0, 0, 5}}, true}, nullptr);
        QVERIFY(plain.ok());
        QVERIFY(max_abs_difference(*plain, std::vector<float>(logits->begin(), logits->begin() + 5 * vocab)) <= 1e-5f);
    }

    void greedy_with_the_image_through_the_kv_cache() {
        const std::vector<int64_t> expected = fixture_.integers("greedy");
        auto overrides = image_embedding_overrides(ids_, 511, features_from_reference_pixels(), fixture_.graph->config.hidden_size);
        QVERIFY(overrides.ok());
        auto backend = make_cpu_backend(fixture_.graph, 2);
        QVERIFY(backend->reserve_cache(1, int64_t(ids_.size() + expected.size())).ok());
        GenerationRequest request;
        request.prompt = ids_;
        request.prompt_embeddings = std::move(*overrides);
        request.sampling.temperature = 0;
        request.max_new_tokens = int64_t(expected.size());
        auto result = generate(*backend, request);
        QVERIFY2(result.ok(), result.ok() ? "" : result.error().message.c_str());
        QCOMPARE(std::vector<int64_t>(result->tokens.begin(), result->tokens.end()), expected);
    }

    void whole_pipeline_from_the_png() {
        auto config = load_image_processor_config(kModel);
        QVERIFY(config.ok());
        auto pixels = preprocess_image(decode(kModel + "/test_image.png"), *config);
        QVERIFY(pixels.ok());
        auto encoder = VisionEncoder::load(fixture_.graph, 2);
        QVERIFY(encoder.ok());
        QCOMPARE(encoder->image_size(), config->size);
        QCOMPARE(encoder->tokens_per_image(), int64_t(16));
        QCOMPARE(encoder->image_token_id(), 511);
        auto features = encoder->encode(*pixels);
        QVERIFY(features.ok());
        const float error = max_abs_difference(*features, fixture_.floats("image_features"));
        qInfo("image features from the PNG: max error %g", double(error));
        QVERIFY(error <= 1e-3f);
    }

    void bad_images_are_errors() {
        auto config = load_image_processor_config(kModel);
        QVERIFY(config.ok());
        auto empty = preprocess_image(RgbImage{0, 5, {}}, *config);
        QVERIFY(!empty.ok());
        expect_error_mentions(empty.error(), {"0×5", "no pixels"});
        auto huge = preprocess_image(RgbImage{20000, 20000, {}}, *config);
        QVERIFY(!huge.ok());
        expect_error_mentions(huge.error(), {"20000×20000", "megapixels"});
        auto strip_too_long = preprocess_image(RgbImage{70000, 1, {}}, *config);
        QVERIFY(!strip_too_long.ok());
        expect_error_mentions(strip_too_long.error(), {"70000×1", "65536"});
        auto short_buffer = preprocess_image(RgbImage{80, 50, std::vector<uint8_t>(100)}, *config);
        QVERIFY(!short_buffer.ok());
        expect_error_mentions(short_buffer.error(), {"100 bytes", "12000"});
        auto negative = preprocess_image(RgbImage{-3, 4, {}}, *config);
        QVERIFY(!negative.ok());

        // A one-pixel-wide strip still becomes a square of the model's size.
        auto strip = preprocess_image(RgbImage{1, 300, std::vector<uint8_t>(900, 200)}, *config);
        QVERIFY(strip.ok());
        QCOMPARE(strip->size(), size_t(3 * 64 * 64));
        ImageProcessorConfig no_floor = *config;
        no_floor.min_size = 0;
        auto vanishing = preprocess_image(RgbImage{1, 300, std::vector<uint8_t>(900, 200)}, no_floor);
        QVERIFY(!vanishing.ok());
        expect_error_mentions(vanishing.error(), {"1×300", "too thin"});
    }

    void bad_processor_settings_are_errors() {
        const std::string text = read_text_file(kModel + "/preprocessor_config.json").value();
        auto filter = parse_image_processor_config(replaced(text, "\"resample\": 3", "\"resample\": 2"));
        QVERIFY(!filter.ok());
        expect_error_mentions(filter.error(), {"preprocessor_config.json", "resample", "bicubic"});
        auto oblong = parse_image_processor_config(replaced(text, "\"width\": 64", "\"width\": 32"));
        QVERIFY(!oblong.ok());
        expect_error_mentions(oblong.error(), {"preprocessor_config.json", "size", "square"});
        auto zero_std = parse_image_processor_config(replaced(text, "0.26862954", "0"));
        QVERIFY(!zero_std.ok());
        expect_error_mentions(zero_std.error(), {"image_std", "positive"});
        auto color = parse_image_processor_config(replaced(text, "127,", "300,"));
        QVERIFY(!color.ok());
        expect_error_mentions(color.error(), {"background_color"});
        auto missing = load_image_processor_config(kFixtureModels + "llama-tiny");
        QVERIFY(!missing.ok());
        expect_error_mentions(missing.error(), {"preprocessor_config.json", "missing"});

        // Without background_color the processor pads with the mean colour, int(mean · 255).
        auto mean_colour = parse_image_processor_config(replaced(text, "\"background_color\"", "\"unused\""));
        QVERIFY(mean_colour.ok());
        QCOMPARE(int(mean_colour->background_color[0]), 122);
        QCOMPARE(int(mean_colour->background_color[2]), 104);

        auto config = parse_image_processor_config(text);
        QVERIFY(config.ok());
        config->do_pad = false;
        auto unpadded = preprocess_image(decode(kModel + "/test_image.png"), *config);
        QVERIFY(!unpadded.ok());
        expect_error_mentions(unpadded.error(), {"64×40", "do_pad"});
    }

    void image_tokens_must_match_the_features() {
        const std::vector<float> features = fixture_.floats("image_features");
        std::vector<int32_t> fewer = ids_;
        fewer[10] = 48;
        auto overrides = image_embedding_overrides(fewer, 511, features, 96);
        QVERIFY(!overrides.ok());
        expect_error_mentions(overrides.error(), {"15 image tokens", "16 feature rows"});
        auto ragged = image_prompt_batch(ids_, 511, std::vector<float>(features.begin(), features.end() - 1), 96);
        QVERIFY(!ragged.ok());
        expect_error_mentions(ragged.error(), {"1535", "96"});

        auto backend = make_cpu_backend(fixture_.graph, 2);
        QVERIFY(backend->reserve_cache(1, int64_t(ids_.size())).ok());
        ForwardBatch outside{ids_, {{0, 0, int64_t(ids_.size())}}, false, nullptr, {{28}, std::vector<float>(96)}};
        auto result = backend->forward(outside, nullptr);
        QVERIFY(!result.ok());
        expect_error_mentions(result.error(), {"row 28", "28 tokens"});
        ForwardBatch short_values{ids_, {{0, 0, int64_t(ids_.size())}}, false, nullptr, {{3}, std::vector<float>(95)}};
        QVERIFY(!backend->forward(short_values, nullptr).ok());
    }

    void bad_config_json_is_an_error() {
        const std::string text = read_text_file(kModel + "/config.json").value();
        auto patches = parse_model_config(replaced(text, "\"patch_size\": 16", "\"patch_size\": 15"));
        QVERIFY(!patches.ok());
        expect_error_mentions(patches.error(), {"config.json", "vision_config", "image_size (64)", "patch_size (15)"});
        auto token = parse_model_config(replaced(text, "\"image_token_id\": 511", "\"image_token_id\": 512"));
        QVERIFY(!token.ok());
        expect_error_mentions(token.error(), {"config.json", "image_token_id 512", "vocabulary of 512"});
        auto text_model = parse_model_config(replaced(text, "\"hidden_size\": 96", "\"hidden_size\": \"96\""));
        QVERIFY(!text_model.ok());
        expect_error_mentions(text_model.error(), {"config.json: text_config", "hidden_size", "integer"});
        auto activation = parse_model_config(replaced(text, "gelu_pytorch_tanh", "relu"));
        QVERIFY(!activation.ok());
        expect_error_mentions(activation.error(), {"vision_config", "relu"});
    }

    void missing_vision_tensor_is_named() {
        const fs::path folder = fs::path(MWB_TEST_OUTPUT) / "dsvl-missing-tensor";
        fs::remove_all(folder);
        fs::create_directories(folder);
        for (const char* file : {"config.json", "preprocessor_config.json"}) fs::copy_file(kModel + "/" + file, folder / file);
        auto store = TensorStore::open_file(kModel + "/model.safetensors");
        QVERIFY(store.ok());
        const std::string dropped = "model.vision_model.encoder.layers.1.mlp.fc2.weight";
        std::vector<TensorToWrite> tensors;
        for (const auto& [name, view] : store->tensors())
            if (name != dropped) tensors.push_back({name, view.dtype, view.shape, std::vector<uint8_t>(view.data, view.data + view.bytes)});
        QVERIFY(write_safetensors((folder / "model.safetensors").string(), tensors).ok());

        auto graph = load_model_graph(folder.string());
        QVERIFY2(graph.ok(), graph.ok() ? "" : graph.error().message.c_str());  // the language model is whole
        auto encoder = VisionEncoder::load(std::make_shared<const ModelGraph>(std::move(graph.value())));
        QVERIFY(!encoder.ok());
        expect_error_mentions(encoder.error(), {dropped.c_str(), "missing"});
    }

    void text_models_have_no_vision_tower() {
        auto graph = load_model_graph(kFixtureModels + "llama-tiny");
        QVERIFY(graph.ok());
        auto encoder = VisionEncoder::load(std::make_shared<const ModelGraph>(std::move(graph.value())));
        QVERIFY(!encoder.ok());
        expect_error_mentions(encoder.error(), {"llama", "deepseek_vl"});
    }

    void wrong_pixel_count_is_an_error() {
        auto encoder = VisionEncoder::load(fixture_.graph, 1);
        QVERIFY(encoder.ok());
        auto features = encoder->encode(std::vector<float>(3 * 32 * 32));
        QVERIFY(!features.ok());
        expect_error_mentions(features.error(), {"3×64×64", "3072"});
    }
};

QTEST_GUILESS_MAIN(VisionTest)
#include "test_vision.moc"
