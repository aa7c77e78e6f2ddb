#include "plugins/export/gguf_plan.h"

#include <algorithm>
#include <cmath>

namespace mwb::exporters {

GgufPlan gguf_plan(const deploy::DeploymentPlan& plan) {
    const deploy::PlanRequest& r = plan.request;
    GgufPlan g;
    const double gpu_bytes = r.gpu.memory_gib * 1024.0 * 1024.0 * 1024.0 * double(r.gpus_per_node) * r.memory_fraction;
    const double kv = double(plan.kv_bytes_per_token) * double(r.context);  // llama.cpp's slots share one cache of ctx tokens
    const auto q8 = deploy::weight_inventory(r.config, deploy::WeightFormat::Int8);
    const auto q4 = deploy::weight_inventory(r.config, deploy::WeightFormat::Int4);
    // Q8_0 where it fits with its cache; Q4_K_M (about 4.5–4.9 bits a weight, counted as 4.5 + scales) otherwise.
    const bool q8_fits = q8.total_bytes(false) + kv + plan.per_gpu.workspace <= gpu_bytes;
    const auto& chosen = q8_fits ? q8 : q4;
    g.quantisation = q8_fits ? "Q8_0" : "Q4_K_M";
    for (int64_t l = 0; l < r.config.num_layers; ++l)
        if (r.config.is_moe_layer(l)) ++g.moe_layers;
    const double fixed = chosen.other_bytes + kv + plan.per_gpu.workspace;
    if (g.moe_layers > 0 && fixed + chosen.routed_expert_bytes > gpu_bytes) {
        const double per_layer = chosen.routed_expert_bytes / double(g.moe_layers);
        const double room = std::max(0.0, gpu_bytes - fixed);
        g.cpu_moe_layers = std::min<int64_t>(g.moe_layers, int64_t(std::ceil((chosen.routed_expert_bytes - room) / per_layer)));
    }
    std::string base = r.model;
    if (auto slash = base.find_last_of('/'); slash != std::string::npos) base = base.substr(slash + 1);
    g.file = base + "-" + g.quantisation + ".gguf";
    g.convert_commands = "python3 convert_hf_to_gguf.py " + r.model + " --outtype bf16 --outfile " + base + "-BF16.gguf\n" +
                         (g.quantisation == "Q8_0" ? "llama-quantize " + base + "-BF16.gguf " + g.file + " Q8_0\n"
                                                   : "llama-quantize " + base + "-BF16.gguf " + g.file + " Q4_K_M\n");
    return g;
}

}  // namespace mwb::exporters
