// What the Inspector shows about expert routing, computed from a RoutingTrace over a selection of tokens:
// the layers × experts load, per-layer imbalance, co-activation, expert flow between layers, and CSV export.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/result.h"
#include "engine/model/config.h"
#include "engine/observe/routing_trace.h"

namespace mwb {

struct TokenRange {
    int64_t first = 0, last = INT64_MAX;  // positions, inclusive
    bool contains(int64_t position) const { return position >= first && position <= last; }
};

struct LoadMatrix {
    std::vector<int64_t> layers;          // MoE layers in order
    int64_t experts = 0;
    std::vector<int64_t> counts;          // [layers, experts]: tokens routed to the expert
    std::vector<double> weight_mass;      // [layers, experts]: sum of routing weights
    int64_t tokens = 0;

    int64_t count(size_t layer_row, int64_t expert) const { return counts[layer_row * size_t(experts) + size_t(expert)]; }
};

struct LoadImbalance {
    double max_over_mean = 0;
    double coefficient_of_variation = 0;
    double normalised_entropy = 0;  // 1 = perfectly even
};

LoadMatrix load_matrix(const std::vector<RoutingRecord>& records, int64_t experts, const TokenRange& range = {});
LoadImbalance imbalance(const LoadMatrix& load, size_t layer_row);

// P(expert b chosen | expert a chosen) for one layer: [experts, experts], row a.
std::vector<double> co_activation(const std::vector<RoutingRecord>& records, int64_t layer, int64_t experts,
                                  const TokenRange& range = {});

struct ExpertFlow {
    int64_t from_expert = 0, to_expert = 0, tokens = 0;
};
// The most frequent (expert in `layer`, expert in the next MoE layer) pairs of the same tokens.
std::vector<ExpertFlow> expert_flow(const std::vector<RoutingRecord>& records, int64_t layer, int64_t next_layer,
                                    size_t most, const TokenRange& range = {});

// A token's router scores over all experts, as the selection saw them.
struct RouterScores {
    std::vector<float> scores;            // after sigmoid / softmax
    std::vector<float> selection_scores;  // scores + correction bias, other groups masked: what top-k ranked
    std::vector<int32_t> chosen;          // sorted by expert id
    std::vector<float> weights;
    int64_t group_size = 0;               // experts per group (group boundaries), n_routed_experts when ungrouped
};
RouterScores explain_routing(const MoeConfig& config, const std::vector<float>& router_logits,
                             const std::vector<float>& score_bias);

// CSV: `token,position,layer,expert,weight` per routed expert, and the load matrix with a header row.
std::string routing_trace_csv(const std::vector<RoutingRecord>& records, const std::vector<int32_t>& tokens);
Result<std::vector<RoutingRecord>> parse_routing_trace_csv(const std::string& csv);
std::string load_matrix_csv(const LoadMatrix& load);

}  // namespace mwb
