// A low-rank update of linear layers applied unmerged, y = x·Wᵀ + scale·(x·Aᵀ)·Bᵀ: how a LoRA adapter acts at
// inference, per request, over an unchanged base model. Keyed by the base layer's weight.
#pragma once

#include <atomic>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine/model/blocks/linear.h"

namespace mwb {

struct LowRankDelta {
    int64_t rank = 0;
    float scale = 1.0f;
    std::vector<float> a;  // [rank, in_features]
    std::vector<float> b;  // [out_features, rank]
};

// The deltas of one adapter. Backends that keep a device copy of an adapter recognise it by identity(): every
// LowRankDeltas of the process has its own, a copy or an assignment included. So an adapter is filled before its
// first use and never changed in place afterwards; a changed adapter is a new LowRankDeltas.
class LowRankDeltas : public std::unordered_map<const LinearWeight*, LowRankDelta> {
public:
    LowRankDeltas() = default;
    LowRankDeltas(const LowRankDeltas& other) : unordered_map(other) {}
    LowRankDeltas(LowRankDeltas&& other) noexcept : unordered_map(std::move(other)) {}
    LowRankDeltas& operator=(const LowRankDeltas& other) {
        unordered_map::operator=(other);
        identity_ = next_identity();
        return *this;
    }
    LowRankDeltas& operator=(LowRankDeltas&& other) noexcept {
        unordered_map::operator=(std::move(other));
        identity_ = next_identity();
        return *this;
    }

    uint64_t identity() const { return identity_; }

private:
    static uint64_t next_identity() {
        static std::atomic<uint64_t> next{1};
        return next.fetch_add(1, std::memory_order_relaxed);
    }
    uint64_t identity_ = next_identity();
};

}  // namespace mwb
