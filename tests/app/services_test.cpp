// The app's smaller services: generation_config.json defaults, the model library scan and card, settings with
// the crash-safe start marker, reasoning split and chat exports, and the deterministic demo model.
#include <QCoreApplication>
#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QTest>
#include <cmath>

#include "app/services/chat_text.h"
#include "app/services/demo_model.h"
#include "app/services/generation_defaults.h"
#include "app/services/inspector_feed.h"
#include "app/services/model_library.h"
#include "app/services/settings.h"
#include "engine/io/safetensors.h"
#include "engine/model/random_weights.h"
#include "test_support.h"

using namespace mwb::app;

namespace {

void write_file(const QString& path, const QByteArray& bytes) {
    QDir().mkpath(QFileInfo(path).absolutePath());
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(bytes);
}

void copy_fixture_model(const QString& fixture, const QString& target) {
    QDir().mkpath(target);
    for (const QString& name : QDir(fixture).entryList(QDir::Files)) QVERIFY(QFile::copy(QDir(fixture).filePath(name), QDir(target).filePath(name)));
    // The fixture checkpoints carry no tokenizer; give them the DeepSeek-V3 one.
    QVERIFY(QFile::copy(MWB_TEST_DATA "/tokenizer/deepseek-v3/tokenizer.json", QDir(target).filePath("tokenizer.json")));
}

QByteArray file_sha256(const QString& path) {
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) return {};
    QCryptographicHash hash(QCryptographicHash::Sha256);
    hash.addData(&file);
    return hash.result();
}

}  // namespace

class ServicesTest : public QObject {
    Q_OBJECT

private slots:
    void generationConfigSetsDefaultSampling() {
        const GenerationDefaults r1 = parse_generation_config(R"({"do_sample": true, "temperature": 0.6, "top_p": 0.95, "top_k": 40,
                                                                 "repetition_penalty": 1.05, "max_new_tokens": 1024, "bos_token_id": 0})");
        QVERIFY(r1.problem.isEmpty());
        QCOMPARE(r1.sampling.temperature, 0.6);
        QCOMPARE(r1.sampling.top_p, 0.95);
        QCOMPARE(r1.sampling.top_k, 40);
        QCOMPARE(r1.sampling.repetition_penalty, 1.05);
        QCOMPARE(r1.sampling.max_new_tokens, 1024);

        SamplingSettings fallback;
        fallback.temperature = 0.3;
        fallback.min_p = 0.05;
        const GenerationDefaults partial = parse_generation_config(R"({"top_p": 0.9})", fallback);
        QCOMPARE(partial.sampling.temperature, 0.3);  // kept from the fallback
        QCOMPARE(partial.sampling.min_p, 0.05);
        QCOMPARE(partial.sampling.top_p, 0.9);

        const GenerationDefaults greedy = parse_generation_config(R"({"do_sample": false, "temperature": 0.7})");
        QCOMPARE(greedy.sampling.temperature, 0.0);  // transformers ignores temperature without do_sample

        const GenerationDefaults broken = parse_generation_config("{\"temperature\": ", fallback);
        QVERIFY(!broken.problem.isEmpty());
        QCOMPARE(broken.sampling.temperature, 0.3);
        const GenerationDefaults out_of_range = parse_generation_config(R"({"top_p": 3})", fallback);
        QVERIFY(out_of_range.problem.contains("out of range"));
        QCOMPARE(out_of_range.sampling.top_p, fallback.top_p);

