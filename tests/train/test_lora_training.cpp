// LoRA training on the CPU against the two peft traces (tests/data/lora): the gradient of every adapter matrix
// at step 0, the loss of each of the 12 AdamW steps, the final adapter and the final logits of row 0; an adapter
// written and read back in PEFT's format.
#include <QtTest>

#include <cmath>
#include <random>
#include <set>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <QProcess>
#include <QTemporaryDir>

#include "engine/core/text_file.h"
#include "engine/io/safetensors.h"
#include "engine/train/lora_model.h"
#include "engine/runtime/generation.h"
#include "engine/train/memory_plan.h"
#include "engine/train/merge.h"
#include "engine/train/optimizer.h"
#include "tests/support/fixture.h"
#include "tests/train/lora_trace.h"

using namespace mwb;
using namespace mwb::train;
using namespace mwb::testing;

class LoraTrainingTest : public QObject {
    Q_OBJECT

    std::shared_ptr<const ModelGraph> graph_;

    void reproduce(const std::string& name) {
        const Trace trace = load_trace(name);
        auto model = LoraModel::create(graph_, 2);
        QVERIFY2(model.ok(), model.ok() ? "" : model.error().message.c_str());
        auto adapter = LoraAdapter::load(kTraces + name + "/adapter_init", *graph_);
        QVERIFY2(adapter.ok(), adapter.ok() ? "" : adapter.error().message.c_str());
        QCOMPARE(adapter->modules().size(), size_t(20));  // 5 MLA projections × 4 layers
        QCOMPARE(adapter->config().scale(), 2.0);

        // Step 0: the gradient of every matrix, by the norm of its difference.
        LoraGradients gradients = LoraGradients::zeros_like(*adapter);
        const auto& h = trace.train["hyperparameters"];
        const int64_t batch = h["batch_size"].get<int64_t>();
        batch_gradient(*model, *adapter, trace, 0, batch, gradients);
        auto reference = TensorStore::open_file(kTraces + name + "/grads_step0.safetensors");
        QVERIFY(reference.ok());
        for (size_t i = 0; i < adapter->modules().size(); ++i) {
            const LoraModule& m = adapter->modules()[i];
            for (char matrix : {'A', 'B'}) {
                const std::string key = "base_model.model." + m.name + ".lora_" + std::string(1, matrix) + ".default.weight";
                const std::vector<float> expected = *reference->read_float(key, {});
                const double error = relative_error(matrix == 'A' ? gradients.a[i] : gradients.b[i], expected);
                QVERIFY2(error <= 1e-4, qPrintable(QStringLiteral("%1: relative error %2").arg(QString::fromStdString(key)).arg(error)));
            }
        }

        // Twelve AdamW steps over rows 0-3 then 4-7: every loss, then the adapter and row 0's logits.
        AdamWConfig config;
        config.lr = h["lr"].get<double>();
        config.beta1 = h["betas"][0].get<double>();
        config.beta2 = h["betas"][1].get<double>();
        config.eps = h["eps"].get<double>();
        config.weight_decay = h["weight_decay"].get<double>();
        AdamW optimizer(*adapter, config);
        const auto losses = trace.train["losses"].get<std::vector<double>>();
        for (size_t step = 0; step < losses.size(); ++step) {
            const double loss = batch_gradient(*model, *adapter, trace, int64_t(step % 2) * batch, batch, gradients);
            QVERIFY2(std::fabs(loss - losses[step]) <= 1e-4 * std::fabs(losses[step]),
                     qPrintable(QStringLiteral("step %1: loss %2, peft %3").arg(step).arg(loss, 0, 'g', 9).arg(losses[step], 0, 'g', 9)));
            optimizer.step(*adapter, gradients, config.lr);
        }
        auto final_adapter = LoraAdapter::load(kTraces + name + "/adapter_final", *graph_);
        QVERIFY(final_adapter.ok());
        for (size_t i = 0; i < adapter->modules().size(); ++i) {
            const LoraModule& ours = adapter->modules()[i];
            const LoraModule* theirs = final_adapter->find(ours.name);
            QVERIFY(theirs);
            QVERIFY2(relative_error(ours.a, theirs->a) <= 1e-3, ours.name.c_str());
            QVERIFY2(relative_error(ours.b, theirs->b) <= 1e-3, ours.name.c_str());
        }
        std::vector<float> logits;
        QVERIFY(model->row_loss(*adapter, trace.ids(0), trace.row_labels(0), 0, nullptr, &logits).ok());
        const std::vector<float> expected = *trace.file.read_float("final_logits_row0", {});
        QCOMPARE(logits.size(), expected.size());
        float worst = 0;
        for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - expected[i]));
        QVERIFY2(worst <= 1e-3, qPrintable(QString::number(worst)));
    }

    // `mwb train` with `arguments`; the metrics lines it wrote.
    std::vector<nlohmann::json> train_cli(const QStringList& arguments, const QString& metrics) {
        QProcess cli;
        cli.start(MWB_CLI, QStringList{"train", MWB_TEST_DATA "/models/dsv3-tiny"} + arguments + QStringList{"--metrics", metrics});
        if (!cli.waitForFinished(120000) || cli.exitCode() != 0) {
            qWarning("%s", cli.readAllStandardError().constData());
            return {};
        }
        std::vector<nlohmann::json> lines;
        QFile file(metrics);
        if (!file.open(QIODevice::ReadOnly)) return {};
        for (const QByteArray& line : file.readAll().split('\n'))
            if (!line.isEmpty()) lines.push_back(nlohmann::json::parse(line.toStdString()));
        return lines;
    }

