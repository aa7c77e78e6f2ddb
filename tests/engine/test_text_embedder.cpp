// The sentence-embedding runner: each pooling by hand on a 3×2 matrix; embeddings of the qwen2-tiny fixture saved
// as a sentence-transformers folder against poolings computed here from its reference hidden state after the
// final norm; prompts, whitespace stripping, truncation and batching through a small tokenizer; and the errors
// a user sees for folders that are not (supported) embedding models.
#include <QtTest>

#include <QTemporaryDir>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/text_file.h"
#include "engine/io/safetensors.h"
#include "engine/observe/forward_capture.h"
#include "engine/runtime/text_embedder.h"

using namespace mwb;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kTinyModel = fs::path(MWB_TEST_DATA) / "models" / "qwen2-tiny";
constexpr int64_t kTinyWidth = 96;  // hidden_size of qwen2-tiny

const char* const kPoolingFlags[] = {"pooling_mode_cls_token",  "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                                     "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_lasttoken", "pooling_mode_weightedmean_tokens"};

void write_file(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
}

json pooling_config(const std::string& flag, bool include_prompt = true) {
    json config = {{"word_embedding_dimension", kTinyWidth}, {"include_prompt", include_prompt}};
    for (const char* each : kPoolingFlags) config[each] = flag == each;
    return config;
}

json modules(bool normalize) {
    json list = json::array({{{"idx", 0}, {"name", "0"}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}},
                             {{"idx", 1}, {"name", "1"}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}}});
    if (normalize) list.push_back({{"idx", 2}, {"name", "2"}, {"path", "2_Normalize"}, {"type", "sentence_transformers.models.Normalize"}});
    return list;
}

// qwen2-tiny's config.json and weights, saved as sentence-transformers saves a model.
std::unique_ptr<QTemporaryDir> embedding_folder(const json& pooling, bool normalize) {
    auto folder = std::make_unique<QTemporaryDir>();
    const fs::path root = folder->path().toStdString();
    fs::copy_file(kTinyModel / "config.json", root / "config.json");
    fs::copy_file(kTinyModel / "model.safetensors", root / "model.safetensors");
    write_file(root / "modules.json", modules(normalize).dump());
    write_file(root / "1_Pooling" / "config.json", pooling.dump());
    return folder;
}

fs::path root_of(const QTemporaryDir& folder) { return folder.path().toStdString(); }

TextEmbedder open_embedder(const QTemporaryDir& folder) {
    auto embedder = TextEmbedder::open(root_of(folder).string(), [](std::shared_ptr<const ModelGraph> graph) -> Result<std::unique_ptr<Backend>> {
        return make_cpu_backend(std::move(graph), 2);
    });
    if (!embedder) qFatal("%s", embedder.error().message.c_str());
    return std::move(embedder.value());
}

std::string open_error(const QTemporaryDir& folder) {
    auto embedder = TextEmbedder::open(root_of(folder).string());
    if (embedder) qFatal("expected an error opening %s", qPrintable(folder.path()));
    return embedder.error().message;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

float max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    float worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
    return worst;
}

// sentence-transformers' poolings written out plainly over hidden [T, width], from token `first` on for the
// masked ones.
std::vector<float> pooled_by_hand(const std::string& flag, const std::vector<float>& hidden, int64_t width, bool normalize,
                                  int64_t first = 0) {
    const int64_t tokens = int64_t(hidden.size()) / width;
    std::vector<float> out(static_cast<size_t>(width));
    for (int64_t j = 0; j < width; ++j) {
        auto at = [&](int64_t t) { return double(hidden[size_t(t * width + j)]); };
        double value = 0, count = 0;
        if (flag == "pooling_mode_cls_token") value = at(0);
        if (flag == "pooling_mode_lasttoken") value = at(tokens - 1);
        if (flag == "pooling_mode_max_tokens") {
            value = at(first);
            for (int64_t t = first; t < tokens; ++t) value = std::max(value, at(t));
        }
        if (flag == "pooling_mode_mean_tokens" || flag == "pooling_mode_mean_sqrt_len_tokens") {
            for (int64_t t = first; t < tokens; ++t) value += at(t), count += 1;
            value /= flag == "pooling_mode_mean_tokens" ? count : std::sqrt(count);
        }
        if (flag == "pooling_mode_weightedmean_tokens") {
            for (int64_t t = first; t < tokens; ++t) value += double(t + 1) * at(t), count += double(t + 1);
            value /= count;
        }
        out[size_t(j)] = float(value);
    }
    if (normalize) {
        double norm = 0;
        for (float v : out) norm += double(v) * v;
        for (float& v : out) v = float(v / std::sqrt(norm));
    }
    return out;
}

