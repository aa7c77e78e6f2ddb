#include "engine/deploy/deployment_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/core/text_file.h"

namespace mwb::deploy {

namespace {

constexpr double kGB = 1e9;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kBatch1Efficiency = 0.3;  // perf-anchors.md: MoE engines reach 22–34% of the bound at batch 1

std::string gb(double bytes) {
    char text[32];
    std::snprintf(text, sizeof text, bytes >= 100 * kGB ? "%.0f GB" : "%.1f GB", bytes / kGB);
    return text;
}

// What one candidate layout puts on each GPU.
struct Candidate {
    ParallelLayout layout;
    GpuMemory memory;
    int64_t max_concurrency = 0;
    double decode_bound = 0;
    bool fits() const { return memory.free() >= 0; }
};

struct Sizes {
    WeightInventory inventory;
    double weights = 0, routed = 0;
    int64_t kv_per_token = 0;
    double workspace = 0;
    bool mtp = false;
};

Sizes sizes_for(const PlanRequest& r, WeightFormat format) {
    Sizes s;
    s.inventory = weight_inventory(r.config, format);
    s.mtp = r.config.mtp_layers > 0;
    s.weights = s.inventory.total_bytes(s.mtp);
    if (r.checkpoint_bytes && format == WeightFormat::Checkpoint) s.weights = *r.checkpoint_bytes;
    s.routed = s.inventory.routed_expert_bytes + (s.mtp ? s.inventory.mtp_routed_expert_bytes : 0);
    // The MTP modules keep a cache of their own, as a layer each.
    s.kv_per_token = kv_cache_bytes_per_token(r.config) * (r.config.num_layers + (s.mtp ? r.config.mtp_layers : 0)) / r.config.num_layers;
    // Activations of a prefill chunk of 8,192 tokens (the engines' default token budget; about 16 hidden-sized
    // bf16 buffers live at once), plus CUDA graphs and communication buffers.
    s.workspace = 1 * kGiB + 8192.0 * double(r.config.hidden_size) * 2 * 16;
    return s;
}

Candidate candidate(const PlanRequest& r, const Sizes& s, ParallelLayout layout, int64_t nodes) {
    Candidate c;
    c.layout = layout;
    const int64_t gpus = r.gpus_per_node * nodes;
    const double capacity = r.gpu.memory_gib * kGiB;
    c.memory.capacity = capacity;
    c.memory.usable = capacity * r.memory_fraction;
    c.memory.workspace = s.workspace;
    const double sequence_kv = double(s.kv_per_token) * double(r.context);
    const double bandwidth = r.gpu.bandwidth_tbps * 1e12;
    const double token_bytes = s.inventory.active_bytes + sequence_kv;
    if (layout.dp_attention) {
        // Attention and dense weights on every rank, routed experts split over all of them; each rank holds the
        // cache of its own share of the requests.
        c.memory.weights = (s.weights - s.routed) + s.routed / double(gpus);
        const int64_t per_rank = (r.concurrency + gpus - 1) / gpus;
        c.memory.kv_cache = sequence_kv * double(per_rank);
        const double budget = c.memory.usable - c.memory.weights - c.memory.workspace;
        c.max_concurrency = budget > 0 ? int64_t(budget / sequence_kv) * gpus : 0;
        const double routed_active = s.inventory.active_bytes - (s.inventory.other_bytes);
        c.decode_bound = bandwidth / ((token_bytes - routed_active) + routed_active / double(gpus));
    } else {
        // Tensor parallel within a stage, pipeline stages over nodes. MLA's latent cache has no heads to split, so
        // every tensor-parallel rank keeps all of its stage's cache; GQA splits it by KV head.
        const int64_t shards = r.config.mla ? 1 : std::min<int64_t>(layout.tp, std::max<int64_t>(1, r.config.num_kv_heads));
        c.memory.weights = s.weights / double(layout.tp * layout.pp);
        const int64_t per_replica = (r.concurrency + layout.dp - 1) / layout.dp;
        c.memory.kv_cache = sequence_kv * double(per_replica) / double(shards * layout.pp);
        const double budget = c.memory.usable - c.memory.weights - c.memory.workspace;
        c.max_concurrency = budget > 0 ? int64_t(budget / (sequence_kv / double(shards * layout.pp))) * layout.dp : 0;
        c.decode_bound = double(layout.tp) * bandwidth / token_bytes;
    }
    return c;
}

// The layouts worth considering on `nodes` nodes, best first for the request's load.
std::vector<Candidate> candidates(const PlanRequest& r, const Sizes& s, int64_t nodes) {
    const int64_t g = r.gpus_per_node, gpus = g * nodes;
    std::vector<Candidate> out;
    if (r.config.moe && r.config.mla && gpus > 1) {
        ParallelLayout tp{g, nodes, 1, g, false};
        ParallelLayout dp{1, 1, gpus, gpus, true};
        // Data-parallel attention pays off under load (a request or more per GPU); TP is better for latency.
        if (r.concurrency >= gpus) out = {candidate(r, s, dp, nodes), candidate(r, s, tp, nodes)};
        else out = {candidate(r, s, tp, nodes), candidate(r, s, dp, nodes)};
        return out;
    }
    // Dense models: the fewest GPUs per replica that hold it (powers of two within a node), replicas on the rest.
    for (int64_t tp = 1; tp <= g; tp *= 2) {
        if (g % tp) continue;
        out.push_back(candidate(r, s, {tp, 1, gpus / tp, 1, false}, nodes));
    }
    if (nodes > 1) out.push_back(candidate(r, s, {g, nodes, 1, 1, false}, nodes));
    return out;
}

std::optional<Candidate> first_fit(const std::vector<Candidate>& list) {
    for (const auto& c : list)
        if (c.fits()) return c;
    return std::nullopt;
}

}  // namespace

std::string ParallelLayout::describe() const {
    std::string text;
    if (dp_attention) {
        text = "DP attention " + std::to_string(dp);
    } else {
        text = "TP" + std::to_string(tp);
        if (pp > 1) text += " × PP" + std::to_string(pp);
        if (dp > 1) text += ", " + std::to_string(dp) + " replicas";
    }
    if (ep > 1) text += ", EP" + std::to_string(ep);
    return text;
}

std::string cluster_name(const PlanRequest& r) {
    return (r.nodes > 1 ? std::to_string(r.nodes) + " nodes of " : "") + std::to_string(r.gpus_per_node) + "×" + r.gpu.name;
}

DeploymentPlan plan_deployment(const PlanRequest& request) {
    DeploymentPlan plan;
    plan.request = request;
    PlanRequest r = request;
    if (r.format == WeightFormat::Checkpoint && r.config.fp8 && !r.gpu.fp8) {
        r.format = WeightFormat::Bf16;
        plan.notes.push_back(r.gpu.name + " has no FP8 tensor cores: the FP8 checkpoint must be converted to BF16 first, "
                             "which doubles its size");
    }
    const Sizes s = sizes_for(r, r.format);
    plan.weight_format = weight_format_name(r.format, r.config);
    plan.weight_bytes = s.weights;
    plan.kv_bytes_per_token = s.kv_per_token;
    plan.kv_bytes_total = double(s.kv_per_token) * double(r.context) * double(r.concurrency);
    plan.mtp_layers = s.mtp ? r.config.mtp_layers : 0;

    const auto options = candidates(r, s, r.nodes);
    const auto chosen = first_fit(options);
    const Candidate shown = chosen ? *chosen : options.front();
    plan.fits = chosen.has_value();
    plan.layout = shown.layout;
    plan.per_gpu = shown.memory;
    plan.max_concurrency = shown.max_concurrency;
    plan.decode_bound_tokens_per_s = shown.decode_bound;
    plan.decode_estimate_tokens_per_s = shown.decode_bound * kBatch1Efficiency;

    const std::string cluster = cluster_name(r);
    const double cluster_memory = r.gpu.memory_gib * kGiB * double(r.gpus_per_node * r.nodes);
    const std::string need = gb(s.weights) + " of " + plan.weight_format + " weights + " + gb(plan.kv_bytes_total) + " of KV cache (" +
                             std::to_string(r.concurrency) + " × " + std::to_string(r.context) + " tokens)";
    if (plan.fits) {
        plan.verdict = "fits on " + cluster + " as " + plan.layout.describe() + ": " + need + "; " + gb(plan.per_gpu.free()) +
                       " free per GPU, room for " + std::to_string(plan.max_concurrency) + " sequences of " + std::to_string(r.context) +
                       " tokens";
    } else {
        plan.verdict = "does not fit on " + cluster + ": " + need + "; " + cluster + " has " + gb(cluster_memory) + " (" +
                       gb(cluster_memory * r.memory_fraction) + " at the memory fraction " + std::to_string(r.memory_fraction).substr(0, 4) + ")";
        // More GPUs in the node first (up to 8), then more nodes of 8.
        std::vector<std::pair<int64_t, int64_t>> shapes;  // (GPUs per node, nodes)
        for (int64_t g = r.gpus_per_node * 2; g <= 8 && r.nodes == 1; g *= 2) shapes.emplace_back(g, 1);
        for (int64_t n = r.nodes + 1; n <= 16; ++n) shapes.emplace_back(std::max<int64_t>(r.gpus_per_node, 8), n);
        for (const auto& [g, n] : shapes) {
            PlanRequest bigger = r;
            bigger.gpus_per_node = g;
            if (auto fit = first_fit(candidates(bigger, s, n))) {
                plan.smallest_fit = "needs " + (n > 1 ? std::to_string(n) + " nodes of " : "") + std::to_string(g) + "×" + r.gpu.name +
                                    " (" + fit->layout.describe() + "): " + need;
                break;
            }
        }
        if (r.format == WeightFormat::Checkpoint || r.format == WeightFormat::Bf16)
            for (WeightFormat smaller : {WeightFormat::Int8, WeightFormat::Int4}) {
                PlanRequest q = r;
                q.format = smaller;
                q.checkpoint_bytes.reset();
                const Sizes qs = sizes_for(q, smaller);
                if (auto fit = first_fit(candidates(q, qs, r.nodes))) {
                    const std::string quantised = "fits on " + cluster + " only quantised: " + weight_format_name(smaller, r.config) +
                                                  " weights take " + gb(qs.weights) + " (--int8 / --int4 here, a Q8_0 / Q4_K GGUF for llama.cpp)";
                    plan.smallest_fit = plan.smallest_fit ? *plan.smallest_fit + "; or " + quantised : quantised;
                    break;
                }
            }
    }
    if (r.config.mla && !plan.layout.dp_attention && plan.layout.tp > 1)
        plan.notes.push_back("MLA keeps one latent cache per token with no heads to split: under tensor parallelism every GPU holds "
                             "the whole cache; data-parallel attention splits the requests instead");
    if (!r.gpu.fast_link && plan.layout.tp > 1)
        plan.notes.push_back(r.gpu.name + " has no NVLink: tensor parallelism goes over PCIe; pipeline parallelism or replicas are "
                             "often faster");
    if (plan.mtp_layers > 0)
        plan.notes.push_back("the checkpoint has " + std::to_string(plan.mtp_layers) +
                             " MTP module(s): speculative decoding with them is on (its weights and cache are counted)");
    return plan;
}

nlohmann::json DeploymentPlan::to_json() const {
    const PlanRequest& r = request;
    nlohmann::json layout_json = {{"tensor_parallel", layout.tp}, {"pipeline_parallel", layout.pp}, {"data_parallel", layout.dp},
                                  {"expert_parallel", layout.ep}, {"dp_attention", layout.dp_attention}, {"description", layout.describe()}};
    nlohmann::json out = {
        {"model", r.model},
        {"architecture", architecture_name(r.config.architecture)},
        {"gpu", r.gpu.id},
        {"gpu_name", r.gpu.name},
        {"gpus_per_node", r.gpus_per_node},
        {"nodes", r.nodes},
        {"context", r.context},
        {"concurrency", r.concurrency},
        {"memory_fraction", r.memory_fraction},
        {"fits", fits},
        {"verdict", verdict},
        {"layout", layout_json},
        {"weight_format", weight_format},
        {"weight_bytes", weight_bytes},
        {"kv_cache_bytes_per_token", kv_bytes_per_token},
        {"kv_cache_bytes_total", kv_bytes_total},
        {"per_gpu_bytes",
         {{"capacity", per_gpu.capacity}, {"usable", per_gpu.usable}, {"weights", per_gpu.weights}, {"kv_cache", per_gpu.kv_cache},
          {"workspace", per_gpu.workspace}, {"free", per_gpu.free()}}},
        {"max_concurrency_at_context", max_concurrency},
        {"mtp_layers", mtp_layers},
        {"decode_batch1_bound_tokens_per_s", decode_bound_tokens_per_s},
        {"decode_batch1_estimate_tokens_per_s", decode_estimate_tokens_per_s},
        {"notes", notes},
    };
    if (smallest_fit) out["smallest_fit"] = *smallest_fit;
    if (r.adapter) out["adapter"] = {{"name", r.adapter->name}, {"path", r.adapter->path}, {"rank", r.adapter->rank}};
    return out;
}

Result<PlanRequest> plan_request_for(const std::string& model_directory) {
    auto config = load_model_config(model_directory);
    if (!config) return config.error();
    PlanRequest request;
    request.config = std::move(config.value());
    request.model = folder_name(model_directory);
    // A missing or broken index is no size, not an error: the config still plans.
    if (auto index = read_text_file((std::filesystem::path(model_directory) / "model.safetensors.index.json").string())) {
        const auto json = nlohmann::json::parse(*index, nullptr, false);
        if (json.is_object() && json.contains("metadata") && json["metadata"].is_object() && json["metadata"].contains("total_size") &&
            json["metadata"]["total_size"].is_number())
            request.checkpoint_bytes = json["metadata"]["total_size"].get<double>();
    }
    return request;
}

}  // namespace mwb::deploy
