// llama.cpp's `llama-server` on a GGUF file: all layers on the GPUs, split over several by layer, and for MoE
// models that do not fit, the experts of the first layers kept in CPU memory (--n-cpu-moe), the way people run
// DeepSeek on a desktop GPU.
#include "plugins/export/command_line.h"
#include "plugins/export/exporter.h"
#include "plugins/export/gguf_plan.h"
#include "plugins/export/model_files.h"

namespace mwb::exporters {

namespace {

constexpr const char* kVersion = "of 2026-08 (tools/server/README.md @00dc805)";

class LlamaServerExporter final : public Exporter {
public:
    std::string id() const override { return "llama-server"; }
    std::string title() const override { return "llama.cpp server"; }
    std::string engine_version() const override { return kVersion; }

    Result<ExportResult> write(const deploy::DeploymentPlan& plan, const ExportContext& context) const override {
        const deploy::PlanRequest& r = plan.request;
        const GgufPlan g = gguf_plan(plan);
        CommandLine c({"llama-server"});
        c.option("-m", g.file).option("-c", r.context).option("-ngl", "all");
        if (r.gpus_per_node > 1) {
            std::string split;
            for (int64_t i = 0; i < r.gpus_per_node; ++i) split += (i ? "," : "") + std::string("1");
            c.option("-sm", "layer").option("-ts", split);
        }
        if (g.cpu_moe_layers >= g.moe_layers && g.moe_layers > 0) c.flag("--cpu-moe");
        else if (g.cpu_moe_layers > 0) c.option("--n-cpu-moe", g.cpu_moe_layers);
        c.option("-np", std::min<int64_t>(r.concurrency, 64)).option("-fa", "on");
        c.option("--host", "0.0.0.0").option("--port", 8080).flag("--jinja").flag("--metrics");
        if (read_model_files(context.model_directory).reasons) c.option("--reasoning-format", "deepseek");
        if (r.adapter) c.option("--lora", r.adapter->name + ".gguf");
        ExportResult result{id(), {}, {}};
        std::string script = "#!/usr/bin/env bash\n# llama.cpp " + std::string(kVersion) + ": " + r.model + " as " + g.quantisation +
                             " GGUF on " + std::to_string(r.gpus_per_node) + "×" + r.gpu.name + ". Written by MoE Workbench.\n"
                             "# Make the GGUF file first (llama.cpp's tools):\n";
        for (size_t start = 0; start < g.convert_commands.size();) {
            const size_t end = g.convert_commands.find('\n', start);
            script += "#   " + g.convert_commands.substr(start, end - start) + "\n";
            start = end + 1;
        }
        if (r.adapter) script += "#   python3 convert_lora_to_gguf.py " + r.adapter->path + " --outfile " + r.adapter->name + ".gguf\n";
        script += "set -euo pipefail\n" + c.shell();
        result.files.push_back({"llama-server/serve.sh", script, true});
        result.how_to_run = "Convert the model to GGUF as the comments of `llama-server/serve.sh` show, then run it (port 8080)." +
                            std::string(g.cpu_moe_layers > 0 ? " The experts of " + std::to_string(g.cpu_moe_layers) + " of " +
                                                                   std::to_string(g.moe_layers) + " MoE layers stay in CPU memory: the GPUs "
                                                                   "hold the rest, and decode speed depends on the CPU's memory bandwidth."
                                                             : "");
        return result;
    }
};

}  // namespace

std::unique_ptr<Exporter> make_llama_server_exporter() { return std::make_unique<LlamaServerExporter>(); }

}  // namespace mwb::exporters
