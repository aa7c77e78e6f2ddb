#include "engine/model/model_summary.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string_view>

#include <nlohmann/json.hpp>


namespace mwb {

namespace {

int64_t parameters(const LinearWeight& w) { return w.out_features * w.in_features + (w.bias ? w.out_features : 0); }
int64_t parameters(const MlpWeights& w) { return parameters(w.gate_proj) + parameters(w.up_proj) + parameters(w.down_proj); }
size_t bytes(const MlpWeights& w) { return w.gate_proj.stored_bytes() + w.up_proj.stored_bytes() + w.down_proj.stored_bytes(); }

size_t decode_bytes(const ModelGraph& graph) {
    const ModelConfig& c = graph.config;
    size_t total = graph.lm_head.stored_bytes() + size_t(c.hidden_size) * dtype_size(graph.embed_tokens.weight.dtype);
    for (const auto& layer : graph.layers) {
        if (const auto* mla = std::get_if<MlaWeights>(&layer.attention)) {
            for (const auto* w : {mla->q_proj ? &*mla->q_proj : nullptr, mla->q_a_proj ? &*mla->q_a_proj : nullptr,
                                  mla->q_b_proj ? &*mla->q_b_proj : nullptr, &mla->kv_a_proj, &mla->kv_b_proj, &mla->o_proj})
                if (w) total += w->stored_bytes();
        } else {
            const auto& gqa = std::get<GqaWeights>(layer.attention);
            total += gqa.q_proj.stored_bytes() + gqa.k_proj.stored_bytes() + gqa.v_proj.stored_bytes() + gqa.o_proj.stored_bytes();
        }
        if (const auto* moe = std::get_if<MoeWeights>(&layer.feed_forward)) {
            total += moe->router.stored_bytes() + size_t(moe->config.experts_per_token) * bytes(moe->experts.front());
            if (moe->shared) total += bytes(*moe->shared);
        } else {
            total += bytes(std::get<MlpWeights>(layer.feed_forward));
        }
    }
    return total;
}

}  // namespace

ModelSummary summarize(const ModelGraph& graph) {
    const ModelConfig& c = graph.config;
    ModelSummary s;
    s.architecture = architecture_name(c.architecture);
    s.layers = c.num_layers;
    s.context_length = c.max_position_embeddings;
    std::map<std::string, size_t> bytes_by_dtype;
    for (const auto& [name, tensor] : graph.store->tensors()) {
        s.weight_bytes += tensor.bytes;
        bytes_by_dtype[std::string(dtype_name(tensor.dtype))] += tensor.bytes;
        if (!std::string_view(name).ends_with(".weight_scale_inv")) s.total_parameters += tensor.numel();  // FP8 scales are not parameters
    }
    // Every dtype that holds at least 5% of the bytes, the largest first.
    std::multimap<size_t, std::string, std::greater<>> by_size;
    for (const auto& [dtype, bytes] : bytes_by_dtype) by_size.emplace(bytes, dtype);
    for (const auto& [bytes, dtype] : by_size)
        if (bytes * 20 >= s.weight_bytes) s.weights_dtype += (s.weights_dtype.empty() ? "" : " + ") + dtype;

    s.active_parameters = s.total_parameters;
    if (c.moe) {
        s.routed_experts = c.moe->n_routed_experts;
        s.shared_experts = c.moe->n_shared_experts;
        s.experts_per_token = c.moe->experts_per_token;
        for (const auto& layer : graph.layers) {
            if (const auto* moe = std::get_if<MoeWeights>(&layer.feed_forward)) {
                ++s.moe_layers;
                s.active_parameters -= (c.moe->n_routed_experts - c.moe->experts_per_token) * parameters(moe->experts.front());
            }
        }
    }
    s.weight_bytes_per_decoded_token = decode_bytes(graph);
    for (const auto& layer : graph.layers)
        if (const auto* moe = std::get_if<MoeWeights>(&layer.feed_forward)) s.routed_expert_bytes = bytes(moe->experts.front());
    const size_t floats_per_token = size_t(c.kv_cache_values_per_token());
    s.kv_cache_bytes_per_1k_tokens_bf16 = floats_per_token * 2 * 1024;
    s.kv_cache_bytes_per_1k_tokens_f32 = floats_per_token * 4 * 1024;
    if (c.mla)
        s.uncompressed_kv_bytes_per_1k_tokens_bf16 = size_t(c.num_heads * (c.mla->qk_nope_head_dim + c.mla->qk_rope_head_dim + c.mla->v_head_dim) *
                                                            c.num_layers) * 2 * 1024;
    return s;
}

double expected_distinct_experts(int64_t experts, int64_t experts_per_token, int64_t batch) {
    if (experts <= 0) return 0;
    return double(experts) * (1.0 - std::pow(1.0 - double(experts_per_token) / double(experts), double(batch)));
}

double decode_step_bytes(const ModelSummary& s, int64_t batch, double context, double weight_scale) {
    const double extra_experts = expected_distinct_experts(s.routed_experts, s.experts_per_token, batch) - double(s.experts_per_token);
    const double weights = double(s.weight_bytes_per_decoded_token) + double(s.moe_layers) * std::max(0.0, extra_experts) * double(s.routed_expert_bytes);
    return weights * weight_scale + double(batch) * context * double(s.kv_cache_bytes_per_1k_tokens_bf16) / 1024.0;
}

namespace {

// 1234567 → "1,234,567".
std::string grouped(int64_t value) {
    std::string digits = std::to_string(value < 0 ? -value : value), out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return value < 0 ? "-" + out : out;
}

std::string byte_text(double bytes) {
    const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    int unit = 0;
    while (bytes >= 1024 && unit < 4) bytes /= 1024, ++unit;
    char text[32];
    std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.2f %s", bytes, units[unit]);
    return text;
}

}  // namespace

std::string ModelSummary::to_text() const {
    std::string text;
    auto line = [&](const char* label, const std::string& value) {
        char padded[24];
        std::snprintf(padded, sizeof padded, "%-20s", label);
        text += padded + value + "\n";
    };
    line("architecture", architecture);
    line("parameters", grouped(total_parameters) + " total, " + grouped(active_parameters) + " active per token");
    std::string layer_text = std::to_string(layers);
    if (moe_layers > 0)
        layer_text += " (" + std::to_string(moe_layers) + " MoE: " + std::to_string(routed_experts) + " routed experts, " +
                      std::to_string(experts_per_token) + " per token, " + std::to_string(shared_experts) + " shared)";
    line("layers", layer_text);
    line("context", grouped(context_length) + " tokens");
    line("weights", weights_dtype + ", " + byte_text(double(weight_bytes)));
    std::string kv = byte_text(double(kv_cache_bytes_per_1k_tokens_bf16)) + " per 1,024 tokens (bf16)";
    if (uncompressed_kv_bytes_per_1k_tokens_bf16)
        kv += "; per-head K/V would take " + byte_text(double(uncompressed_kv_bytes_per_1k_tokens_bf16));
    line("KV cache", kv);
    line("decode reads", byte_text(double(weight_bytes_per_decoded_token)) + " of weights per token (batch 1)");
    return text;
}

std::string ModelSummary::to_json() const {
    nlohmann::json j = {
        {"architecture", architecture},
        {"total_parameters", total_parameters},
        {"active_parameters_per_token", active_parameters},
        {"layers", layers},
        {"moe_layers", moe_layers},
        {"routed_experts", routed_experts},
        {"shared_experts", shared_experts},
        {"experts_per_token", experts_per_token},
        {"context_length", context_length},
        {"weights_dtype", weights_dtype},
        {"weight_bytes", weight_bytes},
        {"kv_cache_bytes_per_1k_tokens_bf16", kv_cache_bytes_per_1k_tokens_bf16},
        {"kv_cache_bytes_per_1k_tokens_f32", kv_cache_bytes_per_1k_tokens_f32},
        {"weight_bytes_per_decoded_token", weight_bytes_per_decoded_token},
    };
    if (uncompressed_kv_bytes_per_1k_tokens_bf16) j["uncompressed_kv_bytes_per_1k_tokens_bf16"] = uncompressed_kv_bytes_per_1k_tokens_bf16;
    return j.dump(2);
}

}  // namespace mwb
