// What `mwb info` and the model card show: parameter counts, dtype, memory for weights and KV cache.
#pragma once

#include <cstdint>
#include <string>

#include "engine/model/model_graph.h"

namespace mwb {

struct ModelSummary {
    std::string architecture;
    int64_t total_parameters = 0;
    int64_t active_parameters = 0;  // per token: all but the routed experts a token does not use
    int64_t layers = 0, moe_layers = 0;
    int64_t routed_experts = 0, shared_experts = 0, experts_per_token = 0;
    int64_t context_length = 0;
    std::string weights_dtype;  // e.g. "BF16", "F8_E4M3 + BF16"
    size_t weight_bytes = 0;
    size_t kv_cache_bytes_per_1k_tokens_bf16 = 0;
    size_t kv_cache_bytes_per_1k_tokens_f32 = 0;
    size_t uncompressed_kv_bytes_per_1k_tokens_bf16 = 0;  // MLA: what per-head K/V would take
    size_t weight_bytes_per_decoded_token = 0;  // batch 1: every weight but the routed experts not chosen
    size_t routed_expert_bytes = 0;             // one routed expert's weights, as stored

    std::string to_json() const;
    std::string to_text() const;  // what `mwb info` prints for a person: one labelled line per fact
};

ModelSummary summarize(const ModelGraph& graph);

// Distinct routed experts that `batch` tokens touch in one MoE layer, expected under uniform routing (as random
// weights route): E·(1 − (1 − k/E)^batch).
double expected_distinct_experts(int64_t experts, int64_t experts_per_token, int64_t batch);

// The fewest bytes one decode step of `batch` sequences reads: the weights of weight_bytes_per_decoded_token
// (times `weight_scale`, the quantised over the stored bytes), the routed experts the other tokens add, and
// each sequence's bf16 KV cache at `context` tokens. Bandwidth over it bounds the decode rate.
double decode_step_bytes(const ModelSummary& summary, int64_t batch, double context, double weight_scale = 1.0);

}  // namespace mwb
