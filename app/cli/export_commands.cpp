// mwb export: the deployment plan of a model on a cluster shape, and the files each serving engine runs it with.
#include <cstdio>
#include <filesystem>

#include "app/cli/cli_args.h"
#include "app/cli/commands.h"
#include "engine/core/text_file.h"
#include "engine/deploy/deployment_plan.h"
#include "engine/train/lora_adapter.h"
#include "plugins/export/exporter.h"

namespace mwb::cli {

int run_export(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"plan-only"},
                               {"gpu", "gpus-per-node", "nodes", "context", "concurrency", "memory-fraction", "format", "model-id", "target",
                                "out", "adapter", "adapter-name"});
    if (!args) return fail(args.error().message);
    if (args->positionals().size() != 1) return fail("give one model folder (config.json is enough; weights are not needed)");
    std::vector<const exporters::Exporter*> targets;
    if (!args->has("plan-only")) {
        const std::string target = args->get_or("target", "");
        std::string known;
        for (const auto& e : exporters::exporters()) known += (known.empty() ? "" : ", ") + e->id();
        if (target == "all") {
            for (const auto& e : exporters::exporters()) targets.push_back(e.get());
        } else if (const auto* e = exporters::find_exporter(target)) {
            targets.push_back(e);
        } else {
            return fail(target.empty() ? "give --target (" + known + " or all) and --out DIR, or --plan-only"
                                       : "unknown target '" + target + "': choose " + known + " or all");
        }
        if (!args->has("out")) return fail("give the folder to write with --out DIR");
    }
    auto request = deploy::plan_request_for(args->positionals()[0]);
    if (!request) return fail(request.error().message);
    const std::string gpu_id = args->get_or("gpu", "h100");
    auto gpu = deploy::find_gpu(gpu_id);
    if (!gpu) return fail("unknown GPU '" + gpu_id + "': choose one of " + deploy::gpu_ids());
    request->gpu = *gpu;
    auto per_node = args->integer_or("gpus-per-node", 8);
    auto nodes = args->integer_or("nodes", 1);
    auto context = args->integer_or("context", 32768);
    auto concurrency = args->integer_or("concurrency", 64);
    auto fraction = args->number_or("memory-fraction", 0.9);
    for (const Error* e : {per_node ? nullptr : &per_node.error(), nodes ? nullptr : &nodes.error(), context ? nullptr : &context.error(),
                           concurrency ? nullptr : &concurrency.error(), fraction ? nullptr : &fraction.error()})
        if (e) return fail(e->message);
    if (*per_node < 1 || *nodes < 1 || *context < 1 || *concurrency < 1)
        return fail("--gpus-per-node, --nodes, --context and --concurrency must be at least 1");
    if (*fraction <= 0 || *fraction > 1) return fail("--memory-fraction must be above 0 and at most 1");
    request->gpus_per_node = *per_node;
    request->nodes = *nodes;
    request->context = *context;
    request->concurrency = *concurrency;
    request->memory_fraction = *fraction;
    if (auto id = args->get("model-id")) request->model = *id;
    const std::string format = args->get_or("format", "checkpoint");
    if (format == "checkpoint") request->format = deploy::WeightFormat::Checkpoint;
    else if (format == "bf16") request->format = deploy::WeightFormat::Bf16;
    else if (format == "int8") request->format = deploy::WeightFormat::Int8;
    else if (format == "int4") request->format = deploy::WeightFormat::Int4;
    else return fail("--format must be checkpoint, bf16, int8 or int4, got '" + format + "'");
    if (auto adapter_dir = args->get("adapter")) {
        auto config = train::read_lora_config(*adapter_dir);
        if (!config) return fail(config.error().message);
        request->adapter = deploy::AdapterInfo{args->get_or("adapter-name", folder_name(*adapter_dir)),
                                               std::filesystem::absolute(*adapter_dir).lexically_normal().string(), config->rank};
    }
    const deploy::DeploymentPlan plan = deploy::plan_deployment(*request);
    if (targets.empty()) {
        std::printf("%s\n", plan.to_json().dump(2).c_str());
        return 0;
    }
    exporters::ExportContext export_context;
    export_context.model_directory = args->positionals()[0];
    std::vector<exporters::ExportResult> results;
    for (const auto* exporter : targets) {
        auto written = exporter->write(plan, export_context);
        if (!written) return fail(exporter->title() + ": " + written.error().message);
        results.push_back(std::move(written.value()));
    }
    const std::string out = *args->get("out");
    if (auto saved = exporters::save_export(out, plan, results); !saved) return fail(saved.error().message);
    std::fprintf(stderr, "%s%s\n", plan.fits ? "" : "warning: ", plan.verdict.c_str());
    if (plan.smallest_fit) std::fprintf(stderr, "%s\n", plan.smallest_fit->c_str());
    for (const auto& result : results)
        for (const auto& file : result.files) std::printf("%s/%s\n", out.c_str(), file.name.c_str());
    std::printf("%s/README.md\n%s/plan.json\n", out.c_str(), out.c_str());
    return 0;
}

}  // namespace mwb::cli