        QTemporaryDir dir;
        QVERIFY(load_generation_defaults(dir.path()).problem.isEmpty());  // no file: defaults, no complaint
    }

    void libraryListsSupportedAndBrokenFoldersWithReasons() {
        QTemporaryDir root;
        const QString hub = root.filePath("hub");
        // A hub snapshot of a supported model.
        copy_fixture_model(MWB_TEST_DATA "/models/dsv3-tiny", hub + "/models--deepseek-ai--DeepSeek-V3-tiny/snapshots/abc123");
        // A hub snapshot whose weights never finished downloading: a link to a missing blob.
        const QString partial = hub + "/models--org--Partial/snapshots/def456";
        QVERIFY(QDir().mkpath(partial));
        QVERIFY(QDir().mkpath(hub + "/models--org--Partial/blobs"));
        QVERIFY(QFile::copy(MWB_TEST_DATA "/models/dsv2-tiny/config.json", partial + "/config.json"));
        QVERIFY(QFile::link(hub + "/models--org--Partial/blobs/missing", partial + "/model.safetensors"));
        // A dataset repository (no config.json) is not a model and is not listed.
        write_file(hub + "/models--org--Data/snapshots/1/data.jsonl", "{}\n");

        // Added folders: one holding models, one that is a model itself.
        const QString collection = root.filePath("collection");
        copy_fixture_model(MWB_TEST_DATA "/models/qwen2-tiny", collection + "/qwen2-tiny");
        write_file(collection + "/mamba/config.json", R"({"model_type": "mamba"})");
        write_file(collection + "/broken-json/config.json", R"({"model_type": "deepseek_v3", )");
        QVERIFY(QDir().mkpath(collection + "/no-weights"));
        QVERIFY(QFile::copy(MWB_TEST_DATA "/models/llama-tiny/config.json", collection + "/no-weights/config.json"));
        const QString single = root.filePath("single-model");
        copy_fixture_model(MWB_TEST_DATA "/models/dsv2-tiny", single);
        QFile::remove(single + "/tokenizer.json");

        const QList<ModelEntry> entries = scan_models({hub, {collection, single, root.filePath("gone")}, root.filePath("no-demo"), {}, {}, {}});
        QMap<QString, ModelEntry> by_name;
        for (const ModelEntry& e : entries) by_name[e.name] = e;
        QCOMPARE(entries.size(), 8);
        QVERIFY(by_name["deepseek-ai/DeepSeek-V3-tiny"].supported);
        QCOMPARE(by_name["deepseek-ai/DeepSeek-V3-tiny"].model_type, QStringLiteral("deepseek_v3"));
        QCOMPARE(by_name["deepseek-ai/DeepSeek-V3-tiny"].source, QStringLiteral("Hugging Face cache"));
        QVERIFY(by_name["org/Partial"].problem.contains("incomplete"));
        QVERIFY(by_name["qwen2-tiny"].supported);
        QVERIFY(by_name["mamba"].problem.contains("mamba"));
        QVERIFY(!by_name["broken-json"].supported);
        QVERIFY(!by_name["broken-json"].problem.isEmpty());
        QVERIFY(by_name["no-weights"].problem.contains("safetensors"));
        QVERIFY(by_name["single-model"].problem.contains("tokenizer.json"));
        QVERIFY(by_name["gone"].problem.contains("no longer exists"));
        QVERIFY(by_name["single-model"].missing_tokenizer);

        // Removed from the list: hidden, files untouched. A model without a tokenizer is given a tokenizer folder.
        LibraryLocations changed{hub, {collection, single}, root.filePath("no-demo"), {by_name["qwen2-tiny"].path}, {}, {}};
        changed.tokenizer_folders.insert(by_name["single-model"].path, MWB_TEST_DATA "/tokenizer/deepseek-v3");
        QMap<QString, ModelEntry> rescanned;
        for (const ModelEntry& e : scan_models(changed)) rescanned[e.name] = e;
        QVERIFY(!rescanned.contains("qwen2-tiny"));
        QVERIFY(QFileInfo::exists(collection + "/qwen2-tiny/config.json"));
        QVERIFY2(rescanned["single-model"].supported, qPrintable(rescanned["single-model"].problem));
        QCOMPARE(rescanned["single-model"].tokenizer_directory, QStringLiteral(MWB_TEST_DATA "/tokenizer/deepseek-v3"));
        changed.tokenizer_folders.insert(by_name["single-model"].path, collection);
        for (const ModelEntry& e : scan_models(changed))
            if (e.name == "single-model") QVERIFY(!e.supported && e.problem.contains("has no tokenizer.json"));

        // Adapters, from the Fine-tune output folder and from added folders, each right after its base model.
        auto write_adapter = [&](const QString& directory, const QString& base) {
            write_file(directory + "/adapter_config.json",
                       QStringLiteral(R"({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "base_model_name_or_path": "%1"})").arg(base).toUtf8());
            write_file(directory + "/adapter_model.safetensors", "");
        };
        const QString qwen = by_name["qwen2-tiny"].path;
        write_adapter(root.filePath("finetune/run-1"), qwen);
        write_adapter(root.filePath("my-adapter"), qwen);
        write_adapter(root.filePath("adapters/other"), "/models/not-here");
        LibraryLocations with_adapters{hub, {collection, root.filePath("my-adapter"), root.filePath("adapters")}, root.filePath("no-demo"), {}, {},
                                       {root.filePath("finetune")}};
        const QList<ModelEntry> listed = scan_models(with_adapters);
        qsizetype base_at = -1;
        for (qsizetype i = 0; i < listed.size(); ++i)
            if (listed[i].path == qwen) base_at = i;
        QVERIFY(base_at >= 0);
        QVERIFY(listed[base_at + 1].is_adapter() && listed[base_at + 2].is_adapter());
        QCOMPARE(listed[base_at + 1].adapter_rank, 4);
        QVERIFY(listed.last().is_adapter() && listed.last().name == "other");  // its base is not listed
        for (const ModelEntry& e : listed) QVERIFY2(e.supported || !e.problem.contains("no config.json"), qPrintable(e.path));
    }

    void modelCardAndMemoryEstimate() {
        auto card = describe_model(MWB_TEST_DATA "/models/dsv3-tiny");
        QVERIFY(card.ok());
        QCOMPARE(card->architecture, QStringLiteral("deepseek_v3"));
        // dsv3-tiny: 4 layers, first dense, 16 routed experts top-4, 1 shared, context 1024 (its config.json).
        QCOMPARE(card->layers, 4);
        QCOMPARE(card->moe_layers, 3);
        QCOMPARE(card->routed_experts, 16);
        QCOMPARE(card->experts_per_token, 4);
        QCOMPARE(card->shared_experts, 1);
        QCOMPARE(card->context_length, 1024);
        QVERIFY(card->active_parameters < card->total_parameters);
        QCOMPARE(card->size_on_disk, QFileInfo(MWB_TEST_DATA "/models/dsv3-tiny/model.safetensors").size() +
                                         QFileInfo(MWB_TEST_DATA "/models/dsv3-tiny/config.json").size() +
                                         QFileInfo(MWB_TEST_DATA "/models/dsv3-tiny/reference.json").size() +
                                         QFileInfo(MWB_TEST_DATA "/models/dsv3-tiny/reference.safetensors").size());
        // MLA cache per token and layer: kv_lora_rank 32 + rope dims 16 values.
        const qint64 values_per_token = 4 * (32 + 16);
        const MemoryEstimate cpu = estimate_memory(*card, Device::Cpu, 1024);
        const MemoryEstimate gpu = estimate_memory(*card, Device::Cuda, 2048);
        QCOMPARE(cpu.kv_cache_bytes, values_per_token * 4 * 1024);
        QCOMPARE(gpu.kv_cache_bytes, values_per_token * 2 * 2048);
        QCOMPARE(cpu.weight_bytes, card->weight_bytes);
        QCOMPARE(cpu.total(), card->weight_bytes + values_per_token * 4 * 1024);
        QVERIFY(!describe_model(QDir::tempPath() + "/mwb-no-such-model").ok());
    }

    void crashMarkerSurvivesARestart() {
        QTemporaryDir dir;
        const QString file = dir.filePath("settings.ini");
        {
            Settings settings(file);
            QVERIFY(settings.model_load_in_progress().isEmpty());
            settings.begin_model_load("/models/huge");
            // The process dies here: no end_model_load, no destructor sync needed.
        }
        {
            Settings after_crash(file);
            QCOMPARE(after_crash.model_load_in_progress(), QStringLiteral("/models/huge"));
            after_crash.end_model_load();
        }
        QVERIFY(Settings(file).model_load_in_progress().isEmpty());
    }

    void settingsRoundTrip() {
        QTemporaryDir dir;
        const QString file = dir.filePath("settings.ini");
        {
            Settings s(file);
            s.set_theme(Theme::Dark);
            s.set_default_device(Device::Cuda);
            s.set_data_directory(dir.filePath("data"));
            SamplingSettings sampling;
            sampling.temperature = 0.2;
            sampling.top_k = 7;
            sampling.seed = 99;
            s.set_default_sampling(sampling);
            s.set_model_folders({"/a", "/b"});
        }
        Settings s(file);
        QCOMPARE(s.theme(), Theme::Dark);
        QCOMPARE(s.default_device(), Device::Cuda);
        QCOMPARE(s.database_path(), dir.filePath("data/history.sqlite"));
        QCOMPARE(s.demo_model_directory(), dir.filePath("data/demo-model"));
        QCOMPARE(s.default_sampling().temperature, 0.2);
        QCOMPARE(s.default_sampling().top_k, 7);
        QCOMPARE(s.default_sampling().seed, 99u);
        QCOMPARE(s.model_folders(), (QStringList{"/a", "/b"}));
        qputenv("HF_HUB_CACHE", "/cache/hub");
        QCOMPARE(s.huggingface_hub_directory(), QStringLiteral("/cache/hub"));
        qunsetenv("HF_HUB_CACHE");
        qputenv("HF_HOME", "/hf");
        QCOMPARE(s.huggingface_hub_directory(), QStringLiteral("/hf/hub"));
        qunsetenv("HF_HOME");
        qputenv("XDG_CACHE_HOME", "/xdg");
        QCOMPARE(s.huggingface_hub_directory(), QStringLiteral("/xdg/huggingface/hub"));
        qunsetenv("XDG_CACHE_HOME");
    }

    void splitsReasoningFromTheAnswer() {
        const ReasoningSplit done = split_reasoning("<think>\nCheck 2, 3, 5.\n</think>\n\nThe primes are **2, 3, 5**.");
        QVERIFY(done.has_thinking && done.thinking_finished);
        QCOMPARE(done.thinking, QStringLiteral("Check 2, 3, 5."));
        QCOMPARE(done.answer, QStringLiteral("The primes are **2, 3, 5**."));

        const ReasoningSplit live = split_reasoning("<think>\nStill thinking about");
        QVERIFY(live.has_thinking && !live.thinking_finished);
        QCOMPARE(live.thinking, QStringLiteral("Still thinking about"));
        QVERIFY(live.answer.isEmpty());

        // R1's newer template puts <think> into the prompt: the reply holds only the closing tag.
        const ReasoningSplit prompted = split_reasoning("First, 2 is prime.</think>2, 3, 5");
        QVERIFY(prompted.has_thinking);
        QCOMPARE(prompted.thinking, QStringLiteral("First, 2 is prime."));
        QCOMPARE(prompted.answer, QStringLiteral("2, 3, 5"));

        const ReasoningSplit plain = split_reasoning("Use the `<think>` tag like this.");
        QVERIFY(!plain.has_thinking);
        QCOMPARE(plain.answer, QStringLiteral("Use the `<think>` tag like this."));
    }

    void imageAttentionIsReadFromTheCapturedRow() {
        // Layer 3, 2 heads, the row of position 3 (keys 0..3): head 0 = .1 .2 .3 .4, head 1 = .4 .3 .2 .1; the image
        // is tokens 1 and 2.
        InspectorSnapshot snapshot;
        snapshot.attention[3].heads = 2;
        snapshot.attention[3].rows[3] = {0.1f, 0.2f, 0.3f, 0.4f, 0.4f, 0.3f, 0.2f, 0.1f};
        const InspectedImage image{"picture.png", {1, 2}};
        QCOMPARE(image_attention(snapshot, 3, 3, image, 0), (std::vector<float>{0.2f, 0.3f}));
        QCOMPARE(image_attention(snapshot, 3, 3, image, 1), (std::vector<float>{0.3f, 0.2f}));
        const std::vector<float> mean = image_attention(snapshot, 3, 3, image, -1);  // (.2 + .3) / 2, (.3 + .2) / 2
        QCOMPARE(mean.size(), size_t(2));
        QVERIFY(std::abs(mean[0] - 0.25f) < 1e-6f && std::abs(mean[1] - 0.25f) < 1e-6f);
        QVERIFY(image_attention(snapshot, 2, 3, image, 0).empty());  // layer not captured
        QVERIFY(image_attention(snapshot, 3, 2, image, 0).empty());  // row not captured
        QVERIFY(image_attention(snapshot, 3, 3, image, 2).empty());  // no such head
        QVERIFY(image_attention(snapshot, 3, 3, InspectedImage{"later.png", {3, 4}}, 0).empty());  // after the token
    }

    void exportsChatsAsMarkdownAndOpenAiJson() {
        RunRecord run;
        run.title = "Primes";
        run.model = "/models/demo";
        run.created_at = QDateTime::fromSecsSinceEpoch(1700000000, Qt::UTC);
        auto message = [](qint64 id, const QString& role, const QString& content) {
            MessageRecord m;
            m.id = id;
            m.run_id = 1;
            m.position = int(id - 1);
            m.role = role;
            m.content = content;
            return m;
        };
        const MessageRecord system = message(1, "system", "Be brief.");
        const MessageRecord user = message(2, "user", "Primes below 10?");
        MessageRecord reply = message(3, "assistant", "2, 3, 5, 7");
        reply.has_stats = true;
        reply.stats = {8, 4, 0.25, 100, 40, "stop"};
        const QList<MessageRecord> messages{system, user, reply};

        const QJsonObject json = QJsonDocument::fromJson(chat_to_openai_json(run, messages)).object();
        QCOMPARE(json["model"].toString(), QStringLiteral("/models/demo"));
        const QJsonArray array = json["messages"].toArray();
        QCOMPARE(array.size(), 3);
        QCOMPARE(array[0].toObject(), (QJsonObject{{"role", "system"}, {"content", "Be brief."}}));
        QCOMPARE(array[1].toObject(), (QJsonObject{{"role", "user"}, {"content", "Primes below 10?"}}));
        QCOMPARE(array[2].toObject(), (QJsonObject{{"role", "assistant"}, {"content", "2, 3, 5, 7"}}));

        const QString md = chat_to_markdown(run, messages);
        QVERIFY(md.startsWith("# Primes\n"));
        QVERIFY(md.contains("## User\n\nPrimes below 10?\n"));
        QVERIFY(md.contains("## Assistant\n\n2, 3, 5, 7\n"));
        QVERIFY(md.contains("8 prompt tokens · 4 generated · TTFT 0.25 s · 40.0 tok/s"));

        // A document answer lists its sources under it.
        reply.sources = {CitedSource{1, 7, "/docs/primes.pdf", "primes.pdf", 4, 0, 20, "The primes below ten\nare 2, 3, 5, 7."}};
        QVERIFY(chat_to_markdown(run, {user, reply}).contains("## Assistant\n\n2, 3, 5, 7\n\n1. primes.pdf, page 4: \"The primes below ten are 2, 3, 5, 7.\"\n\n*8 prompt"));
    }

    void demoModelIsDeterministicAndLabelled() {
        QTemporaryDir dir;
        const DemoModelRecipe recipe = testing::small_demo_recipe();
        const QString first = dir.filePath("a/demo-model");
        const QString second = dir.filePath("b/demo-model");
        auto made = ensure_demo_model(first, recipe);
        QVERIFY2(made.ok(), made.ok() ? "" : made.error().message.c_str());
        QVERIFY(ensure_demo_model(second, recipe).ok());
        for (const char* name : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"})
            QCOMPARE(file_sha256(QDir(first).filePath(name)), file_sha256(QDir(second).filePath(name)));
        // The weights are random_weights() of the recipe, and the tokenizer is the real DeepSeek-V3 one.
        auto config = mwb::load_model_config(first.toStdString());
        QVERIFY(config.ok());
        QCOMPARE(config->vocab_size, 129280);
        const auto expected = mwb::random_weights(*config, recipe.seed);
        auto store = mwb::TensorStore::open_directory(first.toStdString());
        QVERIFY(store.ok());
        QCOMPARE(store->tensors().size(), expected.size());
        for (const auto& tensor : expected) {
            auto view = store->get(tensor.name);
            QVERIFY(view.ok());
            QCOMPARE(view->bytes, tensor.bytes.size());
            QVERIFY(std::equal(tensor.bytes.begin(), tensor.bytes.end(), view->data));
        }
        QCOMPARE(file_sha256(QDir(first).filePath("tokenizer.json")), file_sha256(MWB_TEST_DATA "/tokenizer/deepseek-v3/tokenizer.json"));
        QVERIFY(is_demo_model(first));
        const QString label = QJsonDocument::fromJson([&] {
                                  QFile f(QDir(first).filePath("demo_model.json"));
                                  return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
                              }()).object()["label"].toString();
        QVERIFY(label.contains("random weights"));

        // Present and unchanged: not rewritten. A different seed: rebuilt.
        const QDateTime written = QFileInfo(QDir(first).filePath("model.safetensors")).lastModified();
        QVERIFY(ensure_demo_model(first, recipe).ok());
        QCOMPARE(QFileInfo(QDir(first).filePath("model.safetensors")).lastModified(), written);
        DemoModelRecipe reseeded = recipe;
        reseeded.seed += 1;
        QVERIFY(ensure_demo_model(first, reseeded).ok());
        QVERIFY(file_sha256(QDir(first).filePath("model.safetensors")) != file_sha256(QDir(second).filePath("model.safetensors")));
        QVERIFY(!QFileInfo::exists(first + ".partial"));

        const QList<ModelEntry> entries = scan_models({dir.filePath("no-hub"), {}, first, {}, {}, {}});
        QCOMPARE(entries.size(), 1);
        QVERIFY(entries.first().is_demo && entries.first().supported);
        QVERIFY(entries.first().name.contains("random weights"));
    }

    void cancelledDemoCreationLeavesNoModel() {
        QTemporaryDir dir;
        std::atomic<bool> cancel{false};
        const QString target = dir.filePath("demo-model");
        auto made = ensure_demo_model(target, testing::small_demo_recipe(), [&](double) { cancel = true; }, &cancel);
        QVERIFY(!made.ok());
        QVERIFY(QString::fromStdString(made.error().message).contains("cancelled"));
        QVERIFY(!is_demo_model(target));
    }
};

QTEST_GUILESS_MAIN(ServicesTest)
#include "services_test.moc"
