#include "engine/observe/routing_trace.h"

#include <cstdint>

namespace mwb {

void RoutingTrace::on_routing(int64_t sequence, int64_t position, int64_t layer, std::span<const int32_t> experts,
                              std::span<const float> weights, std::span<const float> router_logits) {
    RoutingRecord record{sequence, position, layer, {experts.begin(), experts.end()}, {weights.begin(), weights.end()}, {}};
    if (keep_router_logits_) record.router_logits.assign(router_logits.begin(), router_logits.end());
    records_.push_back(std::move(record));
}

}  // namespace mwb