// A tokenizer of single characters: 'a'..'z' are ids 10..35, ' ' 36, ':' 37; encoding with special tokens
// appends <eos> (id 2), as gte-Qwen2's tokenizer appends <|endoftext|>.
json letter_tokenizer() {
    json vocab = json::object();
    for (char c = 'a'; c <= 'z'; ++c) vocab[std::string(1, c)] = 10 + (c - 'a');
    vocab[" "] = 36;
    vocab[":"] = 37;
    const json eos_template = {{"type", "TemplateProcessing"},
                               {"single", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                                       {{"SpecialToken", {{"id", "<eos>"}, {"type_id", 0}}}}})},
                               {"pair", json::array()},
                               {"special_tokens", {{"<eos>", {{"id", "<eos>"}, {"ids", {2}}, {"tokens", {"<eos>"}}}}}}};
    return {{"version", "1.0"},
            {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
            {"added_tokens", json::array({{{"id", 2}, {"content", "<eos>"}, {"special", true}}})},
            {"post_processor", eos_template}};
}

std::vector<int32_t> letter_ids(const std::string& text) {
    std::vector<int32_t> ids;
    for (char c : text) ids.push_back(c == ' ' ? 36 : c == ':' ? 37 : 10 + (c - 'a'));
    ids.push_back(2);
    return ids;
}

// An embedding folder with the letter tokenizer, prompts and a max_seq_length of 8.
std::unique_ptr<QTemporaryDir> folder_with_tokenizer(const json& pooling, bool normalize, const json& prompt_config) {
    auto folder = embedding_folder(pooling, normalize);
    write_file(root_of(*folder) / "tokenizer.json", letter_tokenizer().dump());
    write_file(root_of(*folder) / "sentence_bert_config.json", json{{"max_seq_length", 8}, {"do_lower_case", false}}.dump());
    write_file(root_of(*folder) / "config_sentence_transformers.json", prompt_config.dump());
    return folder;
}

}  // namespace

class TextEmbedderTest : public QObject {
    Q_OBJECT

private slots:
    void pooling_by_hand_data() {
        QTest::addColumn<QString>("flag");
        QTest::addColumn<bool>("normalize");
        QTest::addColumn<bool>("include_prompt");
        QTest::addColumn<std::vector<float>>("expected");
        // hidden = [[1, 2], [3, -4], [5, 0]]
        QTest::newRow("cls") << "pooling_mode_cls_token" << false << true << std::vector<float>{1, 2};
        QTest::newRow("last token") << "pooling_mode_lasttoken" << false << true << std::vector<float>{5, 0};
        QTest::newRow("max") << "pooling_mode_max_tokens" << false << true << std::vector<float>{5, 2};
        // sum [9, -2] over 3 tokens
        QTest::newRow("mean") << "pooling_mode_mean_tokens" << false << true << std::vector<float>{3, -2.0f / 3};
        // [9, -2] / sqrt(3)
        QTest::newRow("mean sqrt len") << "pooling_mode_mean_sqrt_len_tokens" << false << true << std::vector<float>{5.196152f, -1.154701f};
        // weights 1, 2, 3: [1 + 6 + 15, 2 - 8 + 0] / 6 = [22/6, -1]
        QTest::newRow("weighted mean") << "pooling_mode_weightedmean_tokens" << false << true << std::vector<float>{3.666667f, -1};
        // [3, -2/3] / sqrt(9 + 4/9) = [3, -2/3] / 3.073181
        QTest::newRow("mean, normalized") << "pooling_mode_mean_tokens" << true << true << std::vector<float>{0.976187f, -0.216930f};
        // [5, 0] / 5
        QTest::newRow("last token, normalized") << "pooling_mode_lasttoken" << true << true << std::vector<float>{1, 0};
        // Without the first (prompt) token: mean of rows 2-3 [4, -2]; max [5, 0]; weights 2, 3: [6 + 15, -8] / 5;
        // cls and last token ignore the prompt mask, as sentence-transformers does.
        QTest::newRow("mean, prompt excluded") << "pooling_mode_mean_tokens" << false << false << std::vector<float>{4, -2};
        QTest::newRow("max, prompt excluded") << "pooling_mode_max_tokens" << false << false << std::vector<float>{5, 0};
        QTest::newRow("weighted mean, prompt excluded") << "pooling_mode_weightedmean_tokens" << false << false << std::vector<float>{4.2f, -1.6f};
        QTest::newRow("cls, prompt excluded") << "pooling_mode_cls_token" << false << false << std::vector<float>{1, 2};
    }
    void pooling_by_hand() {
        QFETCH(QString, flag);
        QFETCH(bool, normalize);
        QFETCH(bool, include_prompt);
        QFETCH(std::vector<float>, expected);
        PoolingConfig config;
        const PoolingMode modes[] = {PoolingMode::Cls, PoolingMode::Mean, PoolingMode::Max,
                                     PoolingMode::MeanSqrtLen, PoolingMode::LastToken, PoolingMode::WeightedMean};
        for (size_t i = 0; i < std::size(kPoolingFlags); ++i)
            if (flag.toStdString() == kPoolingFlags[i]) config.mode = modes[i];
        config.normalize = normalize;
        config.include_prompt = include_prompt;
        const std::vector<float> hidden = {1, 2, 3, -4, 5, 0};
        const auto pooled = pool_hidden_states(config, hidden, 3, 2, 1);
        QVERIFY2(max_abs_difference(pooled, expected) <= 1e-5f, qPrintable(QString("got [%1, %2]").arg(pooled.at(0)).arg(pooled.at(1))));
    }

