// The mwb command line on the fixture models: logits files the oracle can read, info, generate.
#include <QtTest>

#include <QJsonDocument>
#include <QJsonObject>

#include <cmath>
#include <cstdint>

#include <nlohmann/json.hpp>

#include <QDir>

#include "engine/io/safetensors.h"
#include "engine/model/random_weights.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/support/cli_process.h"

using namespace mwb;

namespace {

const QString kModels = QStringLiteral(MWB_TEST_DATA "/models/");

using testing::run_mwb;
using Run = testing::CliRun;

// 1234567 → "1,234,567", as mwb info prints counts.
std::string grouped(int64_t value) {
    std::string digits = std::to_string(value), out;
    for (size_t i = 0; i < digits.size(); ++i) out += (i > 0 && (digits.size() - i) % 3 == 0 ? "," : "") + std::string(1, digits[i]);
    return out;
}

template <class Id>
QString ids_text(const std::vector<Id>& ids) {
    QStringList parts;
    for (Id id : ids) parts << QString::number(id);
    return parts.join(',');
}

}  // namespace

class CliTest : public QObject {
    Q_OBJECT

private slots:
    void logits_file_matches_the_reference() {
        auto reference = TensorStore::open_file((kModels + "dsv3-tiny/reference.safetensors").toStdString());
        QVERIFY(reference.ok());
        const auto ids = *reference->read_int64("p1.input_ids");
        const QString out = QStringLiteral(MWB_TEST_OUTPUT "/dsv3-tiny-p1.safetensors");
        const Run run = run_mwb({"logits", kModels + "dsv3-tiny", "--ids", ids_text(ids), "--out", out, "--attention"});
        QVERIFY2(run.exit_code == 0, qPrintable(run.err));

        auto written = TensorStore::open_file(out.toStdString());
        QVERIFY(written.ok());
        for (const auto& [name, view] : reference->tensors()) {
            if (name.rfind("p1.", 0) != 0 || name == "p1.greedy") continue;
            const std::string ours = name.substr(3);
            QVERIFY2(written->contains(ours), ours.c_str());
            QCOMPARE(written->get(ours)->shape, view.shape);
            QCOMPARE(written->get(ours)->dtype, view.dtype);
            if (view.dtype == DType::I64) {
                QCOMPARE(*written->read_int64(ours), *reference->read_int64(name));
                continue;
            }
            const auto a = *written->read_float(ours, {}), b = *reference->read_float(name, {});
            float worst = 0;
            for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
            QVERIFY2(worst <= 1e-3f, qPrintable(QString("%1: %2").arg(QString::fromStdString(ours)).arg(worst)));
        }
    }

