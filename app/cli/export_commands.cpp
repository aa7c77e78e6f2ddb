// mwb export: the deployment plan of a model on a cluster shape.
#include <cstdio>

#include "app/cli/cli_args.h"
#include "app/cli/commands.h"
#include "engine/deploy/deployment_plan.h"

namespace mwb::cli {

int run_export(int argc, char** argv) {
    auto args = CliArgs::parse(argc, argv, {"plan-only"},
                               {"gpu", "gpus-per-node", "nodes", "context", "concurrency", "memory-fraction", "format", "model-id"});
    if (!args) return fail(args.error().message);
    if (args->positionals().size() != 1) return fail("give one model folder (config.json is enough; weights are not needed)");
    if (!args->has("plan-only"))
        return fail("writing the engines' files is not available yet: --plan-only prints the plan as JSON");
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
    const deploy::DeploymentPlan plan = deploy::plan_deployment(*request);
    std::printf("%s\n", plan.to_json().dump(2).c_str());
    return 0;
}

}  // namespace mwb::cli
