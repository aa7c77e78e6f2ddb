// Images in chat requests (OpenAI's image_url parts with base64 data URLs) on a served DeepSeek-VL model:
// dsvl-tiny with a byte-level tokenizer whose token 511 is "<image_placeholder>". The reply equals what the
// engine generates for the same prompt and image through generate() (whose image path test_vision checks
// against transformers); bad images, URLs the server would have to fetch, and a model that cannot see are 400s
// that say what is wrong.
#include <QtTest>

#include <QFile>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "app/vision/image_file.h"
#include "engine/runtime/chat_prompt.h"
#include "engine/runtime/generation.h"
#include "engine/vision/image_processor.h"
#include "engine/vision/image_prompt.h"
#include "engine/vision/vision_encoder.h"
#include "tests/server/server_support.h"
#include "tests/support/byte_tokenizer.h"

using namespace mwb;
using namespace mwb::serve;
using namespace mwb::serve::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kFixture = fs::path(MWB_TEST_DATA) / "models" / "dsvl-tiny";
const QString kImage = QString::fromStdString((kFixture / "test_image.png").string());

// dsvl-tiny beside a tokenizer.json of its own (the fixture ships none).
std::string served_folder() {
    const fs::path folder = fs::path(MWB_TEST_OUTPUT) / "dsvl-served";
    fs::create_directories(folder);
    for (const char* file : {"config.json", "model.safetensors", "preprocessor_config.json"}) {
        fs::remove(folder / file);
        fs::create_symlink(kFixture / file, folder / file);
    }
    std::ofstream(folder / "tokenizer.json") << mwb::testing::byte_level_tokenizer({{511, "<image_placeholder>"}}).dump();
    return folder.string();
}

std::string data_url(const QString& path) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) qFatal("cannot read %s", qPrintable(path));
    return "data:image/png;base64," + file.readAll().toBase64().toStdString();
}

json image_chat(const std::string& url, const std::string& text, int64_t max_tokens) {
    const json content = json::array({{{"type", "text"}, {"text", text}}, {{"type", "image_url"}, {"image_url", {{"url", url}}}}});
    return {{"model", "test-model"},
            {"messages", json::array({{{"role", "user"}, {"content", content}}})},
            {"max_tokens", max_tokens},
            {"temperature", 0}};
}

}  // namespace

class ServerImagesTest : public QObject {
    Q_OBJECT

private slots:
    void chat_with_an_image_equals_the_engine_with_it() {
        const std::string folder = served_folder();
        auto running = start_server(folder, "", scheduler_with(2, 2, 128), {}, app::read_base64_image);
        const auto client = running->client();
        const ClientResponse response = client.post("/v1/chat/completions", image_chat(data_url(kImage), "What is this?", 6).dump());
        QCOMPARE(response.status, 200);
        const json body = json::parse(response.body);

        // The engine alone: the placeholder before the text, expanded to the image's tokens with its features.
        auto tokenizer = tok::Tokenizer::load(folder);
        QVERIFY(tokenizer);
        auto ids = chat_prompt_ids(*tokenizer, {{"user", "<image_placeholder>What is this?", {}, {}, tok::TemplateJson::object()}});
        QVERIFY(ids);
        auto graph = load_model_graph(folder);
        QVERIFY(graph);
        auto shared = std::make_shared<const ModelGraph>(std::move(graph.value()));
        auto encoder = VisionEncoder::load(shared, 2);
        QVERIFY(encoder);
        auto prompt = expand_image_placeholders(*ids, 511, encoder->tokens_per_image());
        QVERIFY(prompt);
        auto image = app::read_image_file(kImage);
        auto processor = load_image_processor_config(folder);
        QVERIFY(image && processor);
        auto pixels = preprocess_image(*image, *processor);
        QVERIFY(pixels);
        auto features = encoder->encode(*pixels);
        QVERIFY(features);
        GenerationRequest request;
        request.prompt = *prompt;
        auto overrides = image_embedding_overrides(request.prompt, 511, *features, encoder->feature_width());
        QVERIFY(overrides);
        request.prompt_embeddings = std::move(overrides.value());
        request.sampling.temperature = 0;
        request.max_new_tokens = 6;
        auto backend = make_cpu_backend(shared, 2);
        QVERIFY(backend->reserve_cache(1, 64));
        auto generated = generate(*backend, request);
        QVERIFY(generated);
        QCOMPARE(body["choices"][0]["message"]["content"].get<std::string>(), tokenizer->decode(generated->tokens, true));
        QCOMPARE(body["usage"]["prompt_tokens"].get<int64_t>(), int64_t(prompt->size()));  // the image's 16 tokens included

        // Without the image the same text gets another prompt: the image was seen, not dropped.
        json text_only = image_chat("", "What is this?", 6);
        text_only["messages"][0]["content"] = "What is this?";
        const json plain = json::parse(client.post("/v1/chat/completions", text_only.dump()).body);
        QVERIFY(plain["usage"]["prompt_tokens"].get<int64_t>() < int64_t(prompt->size()));
    }

    void bad_images_are_refused_with_what_is_wrong() {
        auto running = start_server(served_folder(), "", scheduler_with(1, 1, 128), {}, app::read_base64_image);
        const auto client = running->client();
        auto check = [&](const json& body, const char* expected) {
            const ClientResponse response = client.post("/v1/chat/completions", body.dump());
            QCOMPARE(response.status, 400);
            const std::string message = json::parse(response.body)["error"]["message"].get<std::string>();
            QVERIFY2(message.find(expected) != std::string::npos, message.c_str());
        };
        check(image_chat("https://example.com/cat.png", "What?", 2), "fetches nothing");
        check(image_chat("data:image/png;base64,@@not base64@@", "What?", 2), "not valid base64");
        check(image_chat("data:image/png;base64," + QByteArray("just some text").toBase64().toStdString(), "What?", 2), "not an image");
        json no_url = image_chat("", "What?", 2);
        no_url["messages"][0]["content"][1].erase("image_url");
        check(no_url, "has no 'image_url'");
        QCOMPARE(client.post("/v1/chat/completions", image_chat(data_url(kImage), "What?", 2).dump()).status, 200);  // still up

        // A model that cannot see says so.
        auto text_model = start_server(std::string(MWB_TEST_DATA) + "/models/dsv3-tiny", std::string(MWB_TEST_DATA) + "/tokenizer/deepseek-v3",
                                       scheduler_with(1, 1, 128), {}, app::read_base64_image);
        const ClientResponse refused = text_model->client().post("/v1/chat/completions", image_chat(data_url(kImage), "What?", 2).dump());
        QCOMPARE(refused.status, 400);
        QVERIFY2(refused.body.find("cannot see images") != std::string::npos, refused.body.c_str());
    }
};

QTEST_GUILESS_MAIN(ServerImagesTest)
#include "test_server_images.moc"