private slots:
    void initTestCase() { graph_ = testing::load_fixture("dsv3-tiny").graph; }

    void reproducesThePeftTrace() { reproduce("dsv3-tiny-lora"); }
    void reproducesThePeftTraceWithMaskedLabels() { reproduce("dsv3-tiny-lora-masked"); }

    // The command line alone reproduces the trace; stopped at a checkpoint and resumed, it gives the same losses
    // and the same adapter as the run that was not interrupted.
    void commandLineTrainsAndResumesExactly() {
        QTemporaryDir dir;
        const QString trace = MWB_TEST_DATA "/lora/dsv3-tiny-lora";
        const QStringList common = {"--data", trace + "/data.safetensors", "--init-adapter", trace + "/adapter_init", "--lr", "0.002",
                                    "--batch", "4", "--steps", "12", "--no-shuffle"};
        const auto whole = train_cli(common + QStringList{"--out", dir.filePath("whole"), "--checkpoint-every", "5"}, dir.filePath("whole.jsonl"));
        QCOMPARE(whole.size(), size_t(12));
        const auto losses = load_trace("dsv3-tiny-lora").train["losses"].get<std::vector<double>>();
        for (size_t i = 0; i < whole.size(); ++i) {
            QCOMPARE(whole[i]["step"].get<int64_t>(), int64_t(i + 1));
            QVERIFY(std::fabs(whole[i]["loss"].get<double>() - losses[i]) <= 1e-4 * losses[i]);
            QCOMPARE(whole[i]["tokens"].get<int64_t>(), 96);
            QVERIFY(whole[i].contains("lr") && whole[i].contains("seconds"));
        }
        QVERIFY(QFileInfo::exists(dir.filePath("whole/checkpoint-5/optimizer.safetensors")));
        QVERIFY(QFileInfo::exists(dir.filePath("whole/checkpoint-10/trainer_state.json")));

        const auto resumed = train_cli(common + QStringList{"--out", dir.filePath("resumed"), "--resume", dir.filePath("whole/checkpoint-5")},
                                       dir.filePath("resumed.jsonl"));
        QCOMPARE(resumed.size(), size_t(7));
        for (size_t i = 0; i < resumed.size(); ++i) {
            QCOMPARE(resumed[i]["step"].get<int64_t>(), int64_t(i + 6));
            QCOMPARE(resumed[i]["loss"].get<double>(), whole[i + 5]["loss"].get<double>());  // exactly
        }
        auto a = LoraAdapter::load(dir.filePath("whole").toStdString(), *graph_);
        auto b = LoraAdapter::load(dir.filePath("resumed").toStdString(), *graph_);
        QVERIFY(a.ok() && b.ok());
        for (size_t i = 0; i < a->modules().size(); ++i) {
            QCOMPARE(a->modules()[i].a, b->modules()[i].a);
            QCOMPARE(a->modules()[i].b, b->modules()[i].b);
        }
        // A resume with other settings is refused.
        QProcess other;
        other.start(MWB_CLI, QStringList{"train", MWB_TEST_DATA "/models/dsv3-tiny"} + common +
                                 QStringList{"--out", dir.filePath("x"), "--resume", dir.filePath("whole/checkpoint-5"), "--batch", "2"});
        QVERIFY(other.waitForFinished(60000));
        QVERIFY(other.exitCode() != 0);
        QVERIFY(other.readAllStandardError().contains("batch size"));
    }

    // peft's final adapter applied unmerged gives peft's final logits; merged in float32 (one file, or shards with
    // an index) the model gives the same logits and the same greedy tokens through the KV cache, where the adapter
    // on kv_b_proj acts inside the absorbed decode.
    void adapterAtInferenceEqualsTheMergedModel() {
        const Trace trace = load_trace("dsv3-tiny-lora");
        auto adapter = LoraAdapter::load(kTraces + "dsv3-tiny-lora/adapter_final", *graph_);
        QVERIFY(adapter.ok());
        const LowRankDeltas deltas = adapter->deltas(*graph_);
        QCOMPARE(deltas.size(), adapter->modules().size());
        auto logits_of = [&](const std::shared_ptr<const ModelGraph>& graph, const LowRankDeltas* adapter_deltas) {
            auto backend = make_cpu_backend(graph, 2);
            if (!backend->reserve_cache(1, trace.tokens).ok()) qFatal("cache");
            const std::vector<int32_t> ids = trace.ids(0);
            auto logits = backend->forward({ids, {{0, 0, int64_t(ids.size())}}, true, adapter_deltas}, nullptr);
            if (!logits) qFatal("%s", logits.error().message.c_str());
            return *logits;
        };
        const std::vector<float> unmerged = logits_of(graph_, &deltas);
        const std::vector<float> peft = *trace.file.read_float("final_logits_row0", {});
        float worst = 0;
        for (size_t i = 0; i < peft.size(); ++i) worst = std::max(worst, std::fabs(unmerged[i] - peft[i]));
        QVERIFY2(worst <= 1e-3, qPrintable(QString::number(worst)));

        QTemporaryDir dir;
        const std::string model = MWB_TEST_DATA "/models/dsv3-tiny";
        const std::string merged_dir = dir.filePath("merged").toStdString();
        MergeOptions options;
        options.dtype = DType::F32;
        QVERIFY(merge_adapter(model, *graph_, *adapter, merged_dir, options).ok());
        auto merged = load_model_graph(merged_dir);
        QVERIFY2(merged.ok(), merged.ok() ? "" : merged.error().message.c_str());
        const auto merged_graph = std::make_shared<const ModelGraph>(std::move(merged.value()));
        const std::vector<float> merged_logits = logits_of(merged_graph, nullptr);
        worst = 0;
        for (size_t i = 0; i < merged_logits.size(); ++i) worst = std::max(worst, std::fabs(merged_logits[i] - unmerged[i]));
        QVERIFY2(worst <= 1e-4, qPrintable(QString::number(worst)));
        QVERIFY(QFileInfo::exists(QString::fromStdString(merged_dir + "/config.json")));

        // Greedy decoding through the cache: one token at a time takes the absorbed MLA path.
        auto greedy = [&](const std::shared_ptr<const ModelGraph>& graph, const LowRankDeltas* adapter_deltas) {
            auto backend = make_cpu_backend(graph, 2);
            if (!backend->reserve_cache(1, 32).ok()) qFatal("cache");
            GenerationRequest request;
            const std::vector<int32_t> ids = trace.ids(0);
            request.prompt.assign(ids.begin(), ids.begin() + 10);
            request.sampling.temperature = 0;
            request.max_new_tokens = 10;
            request.adapter = adapter_deltas;
            auto result = generate(*backend, request);
            if (!result) qFatal("%s", result.error().message.c_str());
            return result->tokens;
        };
        const auto with_adapter = greedy(graph_, &deltas);
        QCOMPARE(with_adapter, greedy(merged_graph, nullptr));
        QVERIFY(with_adapter != greedy(graph_, nullptr));  // the adapter changes what is generated

        // Shards and their index: the same model.
        options.max_shard_bytes = 100 * 1024;
        const std::string sharded_dir = dir.filePath("sharded").toStdString();
        QVERIFY(merge_adapter(model, *graph_, *adapter, sharded_dir, options).ok());
        const auto index = nlohmann::json::parse(*read_text_file(sharded_dir + "/model.safetensors.index.json"));
        std::set<std::string> shards;
        for (const auto& [name, file] : index["weight_map"].items()) shards.insert(file.get<std::string>());
        QVERIFY(shards.size() >= 2);
        QCOMPARE(index["weight_map"].size(), graph_->store->tensors().size());
        for (const std::string& file : shards) QVERIFY(QFileInfo::exists(QString::fromStdString(sharded_dir + "/" + file)));
        auto sharded = load_model_graph(sharded_dir);
        QVERIFY2(sharded.ok(), sharded.ok() ? "" : sharded.error().message.c_str());
        QCOMPARE(logits_of(std::make_shared<const ModelGraph>(std::move(sharded.value())), nullptr), merged_logits);
        // A folder that is not empty is not written into.
        QVERIFY(!merge_adapter(model, *graph_, *adapter, merged_dir, options).ok());
    }

    // Every other architecture the trainer supports, checked against independent truth: its forward pass gives
    // the fixture's transformers logits, and its gradient equals the loss's finite differences along random
    // directions (an adapter on every linear layer, B not zero, so that every backward path carries gradient).
    void gradientsMatchFiniteDifferences_data() {
        QTest::addColumn<QString>("fixture");
        QTest::addColumn<double>("dropout");
        QTest::newRow("deepseek_v2: MLA without q_lora, softmax routing") << "dsv2-tiny" << 0.0;
        QTest::newRow("qwen2: GQA with q/k/v biases") << "qwen2-tiny" << 0.0;
        QTest::newRow("llama: GQA, llama3 RoPE") << "llama-tiny" << 0.0;
        QTest::newRow("deepseek_v3: routed experts adapted too") << "dsv3-tiny" << 0.0;
        QTest::newRow("qwen2 with LoRA dropout 0.3 (a fixed mask)") << "qwen2-tiny" << 0.3;
    }
    void gradientsMatchFiniteDifferences() {
        QFETCH(QString, fixture);
        QFETCH(double, dropout);
        const testing::Fixture f = testing::load_fixture(fixture.toStdString());
        auto model = LoraModel::create(f.graph, 2);
        QVERIFY(model.ok());
        const std::vector<int32_t> ids = f.prompt(0);
        std::vector<int64_t> labels(ids.begin(), ids.end());
        // Zero B: the model is the base model, whose logits transformers computed.
        LoraConfig config;
        config.target_modules = {"q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "k_proj", "v_proj", "o_proj",
                                 "gate_proj", "up_proj", "down_proj"};
        config.rank = 2;
        config.alpha = 4;
        config.dropout = dropout;
        auto adapter = LoraAdapter::create(*f.graph, config, 11);
        QVERIFY(adapter.ok());
        std::vector<float> logits;
        QVERIFY(model->row_loss(*adapter, ids, labels, 0, nullptr, &logits).ok());
        const std::vector<float> reference = f.floats(testing::prompt_key(0, ".logits"));
        float worst = 0;
        for (size_t i = 0; i < reference.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - reference[i]));
        QVERIFY2(worst <= 1e-3, qPrintable(QStringLiteral("logits differ by %1").arg(worst)));

        std::mt19937 random(5);
        std::normal_distribution<float> normal(0.0f, 0.05f);
        for (LoraModule& m : adapter->modules())
            for (float& b : m.b) b = normal(random);
        model->set_dropout_seed(dropout > 0 ? 42 : 0);  // every evaluation below draws the same mask
        LoraGradients gradient = LoraGradients::zeros_like(*adapter);
        const float scale = 1.0f / float(counted_labels(labels));
        std::vector<int32_t> routing;  // recorded here, imposed on the shifted adapters: no expert choice flips
        auto loss = model->row_loss(*adapter, ids, labels, scale, &gradient, nullptr, &routing);
        QVERIFY(loss.ok());
        for (int direction = 0; direction < 3; ++direction) {
            // A random unit direction over every matrix.
            LoraGradients d = LoraGradients::zeros_like(*adapter);
            for (auto* group : {&d.a, &d.b})
                for (auto& v : *group)
                    for (float& x : v) x = normal(random);
            d.scale(float(1.0 / std::sqrt(d.squared_norm())));
            double along = 0;
            for (size_t i = 0; i < d.a.size(); ++i) {
                for (size_t j = 0; j < d.a[i].size(); ++j) along += double(gradient.a[i][j]) * d.a[i][j];
                for (size_t j = 0; j < d.b[i].size(); ++j) along += double(gradient.b[i][j]) * d.b[i][j];
            }
            auto shifted = [&](float h) {
                LoraAdapter moved = *adapter;
                for (size_t i = 0; i < d.a.size(); ++i) {
                    for (size_t j = 0; j < d.a[i].size(); ++j) moved.modules()[i].a[j] += h * d.a[i][j];
                    for (size_t j = 0; j < d.b[i].size(); ++j) moved.modules()[i].b[j] += h * d.b[i][j];
                }
                std::vector<int32_t> replayed = routing;
                return *model->row_loss(moved, ids, labels, 0, nullptr, nullptr, &replayed) * double(scale);
            };
            // A step large enough for float32's rounding of the loss; the routing is replayed, so it cannot flip.
            const float h = 2e-2f;
            const double numeric = (shifted(h) - shifted(-h)) / (2.0 * double(h));
            QVERIFY2(std::fabs(numeric - along) <= 1e-2 * std::max(1e-3, std::fabs(along)),
                     qPrintable(QStringLiteral("direction %1: analytic %2, numeric %3").arg(direction).arg(along, 0, 'g', 8).arg(numeric, 0, 'g', 8)));
        }
        if (dropout > 0) {
            // Another mask gives another gradient: the dropout is really applied.
            LoraGradients other = LoraGradients::zeros_like(*adapter);
            model->set_dropout_seed(43);
            QVERIFY(model->row_loss(*adapter, ids, labels, scale, &other).ok());
            QVERIFY(other.a != gradient.a);
        }
    }

    // Recomputing each layer in the backward pass gives the very same gradients.
    void gradientCheckpointingChangesNothing() {
        const Trace trace = load_trace("dsv3-tiny-lora-masked");
        auto adapter = LoraAdapter::load(kTraces + "dsv3-tiny-lora-masked/adapter_init", *graph_);
        QVERIFY(adapter.ok());
        auto model = LoraModel::create(graph_, 2);
        LoraGradients plain = LoraGradients::zeros_like(*adapter), checkpointed = plain;
        const double loss = batch_gradient(*model, *adapter, trace, 0, 4, plain);
        model->set_gradient_checkpointing(true);
        QCOMPARE(batch_gradient(*model, *adapter, trace, 0, 4, checkpointed), loss);
        QCOMPARE(checkpointed.a, plain.a);
        QCOMPARE(checkpointed.b, plain.b);
    }

    // The memory plan of dsv3-tiny, rank 8 on the five MLA projections, 24 tokens, counted here by hand.
    void memoryPlanMatchesAHandCount() {
        auto adapter = LoraAdapter::load(kTraces + "dsv3-tiny-lora/adapter_init", *graph_);
        QVERIFY(adapter.ok());
        const TrainingMemoryPlan plan = plan_training_memory(*graph_, *adapter, 24);
        // Per layer, r·(in + out): q_a 8·(128+48), q_b 8·(48+128), kv_a 8·(128+48), kv_b 8·(32+128), o 8·(64+128).
        QCOMPARE(plan.adapter_parameters, int64_t(4 * (1408 + 1408 + 1408 + 1280 + 1536)));
        QCOMPARE(plan.adapter_bytes, 16 * plan.adapter_parameters);
        // Linear weights: attention 128·48 + 48·128 + 128·48 + 32·128 + 64·128 = 30720 per layer; the dense MLP
        // 3·128·256; each MoE layer 16 experts and 1 shared expert of 3·128·64; lm_head 512·128.
        const int64_t attention = 4 * 30720, dense = 3 * 128 * 256, moe = 3 * 17 * 3 * 128 * 64, head = 512 * 128;
        QCOMPARE(plan.frozen_weight_bytes, 4 * (attention + dense + moe + head));
        QCOMPARE(plan.logits_bytes, int64_t(4 * 2 * 24 * 512));
        // Activations, T = 24: per layer 4·T·128 + 2T residuals and norms, 4·T·T probabilities, q T·4·32, q_a
        // 2·T·48 + T, kv_a T·48, latent T·32 + T, rope key T·16, keys and values T·4·32, attended T·4·16; dense
        // MLP 3·T·256; MoE T·16 scores, 2·T·4 choices, T·4·(2·128 + 3·64) expert tensors, shared 3·T·64.
        const int64_t t = 24;
        const int64_t common = 4 * t * 128 + 2 * t + 4 * t * t + t * 128 + 2 * t * 48 + t + t * 48 + t * 32 + t + t * 16 + t * 128 + t * 64;
        const int64_t dense_layer = common + 3 * t * 256, moe_layer = common + t * 16 + 2 * t * 4 + t * 4 * (2 * 128 + 3 * 64) + 3 * t * 64;
        const int64_t final_norm = 2 * t * 128 + t;
        QCOMPARE(plan.activation_bytes, 4 * (dense_layer + 3 * moe_layer + final_norm));
        QCOMPARE(plan.checkpointed_activation_bytes, 4 * (4 * t * 128 + std::max(dense_layer, moe_layer) + final_norm));
        QVERIFY(describe(plan).find("with gradient checkpointing") != std::string::npos);

        // On the GPU: bf16 weights plus the embedding table (dsv3-tiny's is not tied) and three fp32 routers of
        // 16·128, the adapter without its moments, one layer's backward temporaries on top, the logits' bf16 copy,
        // and the cuBLAS workspace.
        const TrainingMemoryPlan gpu = plan_training_memory(*graph_, *adapter, 24, TrainingDevice::Cuda);
        QCOMPARE(gpu.frozen_weight_bytes, 2 * (attention + dense + moe + head + 512 * 128) + 4 * 3 * 16 * 128);
        QCOMPARE(gpu.adapter_bytes, 8 * plan.adapter_parameters);
        const int64_t largest = std::max(dense_layer, moe_layer);
        QCOMPARE(gpu.activation_bytes, 4 * (dense_layer + 3 * moe_layer + final_norm + largest));
        QCOMPARE(gpu.checkpointed_activation_bytes, 4 * (4 * t * 128 + 2 * largest + final_norm));
        QCOMPARE(gpu.logits_bytes, int64_t(10 * 24 * 512));
        QCOMPARE(gpu.workspace_bytes, int64_t(32) << 20);
        QCOMPARE(gpu.total(true), gpu.frozen_weight_bytes + gpu.adapter_bytes + gpu.checkpointed_activation_bytes + gpu.logits_bytes +
                                      gpu.workspace_bytes);
        QVERIFY(describe(gpu).find("bf16 on the GPU") != std::string::npos);
    }

    // Written in PEFT's layout and read back unchanged; a new adapter starts with B = 0 (the model unchanged).
    void adapterRoundTripsInPeftFormat() {
        LoraConfig config;
        config.target_modules = {"q_a_proj", "o_proj", "shared_experts.down_proj"};
        config.rank = 4;
        config.alpha = 8;
        config.rslora = true;
        auto adapter = LoraAdapter::create(*graph_, config, 3);
        QVERIFY(adapter.ok());
        QCOMPARE(adapter->modules().size(), size_t(4 + 4 + 3));  // shared experts in the three MoE layers
        for (const LoraModule& m : adapter->modules()) {
            QVERIFY(std::all_of(m.b.begin(), m.b.end(), [](float v) { return v == 0.0f; }));
            const float bound = 1.0f / std::sqrt(float(m.in_features));
            QVERIFY(std::all_of(m.a.begin(), m.a.end(), [bound](float v) { return std::fabs(v) <= bound; }));
        }
        adapter->modules()[0].b[3] = 0.25f;
        QTemporaryDir dir;
        QVERIFY(adapter->save(dir.path().toStdString(), "dsv3-tiny").ok());
        auto read = LoraAdapter::load(dir.path().toStdString(), *graph_);
        QVERIFY2(read.ok(), read.ok() ? "" : read.error().message.c_str());
        QCOMPARE(read->config().rank, 4);
        QCOMPARE(read->config().scale(), 8.0 / 2.0);  // rsLoRA: alpha / √r
        QCOMPARE(read->modules().size(), adapter->modules().size());
        for (const LoraModule& m : adapter->modules()) {
            QVERIFY(read->find(m.name));
            QCOMPARE(read->find(m.name)->a, m.a);
            QCOMPARE(read->find(m.name)->b, m.b);
        }
        const auto json = nlohmann::json::parse(*read_text_file(dir.filePath("adapter_config.json").toStdString()));
        QCOMPARE(json["peft_type"].get<std::string>(), std::string("LORA"));
        QCOMPARE(json["r"].get<int>(), 4);
        QCOMPARE(json["lora_alpha"].get<double>(), 8.0);
        QVERIFY(json["modules_to_save"].is_null());
        auto tensors = TensorStore::open_file(dir.filePath("adapter_model.safetensors").toStdString());
        QVERIFY(tensors->contains("base_model.model.model.layers.1.mlp.shared_experts.down_proj.lora_B.weight"));
        // Targets that match nothing are an error naming what the model has.
        config.target_modules = {"c_attn"};
        auto none = LoraAdapter::create(*graph_, config, 3);
        QVERIFY(!none.ok());
        QVERIFY(none.error().message.find("kv_b_proj") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(LoraTrainingTest)
#include "test_lora_training.moc"
