// The routing of every observed token: chosen experts and weights per MoE layer, and expert-load counts.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/observe/observer.h"

namespace mwb {

struct RoutingRecord {
    int64_t sequence = 0;
    int64_t position = 0;
    int64_t layer = 0;
    std::vector<int32_t> experts;  // sorted by id
    std::vector<float> weights;
    std::vector<float> router_logits;
};

class RoutingTrace : public ForwardObserver {
public:
    explicit RoutingTrace(bool keep_router_logits = false) : keep_router_logits_(keep_router_logits) {}

    void on_routing(int64_t sequence, int64_t position, int64_t layer, std::span<const int32_t> experts,
                    std::span<const float> weights, std::span<const float> router_logits) override;

    const std::vector<RoutingRecord>& records() const { return records_; }
    void clear() { records_.clear(); }

private:
    bool keep_router_logits_;
    std::vector<RoutingRecord> records_;
};

}  // namespace mwb
