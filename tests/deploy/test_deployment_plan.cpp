// The deployment planner against hand-computed sizes of published checkpoints (tests/data/deploy: configs only)
// and the published figures they must agree with (deployment-lora-docs-vision.md §1.0 and §1.7).
#include <QtTest>

#include "engine/deploy/deployment_plan.h"
#include "plan_requests.h"

using namespace mwb;
using namespace mwb::deploy;

namespace {

PlanRequest request(const char* model, const char* gpu, int64_t per_node, int64_t nodes, int64_t context, int64_t concurrency) {
    return plan_request(model, gpu, per_node, nodes, context, concurrency);
}

ModelConfig config_of(const char* model) { return request(model, "h100", 1, 1, 1, 1).config; }

// V3's routed-expert MLP in FP8: three 2048×7168 matrices of one byte per weight plus a float scale per 128×128
// block (16 × 56 blocks each).
constexpr double kV3ExpertBytes = 3.0 * (2048.0 * 7168.0 + 16 * 56 * 4);  // 44,050,944

}  // namespace

class DeploymentPlanTest : public QObject {
    Q_OBJECT

private slots:
    void deepseek_v3_sizes_add_up() {
        const WeightInventory w = weight_inventory(config_of("deepseek-v3"), WeightFormat::Checkpoint);
        // Embedding and lm_head 2 × 129,280 × 7,168; per layer MLA 187,105,280 + norms; 3 dense MLPs of 3 × 7,168 × 18,432;
        // 58 MoE layers of 256 experts × 3 × 7,168 × 2,048, a shared expert and the router with its bias.
        QCOMPARE(w.total_parameters(), int64_t(671'026'419'200));
        QCOMPARE(w.active_parameters, int64_t(37'552'297'472));
        QCOMPARE(w.mtp_parameters, int64_t(13'463'426'304));
        // The published figures: 671B total, 37B active, 685B with the 14B MTP module.
        QVERIFY(std::abs(double(w.total_parameters()) / 671e9 - 1) < 0.001);
        QVERIFY(std::abs(double(w.active_parameters) / 37e9 - 1) < 0.02);
        QVERIFY(std::abs(double(w.total_parameters() + w.mtp_parameters) / 685e9 - 1) < 0.002);
        QCOMPARE(w.routed_expert_bytes, 58 * 256 * kV3ExpertBytes);
        QCOMPARE(w.total_bytes(true), 688'472'073'792.0);
        // MLA's cache: (512 + 64) values × 61 layers × 2 bytes.
        QCOMPARE(kv_cache_bytes_per_token(config_of("deepseek-v3")), int64_t(70'272));
    }

    void other_models_sizes_add_up() {
        const WeightInventory lite = weight_inventory(config_of("deepseek-v2-lite"), WeightFormat::Checkpoint);
        QCOMPARE(lite.total_parameters(), int64_t(15'706'484'224));  // the card's "16B"; 15.7B
        QCOMPARE(lite.total_bytes(false), 31'412'968'448.0);          // bf16
        QCOMPARE(kv_cache_bytes_per_token(config_of("deepseek-v2-lite")), int64_t(31'104));  // 27 × 576 × 2
        const WeightInventory qwen = weight_inventory(config_of("deepseek-r1-distill-qwen-7b"), WeightFormat::Checkpoint);
        QCOMPARE(qwen.total_parameters(), int64_t(7'615'616'512));
        QCOMPARE(kv_cache_bytes_per_token(config_of("deepseek-r1-distill-qwen-7b")), int64_t(57'344));   // 28 × 2 × 4 × 128 × 2
        QCOMPARE(kv_cache_bytes_per_token(config_of("deepseek-r1-distill-llama-8b")), int64_t(131'072));  // 32 × 2 × 8 × 128 × 2
        QCOMPARE(kv_cache_bytes_per_token(config_of("deepseek-r1-distill-llama-70b")), int64_t(327'680)); // 80 × 2 × 8 × 128 × 2
        const WeightInventory v2 = weight_inventory(config_of("deepseek-v2"), WeightFormat::Checkpoint);
        QVERIFY(std::abs(double(v2.total_parameters()) / 236e9 - 1) < 0.01);
        const WeightInventory llama70 = weight_inventory(config_of("deepseek-r1-distill-llama-70b"), WeightFormat::Checkpoint);
        QVERIFY(std::abs(double(llama70.total_parameters()) / 70.6e9 - 1) < 0.01);
    }

    void v3_fits_eight_h200_with_data_parallel_attention() {
        const DeploymentPlan plan = plan_deployment(request("deepseek-v3", "h200", 8, 1, 32768, 64));
        QVERIFY2(plan.fits, plan.verdict.c_str());
        QVERIFY(plan.layout.dp_attention);
        QCOMPARE(plan.layout.dp, int64_t(8));
        QCOMPARE(plan.layout.ep, int64_t(8));
        QCOMPARE(plan.weight_format, std::string("FP8"));
        QCOMPARE(plan.mtp_layers, int64_t(1));
        QCOMPARE(plan.kv_bytes_per_token, int64_t(71'424));  // the MTP layer caches too: 62 × 576 × 2
        // Each GPU: attention, dense and shared weights whole (23.1 GB), an eighth of the routed experts of the 58 MoE
        // layers and the MTP layer, and the cache of 8 of the 64 requests.
        const double routed = (58 + 1) * 256 * kV3ExpertBytes;
        QCOMPARE(plan.per_gpu.weights, (688'472'073'792.0 - routed) + routed / 8);
        QCOMPARE(plan.per_gpu.kv_cache, 8.0 * 32768 * 71'424);
        QCOMPARE(plan.per_gpu.capacity, 141.0 * 1024 * 1024 * 1024);
        QVERIFY(plan.per_gpu.free() > 0);
        QVERIFY(plan.max_concurrency >= 64);
        QVERIFY(plan.decode_bound_tokens_per_s > plan.decode_estimate_tokens_per_s);
    }

    void v3_on_eight_h100_is_refused_with_the_cluster_that_fits() {
        const DeploymentPlan plan = plan_deployment(request("deepseek-v3", "h100", 8, 1, 32768, 64));
        QVERIFY(!plan.fits);
        QVERIFY2(plan.verdict.find("688 GB of FP8 weights") != std::string::npos, plan.verdict.c_str());
        QVERIFY(plan.smallest_fit);
        QVERIFY2(plan.smallest_fit->rfind("needs 2 nodes of 8×NVIDIA H100", 0) == 0, plan.smallest_fit->c_str());
        const DeploymentPlan two = plan_deployment(request("deepseek-v3", "h100", 8, 2, 32768, 64));
        QVERIFY2(two.fits, two.verdict.c_str());
        QCOMPARE(two.layout.ep, int64_t(16));
    }

    void v2_lite_on_an_rtx_4090_fits_only_quantised() {
        const DeploymentPlan plan = plan_deployment(request("deepseek-v2-lite", "rtx4090", 1, 1, 8192, 1));
        QVERIFY(!plan.fits);
        QCOMPARE(plan.weight_bytes, 31'412'968'448.0);
        QVERIFY(plan.smallest_fit);
        QVERIFY2(plan.smallest_fit->find("only quantised: INT8") != std::string::npos, plan.smallest_fit->c_str());
        PlanRequest int8 = request("deepseek-v2-lite", "rtx4090", 1, 1, 8192, 1);
        int8.format = WeightFormat::Int8;
        QVERIFY(plan_deployment(int8).fits);
    }

    void r1_distill_qwen_7b_fits_an_l40s() {
        const DeploymentPlan plan = plan_deployment(request("deepseek-r1-distill-qwen-7b", "l40s", 1, 1, 32768, 8));
        QVERIFY2(plan.fits, plan.verdict.c_str());
        QCOMPARE(plan.layout.tp, int64_t(1));
        QCOMPARE(plan.per_gpu.weights, 2.0 * 7'615'616'512);
        QCOMPARE(plan.per_gpu.kv_cache, 8.0 * 32768 * 57'344);
    }

    void fp8_checkpoints_on_a100_count_as_bf16() {
        const DeploymentPlan plan = plan_deployment(request("deepseek-v3", "a100-80", 8, 1, 4096, 8));
        QCOMPARE(plan.weight_format, std::string("BF16"));
        QVERIFY(!plan.fits);
        QVERIFY(!plan.notes.empty() && plan.notes.front().find("no FP8") != std::string::npos);
    }

    // A folder with the checkpoint's index: its total_size is the weight size, not the estimate from config.json.
    void the_safetensors_index_total_size_wins() {
        QTemporaryDir folder;
        QVERIFY(QFile::copy(QString::fromStdString(std::string(MWB_TEST_DATA) + "/deploy/deepseek-v3/config.json"), folder.filePath("config.json")));
        QFile index(folder.filePath("model.safetensors.index.json"));
        QVERIFY(index.open(QIODevice::WriteOnly));
        index.write(R"({"metadata": {"total_size": 688586727753}, "weight_map": {}})");
        index.close();
        auto r = plan_request_for(folder.path().toStdString());
        QVERIFY(r);
        QCOMPARE(r->checkpoint_bytes.value_or(0), 688586727753.0);
        r->gpu = *find_gpu("h200");
        QCOMPARE(plan_deployment(*r).weight_bytes, 688586727753.0);
        // Planned in another format, the size comes from the config again.
        r->format = WeightFormat::Int4;
        QVERIFY(plan_deployment(*r).weight_bytes < 400e9);
        // A broken index is no size at all, not an error: the config still plans.
        QVERIFY(index.open(QIODevice::WriteOnly | QIODevice::Truncate));
        index.write("{not json");
        index.close();
        auto broken = plan_request_for(folder.path().toStdString());
        QVERIFY(broken && !broken->checkpoint_bytes);
    }

    void the_plan_json_has_what_exporters_and_the_page_read() {
        const nlohmann::json json = plan_deployment(request("deepseek-v3", "h200", 8, 1, 32768, 64)).to_json();
        for (const char* key : {"model", "gpu", "fits", "verdict", "layout", "weight_format", "weight_bytes", "kv_cache_bytes_per_token",
                                "per_gpu_bytes", "max_concurrency_at_context", "mtp_layers", "decode_batch1_bound_tokens_per_s"})
            QVERIFY2(json.contains(key), key);
        QCOMPARE(json["layout"]["description"].get<std::string>(), std::string("DP attention 8, EP8"));
    }
};

QTEST_GUILESS_MAIN(DeploymentPlanTest)
#include "test_deployment_plan.moc"