    void pooling_rejects_mismatched_sizes() {
        const std::vector<float> hidden = {1, 2, 3};
        QVERIFY(pool_hidden_states({}, hidden, 2, 2).empty());
        QVERIFY(pool_hidden_states({}, hidden, 0, 3).empty());
    }

    void fixture_embeddings_match_pooled_reference_data() {
        QTest::addColumn<QString>("flag");
        QTest::addColumn<bool>("normalize");
        for (const char* flag : kPoolingFlags)
            for (bool normalize : {false, true})
                QTest::newRow(qPrintable(QString("%1%2").arg(flag, normalize ? ", normalized" : ""))) << QString(flag) << normalize;
    }
    void fixture_embeddings_match_pooled_reference() {
        QFETCH(QString, flag);
        QFETCH(bool, normalize);
        auto reference = TensorStore::open_file((kTinyModel / "reference.safetensors").string());
        QVERIFY(reference.ok());
        auto ids = reference->read_int64("p0.input_ids");
        QVERIFY(ids.ok());
        int64_t last = -1;  // hidden.K with the largest K: after the final norm
        for (const auto& [name, tensor] : reference->tensors())
            if (name.rfind("p0.hidden.", 0) == 0) last = std::max<int64_t>(last, std::stoll(name.substr(10)));
        QVERIFY(last > 0);
        auto hidden = reference->read_float("p0.hidden." + std::to_string(last), {});
        QVERIFY(hidden.ok());
        QCOMPARE(int64_t(hidden->size()), int64_t(ids->size()) * kTinyWidth);

        auto folder = embedding_folder(pooling_config(flag.toStdString()), normalize);
        TextEmbedder embedder = open_embedder(*folder);
        QCOMPARE(embedder.dimension(), kTinyWidth);
        QCOMPARE(embedder.max_tokens(), int64_t(4096));  // no sentence_bert_config.json: max_position_embeddings
        const std::vector<int32_t> prompt(ids->begin(), ids->end());
        auto embedding = embedder.embed_ids(prompt);
        QVERIFY2(embedding.ok(), embedding.ok() ? "" : embedding.error().message.c_str());
        const float error = max_abs_difference(*embedding, pooled_by_hand(flag.toStdString(), *hidden, kTinyWidth, normalize));
        QVERIFY2(error <= 1e-4f, qPrintable(QString("max error %1").arg(error)));
        // The slot is reused: a second call gives the same embedding.
        auto again = embedder.embed_ids(prompt);
        QVERIFY(again.ok());
        QCOMPARE(*again, *embedding);
    }

