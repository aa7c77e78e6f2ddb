// TensorRT-LLM: `trtllm-serve` with the parallel sizes on the command line and the rest in its YAML options
// file (--config): attention data parallelism, CUDA graphs, the KV cache's memory fraction, the MoE backend and
// MTP speculative decoding.
#include <yaml-cpp/yaml.h>

#include "plugins/export/command_line.h"
#include "plugins/export/exporter.h"
#include "plugins/export/model_files.h"

namespace mwb::exporters {

namespace {

constexpr const char* kVersion = "1.3";

std::string options_yaml(const deploy::DeploymentPlan& plan) {
    const deploy::PlanRequest& r = plan.request;
    YAML::Emitter out;
    out.SetDoublePrecision(3);
    out << YAML::BeginMap;
    out << YAML::Key << "enable_attention_dp" << YAML::Value << plan.layout.dp_attention;
    out << YAML::Key << "cuda_graph_config" << YAML::Value << YAML::BeginMap << YAML::Key << "enable_padding" << YAML::Value << true
        << YAML::Key << "max_batch_size" << YAML::Value << std::min<int64_t>(512, std::max<int64_t>(1, r.concurrency)) << YAML::EndMap;
    out << YAML::Key << "kv_cache_config" << YAML::Value << YAML::BeginMap << YAML::Key << "free_gpu_memory_fraction" << YAML::Value
        << r.memory_fraction << YAML::EndMap;
    if (r.config.moe)
        // DeepGEMM runs DeepSeek's FP8 block-scaled experts on Hopper; CUTLASS everywhere else.
        out << YAML::Key << "moe_config" << YAML::Value << YAML::BeginMap << YAML::Key << "backend" << YAML::Value
            << (r.config.fp8 && plan.weight_format == "FP8" ? "DEEPGEMM" : "CUTLASS") << YAML::EndMap;
    if (plan.mtp_layers > 0)
        out << YAML::Key << "speculative_config" << YAML::Value << YAML::BeginMap << YAML::Key << "decoding_type" << YAML::Value << "MTP"
            << YAML::Key << "num_nextn_predict_layers" << YAML::Value << plan.mtp_layers << YAML::EndMap;
    out << YAML::Key << "stream_interval" << YAML::Value << 10;
    out << YAML::EndMap;
    return std::string("# TensorRT-LLM ") + kVersion + " options for " + r.model + " (" + plan.layout.describe() +
           "). Written by MoE Workbench.\n" + out.c_str() + "\n";
}

class TrtllmExporter final : public Exporter {
public:
    std::string id() const override { return "trtllm"; }
    std::string title() const override { return "TensorRT-LLM"; }
    std::string engine_version() const override { return kVersion; }

    Result<ExportResult> write(const deploy::DeploymentPlan& plan, const ExportContext& context) const override {
        const deploy::PlanRequest& r = plan.request;
        const deploy::ParallelLayout& l = plan.layout;
        const int64_t gpus = r.gpus_per_node * r.nodes;
        CommandLine c({"trtllm-serve", r.model});
        c.option("--host", "0.0.0.0").option("--port", 8000).flag("--trust_remote_code");
        c.option("--max_batch_size", r.concurrency).option("--max_num_tokens", 8192);
        c.option("--tp_size", l.dp_attention ? gpus : l.tp);
        if (l.ep > 1) c.option("--ep_size", l.dp_attention ? gpus : l.ep);
        c.option("--pp_size", l.dp_attention ? 1 : l.pp);
        c.option("--config", "./config.yml");
        if (read_model_files(context.model_directory).reasons) c.option("--reasoning_parser", "deepseek-r1");
        ExportResult result{id(), {}, {}};
        result.files.push_back({"trtllm/config.yml", options_yaml(plan)});
        result.files.push_back({"trtllm/serve.sh", "#!/usr/bin/env bash\n# TensorRT-LLM " + std::string(kVersion) + ": " + r.model + ", " +
                                                       l.describe() + ". Written by MoE Workbench.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n" +
                                                       c.shell(),
                                true});
        result.how_to_run = "Run `trtllm/serve.sh` (TensorRT-LLM " + std::string(kVersion) + ", which reads `config.yml` beside it; port 8000).";
        if (r.nodes > 1) result.how_to_run += " Across nodes TensorRT-LLM runs under MPI or Slurm (one rank per GPU): start the same command "
                                              "through `mpirun` or `srun` on all nodes.";
        if (r.adapter) result.how_to_run += " The LoRA adapter is not part of this target: serve it with vLLM or SGLang, or merge it first (`mwb merge`).";
        if (l.dp > 1 && !l.dp_attention) result.how_to_run += " Run one copy per replica (" + std::to_string(l.dp) + " in all).";
        return result;
    }
};

}  // namespace

std::unique_ptr<Exporter> make_trtllm_exporter() { return std::make_unique<TrtllmExporter>(); }

}  // namespace mwb::exporters
