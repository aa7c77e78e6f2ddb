#include "app/services/inspector_feed.h"

#include <cstdint>

#include "engine/model/model_graph.h"
#include "engine/runtime/cpu/cpu_ops.h"

namespace mwb::app {

RoutingSummary routing_summary_of(const LoadMatrix& load) {
    RoutingSummary summary;
    summary.experts = int(load.experts);
    for (size_t row = 0; row < load.layers.size(); ++row) {
        summary.layers << int(load.layers[row]);
        QVector<int> counts;
        for (int64_t e = 0; e < load.experts; ++e) counts << int(load.count(row, e));
        summary.counts << counts;
    }
    return summary;
}

LoadMatrix load_matrix_of(const RoutingSummary& summary) {
    LoadMatrix load;
    load.experts = summary.experts;
    for (qsizetype row = 0; row < summary.layers.size(); ++row) {
        load.layers.push_back(summary.layers[row]);
        for (int count : summary.counts[row]) load.counts.push_back(count);
    }
    load.weight_mass.assign(load.counts.size(), 0.0);
    return load;
}

InspectorFeed::InspectorFeed(QObject* parent) : QObject(parent) {}

void InspectorFeed::set_model(const ModelGraph& graph) {
    std::lock_guard lock(mutex_);
    data_ = {};
    data_.moe = graph.config.moe;
    data_.num_layers = graph.config.num_layers;
    for (int64_t layer : graph.moe_layers()) {
        const auto& moe = std::get<MoeWeights>(graph.layers[size_t(layer)].feed_forward);
        data_.score_bias[layer] = moe.score_bias ? cpu::decode_vector(moe.score_bias->weight) : std::vector<float>{};
    }
    data_.generation = ++generation_;
    data_.version = ++version_;
}

void InspectorFeed::begin(const std::vector<int32_t>& prompt, const std::vector<QString>& prompt_texts, const QString& origin,
                          std::vector<InspectedImage> images) {
    std::lock_guard lock(mutex_);
    data_.origin = origin;
    data_.images = std::move(images);
    data_.token_ids = prompt;
    data_.token_texts = prompt_texts;
    data_.token_texts.resize(prompt.size());
    data_.prompt_tokens = int64_t(prompt.size());
    data_.routing.clear();
    data_.attention.clear();
    data_.stored_load.reset();
    data_.stored_label.clear();
    data_.generation = ++generation_;
    data_.version = ++version_;
}

void InspectorFeed::show_stored_load(LoadMatrix load, const QString& label) {
    std::lock_guard lock(mutex_);
    data_.token_ids.clear();
    data_.token_texts.clear();
    data_.prompt_tokens = 0;
    data_.routing.clear();
    data_.attention.clear();
    data_.images.clear();
    data_.stored_load = std::move(load);
    data_.stored_label = label;
    data_.origin.clear();
    data_.generation = ++generation_;
    data_.version = ++version_;
}

void InspectorFeed::append_token(int32_t id, const QString& text) {
    std::lock_guard lock(mutex_);
    data_.token_ids.push_back(id);
    data_.token_texts.push_back(text);
    data_.version = ++version_;
}

void InspectorFeed::watch_attention(std::set<int64_t> layers) {
    std::lock_guard lock(mutex_);
    attention_layers_ = std::move(layers);
}

void InspectorFeed::capture_attention(std::set<int64_t> layers) {
    std::lock_guard lock(mutex_);
    capture_layers_ = std::move(layers);
}

InspectorSnapshot InspectorFeed::snapshot() const {
    InspectorSnapshot view;
    update(view);
    return view;
}

void InspectorFeed::update(InspectorSnapshot& view) const {
    std::lock_guard lock(mutex_);
    if (view.version == data_.version) return;
    if (view.generation != data_.generation) {
        view = data_;
        return;
    }
    // Same generation: tokens and routing records are only ever appended, attention rows only added.
    view.token_ids.insert(view.token_ids.end(), data_.token_ids.begin() + long(view.token_ids.size()), data_.token_ids.end());
    view.token_texts.insert(view.token_texts.end(), data_.token_texts.begin() + long(view.token_texts.size()), data_.token_texts.end());
    view.routing.insert(view.routing.end(), data_.routing.begin() + long(view.routing.size()), data_.routing.end());
    for (const auto& [layer, attention] : data_.attention) {
        AttentionSnapshot& seen = view.attention[layer];
        seen.heads = attention.heads;
        for (auto row = attention.rows.upper_bound(seen.rows.empty() ? -1 : seen.rows.rbegin()->first); row != attention.rows.end(); ++row)
            seen.rows.insert(*row);
    }
    view.version = data_.version;
}

void InspectorFeed::on_routing(int64_t sequence, int64_t position, int64_t layer, std::span<const int32_t> experts,
                               std::span<const float> weights, std::span<const float> router_logits) {
    std::lock_guard lock(mutex_);
    data_.routing.push_back({sequence, position, layer, {experts.begin(), experts.end()}, {weights.begin(), weights.end()},
                             {router_logits.begin(), router_logits.end()}});
    data_.version = ++version_;
}

bool InspectorFeed::wants_attention(int64_t layer) const {
    std::lock_guard lock(mutex_);
    return attention_layers_.count(layer) > 0 || capture_layers_.count(layer) > 0;
}

void InspectorFeed::on_attention(int64_t, int64_t position, int64_t layer, int64_t heads, int64_t keys,
                                 const float* probabilities) {
    std::lock_guard lock(mutex_);
    AttentionSnapshot& snapshot = data_.attention[layer];
    snapshot.heads = heads;
    snapshot.rows[position].assign(probabilities, probabilities + heads * keys);
    data_.version = ++version_;
}

std::vector<float> image_attention(const InspectorSnapshot& snapshot, int64_t layer, int64_t position, const InspectedImage& image,
                                   int head) {
    const auto captured = snapshot.attention.find(layer);
    if (captured == snapshot.attention.end()) return {};
    const auto row = captured->second.rows.find(position);
    if (row == captured->second.rows.end()) return {};
    const int64_t heads = captured->second.heads, keys = position + 1;
    if (head >= heads) return {};
    std::vector<float> weights;
    for (int64_t key : image.positions) {
        if (key >= keys) return {};  // the image comes after this token: it cannot be attended to
        double sum = 0;
        for (int64_t h = head < 0 ? 0 : head; h < (head < 0 ? heads : head + 1); ++h) sum += row->second[size_t(h * keys + key)];
        weights.push_back(float(head < 0 ? sum / double(heads) : sum));
    }
    return weights;
}

}  // namespace mwb::app