    void prompts_truncation_and_batching() {
        auto folder = folder_with_tokenizer(pooling_config("pooling_mode_lasttoken"), true,
                                            {{"prompts", {{"query", "q: "}, {"document", ""}}}, {"default_prompt_name", nullptr}});
        TextEmbedder embedder = open_embedder(*folder);
        QCOMPARE(embedder.max_tokens(), int64_t(8));
        QCOMPARE(embedder.prompt_names(), (std::vector<std::string>{"document", "query"}));
        // Prompt + text, stripped; the second truncated to 7 letters + <eos>. All three share one forward.
        auto embeddings = embedder.embed_texts({"  ab  ", "abcdefghijkl", "z"}, "query");
        QVERIFY2(embeddings.ok(), embeddings.ok() ? "" : embeddings.error().message.c_str());
        QCOMPARE(embeddings->size(), size_t(3));
        const std::string expected_texts[] = {"q:   ab", "q: abcd", "q: z"};
        for (size_t i = 0; i < 3; ++i) {
            auto alone = embedder.embed_ids(letter_ids(expected_texts[i]));
            QVERIFY(alone.ok());
            const float error = max_abs_difference((*embeddings)[i], *alone);
            QVERIFY2(error <= 1e-5f, qPrintable(QString("text %1: max error %2").arg(i).arg(error)));
        }
        auto plain = embedder.embed_texts({"ab"});
        QVERIFY(plain.ok());
        auto plain_ids = embedder.embed_ids(letter_ids("ab"));
        QVERIFY(plain_ids.ok());
        QVERIFY(max_abs_difference(plain->front(), *plain_ids) <= 1e-5f);

        auto unknown = embedder.embed_texts({"ab"}, "passage");
        QVERIFY(!unknown.ok());
        QVERIFY(contains(unknown.error().message, "config_sentence_transformers.json"));
        QVERIFY(contains(unknown.error().message, "'passage'"));

        auto too_long = embedder.embed_ids(letter_ids("abcdefgh"));
        QVERIFY(!too_long.ok());
        QVERIFY(contains(too_long.error().message, "max_seq_length"));
        QVERIFY(!embedder.embed_ids({}).ok());
    }

    // include_prompt false: the prompt's tokens ("q:" stripped, less the <eos> sentence-transformers assumes)
    // are left out of the mean; the default prompt applies when none is named.
    void prompt_excluded_from_mean() {
        auto folder = folder_with_tokenizer(pooling_config("pooling_mode_mean_tokens", false), false,
                                            {{"prompts", {{"query", "q: "}}}, {"default_prompt_name", "query"}});
        TextEmbedder embedder = open_embedder(*folder);
        auto embedding = embedder.embed_texts({"ab"});
        QVERIFY2(embedding.ok(), embedding.ok() ? "" : embedding.error().message.c_str());

        auto graph = load_model_graph(root_of(*folder).string());
        QVERIFY(graph.ok());
        const int64_t layers = graph->config.num_layers;
        auto backend = make_cpu_backend(std::make_shared<const ModelGraph>(std::move(graph.value())), 2);
        const std::vector<int32_t> ids = letter_ids("q: ab");
        QVERIFY(backend->reserve_cache(1, int64_t(ids.size())).ok());
        ForwardCapture capture(int64_t(ids.size()));
        QVERIFY(backend->forward({ids, {{0, 0, int64_t(ids.size())}}}, &capture).ok());
        const auto expected = pooled_by_hand("pooling_mode_mean_tokens", capture.hidden().at(layers), kTinyWidth, false, 2);
        QVERIFY(max_abs_difference(embedding->front(), expected) <= 1e-5f);
    }

    void truncation_keeps_special_tokens() {
        const std::vector<int32_t> encoded = {1, 5, 6, 7, 8, 2}, text = {5, 6, 7, 8};
        auto fits = truncate_encoding(encoded, text, 6);
        QVERIFY(fits.ok());
        QCOMPARE(*fits, encoded);
        auto cut = truncate_encoding(encoded, text, 4);
        QVERIFY(cut.ok());
        QCOMPARE(*cut, (std::vector<int32_t>{1, 5, 6, 2}));
        QVERIFY(!truncate_encoding(encoded, text, 2).ok());
    }

