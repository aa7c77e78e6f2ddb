// The deployment exporters: every command uses only flags its engine has (the lists below are from
// deployment-lora-docs-vision.md §1.1–1.4, plus --host/--port, which every server takes), every YAML file parses
// back with the keys its schema needs and strings where Kubernetes and Compose want strings, and the exports of
// two plans equal the reviewed files in tests/data/deploy/golden. To renew those after a deliberate change:
//   build/app/mwb export tests/data/deploy/deepseek-v3 --target all --gpu h200 --model-id deepseek-ai/DeepSeek-V3
//     --out tests/data/deploy/golden/v3-8xh200
//   build/app/mwb export tests/data/deploy/deepseek-v2-lite --target all --gpu rtx4090 --gpus-per-node 1 --context 8192
//     --concurrency 1 --model-id deepseek-ai/DeepSeek-V2-Lite-Chat --out tests/data/deploy/golden/v2-lite-1xrtx4090
// (each on one line), delete the plan.json and README.md they also write, and read the difference before committing.
#include <QtTest>

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "engine/deploy/deployment_plan.h"
#include "plan_requests.h"
#include "plugins/export/exporter.h"

using namespace mwb;
using namespace mwb::deploy;
using namespace mwb::exporters;

namespace {

const std::string kData = std::string(MWB_TEST_DATA) + "/deploy/";

const std::map<std::string, std::set<std::string>> kRealFlags = {
    {"vllm", {"--trust-remote-code", "--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size", "--data-parallel-size-local",
              "--data-parallel-address", "--data-parallel-rpc-port", "--headless", "--data-parallel-start-rank", "--distributed-executor-backend",
              "--enable-expert-parallel", "--gpu-memory-utilization", "--kv-cache-dtype", "--max-model-len", "--max-num-seqs",
              "--speculative-config", "--enable-lora", "--lora-modules", "--max-lora-rank", "--max-loras", "--reasoning-parser",
              "--tool-call-parser", "--enable-eplb", "--host", "--port"}},
    {"sglang", {"--model", "--tp", "--dp", "--enable-dp-attention", "--ep-size", "--dist-init-addr", "--nnodes", "--node-rank",
                "--trust-remote-code", "--context-length", "--mem-fraction-static", "--kv-cache-dtype", "--host", "--port", "--enable-metrics",
                "--reasoning-parser", "--tool-call-parser", "--speculative-algorithm", "--speculative-num-steps", "--speculative-eagle-topk",
                "--speculative-num-draft-tokens", "--max-running-requests", "--enable-lora", "--lora-paths", "--max-lora-rank",
                "--max-loras-per-batch", "--enable-eplb"}},
    {"trtllm", {"--host", "--port", "--trust_remote_code", "--max_batch_size", "--max_num_tokens", "--tp_size", "--ep_size", "--pp_size",
                "--config", "--reasoning_parser"}},
    {"llama-server", {"-m", "-c", "-ngl", "-ts", "-sm", "-fa", "-ctk", "-ctv", "--cpu-moe", "--n-cpu-moe", "-np", "--jinja",
                      "--reasoning-format", "--lora", "--metrics", "--host", "--port"}},
};
const std::set<std::string> kTrtllmOptionKeys = {"enable_attention_dp", "cuda_graph_config", "kv_cache_config", "moe_config",
                                                 "speculative_config", "stream_interval", "tensor_parallel_size", "moe_expert_parallel_size"};

DeploymentPlan plan(const char* model, const char* gpu, int64_t per_node, int64_t nodes, int64_t context, int64_t concurrency, const char* id) {
    PlanRequest r = plan_request(model, gpu, per_node, nodes, context, concurrency);
    r.model = id;
    return plan_deployment(r);
}

std::vector<ExportResult> export_all(const DeploymentPlan& p, const char* model) {
    ExportContext context;
    context.model_directory = kData + model;
    std::vector<ExportResult> results;
    for (const auto& e : mwb::exporters::exporters()) {
        auto written = e->write(p, context);
        if (!written) qFatal("%s: %s", e->id().c_str(), written.error().message.c_str());
        results.push_back(written.value());
    }
    return results;
}

// The flags of a shell script written one per line ("  --flag value \").
std::vector<std::string> script_flags(const std::string& script) {
    std::vector<std::string> flags;
    std::istringstream lines(script);
    std::string line;
    while (std::getline(lines, line))
        if (line.rfind("  -", 0) == 0) flags.push_back(line.substr(2, line.find(' ', 2) - 2));
    return flags;
}

std::string read_file(const std::string& path) {
    std::ifstream file(path);
    std::stringstream text;
    text << file.rdbuf();
    return file ? text.str() : std::string("(missing)");
}

void check_flags(const std::vector<ExportResult>& results) {
    for (const auto& result : results) {
        auto known = kRealFlags.find(result.target);
        if (known == kRealFlags.end()) continue;
        for (const auto& file : result.files) {
            if (file.name.size() < 3 || file.name.substr(file.name.size() - 3) != ".sh") continue;
            const auto flags = script_flags(file.contents);
            QVERIFY2(!flags.empty() || file.name.find("ray-") != std::string::npos, file.name.c_str());
            for (const auto& flag : flags)
                QVERIFY2(known->second.count(flag), qPrintable(QString::fromStdString(result.target + ": " + flag + " in " + file.name)));
        }
    }
}

const ExportedFile& file_named(const std::vector<ExportResult>& results, const std::string& name) {
    for (const auto& r : results)
        for (const auto& f : r.files)
            if (f.name == name) return f;
    qFatal("no file %s", name.c_str());
}

}  // namespace

