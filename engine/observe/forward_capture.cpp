#include "engine/observe/forward_capture.h"

#include <algorithm>
#include <cstdint>

namespace mwb {

void ForwardCapture::on_routing(int64_t, int64_t position, int64_t layer, std::span<const int32_t> experts,
                                std::span<const float> weights, std::span<const float> router_logits) {
    if (position < 0 || position >= tokens_) return;
    Routing& r = routing_[layer];
    if (r.indices.empty()) {
        r.top_k = int64_t(experts.size());
        r.experts = int64_t(router_logits.size());
        r.indices.assign(size_t(tokens_ * r.top_k), 0);
        r.weights.assign(size_t(tokens_ * r.top_k), 0.0f);
        r.logits.assign(size_t(tokens_ * r.experts), 0.0f);
    }
    std::copy(experts.begin(), experts.end(), r.indices.begin() + position * r.top_k);
    std::copy(weights.begin(), weights.end(), r.weights.begin() + position * r.top_k);
    std::copy(router_logits.begin(), router_logits.end(), r.logits.begin() + position * r.experts);
}

void ForwardCapture::on_attention(int64_t, int64_t position, int64_t layer, int64_t heads, int64_t keys,
                                  const float* probabilities) {
    if (position < 0 || position >= tokens_ || keys > tokens_) return;
    Attention& a = attention_[layer];
    if (a.probabilities.empty()) {
        a.heads = heads;
        a.probabilities.assign(size_t(heads * tokens_ * tokens_), 0.0f);
    }
    for (int64_t h = 0; h < heads; ++h)
        std::copy(probabilities + h * keys, probabilities + (h + 1) * keys,
                  a.probabilities.begin() + (h * tokens_ + position) * tokens_);
}

void ForwardCapture::on_hidden_state(int64_t, int64_t position, int64_t index, int64_t width, const float* values) {
    if (position < 0 || position >= tokens_) return;
    hidden_width_ = width;
    auto& rows = hidden_[index];
    if (rows.empty()) rows.assign(size_t(tokens_ * width), 0.0f);
    std::copy(values, values + width, rows.begin() + position * width);
}

std::vector<TensorToWrite> ForwardCapture::tensors() const {
    std::vector<TensorToWrite> out;
    for (const auto& [index, rows] : hidden_)
        out.push_back(tensor_f32("hidden." + std::to_string(index), {tokens_, hidden_width_}, rows));
    for (const auto& [layer, r] : routing_) {
        const std::string prefix = "router." + std::to_string(layer);
        out.push_back(tensor_i64(prefix + ".indices", {tokens_, r.top_k}, r.indices));
        out.push_back(tensor_f32(prefix + ".weights", {tokens_, r.top_k}, r.weights));
        out.push_back(tensor_f32(prefix + ".logits", {tokens_, r.experts}, r.logits));
    }
    for (const auto& [layer, a] : attention_)
        out.push_back(tensor_f32("attn." + std::to_string(layer), {a.heads, tokens_, tokens_}, a.probabilities));
    return out;
}

}  // namespace mwb
