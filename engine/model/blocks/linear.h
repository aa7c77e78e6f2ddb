// A linear layer's weights as stored in the checkpoint (any float dtype, FP8 with 128×128 block scales).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "engine/core/result.h"
#include "engine/io/safetensors.h"
#include "engine/model/config.h"

namespace mwb {

struct LinearWeight {
    TensorView weight;                    // [out_features, in_features], y = x · Wᵀ
    std::optional<TensorView> bias;       // [out_features]
    std::optional<TensorView> block_scale;  // FP8: float32 [ceil(out/block_rows), ceil(in/block_cols)]
    int64_t out_features = 0;
    int64_t in_features = 0;
    int64_t block_rows = 128, block_cols = 128;

    // Bytes read from the checkpoint for one full pass over the weight.
    size_t stored_bytes() const;
};

struct VectorWeight {  // norm weights, router bias: [size]
    TensorView weight;
    int64_t size = 0;
};

class WeightLoader {
public:
    WeightLoader(const TensorStore& store, const ModelConfig& config) : store_(store), config_(config) {}
    Result<LinearWeight> linear(const std::string& prefix, int64_t out_features, int64_t in_features, bool with_bias = false) const;
    Result<VectorWeight> vector(const std::string& name, int64_t size) const;
    // The embedding table [vocab, hidden] (also the tied lm_head).
    Result<LinearWeight> table(const std::string& name, int64_t rows, int64_t cols) const;

private:
    Result<TensorView> float_tensor(const std::string& name, const std::vector<int64_t>& shape) const;
    const TensorStore& store_;
    const ModelConfig& config_;
};

}  // namespace mwb