class ExportersTest : public QObject {
    Q_OBJECT

private slots:
    void commands_use_only_real_flags_data() {
        QTest::addColumn<QString>("model");
        QTest::addColumn<QString>("gpu");
        QTest::addColumn<int>("per_node");
        QTest::addColumn<int>("nodes");
        QTest::newRow("V3 on 8×H200") << "deepseek-v3" << "h200" << 8 << 1;
        QTest::newRow("V3 on 2×8 H100") << "deepseek-v3" << "h100" << 8 << 2;
        QTest::newRow("V2 on 2×8 A100 (TP × PP)") << "deepseek-v2" << "a100-80" << 8 << 2;
        QTest::newRow("V2-Lite on an RTX 4090") << "deepseek-v2-lite" << "rtx4090" << 1 << 1;
        QTest::newRow("R1-Distill-Llama-70B on 4×L40S") << "deepseek-r1-distill-llama-70b" << "l40s" << 4 << 1;
    }
    void commands_use_only_real_flags() {
        QFETCH(QString, model);
        QFETCH(QString, gpu);
        QFETCH(int, per_node);
        QFETCH(int, nodes);
        const auto p = plan(model.toLatin1(), gpu.toLatin1(), per_node, nodes, 16384, 8, "org/model");
        check_flags(export_all(p, model.toLatin1()));
    }

    void kubernetes_files_parse_with_their_schema() {
        const auto single = export_all(plan("deepseek-v3", "h200", 8, 1, 32768, 64, "deepseek-ai/DeepSeek-V3"), "deepseek-v3");
        const ExportedFile& k8s = file_named(single, "k8s/deepseek-v3.yaml");
        const auto docs = YAML::LoadAll(k8s.contents);
        QCOMPARE(docs.size(), size_t(2));
        QCOMPARE(docs[0]["kind"].as<std::string>(), std::string("Deployment"));
        const YAML::Node pod = docs[0]["spec"]["template"];
        QCOMPARE(pod["metadata"]["labels"]["app"].as<std::string>(), docs[0]["spec"]["selector"]["matchLabels"]["app"].as<std::string>());
        const YAML::Node c = pod["spec"]["containers"][0];
        QCOMPARE(c["resources"]["limits"]["nvidia.com/gpu"].as<std::string>(), std::string("8"));
        QCOMPARE(c["command"][0].as<std::string>(), std::string("vllm"));
        QCOMPARE(c["readinessProbe"]["httpGet"]["path"].as<std::string>(), std::string("/health"));
        QCOMPARE(c["volumeMounts"][0]["mountPath"].as<std::string>(), std::string("/dev/shm"));
        QCOMPARE(pod["spec"]["volumes"][0]["emptyDir"]["medium"].as<std::string>(), std::string("Memory"));
        QCOMPARE(docs[1]["kind"].as<std::string>(), std::string("Service"));
        // Strings where the API wants strings: annotations and every word of the command are quoted.
        QVERIFY(k8s.contents.find("prometheus.io/scrape: \"true\"") != std::string::npos);
        QVERIFY(k8s.contents.find("\"--port\", \"8000\"") != std::string::npos);

        const auto multi = export_all(plan("deepseek-v3", "h100", 8, 2, 32768, 64, "deepseek-ai/DeepSeek-V3"), "deepseek-v3");
        const auto lws = YAML::LoadAll(file_named(multi, "k8s/deepseek-v3-lws.yaml").contents);
        QCOMPARE(lws[0]["apiVersion"].as<std::string>(), std::string("leaderworkerset.x-k8s.io/v1"));
        const YAML::Node group = lws[0]["spec"]["leaderWorkerTemplate"];
        QCOMPARE(group["size"].as<int>(), 2);
        QCOMPARE(group["restartPolicy"].as<std::string>(), std::string("RecreateGroupOnPodRestart"));
        QCOMPARE(group["leaderTemplate"]["metadata"]["labels"]["role"].as<std::string>(), std::string("leader"));
        const auto worker = group["workerTemplate"]["spec"]["containers"][0]["command"].as<std::vector<std::string>>();
        QVERIFY(std::find(worker.begin(), worker.end(), "$(LWS_WORKER_INDEX)") != worker.end());
        QCOMPARE(lws[1]["spec"]["selector"]["role"].as<std::string>(), std::string("leader"));
    }

