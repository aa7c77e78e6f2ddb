// vLLM: one `vllm serve` per node. MLA models under load run data-parallel attention with expert parallelism
// (one command per node, the others headless); tensor × pipeline layouts over several nodes run on a Ray cluster.
#include "plugins/export/vllm_exporter.h"

#include "plugins/export/model_files.h"

namespace mwb::exporters {

CommandLine vllm_command(const deploy::DeploymentPlan& plan, const ExportContext& context, int64_t node) {
    const deploy::PlanRequest& r = plan.request;
    const deploy::ParallelLayout& l = plan.layout;
    CommandLine c({"vllm", "serve", r.model});
    c.flag("--trust-remote-code");
    c.option("--host", "0.0.0.0").option("--port", kVllmPort);
    if (l.dp_attention || (l.dp > 1 && l.tp == 1 && l.pp == 1)) {
        c.option("--data-parallel-size", l.dp);
        if (l.tp > 1) c.option("--tensor-parallel-size", l.tp);
        if (r.nodes > 1) {
            c.option("--data-parallel-size-local", r.gpus_per_node)
                .option("--data-parallel-address", context.head_address)
                .option("--data-parallel-rpc-port", 13345);
            if (node > 0) c.flag("--headless").option("--data-parallel-start-rank", node * r.gpus_per_node);
        }
    } else {
        c.option("--tensor-parallel-size", l.tp);
        if (l.pp > 1) c.option("--pipeline-parallel-size", l.pp).option("--distributed-executor-backend", "ray");
        if (l.dp > 1) c.option("--data-parallel-size", l.dp);
    }
    if (l.ep > 1) c.flag("--enable-expert-parallel");
    c.option("--max-model-len", r.context);
    c.option("--gpu-memory-utilization", std::to_string(r.memory_fraction).substr(0, 4));
    // --max-num-seqs counts per data-parallel rank.
    c.option("--max-num-seqs", std::max<int64_t>(1, (r.concurrency + l.dp - 1) / l.dp));
    if (plan.mtp_layers > 0) c.option("--speculative-config", R"({"method":"mtp","num_speculative_tokens":1})");
    if (read_model_files(context.model_directory).reasons) c.option("--reasoning-parser", "deepseek_r1");
    if (r.adapter)
        c.flag("--enable-lora").option("--lora-modules", r.adapter->name + "=" + r.adapter->path).option("--max-lora-rank", r.adapter->rank);
    return c;
}

namespace {

class VllmExporter final : public Exporter {
public:
    std::string id() const override { return "vllm"; }
    std::string title() const override { return "vLLM"; }
    std::string engine_version() const override { return kVllmVersion; }

    Result<ExportResult> write(const deploy::DeploymentPlan& plan, const ExportContext& context) const override {
        const deploy::PlanRequest& r = plan.request;
        const std::string header = "#!/usr/bin/env bash\n# vLLM " + std::string(kVllmVersion) + ": " + r.model + " on " +
                                   deploy::cluster_name(r) + ", " + plan.layout.describe() + ". Written by MoE Workbench.\nset -euo pipefail\n";
        ExportResult result{id(), {}, {}};
        const bool ray = r.nodes > 1 && !plan.layout.dp_attention && plan.layout.pp > 1;
        if (r.nodes == 1) {
            result.files.push_back({"vllm/serve.sh", header + vllm_command(plan, context).shell(), true});
            result.how_to_run = "Run `vllm/serve.sh` on the GPU machine (vLLM " + std::string(kVllmVersion) +
                                " or newer). The OpenAI-compatible API listens on port 8000.";
        } else if (ray) {
            result.files.push_back({"vllm/ray-head.sh", header + "ray start --head --port=6379\n", true});
            result.files.push_back({"vllm/ray-worker.sh", header + "ray start --address=\"${HEAD_IP:?set HEAD_IP to the head node's address}:6379\"\n", true});
            result.files.push_back({"vllm/serve.sh", header + vllm_command(plan, context).shell(), true});
            result.how_to_run = "Start Ray with `vllm/ray-head.sh` on the head node and `HEAD_IP=… vllm/ray-worker.sh` on the others, then run "
                                "`vllm/serve.sh` on the head: one vLLM process uses every GPU of the Ray cluster.";
        } else {
            for (int64_t node = 0; node < r.nodes; ++node) {
                const std::string name = node == 0 ? "vllm/serve-head.sh" : "vllm/serve-node" + std::to_string(node) + ".sh";
                result.files.push_back({name, header + ": \"${HEAD_IP:?set HEAD_IP to the head node's address}\"\n" +
                                                  vllm_command(plan, context, node).shell(), true});
            }
            result.how_to_run = "Set HEAD_IP to the first node's address on every node; run `vllm/serve-head.sh` on the first node and "
                                "`vllm/serve-nodeN.sh` on node N. Only the head serves the API (port 8000); the others run headless "
                                "data-parallel ranks.";
        }
        return result;
    }
};

}  // namespace

std::unique_ptr<Exporter> make_vllm_exporter() { return std::make_unique<VllmExporter>(); }

}  // namespace mwb::exporters
