// Hooks through which a backend reports what happens inside a forward pass. All are optional and cheap
// to leave out: a backend asks before it computes anything extra.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mwb {

class ForwardObserver {
public:
    virtual ~ForwardObserver() = default;

    // Routing of one token in one MoE layer: experts sorted by id, their final weights, the router logits.
    virtual void on_routing(int64_t sequence, int64_t position, int64_t layer, std::span<const int32_t> experts,
                            std::span<const float> weights, std::span<const float> router_logits) {
        (void)sequence, (void)position, (void)layer, (void)experts, (void)weights, (void)router_logits;
    }

    virtual bool wants_attention(int64_t layer) const { (void)layer; return false; }
    // Softmax probabilities of one query token: `heads` rows of `keys` values (keys = position + 1).
    virtual void on_attention(int64_t sequence, int64_t position, int64_t layer, int64_t heads, int64_t keys,
                              const float* probabilities) {
        (void)sequence, (void)position, (void)layer, (void)heads, (void)keys, (void)probabilities;
    }

    virtual bool wants_hidden_states() const { return false; }
    // Hidden state `index` (0 = embeddings, i = after decoder layer i-1, the last after the final norm) of one
    // token, `width` values.
    virtual void on_hidden_state(int64_t sequence, int64_t position, int64_t index, int64_t width, const float* values) {
        (void)sequence, (void)position, (void)index, (void)width, (void)values;
    }
};

// Passes every report on to several observers (null entries are skipped), asking each only for what it wants.
class ForwardObserverGroup final : public ForwardObserver {
public:
    explicit ForwardObserverGroup(std::vector<ForwardObserver*> observers) : observers_(std::move(observers)) {}

    void on_routing(int64_t sequence, int64_t position, int64_t layer, std::span<const int32_t> experts,
                    std::span<const float> weights, std::span<const float> router_logits) override {
        for (auto* o : observers_)
            if (o) o->on_routing(sequence, position, layer, experts, weights, router_logits);
    }
    bool wants_attention(int64_t layer) const override {
        for (auto* o : observers_)
            if (o && o->wants_attention(layer)) return true;
        return false;
    }
    void on_attention(int64_t sequence, int64_t position, int64_t layer, int64_t heads, int64_t keys,
                      const float* probabilities) override {
        for (auto* o : observers_)
            if (o && o->wants_attention(layer)) o->on_attention(sequence, position, layer, heads, keys, probabilities);
    }
    bool wants_hidden_states() const override {
        for (auto* o : observers_)
            if (o && o->wants_hidden_states()) return true;
        return false;
    }
    void on_hidden_state(int64_t sequence, int64_t position, int64_t index, int64_t width, const float* values) override {
        for (auto* o : observers_)
            if (o && o->wants_hidden_states()) o->on_hidden_state(sequence, position, index, width, values);
    }

private:
    std::vector<ForwardObserver*> observers_;
};

}  // namespace mwb