    void compose_and_tensorrt_options_parse() {
        const auto results = export_all(plan("deepseek-v3", "h200", 8, 1, 32768, 64, "deepseek-ai/DeepSeek-V3"), "deepseek-v3");
        const YAML::Node compose = YAML::Load(file_named(results, "compose/compose.yaml").contents);
        QVERIFY(compose["services"]["llm"]["image"]);
        QCOMPARE(compose["services"]["llm"]["entrypoint"][0].as<std::string>(), std::string("vllm"));
        QCOMPARE(compose["services"]["llm"]["ports"][0].as<std::string>(), std::string("8000:8000"));
        QCOMPARE(compose["services"]["llm"]["deploy"]["resources"]["reservations"]["devices"][0]["count"].as<int>(), 8);
        QCOMPARE(compose["services"]["llm"]["shm_size"].as<std::string>(), std::string("32gb"));
        const YAML::Node options = YAML::Load(file_named(results, "trtllm/config.yml").contents);
        for (const auto& entry : options) QVERIFY2(kTrtllmOptionKeys.count(entry.first.as<std::string>()), entry.first.as<std::string>().c_str());
        QCOMPARE(options["enable_attention_dp"].as<bool>(), true);
        QCOMPARE(options["speculative_config"]["decoding_type"].as<std::string>(), std::string("MTP"));
        QCOMPARE(options["kv_cache_config"]["free_gpu_memory_fraction"].as<double>(), 0.9);
    }

    void ollama_translates_the_deepseek_template() {
        const auto results = export_all(plan("deepseek-v3", "h200", 8, 1, 4096, 1, "deepseek-ai/DeepSeek-V3"), "deepseek-v3");
        const std::string modelfile = file_named(results, "ollama/Modelfile").contents;
        QVERIFY(modelfile.find("\nFROM ./DeepSeek-V3-") != std::string::npos);
        QVERIFY(modelfile.find("<｜User｜>{{ .Content }}") != std::string::npos);
        QVERIFY(modelfile.find("PARAMETER num_ctx 4096") != std::string::npos);
        QVERIFY(modelfile.find("PARAMETER stop \"<｜end▁of▁sentence｜>\"") != std::string::npos);
    }

    void moe_models_that_do_not_fit_keep_experts_on_the_cpu() {
        // V3 at Q4_K_M on one RTX 4090 (23.2 GB usable): about 11.7 GB of embeddings, attention and shared experts,
        // 0.6 GB of cache and 3 GB of workspace leave room for one MoE layer's experts (5.8 GB): 57 of 58 stay on the CPU.
        const auto results = export_all(plan("deepseek-v3", "rtx4090", 1, 1, 8192, 1, "deepseek-ai/DeepSeek-V3"), "deepseek-v3");
        QVERIFY(file_named(results, "llama-server/serve.sh").contents.find("--n-cpu-moe 57 ") != std::string::npos);
        // V2-Lite on one H100 fits whole: no offload.
        const auto fits = export_all(plan("deepseek-v2-lite", "h100", 1, 1, 8192, 1, "deepseek-ai/DeepSeek-V2-Lite-Chat"), "deepseek-v2-lite");
        QVERIFY(file_named(fits, "llama-server/serve.sh").contents.find("cpu-moe") == std::string::npos);
    }

    void exports_equal_the_reviewed_files_data() {
        QTest::addColumn<QString>("folder");
        QTest::newRow("V3 on 8×H200") << "v3-8xh200";
        QTest::newRow("V2-Lite on an RTX 4090") << "v2-lite-1xrtx4090";
    }
    void exports_equal_the_reviewed_files() {
        QFETCH(QString, folder);
        const bool v3 = folder.startsWith("v3");
        const auto p = v3 ? plan("deepseek-v3", "h200", 8, 1, 32768, 64, "deepseek-ai/DeepSeek-V3")
                          : plan("deepseek-v2-lite", "rtx4090", 1, 1, 8192, 1, "deepseek-ai/DeepSeek-V2-Lite-Chat");
        const auto results = export_all(p, v3 ? "deepseek-v3" : "deepseek-v2-lite");
        for (const auto& result : results)
            for (const auto& file : result.files)
                QVERIFY2(file.contents == read_file(kData + "golden/" + folder.toStdString() + "/" + file.name),
                         qPrintable("differs from the reviewed file: " + folder + "/" + QString::fromStdString(file.name)));
    }

    void save_writes_every_file_and_a_readme() {
        const auto p = plan("deepseek-v2-lite", "rtx4090", 1, 1, 8192, 1, "deepseek-ai/DeepSeek-V2-Lite-Chat");
        const auto results = export_all(p, "deepseek-v2-lite");
        const std::string out = std::string(MWB_TEST_OUTPUT) + "/saved-export";
        QVERIFY(save_export(out, p, results));
        const std::string readme = read_file(out + "/README.md");
        QVERIFY(readme.find("only quantised") != std::string::npos);
        for (const auto& result : results)
            for (const auto& file : result.files) {
                QCOMPARE(read_file(out + "/" + file.name), file.contents);
                QVERIFY(readme.find(file.name) != std::string::npos);
            }
        QVERIFY(nlohmann::json::parse(read_file(out + "/plan.json"))["fits"] == false);
    }
};

QTEST_GUILESS_MAIN(ExportersTest)
#include "test_exporters.moc"