    void info_reports_parameters() {
        const Run run = run_mwb({"info", kModels + "dsv3-tiny", "--json"});
        QVERIFY2(run.exit_code == 0, qPrintable(run.err));
        const auto info = nlohmann::json::parse(run.out.toStdString());
        QCOMPARE(info["architecture"].get<std::string>(), std::string("deepseek_v3"));
        QCOMPARE(info["layers"].get<int>(), 4);
        QCOMPARE(info["moe_layers"].get<int>(), 3);
        QCOMPARE(info["routed_experts"].get<int>(), 16);
        QCOMPARE(info["experts_per_token"].get<int>(), 4);
        // By hand from config.json: embeddings + lm_head 2·512·128; per layer norms 2·128, MLA
        // 48·128 + 48 + 128·48 + 48·128 + 32 + 128·32 + 128·64; layer 0 MLP 3·256·128; layers 1-3: router
        // 16·128 + 16 bias, 16 experts and 1 shared expert of 3·64·128; final norm 128.
        const int64_t mla = 48 * 128 + 48 + 128 * 48 + 48 * 128 + 32 + 128 * 32 + 128 * 64;
        const int64_t expert = 3 * 64 * 128;
        const int64_t total = 2 * 512 * 128 + 4 * (2 * 128 + mla) + 3 * 256 * 128 + 3 * (16 * 128 + 16 + 17 * expert) + 128;
        QCOMPARE(info["total_parameters"].get<int64_t>(), total);
        QCOMPARE(info["active_parameters_per_token"].get<int64_t>(), total - 3 * 12 * expert);
        // MLA cache: (kv_lora 32 + rope 16) values per layer per token, 4 layers, 1024 tokens, 2 bytes.
        QCOMPARE(info["kv_cache_bytes_per_1k_tokens_bf16"].get<int64_t>(), int64_t(48 * 4 * 1024 * 2));
        QCOMPARE(info["weights_dtype"].get<std::string>(), std::string("BF16"));
        // Without --json, the same facts for a person.
        const Run text = run_mwb({"info", kModels + "dsv3-tiny"});
        QVERIFY2(text.exit_code == 0, qPrintable(text.err));
        QVERIFY2(text.out.contains("deepseek_v3") && text.out.contains(QString::fromStdString(grouped(total)) + " total") &&
                     text.out.contains("4 (3 MoE: 16 routed experts, 4 per token, 1 shared)"),
                 qPrintable(text.out));

        // FP8: the weight_scale_inv tensors are not parameters. By hand: embeddings + lm_head 2·512·256, per
        // layer norms 2·256 and MLA 160·256 + 160 + 128·160 + 112·256 + 96 + 128·96 + 256·64, layer 0 MLP
        // 3·384·256, layer 1 router 16·256 + 16 and 17 experts of 3·160·256, final norm 256.
        const Run fp8 = run_mwb({"info", kModels + "dsv3-fp8-tiny", "--json"});
        QVERIFY2(fp8.exit_code == 0, qPrintable(fp8.err));
        const auto fp8_info = nlohmann::json::parse(fp8.out.toStdString());
        const int64_t fp8_mla = 160 * 256 + 160 + 128 * 160 + 112 * 256 + 96 + 128 * 96 + 256 * 64;
        QCOMPARE(fp8_info["total_parameters"].get<int64_t>(),
                 int64_t(2 * 512 * 256 + 2 * (2 * 256 + fp8_mla) + 3 * 384 * 256 + 16 * 256 + 16 + 17 * 3 * 160 * 256 + 256));
        QCOMPARE(fp8_info["weights_dtype"].get<std::string>(), std::string("F8_E4M3 + BF16"));
    }

    void generate_reproduces_the_greedy_reference() {
        auto reference = TensorStore::open_file((kModels + "dsv2-tiny/reference.safetensors").toStdString());
        QVERIFY(reference.ok());
        const Run run = run_mwb({"generate", kModels + "dsv2-tiny", "--ids", ids_text(*reference->read_int64("p0.input_ids")),
                                 "--max-new", "12", "--temperature", "0"});
        QVERIFY2(run.exit_code == 0, qPrintable(run.err));
        QCOMPARE(run.out.trimmed(), ids_text(*reference->read_int64("p0.greedy")));
    }

    void chat_prompt_text_equals_the_detokenized_ids() {
        // A tiny random-weight DeepSeek-V3 with the real DeepSeek-V3 tokenizer.
        const QString dir = QStringLiteral(MWB_TEST_OUTPUT "/tiny-chat-model");
        QDir().mkpath(dir);
        const QString tokenizer_dir = QStringLiteral(MWB_TEST_DATA "/tokenizer/deepseek-v3");
        for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
            QFile::remove(dir + "/" + file);
            QVERIFY(QFile::copy(tokenizer_dir + "/" + file, dir + "/" + file));
        }
        QFile source(kModels + "dsv3-tiny/config.json");
        QVERIFY(source.open(QIODevice::ReadOnly));
        auto config_json = nlohmann::json::parse(source.readAll().toStdString());
        config_json["vocab_size"] = 129280;
        QFile target(dir + "/config.json");
        QVERIFY(target.open(QIODevice::WriteOnly | QIODevice::Truncate));
        target.write(QByteArray::fromStdString(config_json.dump(2)));
        target.close();
        auto config = parse_model_config(config_json.dump());
        QVERIFY(config.ok());
        QVERIFY(write_safetensors((dir + "/model.safetensors").toStdString(), random_weights(*config, 11)).ok());

