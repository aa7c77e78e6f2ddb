// Everything one sequence's forward pass shows, in the tensor names and conventions of the reference fixtures:
// `hidden.K` [T, hidden], `router.L.indices` (int64, sorted by expert id) / `.weights` / `.logits`, `attn.L`
// [heads, T, T]. Used by `mwb logits` and the oracle tests.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "engine/io/safetensors.h"
#include "engine/observe/observer.h"

namespace mwb {

class ForwardCapture : public ForwardObserver {
public:
    ForwardCapture(int64_t tokens, std::set<int64_t> attention_layers = {})
        : tokens_(tokens), attention_layers_(std::move(attention_layers)) {}

    void on_routing(int64_t sequence, int64_t position, int64_t layer, std::span<const int32_t> experts,
                    std::span<const float> weights, std::span<const float> router_logits) override;
    bool wants_attention(int64_t layer) const override { return attention_layers_.count(layer) > 0; }
    void on_attention(int64_t sequence, int64_t position, int64_t layer, int64_t heads, int64_t keys,
                      const float* probabilities) override;
    bool wants_hidden_states() const override { return true; }
    void on_hidden_state(int64_t sequence, int64_t position, int64_t index, int64_t width, const float* values) override;

    struct Routing {
        int64_t top_k = 0, experts = 0;
        std::vector<int64_t> indices;  // [T, top_k]
        std::vector<float> weights;    // [T, top_k]
        std::vector<float> logits;     // [T, experts]
    };
    struct Attention {
        int64_t heads = 0;
        std::vector<float> probabilities;  // [heads, T, T], zero above the diagonal
    };
    const std::map<int64_t, std::vector<float>>& hidden() const { return hidden_; }
    int64_t hidden_width() const { return hidden_width_; }
    const std::map<int64_t, Routing>& routing() const { return routing_; }
    const std::map<int64_t, Attention>& attention() const { return attention_; }

    std::vector<TensorToWrite> tensors() const;

private:
    int64_t tokens_;
    std::set<int64_t> attention_layers_;
    int64_t hidden_width_ = 0;
    std::map<int64_t, std::vector<float>> hidden_;
    std::map<int64_t, Routing> routing_;
    std::map<int64_t, Attention> attention_;
};

}  // namespace mwb