    void errors_name_the_file_data() {
        QTest::addColumn<QString>("file");
        QTest::addColumn<QString>("contents");
        QTest::addColumn<QString>("message");
        const std::string two_flags = [] {
            json config = pooling_config("pooling_mode_mean_tokens");
            config["pooling_mode_cls_token"] = true;
            return config.dump();
        }();
        json dense = modules(false);
        dense.push_back({{"idx", 2}, {"name", "2"}, {"path", "2_Dense"}, {"type", "sentence_transformers.models.Dense"}});
        QTest::newRow("unsupported module") << "modules.json" << QString::fromStdString(dense.dump())
                                            << "module sentence_transformers.models.Dense in modules.json is not supported";
        QTest::newRow("broken modules.json") << "modules.json" << "[{\"type\": " << "modules.json: not valid JSON";
        QTest::newRow("modules out of order") << "modules.json" << QString::fromStdString(json::array({modules(false)[1], modules(false)[0]}).dump())
                                              << "modules.json: expected the modules Transformer, Pooling";
        QTest::newRow("two pooling flags") << "1_Pooling/config.json" << QString::fromStdString(two_flags)
                                           << "1_Pooling/config.json sets several pooling modes";
        QTest::newRow("no pooling flag") << "1_Pooling/config.json" << QString::fromStdString(pooling_config("").dump())
                                         << "1_Pooling/config.json: no pooling mode";
        QTest::newRow("broken pooling config") << "1_Pooling/config.json" << "{" << "1_Pooling/config.json: not valid JSON";
        QTest::newRow("wrong dimension") << "1_Pooling/config.json" << R"({"pooling_mode_mean_tokens": true, "word_embedding_dimension": 64})"
                                         << "1_Pooling/config.json: word_embedding_dimension is 64";
        QTest::newRow("max_seq_length not a number") << "sentence_bert_config.json" << R"({"max_seq_length": "8"})"
                                                     << "sentence_bert_config.json: max_seq_length";
        QTest::newRow("prompts not strings") << "config_sentence_transformers.json" << R"({"prompts": {"query": 1}})"
                                             << "config_sentence_transformers.json: prompt 'query'";
        QTest::newRow("unknown default prompt") << "config_sentence_transformers.json" << R"({"prompts": {}, "default_prompt_name": "query"})"
                                                << "default_prompt_name 'query'";
    }
    void errors_name_the_file() {
        QFETCH(QString, file);
        QFETCH(QString, contents);
        QFETCH(QString, message);
        auto folder = embedding_folder(pooling_config("pooling_mode_mean_tokens"), true);
        write_file(root_of(*folder) / file.toStdString(), contents.toStdString());
        const std::string error = open_error(*folder);
        QVERIFY2(contains(error, message.toStdString()), error.c_str());
    }

    // Saved from Qwen2Model, as embedding checkpoints are: no "model." in the names and no lm_head.
    void base_model_checkpoints_load() {
        auto folder = embedding_folder(pooling_config("pooling_mode_mean_tokens"), true);
        const std::vector<int32_t> ids = {5, 17, 42, 99, 3};
        auto full = open_embedder(*folder).embed_ids(ids);
        QVERIFY(full.ok());
        const fs::path weights = root_of(*folder) / "model.safetensors";
        std::vector<TensorToWrite> base;
        {
            auto store = TensorStore::open_file(weights.string());
            QVERIFY(store.ok());
            for (const auto& [name, view] : store->tensors()) {
                if (name == "lm_head.weight") continue;
                auto values = store->read_float(name, view.shape);
                QVERIFY(values.ok());
                QVERIFY(name.rfind("model.", 0) == 0);
                base.push_back(tensor_f32(name.substr(6), view.shape, *values));
            }
            QVERIFY(base.size() + 1 == store->tensors().size());
        }
        QVERIFY(write_safetensors(weights.string(), base).ok());
        auto headless = open_embedder(*folder).embed_ids(ids);
        QVERIFY(headless.ok());
        QCOMPARE(*headless, *full);
    }

    void bidirectional_models_are_refused() {
        auto folder = embedding_folder(pooling_config("pooling_mode_mean_tokens"), true);
        const fs::path config = root_of(*folder) / "config.json";
        auto text = read_text_file(config.string());
        QVERIFY(text.ok());
        json model = json::parse(*text);
        model["is_causal"] = false;
        write_file(config, model.dump());
        const std::string error = open_error(*folder);
        QVERIFY2(contains(error, "config.json") && contains(error, "is_causal"), error.c_str());
    }

    void plain_language_model_is_not_an_embedding_model() {
        QTemporaryDir folder;
        fs::copy_file(kTinyModel / "config.json", root_of(folder) / "config.json");
        fs::copy_file(kTinyModel / "model.safetensors", root_of(folder) / "model.safetensors");
        const std::string error = open_error(folder);
        QVERIFY2(contains(error, "has no modules.json: it is not a sentence-transformers embedding model"), error.c_str());
    }

    void texts_need_the_tokenizer() {
        auto folder = embedding_folder(pooling_config("pooling_mode_mean_tokens"), true);
        TextEmbedder embedder = open_embedder(*folder);
        auto embeddings = embedder.embed_texts({"hello"});
        QVERIFY(!embeddings.ok());
        QVERIFY2(contains(embeddings.error().message, "tokenizer.json is missing"), embeddings.error().message.c_str());
    }
};

QTEST_GUILESS_MAIN(TextEmbedderTest)
#include "test_text_embedder.moc"