        auto tokenizer = tok::Tokenizer::load(tokenizer_dir.toStdString());
        QVERIFY(tokenizer.ok());
        auto rendered = tokenizer->apply_chat_template({{"user", "Hello!", {}, {}, tok::TemplateJson::object()}}, true);
        QVERIFY(rendered.ok());
        auto prompt_ids = tokenizer->encode(*rendered, false);
        QVERIFY(prompt_ids.ok());
        const QStringList sampling = {"--max-new", "10", "--temperature", "0.9", "--top-p", "0.95", "--seed", "5"};

        const Run by_ids = run_mwb(QStringList{"generate", dir, "--ids", ids_text(*prompt_ids)} + sampling);
        QVERIFY2(by_ids.exit_code == 0, qPrintable(by_ids.err));
        std::vector<int32_t> generated;
        for (const QString& id : by_ids.out.trimmed().split(',')) generated.push_back(id.toInt());
        QCOMPARE(generated.size(), size_t(10));

        const Run by_text = run_mwb(QStringList{"generate", dir, "--prompt", "Hello!", "--chat"} + sampling);
        QVERIFY2(by_text.exit_code == 0, qPrintable(by_text.err));
        QVERIFY(by_text.err.contains(QStringLiteral("prompt=%1 ").arg(prompt_ids->size())));
        QCOMPARE(by_text.out, QString::fromStdString(tokenizer->decode(generated, true)) + "\n");
    }

    // The reference shape with one (dense) layer on the CPU: the bound counts, by hand, lm_head, one embedding row,
    // the MLA projections q_a 1536·2048, q_b 3072·1536, kv_a 576·2048, kv_b 4096·512, o 2048·2048 and the MLP
    // 3·10944·2048 in bf16, plus the 576-value cache row of each of the 4 + 2/2 tokens of average context.
    void bench_reports_the_decode_bound() {
        const Run run = run_mwb({"bench", "--shape", "v3-16b", "--layers", "1", "--random-weights", "--prompt", "4", "--gen", "2",
                                 "--bandwidth", "1000", "--device", "cpu"});
        QVERIFY2(run.exit_code == 0, qPrintable(run.err));
        const auto report = nlohmann::json::parse(run.out.toStdString());
        const double weights = 2.0 * (129280.0 * 2048 + 2048 + 1536.0 * 2048 + 3072.0 * 1536 + 576.0 * 2048 + 4096.0 * 512 + 2048.0 * 2048 +
                                      3.0 * 10944 * 2048);
        const double step = weights + 576.0 * 2 * 5;
        QCOMPARE(report["decode_bytes_per_step"].get<double>(), step);
        QVERIFY(std::fabs(report["decode_bound_tokens_per_s"].get<double>() - 1000e9 / step) < 1e-9 * (1000e9 / step));
        QCOMPARE(report["expected_distinct_experts_per_moe_layer"].get<double>(), 6.0);
        QVERIFY(report["fraction_of_bound"].get<double>() > 0);
    }

    void errors_are_reported_not_crashed() {
        const Run missing = run_mwb({"info", kModels + "no-such-model"});
        QCOMPARE(missing.exit_code, 1);
        QVERIFY(missing.err.contains("config.json missing"));
        const Run bad_id = run_mwb({"generate", kModels + "dsv3-tiny", "--ids", "1,99999"});
        QCOMPARE(bad_id.exit_code, 1);
        QVERIFY(bad_id.err.contains("99999"));
        const Run unknown = run_mwb({"frobnicate"});
        QCOMPARE(unknown.exit_code, 2);
        const Run both = run_mwb({"generate", kModels + "dsv3-tiny", "--ids", "1,2", "--prompt", "hello"});
        QCOMPARE(both.exit_code, 1);
        QVERIFY2(both.err.contains("--prompt and --ids"), qPrintable(both.err));
    }

    // A misspelt option is an error that names it and lists the valid ones, never a silent default.
    void unknown_options_are_errors() {
        const Run misspelt = run_mwb({"generate", kModels + "dsv3-tiny", "--ids", "1,2", "--temprature", "0.1"});
        QCOMPARE(misspelt.exit_code, 1);
        QVERIFY2(misspelt.err.contains("unknown option --temprature") && misspelt.err.contains("--temperature"), qPrintable(misspelt.err));
        const Run with_value = run_mwb({"tokenize", "--tokenizer", kModels + "dsv3-tiny", "--txt=hello"});
        QCOMPARE(with_value.exit_code, 1);
        QVERIFY2(with_value.err.contains("unknown option --txt"), qPrintable(with_value.err));
        const Run flag = run_mwb({"info", kModels + "dsv3-tiny", "--verbose"});
        QCOMPARE(flag.exit_code, 1);
        QVERIFY2(flag.err.contains("unknown option --verbose"), qPrintable(flag.err));
    }

    // serve and export refuse what they cannot do before they start anything.
    void serve_and_export_refuse_bad_arguments() {
        const Run open = run_mwb({"serve", kModels + "dsv3-tiny", "--host", "0.0.0.0", "--port", "0"});
        QCOMPARE(open.exit_code, 1);
        QVERIFY2(open.err.contains("API key"), qPrintable(open.err));
        const Run typo = run_mwb({"serve", kModels + "dsv3-tiny", "--max-batches", "4"});
        QCOMPARE(typo.exit_code, 1);
        QVERIFY2(typo.err.contains("unknown option --max-batches"), qPrintable(typo.err));
        const QString v3 = QStringLiteral(MWB_TEST_DATA "/deploy/deepseek-v3");
        const Run target = run_mwb({"export", v3, "--target", "kubernetes", "--out", "/tmp/unused"});
        QCOMPARE(target.exit_code, 1);
        QVERIFY2(target.err.contains("unknown target 'kubernetes'") && target.err.contains("k8s"), qPrintable(target.err));
        const Run gpu = run_mwb({"export", v3, "--plan-only", "--gpu", "b300"});
        QCOMPARE(gpu.exit_code, 1);
        QVERIFY2(gpu.err.contains("unknown GPU 'b300'") && gpu.err.contains("h200"), qPrintable(gpu.err));
        // The plan is JSON that says whether it fits.
        const Run plan = run_mwb({"export", v3, "--plan-only", "--gpu", "h200", "--gpus-per-node", "8"});
        QCOMPARE(plan.exit_code, 0);
        const QJsonObject json = QJsonDocument::fromJson(plan.out.toUtf8()).object();
        QCOMPARE(json.value("fits").toBool(), true);
        QCOMPARE(json.value("layout").toObject().value("expert_parallel").toInt(), 8);
    }

    void jsonl_that_is_not_utf8_says_so() {
        QTemporaryDir scratch;
        QFile lines(scratch.filePath("texts.jsonl"));
        QVERIFY(lines.open(QIODevice::WriteOnly));
        lines.write("{\"text\": \"fine\"}\n{\"text\": \"caf\xe9\"}\n");
        lines.close();
        const Run run = run_mwb({"tokenize", "--tokenizer", QStringLiteral(MWB_TEST_DATA "/tokenizer/deepseek-v3"), "--jsonl", lines.fileName()});
        QCOMPARE(run.exit_code, 1);
        QVERIFY2(run.err.contains("texts.jsonl:2:") && run.err.contains("UTF-8"), qPrintable(run.err));
    }

    void deeply_nested_messages_are_an_error() {
        QTemporaryDir scratch;
        QFile messages(scratch.filePath("messages.json"));
        QVERIFY(messages.open(QIODevice::WriteOnly));
        messages.write(QByteArray(100000, '[') + QByteArray(100000, ']'));
        messages.close();
        const Run run = run_mwb({"template", "--tokenizer", QStringLiteral(MWB_TEST_DATA "/tokenizer/deepseek-v3"), "--messages", messages.fileName()});
        QCOMPARE(run.exit_code, 1);
        QVERIFY2(run.err.contains("nested more than 256 levels deep"), qPrintable(run.err));
    }

    void help_and_version() {
        const Run help = run_mwb({"generate", "--help"});
        QCOMPARE(help.exit_code, 0);
        QVERIFY2(help.out.startsWith("usage: mwb generate") && help.out.contains("--tokenizer") && help.out.contains("--system"),
                 qPrintable(help.out));
        const Run version = run_mwb({"--version"});
        QCOMPARE(version.exit_code, 0);
        QCOMPARE(version.out, QString("mwb " MWB_PROJECT_VERSION "\n"));
    }
};

QTEST_GUILESS_MAIN(CliTest)
#include "test_cli.moc"
