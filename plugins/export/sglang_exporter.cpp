// SGLang: --tp spans every GPU of every node; MLA models under load add data-parallel attention (--dp,
// --enable-dp-attention) and expert parallelism (--ep-size); nodes join through --dist-init-addr.
#include "plugins/export/sglang_exporter.h"

#include "plugins/export/model_files.h"

namespace mwb::exporters {

CommandLine sglang_command(const deploy::DeploymentPlan& plan, const ExportContext& context, const std::string& node_rank,
                           const std::string& head, const std::string& nodes) {
    const deploy::PlanRequest& r = plan.request;
    const deploy::ParallelLayout& l = plan.layout;
    const int64_t gpus = r.gpus_per_node * r.nodes;
    CommandLine c({"python3", "-m", "sglang.launch_server"});
    c.option("--model", r.model).flag("--trust-remote-code");
    c.option("--host", "0.0.0.0").option("--port", kSglangPort);
    // SGLang has no pipeline stages in this layout: TP covers all GPUs, DP attention splits the requests.
    const int64_t replicas = l.dp_attention ? 1 : l.dp;
    c.option("--tp", l.dp_attention ? gpus : gpus / replicas);
    if (l.dp_attention) c.option("--dp", l.dp).flag("--enable-dp-attention");
    else if (replicas > 1) c.option("--dp", replicas);
    if (l.ep > 1) c.option("--ep-size", l.dp_attention ? gpus : l.ep * l.pp);
    c.option("--context-length", r.context);
    c.option("--mem-fraction-static", std::to_string(r.memory_fraction).substr(0, 4));
    c.option("--max-running-requests", r.concurrency);
    if (r.nodes > 1) c.option("--dist-init-addr", head + ":5000").option("--nnodes", nodes).option("--node-rank", node_rank);
    if (plan.mtp_layers > 0)
        c.option("--speculative-algorithm", "EAGLE")
            .option("--speculative-num-steps", 3)
            .option("--speculative-eagle-topk", 1)
            .option("--speculative-num-draft-tokens", 4);
    if (read_model_files(context.model_directory).reasons) c.option("--reasoning-parser", "deepseek-r1");
    if (r.adapter) c.flag("--enable-lora").option("--lora-paths", r.adapter->name + "=" + r.adapter->path).option("--max-lora-rank", r.adapter->rank);
    c.flag("--enable-metrics");
    return c;
}

namespace {

class SglangExporter final : public Exporter {
public:
    std::string id() const override { return "sglang"; }
    std::string title() const override { return "SGLang"; }
    std::string engine_version() const override { return kSglangVersion; }

    Result<ExportResult> write(const deploy::DeploymentPlan& plan, const ExportContext& context) const override {
        const deploy::PlanRequest& r = plan.request;
        const std::string header = "#!/usr/bin/env bash\n# SGLang " + std::string(kSglangVersion) + ": " + r.model + " on " +
                                   deploy::cluster_name(r) + ", " + plan.layout.describe() + ". Written by MoE Workbench.\nset -euo pipefail\n";
        ExportResult result{id(), {}, {}};
        if (r.nodes == 1) {
            result.files.push_back({"sglang/serve.sh", header + sglang_command(plan, context, "0", "", "1").shell(), true});
            result.how_to_run = "Run `sglang/serve.sh` (SGLang " + std::string(kSglangVersion) +
                                "; in Docker add --shm-size 32g --ipc=host). The API listens on port 30000.";
            return result;
        }
        for (int64_t node = 0; node < r.nodes; ++node)
            result.files.push_back({"sglang/serve-node" + std::to_string(node) + ".sh",
                                    header + ": \"${HEAD_IP:?set HEAD_IP to node 0's address}\"\n" +
                                        sglang_command(plan, context, std::to_string(node), context.head_address, std::to_string(r.nodes)).shell(),
                                    true});
        result.how_to_run = "Set HEAD_IP to node 0's address on every node and run `sglang/serve-nodeN.sh` on node N. Node 0 serves the API "
                            "(port 30000). If start-up hangs on InfiniBand set NCCL_IB_GID_INDEX=3; if it fails, GLOO_SOCKET_IFNAME.";
        return result;
    }
};

}  // namespace

std::unique_ptr<Exporter> make_sglang_exporter() { return std::make_unique<SglangExporter>(); }

}  // namespace mwb::exporters
