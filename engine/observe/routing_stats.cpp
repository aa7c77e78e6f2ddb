#include "engine/observe/routing_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <sstream>

#include "engine/model/blocks/feed_forward.h"

namespace mwb {

LoadMatrix load_matrix(const std::vector<RoutingRecord>& records, int64_t experts, const TokenRange& range) {
    LoadMatrix load;
    load.experts = experts;
    std::map<int64_t, size_t> row_of_layer;
    for (const auto& r : records) row_of_layer.emplace(r.layer, 0);
    for (auto& [layer, row] : row_of_layer) {
        row = load.layers.size();
        load.layers.push_back(layer);
    }
    load.counts.assign(load.layers.size() * size_t(experts), 0);
    load.weight_mass.assign(load.counts.size(), 0.0);
    std::map<std::pair<int64_t, int64_t>, bool> tokens_seen;
    for (const auto& r : records) {
        if (!range.contains(r.position)) continue;
        tokens_seen[{r.sequence, r.position}] = true;
        const size_t row = row_of_layer[r.layer];
        for (size_t i = 0; i < r.experts.size(); ++i) {
            if (r.experts[i] < 0 || r.experts[i] >= experts) continue;
            load.counts[row * size_t(experts) + size_t(r.experts[i])] += 1;
            load.weight_mass[row * size_t(experts) + size_t(r.experts[i])] += r.weights[i];
        }
    }
    load.tokens = int64_t(tokens_seen.size());
    return load;
}

LoadImbalance imbalance(const LoadMatrix& load, size_t layer_row) {
    LoadImbalance result;
    const int64_t n = load.experts;
    double total = 0, peak = 0;
    for (int64_t e = 0; e < n; ++e) {
        const double c = double(load.count(layer_row, e));
        total += c;
        peak = std::max(peak, c);
    }
    if (total <= 0 || n <= 1) return result;
    const double mean = total / double(n);
    double variance = 0, entropy = 0;
    for (int64_t e = 0; e < n; ++e) {
        const double c = double(load.count(layer_row, e));
        variance += (c - mean) * (c - mean);
        if (c > 0) entropy -= (c / total) * std::log(c / total);
    }
    result.max_over_mean = peak / mean;
    result.coefficient_of_variation = std::sqrt(variance / double(n)) / mean;
    result.normalised_entropy = entropy / std::log(double(n));
    return result;
}

std::vector<double> co_activation(const std::vector<RoutingRecord>& records, int64_t layer, int64_t experts,
                                  const TokenRange& range) {
    std::vector<double> together(size_t(experts * experts), 0.0);
    std::vector<double> alone(size_t(experts), 0.0);
    for (const auto& r : records) {
        if (r.layer != layer || !range.contains(r.position)) continue;
        for (int32_t a : r.experts) {
            if (a < 0 || a >= experts) continue;
            alone[size_t(a)] += 1;
            for (int32_t b : r.experts)
                if (b >= 0 && b < experts) together[size_t(a * experts + b)] += 1;
        }
    }
    for (int64_t a = 0; a < experts; ++a)
        for (int64_t b = 0; b < experts; ++b)
            if (alone[size_t(a)] > 0) together[size_t(a * experts + b)] /= alone[size_t(a)];
    return together;
}

std::vector<ExpertFlow> expert_flow(const std::vector<RoutingRecord>& records, int64_t layer, int64_t next_layer,
                                    size_t most, const TokenRange& range) {
    std::map<std::pair<int64_t, int64_t>, const RoutingRecord*> at_layer, at_next;
    for (const auto& r : records) {
        if (!range.contains(r.position)) continue;
        if (r.layer == layer) at_layer[{r.sequence, r.position}] = &r;
        if (r.layer == next_layer) at_next[{r.sequence, r.position}] = &r;
    }
    std::map<std::pair<int64_t, int64_t>, int64_t> pairs;
    for (const auto& [token, from] : at_layer) {
        auto to = at_next.find(token);
        if (to == at_next.end()) continue;
        for (int32_t a : from->experts)
            for (int32_t b : to->second->experts) ++pairs[{a, b}];
    }
    std::vector<ExpertFlow> flows;
    for (const auto& [pair, count] : pairs) flows.push_back({pair.first, pair.second, count});
    std::stable_sort(flows.begin(), flows.end(), [](const ExpertFlow& a, const ExpertFlow& b) { return a.tokens > b.tokens; });
    if (flows.size() > most) flows.resize(most);
    return flows;
}

RouterScores explain_routing(const MoeConfig& config, const std::vector<float>& router_logits,
                             const std::vector<float>& score_bias) {
    RouterScores out;
    const int64_t n = config.n_routed_experts, k = config.experts_per_token;
    out.scores.resize(size_t(n));
    out.selection_scores.resize(size_t(n));
    out.chosen.resize(size_t(k));
    out.weights.resize(size_t(k));
    route_token(config, router_logits.data(), score_bias.empty() ? nullptr : score_bias.data(), out.chosen.data(),
                out.weights.data(), out.scores.data(), out.selection_scores.data());
    out.group_size = config.topk_method != TopkMethod::Greedy && config.n_group > 1 ? n / config.n_group : n;
    return out;
}

std::string routing_trace_csv(const std::vector<RoutingRecord>& records, const std::vector<int32_t>& tokens) {
    std::ostringstream csv;
    csv.precision(9);
    csv << "token,position,layer,expert,weight\n";
    for (const auto& r : records) {
        const int64_t token = r.position >= 0 && r.position < int64_t(tokens.size()) ? tokens[size_t(r.position)] : -1;
        for (size_t i = 0; i < r.experts.size(); ++i)
            csv << token << ',' << r.position << ',' << r.layer << ',' << r.experts[i] << ',' << r.weights[i] << '\n';
    }
    return csv.str();
}

Result<std::vector<RoutingRecord>> parse_routing_trace_csv(const std::string& csv) {
    std::istringstream in(csv);
    std::string line;
    if (!std::getline(in, line) || line != "token,position,layer,expert,weight")
        return make_error("routing CSV: the first line must be token,position,layer,expert,weight");
    std::vector<RoutingRecord> records;
    int line_number = 1;
    while (std::getline(in, line)) {
        ++line_number;
        if (line.empty()) continue;
        std::istringstream fields(line);
        long long token, position, layer, expert;
        double weight;
        char c1, c2, c3, c4;
        if (!(fields >> token >> c1 >> position >> c2 >> layer >> c3 >> expert >> c4 >> weight) || c1 != ',' || c2 != ',' ||
            c3 != ',' || c4 != ',')
            return make_error("routing CSV line " + std::to_string(line_number) + " is not token,position,layer,expert,weight");
        if (records.empty() || records.back().position != position || records.back().layer != layer)
            records.push_back({0, position, layer, {}, {}, {}});
        records.back().experts.push_back(int32_t(expert));
        records.back().weights.push_back(float(weight));
    }
    return records;
}

std::string load_matrix_csv(const LoadMatrix& load) {
    std::ostringstream csv;
    csv << "layer";
    for (int64_t e = 0; e < load.experts; ++e) csv << ",expert_" << e;
    csv << '\n';
    for (size_t row = 0; row < load.layers.size(); ++row) {
        csv << load.layers[row];
        for (int64_t e = 0; e < load.experts; ++e) csv << ',' << load.count(row, e);
        csv << '\n';
    }
    return csv.str();
}

}  // namespace mwb
